/* Paging over the resource tables, and the statement runner the stores share; see
 * doc_store.h. */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "doc_store.h"
#include "err.h"
#include "log.h"
#include "util.h"

int
doc_store_collect(struct db_stmt *st, unsigned limit, struct doc_page *out)
{
	int rc;
	memset(out, 0, sizeof(*out));
	out->data = json_array();
	while ((rc = db_step(st)) == DB_ROW) {
		if (json_array_size(out->data) == limit) {
			out->more = true;
			break;
		}
		json_t *doc = db_col_json(st, 1);
		if (doc == NULL)
			continue;
		out->last_seq = db_col_int64(st, 0);
		json_array_append_new(out->data, doc);
	}
	return 0;
}

int
doc_store_page(struct db *db, const char *table, const char *scope_col, const char *scope_id,
               const struct doc_list *q, struct doc_page *out)
{
	struct db_stmt *st = NULL;
	char sql[512];
	int r;
	memset(out, 0, sizeof(*out));
	/* table and scope_col are ours (never input); values are bound. */
	snprintf(sql, sizeof(sql),
	         "SELECT seq, doc FROM %s WHERE (?1 <> 0 OR archived_at IS NULL) "
	         "AND created_at BETWEEN ?2 AND ?3 AND (?4 = 0 OR seq %s ?5)%s%s%s "
	         "ORDER BY seq %s LIMIT ?6",
	         table, q->desc ? "<" : ">", scope_col ? " AND " : "", scope_col ? scope_col : "",
	         scope_col ? " = ?7" : "", q->desc ? "DESC" : "ASC");
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, q->include_archived);
	db_bind_int64(st, 2, q->created_lo);
	db_bind_int64(st, 3, q->created_hi);
	db_bind_int64(st, 4, q->has_cursor);
	db_bind_int64(st, 5, q->after_seq);
	db_bind_int64(st, 6, (int64_t)q->limit + 1);
	if (scope_col)
		db_bind_text(st, 7, scope_id);
	r = doc_store_collect(st, q->limit, out);
	db_finalize(st);
	return r;
}

/* sql with text ?1..?3; parameters past the statement's own are ignored by both engines. */
static int
prepare_text3(struct db *db, const char *sql, const char *a, const char *b, const char *c,
              struct db_stmt **st)
{
	if (db_prepare(db, sql, st) != 0)
		return AL_E_IO;
	db_bind_text(*st, 1, a);
	db_bind_text(*st, 2, b);
	db_bind_text(*st, 3, c);
	return 0;
}

int
doc_store_exec(struct db *db, const char *store, const char *sql, const char *a, const char *b,
               const char *c)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (prepare_text3(db, sql, a, b, c, &st) != 0)
		goto out;
	if (db_step(st) == DB_DONE)
		r = 0;
	else
		log_error("store statement failed", "store", store, "error", db_errmsg(db));
out:
	db_finalize(st);
	return r;
}

int
doc_store_change_one(struct db *db, const char *sql, const char *a, const char *b, const char *c)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (prepare_text3(db, sql, a, b, c, &st) == 0 && db_step(st) == DB_DONE)
		r = db_changes(db) == 1 ? 0 : AL_E_NOTFOUND;
	db_finalize(st);
	return r;
}

bool
doc_store_exists(struct db *db, const char *sql, const char *a, const char *b, const char *c,
                 int *err)
{
	struct db_stmt *st = NULL;
	bool found = false;
	int r = AL_E_IO;
	if (prepare_text3(db, sql, a, b, c, &st) != 0)
		goto out;
	int rc = db_step(st);
	if (rc == DB_ROW || rc == DB_DONE) {
		found = rc == DB_ROW;
		r = 0;
	}
out:
	db_finalize(st);
	if (err)
		*err = r;
	return found;
}

void
doc_page_free(struct doc_page *p)
{
	if (p == NULL)
		return;
	json_decref(p->data);
	p->data = NULL;
}

json_t *
doc_store_time(int64_t real_us)
{
	char ts[32];
	if (real_us == 0)
		return json_null();
	time_fmt_rfc3339(real_us, ts);
	return json_string(ts);
}
