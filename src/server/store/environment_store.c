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

int
environment_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at)
{
	return db_insert_doc(db, "environments", id, doc, created_at);
}

int
environment_store_update(struct db *db, const char *id, const json_t *doc, int64_t archived_at)
{
	return db_set_doc(db, "environments", id, doc, archived_at);
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
