/* SQLite side of the memory tables; see memory_store.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "memory_store.h"
#include "util.h"
#include "xalloc.h"

/* ---- helpers ---- */

/* Binds text that may be NULL or hold any bytes but NUL (content is sized). */
static void
bind_sized(struct db_stmt *st, int idx, const char *s, size_t len)
{
	if (s == NULL)
		db_bind_null(st, idx);
	else
		db_bind_textn(st, idx, s, len);
}

static json_t *
actor_json(const struct memory_actor *a)
{
	if (a->session_id)
		return json_pack("{s:s, s:s}", "type", "session_actor", "session_id",
		                 a->session_id);
	if (a->user_id)
		return json_pack("{s:s, s:s}", "type", "user_actor", "user_id", a->user_id);
	if (a->api_key_id)
		return json_pack("{s:s, s:s}", "type", "api_actor", "api_key_id", a->api_key_id);
	return json_null();
}

/* ---- stores ---- */

json_t *
memory_store_get(struct db *db, const char *id, int *err)
{
	return db_load_doc(db, "memory_stores", id, err);
}

int
memory_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at)
{
	return db_insert_doc(db, "memory_stores", id, doc, created_at);
}

int
memory_store_update(struct db *db, const char *id, const json_t *doc)
{
	return db_set_doc(db, "memory_stores", id, doc, 0);
}

int
memory_store_archive(struct db *db, const char *id, const json_t *doc, int64_t now)
{
	return db_set_doc(db, "memory_stores", id, doc, now);
}

int
memory_store_delete(struct db *db, const char *id)
{
	if (db_begin(db) != 0 ||
	    doc_store_exec(db, "memory", "DELETE FROM memory_versions WHERE store_id = ?1", id,
	                   NULL, NULL) != 0 ||
	    doc_store_exec(db, "memory", "DELETE FROM memories WHERE store_id = ?1", id, NULL,
	                   NULL) != 0 ||
	    doc_store_exec(db, "memory", "DELETE FROM memory_store_attachments WHERE store_id = ?1",
	                   id, NULL, NULL) != 0 ||
	    doc_store_exec(db, "memory", "DELETE FROM memory_stores WHERE id = ?1", id, NULL,
	                   NULL) != 0 ||
	    db_commit(db) != 0) {
		db_rollback(db);
		return AL_E_IO;
	}
	return 0;
}

int
memory_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                  struct doc_page *out)
{
	(void)scope_id;
	return doc_store_page(db, "memory_stores", NULL, NULL, q, out);
}

/* ---- memories ---- */

#define MEM_COLS                                                                                   \
	"id, store_id, path, content, sha256, size, version_id, created_at, updated_at, seq"

/* The API shape of a memories row selected with MEM_COLS. */
static json_t *
memory_json(struct db_stmt *st, bool with_content)
{
	json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "type", "memory", "id",
	                      db_col_text(st, 0), "memory_store_id", db_col_text(st, 1), "path",
	                      db_col_text(st, 2), "content_sha256", db_col_text(st, 4),
	                      "content_size_bytes", (json_int_t)db_col_int64(st, 5),
	                      "memory_version_id", db_col_text(st, 6));
	if (m == NULL)
		return NULL;
	if (with_content) {
		const char *text = db_col_text(st, 3);
		size_t len = db_col_bytes(st, 3);
		json_object_set_new(m, "content", json_stringn(text ? text : "", len));
	} else {
		json_object_set_new(m, "content", json_null());
	}
	json_object_set_new(m, "created_at", doc_store_time(db_col_int64(st, 7)));
	json_object_set_new(m, "updated_at", doc_store_time(db_col_int64(st, 8)));
	return m;
}

