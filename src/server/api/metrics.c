/* GET /metrics: the API server's Prometheus exposition (text format 0.0.4), written by
 * hand. Request counters are kept here as requests end (api_call_free); everything
 * else is read at scrape time from the modules and the stores. See metrics.h and
 * docs/server/metrics.md. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "api.h"
#include "err.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "routes.h"
#include "server.h"
#include "stats_store.h"
#include "tunnel.h"
#include "util.h"
#include "work.h"
#include "xalloc.h"

/* Label values for route families: fixed here, so a client cannot mint series. */
enum family {
	FAM_PROBE,
	FAM_METRICS,
	FAM_CONSOLE,
	FAM_WELL_KNOWN,
	FAM_AGENTS,
	FAM_SESSIONS,
	FAM_EVENTS,
	FAM_EVENT_STREAM,
	FAM_ENVIRONMENTS,
	FAM_WORK,
	FAM_VAULTS,
	FAM_MEMORY_STORES,
	FAM_TUNNELS,
	FAM_TUNNEL_INGRESS,
	FAM_AUDIT_EVENTS,
	FAM_FILES,
	FAM_SKILLS,
	FAM_OTHER,
	FAM_UNMATCHED,
	FAM_N
};
static const char *const family_name[FAM_N] = {
    "probe",    "metrics",       "console",      "well_known",     "agents",
    "sessions", "events",        "event_stream", "environments",   "work",
    "vaults",   "memory_stores", "tunnels",      "tunnel_ingress", "audit_events",
    "files",    "skills",        "other",        "unmatched"};

/* "none": the client left before an answer went out. */
#define NCLASS 6
static const char *const class_name[NCLASS] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

/* Upper bounds in seconds. Long-polls (work) and streams (event_stream) end in the top
 * buckets by design; their family keeps them out of everyone else's. */
static const double bucket_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                   0.5,   1,      2.5,   5,    10,    30,   60};
#define NBUCKETS ARRAY_LEN(bucket_le)

/* At most this many environments get their own work series per scrape; the rest are
 * summed into environment_id="_other" (a label set must stay bounded). */
#define METRICS_MAX_ENVIRONMENTS 1000

struct family_stats {
	uint64_t requests[NCLASS];
	uint64_t bucket[NBUCKETS]; /* per bucket, not cumulative; above the last: count - sum */
	uint64_t count;
	double sum;
};

/* Calls the agent loop makes to the outside: the model provider (its one dependency,
 * so its answers and latency are what an operator watches first when sessions stall) and
 * MCP servers. Outcomes are fixed lists: a label value never comes from a peer. */
