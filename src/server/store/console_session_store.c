/* The console_sessions table; see console_session_store.h. One text for both engines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console_session_store.h"
#include "db.h"
#include "err.h"

void
console_session_row_reset(struct console_session_row *row)
{
	json_decref(row->user);
	memset(row, 0, sizeof(*row));
}

int
console_session_store_insert(struct db *db, const char *id_hash,
                             const struct console_session_row *row)
{
	struct db_stmt *st = NULL;
	char *user = NULL;
	int r = AL_E_IO;
	if (row->user != NULL && (user = json_dumps(row->user, JSON_COMPACT)) == NULL)
		goto out;
	if (db_prepare(
	        db,
	        "INSERT INTO console_sessions(id_hash, kind, csrf, key_id, key_hash, user_doc,"
	        " created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
	        &st) != 0)
		goto out;
	db_bind_text(st, 1, id_hash);
	db_bind_text(st, 2, row->kind);
	db_bind_text(st, 3, row->csrf);
	db_bind_text(st, 4, row->key_id);
	db_bind_text(st, 5, row->key_hash[0] ? row->key_hash : NULL);
	db_bind_text(st, 6, user);
	db_bind_int64(st, 7, row->created_at);
	db_bind_int64(st, 8, row->last_seen_at);
	db_bind_int64(st, 9, row->expires_at);
	if (db_step(st) == DB_DONE)
		r = 0;
out:
	db_finalize(st);
	free(user);
	return r;
}

int
console_session_store_find(struct db *db, const char *id_hash, struct console_session_row *out)
{
	struct db_stmt *st = NULL;
	const char *v;
	int r = AL_E_IO, rc;
	memset(out, 0, sizeof(*out));
	/* every console request reads its session: prepared once per connection */
	if (db_prepare_cached(db,
	                      "SELECT kind, csrf, key_id, key_hash, user_doc, created_at,"
	                      " last_seen_at, expires_at FROM console_sessions WHERE id_hash = ?",
	                      &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id_hash);
	rc = db_step(st);
	if (rc == DB_DONE) {
		r = AL_E_NOTFOUND;
		goto out;
	}
	if (rc != DB_ROW)
		goto out;
	snprintf(out->kind, sizeof(out->kind), "%s", db_col_text(st, 0));
	snprintf(out->csrf, sizeof(out->csrf), "%s", db_col_text(st, 1));
	snprintf(out->key_id, sizeof(out->key_id), "%s", db_col_text(st, 2));
	if ((v = db_col_text(st, 3)) != NULL)
		snprintf(out->key_hash, sizeof(out->key_hash), "%s", v);
	out->user = db_col_json(st, 4);
	out->created_at = db_col_int64(st, 5);
	out->last_seen_at = db_col_int64(st, 6);
	out->expires_at = db_col_int64(st, 7);
	if (strcmp(out->kind, CONSOLE_SESSION_USER) == 0 && !json_is_object(out->user)) {
		console_session_row_reset(out); /* a user row whose identity does not parse */
		goto out;
	}
	r = 0;
out:
	db_cached_done(db, st);
	return r;
}

int
console_session_store_touch(struct db *db, const char *id_hash, int64_t now, int64_t min_step_us)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare_cached(db,
	                      "UPDATE console_sessions SET last_seen_at = ?"
	                      " WHERE id_hash = ? AND last_seen_at <= ?",
	                      &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, now);
	db_bind_text(st, 2, id_hash);
	db_bind_int64(st, 3, now - min_step_us);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_cached_done(db, st);
	return r;
}

int
console_session_store_delete(struct db *db, const char *id_hash)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db, "DELETE FROM console_sessions WHERE id_hash = ?", &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id_hash);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}

int
console_session_store_sweep(struct db *db, int64_t now, int64_t idle_before, int64_t max_rows)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db, "DELETE FROM console_sessions WHERE expires_at <= ? OR last_seen_at < ?",
	               &st) != 0)
		goto out;
	db_bind_int64(st, 1, now);
	db_bind_int64(st, 2, idle_before);
	if (db_step(st) != DB_DONE)
		goto out;
	db_finalize(st);
	st = NULL;
	/* a bound on the table, as the in-memory table had: past max_rows the least recently
	 * seen go (the subquery is NULL, deleting nothing, while there are fewer rows) */
	if (db_prepare(db,
	               "DELETE FROM console_sessions WHERE last_seen_at < (SELECT last_seen_at"
	               " FROM console_sessions ORDER BY last_seen_at DESC LIMIT 1 OFFSET ?)",
	               &st) != 0)
		goto out;
	db_bind_int64(st, 1, max_rows - 1);
	if (db_step(st) == DB_DONE)
		r = 0;
out:
	db_finalize(st);
	return r;
}
