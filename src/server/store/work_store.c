/* SQLite side of the work queue tables; see work_store.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "events.h"
#include "work_store.h"

#define WORK_COLS                                                                                  \
	"id, environment_id, session_id, data_type, state, metadata, created_at, "                 \
	"acknowledged_at, started_at, latest_heartbeat_at, stop_requested_at, stopped_at, "        \
	"last_heartbeat, ttl_seconds, seq, lease_expires_at"

int
work_store_find_token(struct db *db, const char *token_hash, struct work_token_row *out)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db,
	               "SELECT w.id, w.environment_id, w.session_id FROM work w "
	               "WHERE w.token_hash = ? AND w.state != 'stopped'",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, token_hash);
	if (db_step(st) == DB_ROW) {
		const char *sid = db_col_text(st, 2);
		memset(out, 0, sizeof(*out));
		snprintf(out->work_id, sizeof(out->work_id), "%s", db_col_text(st, 0));
		snprintf(out->environment_id, sizeof(out->environment_id), "%s",
		         db_col_text(st, 1));
		snprintf(out->session_id, sizeof(out->session_id), "%s", sid ? sid : "");
		r = 0;
	}
	db_finalize(st);
	return r;
}

void
work_item_reset(struct work_item *w)
{
	json_decref(w->metadata);
	memset(w, 0, sizeof(*w));
}

static int64_t
col_us(struct db_stmt *st, int col)
{
	return db_col_is_null(st, col) ? 0 : db_col_int64(st, col);
}

static void
item_read(struct db_stmt *st, struct work_item *w)
{
	const char *v;
	memset(w, 0, sizeof(*w));
	snprintf(w->id, sizeof(w->id), "%s", db_col_text(st, 0));
	snprintf(w->environment_id, sizeof(w->environment_id), "%s", db_col_text(st, 1));
	if ((v = db_col_text(st, 2)) != NULL)
		snprintf(w->session_id, sizeof(w->session_id), "%s", v);
	snprintf(w->data_type, sizeof(w->data_type), "%s", db_col_text(st, 3));
	snprintf(w->state, sizeof(w->state), "%s", db_col_text(st, 4));
	w->metadata = db_col_json(st, 5);
	w->created_at = col_us(st, 6);
	w->acknowledged_at = col_us(st, 7);
	w->started_at = col_us(st, 8);
	w->latest_heartbeat_at = col_us(st, 9);
	w->stop_requested_at = col_us(st, 10);
	w->stopped_at = col_us(st, 11);
	if ((v = db_col_text(st, 12)) != NULL) {
		w->has_heartbeat = true;
		snprintf(w->last_heartbeat, sizeof(w->last_heartbeat), "%s", v);
	}
	w->ttl_seconds = (unsigned)db_col_int(st, 13);
	w->seq = db_col_int64(st, 14);
	w->lease_expires_at = col_us(st, 15);
}

int
work_store_get(struct db *db, const char *environment_id, const char *id, struct work_item *out)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db,
	               "SELECT " WORK_COLS " FROM work WHERE id = ?1 AND (?2 IS NULL OR "
	               "environment_id = ?2)",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	db_bind_text(st, 2, environment_id);
	if (db_step(st) == DB_ROW) {
		item_read(st, out);
		r = 0;
	}
	db_finalize(st);
	return r;
}

int
work_store_session_live(struct db *db, const char *session_id, bool *live)
{
	struct db_stmt *st = NULL;
	if (db_prepare(db, "SELECT 1 FROM work WHERE session_id = ? AND state != 'stopped'", &st) !=
	    0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	*live = db_step(st) == DB_ROW;
	db_finalize(st);
	return 0;
}

int
work_store_insert(struct db *db, const char *id, const char *environment_id, const char *session_id,
                  unsigned ttl_seconds, int64_t now)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	int64_t seq = db_next_seq(db, "work");
	if (seq < 0 ||
	    db_prepare(db,
	               "INSERT INTO work(id, seq, environment_id, session_id, data_type, "
	               "state, ttl_seconds, created_at) VALUES (?, ?, ?, ?, 'session', "
	               "'queued', ?, ?)",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	db_bind_int64(st, 2, seq);
	db_bind_text(st, 3, environment_id);
	db_bind_text(st, 4, session_id);
	db_bind_int64(st, 5, (int)ttl_seconds);
	db_bind_int64(st, 6, now);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	/* polls held on the other replicas claim it when this commits (event_hub.c drains
	 * the channel), instead of at the end of their block time */
	if (r == 0 && db_dialect(db) == DB_DIALECT_PG) {
		char note[160];
		int n = snprintf(note, sizeof(note), "%s%s", EVENTS_NOTE_WORK, environment_id);
		if (n < 0 || (size_t)n >= sizeof(note) ||
		    db_notify(db, "airlock_events", note) != 0)
			r = AL_E_IO;
	}
	return r;
}

