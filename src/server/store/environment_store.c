/* SQLite side of the environments table; see environment_store.h. */
#include <stdlib.h>

#include "db.h"
#include "environment_store.h"
#include "err.h"
#include "key_store.h"

json_t *
environment_store_get(struct db *db, const char *id, int *err)
{
	return db_load_doc(db, "environments", id, err);
}

int
environment_store_live(struct db *db, const char *id)
{
	sqlite3_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db, "SELECT archived_at FROM environments WHERE id = ?", &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		r = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : AL_E_CONFLICT;
	sqlite3_finalize(st);
	return r;
}

static int
env_write(struct db *db, const char *sql, const char *id, const json_t *doc, int64_t seq,
          int64_t created, int64_t archived)
{
	sqlite3_stmt *st = NULL;
	char *text = json_dumps(doc, JSON_COMPACT);
	int r = AL_E_IO;
	if (db_prepare(db, sql, &st) != 0)
		goto out;
	db_bind_text(st, 1, id);
	db_bind_text(st, 2, text);
	sqlite3_bind_int64(st, 3, seq);
	sqlite3_bind_int64(st, 4, created);
	if (archived)
		sqlite3_bind_int64(st, 5, archived);
	else
		sqlite3_bind_null(st, 5);
	if (sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db->h) == 1)
		r = 0;
out:
	sqlite3_finalize(st);
	free(text);
	return r;
}

int
environment_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at)
{
	int r;
	if ((r = db_begin(db)) != 0)
		return r;
	int64_t seq = db_next_seq(db, "environments");
	if (seq < 0 ||
	    env_write(db,
	              "INSERT INTO environments(id, doc, seq, created_at, archived_at) "
	              "VALUES (?1, ?2, ?3, ?4, ?5)",
	              id, doc, seq, created_at, 0) != 0 ||
	    db_commit(db) != 0) {
		db_rollback(db);
		return AL_E_IO;
	}
	return 0;
}

int
environment_store_update(struct db *db, const char *id, const json_t *doc, int64_t archived_at)
{
	if (archived_at)
		return env_write(db,
		                 "UPDATE environments SET doc = ?2, archived_at = ?5 WHERE id = ?1",
		                 id, doc, 0, 0, archived_at);
	return env_write(db, "UPDATE environments SET doc = ?2 WHERE id = ?1", id, doc, 0, 0, 0);
}

int
environment_store_delete(struct db *db, const char *id, int64_t now)
{
	sqlite3_stmt *st = NULL;
	int r;
	if ((r = db_begin(db)) != 0)
		return r;
	r = AL_E_IO;
	if (db_prepare(db, "DELETE FROM environments WHERE id = ?1", &st) == 0) {
		db_bind_text(st, 1, id);
		if (sqlite3_step(st) == SQLITE_DONE)
			r = 0;
		sqlite3_finalize(st);
	}
	/* Its environment keys die with it. */
	if (r != 0 || (r = key_store_revoke_environment(db, id, now)) != 0 ||
	    (r = db_commit(db)) != 0) {
		db_rollback(db);
		return r ? r : AL_E_IO;
	}
	return 0;
}

int
environment_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                       struct doc_page *out)
{
	(void)scope_id;
	return doc_store_page(db, "environments", NULL, NULL, q, out);
}
