/* SQLite side of the api_keys table; see key_store.h. */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "key_store.h"

int
key_store_insert(struct db *db, const char *id, const char *kind, const char *environment_id,
                 const char *hash, const char *name, int64_t created_at)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db,
	               "INSERT INTO api_keys(id, kind, environment_id, hash, name, created_at) "
	               "VALUES (?, ?, ?, ?, ?, ?)",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	db_bind_text(st, 2, kind);
	db_bind_text(st, 3, environment_id);
	db_bind_text(st, 4, hash);
	db_bind_text(st, 5, name);
	db_bind_int64(st, 6, created_at);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}

static void
row_read(struct db_stmt *st, struct key_row *k)
{
	const char *v;
	memset(k, 0, sizeof(*k));
	snprintf(k->id, sizeof(k->id), "%s", db_col_text(st, 0));
	snprintf(k->kind, sizeof(k->kind), "%s", db_col_text(st, 1));
	if ((v = db_col_text(st, 2)) != NULL)
		snprintf(k->environment_id, sizeof(k->environment_id), "%s", v);
	if ((v = db_col_text(st, 3)) != NULL)
		snprintf(k->name, sizeof(k->name), "%s", v);
	k->revoked = !db_col_is_null(st, 4);
	k->revoked_at = db_col_int64(st, 4);
	k->created_at = db_col_int64(st, 5);
}

int
key_store_find(struct db *db, const char *hash, struct key_row *out)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(
	        db,
	        "SELECT id, kind, environment_id, name, revoked_at, created_at FROM api_keys "
	        "WHERE hash = ?",
	        &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, hash);
	if (db_step(st) == DB_ROW) {
		row_read(st, out);
		r = 0;
	}
	db_finalize(st);
	return r;
}

int
key_store_revoke(struct db *db, const char *id, int64_t now)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
	               &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, now);
	db_bind_text(st, 2, id);
	if (db_step(st) == DB_DONE)
		r = db_changes(db) == 1 ? 0 : AL_E_NOTFOUND;
	db_finalize(st);
	return r;
}

int
key_store_revoke_environment(struct db *db, const char *environment_id, int64_t now)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db,
	               "UPDATE api_keys SET revoked_at = ?2 WHERE environment_id = ?1 "
	               "AND revoked_at IS NULL",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, environment_id);
	db_bind_int64(st, 2, now);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}

int
key_store_list(struct db *db, int (*fn)(void *arg, const struct key_row *k), void *arg)
{
	struct db_stmt *st = NULL;
	struct key_row k;
	int r = 0, rc;
	if (db_prepare(
	        db,
	        "SELECT id, kind, environment_id, name, revoked_at, created_at FROM api_keys "
	        "ORDER BY created_at",
	        &st) != 0)
		return AL_E_IO;
	while ((rc = db_step(st)) == DB_ROW) {
		row_read(st, &k);
		if ((r = fn(arg, &k)) != 0)
			break;
	}
	if (r == 0 && rc != DB_DONE)
		r = AL_E_IO;
	db_finalize(st);
	return r;
}

int
key_store_count_live(struct db *db, const char *kind, int64_t *out)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db, "SELECT count(*) FROM api_keys WHERE kind = ? AND revoked_at IS NULL",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, kind);
	if (db_step(st) == DB_ROW) {
		*out = db_col_int64(st, 0);
		r = 0;
	}
	db_finalize(st);
	return r;
}
