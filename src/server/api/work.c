/* The self-hosted work queue: poll (long-poll up to 999 ms) with reclaim, ack,
 * heartbeat leases with compare-and-set fencing, stop, stats, list, get, update,
 * and lease expiry. See work.h, work-protocol.md §3–§4 and docs/server/work.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "api.h"
#include "auth.h"
#include "err.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "util.h"
#include "work.h"
#include "xalloc.h"

#define WORK_COLS                                                                                  \
	"id, environment_id, session_id, data_type, state, metadata, created_at, "                 \
	"acknowledged_at, started_at, latest_heartbeat_at, stop_requested_at, stopped_at, "        \
	"last_heartbeat, ttl_seconds, seq"
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
col_time(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return json_null();
	return api_time(sqlite3_column_int64(st, col));
}

static json_t *
work_render(sqlite3_stmt *st, const char *secret)
{
	json_t *meta = db_col_json(st, 5);
	json_t *o = json_object();
	json_object_set_new(o, "type", json_string("work"));
	json_object_set_new(o, "id", json_string(db_col_text(st, 0)));
	json_object_set_new(o, "environment_id", json_string(db_col_text(st, 1)));
	json_object_set_new(o, "data",
	                    json_pack("{s:s, s:s}", "type", db_col_text(st, 3), "id",
	                              db_col_text(st, 2) ? db_col_text(st, 2) : ""));
	json_object_set_new(o, "state", json_string(db_col_text(st, 4)));
	json_object_set_new(o, "metadata", meta ? meta : json_object());
	json_object_set_new(o, "secret", secret ? json_string(secret) : json_null());
	json_object_set_new(o, "created_at", col_time(st, 6));
	json_object_set_new(o, "acknowledged_at", col_time(st, 7));
	json_object_set_new(o, "started_at", col_time(st, 8));
	json_object_set_new(o, "latest_heartbeat_at", col_time(st, 9));
	json_object_set_new(o, "stop_requested_at", col_time(st, 10));
	json_object_set_new(o, "stopped_at", col_time(st, 11));
	return o;
}

struct work_row {
	char id[80];
	char environment_id[80];
	char session_id[80];
	char state[16];
	char last_heartbeat[48];
	bool has_heartbeat;
	unsigned ttl;
};

static int
work_load(struct server *s, const char *env_id, const char *wid, struct work_row *w)
{
	sqlite3_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(s->db,
	               "SELECT id, environment_id, COALESCE(session_id,''), state, last_heartbeat, "
	               "ttl_seconds FROM work WHERE id = ? AND environment_id = ?",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, wid);
	db_bind_text(st, 2, env_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(w->id, sizeof(w->id), "%s", db_col_text(st, 0));
		snprintf(w->environment_id, sizeof(w->environment_id), "%s", db_col_text(st, 1));
		snprintf(w->session_id, sizeof(w->session_id), "%s", db_col_text(st, 2));
		snprintf(w->state, sizeof(w->state), "%s", db_col_text(st, 3));
		w->has_heartbeat = sqlite3_column_type(st, 4) != SQLITE_NULL;
		snprintf(w->last_heartbeat, sizeof(w->last_heartbeat), "%s",
		         w->has_heartbeat ? db_col_text(st, 4) : "");
		w->ttl = (unsigned)sqlite3_column_int(st, 5);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

static json_t *
work_get_json(struct server *s, const char *wid, const char *secret)
{
	sqlite3_stmt *st = NULL;
	json_t *o = NULL;
	if (db_prepare(s->db, "SELECT " WORK_COLS " FROM work WHERE id = ?", &st) != 0)
		return NULL;
	db_bind_text(st, 1, wid);
	if (sqlite3_step(st) == SQLITE_ROW)
		o = work_render(st, secret);
	sqlite3_finalize(st);
	return o;
}

/* ---- enqueue and session hooks ---- */

