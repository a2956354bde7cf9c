/* The web console's request checks (src/server/console/console.c): the Cookie header
 * parser, which requests count as the console's, and that a cookie naming no session
 * is refused before anything else is looked at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "console.h"
#include "err.h"
#include "server.h"

static void
cookie_parse(void **state)
{
	(void)state;
	static const struct {
		const char *header;
		int want;
		const char *value;
	} cases[] = {
	    {"airlock_console=abc", 0, "abc"},
	    {"a=1; airlock_console=abc; b=2", 0, "abc"},
	    {"a=1;airlock_console=abc", 0, "abc"},
	    {"  airlock_console=abc  ", 0, "abc"},
	    {"airlock_console=", 0, ""},
	    {"xairlock_console=abc", AL_E_NOTFOUND, NULL},
	    {"airlock_consolex=abc", AL_E_NOTFOUND, NULL},
	    {"airlock_console", AL_E_NOTFOUND, NULL},
	    {"", AL_E_NOTFOUND, NULL},
	    {";;;", AL_E_NOTFOUND, NULL},
	    {NULL, AL_E_NOTFOUND, NULL},
	    /* the first wins, as browsers send the most specific path first */
	    {"airlock_console=one; airlock_console=two", 0, "one"},
	    {"airlock_console=0123456789abcdef", AL_E_TOOBIG, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[16] = "untouched";
		int r = console_cookie_get(cases[i].header, CONSOLE_COOKIE, out, sizeof out);
		if (r != cases[i].want)
			fail_msg("case %zu (%s): got %d, want %d", i,
			         cases[i].header ? cases[i].header : "NULL", r, cases[i].want);
		if (cases[i].value)
			assert_string_equal(out, cases[i].value);
	}
}

static struct http_request
request(struct http_header *h, size_t n)
{
	struct http_request req;
	memset(&req, 0, sizeof req);
	req.headers = h;
	req.nheaders = n;
	return req;
}

static void
which_requests(void **state)
{
	(void)state;
	struct http_header cookie = {"cookie", "a=1; airlock_console=abc"};
	struct http_header other = {"cookie", "a=1"};
	struct http_header key = {"x-api-key", "k"};
	struct http_header bearer = {"authorization", "Bearer t"};
	struct http_header h1[] = {cookie};
	struct http_header h2[] = {cookie, key};
	struct http_header h3[] = {bearer, cookie};
	struct http_header h4[] = {other};
	struct http_request r;
	r = request(h1, 1);
	assert_true(console_request(&r));
	/* an API credential is what the API checks; the cookie is then ignored */
	r = request(h2, 2);
	assert_false(console_request(&r));
	r = request(h3, 2);
	assert_false(console_request(&r));
	r = request(h4, 1);
	assert_false(console_request(&r));
	r = request(NULL, 0);
	assert_false(console_request(&r));
}

static void
unknown_session(void **state)
{
	(void)state;
	struct server srv;
	memset(&srv, 0, sizeof srv);
	struct http_header h[] = {{"cookie", "airlock_console=forged"}, {CONSOLE_HEADER, "forged"}};
	struct http_request r = request(h, 2);
	struct principal who;
	char why[128];
	assert_int_equal(console_auth(&srv, &r, &who, why, sizeof why), AL_E_AUTH);
	assert_int_equal(who.kind, PRINCIPAL_NONE);
	assert_string_equal(who.cred, "console session");
	assert_non_null(strstr(why, "no such console session"));
	console_free(&srv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(cookie_parse),
	    cmocka_unit_test(which_requests),
	    cmocka_unit_test(unknown_session),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
