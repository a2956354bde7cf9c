/* SQLite side of the audit_outbox table; see audit_store.h. */
#include <stdlib.h>

#include "audit_store.h"
#include "db.h"
#include "err.h"

int
audit_store_outbox_add(struct db *db, const char *text, int64_t *id)
{
	static const char sql[] = "INSERT INTO audit_outbox(record) VALUES (?) RETURNING id";
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare_cached(db, sql, &st) == 0) {
		db_bind_text(st, 1, text);
		/* RETURNING rather than the engine's last-rowid call: both engines have it */
		if (db_step(st) == DB_ROW) {
			if (id)
				*id = db_col_int64(st, 0);
			if (db_step(st) == DB_DONE)
				r = 0;
		}
	}
	db_cached_done(db, st);
	return r;
}

int
audit_store_outbox_list(struct db *db, int64_t after_id, unsigned max,
                        int (*fn)(void *arg, int64_t id, json_t *rec), void *arg)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO, s;
	if (db_prepare(db, "SELECT id, record FROM audit_outbox WHERE id > ? ORDER BY id LIMIT ?",
	               &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, after_id);
	db_bind_int64(st, 2, max);
	while ((s = db_step(st)) == DB_ROW) {
		json_t *rec = db_col_json(st, 1);
		int fr = rec ? fn(arg, db_col_int64(st, 0), rec) : 0;
		json_decref(rec);
		if (fr != 0) {
			r = fr;
			goto out;
		}
	}
	r = s == DB_DONE ? 0 : AL_E_IO;
out:
	db_finalize(st);
	return r;
}

int
audit_store_outbox_delete(struct db *db, int64_t id)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db, "DELETE FROM audit_outbox WHERE id = ?", &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, id);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}
