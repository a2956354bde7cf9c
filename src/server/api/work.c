/* The self-hosted work queue: poll (long-poll up to 999 ms) with reclaim, ack,
 * heartbeat leases with compare-and-set fencing, stop, stats, list, get, update,
 * and lease expiry. See work.h, work-protocol.md §3–§4 and docs/server/work.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "api.h"
#include "audit.h"
#include "auth.h"
#include "environment_store.h"
#include "err.h"
#include "event_store.h"
#include "events.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "session_store.h"
#include "util.h"
#include "vaults.h"
#include "validate.h"
#include "work.h"
#include "work_store.h"
#include "xalloc.h"

#define LEASE_SCAN_MS 1000
#define WORKERS_WINDOW_US (30LL * 1000000)

struct waiter {
	struct api_call *call;
	struct waiter *next;
	struct loop_timer *timer;
	char environment_id[80];
	char worker_id[128];
	uint64_t reclaim_ms;
};

struct work_waiters {
	struct waiter *head;
	struct loop_timer *lease_timer;
};

/* ---- rendering ---- */

static json_t *
col_time(int64_t us)
{
	return us ? api_time(us) : json_null();
}
static json_t *
work_render(const struct work_item *w, const char *secret)
{
	json_t *o = json_object();
	json_object_set_new(o, "type", json_string("work"));
	json_object_set_new(o, "id", json_string(w->id));
	json_object_set_new(o, "environment_id", json_string(w->environment_id));
	json_object_set_new(o, "data",
	                    json_pack("{s:s, s:s}", "type", w->data_type, "id", w->session_id));
	json_object_set_new(o, "state", json_string(w->state));
	json_object_set_new(o, "metadata", w->metadata ? json_incref(w->metadata) : json_object());
	json_object_set_new(o, "secret", secret ? json_string(secret) : json_null());
	json_object_set_new(o, "created_at", col_time(w->created_at));
	json_object_set_new(o, "acknowledged_at", col_time(w->acknowledged_at));
	json_object_set_new(o, "started_at", col_time(w->started_at));
	json_object_set_new(o, "latest_heartbeat_at", col_time(w->latest_heartbeat_at));
	json_object_set_new(o, "stop_requested_at", col_time(w->stop_requested_at));
	json_object_set_new(o, "stopped_at", col_time(w->stopped_at));
	return o;
}

static json_t *
work_get_json(struct server *s, const char *wid, const char *secret)
{
	struct work_item w;
	if (work_store_get(s->db, NULL, wid, &w) != 0)
		return NULL;
	json_t *o = work_render(&w, secret);
	work_item_reset(&w);
	return o;
}
int
work_session_live(struct server *s, const char *session_id, bool *live)
{
	return work_store_session_live(s->db, session_id, live);
}
/* ---- enqueue and session hooks ---- */

int
work_enqueue_tx(struct server *s, const char *environment_id, const char *session_id)
{
	bool live = false;
	int r;
	if ((r = work_store_session_live(s->db, session_id, &live)) != 0 || live)
		return r;
	char *id = id_new("work_");
	r = work_store_insert(s->db, id, environment_id, session_id, s->cfg.lease_ttl_s,
	                      now_real_us());
	free(id);
	return r;
}
int
work_session_ended_tx(struct server *s, const char *session_id)
{
	/* Never-acked items stop outright; acked ones get time to wind down. */
	return work_store_end_session(s->db, session_id, now_real_us());
}
static int
environment_check(struct api_call *c, const char *env_id)
{
	int r = AL_E_NOTFOUND;
	if (auth_can_environment(&c->who, env_id))
		r = environment_store_live(c->srv->db, env_id);
	if (r == AL_E_NOTFOUND)
		api_reply_error(c, 404, "not_found_error", "environment_not_found",
		                "environment %s not found", env_id);
	else if (r == AL_E_CONFLICT)
		api_reply_error(c, 400, "invalid_request_error", "environment_archived",
		                "environment %s is archived", env_id);
	else if (r != 0)
		api_reply_err(c, AL_E_IO, "database error");
	return r;
}
/* ---- access checks ---- */