#define MAX_OUTCOMES 6
#define MAX_CALL_BUCKETS 12
struct call_kind {
	const char *total, *total_help; /* counter family */
	const char *hist, *hist_help;   /* histogram family */
	const char *outcomes[MAX_OUTCOMES];
	double le[MAX_CALL_BUCKETS];
	size_t noutcomes, nle;
};
enum { CALL_MODEL, CALL_MCP, CALL_N };
static const struct call_kind call_kinds[CALL_N] = {
    [CALL_MODEL] = {"airlock_model_requests_total",
                    "Model calls the agent loop made, by outcome (retryable_error: 429, 5xx, "
                    "overloaded, network; error: refused; cancelled: an interrupt, a deleted "
                    "session, the exit).",
                    "airlock_model_request_duration_seconds",
                    "Time from a model call going out to its end (the whole streamed answer), "
                    "any outcome.",
                    {"ok", "retryable_error", "error", "cancelled"},
                    {0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300},
                    4,
                    10},
    [CALL_MCP] = {"airlock_mcp_calls_total",
                  "MCP tools/call requests the agent loop made, by outcome (tool_error: the "
                  "tool answered is_error; rpc_error: a JSON-RPC error; connection, auth: the "
                  "server could not be reached or refused the credential; cancelled).",
                  "airlock_mcp_call_duration_seconds",
                  "Time from an MCP tools/call going out to its answer, any outcome.",
                  {"ok", "tool_error", "rpc_error", "connection", "auth", "cancelled"},
                  {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
                  6,
                  12},
};

struct call_stats {
	uint64_t calls[MAX_OUTCOMES];
	uint64_t bucket[MAX_CALL_BUCKETS];
	uint64_t count;
	double sum;
};

struct server_metrics {
	struct family_stats fam[FAM_N];
	struct call_stats calls[CALL_N];
	struct http_server *side; /* metrics.listen, NULL when not configured */
	time_t started;           /* wall clock, for process_start_time_seconds */
};

static enum family
family_of(const char *pattern)
{
	static const struct {
		const char *prefix;
		enum family f;
	} top[] = {
	    {"/v1/agents", FAM_AGENTS},
	    {"/v1/sessions", FAM_SESSIONS},
	    {"/v1/environments", FAM_ENVIRONMENTS},
	    {"/v1/vaults", FAM_VAULTS},
	    {"/v1/memory_stores", FAM_MEMORY_STORES},
	    {"/v1/tunnels", FAM_TUNNELS},
	    {"/v1/audit_events", FAM_AUDIT_EVENTS},
	    {"/v1/files", FAM_FILES},
	    {"/v1/skills", FAM_SKILLS},
	};
	if (pattern == NULL)
		return FAM_UNMATCHED;
	if (strcmp(pattern, "/healthz") == 0 || strcmp(pattern, "/readyz") == 0)
		return FAM_PROBE;
	if (strcmp(pattern, "/metrics") == 0)
		return FAM_METRICS;
	if (strncmp(pattern, "/console", 8) == 0)
		return FAM_CONSOLE;
	if (strncmp(pattern, "/.well-known/", 13) == 0)
		return FAM_WELL_KNOWN;
	/* sub-resources that behave differently from their parent's CRUD */
	if (strstr(pattern, "/events/stream") != NULL)
		return FAM_EVENT_STREAM;
	if (strncmp(pattern, "/v1/sessions/", 13) == 0 && strstr(pattern, "/events") != NULL)
		return FAM_EVENTS;
	if (strncmp(pattern, "/v1/environments/", 17) == 0 && strstr(pattern, "/work") != NULL)
		return FAM_WORK;
	if (strncmp(pattern, "/v1/tunnels/", 12) == 0 && strstr(pattern, "/routes/") != NULL)
		return FAM_TUNNEL_INGRESS;
	for (size_t i = 0; i < ARRAY_LEN(top); i++) {
		size_t n = strlen(top[i].prefix);
		if (strncmp(pattern, top[i].prefix, n) == 0 &&
		    (pattern[n] == '\0' || pattern[n] == '/'))
			return top[i].f;
	}
	return FAM_OTHER;
}

const char *
metrics_route_family(const char *pattern)
{
	return family_name[family_of(pattern)];
}

void
metrics_observe(struct server *s, const char *pattern, int status, const struct timespec *t0)
{
	struct server_metrics *m = s->metrics;
	struct timespec now;
	if (m == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double d = (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
	if (d < 0)
		d = 0;
	struct family_stats *f = &m->fam[family_of(pattern)];
	f->requests[status >= 100 && status < 600 ? status / 100 : 0]++;
	f->count++;
	f->sum += d;
	for (size_t i = 0; i < NBUCKETS; i++)
		if (d <= bucket_le[i]) {
			f->bucket[i]++;
			break;
		}
}

static void
call_observe(struct server *s, int kind, const char *outcome, const struct timespec *t0)
{
	struct server_metrics *m = s->metrics;
	const struct call_kind *k = &call_kinds[kind];
	struct timespec now;
	size_t o;
	if (m == NULL)
		return;
	for (o = 0; o < k->noutcomes && strcmp(k->outcomes[o], outcome) != 0; o++)
		;
	if (o == k->noutcomes)
		return; /* not one of ours: a bug, never a new series */
	clock_gettime(CLOCK_MONOTONIC, &now);
	double d = (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
	if (d < 0)
		d = 0;
	struct call_stats *cs = &m->calls[kind];
	cs->calls[o]++;
	cs->count++;
	cs->sum += d;
	for (size_t i = 0; i < k->nle; i++)
		if (d <= k->le[i]) {
			cs->bucket[i]++;
			break;
		}
}

void
metrics_model_call(struct server *s, const char *outcome, const struct timespec *t0)
{
	call_observe(s, CALL_MODEL, outcome, t0);
}

void
metrics_mcp_call(struct server *s, const char *outcome, const struct timespec *t0)
{
	call_observe(s, CALL_MCP, outcome, t0);
}

static void
render_calls(const struct call_kind *k, const struct call_stats *cs, struct buf *b)
{
	uint64_t cum = 0;
	buf_addf(b, "# HELP %s %s\n# TYPE %s counter\n", k->total, k->total_help, k->total);
	for (size_t o = 0; o < k->noutcomes; o++)
		buf_addf(b, "%s{outcome=\"%s\"} %llu\n", k->total, k->outcomes[o],
		         (unsigned long long)cs->calls[o]);
	buf_addf(b, "# HELP %s %s\n# TYPE %s histogram\n", k->hist, k->hist_help, k->hist);
	for (size_t i = 0; i < k->nle; i++) {
		cum += cs->bucket[i];
		buf_addf(b, "%s_bucket{le=\"%g\"} %llu\n", k->hist, k->le[i],
		         (unsigned long long)cum);
	}
	buf_addf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", k->hist,
	         (unsigned long long)cs->count, k->hist, cs->sum, k->hist,
	         (unsigned long long)cs->count);
}

/* A label value as the text format wants it: backslash, double quote and newline
 * escaped. Ours come from the database (ids, statuses), never from a request. */
static void
add_label_value(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_addf(b, "\\%c", *v);
		else if (*v == '\n')
			buf_add_str(b, "\\n");
		else
			buf_add(b, v, 1);
	}
}

static void
family_header(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
render_requests(struct server_metrics *m, struct buf *b)
{
	family_header(b, "airlock_http_requests_total", "counter",
	              "API requests finished, by route family and status class (none: the "
	              "client left before an answer).");
	for (int f = 0; f < FAM_N; f++)
		for (int c = 0; c < NCLASS; c++)
			if (m->fam[f].requests[c] != 0)
				buf_addf(b,
				         "airlock_http_requests_total{family=\"%s\",status_class="
				         "\"%s\"} "
				         "%llu\n",
				         family_name[f], class_name[c],
				         (unsigned long long)m->fam[f].requests[c]);
	family_header(b, "airlock_http_request_duration_seconds", "histogram",
	              "Time from a request's arrival to the end of its answer, by route family "
	              "(long-polls and event streams included: work and event_stream).");
	for (int f = 0; f < FAM_N; f++) {
		const struct family_stats *fs = &m->fam[f];
		uint64_t cum = 0;
		if (fs->count == 0)
			continue;
		for (size_t i = 0; i < NBUCKETS; i++) {
			cum += fs->bucket[i];
			buf_addf(
			    b,
			    "airlock_http_request_duration_seconds_bucket{family=\"%s\",le=\"%g\"} "
			    "%llu\n",
			    family_name[f], bucket_le[i], (unsigned long long)cum);
		}
		buf_addf(b,
		         "airlock_http_request_duration_seconds_bucket{family=\"%s\",le=\"+Inf\"} "
		         "%llu\n"
		         "airlock_http_request_duration_seconds_sum{family=\"%s\"} %.6f\n"
		         "airlock_http_request_duration_seconds_count{family=\"%s\"} %llu\n",
		         family_name[f], (unsigned long long)fs->count, family_name[f], fs->sum,
		         family_name[f], (unsigned long long)fs->count);
	}
}

/* Sessions: the four statuses always appear (0 when none), so a dashboard's series do
 * not vanish when the last running session goes idle. */
struct status_count {
	char status[32];
	int64_t n;
};
struct status_counts {
	struct status_count v[16];
	size_t n;
};

static void
on_status(void *arg, const char *status, int64_t n)
{
	struct status_counts *sc = arg;
	for (size_t i = 0; i < sc->n; i++)
		if (strcmp(sc->v[i].status, status) == 0) {
			sc->v[i].n = n;
			return;
		}
	if (sc->n < ARRAY_LEN(sc->v) && strlen(status) < sizeof(sc->v[0].status)) {
		snprintf(sc->v[sc->n].status, sizeof(sc->v[0].status), "%s", status);
		sc->v[sc->n++].n = n;
	}
}

struct work_render {
	struct buf *depth, *leased;
};

static void
on_work(void *arg, const char *env, int64_t queued, int64_t leased)
{
	struct work_render *w = arg;
	buf_add_str(w->depth, "airlock_work_queue_depth{environment_id=\"");
	add_label_value(w->depth, env);
	buf_addf(w->depth, "\"} %lld\n", (long long)queued);
	buf_add_str(w->leased, "airlock_work_leased{environment_id=\"");
	add_label_value(w->leased, env);
	buf_addf(w->leased, "\"} %lld\n", (long long)leased);
}

static double
seconds_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
render_store(struct server *s, struct buf *b)
{
	struct status_counts sc = {.n = 0};
	struct timespec t0;
	static const char *const known[] = {"idle", "running", "rescheduling", "terminated"};
	for (size_t i = 0; i < ARRAY_LEN(known); i++)
		on_status(&sc, known[i], 0);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool up = db_ping(s->db) == 0;
	double ping = seconds_since(&t0);
	family_header(b, "airlock_database_up", "gauge",
	              "1 when the database answered this scrape's probe, else 0.");
	buf_addf(b, "airlock_database_up %d\n", up ? 1 : 0);
	family_header(b, "airlock_database_info", "gauge", "The database engine in use (value 1).");
	buf_addf(b, "airlock_database_info{engine=\"%s\"} 1\n", db_engine(s->db));
	family_header(b, "airlock_database_ping_seconds", "gauge",
	              "How long this scrape's database probe took.");
	buf_addf(b, "airlock_database_ping_seconds %.6f\n", ping);
	if (!up)
		return; /* the aggregates below would only fail the same way */

	int rs = stats_store_sessions_by_status(s->db, on_status, &sc);
	if (rs == 0) {
		family_header(b, "airlock_sessions", "gauge", "Sessions not archived, by status.");
		for (size_t i = 0; i < sc.n; i++) {
			buf_add_str(b, "airlock_sessions{status=\"");
			add_label_value(b, sc.v[i].status);
			buf_addf(b, "\"} %lld\n", (long long)sc.v[i].n);
		}
	}

	struct buf depth, leased;
	bool more = false;
	buf_init(&depth, 4u << 20);
	buf_init(&leased, 4u << 20);
	struct work_render wr = {&depth, &leased};
	int rw =
	    stats_store_work_by_environment(s->db, METRICS_MAX_ENVIRONMENTS, on_work, &wr, &more);
	if (rw == 0) {
		family_header(b, "airlock_work_queue_depth", "gauge",
		              "Work items waiting for a worker (never delivered), by environment "
		              "(environments without live work are left out).");
		buf_add(b, depth.data, depth.len);
		family_header(b, "airlock_work_leased", "gauge",
		              "Work items delivered to a worker and not yet stopped, by "
		              "environment.");
		buf_add(b, leased.data, leased.len);
		family_header(b, "airlock_work_environments_truncated", "gauge",
		              "1 when more environments had live work than this scrape lists "
		              "(1000).");
		buf_addf(b, "airlock_work_environments_truncated %d\n", more ? 1 : 0);
	}
	buf_free(&depth);
	buf_free(&leased);
	family_header(b, "airlock_metrics_store_errors", "gauge",
	              "Aggregates this scrape could not read from the database.");
	buf_addf(b, "airlock_metrics_store_errors %d\n", (rs != 0) + (rw != 0));
}

/* Resident set from /proc/self/statm (pages), 0 when unreadable. */
static unsigned long long
resident_bytes(void)
{
	char line[128];
	unsigned long long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) != NULL) {
		const char *p = strchr(line, ' ');
		uint64_t n;
		if (p != NULL) {
			p++;
			size_t len = strcspn(p, " \n");
			if (parse_uint(p, len, UINT64_MAX / 65536, &n) == 0)
				pages = n;
		}
	}
	fclose(f);
	return pages * (unsigned long long)sysconf(_SC_PAGESIZE);
}

int
metrics_render(struct server *s, struct buf *b)
{
	struct server_metrics *m = s->metrics;
	if (m == NULL)
		return AL_E_INTERNAL;
	render_requests(m, b);
	family_header(b, "airlock_http_connections", "gauge",
	              "Client connections open on the API listener.");
	buf_addf(b, "airlock_http_connections %zu\n",
	         s->http ? http_server_conn_count(s->http) : 0);
	family_header(b, "airlock_event_streams", "gauge", "Open session event streams (SSE).");
	buf_addf(b, "airlock_event_streams %zu\n", events_stream_count(s));
	family_header(b, "airlock_work_pollers", "gauge",
	              "Worker long-polls held open, waiting for work.");
	buf_addf(b, "airlock_work_pollers %zu\n", work_poller_count(s));
	/* the tunnel edge's own families, when it is on: one scrape target per server */
	if (s->tunnel != NULL)
		tunnel_edge_metrics_render(s, b);
	else {
		family_header(b, "airlock_tunnel_connections", "gauge",
		              "Gateway connections registered now (the tunnel edge is off).");
		buf_addf(b, "airlock_tunnel_connections 0\n");
	}
	for (int k = 0; k < CALL_N; k++)
		render_calls(&call_kinds[k], &m->calls[k], b);
	family_header(b, "airlock_draining", "gauge",
	              "1 from the first TERM/INT until exit (readyz says 503), else 0.");
	buf_addf(b, "airlock_draining %d\n", s->draining ? 1 : 0);
	family_header(b, "airlock_agent_calls_in_flight", "gauge",
	              "Model and MCP calls the agent loop has in flight.");
	buf_addf(b, "airlock_agent_calls_in_flight %zu\n", agent_calls_in_flight(s));
	render_store(s, b);
	family_header(b, "process_start_time_seconds", "gauge",
	              "Start time of the process since the Unix epoch in seconds.");
	buf_addf(b, "process_start_time_seconds %lld\n", (long long)m->started);
	family_header(b, "process_resident_memory_bytes", "gauge",
	              "Resident memory size in bytes.");
	buf_addf(b, "process_resident_memory_bytes %llu\n", resident_bytes());
	return b->len >= b->max ? AL_E_TOOBIG : 0;
}

static const struct http_header text_plain[] = {
    {"content-type", "text/plain; version=0.0.4; charset=utf-8"}};

/* The body, or a 500 with the reason; the caller answers. */
static int
render_body(struct server *s, struct buf *b)
{
	buf_init(b, 16u << 20);
	int r = metrics_render(s, b);
	if (r != 0)
		log_error("metrics exposition did not fit", "error", al_strerror(r));
	return r;
}

static void
metrics_get(struct api_call *c)
{
	struct buf b;
	struct http_header h[4] = {text_plain[0]};
	size_t n = api_common_headers(c, h, 1);
	if (render_body(c->srv, &b) != 0) {
		buf_free(&b);
		api_reply_error(c, 500, "api_error", NULL, "metrics exposition too large");
		return;
	}
	c->status = 200;
	http_respond(c->http, 200, h, n, b.data, b.len);
	buf_free(&b);
	api_call_free(c);
}

const struct api_route metrics_routes[] = {
    {"GET", "/metrics", CREDS_API, metrics_get},
    {NULL, NULL, 0, NULL},
};

/* metrics.listen: the same exposition without a credential, for a scraper that
 * reaches only this address (loopback, or a pod network behind a NetworkPolicy). */
static void
side_handler(struct http_request *req, void *arg)
{
	struct server *s = arg;
	struct buf b;
	if (strcmp(req->path, "/metrics") != 0) {
		http_respond(req, 404, text_plain, 1, "not found\n", 10);
		return;
	}
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		static const struct http_header allow[] = {
		    {"content-type", "text/plain; charset=utf-8"}, {"allow", "GET, HEAD"}};
		http_respond(req, 405, allow, 2, "method not allowed\n", 19);
		return;
	}
	if (render_body(s, &b) != 0)
		http_respond(req, 500, text_plain, 1, "exposition too large\n", 21);
	else
		http_respond(req, 200, text_plain, 1, b.data, b.len);
	buf_free(&b);
}

