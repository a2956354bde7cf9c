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
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db, "SELECT archived_at FROM environments WHERE id = ?", &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	if (db_step(st) == DB_ROW)
		r = db_col_is_null(st, 0) ? 0 : AL_E_CONFLICT;
	db_finalize(st);
	return r;
}

static int
env_write(struct db *db, const char *sql, const char *id, const json_t *doc, int64_t seq,
          int64_t created, int64_t archived)
{
	struct db_stmt *st = NULL;
	char *text = json_dumps(doc, JSON_COMPACT);
	int r = AL_E_IO;
	if (db_prepare(db, sql, &st) != 0)
		goto out;
	db_bind_text(st, 1, id);
	db_bind_text(st, 2, text);
	db_bind_int64(st, 3, seq);
	db_bind_int64(st, 4, created);
	if (archived)
		db_bind_int64(st, 5, archived);
	else
		db_bind_null(st, 5);
	if (db_step(st) == DB_DONE && db_changes(db) == 1)
		r = 0;
out:
	db_finalize(st);
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
	struct db_stmt *st = NULL;
	int r;
	if ((r = db_begin(db)) != 0)
		return r;
	r = AL_E_IO;
	if (db_prepare(db, "DELETE FROM environments WHERE id = ?1", &st) == 0) {
		db_bind_text(st, 1, id);
		if (db_step(st) == DB_DONE)
			r = 0;
		db_finalize(st);
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
