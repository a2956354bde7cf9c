/* HTTP server over real loopback sockets: keep-alive, pipelining, limits, slowloris,
 * streamed request bodies (the body hook, its limit, refusal, abort, lingering close),
 * held answers and streams (plain and chunked, ended or broken off, paced by the
 * client). The server runs its loop in a forked child; the test talks to it with plain
 * blocking sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "http.h"
#include "loop.h"

static int port;
static pid_t server_pid;

struct held {
	struct http_request *req;
	struct loop *loop;
};

static struct loop *srv_loop;

static void
answer_held(struct loop *l, void *arg)
{
	struct http_request *req = arg;
	http_respond(req, 200, NULL, 0, "late", 4);
}

static void
stream_more(struct loop *l, void *arg)
{
	struct http_request *req = arg;
	http_stream_write(req, "data: 2\n\n", 9);
	http_stream_end(req);
}

static void
chunked_more(struct loop *l, void *arg)
{
	struct http_request *req = arg;
	http_stream_write(req, "world", 5);
	http_stream_write(req, "", 0); /* must not end the answer early */
	http_stream_end(req);
}

static void
stream_break(struct loop *l, void *arg)
{
	http_stream_abort(arg);
}

/* /paced: 12 MiB (more than the socket and the 8 MiB output cap hold) written only as the client
 * takes it, never more than PACE_QUEUE queued; the last line says how often the drain callback ran.
 */
#define PACE_TOTAL (12u << 20)
#define PACE_QUEUE (128u << 10)
static size_t paced_sent;
static unsigned paced_drains;

static void
paced_fill(struct http_request *req)
{
	static char block[16384];
	memset(block, 'p', sizeof(block));
	while (paced_sent < PACE_TOTAL && http_stream_queued(req) < PACE_QUEUE) {
		if (http_stream_write(req, block, sizeof(block)) != 0)
			return;
		paced_sent += sizeof(block);
	}
	if (paced_sent >= PACE_TOTAL) {
		char tail[64];
		int n = snprintf(tail, sizeof(tail), "\ndrains=%u\n", paced_drains);
		http_stream_write(req, tail, (size_t)n);
		http_stream_end(req);
	}
}

static void
paced_drain(struct http_request *req, void *arg)
{
	paced_drains++;
	paced_fill(req);
}

/* Streamed bodies (http_server_set_body_hook): /upload* bodies go to a sink that counts
 * them, allows 64 KiB (the buffered limit is 1 KiB) and refuses any piece holding
 * "BAD"; /aborts says how often a sink was aborted. */
struct sink_state {
	size_t bytes;
};
static unsigned sink_aborts;

static int
sink_write(struct http_request *req, const char *data, size_t len, void *arg, const char **msg)
{
	struct sink_state *st = arg;
	if (memmem(data, len, "BAD", 3) != NULL) {
		*msg = "bad bytes in the body";
		return -1;
	}
	if (memmem(data, len, "FULL", 4) != NULL) {
		*msg = "cannot store the body";
		return AL_E_IO;
	}
	st->bytes += len;
	return 0;
}

static void
sink_abort(struct http_request *req, void *arg)
{
	sink_aborts++;
	free(arg);
}

static bool
body_hook(struct http_request *req, struct http_body_sink *sink, void *arg)
{
	if (strncmp(req->path, "/upload", 7) != 0)
		return false;
	*sink = (struct http_body_sink){.max_bytes = 65536,
	                                .write = sink_write,
	                                .abort = sink_abort,
	                                .arg = calloc(1, sizeof(struct sink_state))};
	return true;
}