int
metrics_init(struct server *s)
{
	struct server_metrics *m = xcalloc(1, sizeof(*m));
	const char *addr = s->cfg.metrics_listen;
	/* the call tables' counts match their lists, and the bounds rise */
	for (int k = 0; k < CALL_N; k++) {
		const struct call_kind *ck = &call_kinds[k];
		assert(ck->noutcomes <= MAX_OUTCOMES && ck->nle <= MAX_CALL_BUCKETS);
		assert(ck->noutcomes == MAX_OUTCOMES || ck->outcomes[ck->noutcomes] == NULL);
		assert(ck->nle == MAX_CALL_BUCKETS || ck->le[ck->nle] == 0);
		for (size_t i = 0; i < ck->noutcomes; i++)
			assert(ck->outcomes[i] != NULL);
		for (size_t i = 1; i < ck->nle; i++)
			assert(ck->le[i] > ck->le[i - 1]);
	}
	m->started = time(NULL);
	s->metrics = m;
	if (addr == NULL || addr[0] == '\0')
		return 0;
	int port = 0, r;
	char p[16];
	m->side = http_server_new(s->loop, NULL, side_handler, s);
	if ((r = http_server_listen(m->side, addr, NULL, &port)) != 0) {
		log_error("cannot listen for metrics", "addr", addr, "error", al_strerror(r));
		return r;
	}
	snprintf(p, sizeof(p), "%d", port);
	log_info("metrics listening", "addr", addr, "port", p, "credential",
	         net_addr_is_loopback(addr) ? "none (loopback)"
	                                    : "none: restrict who can reach this address");
	return 0;
}

void
metrics_shutdown(struct server *s)
{
	struct server_metrics *m = s->metrics;
	if (m == NULL)
		return;
	if (m->side) {
		http_server_shutdown(m->side);
		http_server_free(m->side);
	}
	free(m);
	s->metrics = NULL;
}