int
work_store_end_session(struct db *db, const char *session_id, int64_t now)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db,
	               "UPDATE work SET state = CASE WHEN state = 'queued' THEN 'stopped' "
	               "ELSE 'stopping' END, stop_requested_at = COALESCE(stop_requested_at, ?1), "
	               "stopped_at = CASE WHEN state = 'queued' THEN ?1 ELSE stopped_at END "
	               "WHERE session_id = ?2 AND state NOT IN ('stopped', 'stopping')",
	               &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, now);
	db_bind_text(st, 2, session_id);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}

void
work_store_note_worker(struct db *db, const char *environment_id, const char *worker_id,
                       int64_t now)
{
	struct db_stmt *st = NULL;
	if (db_prepare(
	        db,
	        "INSERT INTO workers_seen(environment_id, worker_id, seen_at) VALUES (?,?,?) "
	        "ON CONFLICT(environment_id, worker_id) DO UPDATE SET seen_at = excluded.seen_at",
	        &st) != 0)
		return;
	db_bind_text(st, 1, environment_id);
	db_bind_text(st, 2, worker_id);
	db_bind_int64(st, 3, now);
	db_step(st);
	db_finalize(st);
}

int
work_store_claim(struct db *db, const char *environment_id, int64_t redeliver_before,
                 const char *worker_id, const char *token_hash, int64_t now, char *id,
                 size_t id_len)
{
	struct db_stmt *st = NULL;
	id[0] = '\0';
	if (db_begin(db) != 0)
		return AL_E_IO;
	/* Replicas on one PostgreSQL claim at the same moment: SKIP LOCKED gives each a
	 * different row (one another claim holds is passed over, not waited for and then
	 * delivered twice). SQLite's BEGIN IMMEDIATE already serializes the claims. */
	if (db_prepare(db,
	               db_dialect(db) == DB_DIALECT_PG
	                   ? "SELECT id FROM work WHERE environment_id = ? AND state = 'queued' "
	                     "AND (delivered_at IS NULL OR delivered_at < ?) ORDER BY seq LIMIT 1 "
	                     "FOR UPDATE SKIP LOCKED"
	                   : "SELECT id FROM work WHERE environment_id = ? AND state = 'queued' "
	                     "AND (delivered_at IS NULL OR delivered_at < ?) ORDER BY seq LIMIT 1",
	               &st) != 0)
		goto fail;
	db_bind_text(st, 1, environment_id);
	db_bind_int64(st, 2, redeliver_before);
	if (db_step(st) == DB_ROW)
		snprintf(id, id_len, "%s", db_col_text(st, 0));
	db_finalize(st);
	st = NULL;
	if (id[0] == '\0') {
		db_rollback(db);
		return AL_E_NOTFOUND;
	}
	/* the row must still be deliverable: never a second delivery of a live one */
	if (db_prepare(db,
	               "UPDATE work SET delivered_at = ?, delivered_to = ?, token_hash = ? "
	               "WHERE id = ? AND state = 'queued' AND (delivered_at IS NULL OR "
	               "delivered_at < ?)",
	               &st) != 0)
		goto fail;
	db_bind_int64(st, 1, now);
	db_bind_text(st, 2, worker_id);
	db_bind_text(st, 3, token_hash);
	db_bind_text(st, 4, id);
	db_bind_int64(st, 5, redeliver_before);
	if (db_step(st) != DB_DONE)
		goto fail;
	if (db_changes(db) != 1) {
		/* another claim took it first: nothing to deliver on this poll */
		db_finalize(st);
		db_rollback(db);
		id[0] = '\0';
		return AL_E_NOTFOUND;
	}
	db_finalize(st);
	if (db_commit(db) != 0)
		return AL_E_IO;
	return 0;
fail:
	db_finalize(st);
	db_rollback(db);
	return AL_E_IO;
}

/* Runs a state change with ?1 = a, ?2 = b, ?3 = id: AL_E_CONFLICT when no row moved. */
static int
exec_update(struct db *db, const char *sql, const char *id, int64_t a, int64_t b)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, a);
	db_bind_int64(st, 2, b);
	db_bind_text(st, 3, id);
	if (db_step(st) == DB_DONE)
		r = db_changes(db) > 0 ? 0 : AL_E_CONFLICT;
	db_finalize(st);
	return r;
}

int
work_store_ack(struct db *db, const char *id, int64_t now, int64_t lease_expires_at)
{
	return exec_update(db,
	                   "UPDATE work SET state = 'starting', acknowledged_at = ?1, "
	                   "lease_expires_at = ?2 WHERE id = ?3 AND state = 'queued'",
	                   id, now, lease_expires_at);
}

int
work_store_heartbeat(struct db *db, const char *id, const char *hb, int64_t now,
                     unsigned ttl_seconds, bool first, const char *expected)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db,
	               "UPDATE work SET last_heartbeat = ?1, latest_heartbeat_at = ?2, "
	               "lease_expires_at = ?3, ttl_seconds = ?4, state = 'active', "
	               "started_at = COALESCE(started_at, ?2) WHERE id = ?5 AND "
	               "state IN ('starting', 'active') AND "
	               "((?6 = 1 AND last_heartbeat IS NULL) OR last_heartbeat = ?7)",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, hb);
	db_bind_int64(st, 2, now);
	db_bind_int64(st, 3, now + (int64_t)ttl_seconds * 1000000);
	db_bind_int64(st, 4, (int)ttl_seconds);
	db_bind_text(st, 5, id);
	db_bind_int64(st, 6, first ? 1 : 0);
	db_bind_text(st, 7, first ? "" : expected);
	if (db_step(st) == DB_DONE)
		r = db_changes(db) == 1 ? 0 : AL_E_PRECOND;
	db_finalize(st);
	return r;
}