static void
handler(struct http_request *req, void *arg)
{
	char body[512];
	if (strcmp(req->path, "/upload") == 0) {
		struct sink_state *st = req->sink_arg;
		req->sink_arg = NULL; /* claimed */
		int n = snprintf(body, sizeof(body), "streamed %zu buffered %zu",
		                 st ? st->bytes : 0, req->body.len);
		free(st);
		http_respond(req, 200, NULL, 0, body, (size_t)n);
		return;
	}
	if (strcmp(req->path, "/aborts") == 0) {
		int n = snprintf(body, sizeof(body), "aborts=%u", sink_aborts);
		http_respond(req, 200, NULL, 0, body, (size_t)n);
		return;
	}
	if (strcmp(req->path, "/chunked") == 0) {
		http_stream_start_chunked(req, 200, NULL, 0);
		http_stream_write(req, "hello", 5);
		loop_timer_add(srv_loop, 20, chunked_more, req);
		return;
	}
	if (strcmp(req->path, "/broken-chunked") == 0 || strcmp(req->path, "/broken-plain") == 0) {
		if (strcmp(req->path, "/broken-chunked") == 0)
			http_stream_start_chunked(req, 200, NULL, 0);
		else
			http_stream_start(req, 200, NULL, 0);
		http_stream_write(req, "part", 4);
		loop_timer_add(srv_loop, 50, stream_break, req);
		return;
	}
	if (strcmp(req->path, "/paced") == 0) {
		paced_sent = 0;
		paced_drains = 0;
		http_stream_start(req, 200, NULL, 0);
		http_stream_on_drain(req, paced_drain, NULL);
		paced_fill(req);
		return;
	}
	if (strcmp(req->path, "/hold") == 0) {
		loop_timer_add(srv_loop, 50, answer_held, req);
		return;
	}
	if (strcmp(req->path, "/stream") == 0) {
		struct http_header h[] = {{"content-type", "text/event-stream"}};
		http_stream_start(req, 200, h, 1);
		http_stream_write(req, "data: 1\n\n", 9);
		loop_timer_add(srv_loop, 20, stream_more, req);
		return;
	}
	int n = snprintf(body, sizeof(body), "%s %s q=%s len=%zu", req->method, req->path,
	                 req->query, req->body.len);
	http_respond(req, 200, NULL, 0, body, (size_t)n);
}

static int
start_server(void **state)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	server_pid = fork();
	if (server_pid == 0) {
		struct http_limits lim = {.max_header_bytes = 4096,
		                          .max_body_bytes = 1024,
		                          .header_timeout_ms = 300,
		                          .body_timeout_ms = 300,
		                          .idle_timeout_ms = 2000};
		signal(SIGPIPE, SIG_IGN);
		srv_loop = loop_new();
		struct http_server *s = http_server_new(srv_loop, &lim, handler, NULL);
		http_server_set_body_hook(s, body_hook, NULL);
		int bound = 0;
		if (http_server_listen(s, "127.0.0.1:0", NULL, &bound) != 0)
			_exit(1);
		if (write(p[1], &bound, sizeof(bound)) != sizeof(bound))
			_exit(1);
		loop_run(srv_loop);
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &port, sizeof(port)), (ssize_t)sizeof(port));
	close(p[0]);
	return 0;
}

static int
stop_server(void **state)
{
	kill(server_pid, SIGKILL);
	waitpid(server_pid, NULL, 0);
	return 0;
}

/* Connects to the server; rcvbuf > 0 sets a receive buffer first (before connect: it
 * sizes the TCP window). */
