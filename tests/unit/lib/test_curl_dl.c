/* lib/curl_dl: libcurl is not mapped until the first curl call; the trampolines forward
 * every argument class of the variadic setters (long, object pointer, function pointer,
 * curl_off_t) and getinfo's pointer intact, checked by a real transfer to a lib/http
 * server on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "curl_dl.h"
#include "http.h"
#include "loop.h"

static bool
mapped(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool found = false;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "libcurl") != NULL)
			found = true;
	if (f != NULL)
		fclose(f);
	return found;
}

static size_t
on_write(char *p, size_t sz, size_t nm, void *ud)
{
	strncat(ud, p, sz * nm < 63 - strlen(ud) ? sz * nm : 63 - strlen(ud));
	return sz * nm;
}

static void
handler(struct http_request *req, void *arg)
{
	const char *ua = http_request_header(req, "user-agent");
	http_respond(req, 200, NULL, 0, ua ? ua : "-", strlen(ua ? ua : "-"));
}

static curl_socket_t watched = CURL_SOCKET_BAD;

static int
on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	*(curl_socket_t *)userp = what == CURL_POLL_REMOVE ? CURL_SOCKET_BAD : fd;
	return 0;
}

static void
test_lazy_and_forwarding(void **state)
{
	assert_false(curl_dl_loaded());
	assert_false(mapped());
	assert_int_equal(curl_dl_load(), 0);
	assert_string_equal(curl_dl_error(), "");
	assert_true(curl_dl_loaded());
	assert_true(mapped());

	struct loop *l = loop_new();
	struct http_server *srv = http_server_new(l, NULL, handler, NULL);
	int port;
	assert_int_equal(http_server_listen(srv, "127.0.0.1:0", NULL, &port), 0);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", port);
	/* curl_easy_perform is not in our table: drive the transfer through multi */
	CURL *e = curl_easy_init();
	CURLM *m = curl_multi_init();
	char got[64] = "";
	int marker = 42;
	assert_int_equal(curl_easy_setopt(e, CURLOPT_URL, url), CURLE_OK);
	assert_int_equal(curl_easy_setopt(e, CURLOPT_USERAGENT, "forwarded-ua"), CURLE_OK);
	assert_int_equal(curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write), CURLE_OK);
	assert_int_equal(curl_easy_setopt(e, CURLOPT_WRITEDATA, got), CURLE_OK);
	assert_int_equal(curl_easy_setopt(e, CURLOPT_RESOLVE, NULL), CURLE_OK);
	assert_int_equal(curl_easy_setopt(e, CURLOPT_CONNECT_TO, NULL), CURLE_OK);
	assert_int_equal(curl_easy_setopt(e, CURLOPT_PRIVATE, &marker), CURLE_OK);
	assert_int_equal(curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L), CURLE_OK);
	assert_int_equal(curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)1 << 20),
	                 CURLE_OK);
	/* a long option given an out-of-range value must still arrive as that value */
	assert_int_equal(curl_easy_setopt(e, CURLOPT_HTTP_VERSION, 99L),
	                 CURLE_UNSUPPORTED_PROTOCOL);
	assert_int_equal(curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 2L), CURLM_OK);
	assert_int_equal(curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket), CURLM_OK);
	assert_int_equal(curl_multi_setopt(m, CURLMOPT_SOCKETDATA, &watched), CURLM_OK);
	assert_int_equal(curl_multi_add_handle(m, e), CURLM_OK);
	int running = 1;
	for (int i = 0; i < 2000 && running; i++) {
		curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
		if (watched != CURL_SOCKET_BAD)
			curl_multi_socket_action(m, watched, CURL_CSELECT_IN | CURL_CSELECT_OUT,
			                         &running);
		loop_once(l, 1);
	}
	int left;
	CURLMsg *msg = curl_multi_info_read(m, &left);
	assert_non_null(msg);
	assert_int_equal(msg->data.result, CURLE_OK);
	int *p = NULL;
	assert_int_equal(curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&p), CURLE_OK);
	assert_ptr_equal(p, &marker);
	long code = 0;
	assert_int_equal(curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code), CURLE_OK);
	assert_int_equal(code, 200);
	assert_string_equal(got, "forwarded-ua");
	assert_string_equal(curl_easy_strerror(CURLE_OK), "No error");
	curl_multi_remove_handle(m, e);
	curl_easy_cleanup(e);
	curl_multi_cleanup(m);
	http_server_free(srv);
	loop_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lazy_and_forwarding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