static void
note_worker(struct server *s, const char *env_id, const char *worker_id)
{
	if (worker_id == NULL || *worker_id == '\0')
		return;
	work_store_note_worker(s->db, env_id, worker_id, now_real_us());
}
/* Loads the item; a sessions token may touch only its own item. */
static int
item_check(struct api_call *c, struct work_item *w, bool keep_metadata)
{
	const char *env_id = c->params[0], *wid = c->params[1];
	int r = AL_E_NOTFOUND;
	if (auth_can_environment(&c->who, env_id) &&
	    (c->who.kind != PRINCIPAL_SESSION_TOKEN || strcmp(c->who.work_id, wid) == 0))
		r = work_store_get(c->srv->db, env_id, wid, w);
	/* Only an update needs the metadata; the others then have nothing to free. */
	if (r == 0 && !keep_metadata) {
		json_decref(w->metadata);
		w->metadata = NULL;
	}
	if (r == AL_E_NOTFOUND)
		api_reply_error(c, 404, "not_found_error", NULL, "work %s not found", wid);
	else if (r != 0)
		api_reply_err(c, r, "database error");
	return r;
}

/* ---- poll ---- */

static json_t *
heartbeat_state(struct server *s, const char *wid)
{
	struct work_item w;
	if (work_store_get(s->db, NULL, wid, &w) != 0)
		return NULL;
	json_t *o = json_object();
	json_object_set_new(o, "last_heartbeat",
	                    w.has_heartbeat ? json_string(w.last_heartbeat) : json_null());
	json_object_set_new(o, "lease_extended", json_false());
	json_object_set_new(o, "state", json_string(w.state));
	json_object_set_new(o, "ttl_seconds", json_integer(w.ttl_seconds));
	work_item_reset(&w);
	return o;
}
/* Claims the oldest deliverable item: queued and never delivered, or delivered but
 * not acked within reclaim_ms. A fresh sessions token is minted per delivery; an
 * earlier delivery's token dies with it. Returns the Work JSON with secret, or NULL. */
static json_t *
try_claim(struct server *s, const char *env_id, const char *worker_id, uint64_t reclaim_ms,
          int *err)
{
	json_t *out = NULL;
	char wid[80] = "";
	char *token = NULL, *secret = NULL;
	char hash[65];
	int64_t now = now_real_us();
	int r;
	*err = 0;
	token = token_new(TOKEN_PREFIX_SESSION);
	sha256_hex(token, strlen(token), hash);
	r = work_store_claim(s->db, env_id, now - (int64_t)reclaim_ms * 1000, worker_id, hash, now,
	                     wid, sizeof(wid));
	if (r != 0) {
		secret_free(token);
		if (r != AL_E_NOTFOUND)
			*err = AL_E_IO;
		return NULL;
	}
	json_t *sj = json_pack("{s:s}", "sessions_token", token);
	/* The environment's networking travels in the secret (an airlock extension the
	 * SDK's worker ignores): it reaches `worker run` through its secret file as well as
	 * the poller, and belongs to this delivery (docs/worker/egress.md). */
	json_t *env = environment_store_get(s->db, env_id, &r);
	json_t *nw = env ? json_object_get(json_object_get(env, "config"), "networking") : NULL;
	if (nw && !json_is_null(nw))
		json_object_set(sj, "networking", nw);
	json_decref(env);
	char *sjs = json_dumps(sj, JSON_COMPACT);
	json_decref(sj);
	secret = base64url_encode(sjs, strlen(sjs));
	secret_free(sjs);
	out = work_get_json(s, wid, secret);
	log_info("work delivered", "work_id", wid, "environment_id", env_id, "worker_id",
	         worker_id ? worker_id : "");
	secret_free(secret);
	secret_free(token);
	return out;
}

static void
waiter_remove(struct server *s, struct waiter *w)
{
	struct waiter **pp = &s->waiters->head;
	while (*pp && *pp != w)
		pp = &(*pp)->next;
	if (*pp)
		*pp = w->next;
	loop_timer_cancel(s->loop, w->timer);
	free(w);
}

static void
waiter_closed(struct api_call *c)
{
	waiter_remove(c->srv, c->owner);
}

static void
waiter_timeout(struct loop *l, void *arg)
{
	struct waiter *w = arg;
	struct api_call *c = w->call;
	struct server *s = c->srv;
	int err;
	w->timer = NULL;
	json_t *item = try_claim(s, w->environment_id, w->worker_id, w->reclaim_ms, &err);
	waiter_remove(s, w);
	if (err)
		api_reply_err(c, err, "cannot poll");
	else
		api_reply_json(c, 200, item ? item : json_null());
}

