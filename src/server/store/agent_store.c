/* SQLite side of the agents tables; see agent_store.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_store.h"
#include "db.h"
#include "err.h"

int
agent_store_get(struct db *db, const char *agent_id, int64_t version, json_t **doc)
{
	struct db_stmt *st = NULL;
	json_t *cur = NULL, *d = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db, "SELECT doc FROM agents WHERE id = ?", &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, agent_id);
	if (db_step(st) == DB_ROW)
		cur = db_col_json(st, 0);
	db_finalize(st);
	if (cur == NULL)
		goto out;
	if (version == 0 || version == json_integer_value(json_object_get(cur, "version"))) {
		*doc = cur;
		cur = NULL;
		r = 0;
		goto out;
	}
	if (db_prepare(db, "SELECT doc FROM agent_versions WHERE agent_id = ? AND version = ?",
	               &st) != 0) {
		r = AL_E_IO;
		goto out;
	}
	db_bind_text(st, 1, agent_id);
	db_bind_int64(st, 2, version);
	if (db_step(st) == DB_ROW)
		d = db_col_json(st, 0);
	db_finalize(st);
	if (d == NULL)
		goto out;
	/* Archiving applies to the agent, not to one version. */
	json_object_set(d, "archived_at", json_object_get(cur, "archived_at"));
	*doc = d;
	r = 0;
out:
	json_decref(cur);
	return r;
}

static int
insert_version(struct db *db, const char *id, int64_t version, const char *text)
{
	struct db_stmt *st = NULL;
	int r = 0;
	if (db_prepare(db, "INSERT INTO agent_versions(agent_id, version, doc) VALUES (?, ?, ?)",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	db_bind_int64(st, 2, version);
	db_bind_text(st, 3, text);
	if (db_step(st) != DB_DONE)
		r = AL_E_IO;
	db_finalize(st);
	return r;
}

int
agent_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at)
{
	struct db_stmt *st = NULL;
	char *text = json_dumps(doc, JSON_COMPACT);
	int r;
	if ((r = db_begin(db)) != 0)
		goto out;
	int64_t seq = db_next_seq(db, "agents");
	r = AL_E_IO;
	if (seq < 0 ||
	    db_prepare(db,
	               "INSERT INTO agents(id, seq, version, created_at, archived_at, doc) "
	               "VALUES (?, ?, 1, ?, NULL, ?)",
	               &st) != 0)
		goto rollback;
	db_bind_text(st, 1, id);
	db_bind_int64(st, 2, seq);
	db_bind_int64(st, 3, created_at);
	db_bind_text(st, 4, text);
	if (db_step(st) != DB_DONE)
		goto rollback;
	if ((r = insert_version(db, id, 1, text)) != 0 || (r = db_commit(db)) != 0)
		goto rollback;
	goto out;
rollback:
	db_rollback(db);
out:
	db_finalize(st);
	free(text);
	return r;
}

int
agent_store_update(struct db *db, const char *id, int64_t version, const json_t *doc)
{
	struct db_stmt *st = NULL;
	char *text = json_dumps(doc, JSON_COMPACT);
	int r;
	if ((r = db_begin(db)) != 0)
		goto out;
	r = AL_E_IO;
	if (db_prepare(db, "UPDATE agents SET version = ?, doc = ? WHERE id = ? AND version = ?",
	               &st) != 0)
		goto rollback;
	db_bind_int64(st, 1, version + 1);
	db_bind_text(st, 2, text);
	db_bind_text(st, 3, id);
	db_bind_int64(st, 4, version);
	if (db_step(st) != DB_DONE)
		goto rollback;
	if (db_changes(db) != 1) {
		r = AL_E_CONFLICT;
		goto rollback;
	}
	if ((r = insert_version(db, id, version + 1, text)) != 0 || (r = db_commit(db)) != 0)
		goto rollback;
	goto out;
rollback:
	db_rollback(db);
out:
	db_finalize(st);
	free(text);
	return r;
}

int
agent_store_archive(struct db *db, const char *id, const json_t *doc, int64_t archived_at)
{
	struct db_stmt *st = NULL;
	char *text = json_dumps(doc, JSON_COMPACT);
	int r = AL_E_IO;
	if (db_prepare(db, "UPDATE agents SET archived_at = ?, doc = ? WHERE id = ?", &st) == 0) {
		db_bind_int64(st, 1, archived_at);
		db_bind_text(st, 2, text);
		db_bind_text(st, 3, id);
		if (db_step(st) == DB_DONE)
			r = 0;
	}
	db_finalize(st);
	free(text);
	return r;
}

int
agent_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                 struct doc_page *out)
{
	(void)scope_id;
	return doc_store_page(db, "agents", NULL, NULL, q, out);
}

int
agent_store_list_versions(struct db *db, const char *agent_id, const struct doc_list *q,
                          struct doc_page *out)
{
	struct db_stmt *st = NULL;
	char sql[384];
	int r;
	memset(out, 0, sizeof(*out));
	snprintf(sql, sizeof(sql),
	         "SELECT version, doc FROM agent_versions WHERE agent_id = ?1 "
	         "AND (?2 = 0 OR version %s ?3) ORDER BY version %s LIMIT ?4",
	         q->desc ? "<" : ">", q->desc ? "DESC" : "ASC");
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, agent_id);
	db_bind_int64(st, 2, q->has_cursor);
	db_bind_int64(st, 3, q->after_seq);
	db_bind_int64(st, 4, (int64_t)q->limit + 1);
	r = doc_store_collect(st, q->limit, out);
	db_finalize(st);
	return r;
}
