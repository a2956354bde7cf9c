/* `airlock mock-model`: a SCRIPTED STAND-IN for a model provider, for tests only.
 * It serves the Anthropic Messages API (POST /v1/messages, streaming and not) by
 * replaying a script of assistant turns; it never runs a model. See docs/mockmodel.md. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "script.h"
#include "util.h"
#include "xalloc.h"

#define MM_MAX_RECORDED 1000

int mockmodel_main(int argc, char **argv);

struct mm {
	struct loop *loop;
	struct http_server *http;
	struct mm_script *script;
	json_t *requests; /* recorded request summaries, served on GET /_mock/requests */
	size_t served;
};

/* A held answer: a delayed reply, or a stream paced by chunk_delay_ms. */
struct pending {
	struct mm *mm;
	struct http_request *req;
	struct loop_timer *timer;
	const json_t *turn; /* borrowed from the script */
	json_t *content;
	char *model;
	char request_id[48];
	bool stream;
	bool started;
	struct mm_frames frames;
	size_t next;
	uint64_t chunk_delay_ms;
};

static void
mm_usage(FILE *f)
{
	fprintf(f,
	        "usage: airlock mock-model --script FILE [options]\n"
	        "\n"
	        "A SCRIPTED STAND-IN for a model provider, for tests. It speaks the Anthropic\n"
	        "Messages API (POST /v1/messages, stream true or false) and replays the assistant\n"
	        "turns of FILE in order; it runs no model and understands nothing it is sent.\n"
	        "\n"
	        "  --listen ADDR:PORT     listen address (default 127.0.0.1:0: any free port)\n"
	        "  --script FILE          turns, JSON or YAML (.yaml/.yml); see docs/mockmodel.md\n"
	        "  --port-file FILE       write the bound port (decimal, newline) to FILE\n"
	        "  --log-format text|json (default text)\n"
	        "  --log-level debug|info|warn|error\n"
	        "\n"
	        "Also serves GET /_mock/requests: the requests received so far, for assertions.\n"
	        "The log line 'listening port=N' on stderr gives the bound port.\n");
}

static void
header_set(struct http_header *h, size_t *n, const char *name, const char *value)
{
	h[*n].name = name;
	h[*n].value = value;
	(*n)++;
}

static void
reply_json(struct http_request *req, int status, const char *request_id, json_t *body,
           const struct http_header *extra, size_t nextra)
{
	struct http_header h[8];
	size_t n = 0;
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	header_set(h, &n, "content-type", "application/json");
	if (request_id)
		header_set(h, &n, "request-id", request_id);
	for (size_t i = 0; i < nextra && n < ARRAY_LEN(h); i++)
		h[n++] = extra[i];
	http_respond(req, status, h, n, s ? s : "{}", s ? strlen(s) : 2);
	free(s);
}

static void
reply_error(struct http_request *req, int status, const char *request_id, const char *type,
            const char *message)
{
	json_t *e = json_pack("{s:s, s:s}", "type", type, "message", message);
	json_t *body = mm_render_error_body(e, request_id);
	struct http_header h[] = {{"x-should-retry", "false"}};
	json_decref(e);
	reply_json(req, status, request_id, body, h, 1);
}

static void
pending_free(struct pending *p)
{
	if (p == NULL)
		return;
	loop_timer_cancel(p->mm->loop, p->timer);
	json_decref(p->content);
	free(p->model);
	mm_frames_free(&p->frames);
	free(p);
}

static void
on_pending_close(struct http_request *req, void *arg)
{
	struct pending *p = arg;
	(void)req;
	/* The client left (an interrupted agent turn): drop the rest of the answer. */
	log_info("client went away mid-answer", "request_id", p->request_id);
	pending_free(p);
}

static void
send_scripted_error(struct pending *p)
{
	const json_t *e = json_object_get(p->turn, "error");
	int status = (int)json_integer_value(json_object_get(e, "status"));
	struct http_header h[4];
	size_t n = 0;
	char ra[24], ram[24];
	const json_t *v;
	if ((v = json_object_get(e, "retry_after")) != NULL) {
		snprintf(ra, sizeof(ra), "%lld", (long long)json_integer_value(v));
		header_set(h, &n, "retry-after", ra);
	}
	if ((v = json_object_get(e, "retry_after_ms")) != NULL) {
		snprintf(ram, sizeof(ram), "%lld", (long long)json_integer_value(v));
		header_set(h, &n, "retry-after-ms", ram);
	}
	if ((v = json_object_get(e, "should_retry")) != NULL)
		header_set(h, &n, "x-should-retry", json_is_true(v) ? "true" : "false");
	reply_json(p->req, status, p->request_id, mm_render_error_body(e, p->request_id), h, n);
}

static void stream_step(struct loop *l, void *arg);