void
work_kick(struct server *s, const char *environment_id)
{
	if (s->waiters == NULL)
		return;
	/* Oldest waiter first, one claim each, until the queue is dry. */
	struct waiter *w = s->waiters->head, *prev_last = NULL;
	(void)prev_last;
	while (w) {
		struct waiter *next = w->next;
		if (strcmp(w->environment_id, environment_id) == 0) {
			int err;
			json_t *item =
			    try_claim(s, environment_id, w->worker_id, w->reclaim_ms, &err);
			if (item == NULL)
				return;
			struct api_call *c = w->call;
			waiter_remove(s, w);
			api_reply_json(c, 200, item);
		}
		w = next;
	}
}

/* Another replica queued work (PostgreSQL): env_id's held polls claim it now. NULL: its
 * notifications may have been lost, so every environment with a held poll is checked. */
static void
work_queued_elsewhere(struct server *s, const char *env_id)
{
	if (env_id) {
		work_kick(s, env_id);
		return;
	}
	/* collected first: a kick answers polls and unlinks them */
	json_t *envs = json_object();
	for (struct waiter *w = s->waiters ? s->waiters->head : NULL; w; w = w->next)
		json_object_set_new(envs, w->environment_id, json_true());
	const char *k;
	json_t *v;
	json_object_foreach(envs, k, v) work_kick(s, k);
	json_decref(envs);
}

static void
poll_work(struct api_call *c)
{
	const char *env_id = c->params[0];
	const char *bm = query_get(&c->query, "block_ms");
	const char *rc = query_get(&c->query, "reclaim_older_than_ms");
	const char *worker_id = http_request_header(c->http, "anthropic-worker-id");
	uint64_t block_ms = 0, reclaim_ms = 5000;
	int err;
	if (bm && (parse_uint_cstr(bm, 999, &block_ms) != 0 || block_ms == 0)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "block_ms: must be an integer between 1 and 999");
		return;
	}
	if (rc && (parse_uint_cstr(rc, UINT32_MAX, &reclaim_ms) != 0 || reclaim_ms == 0)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "reclaim_older_than_ms: must be a positive integer");
		return;
	}
	if (worker_id && strlen(worker_id) > 120) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "anthropic-worker-id: at most 120 characters");
		return;
	}
	if (environment_check(c, env_id) != 0)
		return;
	note_worker(c->srv, env_id, worker_id);
	json_t *item = try_claim(c->srv, env_id, worker_id, reclaim_ms, &err);
	if (err) {
		api_reply_err(c, err, "cannot poll");
		return;
	}
	/* draining (docs/server/drain.md): a poll is not held, so it cannot hold the exit */
	if (item || block_ms == 0 || c->srv->draining) {
		api_reply_json(c, 200, item ? item : json_null());
		return;
	}
	struct waiter *w = xcalloc(1, sizeof(*w));
	w->call = c;
	snprintf(w->environment_id, sizeof(w->environment_id), "%s", env_id);
	snprintf(w->worker_id, sizeof(w->worker_id), "%s", worker_id ? worker_id : "");
	w->reclaim_ms = reclaim_ms;
	/* Append: the longest-waiting worker is served first. */
	struct waiter **pp = &c->srv->waiters->head;
	while (*pp)
		pp = &(*pp)->next;
	*pp = w;
	w->timer = loop_timer_add(c->srv->loop, block_ms, waiter_timeout, w);
	api_hold(c, w, waiter_closed);
}

/* ---- ack, heartbeat, stop ---- */

static void
ack_work(struct api_call *c)
{
	struct work_item w;
	if (item_check(c, &w, false) != 0)
		return;
	if (strcmp(w.state, "stopping") == 0 || strcmp(w.state, "stopped") == 0) {
		api_reply_error(c, 409, "invalid_request_error", NULL, "work %s is %s", w.id,
		                w.state);
		return;
	}
	if (strcmp(w.state, "queued") == 0) {
		int64_t now = now_real_us();
		/* The lease starts at ack: an acked item that never heartbeats is reclaimed
		 * after one TTL. */
		int r =
		    work_store_ack(c->srv->db, w.id, now, now + (int64_t)w.ttl_seconds * 1000000);
		if (r != 0 && r != AL_E_CONFLICT) {
			work_item_reset(&w);
			api_reply_err(c, r, "cannot ack");
			return;
		}
		log_info("work acked", "work_id", w.id);
	}
	api_reply_json(c, 200, work_get_json(c->srv, w.id, NULL));
}