/* One row of sql (?1 store id, ?2 id) shaped by fn; *err: 0, AL_E_NOTFOUND, AL_E_IO. */
static json_t *
row_get(struct db *db, const char *sql, const char *store_id, const char *id,
        json_t *(*fn)(struct db_stmt *, bool), bool with_content, int *err)
{
	struct db_stmt *st = NULL;
	json_t *o = NULL;
	*err = AL_E_IO;
	if (db_prepare(db, sql, &st) != 0)
		return NULL;
	db_bind_text(st, 1, store_id);
	db_bind_text(st, 2, id);
	int rc = db_step(st);
	if (rc == DB_ROW) {
		o = fn(st, with_content);
		*err = o ? 0 : AL_E_IO;
	} else if (rc == DB_DONE) {
		*err = AL_E_NOTFOUND;
	}
	db_finalize(st);
	return o;
}

json_t *
memory_store_memory_get(struct db *db, const char *store_id, const char *id, bool with_content,
                        int *err)
{
	return row_get(db, "SELECT " MEM_COLS " FROM memories WHERE store_id = ?1 AND id = ?2",
	               store_id, id, memory_json, with_content, err);
}

/* Steps st (columns id, path): 1 with c filled from its row, 0 for none, AL_E_IO. */
static int
conflict_step(struct db_stmt *st, struct memory_conflict *c)
{
	int rc = db_step(st);
	if (rc == DB_ROW) {
		snprintf(c->id, sizeof(c->id), "%s", db_col_text(st, 0));
		snprintf(c->path, sizeof(c->path), "%s", db_col_text(st, 1));
		return 1;
	}
	return rc == DB_DONE ? 0 : AL_E_IO;
}

/* The memory (other than exclude_id) at path, at an ancestor of it or below it: 1 with c
 * filled, 0 for none, AL_E_IO. Two paths overlap when one is an ancestor of the other:
 * the mount is a file tree, where /a cannot be a file and a directory at once. */