/* Writes frames until one needs a delay; ends the stream after the last one. */
static void
stream_pump(struct pending *p)
{
	while (p->next < p->frames.n) {
		const char *f = p->frames.v[p->next++];
		if (http_stream_write(p->req, f, strlen(f)) != 0) {
			/* Peer gone: the http layer calls on_pending_close soon. */
			return;
		}
		if (p->chunk_delay_ms && p->next < p->frames.n) {
			p->timer = loop_timer_add(p->mm->loop, p->chunk_delay_ms, stream_step, p);
			return;
		}
	}
	http_stream_end(p->req);
	pending_free(p);
}

static void
stream_step(struct loop *l, void *arg)
{
	struct pending *p = arg;
	(void)l;
	p->timer = NULL;
	stream_pump(p);
}

/* Produces the whole answer for p; frees p unless a paced stream keeps it. */
static void
answer(struct pending *p)
{
	const json_t *e = json_object_get(p->turn, "error");
	char *msg_id = id_new("msg_");

	if (e && !(p->stream && json_is_true(json_object_get(e, "mid_stream")))) {
		send_scripted_error(p);
		pending_free(p);
		goto out;
	}
	if (!p->stream) {
		reply_json(p->req, 200, p->request_id,
		           mm_render_message(p->turn, p->content, msg_id, p->model), NULL, 0);
		pending_free(p);
		goto out;
	}
	if (e)
		mm_render_stream_error(p->turn, msg_id, p->model, &p->frames);
	else
		mm_render_stream(p->turn, p->content, msg_id, p->model, &p->frames);
	struct http_header h[] = {{"content-type", "text/event-stream"},
	                          {"cache-control", "no-cache"},
	                          {"request-id", p->request_id}};
	http_stream_start(p->req, 200, h, ARRAY_LEN(h));
	p->started = true;
	stream_pump(p);
out:
	free(msg_id);
}

static void
delayed_answer(struct loop *l, void *arg)
{
	struct pending *p = arg;
	(void)l;
	p->timer = NULL;
	answer(p);
}

static void
record_request(struct mm *mm, struct http_request *req, const json_t *body, json_t *turn_index)
{
	const char *auth = http_request_header(req, "authorization");
	const char *ver = http_request_header(req, "anthropic-version");
	/* Only whether a key came, never the key: the mock may be pointed at by a server
	 * that holds a real one. */
	bool has_key = http_request_header(req, "x-api-key") != NULL ||
	               (auth && strncmp(auth, "Bearer ", 7) == 0);
	if (json_array_size(mm->requests) >= MM_MAX_RECORDED)
		json_array_remove(mm->requests, 0);
	json_array_append_new(mm->requests,
	                      json_pack("{s:O, s:b, s:s?, s:o}", "body", body, "has_api_key",
	                                has_key, "anthropic_version", ver, "turn", turn_index));
}

static void
handle_messages(struct mm *mm, struct http_request *req, const char *request_id)
{
	json_error_t je;
	json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &je);
	struct pending *p = NULL;
	size_t idx = 0;

	if (!json_is_object(body)) {
		reply_error(req, 400, request_id, "invalid_request_error",
		            "mock-model: body must be a JSON object");
		goto out;
	}
	const json_t *model = json_object_get(body, "model"),
	             *msgs = json_object_get(body, "messages"),
	             *mt = json_object_get(body, "max_tokens"),
	             *st = json_object_get(body, "stream");
	if (!json_is_string(model) || !json_is_integer(mt) || json_integer_value(mt) < 1 ||
	    !json_is_array(msgs) || json_array_size(msgs) == 0 || (st && !json_is_boolean(st))) {
		record_request(mm, req, body, json_null());
		reply_error(req, 400, request_id, "invalid_request_error",
		            "mock-model: model (string), max_tokens (>= 1) and a non-empty "
		            "messages list are required");
		goto out;
	}
	const json_t *turn = mm_script_pick(mm->script, body, &idx);
	record_request(mm, req, body, turn ? json_integer((json_int_t)idx) : json_null());
	if (turn == NULL) {
		log_warn("script exhausted", "request_id", request_id);
		reply_error(req, 500, request_id, "api_error",
		            "mock-model: script exhausted: no turn left for this request");
		goto out;
	}
	mm->served++;
	p = xcalloc(1, sizeof(*p));
	p->mm = mm;
	p->req = req;
	p->turn = turn;
	p->stream = json_is_true(st);
	const char *mdl = json_string_value(json_object_get(turn, "model"));
	p->model = xstrdup(mdl ? mdl : json_string_value(model));
	p->content = mm_turn_content(turn);
	snprintf(p->request_id, sizeof(p->request_id), "%s", request_id);
	p->chunk_delay_ms = (uint64_t)json_integer_value(json_object_get(turn, "chunk_delay_ms"));
	char turn_s[24];
	snprintf(turn_s, sizeof(turn_s), "%zu", idx);
	log_info("scripted turn", "request_id", request_id, "turn", turn_s, "stream",
	         p->stream ? "true" : "false");
	uint64_t delay = (uint64_t)json_integer_value(json_object_get(turn, "delay_ms"));
	http_request_on_close(req, on_pending_close, p);
	if (delay) {
		p->timer = loop_timer_add(mm->loop, delay, delayed_answer, p);
		goto out;
	}
	answer(p);