static void
heartbeat_work(struct api_call *c)
{
	struct work_item w;
	const char *expected = query_get(&c->query, "expected_last_heartbeat");
	const char *dttl = query_get(&c->query, "desired_ttl_seconds");
	uint64_t ttl;
	if (item_check(c, &w, false) != 0)
		return;
	ttl = w.ttl_seconds;
	if (dttl) {
		if (parse_uint_cstr(dttl, UINT32_MAX, &ttl) != 0) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "desired_ttl_seconds: must be a positive integer");
			return;
		}
		ttl = ttl < 10 ? 10 : ttl > 600 ? 600 : ttl;
	}
	if (strcmp(w.state, "queued") == 0) {
		api_reply_error(c, 409, "invalid_request_error", NULL,
		                "work %s has not been acknowledged", w.id);
		return;
	}
	if (strcmp(w.state, "stopping") == 0 || strcmp(w.state, "stopped") == 0) {
		json_t *o = json_pack("{s:s, s:o, s:b, s:s, s:i}", "type", "work_heartbeat",
		                      "last_heartbeat",
		                      w.has_heartbeat ? json_string(w.last_heartbeat) : json_null(),
		                      "lease_extended", strcmp(w.state, "stopping") == 0, "state",
		                      w.state, "ttl_seconds", (int)w.ttl_seconds);
		api_reply_json(c, 200, o);
		return;
	}
	if (expected == NULL) {
		api_reply_error(
		    c, 400, "invalid_request_error", NULL,
		    "expected_last_heartbeat: required (NO_HEARTBEAT on the first beat)");
		return;
	}
	bool first = strcmp(expected, "NO_HEARTBEAT") == 0;
	bool match =
	    first ? !w.has_heartbeat : (w.has_heartbeat && strcmp(expected, w.last_heartbeat) == 0);
	if (!match) {
		json_t *details =
		    json_pack("{s:s, s:o}", "error_code", "heartbeat_precondition_failed",
		              "current_state", heartbeat_state(c->srv, w.id));
		api_reply_error_details(c, 412, "invalid_request_error", details,
		                        "expected_last_heartbeat does not match: the lease is held "
		                        "by another worker");
		return;
	}
	/* A new opaque value per beat; µs timestamps could repeat within one µs, so the
	 * value also carries a counter suffix when that happens. */
	int64_t now = now_real_us();
	char hb[48];
	time_fmt_rfc3339(now, hb);
	if (w.has_heartbeat && strcmp(hb, w.last_heartbeat) <= 0) {
		now = now + 1;
		time_fmt_rfc3339(now, hb);
	}
	int r = work_store_heartbeat(c->srv->db, w.id, hb, now, (unsigned)ttl, first, expected);
	if (r == AL_E_PRECOND) {
		json_t *details =
		    json_pack("{s:s, s:o}", "error_code", "heartbeat_precondition_failed",
		              "current_state", heartbeat_state(c->srv, w.id));
		api_reply_error_details(c, 412, "invalid_request_error", details,
		                        "expected_last_heartbeat does not match");
		return;
	}
	if (r != 0) {
		api_reply_err(c, r, "cannot record heartbeat");
		return;
	}
	api_reply_json(c, 200,
	               json_pack("{s:s, s:s, s:b, s:s, s:i}", "type", "work_heartbeat",
	                         "last_heartbeat", hb, "lease_extended", 1, "state", "active",
	                         "ttl_seconds", (int)ttl));
}

/* A worker releases an item it holds (idle at --max-idle, or giving up) while a message
 * may be arriving: send_events saw the item still live and queued nothing, so without
 * this the session would wait for work forever. Inside the stop's transaction: if the
 * session is open and still has to run (status running, or input the loop has not taken
 * in), it gets a fresh item. */
