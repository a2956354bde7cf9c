/* The console_sessions and console_sign_ons tables; see console_session_store.h. One text for both
 * engines. */
#include <stdbool.h>
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

/* Runs a row-less statement with up to two integer parameters (b unused when the SQL
 * has one ?): 0 or AL_E_IO. */
static int
run_int(struct db *db, const char *sql, int64_t a, int64_t b, int nparams)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, a);
	if (nparams > 1)
		db_bind_int64(st, 2, b);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}

int
console_session_store_sweep(struct db *db, int64_t now, int64_t idle_before, int64_t max_rows)
{
	if (run_int(db, "DELETE FROM console_sessions WHERE expires_at <= ? OR last_seen_at < ?",
	            now, idle_before, 2) != 0)
		return AL_E_IO;
	/* a bound on the table, as the in-memory table had: past max_rows the least recently
	 * seen go (the subquery is NULL, deleting nothing, while there are fewer rows) */
	return run_int(db,
	               "DELETE FROM console_sessions WHERE last_seen_at < (SELECT last_seen_at"
	               " FROM console_sessions ORDER BY last_seen_at DESC LIMIT 1 OFFSET ?)",
	               max_rows - 1, 0, 1);
}

int
console_session_store_sign_on_add(struct db *db, const char *state_hash, const char *verifier,
                                  int64_t now, int64_t expires_at, int64_t max_rows)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (run_int(db, "DELETE FROM console_sign_ons WHERE expires_at <= ?", now, 0, 1) != 0)
		return AL_E_IO;
	/* bounded, as console_sessions: past max_rows - 1 the oldest give way to this one */
	if (run_int(db,
	            "DELETE FROM console_sign_ons WHERE created_at <= (SELECT created_at"
	            " FROM console_sign_ons ORDER BY created_at DESC LIMIT 1 OFFSET ?)",
	            max_rows - 1, 0, 1) != 0)
		return AL_E_IO;
	if (db_prepare(db,
	               "INSERT INTO console_sign_ons(state_hash, verifier, created_at, expires_at)"
	               " VALUES (?, ?, ?, ?)",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, state_hash);
	db_bind_text(st, 2, verifier);
	db_bind_int64(st, 3, now);
	db_bind_int64(st, 4, expires_at);
	if (db_step(st) == DB_DONE)
		r = 0;
out:
	db_finalize(st);
	return r;
}

int
console_session_store_sign_on_take(struct db *db, const char *state_hash, int64_t now,
                                   char *verifier, size_t verifier_len)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO, rc;
	verifier[0] = '\0';
	/* one statement deletes and reads: two replicas given the same state cannot both
	 * get its verifier */
	if (db_prepare(db,
	               "DELETE FROM console_sign_ons WHERE state_hash = ?"
	               " RETURNING verifier, expires_at",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, state_hash);
	rc = db_step(st);
	if (rc == DB_ROW) {
		bool live = db_col_int64(st, 1) > now;
		if (live)
			snprintf(verifier, verifier_len, "%s", db_col_text(st, 0));
		while ((rc = db_step(st)) == DB_ROW)
			;
		if (rc == DB_DONE)
			r = live ? 0 : AL_E_NOTFOUND;
		if (r != 0)
			explicit_bzero(verifier, verifier_len);
	} else if (rc == DB_DONE) {
		r = AL_E_NOTFOUND;
	}
	db_finalize(st);
	return r;
}