static int
dial_rcvbuf(int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static int
dial(void)
{
	return dial_rcvbuf(0);
}

static void
send_all(int fd, const char *s, size_t n)
{
	assert_int_equal(write(fd, s, n), (ssize_t)n);
}

/* Reads until `needle` has appeared `count` times, or EOF; returns what was read. */
static char *
read_until(int fd, const char *needle, int count)
{
	static char buf[65536];
	size_t n = 0;
	buf[0] = '\0';
	for (;;) {
		int seen = 0;
		for (char *p = buf; (p = strstr(p, needle)) != NULL; p++)
			seen++;
		if (seen >= count)
			break;
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
	}
	buf[n] = '\0';
	return buf;
}

static void
test_keepalive_and_pipelining(void **state)
{
	int fd = dial();
	const char req[] = "GET /a?x=1 HTTP/1.1\r\nHost: t\r\n\r\n"
	                   "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc";
	send_all(fd, req, sizeof(req) - 1);
	char *r = read_until(fd, "HTTP/1.1 200", 2);
	assert_non_null(strstr(r, "GET /a q=x=1 len=0"));
	assert_non_null(strstr(r, "POST /b q= len=3"));
	/* answers come back in request order */
	assert_true(strstr(r, "GET /a") < strstr(r, "POST /b"));
	close(fd);
}

static void
test_body_too_large(void **state)
{
	int fd = dial();
	const char req[] = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n";
	send_all(fd, req, sizeof(req) - 1);
	char *r = read_until(fd, "\r\n\r\n", 1);
	assert_non_null(strstr(r, "HTTP/1.1 413"));
	/* answered by the HTTP layer, still with a request-id like every answer */
	assert_non_null(strstr(r, "request-id: req_"));
	assert_non_null(strstr(r, "\"request_id\":\"req_"));
	close(fd);
}

static unsigned
aborts_now(void)
{
	int fd = dial();
	const char req[] = "GET /aborts HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	send_all(fd, req, sizeof(req) - 1);
	char *r = read_until(fd, "no such text: read to EOF", 1); /* Connection: close */
	const char *a = strstr(r, "aborts=");
	unsigned n = a ? (unsigned)strtoul(a + 7, NULL, 10) : 9999;
	close(fd);
	return n;
}

/* A body over the buffered limit reaches the sink whole, not req->body; the sink's own
 * limit answers 413; its refusal answers 400 with its message; a client that leaves
 * mid-body, and a handler that leaves the sink unclaimed, get it aborted. */
static void
test_streamed_body(void **state)
{
	static char big[10000];
	memset(big, 'x', sizeof(big));
	int fd = dial();
	const char head[] = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\n";
	send_all(fd, head, sizeof(head) - 1);
	send_all(fd, big, sizeof(big));
	char *r = read_until(fd, "buffered", 1);
	assert_non_null(strstr(r, "HTTP/1.1 200"));
	assert_non_null(strstr(r, "streamed 10000 buffered 0"));
	close(fd);

	fd = dial();
	const char chunked[] =
	    "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n3\r\nBAD\r\n0\r\n\r\n";
	send_all(fd, chunked, sizeof(chunked) - 1);
	r = read_until(fd, "}", 1);
	assert_non_null(strstr(r, "HTTP/1.1 400"));
	assert_non_null(strstr(r, "bad bytes in the body"));
	close(fd);

	/* a sink that cannot store (disk full) is the server's failure, not a bad request */
	fd = dial();
	const char full[] = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\nabcdFULL";
	send_all(fd, full, sizeof(full) - 1);
	r = read_until(fd, "}", 1);
	assert_non_null(strstr(r, "HTTP/1.1 500"));
	assert_non_null(strstr(r, "\"api_error\""));
	assert_non_null(strstr(r, "cannot store the body"));
	close(fd);

	unsigned before = aborts_now();
	fd = dial();
	const char part[] = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 9000\r\n\r\nabc";
	send_all(fd, part, sizeof(part) - 1);
	usleep(50000);
	close(fd); /* gone mid-body */
	usleep(50000);
	assert_int_equal(aborts_now(), before + 1);
}

/* Refused at the head (Content-Length over the sink's limit) while the client goes on
 * sending 8 MiB, more than the socket buffers hold: the server drains the body, so every
 * write succeeds and the client reads the 413 rather than a reset. */
static void
test_streamed_too_large_lingers(void **state)
{
	const size_t total = 8u << 20;
	static char block[65536];
	memset(block, 'y', sizeof(block));
	int fd = dial();
	char head[128];
	int n = snprintf(head, sizeof(head),
	                 "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", total);
	send_all(fd, head, (size_t)n);
	for (size_t sent = 0; sent < total; sent += sizeof(block))
		assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	char *r = read_until(fd, "\r\n\r\n", 1);
	assert_non_null(strstr(r, "HTTP/1.1 413"));
	close(fd);
}

static void
test_header_too_large(void **state)
{
	int fd = dial();
	char big[6000];
	memset(big, 'a', sizeof(big));
	send_all(fd, "GET / HTTP/1.1\r\nX-Big: ", 23);
	send_all(fd, big, sizeof(big));
	char *r = read_until(fd, "\r\n\r\n", 1);
	assert_non_null(strstr(r, "HTTP/1.1 431"));
	close(fd);
}

static void
test_malformed(void **state)
{
	int fd = dial();
	send_all(fd, "NOT HTTP AT ALL\r\n\r\n", 19);
	char *r = read_until(fd, "\r\n\r\n", 1);
	assert_non_null(strstr(r, "HTTP/1.1 400"));
	close(fd);
}

static void
test_slowloris_gets_408(void **state)
{
	int fd = dial();
	send_all(fd, "GET / HTTP/1.1\r\nHost:", 21);
	/* never finish the head: the server must answer and close on its own */
	char *r = read_until(fd, "\r\n\r\n", 1);
	assert_non_null(strstr(r, "HTTP/1.1 408"));
	char c;
	assert_true(read(fd, &c, 1) <= 0);
	close(fd);
}

static void
test_held_and_stream(void **state)
{
	int fd = dial();
	send_all(fd, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n", 31);
	char *r = read_until(fd, "late", 1);
	assert_non_null(strstr(r, "HTTP/1.1 200"));
	assert_non_null(strstr(r, "late"));
	send_all(fd, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n", 33);
	r = read_until(fd, "data: 2", 1);
	assert_non_null(strstr(r, "data: 1\n\ndata: 2\n\n"));
	assert_null(strstr(r, "content-length"));
	close(fd);
}

/* Chunked framing; the connection carries the next request after the last chunk. */
static void
test_chunked_stream(void **state)
{
	int fd = dial();
	/* two requests, the second pipelined: the last chunk ends the first answer and the
	 * connection carries the second */
	const char two[] =
	    "GET /chunked HTTP/1.1\r\nHost: t\r\n\r\nGET /a HTTP/1.1\r\nHost: t\r\n\r\n";
	send_all(fd, two, sizeof(two) - 1);
	char *r = read_until(fd, "GET /a q= len=0", 1);
	assert_non_null(strstr(r, "transfer-encoding: chunked\r\n"));
	assert_non_null(strstr(r, "connection: keep-alive\r\n"));
	assert_non_null(strstr(r, "\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\nHTTP/1.1 200"));
	assert_non_null(strstr(r, "GET /a q= len=0"));
	close(fd);
	/* HTTP/1.0 knows no chunks: the same answer, close-delimited */
	fd = dial();
	send_all(fd, "GET /chunked HTTP/1.0\r\n\r\n", 26);
	r = read_until(fd, "no such needle", 1); /* to EOF */
	assert_null(strstr(r, "transfer-encoding"));
	assert_non_null(strstr(r, "\r\n\r\nhelloworld"));
	close(fd);
}

/* A chunked answer that breaks off ends without its last chunk (a plain FIN). */
static void
test_chunked_abort(void **state)
{
	int fd = dial();
	send_all(fd, "GET /broken-chunked HTTP/1.1\r\nHost: t\r\n\r\n", 41);
	char *r = read_until(fd, "no such needle", 1); /* to EOF */
	assert_non_null(strstr(r, "\r\n\r\n4\r\npart\r\n"));
	assert_null(strstr(r, "0\r\n\r\n"));
	close(fd);
}

/* A close-delimited answer that breaks off ends with a reset, not a clean close. */
static void
test_plain_abort_resets(void **state)
{
	int fd = dial();
	send_all(fd, "GET /broken-plain HTTP/1.1\r\nHost: t\r\n\r\n", 39);
	char buf[4096];
	ssize_t r;
	size_t got = 0;
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		got += (size_t)r;
	assert_true(got > 0);
	assert_int_equal(r, -1);
	assert_int_equal(errno, ECONNRESET);
	close(fd);
}

/* The drain callback paces a large answer to a reader with a small receive buffer:
 * every byte arrives, never more than PACE_QUEUE queued in the server. */
static void
test_stream_drain_paces(void **state)
{
	int fd = dial_rcvbuf(8192);
	send_all(fd, "GET /paced HTTP/1.1\r\nHost: t\r\n\r\n", 32);
	static char all[PACE_TOTAL + 4096];
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(all) - 1) {
		size_t room = sizeof(all) - 1 - n;
		if ((r = read(fd, all + n, room < 4096 ? room : 4096)) <= 0)
			break;
		n += (size_t)r;
		if (n % (1024 * 1024) < 4096)
			usleep(2000); /* a reader that pauses now and then */
	}
	all[n] = '\0';
	char *body = strstr(all, "\r\n\r\n");
	assert_non_null(body);
	body += 4;
	size_t ps = strspn(body, "p");
	assert_int_equal(ps, PACE_TOTAL);
	assert_int_equal(strncmp(body + ps, "\ndrains=", 8), 0);
	unsigned long drains = strtoul(body + ps + 8, NULL, 10);
	/* Past what the kernel buffers, only drain callbacks wrote: without them the answer
	 * would stop short and the read time out. */
	assert_true(drains >= 1);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keepalive_and_pipelining),
	    cmocka_unit_test(test_body_too_large),
	    cmocka_unit_test(test_streamed_body),
	    cmocka_unit_test(test_streamed_too_large_lingers),
	    cmocka_unit_test(test_header_too_large),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_slowloris_gets_408),
	    cmocka_unit_test(test_held_and_stream),
	    cmocka_unit_test(test_chunked_stream),
	    cmocka_unit_test(test_chunked_abort),
	    cmocka_unit_test(test_plain_abort_resets),
	    cmocka_unit_test(test_stream_drain_paces),
	};
	return cmocka_run_group_tests(tests, start_server, stop_server);
}