static int
path_conflict(struct db *db, const char *store_id, const char *path, const char *exclude_id,
              struct memory_conflict *c)
{
	struct db_stmt *st = NULL;
	char anc[MEMORY_MAX_PATH + 1];
	size_t n = strlen(path);
	int r = AL_E_IO;
	/* the path itself and its descendants: [path/, path0) in byte order */
	if (db_prepare(db,
	               "SELECT id, path FROM memories WHERE store_id = ?1 AND id != ?3 "
	               "AND (path = ?2 OR (path >= ?2 || '/' AND path < ?2 || '0')) LIMIT 1",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, store_id);
	db_bind_text(st, 2, path);
	db_bind_text(st, 3, exclude_id ? exclude_id : "");
	if ((r = conflict_step(st, c)) != 0)
		goto out;
	/* its ancestors: at most MEMORY_MAX_SEGMENTS - 1 exact lookups on the index */
	db_finalize(st);
	st = NULL;
	r = AL_E_IO;
	if (db_prepare(db,
	               "SELECT id, path FROM memories WHERE store_id = ?1 AND path = ?2 AND "
	               "id != ?3",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, store_id);
	db_bind_text(st, 3, exclude_id ? exclude_id : "");
	for (size_t i = 1; i < n && i < sizeof(anc); i++) {
		if (path[i] != '/')
			continue;
		memcpy(anc, path, i);
		anc[i] = '\0';
		db_reset(st);
		db_bind_text(st, 2, anc);
		if ((r = conflict_step(st, c)) != 0)
			goto out;
	}
	r = 0;
out:
	db_finalize(st);
	return r;
}

/* Adds a version row; path/content NULL for a deletion. Then prunes the store's oldest
 * versions that hold no memory's current content beyond MEMORY_MAX_VERSIONS. */
static int
version_insert(struct db *db, const struct memory_write *w, const char *memory_id, const char *vid,
               const char *op, const char *path, const char *content, size_t len, const char *sha)
{
	struct db_stmt *st = NULL;
	json_t *actor = actor_json(&w->actor);
	char *by = json_dumps(actor, JSON_COMPACT | JSON_ENCODE_ANY);
	int r = AL_E_IO;
	int64_t seq = db_next_seq(db, "memory_versions");
	if (seq < 0 ||
	    db_prepare(db,
	               "INSERT INTO memory_versions(id, store_id, memory_id, seq, operation, path, "
	               "content, sha256, size, created_at, created_by, session_id, api_key_id) "
	               "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, vid);
	db_bind_text(st, 2, w->store_id);
	db_bind_text(st, 3, memory_id);
	db_bind_int64(st, 4, seq);
	db_bind_text(st, 5, op);
	db_bind_text(st, 6, path);
	bind_sized(st, 7, content, len);
	db_bind_text(st, 8, sha);
	if (content)
		db_bind_int64(st, 9, (int64_t)len);
	db_bind_int64(st, 10, w->now);
	db_bind_text(st, 11, by);
	db_bind_text(st, 12, w->actor.session_id);
	db_bind_text(st, 13, w->actor.api_key_id);
	if (db_step(st) != DB_DONE)
		goto out;
	db_finalize(st);
	st = NULL;
	if (db_prepare(db,
	               "DELETE FROM memory_versions WHERE seq IN (SELECT seq FROM memory_versions "
	               "WHERE store_id = ?1 AND id NOT IN (SELECT version_id FROM memories WHERE "
	               "store_id = ?1) ORDER BY seq LIMIT (SELECT CASE WHEN n > ?2 THEN n - ?2 "
	               "ELSE 0 END FROM (SELECT count(*) AS n FROM memory_versions WHERE "
	               "store_id = ?1) c))",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, w->store_id);
	db_bind_int64(st, 2, MEMORY_MAX_VERSIONS);
	if (db_step(st) != DB_DONE)
		goto out;
	r = 0;
out:
	if (r != 0)
		log_error("memory version insert failed", "error", db_errmsg(db));
	db_finalize(st);
	json_decref(actor);
	free(by);
	return r;
}

static int64_t
count_memories(struct db *db, const char *store_id)
{
	struct db_stmt *st = NULL;
	int64_t n = -1;
	if (db_prepare(db, "SELECT count(*) FROM memories WHERE store_id = ?1", &st) != 0)
		return -1;
	db_bind_text(st, 1, store_id);
	if (db_step(st) == DB_ROW)
		n = db_col_int64(st, 0);
	db_finalize(st);
	return n;
}

/* Writes the memories row (insert or update) with a new version id. */
static int
memory_put(struct db *db, const struct memory_write *w, bool insert, const char *path,
           const char *content, size_t len, const char *sha, const char *vid)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	int64_t seq = insert ? db_next_seq(db, "memories") : 0;
	if (seq < 0 ||
	    db_prepare(db,
	               insert ? "INSERT INTO memories(id, store_id, seq, path, content, sha256, "
	                        "size, version_id, created_at, updated_at) "
	                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)"
	                      : "UPDATE memories SET path = ?4, content = ?5, sha256 = ?6, size = "
	                        "?7, version_id = ?8, updated_at = ?9 WHERE id = ?1 AND store_id = "
	                        "?2",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, w->id);
	db_bind_text(st, 2, w->store_id);
	db_bind_int64(st, 3, seq);
	db_bind_text(st, 4, path);
	bind_sized(st, 5, content, len);
	db_bind_text(st, 6, sha);
	db_bind_int64(st, 7, (int64_t)len);
	db_bind_text(st, 8, vid);
	db_bind_int64(st, 9, w->now);
	int rc = db_step(st);
	if (rc == DB_DONE)
		r = 0;
	else if (rc == DB_CONSTRAINT)
		r = AL_E_CONFLICT; /* the unique path index: a writer we did not see */
out:
	db_finalize(st);
	return r;
}

int
memory_store_memory_create(struct db *db, const struct memory_write *w, bool with_content,
                           json_t **out, struct memory_conflict *conflict)
{
	char sha[65], *vid = id_new("memver_");
	int r, err;
	memset(conflict, 0, sizeof(*conflict));
	*out = NULL;
	sha256_hex(w->content, w->content_len, sha);
	if ((r = db_begin(db)) != 0)
		goto out;
	int c = path_conflict(db, w->store_id, w->path, NULL, conflict);
	int64_t n = c == 0 ? count_memories(db, w->store_id) : 0;
	if (c < 0 || n < 0)
		r = AL_E_IO;
	else if (c == 1)
		r = AL_E_CONFLICT;
	else if (n >= MEMORY_MAX_PER_STORE)
		r = AL_E_TOOBIG;
	else if ((r = memory_put(db, w, true, w->path, w->content, w->content_len, sha, vid)) ==
	             0 &&
	         (r = version_insert(db, w, w->id, vid, "created", w->path, w->content,
	                             w->content_len, sha)) == 0)
		r = db_commit(db);
	if (r != 0) {
		db_rollback(db);
		goto out;
	}
	if ((*out = memory_store_memory_get(db, w->store_id, w->id, with_content, &err)) == NULL)
		r = err;
out:
	free(vid);
	return r;
}

/* The current row of a memory, for a write: path, content (heap) and hash. */
struct memory_cur {
	char *path, *content;
	size_t len;
	char sha[65];
};

static void
memory_cur_free(struct memory_cur *m)
{
	free(m->path);
	free(m->content);
}

static int
memory_load(struct db *db, const char *store_id, const char *id, struct memory_cur *m)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	memset(m, 0, sizeof(*m));
	if (db_prepare(db,
	               "SELECT path, content, sha256 FROM memories WHERE store_id = ?1 AND id = ?2",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, store_id);
	db_bind_text(st, 2, id);
	int rc = db_step(st);
	if (rc == DB_ROW) {
		const char *c = db_col_text(st, 1);
		m->len = db_col_bytes(st, 1);
		m->path = xstrdup(db_col_text(st, 0));
		m->content = xstrndup(c ? c : "", m->len);
		snprintf(m->sha, sizeof(m->sha), "%s", db_col_text(st, 2));
		r = 0;
	} else if (rc == DB_DONE) {
		r = AL_E_NOTFOUND;
	}
	db_finalize(st);
	return r;
}

int
memory_store_memory_update(struct db *db, const struct memory_write *w, bool with_content,
                           json_t **out, struct memory_conflict *conflict)
{
	struct memory_cur cur = {0};
	char sha[65], *vid = NULL;
	int r, err;
	memset(conflict, 0, sizeof(*conflict));
	*out = NULL;
	if ((r = db_begin(db)) != 0)
		return r;
	if ((r = memory_load(db, w->store_id, w->id, &cur)) != 0)
		goto fail;
	const char *path = w->path ? w->path : cur.path;
	const char *content = w->content ? w->content : cur.content;
	size_t len = w->content ? w->content_len : cur.len;
	bool same_content = len == cur.len && memcmp(content, cur.content, len) == 0;
	bool same_path = strcmp(path, cur.path) == 0;
	/* Nothing to change: success without a version, whatever the precondition says
	 * (the reference: "already has exactly the requested content and path"). */
	if (same_content && same_path) {
		db_rollback(db);
		goto done;
	}
	if (w->expected_sha256 && strcmp(w->expected_sha256, cur.sha) != 0) {
		r = AL_E_PRECOND;
		goto fail;
	}
	if (!same_path) {
		int c = path_conflict(db, w->store_id, path, w->id, conflict);
		if (c != 0) {
			r = c == 1 ? AL_E_CONFLICT : AL_E_IO;
			goto fail;
		}
	}
	sha256_hex(content, len, sha);
	vid = id_new("memver_");
	if ((r = memory_put(db, w, false, path, content, len, sha, vid)) != 0 ||
	    (r = version_insert(db, w, w->id, vid, "modified", path, content, len, sha)) != 0 ||
	    (r = db_commit(db)) != 0)
		goto fail;
done:
	if ((*out = memory_store_memory_get(db, w->store_id, w->id, with_content, &err)) == NULL)
		r = err;
	goto out;
fail:
	db_rollback(db);
out:
	memory_cur_free(&cur);
	free(vid);
	return r;
}

int
memory_store_memory_delete(struct db *db, const struct memory_write *w)
{
	struct memory_cur cur = {0};
	char *vid = NULL;
	int r;
	if ((r = db_begin(db)) != 0)
		return r;
	if ((r = memory_load(db, w->store_id, w->id, &cur)) != 0)
		goto fail;
	if (w->expected_sha256 && strcmp(w->expected_sha256, cur.sha) != 0) {
		r = AL_E_PRECOND;
		goto fail;
	}
	vid = id_new("memver_");
	if ((r = doc_store_exec(db, "memory",
	                        "DELETE FROM memories WHERE store_id = ?1 AND id = ?2", w->store_id,
	                        w->id, NULL)) != 0 ||
	    (r = version_insert(db, w, w->id, vid, "deleted", cur.path, NULL, 0, NULL)) != 0 ||
	    (r = db_commit(db)) != 0)
		goto fail;
	goto out;
fail:
	db_rollback(db);
out:
	memory_cur_free(&cur);
	free(vid);
	return r;
}

/* The marker that stands for path at this depth below prefix, or NULL when path is
 * shallow enough to list itself (heap string). */
static char *
rollup(const char *prefix, unsigned depth, const char *path)
{
	size_t pl = strlen(prefix);
	const char *p = path + pl;
	unsigned seen = 0;
	if (depth == 0)
		return NULL;
	for (; *p; p++)
		if (*p == '/' && ++seen == depth)
			return xstrndup(path, (size_t)(p - path) + 1);
	return NULL;
}

int
memory_store_memory_list(struct db *db, const struct memory_list *q, struct memory_page *out)
{
	struct db_stmt *st = NULL;
	char *hi = xstrdup(q->prefix), *marker = NULL, *last = NULL;
	bool last_marker = false;
	int r = AL_E_IO, rc;
	memset(out, 0, sizeof(*out));
	out->data = json_array();
	/* Every path under prefix (which ends with '/') is in [prefix, prefix0): '0'
	 * follows '/' in byte order, and SQLite compares text bytewise. */
	hi[strlen(hi) - 1] = '0';
	if (db_prepare(db,
	               "SELECT " MEM_COLS " FROM memories WHERE store_id = ?1 AND path >= ?2 AND "
	               "path < ?3 AND (?4 IS NULL OR path > ?4 OR (?5 <> 0 AND path = ?4)) "
	               "ORDER BY path",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, q->store_id);
	db_bind_text(st, 2, q->prefix);
	db_bind_text(st, 3, hi);
	db_bind_text(st, 4, q->from);
	db_bind_int64(st, 5, q->from_inclusive);
	/* The rows of one rolled-up marker are consecutive in path order; a store holds at
	 * most MEMORY_MAX_PER_STORE rows, which bounds this scan. */
	while ((rc = db_step(st)) == DB_ROW) {
		const char *path = db_col_text(st, 2);
		char *m = rollup(q->prefix, q->depth, path);
		if (m && marker && strcmp(m, marker) == 0) {
			free(m);
			continue;
		}
		if (json_array_size(out->data) == q->limit) {
			free(m);
			out->more = true;
			break;
		}
		free(marker);
		marker = m;
		free(last);
		if (m) {
			json_array_append_new(
			    out->data, json_pack("{s:s, s:s}", "type", "memory_prefix", "path", m));
			last = xstrdup(m);
			last_marker = true;
		} else {
			json_t *mem = memory_json(st, q->with_content);
			if (mem == NULL)
				goto out;
			json_array_append_new(out->data, mem);
			last = xstrdup(path);
			last_marker = false;
		}
	}
	if (rc != DB_ROW && rc != DB_DONE)
		goto out;
	if (out->more) {
		/* after a marker "/a/": from "/a0" on (every path below "/a/" skipped) */
		if (last_marker)
			last[strlen(last) - 1] = '0';
		out->next = last;
		out->next_inclusive = last_marker;
		last = NULL;
	}
	r = 0;
out:
	db_finalize(st);
	free(hi);
	free(marker);
	free(last);
	return r;
}

void
memory_page_free(struct memory_page *p)
{
	json_decref(p->data);
	free(p->next);
	memset(p, 0, sizeof(*p));
}

/* ---- versions ---- */

#define VER_COLS                                                                                   \
	"seq, id, store_id, memory_id, operation, path, content, sha256, size, created_at, "       \
	"created_by, redacted_at, redacted_by"

static json_t *
version_json(struct db_stmt *st, bool with_content)
{
	bool live = !db_col_is_null(st, 7); /* not deleted, not redacted */
	json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "memory_version", "id",
	                      db_col_text(st, 1), "memory_store_id", db_col_text(st, 2),
	                      "memory_id", db_col_text(st, 3), "operation", db_col_text(st, 4));
	json_t *by = db_col_json(st, 10), *rby = db_col_json(st, 12);
	if (v == NULL) {
		json_decref(by);
		json_decref(rby);
		return NULL;
	}
	const char *path = db_col_text(st, 5);
	json_object_set_new(v, "path", path ? json_string(path) : json_null());
	if (live && with_content) {
		const char *text = db_col_text(st, 6);
		json_object_set_new(v, "content",
		                    json_stringn(text ? text : "", db_col_bytes(st, 6)));
	} else {
		json_object_set_new(v, "content", json_null());
	}
	json_object_set_new(v, "content_sha256",
	                    live ? json_string(db_col_text(st, 7)) : json_null());
	json_object_set_new(v, "content_size_bytes",
	                    live ? json_integer(db_col_int64(st, 8)) : json_null());
	json_object_set_new(v, "created_at", doc_store_time(db_col_int64(st, 9)));
	json_object_set_new(v, "created_by", by ? by : json_null());
	json_object_set_new(v, "redacted_at", doc_store_time(db_col_int64(st, 11)));
	json_object_set_new(v, "redacted_by", rby ? rby : json_null());
	return v;
}

json_t *
memory_store_version_get(struct db *db, const char *store_id, const char *id, bool with_content,
                         int *err)
{
	return row_get(db,
	               "SELECT " VER_COLS " FROM memory_versions WHERE store_id = ?1 AND id = ?2",
	               store_id, id, version_json, with_content, err);
}

int
memory_store_version_list(struct db *db, const char *store_id,
                          const struct memory_version_filter *f, const struct doc_list *q,
                          bool with_content, struct doc_page *out)
{
	struct db_stmt *st = NULL;
	char sql[640];
	int rc, r = AL_E_IO;
	memset(out, 0, sizeof(*out));
	out->data = json_array();
	if (f->none)
		return 0;
	snprintf(sql, sizeof(sql),
	         "SELECT " VER_COLS " FROM memory_versions WHERE store_id = ?1 AND created_at "
	         "BETWEEN ?2 AND ?3 AND (?4 IS NULL OR memory_id = ?4) AND (?5 IS NULL OR "
	         "operation = ?5) AND (?6 IS NULL OR session_id = ?6) AND (?7 IS NULL OR "
	         "api_key_id = ?7) AND (?8 = 0 OR seq %s ?9) ORDER BY seq %s LIMIT ?10",
	         q->desc ? "<" : ">", q->desc ? "DESC" : "ASC");
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, store_id);
	db_bind_int64(st, 2, q->created_lo);
	db_bind_int64(st, 3, q->created_hi);
	db_bind_text(st, 4, f->memory_id);
	db_bind_text(st, 5, f->operation);
	db_bind_text(st, 6, f->session_id);
	db_bind_text(st, 7, f->api_key_id);
	db_bind_int64(st, 8, q->has_cursor);
	db_bind_int64(st, 9, q->after_seq);
	db_bind_int64(st, 10, (int64_t)q->limit + 1);
	while ((rc = db_step(st)) == DB_ROW) {
		if (json_array_size(out->data) == q->limit) {
			out->more = true;
			break;
		}
		json_t *v = version_json(st, with_content);
		if (v == NULL)
			goto out;
		out->last_seq = db_col_int64(st, 0);
		json_array_append_new(out->data, v);
	}
	if (rc == DB_ROW || rc == DB_DONE)
		r = 0;
out:
	db_finalize(st);
	return r;
}

int
memory_store_version_redact(struct db *db, const char *store_id, const char *id,
                            const struct memory_actor *by, int64_t now, json_t **out)
{
	struct db_stmt *st = NULL;
	json_t *actor = actor_json(by);
	char *text = json_dumps(actor, JSON_COMPACT | JSON_ENCODE_ANY);
	int r, err;
	*out = NULL;
	if ((r = db_begin(db)) != 0)
		goto out;
	json_t *v = memory_store_version_get(db, store_id, id, false, &err);
	if (v == NULL) {
		r = err;
		goto fail;
	}
	bool redacted = !json_is_null(json_object_get(v, "redacted_at"));
	json_decref(v);
	if (redacted) {
		db_rollback(db);
		goto done;
	}
	/* The current content of a live memory cannot go: the memory would then show a
	 * content no version holds. */
	if (db_prepare(db, "SELECT 1 FROM memories WHERE store_id = ?1 AND version_id = ?2", &st) !=
	    0) {
		r = AL_E_IO;
		goto fail;
	}
	db_bind_text(st, 1, store_id);
	db_bind_text(st, 2, id);
	int rc = db_step(st);
	db_finalize(st);
	st = NULL;
	if (rc != DB_DONE) {
		r = rc == DB_ROW ? AL_E_CONFLICT : AL_E_IO;
		goto fail;
	}
	if (db_prepare(db,
	               "UPDATE memory_versions SET path = NULL, content = NULL, sha256 = NULL, "
	               "size = NULL, redacted_at = ?3, redacted_by = ?4 WHERE store_id = ?1 AND "
	               "id = ?2",
	               &st) != 0) {
		r = AL_E_IO;
		goto fail;
	}
	db_bind_text(st, 1, store_id);
	db_bind_text(st, 2, id);
	db_bind_int64(st, 3, now);
	db_bind_text(st, 4, text);
	if (db_step(st) != DB_DONE || (r = db_commit(db)) != 0) {
		r = AL_E_IO;
		goto fail;
	}
done:
	if ((*out = memory_store_version_get(db, store_id, id, false, &err)) == NULL)
		r = err;
	goto out;
fail:
	db_rollback(db);
out:
	db_finalize(st);
	json_decref(actor);
	free(text);
	return r;
}

/* ---- sessions ---- */

int
memory_store_attach(struct db *db, const char *session_id, const char *store_id,
                    const char *owner_iss, const char *owner_sub)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db,
	               "INSERT INTO memory_store_attachments(session_id, store_id, "
	               "owner_iss, owner_sub) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	db_bind_text(st, 2, store_id);
	db_bind_text(st, 3, owner_iss);
	db_bind_text(st, 4, owner_sub);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}

int
memory_store_detach(struct db *db, const char *session_id, const char *store_id)
{
	return doc_store_exec(
	    db, "memory",
	    "DELETE FROM memory_store_attachments WHERE session_id = ? AND store_id = ?",
	    session_id, store_id, NULL);
}

int
memory_store_detach_session(struct db *db, const char *session_id)
{
	return doc_store_exec(db, "memory",
	                      "DELETE FROM memory_store_attachments WHERE session_id = ?1",
	                      session_id, NULL, NULL);
}

bool
memory_store_attached_to_owner(struct db *db, const char *store_id, const char *iss,
                               const char *sub)
{
	return iss != NULL && sub != NULL &&
	       doc_store_exists(db,
	                        "SELECT 1 FROM memory_store_attachments WHERE store_id = ?1 AND "
	                        "owner_iss = ?2 AND owner_sub = ?3 LIMIT 1",
	                        store_id, iss, sub, NULL);
}
