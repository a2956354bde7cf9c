/* SQLite side of the events table; see event_store.h. */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "event_store.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

int
event_store_insert(struct db *db, const struct event_row *ev, int64_t *seq_out)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	int64_t seq = db_next_seq(db, "events");
	if (seq < 0)
		return AL_E_IO;
	static const char sql[] = "INSERT INTO events(id, session_id, seq, type, created_at, "
	                          "processed_at, answers, doc, audit) "
	                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
	char *doc = json_dumps(ev->doc, JSON_COMPACT);
	if (db_prepare_cached(db, sql, &st) != 0)
		goto out;
	db_bind_text(st, 1, ev->id);
	db_bind_text(st, 2, ev->session_id);
	db_bind_int64(st, 3, seq);
	db_bind_text(st, 4, ev->type);
	db_bind_int64(st, 5, ev->created_at);
	if (ev->processed_at)
		db_bind_int64(st, 6, ev->processed_at);
	else
		db_bind_null(st, 6);
	db_bind_text(st, 7, ev->answers);
	db_bind_text(st, 8, doc);
	db_bind_text(st, 9, ev->audit);
	if (db_step(st) != DB_DONE) {
		log_error("event insert failed", "error", db_errmsg(db));
		goto out;
	}
	/* the other replicas' streams of this session catch up when this commits */
	if (db_dialect(db) == DB_DIALECT_PG && db_notify(db, "airlock_events", ev->session_id) != 0)
		goto out;
	*seq_out = seq;
	r = 0;
out:
	free(doc);
	db_cached_done(db, st);
	return r;
}