static int
requeue_if_pending_tx(struct server *s, const struct work_item *w, bool *queued)
{
	struct session_state st;
	bool pending = false;
	int r;
	*queued = false;
	if (w->session_id[0] == '\0')
		return 0;
	if ((r = session_store_state(s->db, w->session_id, &st)) != 0)
		return r == AL_E_NOTFOUND ? 0 : r;
	if (st.archived || strcmp(st.status, "terminated") == 0)
		return 0;
	pending = strcmp(st.status, "running") == 0 || strcmp(st.status, "rescheduling") == 0;
	if (!pending && (r = event_store_has_unprocessed(s->db, w->session_id, &pending)) != 0)
		return r;
	if (!pending)
		return 0;
	if ((r = work_enqueue_tx(s, w->environment_id, w->session_id)) == 0)
		*queued = true;
	return r;
}

static void
stop_work(struct api_call *c)
{
	struct work_item w;
	static const char *const allowed[] = {"force", NULL};
	bool force = false;
	if (api_body_only(c, allowed))
		return;
	if (c->body) {
		json_t *f = json_object_get(c->body, "force");
		if (f && !json_is_boolean(f) && !json_is_null(f)) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "force: must be a boolean");
			return;
		}
		force = json_is_true(f);
	}
	if (item_check(c, &w, false) != 0)
		return;
	if (strcmp(w.state, "stopped") == 0) {
		api_reply_error(c, 409, "invalid_request_error", NULL, "work %s is already stopped",
		                w.id);
		return;
	}
	int64_t now = now_real_us();
	bool now_stopped = force || strcmp(w.state, "queued") == 0, requeued = false;
	int r;
	if ((r = db_begin(c->srv->db)) != 0)
		goto fail;
	r = work_store_stop(c->srv->db, w.id, now_stopped, now);
	if (r == 0 && now_stopped)
		r = requeue_if_pending_tx(c->srv, &w, &requeued);
	if ((r != 0 && r != AL_E_CONFLICT) || (r = db_commit(c->srv->db)) != 0) {
		db_rollback(c->srv->db);
		goto fail;
	}
	log_info("work stop", "work_id", w.id, "force", force ? "true" : "false", "requeued",
	         requeued ? "true" : "false");
	if (requeued)
		work_kick(c->srv, w.environment_id);
	api_reply_json(c, 200, work_get_json(c->srv, w.id, NULL));
	return;
fail:
	api_reply_err(c, r ? r : AL_E_IO, "cannot stop work");
}

/* ---- egress decisions (issue 14) ---- */

#define EGRESS_BATCH_MAX 256

static const char *
egress_str(json_t *d, const char *key, size_t max, bool *bad)
{
	json_t *v = json_object_get(d, key);
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		*bad = true;
		return NULL;
	}
	return json_string_value(v);
}

/* A worker reports its egress proxy's decisions for the item's session; each becomes an
 * `egress.request` record of the audit log (docs/server/audit.md), durable before the
 * answer. Strict: a malformed batch is refused whole, nothing recorded. */
