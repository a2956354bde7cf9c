/* Fuzzes the native httpc transport's response side (llhttp in response mode, our
 * header collection and limits, body framing, 1xx, keep-alive decisions): a loopback
 * "server" answers one request with the input bytes, written in pieces, then closes.
 * First input byte: bit 0 streams the body through on_data, bit 1 sends HEAD, the rest
 * sets the piece size, so split reads are fuzzed too. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "httpc.h"
#include "loop.h"

static struct loop *loop;
static int lfd = -1;
static char url[64];

struct outcome {
	bool done;
	size_t seen;
};

static int
on_data(struct httpc_xfer *x, const char *p, size_t n, void *arg)
{
	struct outcome *o = arg;
	o->seen += n;
	(void)httpc_xfer_header(x, "content-type");
	return 0;
}

static int
on_head(struct httpc_xfer *x, int status, void *arg)
{
	(void)httpc_xfer_header(x, "x-a");
	return status == 299 ? 1 : 0; /* also exercise an abort from the head callback */
}

static void
on_done(struct httpc_xfer *x, const struct httpc_response *r, void *arg)
{
	struct outcome *o = arg;
	o->done = true;
	o->seen += r->body.len + (size_t)r->status;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (loop == NULL) {
		loop = loop_new();
		lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t al = sizeof(a);
		if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 8) != 0 ||
		    getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
			return 0;
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/r", ntohs(a.sin_port));
	}
	struct httpc_opts opts = {.transport = HTTPC_NATIVE};
	struct httpc *c = httpc_new(loop, &opts);
	struct outcome o = {0};
	struct httpc_request req = {
	    .url = url,
	    .method = (data[0] & 2) ? "HEAD" : "GET",
	    .timeout_ms = 5000,
	    .max_body = 4096,
	    .on_head = on_head,
	    .on_data = (data[0] & 1) ? on_data : NULL,
	    .on_done = on_done,
	    .arg = &o,
	};
	size_t piece = (size_t)(data[0] >> 2) * 7 + 1;
	data++, size--;
	if (httpc_start(c, &req, NULL) != 0)
		goto out;
	int s = -1;
	for (int i = 0; i < 100 && s < 0 && !o.done; i++) {
		loop_once(loop, 10);
		s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	}
	size_t off = 0;
	for (int i = 0; s >= 0 && off < size && !o.done && i < 100000; i++) {
		size_t n = size - off < piece ? size - off : piece;
		ssize_t w = send(s, data + off, n, MSG_NOSIGNAL);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN)
			break;
		loop_once(loop, 0);
	}
	if (s >= 0)
		close(s);
	for (int i = 0; i < 1000 && !o.done; i++)
		loop_once(loop, 10);
out:
	httpc_free(c);
	return 0;
}