out:
	json_decref(body);
}

static void
handle(struct http_request *req, void *arg)
{
	struct mm *mm = arg;
	char *rid = id_new("req_");
	char request_id[48];
	snprintf(request_id, sizeof(request_id), "%s", rid);
	free(rid);

	if (strcmp(req->path, "/v1/messages") == 0 && strcmp(req->method, "POST") == 0) {
		handle_messages(mm, req, request_id);
	} else if (strcmp(req->path, "/_mock/requests") == 0 && strcmp(req->method, "GET") == 0) {
		reply_json(req, 200, request_id,
		           json_pack("{s:O, s:I}", "requests", mm->requests, "served",
		                     (json_int_t)mm->served),
		           NULL, 0);
	} else {
		reply_error(req, 404, request_id, "not_found_error",
		            "mock-model serves only POST /v1/messages and GET /_mock/requests");
	}
}

static void
on_signal(struct loop *l, int signo, void *arg)
{
	struct mm *mm = arg;
	log_info("shutting down", "signal", signo == SIGTERM ? "TERM" : "INT");
	http_server_shutdown(mm->http);
	loop_stop(l);
}

/* The one convention of every role (docs/server/overview.md "Signals"): HUP reloads what
 * can be, and says so. A script being served cannot be swapped under its turns. */
static void
on_hup(struct loop *l, int signo, void *arg)
{
	log_info("SIGHUP: nothing to reload (restart to change the script)");
}

static int
write_port_file(const char *path, int port)
{
	char tmp[4096], line[16];
	int r = 0;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return AL_E_INVAL;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int n = snprintf(line, sizeof(line), "%d\n", port);
	if (write(fd, line, (size_t)n) != n)
		r = AL_E_IO;
	close(fd);
	/* rename: a reader polling for the file never sees it half written */
	if (r == 0 && rename(tmp, path) != 0)
		r = -errno;
	return r;
}

int
mockmodel_main(int argc, char **argv)
{
	struct mm mm;
	const char *listen_addr = "127.0.0.1:0", *script_path = NULL, *port_file = NULL;
	enum log_format fmt = LOG_FMT_TEXT;
	enum log_level lvl = LOG_LVL_INFO;
	int rc = 1, r, port = 0, ch;
	char err[512];
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"script", required_argument, NULL, 's'},
	    {"port-file", required_argument, NULL, 'p'},
	    {"log-format", required_argument, NULL, 'f'},
	    {"log-level", required_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};

	memset(&mm, 0, sizeof(mm));
	optind = 1;
	opterr = 0; /* cli_option_error words it */
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			listen_addr = optarg;
			break;
		case 's':
			script_path = optarg;
			break;
		case 'p':
			port_file = optarg;
			break;
		case 'f':
			if (log_parse_format(optarg, &fmt) != 0) {
				fprintf(stderr, "airlock mock-model: --log-format: text or json\n");
				goto out;
			}
			break;
		case 'v':
			if (log_parse_level(optarg, &lvl) != 0) {
				fprintf(stderr,
				        "airlock mock-model: --log-level: debug|info|warn|error\n");
				goto out;
			}
			break;
		case 'h':
			mm_usage(stdout);
			rc = 0;
			goto out;
		default:
			rc = cli_option_error("mock-model", ch, argc, argv);
			goto out;
		}
	}
	if (script_path == NULL) {
		fprintf(stderr, "airlock mock-model: --script FILE is required\n");
		mm_usage(stderr);
		rc = 2;
		goto out;
	}
	log_setup(fmt, lvl, "mock-model");
	if (mm_script_load(script_path, &mm.script, err, sizeof(err)) != 0) {
		fprintf(stderr, "airlock mock-model: %s\n", err);
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	mm.requests = json_array();
	mm.loop = loop_new();
	mm.http = http_server_new(mm.loop, NULL, handle, &mm);
	if ((r = http_server_listen(mm.http, listen_addr, NULL, &port)) != 0) {
		log_error("cannot listen", "addr", listen_addr, "error", al_strerror(r));
		goto out;
	}
	if (port_file && (r = write_port_file(port_file, port)) != 0) {
		log_error("cannot write port file", "path", port_file, "error", al_strerror(r));
		goto out;
	}
	loop_signal_add(mm.loop, SIGTERM, on_signal, &mm);
	loop_signal_add(mm.loop, SIGINT, on_signal, &mm);
	loop_signal_add(mm.loop, SIGHUP, on_hup, &mm);
	char port_s[16], nturns[16];
	snprintf(port_s, sizeof(port_s), "%d", port);
	snprintf(nturns, sizeof(nturns), "%zu", json_array_size(mm.script->turns));
	log_info("listening", "port", port_s, "addr", listen_addr, "turns", nturns, "note",
	         "scripted stand-in, not a model");
	loop_run(mm.loop);
	rc = 0;
out:
	if (mm.http)
		http_server_free(mm.http);
	loop_free(mm.loop);
	mm_script_free(mm.script);
	json_decref(mm.requests);
	return rc;
}
