/* Fuzzes request routing, credential checks, JSON bodies and every handler of the
 * real server (SQLite in a temp dir). Input: first line "METHOD /path?query", the
 * rest is the JSON body. "{env}", "{agent}", "{session}", "{memstore}" and "{memory}"
 * in the first line are replaced by ids of objects created at start-up, so the fuzzer reaches
 * handlers behind the not-found checks. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "fuzz.h"
#include "server.h"
#include "xalloc.h"

static struct server srv;
static char env_id[80], agent_id[80], session_id[80], store_id[80], memory_id[80];

/* Sends one raw request through a socketpair and returns the response (static). */
static const char *
roundtrip(const char *req, size_t len)
{
	static char resp[1 << 16];
	size_t got = 0, off = 0;
	int sv[2];
	resp[0] = '\0';
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return resp;
	if (http_server_adopt(srv.http, sv[0], "fuzz") != 0) {
		close(sv[0]);
		close(sv[1]);
		return resp;
	}
	for (int i = 0; i < 400; i++) {
		if (off < len) {
			ssize_t w = send(sv[1], req + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				break;
		}
		loop_once(srv.loop, off < len ? 0 : 1);
		ssize_t r = recv(sv[1], resp + got, sizeof(resp) - 1 - got, MSG_DONTWAIT);
		if (r > 0) {
			got += (size_t)r;
			resp[got] = '\0';
			/* one complete answer is all we wait for */
			char *hdr_end = strstr(resp, "\r\n\r\n");
			char *cl = strstr(resp, "content-length: ");
			if (hdr_end && cl && cl < hdr_end) {
				size_t want = (size_t)strtoul(cl + 16, NULL, 10);
				if (got >= (size_t)(hdr_end + 4 - resp) + want)
					break;
			}
			if (got == sizeof(resp) - 1)
				break;
		}
	}
	close(sv[1]);
	for (int i = 0; i < 20 && http_server_conn_count(srv.http) > 0; i++)
		loop_once(srv.loop, 0);
	return resp;
}

static const char *
request(const char *method, const char *path, const char *body)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	buf_addf(&b,
	         "%s %s HTTP/1.1\r\nHost: fuzz\r\nx-api-key: fuzzkey\r\n"
	         "content-type: application/json\r\ncontent-length: %zu\r\n\r\n%s",
	         method, path, strlen(body), body);
	const char *r = roundtrip(b.data, b.len);
	buf_free(&b);
	return r;
}

static void
grab_id(const char *resp, const char *prefix, char *out, size_t outlen)
{
	const char *p = strstr(resp, prefix);
	size_t n = 0;
	out[0] = '\0';
	if (p == NULL)
		return;
	while (p[n] && p[n] != '"' && n + 1 < outlen)
		n++;
	memcpy(out, p, n);
	out[n] = '\0';
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char tmpl[] = "/tmp/airlock-fuzz-api-XXXXXX";
	if (mkdtemp(tmpl) == NULL)
		abort();
	srv.cfg.data_dir = xstrdup(tmpl);
	srv.cfg.api_key = xstrdup("fuzzkey");
	srv.cfg.listen = xstrdup("127.0.0.1:0");
	srv.cfg.model_base_url = xstrdup("http://127.0.0.1:1");
	srv.cfg.lease_ttl_s = 90;
	srv.cfg.sse_ping_ms = 15000;
	if (server_open(&srv) != 0)
		abort();
	grab_id(request("POST", "/v1/environments",
	                "{\"name\":\"fuzz\",\"config\":{\"type\":\"self_hosted\"}}"),
	        "env_", env_id, sizeof(env_id));
	grab_id(request("POST", "/v1/agents",
	                "{\"name\":\"a\",\"model\":\"claude-x\",\"tools\":[{\"type\":"
	                "\"agent_toolset_20260401\"}]}"),
	        "agent_", agent_id, sizeof(agent_id));
	char body[256];
	snprintf(body, sizeof(body), "{\"agent\":\"%s\",\"environment_id\":\"%s\"}", agent_id,
	         env_id);
	grab_id(request("POST", "/v1/sessions", body), "sesn_", session_id, sizeof(session_id));
	grab_id(request("POST", "/v1/memory_stores", "{\"name\":\"fuzz\"}"), "memstore_", store_id,
	        sizeof(store_id));
	char path[160];
	snprintf(path, sizeof(path), "/v1/memory_stores/%s/memories", store_id);
	grab_id(request("POST", path, "{\"path\":\"/a/b.md\",\"content\":\"x\"}"), "mem_",
	        memory_id, sizeof(memory_id));
	return 0;
}

static void
substitute(struct buf *out, const char *line, size_t len)
{
	static const struct {
		const char *name;
		const char *value;
	} subs[] = {{"{env}", env_id},
	            {"{agent}", agent_id},
	            {"{session}", session_id},
	            {"{memstore}", store_id},
	            {"{memory}", memory_id}};
	for (size_t i = 0; i < len;) {
		bool done = false;
		for (size_t k = 0; k < sizeof(subs) / sizeof(subs[0]); k++) {
			size_t n = strlen(subs[k].name);
			if (len - i >= n && memcmp(line + i, subs[k].name, n) == 0) {
				buf_add_str(out, subs[k].value);
				i += n;
				done = true;
				break;
			}
		}
		if (!done) {
			buf_add(out, line + i, 1);
			i++;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data;
	const char *nl = memchr(d, '\n', size);
	size_t line_len = nl ? (size_t)(nl - d) : size;
	const char *body = nl ? nl + 1 : "";
	size_t body_len = nl ? size - line_len - 1 : 0;
	struct buf line, req;
	if (line_len > 4096 || memchr(d, '\r', line_len))
		return 0;
	buf_init(&line, 1 << 16);
	substitute(&line, d, line_len);
	buf_init(&req, 1 << 22);
	/* the request line is used as is: the HTTP layer must cope with junk there too */
	buf_addf(&req,
	         "%s HTTP/1.1\r\nHost: fuzz\r\nx-api-key: fuzzkey\r\n"
	         "content-type: application/json\r\ncontent-length: %zu\r\n\r\n",
	         line.data ? line.data : "", body_len);
	buf_add(&req, body, body_len);
	roundtrip(req.data, req.len);
	buf_free(&line);
	buf_free(&req);
	return 0;
}
