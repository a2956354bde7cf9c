/* The worker's egress proxy (src/worker/egress.c) on loopback, without a sandbox: the
 * proxy runs its own event loop on a thread, a tiny origin on another, and the test is a
 * blocking client. Plain HTTP and CONNECT go through; refusals carry their reason; bad
 * input (oversized and malformed heads, zone ids, fronting, a slowloris, more
 * connections than the cap) is answered by rule; a pipelined second request never
 * reaches the origin. The binary is linked with -Wl,--wrap=free,--wrap=realloc so that
 * test_secret_wipe sees every block the proxy hands back to malloc. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <malloc.h>

#include <cmocka.h>

#include "buf.h"
#include "egress.h"
#include "egress_policy.h"
#include "err.h"
#include "loop.h"
#include "net.h"
#include "tls_hello.h"

static int proxy_port, origin_port;
static struct loop *ploop;
static struct egress_operator *op;
static struct egress_proxy *px;

/* ---- free()/realloc() as the proxy's code calls them: a block handed back (or to a
 * realloc that may move it and free the old one as it is) while it still holds the
 * secret value is a leak of it into freed memory ---- */

void __real_free(void *p);
void *__real_realloc(void *p, size_t n);
void __wrap_free(void *p);
void *__wrap_realloc(void *p, size_t n);

static atomic_bool wipe_watch;
static atomic_int wipe_leaks;

static bool
holds_value(void *p)
{
	static const char v[] = "VALUE-1234";
	return p && atomic_load(&wipe_watch) &&
	       memmem(p, malloc_usable_size(p), v, sizeof(v) - 1) != NULL;
}

void
__wrap_free(void *p)
{
	if (holds_value(p))
		atomic_fetch_add(&wipe_leaks, 1);
	__real_free(p);
}

void *
__wrap_realloc(void *p, size_t n)
{
	if (holds_value(p))
		atomic_fetch_add(&wipe_leaks, 1);
	return __real_realloc(p, n);
}

/* ---- the origin: answers each connection once, remembers what it read ---- */

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static char seen[65536];
static size_t seen_len;

static void *
origin_main(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		if (c < 0)
			continue;
		char buf[8192];
		size_t n = 0;
		struct pollfd pf = {c, POLLIN, 0};
		/* read what arrives within 200 ms of quiet: the whole request */
		while (n < sizeof(buf) && poll(&pf, 1, 200) > 0) {
			ssize_t r = recv(c, buf + n, sizeof(buf) - n, 0);
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		pthread_mutex_lock(&seen_mu);
		if (seen_len + n < sizeof(seen)) {
			memcpy(seen + seen_len, buf, n);
			seen_len += n;
			seen[seen_len] = '\0';
		}
		pthread_mutex_unlock(&seen_mu);
		static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
		                         "Connection: close\r\n\r\norigin-ok";
		if (n >= 3 && memcmp(buf, "BIG", 3) == 0) {
			/* 4 MiB of a pattern, for the spliced tunnel */
			static unsigned char big[1 << 16];
			for (size_t i = 0; i < sizeof(big); i++)
				big[i] = (unsigned char)(i * 7 + 3);
			for (int k = 0; k < 64; k++)
				if (send(c, big, sizeof(big), MSG_NOSIGNAL) != (ssize_t)sizeof(big))
					break;
		} else {
			(void)send(c, ok, sizeof(ok) - 1, MSG_NOSIGNAL);
		}
		close(c);
	}
	return NULL;
}

static void *
proxy_main(void *arg)
{
	(void)arg;
	loop_run(ploop);
	return NULL;
}

