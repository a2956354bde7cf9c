/* The agent loop: one state machine per active session, on the server's event loop.
 * It rebuilds the Messages history from the event log (agent_view.c), streams the
 * model's answer through lib/httpc + lib/sse, turns it into session events, retries
 * failed calls with backoff, and waits for tool results, confirmations and custom
 * tool results. MCP toolsets are listed and called here too (mcp_client.c), since
 * MCP calls run in the control plane. See docs/server/agent-loop.md and
 * docs/server/mcp.md.
 *
 * The event log is the state: what a step does is derived from it each time, so a
 * restarted server resumes by simply stepping every active session. Only the retry
 * count and the last requires_action set live in sessions.loop_state.
 *
 * Several replicas on one PostgreSQL: a replica steps a session only while it holds the
 * session's lease (sessions.loop_owner/loop_lease_until, session_store_lease_*), taken
 * by one conditional UPDATE at each step, renewed for all its sessions by one statement
 * every third of the TTL, released when the session is no longer running. A lease whose
 * holder died lapses and the next replica's scan takes the session over, resuming it
 * from the log as a restarted server does. On SQLite the lease is ours without a write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "agent.h"
#include "audit.h"
#include "agent_step.h"
#include "agent_stream.h"
#include "agent_view.h"
#include "err.h"
#include "event_store.h"
#include "events.h"
#include "httpc.h"
#include "log.h"
#include "mcp_client.h"
#include "mcp_tools.h"
#include "agent_identity.h"
#include "server.h"
#include "session_store.h"
#include "skill_store.h"
#include "sse.h"
#include "util.h"
#include "vault_seal.h"
#include "xalloc.h"

#define MAX_EVENTS_LOADED 100000
#define MAX_ERROR_BODY (64u << 10)
#define STREAM_IDLE_S 300 /* no byte from the model for this long: give up */
#define RETRY_CAP_MS 60000
#define MCP_RELIST_MS 30000 /* a server whose tools/list failed is asked again after this */

struct asess;

/* One MCP server of the session's agent: its client (MCP session, credentials) and
 * the tools it listed. */
struct mcp_conn {
	struct asess *a;
	char name[132];
	char *url;
	struct mcp_client *cl;
	json_t *tools;      /* tools/list result, NULL until listed */
	uint64_t failed_at; /* monotonic ms of the last failed listing, 0 none */
	bool listing;
	struct mcp_conn *next;
};

struct asess {
	char id[80];
	struct agent_runtime *rt;
	struct asess *next;
	struct loop_timer *wake_timer;
	struct loop_timer *retry_timer;
	struct httpc_xfer *xfer;
	unsigned attempt;        /* failed attempts of the current model call */
	struct timespec call_t0; /* when the model call in flight went out (metrics) */
	char span_id[48];        /* span.model_request_start of the call in flight */
	char last_stop[24];
	json_t *agent; /* snapshot used for the call in flight */
	/* the answer being streamed */
	struct sse_parser sse;
	bool sse_ready;
	struct agent_stream ans;
	bool ans_ready;
	/* MCP connector */
	struct mcp_conn *mcp;
	json_t *mcp_catalog;  /* tools offered to the model; NULL until listed */
	json_t *mcp_key;      /* the mcp_servers and tools the catalog was built for */
	unsigned mcp_listing; /* tools/list operations in flight */
	char mcp_call_id[48]; /* agent.mcp_tool_use being run, "" when none */
	char mcp_call_server[132];
	char mcp_call_tool[132];
	uint64_t mcp_call_t0;        /* monotonic ms the call went out (audit latency) */
	struct timespec mcp_call_ts; /* the same, for metrics */
	/* who the session acts for, for the tool policy (loaded once: it never changes) */
	struct session_owner owner;
	bool owner_loaded;
};

struct agent_runtime {
	struct server *srv;
	struct httpc *httpc;
	struct asess *list;
	unsigned retry_base_ms;
	unsigned max_tokens;
	unsigned mcp_timeout_ms;
	unsigned mcp_call_timeout_ms;
	bool draining; /* agent_drain: record what returns, start nothing */
	/* the loop lease (PostgreSQL; shared false on SQLite) */
	bool shared;
	char owner[33];    /* this replica's id: random, made at start */
	unsigned lease_ms; /* TTL */
	struct loop_timer *lease_timer;
};

static void step(struct asess *a);

/* The tool policy as it applies to this session now: the server's current policy (a
 * reload takes effect at the next call), the session's owner and the agent snapshot. */
static void
session_policy(struct asess *a, const json_t *agent, struct agent_policy *pol)
{
	struct server *s = a->rt->srv;
	memset(pol, 0, sizeof(*pol));
	pol->p = s->policy;
	/* the owner also names the principal of the session's audit records */
	if (!a->owner_loaded && session_store_owner(s->db, a->id, &a->owner) == 0)
		a->owner_loaded = true;
	if (pol->p == NULL)
		return;
	pol->who.sub = a->owner.sub;
	pol->who.email = a->owner.email;
	pol->who.groups = (const char *const *)a->owner.groups;
	pol->who.n_groups = a->owner.ngroups;
	pol->who.apikey = !a->owner_loaded || a->owner.apikey;
	pol->agent.id = json_string_value(json_object_get(agent, "id"));
	pol->agent.name = json_string_value(json_object_get(agent, "name"));
}

/* ---- session table ---- */

static struct asess *
sess_find(struct agent_runtime *rt, const char *id)
{
	for (struct asess *a = rt->list; a; a = a->next)
		if (strcmp(a->id, id) == 0)
			return a;
	return NULL;
}

static void
answer_reset(struct asess *a)
{
	if (a->sse_ready)
		sse_parser_free(&a->sse);
	if (a->ans_ready)
		agent_stream_free(&a->ans);
	a->sse_ready = a->ans_ready = false;
}