int
work_store_stop(struct db *db, const char *id, bool force, int64_t now)
{
	if (force)
		return exec_update(db,
		                   "UPDATE work SET state = 'stopped', stopped_at = ?1, "
		                   "stop_requested_at = COALESCE(stop_requested_at, ?2) "
		                   "WHERE id = ?3 AND state != 'stopped'",
		                   id, now, now);
	return exec_update(db,
	                   "UPDATE work SET state = 'stopping', stop_requested_at = "
	                   "COALESCE(stop_requested_at, ?1) WHERE id = ?3 AND state IN "
	                   "('starting', 'active')",
	                   id, now, now);
}

int
work_store_expire(struct db *db, const char *id, int64_t now)
{
	return exec_update(db,
	                   "UPDATE work SET state = 'stopped', stopped_at = ?1, "
	                   "stop_requested_at = COALESCE(stop_requested_at, ?2) "
	                   "WHERE id = ?3 AND state IN ('starting', 'active')",
	                   id, now, now);
}

int
work_store_expired(struct db *db, int64_t now, unsigned max,
                   void (*fn)(void *arg, const char *id, const char *session_id,
                              const char *environment_id),
                   void *arg)
{
	struct db_stmt *st = NULL;
	if (db_prepare(db,
	               "SELECT w.id, w.session_id, w.environment_id FROM work w "
	               "WHERE w.state IN ('starting', 'active') AND w.lease_expires_at < ? LIMIT ?",
	               &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, now);
	db_bind_int64(st, 2, (int)max);
	while (db_step(st) == DB_ROW) {
		const char *sid = db_col_text(st, 1);
		fn(arg, db_col_text(st, 0), sid ? sid : "", db_col_text(st, 2));
	}
	db_finalize(st);
	return 0;
}

int
work_store_stats(struct db *db, const char *environment_id, int64_t since, struct work_stats *out)
{
	struct db_stmt *st = NULL;
	memset(out, 0, sizeof(*out));
	if (db_prepare(
	        db,
	        "SELECT COUNT(*) - COUNT(delivered_at), COUNT(delivered_at), MIN(created_at) "
	        "FROM work WHERE environment_id = ? AND state = 'queued'",
	        &st) == 0) {
		db_bind_text(st, 1, environment_id);
		if (db_step(st) == DB_ROW) {
			out->depth = db_col_int64(st, 0);
			out->pending = db_col_int64(st, 1);
			out->oldest_queued_at = col_us(st, 2);
		}
		db_finalize(st);
	}
	if (db_prepare(
	        db, "SELECT COUNT(*) FROM workers_seen WHERE environment_id = ? AND seen_at >= ?",
	        &st) == 0) {
		db_bind_text(st, 1, environment_id);
		db_bind_int64(st, 2, since);
		if (db_step(st) == DB_ROW)
			out->workers = db_col_int64(st, 0);
		db_finalize(st);
	}
	return 0;
}

int
work_store_list(struct db *db, const char *environment_id, const struct doc_list *q,
                int (*fn)(void *arg, const struct work_item *w), void *arg, bool *more)
{
	struct db_stmt *st = NULL;
	struct work_item w;
	unsigned n = 0;
	int r = 0;
	*more = false;
	const char *sql = q->desc ? "SELECT " WORK_COLS " FROM work WHERE environment_id = ?1 "
	                            "AND (?2 = 0 OR seq < ?3) ORDER BY seq DESC LIMIT ?4"
	                          : "SELECT " WORK_COLS " FROM work WHERE environment_id = ?1 "
	                            "AND (?2 = 0 OR seq > ?3) ORDER BY seq ASC LIMIT ?4";
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, environment_id);
	db_bind_int64(st, 2, q->has_cursor);
	db_bind_int64(st, 3, q->after_seq);
	db_bind_int64(st, 4, (int)q->limit + 1);
	while (db_step(st) == DB_ROW) {
		if (n == q->limit) {
			*more = true;
			break;
		}
		item_read(st, &w);
		n++;
		r = fn(arg, &w);
		work_item_reset(&w);
		if (r != 0)
			break;
	}
	db_finalize(st);
	return r;
}

int
work_store_set_metadata(struct db *db, const char *id, const json_t *metadata)
{
	struct db_stmt *st = NULL;
	char *text = json_dumps(metadata, JSON_COMPACT);
	int r = AL_E_IO;
	if (db_prepare(db, "UPDATE work SET metadata = ? WHERE id = ?", &st) == 0) {
		db_bind_text(st, 1, text);
		db_bind_text(st, 2, id);
		if (db_step(st) == DB_DONE)
			r = 0;
		db_finalize(st);
	}
	free(text);
	return r;
}
