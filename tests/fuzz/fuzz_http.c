/* Fuzzes the HTTP/1.1 server (llhttp + our framing, limits and pipelining): the input
 * is written raw into one end of a socketpair served by http_server_adopt(). The
 * handler answers, holds or streams (plain, chunked with keep-alive, broken off)
 * depending on the path, so every response mode meets arbitrary input. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "http.h"
#include "loop.h"

static struct loop *loop;
static struct http_server *srv;

static void
later(struct loop *l, void *arg)
{
	http_respond(arg, 200, NULL, 0, "held", 4);
}

static void
handler(struct http_request *req, void *arg)
{
	if (strncmp(req->path, "/hold", 5) == 0) {
		struct loop_timer *t = loop_timer_add(loop, 0, later, req);
		(void)t;
		return;
	}
	if (strncmp(req->path, "/stream", 7) == 0) {
		http_stream_start(req, 200, NULL, 0);
		http_stream_write(req, "data: x\n\n", 9);
		http_stream_end(req);
		return;
	}
	/* chunked: ends with the last chunk and keeps the connection for what follows */
	if (strncmp(req->path, "/chunked", 8) == 0) {
		http_stream_start_chunked(req, 200, NULL, 0);
		http_stream_write(req, req->path, strlen(req->path));
		http_stream_write(req, "", 0);
		if (strncmp(req->path, "/chunked-abort", 14) == 0)
			http_stream_abort(req);
		else
			http_stream_end(req);
		return;
	}
	struct http_header h[] = {{"x-echo", http_request_header(req, "x-echo")
	                                         ? http_request_header(req, "x-echo")
	                                         : "none"}};
	http_respond(req, 200, h, 1, req->body.data ? req->body.data : "", req->body.len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	if (loop == NULL) {
		struct http_limits lim = {.max_header_bytes = 8192, .max_body_bytes = 65536};
		loop = loop_new();
		srv = http_server_new(loop, &lim, handler, NULL);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return 0;
	if (http_server_adopt(srv, sv[0], "fuzz") != 0) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	size_t off = 0;
	char sink[65536];
	/* Interleave writing and serving so inputs larger than the socket buffer flow. */
	for (int i = 0; i < 1000 && (off < size || http_server_conn_count(srv) > 0); i++) {
		if (off < size) {
			ssize_t w =
			    send(sv[1], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				off = size;
			if (off == size)
				shutdown(sv[1], SHUT_WR);
		}
		loop_once(loop, 0);
		while (recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
	}
	close(sv[1]);
	/* Let the server notice the close and free the connection. */
	for (int i = 0; i < 10 && http_server_conn_count(srv) > 0; i++)
		loop_once(loop, 0);
	return 0;
}