static void
sess_quiesce(struct asess *a)
{
	struct loop *l = a->rt->srv->loop;
	if (a->xfer != NULL) /* an interrupt, a deleted session, the exit */
		metrics_model_call(a->rt->srv, "cancelled", &a->call_t0);
	httpc_cancel(a->xfer);
	a->xfer = NULL;
	loop_timer_cancel(l, a->retry_timer);
	a->retry_timer = NULL;
	answer_reset(a);
	json_decref(a->agent);
	a->agent = NULL;
	/* MCP: a call in flight is cancelled on the server too (notifications/cancelled);
	 * its late result is never recorded. */
	if (a->mcp_call_id[0] != '\0')
		metrics_mcp_call(a->rt->srv, "cancelled", &a->mcp_call_ts);
	for (struct mcp_conn *m = a->mcp; m; m = m->next) {
		if (mcp_client_busy(m->cl))
			mcp_client_cancel(m->cl, "The user interrupted the turn.");
		m->listing = false;
	}
	a->mcp_listing = 0;
	a->mcp_call_id[0] = '\0';
}

static void
mcp_conns_free(struct asess *a)
{
	while (a->mcp) {
		struct mcp_conn *m = a->mcp;
		a->mcp = m->next;
		mcp_client_free(m->cl);
		json_decref(m->tools);
		free(m->url);
		free(m);
	}
	json_decref(a->mcp_catalog);
	a->mcp_catalog = NULL;
	json_decref(a->mcp_key);
	a->mcp_key = NULL;
}