static void
egress_work(struct api_call *c)
{
	static const char *const allowed[] = {"decisions", NULL};
	static const char *const keys[] = {"time",     "decision",   "host",        "address",
	                                   "port",     "method",     "path",        "rule",
	                                   "bytes_up", "bytes_down", "credentials", NULL};
	struct work_item w;
	struct audit_event *evs = NULL;
	json_t *res_all = NULL, *ds, *d;
	char sub[128];
	size_t i, n;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	ds = json_object_get(c->body, "decisions");
	if (!json_is_array(ds) || json_array_size(ds) == 0 ||
	    json_array_size(ds) > EGRESS_BATCH_MAX) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "decisions: must be a list of 1 to %d decisions", EGRESS_BATCH_MAX);
		return;
	}
	if (item_check(c, &w, false) != 0)
		return;
	n = json_array_size(ds);
	evs = xcalloc(n, sizeof(*evs));
	res_all = json_array();
	json_array_foreach(ds, i, d)
	{
		bool bad = !json_is_object(d);
		const char *k;
		json_t *v;
		json_object_foreach(d, k, v)
		{
			bool known = false;
			for (size_t j = 0; keys[j]; j++)
				known = known || strcmp(k, keys[j]) == 0;
			bad = bad || !known;
		}
		const char *dec = egress_str(d, "decision", 16, &bad);
		const char *t = egress_str(d, "time", 40, &bad);
		json_t *port = json_object_get(d, "port"), *up = json_object_get(d, "bytes_up"),
		       *down = json_object_get(d, "bytes_down");
		(void)egress_str(d, "host", 253, &bad);
		(void)egress_str(d, "address", 64, &bad);
		(void)egress_str(d, "method", 24, &bad);
		(void)egress_str(d, "path", 256, &bad);
		const char *rule = egress_str(d, "rule", 512, &bad);
		if (json_object_get(d, "credentials") != NULL) /* ids of injected secrets */
			(void)egress_str(d, "credentials", 512, &bad);
		if (!bad && (strcmp(dec, "allowed") != 0 && strcmp(dec, "denied") != 0))
			bad = true;
		if (!bad && time_parse_rfc3339(t, &evs[i].time_us) != 0)
			bad = true;
		if (!json_is_integer(port) || json_integer_value(port) < 0 ||
		    json_integer_value(port) > 65535 || !json_is_integer(up) ||
		    json_integer_value(up) < 0 || !json_is_integer(down) ||
		    json_integer_value(down) < 0)
			bad = true;
		if (bad) {
			api_reply_error(
			    c, 400, "invalid_request_error", NULL,
			    "decisions[%zu]: needs time (RFC 3339), decision "
			    "(allowed|denied), host, address, port, method, path, rule, "
			    "bytes_up, bytes_down, and nothing else",
			    i);
			goto out;
		}
		json_t *res = json_deep_copy(d);
		json_object_del(res, "time");
		json_object_del(res, "decision");
		json_object_del(res, "rule");
		json_object_set_new(res, "session_id", json_string(w.session_id));
		json_object_set_new(res, "work_id", json_string(w.id));
		json_object_set_new(res, "environment_id", json_string(w.environment_id));
		json_array_append_new(res_all, res);
		evs[i].request_id = c->request_id;
		evs[i].action = "egress.request";
		evs[i].resources = res;
		evs[i].decision = strcmp(dec, "allowed") == 0 ? "allow" : "deny";
		evs[i].rule = rule;
		evs[i].outcome = dec;
		audit_principal(&evs[i], &c->who, sub, sizeof(sub));
	}
	int r = audit_emit_batch(c->srv, evs, n);
	if (r != 0) {
		api_reply_err(c, r, "cannot record the egress decisions");
		goto out;
	}
	api_reply_json(c, 200,
	               json_pack("{s:s, s:I}", "type", "egress_decisions_recorded", "recorded",
	                         (json_int_t)n));
out:
	json_decref(res_all);
	free(evs);
	work_item_reset(&w);
}

/* The session's environment_variable secrets, with their values, for its worker's egress
 * proxy (issue 14, docs/worker/egress.md "Secrets"): only the item's own sessions token
 * may read them (never an API or environment key), and the answer is recorded in the
 * audit log by credential id. */
static void
egress_secrets(struct api_call *c)
{
	struct work_item w;
	json_t *sess = NULL, *data = NULL, *ids = NULL, *d;
	size_t i;
	int r;
	if (c->who.kind != PRINCIPAL_SESSION_TOKEN) {
		api_reply_error(c, 403, "permission_error", NULL,
		                "only the work item's sessions token may read its secrets");
		return;
	}
	if (item_check(c, &w, false) != 0)
		return;
	if ((sess = session_store_get(c->srv->db, w.session_id, &r)) == NULL) {
		api_reply_err(c, r, "cannot load the session");
		goto out;
	}
	json_t *vids = json_object_get(sess, "vault_ids");
	if ((r = vaults_env_secrets(c->srv, json_is_array(vids) ? vids : NULL, &data)) != 0) {
		api_reply_err(c, r, "cannot read the session's secrets");
		goto out;
	}
	ids = json_array();
	json_array_foreach(data, i, d) json_array_append(ids, json_object_get(d, "credential_id"));
	audit_api(c, "vault.secret.deliver", NULL, "ok",
	          json_pack("{s:s, s:s, s:O}", "session_id", w.session_id, "work_id", w.id,
	                    "credential_ids", ids));
	api_reply_json(c, 200, json_pack("{s:s, s:O}", "type", "egress_secrets", "data", data));
out:
	/* the values leave by the answer only */
	json_array_foreach(data, i, d)
	{
		json_t *v = json_object_get(d, "value");
		if (json_is_string(v))
			explicit_wipe((void *)json_string_value(v), json_string_length(v));
	}
	json_decref(data);
	json_decref(ids);
	json_decref(sess);
	work_item_reset(&w);
}