static int
group_setup(void **state)
{
	(void)state;
	int ofd, lfd;
	char y[1024], err[512];
	pthread_t th;
	if (net_listen_tcp("127.0.0.1:0", &ofd, &origin_port) != 0)
		return -1;
	/* the origin blocks: make its socket blocking again */
	int fl = fcntl(ofd, F_GETFL);
	fcntl(ofd, F_SETFL, fl & ~O_NONBLOCK);
	snprintf(y, sizeof(y),
	         "allowed_hosts: ['*.corp.test', 'public.test', '*.tools.test']\n"
	         "denied_hosts: ['no.corp.test']\n"
	         "allowed_addresses: [127.0.0.1]\n"
	         "max_connections: 4\n"
	         "resolve: {api.corp.test: 127.0.0.1, no.corp.test: 127.0.0.1, "
	         "meta.corp.test: 169.254.169.254, public.test: 127.0.0.1, "
	         "mcp.tools.test: 127.0.0.1, other.tools.test: 127.0.0.1, x.corp.test: "
	         "127.0.0.1}\n");
	if (egress_operator_parse("op.yaml", y, strlen(y), &op, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	struct egress_env env = {.type = EGRESS_ENV_LIMITED, .allow_mcp_servers = true};
	if (egress_hostlist_add(&env.allow, "*.corp.test", true, err, sizeof(err)) != 0)
		return -1;
	ploop = loop_new();
	if (net_listen_tcp("127.0.0.1:0", &lfd, &proxy_port) != 0 ||
	    egress_proxy_new(ploop, lfd, op, &env, "sesn_test", &px) != 0)
		return -1;
	egress_proxy_set_timeouts(px, 500, 2000);
	/* one environment_variable secret for api.corp.test, headers and bodies */
	json_t *hosts = json_pack("[s]", "api.corp.test");
	if (egress_proxy_add_secret(px, "vcrd_test", "PH-7f3a9c", "VALUE-1234", hosts, true,
	                            true) != 0 ||
	    egress_proxy_add_secret(px, "vcrd_bad", "PH-b", "a\r\nX-Evil: 1", hosts, true, false) !=
	        AL_E_INVAL)
		return -1;
	json_decref(hosts);
	/* the agent's MCP servers, as the session object names them */
	snprintf(y, sizeof(y),
	         "{\"agent\": {\"mcp_servers\": [{\"type\": \"url\", \"name\": \"a\", "
	         "\"url\": \"http://MCP.tools.test:%d/mcp\"}, {\"type\": \"url\", \"name\": "
	         "\"b\", \"url\": \"https://user@bad/\"}, {\"name\": \"c\"}]}}",
	         origin_port);
	json_t *sess = json_loads(y, 0, NULL);
	if (sess == NULL)
		return -1;
	egress_proxy_set_session(px, sess);
	json_decref(sess);
	pthread_create(&th, NULL, origin_main, (void *)(intptr_t)ofd);
	pthread_detach(th);
	pthread_create(&th, NULL, proxy_main, NULL);
	pthread_detach(th);
	return 0;
}

static int
dial_proxy(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)proxy_port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Everything the proxy sends until it closes (or 3 s pass). */
static void
read_all(int fd, char *out, size_t outlen)
{
	size_t n = 0;
	struct pollfd pf = {fd, POLLIN, 0};
	while (n + 1 < outlen && poll(&pf, 1, 3000) > 0) {
		ssize_t r = recv(fd, out + n, outlen - 1 - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
}

static void
exchange(const char *req, size_t len, char *out, size_t outlen)
{
	int fd = dial_proxy();
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	read_all(fd, out, outlen);
	close(fd);
}

static void
exchange_str(const char *req, char *out, size_t outlen)
{
	exchange(req, strlen(req), out, outlen);
}

static void
seen_reset(void)
{
	pthread_mutex_lock(&seen_mu);
	seen_len = 0;
	seen[0] = '\0';
	pthread_mutex_unlock(&seen_mu);
}

static bool
seen_has(const char *s)
{
	pthread_mutex_lock(&seen_mu);
	bool r = memmem(seen, seen_len, s, strlen(s)) != NULL; /* TLS bytes hold NULs */
	pthread_mutex_unlock(&seen_mu);
	return r;
}

static void
test_plain_http(void **state)
{
	(void)state;
	char req[512], out[4096];
	seen_reset();
	snprintf(req, sizeof(req),
	         "GET http://API.corp.test.:%d/x?y=1 HTTP/1.1\r\nHost: api.corp.test:%d\r\n"
	         "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
	         "X-Kept: 1\r\n\r\n",
	         origin_port, origin_port);
	exchange_str(req, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(out, "origin-ok"));
	assert_true(seen_has("GET /x?y=1 HTTP/1.1\r\n"));
	assert_true(seen_has("X-Kept: 1\r\n"));
	assert_true(seen_has("Connection: close\r\n"));
	assert_false(seen_has("Proxy-"));
}

static void
test_connect(void **state)
{
	(void)state;
	char req[256], out[4096];
	seen_reset();
	int fd = dial_proxy();
	snprintf(req, sizeof(req), "CONNECT api.corp.test:%d HTTP/1.1\r\nHost: x\r\n\r\n",
	         origin_port);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	/* tunnel bytes may follow the head in the same segment: they go through too */
	static const char inner[] = "PING tunnel\r\n\r\n";
	assert_int_equal(send(fd, inner, sizeof(inner) - 1, 0), (ssize_t)sizeof(inner) - 1);
	read_all(fd, out, sizeof(out));
	close(fd);
	assert_true(strncmp(out, "HTTP/1.1 200 Connection established\r\n\r\n", 39) == 0);
	assert_non_null(strstr(out, "origin-ok"));
	assert_true(seen_has("PING tunnel"));
}

/* A tunnel carries megabytes intact (past its first bytes it moves by splice). */
static void
test_connect_bulk(void **state)
{
	(void)state;
	char req[256], head[40];
	static unsigned char buf[1 << 16];
	int fd = dial_proxy();
	snprintf(req, sizeof(req), "CONNECT api.corp.test:%d HTTP/1.1\r\n\r\n", origin_port);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	assert_int_equal(recv(fd, head, 39, MSG_WAITALL), 39);
	assert_int_equal(send(fd, "BIG", 3, 0), 3);
	size_t total = 0;
	bool intact = true;
	ssize_t r;
	while ((r = recv(fd, buf, sizeof(buf), 0)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			intact = intact &&
			         buf[i] == (unsigned char)((total + (size_t)i) % 65536 * 7 + 3);
		total += (size_t)r;
	}
	close(fd);
	assert_int_equal(total, 64u << 16);
	assert_true(intact);
}

static void
expect_refusal(const char *req, const char *status, const char *body)
{
	char out[4096];
	exchange_str(req, out, sizeof(out));
	if (strstr(out, status) == NULL || strstr(out, body) == NULL)
		fail_msg("request:\n%s\nanswer:\n%s\nwant %s / %s", req, out, status, body);
}

static void
test_refusals(void **state)
{
	(void)state;
	char req[512];
	seen_reset();
	snprintf(req, sizeof(req),
	         "GET http://public.test:%d/ HTTP/1.1\r\nHost: public.test:%d\r\n\r\n", origin_port,
	         origin_port);
	expect_refusal(
	    req, "403 Forbidden",
	    "airlock egress: public.test is not allowed by the environment's allowed_hosts");
	snprintf(req, sizeof(req), "CONNECT no.corp.test:%d HTTP/1.1\r\n\r\n", origin_port);
	expect_refusal(req, "403 Forbidden",
	               "airlock egress: no.corp.test is not allowed by the worker's denied_hosts "
	               "entry 'no.corp.test'");
	expect_refusal("CONNECT meta.corp.test:80 HTTP/1.1\r\n\r\n", "403 Forbidden",
	               "169.254.169.254 is cloud metadata");
	/* fronting: the Host names another host than the target */
	snprintf(req, sizeof(req),
	         "GET http://api.corp.test:%d/f HTTP/1.1\r\nHost: public.test\r\n\r\n",
	         origin_port);
	expect_refusal(req, "403 Forbidden", "the Host check");
	snprintf(req, sizeof(req),
	         "GET http://api.corp.test:%d/f HTTP/1.1\r\nHost: api.corp.test:%d\r\n"
	         "Host: public.test\r\n\r\n",
	         origin_port, origin_port);
	expect_refusal(req, "400 Bad Request", "malformed request");
	/* IP literals are hosts like any other: not on the list */
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", origin_port);
	expect_refusal(req, "403 Forbidden", "127.0.0.1 is not allowed by the environment's");
	expect_refusal("CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n", "403 Forbidden",
	               "the target rules");
	expect_refusal("CONNECT api.corp.test HTTP/1.1\r\n\r\n", "403 Forbidden",
	               "the target rules");
	expect_refusal("GET https://api.corp.test/ HTTP/1.1\r\nHost: api.corp.test\r\n\r\n",
	               "403 Forbidden", "https goes through CONNECT");
	expect_refusal("GET http://user@api.corp.test/ HTTP/1.1\r\nHost: api.corp.test\r\n\r\n",
	               "403 Forbidden", "the target rules");
	expect_refusal("GET /relative HTTP/1.1\r\nHost: api.corp.test\r\n\r\n", "403 Forbidden",
	               "absolute http:// URL");
	expect_refusal("HELLO\r\n\r\n", "400 Bad Request", "malformed request");
	assert_false(seen_has("/f"));
}

static void
test_mcp_hosts(void **state)
{
	(void)state;
	char req[256], out[4096];
	snprintf(req, sizeof(req),
	         "GET http://mcp.tools.test:%d/mcp HTTP/1.1\r\nHost: mcp.tools.test:%d\r\n\r\n",
	         origin_port, origin_port);
	exchange_str(req, out, sizeof(out));
	assert_non_null(strstr(out, "origin-ok"));
	/* another host of that domain, and the MCP host on another port: not opened */
	snprintf(req, sizeof(req),
	         "GET http://other.tools.test:%d/ HTTP/1.1\r\nHost: other.tools.test:%d\r\n\r\n",
	         origin_port, origin_port);
	expect_refusal(req, "403 Forbidden", "the environment's allowed_hosts");
	expect_refusal("CONNECT mcp.tools.test:443 HTTP/1.1\r\n\r\n", "403 Forbidden",
	               "the environment's allowed_hosts");
}

/* Secret injection: the value replaces the placeholder in headers and (chunked, split
 * across segments and chunks) bodies to the secret's host only; a body past 1 MiB for
 * that host is refused, never sent half-replaced. */
static void
test_secret_injection(void **state)
{
	(void)state;
	char req[512], out[4096];
	seen_reset();
	snprintf(req, sizeof(req),
	         "GET http://api.corp.test:%d/h HTTP/1.1\r\nHost: api.corp.test:%d\r\n"
	         "Authorization: Bearer PH-7f3a9c\r\nX-Twice: PH-7f3a9c/PH-7f3a9c\r\n\r\n",
	         origin_port, origin_port);
	exchange_str(req, out, sizeof(out));
	assert_non_null(strstr(out, "origin-ok"));
	assert_true(seen_has("Authorization: Bearer VALUE-1234\r\n"));
	assert_true(seen_has("X-Twice: VALUE-1234/VALUE-1234\r\n"));
	assert_false(seen_has("PH-7f3a9c"));

	/* the placeholder split over two writes and over two chunks */
	seen_reset();
	int fd = dial_proxy();
	snprintf(req, sizeof(req),
	         "POST http://api.corp.test:%d/b HTTP/1.1\r\nHost: api.corp.test:%d\r\n"
	         "Transfer-Encoding: chunked\r\n\r\n5\r\nk=PH-\r\n",
	         origin_port, origin_port);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	usleep(50000);
	static const char rest[] = "6\r\n7f3a9c\r\n0\r\n\r\n";
	assert_int_equal(send(fd, rest, sizeof(rest) - 1, 0), (ssize_t)sizeof(rest) - 1);
	read_all(fd, out, sizeof(out));
	close(fd);
	assert_non_null(strstr(out, "origin-ok"));
	assert_true(seen_has("Content-Length: 12\r\n"));
	assert_true(seen_has("\r\n\r\nk=VALUE-1234"));
	assert_false(seen_has("Transfer-Encoding"));
	assert_false(seen_has("PH-"));

	/* another host: the placeholder leaves as it is, header and body */
	seen_reset();
	snprintf(req, sizeof(req),
	         "POST http://x.corp.test:%d/o HTTP/1.1\r\nHost: x.corp.test:%d\r\n"
	         "Authorization: Bearer PH-7f3a9c\r\nContent-Length: 9\r\n\r\nPH-7f3a9c",
	         origin_port, origin_port);
	exchange_str(req, out, sizeof(out));
	assert_true(seen_has("Authorization: Bearer PH-7f3a9c\r\n"));
	assert_true(seen_has("\r\n\r\nPH-7f3a9c"));
	assert_false(seen_has("VALUE-1234"));

	/* over the held-body bound: 413, nothing reaches the origin */
	seen_reset();
	size_t big = (1u << 20) + 4096;
	char *b = malloc(big + 256);
	int h = snprintf(b, 256,
	                 "POST http://api.corp.test:%d/big HTTP/1.1\r\nHost: api.corp.test:%d\r\n"
	                 "Content-Length: %zu\r\n\r\n",
	                 origin_port, origin_port, big);
	memset(b + h, 'z', big);
	fd = dial_proxy();
	(void)send(fd, b, (size_t)h + big, MSG_NOSIGNAL);
	read_all(fd, out, sizeof(out));
	close(fd);
	free(b);
	assert_non_null(strstr(out, "413 Content Too Large"));
	assert_false(seen_has("/big"));
}

/* The proxy wipes every buffer an injected value went through before malloc gets it
 * back: the rewritten head (grown past its first block), the held body, the relay
 * buffer it was sent from. Control: the check sees a block freed with the value. */
static void
test_secret_wipe(void **state)
{
	(void)state;
	char req[2048], out[4096];
	usleep(300000); /* connections of earlier tests are closed and freed */
	atomic_store(&wipe_leaks, 0);
	atomic_store(&wipe_watch, true);
	struct buf probe; /* lib code's plain free is seen */
	buf_init(&probe, 64);
	assert_int_equal(buf_add_str(&probe, "x VALUE-1234 x"), 0);
	buf_free(&probe);
	assert_int_equal(atomic_load(&wipe_leaks), 1);
	atomic_store(&wipe_leaks, 0);

	/* headers: the value early, then enough lines that the head's buffer grows */
	seen_reset();
	int n = snprintf(req, sizeof(req),
	                 "GET http://api.corp.test:%d/w HTTP/1.1\r\nHost: api.corp.test:%d\r\n"
	                 "Authorization: Bearer PH-7f3a9c\r\n",
	                 origin_port, origin_port);
	for (int i = 0; i < 12; i++)
		n += snprintf(req + n, sizeof(req) - (size_t)n, "X-Pad-%d: %060d\r\n", i, i);
	snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	exchange_str(req, out, sizeof(out));
	assert_non_null(strstr(out, "origin-ok"));
	assert_true(seen_has("Authorization: Bearer VALUE-1234\r\n"));

	/* a held body: the value near its start, then growth */
	seen_reset();
	char body[3000];
	memset(body, 'q', sizeof(body));
	memcpy(body, "k=PH-7f3a9c&", 12);
	n = snprintf(req, sizeof(req),
	             "POST http://api.corp.test:%d/wb HTTP/1.1\r\nHost: api.corp.test:%d\r\n"
	             "Content-Length: %zu\r\n\r\n",
	             origin_port, origin_port, sizeof(body));
	int fd = dial_proxy();
	assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	assert_int_equal(send(fd, body, sizeof(body), MSG_NOSIGNAL), (ssize_t)sizeof(body));
	read_all(fd, out, sizeof(out));
	close(fd);
	assert_non_null(strstr(out, "origin-ok"));
	assert_true(seen_has("k=VALUE-1234&"));

	usleep(300000); /* the proxy frees each connection after the client's close */
	atomic_store(&wipe_watch, false);
	assert_int_equal(atomic_load(&wipe_leaks), 0);
}

static void
test_oversized_head(void **state)
{
	(void)state;
	char out[4096];
	size_t n = 40000;
	char *req = malloc(n);
	memcpy(req, "GET http://api.corp.test/ HTTP/1.1\r\nX-Big: ", 43);
	memset(req + 43, 'a', n - 43);
	exchange(req, n, out, sizeof(out));
	free(req);
	assert_non_null(strstr(out, "431 Request Header Fields Too Large"));
}

static void
test_slowloris(void **state)
{
	(void)state;
	char out[1024];
	int fd = dial_proxy();
	assert_int_equal(send(fd, "GET http://api.corp.test/ HTTP/1.1\r\nX-A: ", 41, 0), 41);
	read_all(fd, out, sizeof(out)); /* the proxy's 500 ms head deadline ends it */
	close(fd);
	assert_non_null(strstr(out, "408 Request Timeout"));
}

static void
test_connection_cap(void **state)
{
	(void)state;
	int fds[4];
	char out[1024];
	for (int i = 0; i < 4; i++) {
		fds[i] = dial_proxy();
		assert_int_equal(send(fds[i], "GET http://api", 14, 0), 14); /* half a head */
	}
	usleep(100000);
	int extra = dial_proxy();
	read_all(extra, out, sizeof(out));
	close(extra);
	assert_non_null(strstr(out, "503 Service Unavailable"));
	assert_non_null(strstr(out, "too many open connections"));
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	usleep(100000);
	/* closed ones free their places */
	char req[256];
	snprintf(req, sizeof(req),
	         "GET http://api.corp.test:%d/again HTTP/1.1\r\nHost: api.corp.test:%d\r\n\r\n",
	         origin_port, origin_port);
	exchange_str(req, out, sizeof(out));
	assert_non_null(strstr(out, "origin-ok"));
}

static void
test_body_and_pipelining(void **state)
{
	(void)state;
	char req[1024], out[4096];
	seen_reset();
	/* a chunked body goes through as it is (no body secret for this host); the pipelined
	 * second request does not */
	snprintf(req, sizeof(req),
	         "POST http://x.corp.test:%d/post HTTP/1.1\r\nHost: x.corp.test:%d\r\n"
	         "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	         "GET http://api.corp.test:%d/second HTTP/1.1\r\nHost: public.test\r\n\r\n",
	         origin_port, origin_port, origin_port);
	exchange_str(req, out, sizeof(out));
	assert_non_null(strstr(out, "origin-ok"));
	assert_true(seen_has("5\r\nhello\r\n0\r\n\r\n"));
	assert_false(seen_has("/second"));
}

/* CONNECT, then a ClientHello: through when its SNI is the target, cut off before the
 * origin when it names another host (fronting). */
static bool
connect_hello(const char *target_host, const char *sni)
{
	char req[256], out[256];
	uint8_t h[600];
	int fd = dial_proxy();
	snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\n\r\n", target_host, origin_port);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	ssize_t r = recv(fd, out, 39, MSG_WAITALL);
	assert_int_equal(r, 39);
	size_t n = test_tls_hello(sni, 30, h);
	/* in two writes: the check waits for the whole hello */
	assert_int_equal(send(fd, h, 10, 0), 10);
	usleep(50000);
	assert_int_equal(send(fd, h + 10, n - 10, MSG_NOSIGNAL), (ssize_t)(n - 10));
	read_all(fd, out, sizeof(out));
	close(fd);
	usleep(250000); /* the origin's read window */
	return strstr(out, "origin-ok") != NULL;
}

static void
test_sni_fronting(void **state)
{
	(void)state;
	seen_reset();
	assert_true(connect_hello("api.corp.test", "api.corp.test"));
	assert_true(seen_has("api.corp.test"));
	seen_reset();
	assert_false(connect_hello("api.corp.test", "public.test"));
	assert_false(seen_has("public.test"));
	seen_reset();
	/* no SNI at all: passes (the address is the one decided) */
	assert_true(connect_hello("api.corp.test", NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_http),       cmocka_unit_test(test_connect),
	    cmocka_unit_test(test_connect_bulk),     cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_oversized_head),   cmocka_unit_test(test_slowloris),
	    cmocka_unit_test(test_connection_cap),   cmocka_unit_test(test_body_and_pipelining),
	    cmocka_unit_test(test_sni_fronting),     cmocka_unit_test(test_mcp_hosts),
	    cmocka_unit_test(test_secret_injection), cmocka_unit_test(test_secret_wipe),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