int
event_store_has_unprocessed(struct db *db, const char *session_id, bool *pending)
{
	struct db_stmt *st = NULL;
	int rc;
	*pending = false;
	if (db_prepare(db,
	               "SELECT 1 FROM events WHERE session_id = ? AND processed_at IS NULL LIMIT 1",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	rc = db_step(st);
	*pending = rc == DB_ROW;
	db_finalize(st);
	return rc == DB_ROW || rc == DB_DONE ? 0 : AL_E_IO;
}

int
event_store_after(struct db *db, const char *session_id, int64_t after_seq, unsigned max,
                  void (*fn)(void *arg, int64_t seq, json_t *doc), void *arg)
{
	static const char sql[] = "SELECT seq, doc FROM events WHERE session_id = ? AND seq > ? "
	                          "ORDER BY seq LIMIT ?";
	struct db_stmt *st = NULL;
	int rc;
	if (db_prepare_cached(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	db_bind_int64(st, 2, after_seq);
	db_bind_int64(st, 3, max);
	while ((rc = db_step(st)) == DB_ROW) {
		json_t *doc = db_col_json(st, 1);
		if (doc)
			fn(arg, db_col_int64(st, 0), doc);
		json_decref(doc);
	}
	db_cached_done(db, st);
	return rc == DB_DONE ? 0 : AL_E_IO;
}

int
event_store_last_seq(struct db *db, const char *session_id, int64_t *seq)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	*seq = 0;
	if (db_prepare(db, "SELECT max(seq) FROM events WHERE session_id = ?", &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	if (db_step(st) == DB_ROW) {
		*seq = db_col_int64(st, 0); /* NULL (no events) reads 0 */
		r = 0;
	}
	db_finalize(st);
	return r;
}

int
event_store_mark_processed(struct db *db, const char *event_id, int64_t now)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	char ts[32];
	time_fmt_rfc3339(now, ts);
	if (db_dialect(db) == DB_DIALECT_PG) {
		/* no json_set: jsonb_set would reorder the document's keys, and the model
		 * request built from the log would change between retries */
		if ((r = db_begin(db)) != 0)
			return r;
		if (db_prepare(db,
		               "UPDATE events SET processed_at = ?1 WHERE id = ?2 AND processed_at "
		               "IS NULL",
		               &st) == 0) {
			db_bind_int64(st, 1, now);
			db_bind_text(st, 2, event_id);
			r = db_step(st) == DB_DONE ? 0 : AL_E_IO;
			if (r == 0 && db_changes(db) == 1)
				r = db_doc_set_str(db, "events", event_id, "processed_at", ts, NULL,
				                   NULL);
		}
		db_finalize(st);
		if (r == 0)
			return db_commit(db);
		db_rollback(db);
		return r;
	}
	if (db_prepare(db,
	               "UPDATE events SET processed_at = ?1, "
	               "doc = json_set(doc, '$.processed_at', ?2) "
	               "WHERE id = ?3 AND processed_at IS NULL",
	               &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, now);
	db_bind_text(st, 2, ts);
	db_bind_text(st, 3, event_id);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}

json_t *
event_store_get(struct db *db, const char *session_id, const char *event_id)
{
	struct db_stmt *st = NULL;
	json_t *ev = NULL;
	if (db_prepare(db, "SELECT doc FROM events WHERE session_id = ? AND id = ?", &st) != 0)
		return NULL;
	db_bind_text(st, 1, session_id);
	db_bind_text(st, 2, event_id);
	if (db_step(st) == DB_ROW)
		ev = db_col_json(st, 0);
	db_finalize(st);
	return ev;
}

json_t *
event_store_find_answer(struct db *db, const char *session_id, const char *call_id,
                        const char *answer_type)
{
	struct db_stmt *st = NULL;
	json_t *ev = NULL;
	if (db_prepare(db,
	               "SELECT doc FROM events WHERE session_id = ? AND answers = ? AND type = ? "
	               "ORDER BY seq LIMIT 1",
	               &st) != 0)
		return NULL;
	db_bind_text(st, 1, session_id);
	db_bind_text(st, 2, call_id);
	db_bind_text(st, 3, answer_type);
	if (db_step(st) == DB_ROW)
		ev = db_col_json(st, 0);
	db_finalize(st);
	return ev;
}

int
event_store_list(struct db *db, const char *session_id, const struct doc_list *q,
                 const char *types_json, struct doc_page *out)
{
	struct db_stmt *st = NULL;
	int r;
	memset(out, 0, sizeof(*out));
	/* One statement for both orders: the cursor bound flips with the order. */
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT seq, doc FROM events WHERE session_id = ?1 AND (?2 = 0 OR seq %s ?3) "
	         "AND created_at BETWEEN ?4 AND ?5 AND (?6 IS NULL OR type IN (%s)) "
	         "ORDER BY seq %s LIMIT ?7",
	         q->desc ? "<" : ">",
	         db_dialect(db) == DB_DIALECT_PG
	             ? "SELECT jsonb_array_elements_text(CAST(?6 AS jsonb))"
	             : "SELECT value FROM json_each(?6)",
	         q->desc ? "DESC" : "ASC");
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	db_bind_int64(st, 2, q->has_cursor);
	db_bind_int64(st, 3, q->after_seq);
	db_bind_int64(st, 4, q->created_lo);
	db_bind_int64(st, 5, q->created_hi);
	db_bind_text(st, 6, types_json);
	db_bind_int64(st, 7, (int)q->limit + 1);
	r = doc_store_collect(st, q->limit, out);
	db_finalize(st);
	return r;
}

int
event_store_delete_session(struct db *db, const char *session_id)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db, "DELETE FROM events WHERE session_id = ?", &st) != 0)
		return r;
	db_bind_text(st, 1, session_id);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}

int
event_store_log(struct db *db, const char *session_id, size_t max, json_t **out)
{
	struct db_stmt *st = NULL;
	json_t *arr = json_array();
	int r = AL_E_IO;
	if (db_prepare(db, "SELECT doc FROM events WHERE session_id = ? ORDER BY seq", &st) != 0)
		goto out;
	db_bind_text(st, 1, session_id);
	int rc;
	while ((rc = db_step(st)) == DB_ROW) {
		if (json_array_size(arr) >= max) {
			r = AL_E_TOOBIG;
			goto out;
		}
		json_t *ev = db_col_json(st, 0);
		if (ev)
			json_array_append_new(arr, ev);
	}
	if (rc != DB_DONE)
		goto out;
	*out = arr;
	arr = NULL;
	r = 0;
out:
	db_finalize(st);
	json_decref(arr);
	return r;
}

int
event_store_set_audit(struct db *db, const char *event_id, const char *text)
{
	static const char sql[] = "UPDATE events SET audit = ? WHERE id = ?";
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare_cached(db, sql, &st) != 0)
		return r;
	if (text)
		db_bind_text(st, 1, text);
	else
		db_bind_null(st, 1);
	db_bind_text(st, 2, event_id);
	if (db_step(st) == DB_DONE)
		r = db_changes(db) == 1 ? 0 : AL_E_NOTFOUND;
	db_cached_done(db, st);
	return r;
}

int
event_store_get_audit(struct db *db, const char *event_id, char **text)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO, rc;
	*text = NULL;
	if (db_prepare(db, "SELECT audit FROM events WHERE id = ?", &st) != 0)
		return r;
	db_bind_text(st, 1, event_id);
	if ((rc = db_step(st)) == DB_ROW && !db_col_is_null(st, 0))
		*text = xstrdup(db_col_text(st, 0));
	if (rc == DB_ROW || rc == DB_DONE)
		r = *text ? 0 : AL_E_NOTFOUND;
	db_finalize(st);
	return r;
}

int
event_store_audit_pending(struct db *db,
                          int (*fn)(void *arg, const char *event_id, const char *text), void *arg)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO, rc;
	/* a scan of the whole table: only at start, after a run that did not flush its
	 * records (audit.c keeps a flag saying so) */
	if (db_prepare(db, "SELECT id, audit FROM events WHERE audit IS NOT NULL ORDER BY seq",
	               &st) != 0)
		return r;
	while ((rc = db_step(st)) == DB_ROW) {
		int fr = fn(arg, db_col_text(st, 0), db_col_text(st, 1));
		if (fr != 0) {
			r = fr;
			goto out;
		}
	}
	r = rc == DB_DONE ? 0 : AL_E_IO;
out:
	db_finalize(st);
	return r;
}