/* ---- stats, list, get, update ---- */

static void
work_stats(struct api_call *c)
{
	const char *env_id = c->params[0];
	if (environment_check(c, env_id) != 0)
		return;
	struct work_stats ws;
	work_store_stats(c->srv->db, env_id, now_real_us() - WORKERS_WINDOW_US, &ws);
	json_t *o =
	    json_pack("{s:s, s:I, s:I, s:o, s:I}", "type", "work_queue_stats", "depth",
	              (json_int_t)ws.depth, "pending", (json_int_t)ws.pending, "oldest_queued_at",
	              col_time(ws.oldest_queued_at), "workers_polling", (json_int_t)ws.workers);
	api_reply_json(c, 200, o);
}

/* Collects a store's rows into a page (validate_page_json renders it). */
static int
list_add(void *arg, const struct work_item *w)
{
	struct doc_page *page = arg;
	json_array_append_new(page->data, work_render(w, NULL));
	page->last_seq = w->seq;
	return 0;
}

/* The reference lists work to the environment's key only. airlock also lists it to a
 * server API key and an admin user (docs/server/work.md "Listing work"): an operator
 * watching the queue in the console should not need to paste a worker's key into a
 * browser. Read-only, and the list never carries a secret (`secret` is null for every
 * reader: a delivery's token travels in the poll's answer alone). A developer or user
 * role is refused by auth_user_may (the route is in no role's list), a sessions token
 * by the route's credential set. */
static void
work_list(struct api_call *c)
{
	const char *env_id = c->params[0];
	struct page_req pg;
	if (c->who.kind == PRINCIPAL_USER && c->who.role != ROLE_ADMIN) {
		/* api.c already refuses these (no role lists this route); kept here so a
		 * later entry in auth.c's user_routes cannot widen it by accident */
		api_reply_error(c, 403, "permission_error", NULL, "role %s may not list work items",
		                auth_role_name(c->who.role));
		return;
	}
	if (api_page_parse(c, 20, 1000, true, &pg) != 0)
		return;
	if (environment_check(c, env_id) != 0)
		return;
	struct doc_list q = {.has_cursor = pg.has_cursor,
	                     .after_seq = pg.after_seq,
	                     .limit = pg.limit,
	                     .desc = pg.desc};
	struct doc_page page = {.data = json_array()};
	if (work_store_list(c->srv->db, env_id, &q, list_add, &page, &page.more) != 0) {
		doc_page_free(&page);
		api_reply_err(c, AL_E_IO, "cannot list work");
		return;
	}
	api_reply_json(c, 200, validate_page_json(&page, pg.desc));
}

static void
work_get(struct api_call *c)
{
	struct work_item w;
	if (item_check(c, &w, false) != 0)
		return;
	api_reply_json(c, 200, work_get_json(c->srv, w.id, NULL));
}

static void
work_update(struct api_call *c)
{
	struct work_item w;
	static const char *const allowed[] = {"metadata", NULL};
	json_t *merged = NULL;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if (item_check(c, &w, true) != 0)
		return;
	json_t *in = json_object_get(c->body, "metadata");
	if (in == NULL) {
		work_item_reset(&w);
		api_reply_json(c, 200, work_get_json(c->srv, c->params[1], NULL));
		return;
	}
	int r = api_metadata(c, in, w.metadata, true, &merged);
	work_item_reset(&w);
	if (r != 0)
		return;
	r = work_store_set_metadata(c->srv->db, c->params[1], merged);
	json_decref(merged);
	if (r != 0) {
		api_reply_err(c, r, "cannot update work");
		return;
	}
	api_reply_json(c, 200, work_get_json(c->srv, c->params[1], NULL));
}

/* ---- lease expiry ---- */

struct expired {
	char **ids, **sids, **envs;
	size_t n;
};

static void
expired_add(void *arg, const char *id, const char *session_id, const char *environment_id)
{
	struct expired *e = arg;
	e->ids = xreallocarray(e->ids, e->n + 1, sizeof(*e->ids));
	e->sids = xreallocarray(e->sids, e->n + 1, sizeof(*e->sids));
	e->envs = xreallocarray(e->envs, e->n + 1, sizeof(*e->envs));
	e->ids[e->n] = xstrdup(id);
	e->sids[e->n] = xstrdup(session_id);
	e->envs[e->n] = xstrdup(environment_id);
	e->n++;
}