static void
sess_free(struct asess *a)
{
	struct agent_runtime *rt = a->rt;
	sess_quiesce(a);
	mcp_conns_free(a);
	loop_timer_cancel(rt->srv->loop, a->wake_timer);
	for (struct asess **pp = &rt->list; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	session_owner_free(&a->owner);
	free(a);
}

static void
on_wake_timer(struct loop *l, void *arg)
{
	struct asess *a = arg;
	(void)l;
	a->wake_timer = NULL;
	step(a);
}

/* Steps run from a zero-delay timer: never inside an HTTP handler's or libcurl's
 * callback, and several wakes in one loop turn collapse into one step. */
static void
schedule(struct agent_runtime *rt, const char *session_id)
{
	struct asess *a = sess_find(rt, session_id);
	if (a == NULL) {
		if (strlen(session_id) >= sizeof(a->id))
			return;
		a = xcalloc(1, sizeof(*a));
		snprintf(a->id, sizeof(a->id), "%s", session_id);
		snprintf(a->last_stop, sizeof(a->last_stop), "end_turn");
		a->rt = rt;
		a->next = rt->list;
		rt->list = a;
	}
	if (a->wake_timer == NULL)
		a->wake_timer = loop_timer_add(rt->srv->loop, 0, on_wake_timer, a);
}

/* ---- log access ---- */

static int
load_events(struct server *s, const char *session_id, json_t **out)
{
	return event_store_log(s->db, session_id, MAX_EVENTS_LOADED, out);
}

/* ---- transactions ---- */

struct tx {
	struct server *s;
	const char *sid;
	int r;
};

static void
tx_begin(struct tx *t, struct asess *a)
{
	t->s = a->rt->srv;
	t->sid = a->id;
	t->r = db_begin(t->s->db);
}

/* Appends ev (stolen) as a processed server event. */
static void
tx_emit(struct tx *t, json_t *ev)
{
	if (t->r == 0)
		t->r = events_append_tx(t->s, t->sid, ev, true);
	json_decref(ev);
}

/* The same for an event the model emitted: a tool use's tool.call audit record is stored
 * in its row (audit_tool_use_tx), so the record commits with the event. */
static void
tx_emit_audited(struct tx *t, struct asess *a, json_t *ev)
{
	const char *rec = NULL;
	if (t->r == 0)
		t->r = audit_tool_use_tx(t->s, t->sid, &a->owner, ev, &rec);
	if (t->r == 0)
		t->r = events_append_audited_tx(t->s, t->sid, ev, true, rec);
	json_decref(ev);
}

static void
tx_status(struct tx *t, const char *status)
{
	if (t->r == 0)
		t->r = session_store_set_status(t->s->db, t->sid, status);
}

static void
tx_mark(struct tx *t, const json_t *ids)
{
	size_t i;
	json_t *id;
	json_array_foreach(ids, i, id)
	{
		if (t->r == 0)
			t->r = events_mark_processed_tx(t->s, json_string_value(id));
	}
}

static void
tx_loop_state(struct tx *t, struct asess *a, const json_t *requires_action)
{
	json_t *st = json_pack("{s:I, s:s, s:O}", "attempt", (json_int_t)a->attempt, "last_stop",
	                       a->last_stop, "requires_action", requires_action);
	if (t->r == 0)
		t->r = session_store_loop_state_set(t->s->db, t->sid, st);
	json_decref(st);
}

static int
tx_end(struct tx *t)
{
	if (t->r == 0 && (t->r = db_commit(t->s->db)) == 0) {
		events_publish(t->s);
		return 0;
	}
	db_rollback(t->s->db);
	events_discard(t->s);
	log_error("agent loop could not store its events", "session_id", t->sid, "error",
	          al_strerror(t->r));
	return t->r;
}

static json_t *
ev_new(const char *type)
{
	return json_pack("{s:s}", "type", type);
}

static json_t *
idle_event(const char *stop_type, const json_t *event_ids)
{
	json_t *sr = json_pack("{s:s}", "type", stop_type);
	if (event_ids)
		json_object_set(sr, "event_ids", (json_t *)event_ids);
	return json_pack("{s:s, s:o, s:n}", "type", "session.status_idle", "stop_reason", sr,
	                 "stop_details");
}

static json_t *
span_end_event(const char *start_id, bool is_error, const json_t *usage)
{
	json_t *mu = json_pack(
	    "{s:I, s:I, s:I, s:I}", "input_tokens",
	    json_integer_value(json_object_get(usage, "input_tokens")), "output_tokens",
	    json_integer_value(json_object_get(usage, "output_tokens")), "cache_read_input_tokens",
	    json_integer_value(json_object_get(usage, "cache_read_input_tokens")),
	    "cache_creation_input_tokens",
	    json_integer_value(json_object_get(usage, "cache_creation_input_tokens")));
	return json_pack("{s:s, s:s, s:b, s:o}", "type", "span.model_request_end",
	                 "model_request_start_id", start_id, "is_error", is_error, "model_usage",
	                 mu);
}

/* ---- model call ---- */

static const char *
error_kind(int status, const char *api_type)
{
	if (status == 529 || (api_type && strcmp(api_type, "overloaded_error") == 0))
		return "model_overloaded_error";
	if (status == 429 || (api_type && strcmp(api_type, "rate_limit_error") == 0))
		return "model_rate_limited_error";
	return "model_request_failed_error";
}

static void on_retry_timer(struct loop *l, void *arg);

/* A model call failed: record it, then retry with backoff or give up. */
static void
call_failed(struct asess *a, bool retryable, const char *kind, const char *message,
            long retry_after_ms)
{
	struct agent_runtime *rt = a->rt;
	struct tx t;
	bool again;
	json_t *none = json_array();

	a->xfer = NULL;
	a->attempt++;
	metrics_model_call(rt->srv, retryable ? "retryable_error" : "error", &a->call_t0);
	again = retryable && a->attempt <= rt->srv->cfg.model_max_retries;
	log_warn("model call failed", "session_id", a->id, "error", kind, "message", message,
	         "retry", again ? "yes" : "no");
	tx_begin(&t, a);
	tx_emit(&t, span_end_event(a->span_id, true, NULL));
	tx_emit(&t, json_pack("{s:s, s:{s:s, s:s, s:{s:s}}}", "type", "session.error", "error",
	                      "type", kind, "message", message, "retry_status", "type",
	                      again ? "retrying" : (retryable ? "exhausted" : "terminal")));
	if (again) {
		tx_status(&t, "rescheduling");
		tx_emit(&t, ev_new("session.status_rescheduled"));
	} else {
		/* A refused request (4xx) will not get better by asking again either: both
		 * end the turn with retries_exhausted, the error says which it was. */
		a->attempt = 0;
		tx_status(&t, "idle");
		tx_emit(&t, idle_event("retries_exhausted", NULL));
	}
	tx_loop_state(&t, a, none);
	tx_end(&t);
	json_decref(none);
	answer_reset(a);
	json_decref(a->agent);
	a->agent = NULL;
	if (!again || rt->draining)
		return; /* draining: the session is 'rescheduling' in the log; the next server
		           retries */
	uint64_t delay = (uint64_t)rt->retry_base_ms << (a->attempt - 1 < 16 ? a->attempt - 1 : 16);
	if (delay > RETRY_CAP_MS)
		delay = RETRY_CAP_MS;
	/* ±25% jitter so sessions that failed together do not retry together. */
	uint16_t rnd;
	random_bytes(&rnd, sizeof(rnd));
	delay = delay * 3 / 4 + delay * (uint64_t)rnd / 65535 / 2;
	if (retry_after_ms >= 0)
		delay = (uint64_t)(retry_after_ms < RETRY_CAP_MS ? retry_after_ms : RETRY_CAP_MS);
	a->retry_timer = loop_timer_add(rt->srv->loop, delay, on_retry_timer, a);
}

static void
on_retry_timer(struct loop *l, void *arg)
{
	struct asess *a = arg;
	(void)l;
	a->retry_timer = NULL;
	step(a);
}

static void
hook_block_start(void *arg, const char *event_id, const char *block_type)
{
	struct asess *a = arg;
	events_delta_start(a->rt->srv, a->id, event_id,
	                   strcmp(block_type, "text") == 0 ? "agent.message" : "agent.thinking");
}

static void
hook_text(void *arg, const char *event_id, const char *piece)
{
	struct asess *a = arg;
	events_delta_text(a->rt->srv, a->id, event_id, 0, piece);
}

/* Anything malformed aborts the call as a protocol error (retried like a dropped
 * connection): a model reply never crashes the server. */
static int
on_model_event(const struct sse_event *sev, void *arg)
{
	struct asess *a = arg;
	return agent_stream_event(&a->ans, sev->event.p, sev->event.len, sev->data.p,
	                          sev->data.len);
}

static int
on_model_data(struct httpc_xfer *x, const char *p, size_t n, void *arg)
{
	struct asess *a = arg;
	(void)x;
	return sse_parser_feed(&a->sse, p, n);
}

/* Persists a complete answer as session events, all in one transaction so a worker
 * never sees a tool call before the span that produced it is closed. */
static void
answer_commit(struct asess *a)
{
	struct tx t;
	json_t *events = NULL, *none = json_array(), *sdoc = NULL;
	size_t i;
	json_t *ev;

	/* Tool inputs are parsed first: a broken one fails the whole call before anything
	 * is stored, and the call is retried. */
	struct agent_policy pol;
	session_policy(a, a->agent, &pol);
	if (agent_stream_to_events(&a->ans, a->agent, a->mcp_catalog, &pol, &events) != 0) {
		json_decref(none);
		call_failed(a, true, "model_request_failed_error",
		            "the model sent tool input that is not a JSON object", -1);
		return;
	}
	tx_begin(&t, a);
	json_array_foreach(events, i, ev) tx_emit_audited(&t, a, json_incref(ev));
	tx_emit(&t, span_end_event(a->span_id, false, a->ans.usage));
	if (t.r == 0 && a->ans.usage)
		t.r = session_store_add_usage(t.s->db, a->id, a->ans.usage);
	if (t.r == 0 && (sdoc = session_store_get(t.s->db, a->id, &t.r)) != NULL) {
		json_t *u = json_object_get(sdoc, "usage");
		tx_emit(&t, json_pack("{s:s, s:o}", "type", "session.usage", "usage",
		                      u ? json_incref(u) : json_object()));
	}
	a->attempt = 0;
	snprintf(a->last_stop, sizeof(a->last_stop), "%s",
	         a->ans.stop_reason && strcmp(a->ans.stop_reason, "refusal") == 0 ? "refusal"
	                                                                          : "end_turn");
	tx_loop_state(&t, a, none);
	/* a failed append is logged and retried from the outbox; the session goes on */
	audit_outbox_move(a->rt->srv, tx_end(&t) == 0);
	json_decref(sdoc);
	json_decref(events);
	json_decref(none);
	answer_reset(a);
	json_decref(a->agent);
	a->agent = NULL;
	schedule(a->rt, a->id);
}

static long
retry_after_ms(struct httpc_xfer *x)
{
	const char *v;
	uint64_t n;
	if ((v = httpc_xfer_header(x, "retry-after-ms")) && parse_uint_cstr(v, 86400000, &n) == 0)
		return (long)n;
	if ((v = httpc_xfer_header(x, "retry-after")) && parse_uint_cstr(v, 86400, &n) == 0)
		return (long)(n * 1000);
	return -1;
}

static void
on_model_done(struct httpc_xfer *x, const struct httpc_response *resp, void *arg)
{
	struct asess *a = arg;
	char msg[512];

	a->xfer = NULL;
	if (resp->err == 0 && resp->status >= 200 && resp->status < 300 && a->ans.got_stop &&
	    a->ans.error == NULL) {
		metrics_model_call(a->rt->srv, "ok", &a->call_t0);
		answer_commit(a);
		return;
	}
	if (a->ans.error) {
		const char *et = json_string_value(json_object_get(a->ans.error, "type"));
		const char *em = json_string_value(json_object_get(a->ans.error, "message"));
		snprintf(msg, sizeof(msg), "model stream error: %s: %s", et ? et : "unknown",
		         em ? em : "");
		bool retryable = et == NULL || strcmp(et, "overloaded_error") == 0 ||
		                 strcmp(et, "api_error") == 0 ||
		                 strcmp(et, "rate_limit_error") == 0 ||
		                 strcmp(et, "timeout_error") == 0;
		call_failed(a, retryable, error_kind(0, et), msg, -1);
		return;
	}
	if (resp->status >= 300 || (resp->status > 0 && resp->status < 200)) {
		json_t *body =
		    json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
		json_t *err = json_object_get(body, "error");
		const char *et = json_string_value(json_object_get(err, "type"));
		const char *em = json_string_value(json_object_get(err, "message"));
		const char *sr = httpc_xfer_header(x, "x-should-retry");
		bool retryable = resp->status == 408 || resp->status == 409 ||
		                 resp->status == 429 || resp->status >= 500;
		if (sr && strcmp(sr, "true") == 0)
			retryable = true;
		else if (sr && strcmp(sr, "false") == 0)
			retryable = false;
		/* The provider's message, never our request: it could echo the key. */
		snprintf(msg, sizeof(msg), "model provider answered %d %s: %s", resp->status,
		         et ? et : "", em ? em : "");
		call_failed(a, retryable, error_kind(resp->status, et), msg, retry_after_ms(x));
		json_decref(body);
		return;
	}
	if (resp->err != 0)
		snprintf(msg, sizeof(msg), "model request failed: %s%s%s", al_strerror(resp->err),
		         resp->errmsg && *resp->errmsg ? ": " : "",
		         resp->errmsg ? resp->errmsg : "");
	else
		snprintf(msg, sizeof(msg), "model stream ended before message_stop");
	call_failed(a, true, "model_request_failed_error", msg, -1);
}

static void
call_model(struct asess *a, json_t *sdoc, const struct agent_view *v, const char *status)
{
	struct agent_runtime *rt = a->rt;
	struct server *s = rt->srv;
	struct tx t;
	json_t *none = json_array();
	char *span = id_new("sevt_");
	char *key_hdr = NULL, *url = NULL, *body_text = NULL;

	snprintf(a->span_id, sizeof(a->span_id), "%s", span);
	tx_begin(&t, a);
	if (strcmp(status, "running") != 0) {
		tx_status(&t, "running");
		tx_emit(&t, ev_new("session.status_running"));
	}
	tx_emit(&t, json_pack("{s:s, s:s}", "type", "span.model_request_start", "id", span));
	tx_mark(&t, v->unprocessed);
	tx_mark(&t, v->acks);
	tx_loop_state(&t, a, none);
	json_decref(none);
	free(span);
	if (tx_end(&t) != 0)
		return;

	answer_reset(a);
	struct agent_stream_hooks hooks = {hook_block_start, hook_text, a};
	agent_stream_init(&a->ans, &hooks);
	a->ans_ready = true;
	sse_parser_init(&a->sse, 0, 0, on_model_event, a);
	a->sse_ready = true;
	json_decref(a->agent);
	a->agent = json_incref(json_object_get(sdoc, "agent"));
	struct agent_policy pol;
	session_policy(a, a->agent, &pol);
	json_t *body =
	    agent_request_body(a->agent, a->mcp_catalog, &pol, v->messages, rt->max_tokens);
	/* the skills' names and descriptions, so the model knows what it may read
	 * (docs/server/skills.md "System prompt") */
	char *skills = skill_store_prompt(s->db, json_object_get(a->agent, "skills"));
	agent_request_add_system(body, skills);
	free(skills);
	body_text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	const char *base = s->cfg.model_base_url ? s->cfg.model_base_url : "";
	size_t blen = strlen(base);
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	url = xasprintf("%.*s/v1/messages", (int)blen, base);
	key_hdr = xasprintf("x-api-key: %s", s->cfg.model_api_key ? s->cfg.model_api_key : "");
	const char *headers[] = {"content-type: application/json", "accept: text/event-stream",
	                         "anthropic-version: 2023-06-01", key_hdr};
	struct httpc_request req = {
	    .method = "POST",
	    .url = url,
	    .headers = headers,
	    .nheaders = ARRAY_LEN(headers),
	    .body = body_text,
	    .body_len = body_text ? strlen(body_text) : 0,
	    .idle_timeout_s = STREAM_IDLE_S,
	    .max_body = MAX_ERROR_BODY,
	    .on_data = on_model_data,
	    .on_done = on_model_done,
	    .arg = a,
	};
	log_info("model call", "session_id", a->id, "model",
	         json_string_value(json_object_get(json_object_get(a->agent, "model"), "id")));
	clock_gettime(CLOCK_MONOTONIC, &a->call_t0);
	int r = httpc_start(rt->httpc, &req, &a->xfer);
	secret_free(key_hdr);
	free(url);
	free(body_text);
	if (r != 0) {
		a->xfer = NULL;
		call_failed(a, false, "model_request_failed_error",
		            "cannot start the model request (check AIRLOCK_MODEL_BASE_URL)", -1);
	}
}

/* ---- MCP connector ---- */

static bool
mcp_busy(const struct asess *a)
{
	return a->mcp_listing > 0 || a->mcp_call_id[0] != '\0';
}

static const char *
mcp_error_type(enum mcp_fail f)
{
	return f == MCP_FAIL_AUTH ? "mcp_authentication_failed_error"
	                          : "mcp_connection_failed_error";
}

/* session.error for an MCP failure. retry_status "exhausted": airlock does not retry
 * the operation itself; the turn goes on (the call gets an error result, a server
 * that could not be listed offers no tools). */
static json_t *
mcp_error_event(const char *server, enum mcp_fail f, const char *message)
{
	return json_pack("{s:s, s:{s:s, s:s, s:s, s:{s:s}}}", "type", "session.error", "error",
	                 "type", mcp_error_type(f), "mcp_server_name", server, "message", message,
	                 "retry_status", "type", "exhausted");
}

static struct mcp_conn *
mcp_conn_get(struct asess *a, const json_t *agent, const char *name)
{
	struct mcp_conn *m;
	for (m = a->mcp; m; m = m->next)
		if (strcmp(m->name, name) == 0)
			return m;
	size_t i;
	json_t *sv;
	const char *url = NULL;
	json_array_foreach(json_object_get(agent, "mcp_servers"), i, sv)
	{
		const char *n = json_string_value(json_object_get(sv, "name"));
		if (n && strcmp(n, name) == 0)
			url = json_string_value(json_object_get(sv, "url"));
	}
	if (url == NULL || strlen(name) >= sizeof(m->name))
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->a = a;
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->url = xstrdup(url);
	struct mcp_client_config cfg = {
	    .srv = a->rt->srv,
	    .loop = a->rt->srv->loop,
	    .httpc = a->rt->httpc,
	    .url = url,
	    .timeout_ms = a->rt->mcp_timeout_ms,
	    .call_timeout_ms = a->rt->mcp_call_timeout_ms,
	};
	m->cl = mcp_client_new(&cfg);
	m->next = a->mcp;
	a->mcp = m;
	return m;
}

/* The token of the session's vault credential for this server, fetched before every
 * operation so an archived credential stops being sent at once. Never logged. */
static void
mcp_conn_auth(struct asess *a, struct mcp_conn *m, const json_t *sdoc)
{
	char *token = NULL;
	if (vaults_bearer_for(a->rt->srv, json_object_get(sdoc, "vault_ids"), m->url, &token) != 0)
		token = NULL;
	mcp_client_set_bearer(m->cl, token);
	secret_free(token);
	/* a fresh agent identity token per operation, naming the agent, the session and
	 * whom it acts for (docs/server/agent-identity.md) */
	struct agent_identity *ai = a->rt->srv->agent_identity;
	if (ai == NULL)
		return;
	if (!a->owner_loaded && session_store_owner(a->rt->srv->db, a->id, &a->owner) == 0)
		a->owner_loaded = true;
	const json_t *agent = json_object_get(sdoc, "agent");
	struct agent_identity_claims ic = {
	    .audience = m->url,
	    .agent_id = json_string_value(json_object_get(agent, "id")),
	    .agent_name = json_string_value(json_object_get(agent, "name")),
	    .agent_version = json_integer_value(json_object_get(agent, "version")),
	    .session_id = a->id,
	    .user_sub = a->owner.sub,
	    .user_iss = a->owner.apikey ? NULL : a->owner.iss,
	    .user_email = a->owner.email,
	    .groups = (const char *const *)a->owner.groups,
	    .ngroups = a->owner.ngroups,
	};
	char *tok = agent_identity_mint(ai, &ic);
	mcp_client_set_identity(m->cl, tok);
	free(tok);
}

/* The catalog is built for one agent configuration; a session update that changes
 * mcp_servers or tools starts over with fresh clients. */
static void
mcp_sync_config(struct asess *a, const json_t *agent)
{
	json_t *key = json_pack("[O?, O?]", json_object_get(agent, "mcp_servers"),
	                        json_object_get(agent, "tools"));
	if (a->mcp_key && json_equal(key, a->mcp_key)) {
		json_decref(key);
		return;
	}
	mcp_conns_free(a);
	a->mcp_key = key;
}

static void
mcp_build_catalog(struct asess *a, const json_t *agent)
{
	json_t *cat = json_array();
	size_t i;
	json_t *sv;
	json_array_foreach(json_object_get(agent, "mcp_servers"), i, sv)
	{
		const char *n = json_string_value(json_object_get(sv, "name"));
		for (struct mcp_conn *m = a->mcp; n && m; m = m->next)
			if (strcmp(m->name, n) == 0 && m->tools)
				mcp_catalog_add(cat, agent, n, m->tools);
	}
	json_decref(a->mcp_catalog);
	a->mcp_catalog = cat;
}

static void
on_mcp_listed(void *arg, const struct mcp_result *r)
{
	struct mcp_conn *m = arg;
	struct asess *a = m->a;
	json_t *sdoc = NULL;

	m->listing = false;
	if (a->mcp_listing > 0)
		a->mcp_listing--;
	if (r->fail == MCP_OK) {
		json_decref(m->tools);
		m->tools = json_deep_copy(json_object_get(r->result, "tools"));
		m->failed_at = 0;
		log_info("MCP tools listed", "session_id", a->id, "mcp_server", m->name);
	} else {
		struct tx t;
		m->failed_at = now_mono_ms();
		log_warn("MCP tools/list failed", "session_id", a->id, "mcp_server", m->name,
		         "error", r->message);
		tx_begin(&t, a);
		tx_emit(&t, mcp_error_event(m->name,
		                            r->fail == MCP_FAIL_AUTH ? MCP_FAIL_AUTH
		                                                     : MCP_FAIL_CONNECTION,
		                            r->message));
		tx_end(&t);
	}
	if (a->mcp_listing == 0) {
		int err;
		if ((sdoc = session_store_get(a->rt->srv->db, a->id, &err)) != NULL)
			mcp_build_catalog(a, json_object_get(sdoc, "agent"));
		json_decref(sdoc);
		schedule(a->rt, a->id);
	}
}

/* Before a model call: list the tools of every MCP server not listed yet (a failed
 * one again after MCP_RELIST_MS). Returns true when listings were started; the step
 * runs again when they end. */
static bool
mcp_list_if_needed(struct asess *a, const json_t *sdoc, const char *status)
{
	const json_t *agent = json_object_get(sdoc, "agent");
	size_t i;
	json_t *sv;
	bool started = false;
	uint64_t now = now_mono_ms();

	mcp_sync_config(a, agent);
	json_array_foreach(json_object_get(agent, "mcp_servers"), i, sv)
	{
		const char *n = json_string_value(json_object_get(sv, "name"));
		if (n == NULL || mcp_toolset_for(agent, n) == NULL)
			continue;
		struct mcp_conn *m = mcp_conn_get(a, agent, n);
		if (m == NULL || m->tools || m->listing || mcp_client_busy(m->cl))
			continue;
		if (m->failed_at && now - m->failed_at < MCP_RELIST_MS)
			continue;
		mcp_conn_auth(a, m, sdoc);
		if (mcp_client_list_tools(m->cl, on_mcp_listed, m) != 0)
			continue;
		m->listing = true;
		a->mcp_listing++;
		started = true;
	}
	if (!started) {
		if (a->mcp_catalog == NULL)
			mcp_build_catalog(a, agent);
		return false;
	}
	if (strcmp(status, "running") != 0) {
		/* The turn has begun: say so while the servers are asked. */
		struct tx t;
		tx_begin(&t, a);
		tx_status(&t, "running");
		tx_emit(&t, ev_new("session.status_running"));
		tx_end(&t);
	}
	return true;
}

static void
on_mcp_called(void *arg, const struct mcp_result *r)
{
	struct mcp_conn *m = arg;
	struct asess *a = m->a;
	struct tx t;
	json_t *content;
	bool is_error = true;
	char msg[700];

	if (r->fail == MCP_OK) {
		content = mcp_result_content(r->result, &is_error);
	} else if (r->fail == MCP_FAIL_RPC) {
		snprintf(msg, sizeof(msg), "MCP error %s", r->message);
		content = json_pack("[{s:s, s:s}]", "type", "text", "text", msg);
	} else {
		snprintf(msg, sizeof(msg), "MCP server '%s' failed: %s", m->name, r->message);
		content = json_pack("[{s:s, s:s}]", "type", "text", "text", msg);
		log_warn("MCP tools/call failed", "session_id", a->id, "mcp_server", m->name,
		         "error", r->message);
	}
	tx_begin(&t, a);
	if (r->fail == MCP_FAIL_CONNECTION || r->fail == MCP_FAIL_AUTH)
		tx_emit(&t, mcp_error_event(m->name, r->fail, r->message));
	tx_emit(&t, json_pack("{s:s, s:s, s:o, s:b}", "type", "agent.mcp_tool_result",
	                      "mcp_tool_use_id", a->mcp_call_id, "content", content, "is_error",
	                      is_error));
	tx_end(&t);
	metrics_mcp_call(a->rt->srv,
	                 r->fail == MCP_OK          ? (is_error ? "tool_error" : "ok")
	                 : r->fail == MCP_FAIL_RPC  ? "rpc_error"
	                 : r->fail == MCP_FAIL_AUTH ? "auth"
	                                            : "connection",
	                 &a->mcp_call_ts);
	audit_mcp_call(a->rt->srv, a->id, &a->owner, a->mcp_call_server, a->mcp_call_tool,
	               a->mcp_call_id,
	               r->fail != MCP_OK ? "failed"
	               : is_error        ? "error"
	                                 : "ok",
	               (int64_t)(now_mono_ms() - a->mcp_call_t0));
	a->mcp_call_id[0] = '\0';
	schedule(a->rt, a->id);
}

/* Runs the first allowed MCP call of the log (one at a time, in order). */
static void
mcp_run_next(struct asess *a, const json_t *sdoc, const json_t *call, const char *status,
             const json_t *acks)
{
	const json_t *agent = json_object_get(sdoc, "agent");
	const char *id = json_string_value(json_object_get(call, "id"));
	const char *server = json_string_value(json_object_get(call, "server"));
	const char *tool = json_string_value(json_object_get(call, "tool"));
	struct tx t;
	struct mcp_conn *m;

	tx_begin(&t, a);
	tx_mark(&t, acks);
	if (strcmp(status, "running") != 0) {
		tx_status(&t, "running");
		tx_emit(&t, ev_new("session.status_running"));
	}
	if (tx_end(&t) != 0 || id == NULL || strlen(id) >= sizeof(a->mcp_call_id))
		return;
	mcp_sync_config(a, agent);
	m = server ? mcp_conn_get(a, agent, server) : NULL;
	if (m && mcp_client_busy(m->cl)) {
		return; /* its operation's end steps again (steps wait while MCP work runs) */
	}
	if (m == NULL) {
		char msg[300];
		snprintf(msg, sizeof(msg), "MCP server '%s' is not configured for this session.",
		         server ? server : "");
		tx_begin(&t, a);
		tx_emit(&t, json_pack("{s:s, s:s, s:[{s:s, s:s}], s:b}", "type",
		                      "agent.mcp_tool_result", "mcp_tool_use_id", id, "content",
		                      "type", "text", "text", msg, "is_error", 1));
		tx_end(&t);
		schedule(a->rt, a->id);
		return;
	}
	mcp_conn_auth(a, m, sdoc);
	snprintf(a->mcp_call_id, sizeof(a->mcp_call_id), "%s", id);
	snprintf(a->mcp_call_server, sizeof(a->mcp_call_server), "%s", m->name);
	snprintf(a->mcp_call_tool, sizeof(a->mcp_call_tool), "%s", tool ? tool : "");
	a->mcp_call_t0 = now_mono_ms();
	clock_gettime(CLOCK_MONOTONIC, &a->mcp_call_ts);
	log_info("MCP tool call", "session_id", a->id, "mcp_server", m->name, "tool", tool);
	if (mcp_client_call_tool(m->cl, tool, json_object_get(call, "input"), on_mcp_called, m) !=
	    0) {
		a->mcp_call_id[0] = '\0';
		schedule(a->rt, a->id);
	}
}

/* ---- the step ---- */

/* Carries out the transaction of an INTERRUPT or SETTLE decision (agent_step.h). */
static int
step_record(struct asess *a, const struct agent_decision *d, const struct agent_view *v)
{
	struct tx t;
	json_t *none = json_array();
	tx_begin(&t, a);
	if (d->close_span && v->open_span)
		tx_emit(&t, span_end_event(v->open_span, true, NULL));
	if (d->mark_acks)
		tx_mark(&t, v->acks);
	switch (d->emit) {
	case AGENT_EMIT_NONE:
		break;
	case AGENT_EMIT_IDLE_END_TURN:
		tx_status(&t, "idle");
		tx_emit(&t, idle_event("end_turn", NULL));
		break;
	case AGENT_EMIT_IDLE_REQUIRES_ACTION:
		tx_status(&t, "idle");
		tx_emit(&t, idle_event("requires_action", v->blocked));
		break;
	case AGENT_EMIT_IDLE_LAST_STOP:
		tx_status(&t, "idle");
		tx_emit(&t, idle_event(a->last_stop, NULL));
		break;
	case AGENT_EMIT_RUNNING:
		tx_status(&t, "running");
		tx_emit(&t, ev_new("session.status_running"));
		break;
	}
	if (d->requires_action == AGENT_REQUIRES_NONE)
		tx_loop_state(&t, a, none);
	else if (d->requires_action == AGENT_REQUIRES_BLOCKED)
		tx_loop_state(&t, a, v->blocked);
	json_decref(none);
	return tx_end(&t);
}

static bool
step_busy(const struct asess *a)
{
	return a->xfer || a->retry_timer || mcp_busy(a);
}

/* ---- the loop lease (PostgreSQL: one replica runs a session's steps) ---- */

#define LEASE_SCAN_MAX 64 /* orphaned sessions taken over per scan */

/* True when this replica may run the session's step now: it holds (or just took) the
 * lease. A session another replica holds is forgotten here; its holder steps it, woken
 * by the append notification, or our scan takes it over when the lease lapses. */
static bool
lease_take(struct asess *a)
{
	struct agent_runtime *rt = a->rt;
	int64_t now = now_real_us();
	int r = session_store_lease_take(rt->srv->db, a->id, rt->owner, now,
	                                 now + (int64_t)rt->lease_ms * 1000);
	if (r == 1)
		return true;
	if (r == 0) {
		/* another replica's: a call of ours still running is no longer ours to record */
		log_info("session's loop runs on another replica", "session_id", a->id);
		sess_free(a);
	} else {
		log_warn("cannot take the session's loop lease; left to the lease scan",
		         "session_id", a->id);
		if (!step_busy(a))
			sess_free(a);
	}
	return false;
}

/* After a step with nothing in flight: a session that is no longer running gives its
 * lease back, unless the log grew past the seen_events the step decided on (an append
 * from another replica found the lease held and left the step to us: step again). May
 * free a. */
static void
lease_settle(struct asess *a, size_t seen_events)
{
	struct agent_runtime *rt = a->rt;
	struct session_state st;
	if (session_store_state(rt->srv->db, a->id, &st) != 0)
		return;
	if (strcmp(st.status, "running") == 0 || strcmp(st.status, "rescheduling") == 0)
		return; /* still ours: renewed by the lease timer */
	int r = session_store_lease_release(rt->srv->db, a->id, rt->owner, (int64_t)seen_events);
	if (r == 1)
		sess_free(a);
	else if (r == 0)
		schedule(rt, a->id);
}

static void
on_lease_tick(struct loop *l, void *arg)
{
	struct agent_runtime *rt = arg;
	struct server *s = rt->srv;
	char **ids = NULL;
	size_t n = 0;
	rt->lease_timer = loop_timer_add(l, rt->lease_ms / 3, on_lease_tick, rt);
	int64_t now = now_real_us();
	if (rt->list &&
	    session_store_lease_renew(s->db, rt->owner, now + (int64_t)rt->lease_ms * 1000) != 0)
		log_warn("cannot renew the sessions' loop leases");
	if (rt->draining)
		return; /* take nothing over: another replica will */
	if (session_store_lease_orphans(s->db, now, LEASE_SCAN_MAX, &ids, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (sess_find(rt, ids[i]) == NULL)
			log_info("taking over session (no live loop lease)", "session_id", ids[i]);
		schedule(rt, ids[i]);
		free(ids[i]);
	}
	free(ids);
}

/* Another replica appended to sid (NULL: notifications may have been lost): the
 * sessions whose lease we hold step, since that replica could not. */
static void
on_remote_append(struct server *s, const char *sid)
{
	struct agent_runtime *rt = s->agents;
	if (rt == NULL)
		return;
	if (sid == NULL) {
		for (struct asess *a = rt->list; a; a = a->next)
			schedule(rt, a->id);
	} else if (sess_find(rt, sid) != NULL) {
		schedule(rt, sid);
	}
}

static void
step(struct asess *a)
{
	struct agent_runtime *rt = a->rt;
	struct server *s = rt->srv;
	json_t *events = NULL, *sdoc = NULL, *lstate = NULL;
	struct agent_view v;
	bool have_view = false;
	struct tx t;

	if (rt->shared && !lease_take(a))
		return; /* a was freed or is left as it is */
	for (int round = 0; round < 4; round++) {
		if (have_view)
			agent_view_free(&v);
		have_view = false;
		json_decref(events);
		json_decref(sdoc);
		json_decref(lstate);
		events = sdoc = lstate = NULL;
		int err;
		if ((sdoc = session_store_get(s->db, a->id, &err)) == NULL) {
			sess_free(a); /* deleted */
			goto out_freed;
		}
		const char *status = json_string_value(json_object_get(sdoc, "status"));
		if (status == NULL || strcmp(status, "terminated") == 0 ||
		    !json_is_null(json_object_get(sdoc, "archived_at"))) {
			sess_free(a);
			goto out_freed;
		}
		if (load_events(s, a->id, &events) != 0) {
			log_error("agent loop cannot read the event log", "session_id", a->id);
			goto out;
		}
		session_store_loop_state_get(s->db, a->id, &lstate);
		if (lstate && a->attempt == 0 && !a->xfer && !a->retry_timer) {
			json_int_t at = json_integer_value(json_object_get(lstate, "attempt"));
			a->attempt = at > 0 && at < 1000 ? (unsigned)at : 0;
		}
		const json_t *prev_ra = json_object_get(lstate, "requires_action");
		agent_view_build(events, &v);
		have_view = true;

		struct agent_step_in in = {.status = status,
		                           .busy = step_busy(a),
		                           .prev_requires_action = prev_ra,
		                           .view = &v};
		struct agent_decision d;
		agent_step_decide(&in, &d);
		switch (d.action) {
		case AGENT_ACT_INTERRUPT:
			sess_quiesce(a);
			a->attempt = 0;
			if (step_record(a, &d, &v) != 0)
				goto out;
			log_info("turn interrupted", "session_id", a->id);
			continue;
		case AGENT_ACT_WAIT:
			goto out; /* the call in flight picks up new input when it ends */
		case AGENT_ACT_CLOSE_SPAN:
			/* A call that was in flight when the server stopped: close its span;
			 * the input it carried is still unanswered, so it runs again. */
			tx_begin(&t, a);
			tx_emit(&t, span_end_event(v.open_span, true, NULL));
			if (tx_end(&t) != 0)
				goto out;
			continue;
		case AGENT_ACT_DENY: {
			size_t i;
			json_t *dn;
			tx_begin(&t, a);
			json_array_foreach(v.to_deny, i, dn)
			{
				bool mcp = json_is_true(json_object_get(dn, "mcp"));
				tx_emit(&t,
				        json_pack(
				            "{s:s, s:O, s:[{s:s, s:O}], s:b}", "type",
				            mcp ? "agent.mcp_tool_result" : "agent.tool_result",
				            mcp ? "mcp_tool_use_id" : "tool_use_id",
				            json_object_get(dn, "id"), "content", "type", "text",
				            "text", json_object_get(dn, "message"), "is_error", 1));
			}
			tx_mark(&t, v.acks);
			if (tx_end(&t) != 0)
				goto out;
			continue;
		}
		case AGENT_ACT_RUN_MCP:
			if (rt->draining)
				goto drained;
			/* Allowed MCP calls run here, in the control plane, one at a time. */
			mcp_run_next(a, sdoc, json_array_get(v.mcp_run, 0), status, v.acks);
			goto out;
		case AGENT_ACT_CALL_MODEL:
			if (rt->draining)
				goto drained;
			if (mcp_list_if_needed(a, sdoc, status))
				goto out;
			call_model(a, sdoc, &v, status);
			goto out;
		case AGENT_ACT_SETTLE:
			if (d.write)
				step_record(a, &d, &v);
			goto out;
		}
		goto out;
	}
	log_warn("agent loop step did not settle", "session_id", a->id);
	goto out;
drained:
	/* the log already says what is owed; whoever runs the session next reads it */
	log_info("draining: the session's next call is left to the next server", "session_id",
	         a->id);
out:
	if (have_view)
		agent_view_free(&v);
	if (rt->shared && events && !step_busy(a))
		lease_settle(a, json_array_size(events)); /* may free a */
out_freed:
	json_decref(events);
	json_decref(sdoc);
	json_decref(lstate);
}

/* ---- module interface ---- */

void
agent_session_wake(struct server *s, const char *session_id)
{
	if (s->agents == NULL || session_id == NULL)
		return;
	schedule(s->agents, session_id);
}

void
agent_session_drop(struct server *s, const char *session_id)
{
	struct asess *a;
	if (s->agents == NULL || session_id == NULL)
		return;
	if ((a = sess_find(s->agents, session_id)) != NULL)
		sess_free(a);
}

/* A zero setting means the built-in default (struct server_config). */
static unsigned
cfg_or(unsigned v, unsigned dflt)
{
	return v ? v : dflt;
}

int
agent_init(struct server *s)
{
	struct agent_runtime *rt = xcalloc(1, sizeof(*rt));
	char **ids = NULL;
	size_t n = 0;

	rt->srv = s;
	rt->httpc = httpc_new(s->loop, NULL);
	if (rt->httpc == NULL) {
		free(rt);
		return AL_E_INTERNAL;
	}
	/* Backoff base and answer budget; tests shorten the first. */
	rt->retry_base_ms = cfg_or(s->cfg.model_retry_base_ms, 1000);
	rt->max_tokens = cfg_or(s->cfg.model_max_tokens, 8192);
	rt->mcp_timeout_ms = cfg_or(s->cfg.mcp_timeout_ms, 30000);
	rt->mcp_call_timeout_ms = cfg_or(s->cfg.mcp_call_timeout_ms, 120000);
	s->agents = rt;
	rt->shared = session_store_lease_shared(s->db);
	rt->lease_ms = cfg_or(s->cfg.loop_lease_ms, 15000);
	if (rt->shared) {
		unsigned char rnd[16];
		random_bytes(rnd, sizeof(rnd));
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(rt->owner + 2 * i, 3, "%02x", rnd[i]);
		rt->lease_timer = loop_timer_add(s->loop, rt->lease_ms / 3, on_lease_tick, rt);
		events_on_remote_append(s, on_remote_append);
	}
	/* Sessions that were running when the server stopped continue from the log. */
	if (session_store_list_active(s->db, &ids, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			log_info("resuming session", "session_id", ids[i]);
			schedule(rt, ids[i]);
			free(ids[i]);
		}
		free(ids);
	}
	return 0;
}

void
agent_drain(struct server *s)
{
	struct agent_runtime *rt = s->agents;
	if (rt == NULL)
		return;
	rt->draining = true;
	/* a retry waiting for its backoff is not in flight: the next server makes it */
	for (struct asess *a = rt->list; a; a = a->next) {
		loop_timer_cancel(s->loop, a->retry_timer);
		a->retry_timer = NULL;
	}
}

size_t
agent_calls_in_flight(struct server *s)
{
	size_t n = 0;
	if (s->agents == NULL)
		return 0;
	for (struct asess *a = s->agents->list; a; a = a->next)
		n += (a->xfer != NULL) + (a->mcp_call_id[0] != '\0') + a->mcp_listing;
	return n;
}

void
agent_shutdown(struct server *s)
{
	struct agent_runtime *rt = s->agents;
	if (rt == NULL)
		return;
	if (rt->shared) {
		loop_timer_cancel(s->loop, rt->lease_timer);
		events_on_remote_append(s, NULL);
		/* whatever we still hold lapses now: the next replica's scan resumes it */
		if (session_store_lease_expire_all(s->db, rt->owner) != 0)
			log_warn(
			    "cannot give the sessions' loop leases back; they lapse after the TTL");
	}
	while (rt->list)
		sess_free(rt->list);
	httpc_free(rt->httpc);
	free(rt);
	s->agents = NULL;
}