int
work_session_live(struct server *s, const char *session_id, bool *live)
{
	sqlite3_stmt *st = NULL;
	if (db_prepare(s->db, "SELECT 1 FROM work WHERE session_id = ? AND state != 'stopped'",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	*live = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return 0;
}

int
work_enqueue_tx(struct server *s, const char *environment_id, const char *session_id)
{
	sqlite3_stmt *st = NULL;
	bool live = false;
	int r;
	if ((r = work_session_live(s, session_id, &live)) != 0 || live)
		return r;
	int64_t seq = db_next_seq(s->db, "work");
	char *id = id_new("work_");
	r = AL_E_IO;
	if (seq < 0 ||
	    db_prepare(s->db,
	               "INSERT INTO work(id, seq, environment_id, session_id, data_type, "
	               "state, ttl_seconds, created_at) VALUES (?, ?, ?, ?, 'session', "
	               "'queued', ?, ?)",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, seq);
	db_bind_text(st, 3, environment_id);
	db_bind_text(st, 4, session_id);
	sqlite3_bind_int(st, 5, (int)s->cfg.lease_ttl_s);
	sqlite3_bind_int64(st, 6, now_real_us());
	if (sqlite3_step(st) == SQLITE_DONE)
		r = 0;
out:
	sqlite3_finalize(st);
	free(id);
	return r;
}

int
work_session_ended_tx(struct server *s, const char *session_id)
{
	sqlite3_stmt *st = NULL;
	int64_t now = now_real_us();
	int r = AL_E_IO;
	/* Never-acked items stop outright; acked ones get time to wind down. */
	if (db_prepare(s->db,
	               "UPDATE work SET state = CASE WHEN state = 'queued' THEN 'stopped' "
	               "ELSE 'stopping' END, stop_requested_at = COALESCE(stop_requested_at, ?1), "
	               "stopped_at = CASE WHEN state = 'queued' THEN ?1 ELSE stopped_at END "
	               "WHERE session_id = ?2 AND state NOT IN ('stopped', 'stopping')",
	               &st) != 0)
		return AL_E_IO;
	sqlite3_bind_int64(st, 1, now);
	db_bind_text(st, 2, session_id);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = 0;
	sqlite3_finalize(st);
	return r;
}

/* ---- access checks ---- */

static int
environment_check(struct api_call *c, const char *env_id)
{
	sqlite3_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (!auth_can_environment(&c->who, env_id))
		goto reply;
	if (db_prepare(c->srv->db, "SELECT archived_at FROM environments WHERE id = ?", &st) != 0) {
		api_reply_err(c, AL_E_IO, "database error");
		return AL_E_IO;
	}
	db_bind_text(st, 1, env_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		r = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : AL_E_CONFLICT;
	sqlite3_finalize(st);
reply:
	if (r == AL_E_NOTFOUND)
		api_reply_error(c, 404, "not_found_error", "environment_not_found",
		                "environment %s not found", env_id);
	else if (r == AL_E_CONFLICT)
		api_reply_error(c, 400, "invalid_request_error", "environment_archived",
		                "environment %s is archived", env_id);
	return r;
}

/* Loads the item; a sessions token may touch only its own item. */
static int
item_check(struct api_call *c, struct work_row *w)
{
	const char *env_id = c->params[0], *wid = c->params[1];
	int r = AL_E_NOTFOUND;
	if (auth_can_environment(&c->who, env_id) &&
	    (c->who.kind != PRINCIPAL_SESSION_TOKEN || strcmp(c->who.work_id, wid) == 0))
		r = work_load(c->srv, env_id, wid, w);
	if (r == AL_E_NOTFOUND)
		api_reply_error(c, 404, "not_found_error", NULL, "work %s not found", wid);
	else if (r != 0)
		api_reply_err(c, r, "database error");
	return r;
}

/* ---- poll ---- */

static void
note_worker(struct server *s, const char *env_id, const char *worker_id)
{
	sqlite3_stmt *st = NULL;
	if (worker_id == NULL || *worker_id == '\0')
		return;
	if (db_prepare(
	        s->db,
	        "INSERT INTO workers_seen(environment_id, worker_id, seen_at) VALUES (?,?,?) "
	        "ON CONFLICT(environment_id, worker_id) DO UPDATE SET seen_at = excluded.seen_at",
	        &st) != 0)
		return;
	db_bind_text(st, 1, env_id);
	db_bind_text(st, 2, worker_id);
	sqlite3_bind_int64(st, 3, now_real_us());
	sqlite3_step(st);
	sqlite3_finalize(st);
}

/* Claims the oldest deliverable item: queued and never delivered, or delivered but
 * not acked within reclaim_ms. A fresh sessions token is minted per delivery; an
 * earlier delivery's token dies with it. Returns the Work JSON with secret, or NULL. */
static json_t *
try_claim(struct server *s, const char *env_id, const char *worker_id, uint64_t reclaim_ms,
          int *err)
{
	sqlite3_stmt *st = NULL;
	json_t *out = NULL;
	char wid[80] = "";
	char *token = NULL, *secret = NULL;
	char hash[65];
	int64_t now = now_real_us();
	*err = 0;
	if (db_begin(s->db) != 0) {
		*err = AL_E_IO;
		return NULL;
	}
	if (db_prepare(s->db,
	               "SELECT id FROM work WHERE environment_id = ? AND state = 'queued' AND "
	               "(delivered_at IS NULL OR delivered_at < ?) ORDER BY seq LIMIT 1",
	               &st) != 0)
		goto fail;
	db_bind_text(st, 1, env_id);
	sqlite3_bind_int64(st, 2, now - (int64_t)reclaim_ms * 1000);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(wid, sizeof(wid), "%s", db_col_text(st, 0));
	sqlite3_finalize(st);
	st = NULL;
	if (wid[0] == '\0') {
		db_rollback(s->db);
		return NULL;
	}
	token = token_new(TOKEN_PREFIX_SESSION);
	sha256_hex(token, strlen(token), hash);
	if (db_prepare(s->db,
	               "UPDATE work SET delivered_at = ?, delivered_to = ?, token_hash = ? "
	               "WHERE id = ?",
	               &st) != 0)
		goto fail;
	sqlite3_bind_int64(st, 1, now);
	db_bind_text(st, 2, worker_id);
	db_bind_text(st, 3, hash);
	db_bind_text(st, 4, wid);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if (db_commit(s->db) != 0)
		goto fail_nocommit;
	json_t *sj = json_pack("{s:s}", "sessions_token", token);
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
fail:
	sqlite3_finalize(st);
	db_rollback(s->db);
fail_nocommit:
	secret_free(token);
	*err = AL_E_IO;
	return NULL;
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
	if (item || block_ms == 0) {
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

static int
exec_update(struct server *s, const char *sql, const char *wid, int64_t a, int64_t b)
{
	sqlite3_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(s->db, sql, &st) != 0)
		return AL_E_IO;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	db_bind_text(st, 3, wid);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = sqlite3_changes(s->db->h) > 0 ? 0 : AL_E_CONFLICT;
	sqlite3_finalize(st);
	return r;
}

static void
ack_work(struct api_call *c)
{
	struct work_row w;
	if (item_check(c, &w) != 0)
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
		int r = exec_update(c->srv,
		                    "UPDATE work SET state = 'starting', acknowledged_at = ?1, "
		                    "lease_expires_at = ?2 WHERE id = ?3 AND state = 'queued'",
		                    w.id, now, now + (int64_t)w.ttl * 1000000);
		if (r != 0 && r != AL_E_CONFLICT) {
			api_reply_err(c, r, "cannot ack");
			return;
		}
		log_info("work acked", "work_id", w.id);
	}
	api_reply_json(c, 200, work_get_json(c->srv, w.id, NULL));
}

static json_t *
heartbeat_state(struct server *s, const char *wid)
{
	sqlite3_stmt *st = NULL;
	json_t *o = NULL;
	if (db_prepare(s->db,
	               "SELECT last_heartbeat, state, ttl_seconds, lease_expires_at FROM work "
	               "WHERE id = ?",
	               &st) != 0)
		return NULL;
	db_bind_text(st, 1, wid);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *st_state = db_col_text(st, 1);
		o = json_object();
		json_object_set_new(o, "last_heartbeat",
		                    db_col_text(st, 0) ? json_string(db_col_text(st, 0))
		                                       : json_null());
		json_object_set_new(o, "lease_extended", json_false());
		json_object_set_new(o, "state", json_string(st_state));
		json_object_set_new(o, "ttl_seconds", json_integer(sqlite3_column_int(st, 2)));
	}
	sqlite3_finalize(st);
	return o;
}

static void
heartbeat_work(struct api_call *c)
{
	struct work_row w;
	const char *expected = query_get(&c->query, "expected_last_heartbeat");
	const char *dttl = query_get(&c->query, "desired_ttl_seconds");
	uint64_t ttl;
	if (item_check(c, &w) != 0)
		return;
	ttl = w.ttl;
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
		json_t *o = json_pack(
		    "{s:s, s:o, s:b, s:s, s:i}", "type", "work_heartbeat", "last_heartbeat",
		    w.has_heartbeat ? json_string(w.last_heartbeat) : json_null(), "lease_extended",
		    strcmp(w.state, "stopping") == 0, "state", w.state, "ttl_seconds", (int)w.ttl);
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
	sqlite3_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(c->srv->db,
	               "UPDATE work SET last_heartbeat = ?1, latest_heartbeat_at = ?2, "
	               "lease_expires_at = ?3, ttl_seconds = ?4, state = 'active', "
	               "started_at = COALESCE(started_at, ?2) WHERE id = ?5 AND "
	               "state IN ('starting', 'active') AND "
	               "((?6 = 1 AND last_heartbeat IS NULL) OR last_heartbeat = ?7)",
	               &st) == 0) {
		db_bind_text(st, 1, hb);
		sqlite3_bind_int64(st, 2, now);
		sqlite3_bind_int64(st, 3, now + (int64_t)ttl * 1000000);
		sqlite3_bind_int(st, 4, (int)ttl);
		db_bind_text(st, 5, w.id);
		sqlite3_bind_int(st, 6, first ? 1 : 0);
		db_bind_text(st, 7, first ? "" : expected);
		if (sqlite3_step(st) == SQLITE_DONE)
			r = sqlite3_changes(c->srv->db->h) == 1 ? 0 : AL_E_PRECOND;
	}
	sqlite3_finalize(st);
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

static void
stop_work(struct api_call *c)
{
	struct work_row w;
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
	if (item_check(c, &w) != 0)
		return;
	if (strcmp(w.state, "stopped") == 0) {
		api_reply_error(c, 409, "invalid_request_error", NULL, "work %s is already stopped",
		                w.id);
		return;
	}
	int64_t now = now_real_us();
	int r;
	if (force || strcmp(w.state, "queued") == 0)
		r = exec_update(c->srv,
		                "UPDATE work SET state = 'stopped', stopped_at = ?1, "
		                "stop_requested_at = COALESCE(stop_requested_at, ?2) "
		                "WHERE id = ?3 AND state != 'stopped'",
		                w.id, now, now);
	else
		r = exec_update(c->srv,
		                "UPDATE work SET state = 'stopping', stop_requested_at = "
		                "COALESCE(stop_requested_at, ?1) WHERE id = ?3 AND state IN "
		                "('starting', 'active') AND ?2 = ?2",
		                w.id, now, now);
	if (r != 0 && r != AL_E_CONFLICT) {
		api_reply_err(c, r, "cannot stop work");
		return;
	}
	log_info("work stop", "work_id", w.id, "force", force ? "true" : "false");
	api_reply_json(c, 200, work_get_json(c->srv, w.id, NULL));
}

/* ---- stats, list, get, update ---- */

static void
work_stats(struct api_call *c)
{
	const char *env_id = c->params[0];
	sqlite3_stmt *st = NULL;
	if (environment_check(c, env_id) != 0)
		return;
	json_t *o = json_pack("{s:s}", "type", "work_queue_stats");
	if (db_prepare(c->srv->db,
	               "SELECT COALESCE(SUM(delivered_at IS NULL), 0), "
	               "COALESCE(SUM(delivered_at IS NOT NULL), 0), MIN(created_at) "
	               "FROM work WHERE environment_id = ? AND state = 'queued'",
	               &st) == 0) {
		db_bind_text(st, 1, env_id);
		if (sqlite3_step(st) == SQLITE_ROW) {
			json_object_set_new(o, "depth", json_integer(sqlite3_column_int64(st, 0)));
			json_object_set_new(o, "pending",
			                    json_integer(sqlite3_column_int64(st, 1)));
			json_object_set_new(o, "oldest_queued_at", col_time(st, 2));
		}
		sqlite3_finalize(st);
	}
	if (db_prepare(
	        c->srv->db,
	        "SELECT COUNT(*) FROM workers_seen WHERE environment_id = ? AND seen_at >= ?",
	        &st) == 0) {
		db_bind_text(st, 1, env_id);
		sqlite3_bind_int64(st, 2, now_real_us() - WORKERS_WINDOW_US);
		if (sqlite3_step(st) == SQLITE_ROW)
			json_object_set_new(o, "workers_polling",
			                    json_integer(sqlite3_column_int64(st, 0)));
		sqlite3_finalize(st);
	}
	api_reply_json(c, 200, o);
}

static void
work_list(struct api_call *c)
{
	const char *env_id = c->params[0];
	struct page_req pg;
	sqlite3_stmt *st = NULL;
	if (api_page_parse(c, 20, 1000, true, &pg) != 0)
		return;
	if (environment_check(c, env_id) != 0)
		return;
	const char *sql = pg.desc ? "SELECT " WORK_COLS " FROM work WHERE environment_id = ?1 "
	                            "AND (?2 = 0 OR seq < ?3) ORDER BY seq DESC LIMIT ?4"
	                          : "SELECT " WORK_COLS " FROM work WHERE environment_id = ?1 "
	                            "AND (?2 = 0 OR seq > ?3) ORDER BY seq ASC LIMIT ?4";
	if (db_prepare(c->srv->db, sql, &st) != 0) {
		api_reply_err(c, AL_E_IO, "cannot list work");
		return;
	}
	db_bind_text(st, 1, env_id);
	sqlite3_bind_int(st, 2, pg.has_cursor);
	sqlite3_bind_int64(st, 3, pg.after_seq);
	sqlite3_bind_int(st, 4, (int)pg.limit + 1);
	json_t *data = json_array();
	int64_t last = 0;
	unsigned n = 0;
	bool more = false;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == pg.limit) {
			more = true;
			break;
		}
		last = sqlite3_column_int64(st, 14);
		json_array_append_new(data, work_render(st, NULL));
		n++;
	}
	sqlite3_finalize(st);
	json_t *next = json_null();
	if (more) {
		char *cur = api_page_cursor(last, pg.desc);
		next = json_string(cur);
		free(cur);
	}
	api_reply_json(c, 200, json_pack("{s:o, s:o}", "data", data, "next_page", next));
}

static void
work_get(struct api_call *c)
{
	struct work_row w;
	if (item_check(c, &w) != 0)
		return;
	api_reply_json(c, 200, work_get_json(c->srv, w.id, NULL));
}

static void
work_update(struct api_call *c)
{
	struct work_row w;
	static const char *const allowed[] = {"metadata", NULL};
	sqlite3_stmt *st = NULL;
	json_t *base = NULL, *merged = NULL;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if (item_check(c, &w) != 0)
		return;
	json_t *in = json_object_get(c->body, "metadata");
	if (in == NULL) {
		api_reply_json(c, 200, work_get_json(c->srv, w.id, NULL));
		return;
	}
	if (db_prepare(c->srv->db, "SELECT metadata FROM work WHERE id = ?", &st) == 0) {
		db_bind_text(st, 1, w.id);
		if (sqlite3_step(st) == SQLITE_ROW)
			base = db_col_json(st, 0);
		sqlite3_finalize(st);
	}
	if (api_metadata(c, in, base, true, &merged) != 0) {
		json_decref(base);
		return;
	}
	json_decref(base);
	char *s = json_dumps(merged, JSON_COMPACT);
	json_decref(merged);
	int r = AL_E_IO;
	if (db_prepare(c->srv->db, "UPDATE work SET metadata = ? WHERE id = ?", &st) == 0) {
		db_bind_text(st, 1, s);
		db_bind_text(st, 2, w.id);
		if (sqlite3_step(st) == SQLITE_DONE)
			r = 0;
		sqlite3_finalize(st);
	}
	free(s);
	if (r != 0) {
		api_reply_err(c, r, "cannot update work");
		return;
	}
	api_reply_json(c, 200, work_get_json(c->srv, w.id, NULL));
}

/* ---- lease expiry ---- */

/* Items whose holder stopped heartbeating are stopped (their token dies with them)
 * and the session gets a fresh item, unless it has ended. */
static void
lease_scan(struct loop *l, void *arg)
{
	struct server *s = arg;
	sqlite3_stmt *st = NULL;
	char **ids = NULL, **sids = NULL, **envs = NULL;
	size_t n = 0;
	int64_t now = now_real_us();
	s->waiters->lease_timer = loop_timer_add(l, LEASE_SCAN_MS, lease_scan, s);
	if (db_prepare(
	        s->db,
	        "SELECT w.id, w.session_id, w.environment_id FROM work w "
	        "WHERE w.state IN ('starting', 'active') AND w.lease_expires_at < ? LIMIT 100",
	        &st) != 0)
		return;
	sqlite3_bind_int64(st, 1, now);
	while (sqlite3_step(st) == SQLITE_ROW) {
		ids = xreallocarray(ids, n + 1, sizeof(*ids));
		sids = xreallocarray(sids, n + 1, sizeof(*sids));
		envs = xreallocarray(envs, n + 1, sizeof(*envs));
		ids[n] = xstrdup(db_col_text(st, 0));
		sids[n] = xstrdup(db_col_text(st, 1) ? db_col_text(st, 1) : "");
		envs[n] = xstrdup(db_col_text(st, 2));
		n++;
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < n; i++) {
		bool requeue = false;
		if (db_begin(s->db) != 0)
			break;
		int r = exec_update(s,
		                    "UPDATE work SET state = 'stopped', stopped_at = ?1, "
		                    "stop_requested_at = COALESCE(stop_requested_at, ?2) "
		                    "WHERE id = ?3 AND state IN ('starting', 'active')",
		                    ids[i], now, now);
		if (r == 0 && sids[i][0]) {
			sqlite3_stmt *q = NULL;
			if (db_prepare(s->db,
			               "SELECT 1 FROM sessions WHERE id = ? AND status != "
			               "'terminated' AND archived_at IS NULL",
			               &q) == 0) {
				db_bind_text(q, 1, sids[i]);
				requeue = sqlite3_step(q) == SQLITE_ROW;
				sqlite3_finalize(q);
			}
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

int
work_init(struct server *s)
{
	s->waiters = xcalloc(1, sizeof(*s->waiters));
	s->waiters->lease_timer = loop_timer_add(s->loop, LEASE_SCAN_MS, lease_scan, s);
	return 0;
}

void
work_shutdown(struct server *s)
{
	if (s->waiters == NULL)
		return;
	while (s->waiters->head) {
		struct waiter *w = s->waiters->head;
		struct api_call *c = w->call;
		waiter_remove(s, w);
		api_reply_json(c, 200, json_null());
	}
	loop_timer_cancel(s->loop, s->waiters->lease_timer);
	free(s->waiters);
	s->waiters = NULL;
}

#define CREDS_WORKER_ITEM (PRINCIPAL_API_KEY | PRINCIPAL_ENV_KEY | PRINCIPAL_SESSION_TOKEN)

const struct api_route work_routes[] = {
    {"GET", "/v1/environments/{}/work/poll", PRINCIPAL_ENV_KEY, poll_work},
    {"GET", "/v1/environments/{}/work/stats", PRINCIPAL_API_KEY, work_stats},
    {"GET", "/v1/environments/{}/work", PRINCIPAL_ENV_KEY, work_list},
    {"POST", "/v1/environments/{}/work/{}/ack", CREDS_WORKER_ITEM, ack_work},
    {"POST", "/v1/environments/{}/work/{}/heartbeat", CREDS_WORKER_ITEM, heartbeat_work},
    {"POST", "/v1/environments/{}/work/{}/stop", CREDS_WORKER_ITEM, stop_work},
    {"GET", "/v1/environments/{}/work/{}", PRINCIPAL_API_KEY, work_get},
    {"POST", "/v1/environments/{}/work/{}", PRINCIPAL_API_KEY, work_update},
    {NULL, NULL, 0, NULL},
};