/* Items whose holder stopped heartbeating are stopped (their token dies with them)
 * and the session gets a fresh item, unless it has ended. */
static void
lease_scan(struct loop *l, void *arg)
{
	struct server *s = arg;
	struct expired ex = {0};
	int64_t now = now_real_us();
	s->waiters->lease_timer = loop_timer_add(l, LEASE_SCAN_MS, lease_scan, s);
	if (work_store_expired(s->db, now, 100, expired_add, &ex) != 0)
		return;
	char **ids = ex.ids, **sids = ex.sids, **envs = ex.envs;
	size_t n = ex.n;
	for (size_t i = 0; i < n; i++) {
		bool requeue = false;
		if (db_begin(s->db) != 0)
			break;
		int r = work_store_expire(s->db, ids[i], now);
		if (r == 0 && sids[i][0]) {
			requeue = session_store_open(s->db, sids[i]);
			if (requeue)
				r = work_enqueue_tx(s, envs[i], sids[i]);
		}
		if ((r != 0 && r != AL_E_CONFLICT) || db_commit(s->db) != 0) {
			db_rollback(s->db);
		} else if (r == 0) {
			log_warn("work lease expired", "work_id", ids[i], "requeued",
			         requeue ? "true" : "false");
			if (requeue)
				work_kick(s, envs[i]);
		}
	}
	for (size_t i = 0; i < n; i++) {
		free(ids[i]);
		free(sids[i]);
		free(envs[i]);
	}
	free(ids);
	free(sids);
	free(envs);
}

size_t
work_poller_count(struct server *s)
{
	size_t n = 0;
	if (s->waiters == NULL)
		return 0;
	for (struct waiter *w = s->waiters->head; w; w = w->next)
		n++;
	return n;
}

int
work_init(struct server *s)
{
	s->waiters = xcalloc(1, sizeof(*s->waiters));
	s->waiters->lease_timer = loop_timer_add(s->loop, LEASE_SCAN_MS, lease_scan, s);
	events_on_work_queued(s, work_queued_elsewhere);
	return 0;
}

/* Every held poll gets the empty answer now: the worker polls again and, while this
 * server drains, reaches another replica (its listener is closed). */
void
work_release_pollers(struct server *s)
{
	if (s->waiters == NULL)
		return;
	while (s->waiters->head) {
		struct waiter *w = s->waiters->head;
		struct api_call *c = w->call;
		waiter_remove(s, w);
		api_reply_json(c, 200, json_null());
	}
}

void
work_shutdown(struct server *s)
{
	if (s->waiters == NULL)
		return;
	work_release_pollers(s);
	loop_timer_cancel(s->loop, s->waiters->lease_timer);
	free(s->waiters);
	s->waiters = NULL;
}

#define CREDS_WORKER_ITEM (PRINCIPAL_API_KEY | PRINCIPAL_ENV_KEY | PRINCIPAL_SESSION_TOKEN)

const struct api_route work_routes[] = {
    {"GET", "/v1/environments/{}/work/poll", PRINCIPAL_ENV_KEY, poll_work},
    {"GET", "/v1/environments/{}/work/stats", PRINCIPAL_API_KEY, work_stats},
    {"GET", "/v1/environments/{}/work", PRINCIPAL_ENV_KEY | PRINCIPAL_API_KEY, work_list},
    {"POST", "/v1/environments/{}/work/{}/ack", CREDS_WORKER_ITEM, ack_work},
    {"POST", "/v1/environments/{}/work/{}/heartbeat", CREDS_WORKER_ITEM, heartbeat_work},
    {"POST", "/v1/environments/{}/work/{}/stop", CREDS_WORKER_ITEM, stop_work},
    {"POST", "/v1/environments/{}/work/{}/egress", CREDS_WORKER_ITEM, egress_work},
    {"GET", "/v1/environments/{}/work/{}/egress_secrets", CREDS_WORKER_ITEM, egress_secrets},
    {"GET", "/v1/environments/{}/work/{}", PRINCIPAL_API_KEY, work_get},
    {"POST", "/v1/environments/{}/work/{}", PRINCIPAL_API_KEY, work_update},
    {NULL, NULL, 0, NULL},
};
