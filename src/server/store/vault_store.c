/* SQLite side of the vault tables; see vault_store.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "util.h"
#include "vault_store.h"
#include "xalloc.h"

/* Matching key: the URL without one trailing slash, so ".../mcp" and ".../mcp/" name
 * the same server. */
char *
vault_store_url_key(const char *url)
{
	size_t n = strlen(url);
	if (n > 0 && url[n - 1] == '/')
		n--;
	return xstrndup(url, n);
}

/* Runs sql with ?1 = a, ?2 = b (text), ?3 = doc (JSON text), ?4 = n. */
static int
exec4(struct db *db, const char *sql, const char *a, const char *b, const json_t *doc, int64_t n)
{
	struct db_stmt *st = NULL;
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	int r = AL_E_IO;
	if (db_prepare(db, sql, &st) != 0)
		goto out;
	db_bind_text(st, 1, a);
	db_bind_text(st, 2, b);
	db_bind_text(st, 3, text);
	db_bind_int64(st, 4, n);
	int rc = db_step(st);
	if (rc == DB_DONE)
		r = 0;
	else if (rc == DB_CONSTRAINT)
		r = AL_E_CONFLICT;
	else
		log_error("vault statement failed", "error", db_errmsg(db));
out:
	db_finalize(st);
	free(text);
	return r;
}

json_t *
vault_store_get(struct db *db, const char *id, int *err)
{
	return db_load_doc(db, "vaults", id, err);
}

bool
vault_store_live(struct db *db, const char *id)
{
	return doc_store_exists(db, "SELECT 1 FROM vaults WHERE id = ? AND archived_at IS NULL", id,
	                        NULL, NULL, NULL);
}

int
vault_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at)
{
	return db_insert_doc(db, "vaults", id, doc, created_at);
}

int
vault_store_update(struct db *db, const char *id, const json_t *doc)
{
	return db_set_doc(db, "vaults", id, doc, 0);
}

/* PostgreSQL has no json_set that keeps key order (jsonb_set reorders): the live
 * credentials' documents are rewritten one by one, in the caller's transaction. */
static int
pg_archive_docs(struct db *db, const char *vault_id, const char *ts)
{
	struct db_stmt *st = NULL;
	json_t *ids = json_array();
	int r = AL_E_IO, rc;
	if (db_prepare(db,
	               "SELECT id FROM vault_credentials WHERE vault_id = ? AND archived_at IS "
	               "NULL",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, vault_id);
	while ((rc = db_step(st)) == DB_ROW)
		json_array_append_new(ids, json_string(db_col_text(st, 0)));
	if (rc != DB_DONE)
		goto out;
	r = 0;
	for (size_t i = 0; r == 0 && i < json_array_size(ids); i++)
		r = db_doc_set_str(db, "vault_credentials",
		                   json_string_value(json_array_get(ids, i)), "archived_at", ts,
		                   "updated_at", ts);
out:
	db_finalize(st);
	json_decref(ids);
	return r;
}

int
vault_store_archive(struct db *db, const char *id, const json_t *doc, int64_t now)
{
	char ts[32];
	int r;
	time_fmt_rfc3339(now, ts);
	if ((r = db_begin(db)) != 0 || (r = db_set_doc(db, "vaults", id, doc, now)) != 0 ||
	    (db_dialect(db) == DB_DIALECT_PG && (r = pg_archive_docs(db, id, ts)) != 0) ||
	    (r = exec4(db,
	               db_dialect(db) == DB_DIALECT_PG
	                   ? "UPDATE vault_credentials SET archived_at = ?4, secret = NULL "
	                     "WHERE vault_id = ?1 AND archived_at IS NULL"
	                   : "UPDATE vault_credentials SET archived_at = ?4, secret = NULL, "
	                     "doc = json_set(doc, '$.archived_at', ?2, '$.updated_at', ?2) "
	                     "WHERE vault_id = ?1 AND archived_at IS NULL",
	               id, ts, NULL, now)) != 0 ||
	    (r = db_commit(db)) != 0) {
		db_rollback(db);
		return AL_E_IO;
	}
	return 0;
}

int
vault_store_delete(struct db *db, const char *id)
{
	int r;
	if ((r = db_begin(db)) != 0 ||
	    (r = exec4(db, "DELETE FROM vault_credentials WHERE vault_id = ?1", id, NULL, NULL,
	               0)) != 0 ||
	    (r = exec4(db, "DELETE FROM vaults WHERE id = ?1", id, NULL, NULL, 0)) != 0 ||
	    (r = db_commit(db)) != 0) {
		db_rollback(db);
		return AL_E_IO;
	}
	return 0;
}

int
vault_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                 struct doc_page *out)
{
	(void)scope_id;
	return doc_store_page(db, "vaults", NULL, NULL, q, out);
}

json_t *
vault_store_credential_get(struct db *db, const char *vault_id, const char *id, int *err)
{
	struct db_stmt *st = NULL;
	json_t *doc = NULL;
	*err = AL_E_NOTFOUND;
	if (db_prepare(db, "SELECT doc FROM vault_credentials WHERE id = ?1 AND vault_id = ?2",
	               &st) != 0) {
		*err = AL_E_IO;
		return NULL;
	}
	db_bind_text(st, 1, id);
	db_bind_text(st, 2, vault_id);
	if (db_step(st) == DB_ROW && (doc = db_col_json(st, 0)) != NULL)
		*err = 0;
	db_finalize(st);
	return doc;
}

/* Inside the caller's transaction: the vault may take one more live credential for
 * this URL key. */
static int
room_for(struct db *db, const char *vault_id, const char *key, int64_t max_live, char *dup,
         size_t dup_len)
{
	struct db_stmt *st = NULL;
	int64_t live = 0;
	if (db_prepare(db,
	               "SELECT COUNT(*), MAX(CASE WHEN url_key = ?2 THEN id END) FROM "
	               "vault_credentials WHERE vault_id = ?1 AND archived_at IS NULL",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, vault_id);
	db_bind_text(st, 2, key);
	if (db_step(st) == DB_ROW) {
		live = db_col_int64(st, 0);
		if (db_col_text(st, 1))
			snprintf(dup, dup_len, "%s", db_col_text(st, 1));
	}
	db_finalize(st);
	if (dup[0])
		return AL_E_CONFLICT;
	return live >= max_live ? AL_E_TOOBIG : 0;
}

int
vault_store_credential_insert(struct db *db, const struct vault_credential_new *c, int64_t max_live,
                              char *dup, size_t dup_len)
{
	struct db_stmt *st = NULL;
	char *text = json_dumps(c->doc, JSON_COMPACT);
	int r;
	dup[0] = '\0';
	if ((r = db_begin(db)) != 0)
		goto out;
	if ((r = room_for(db, c->vault_id, c->url_key, max_live, dup, dup_len)) != 0) {
		db_rollback(db);
		goto out;
	}
	int64_t seq = db_next_seq(db, "vault_credentials");
	r = AL_E_IO;
	if (seq >= 0 &&
	    db_prepare(db,
	               "INSERT INTO vault_credentials(id, vault_id, seq, auth_type, url_key, "
	               "created_at, archived_at, secret, doc) "
	               "VALUES (?1, ?2, ?3, ?8, ?4, ?5, NULL, ?6, ?7)",
	               &st) == 0) {
		db_bind_text(st, 8, c->auth_type ? c->auth_type : "static_bearer");
		db_bind_text(st, 1, c->id);
		db_bind_text(st, 2, c->vault_id);
		db_bind_int64(st, 3, seq);
		db_bind_text(st, 4, c->url_key);
		db_bind_int64(st, 5, c->created_at);
		db_bind_blob(st, 6, c->secret, (size_t)c->secret_len);
		db_bind_text(st, 7, text);
		int rc = db_step(st);
		/* The partial unique index backs room_for against a concurrent writer. */
		r = rc == DB_DONE ? 0 : rc == DB_CONSTRAINT ? AL_E_CONFLICT : AL_E_IO;
	}
	if (r == 0)
		r = db_commit(db);
	if (r != 0)
		db_rollback(db);
out:
	db_finalize(st);
	free(text);
	return r;
}

int
vault_store_credential_update(struct db *db, const char *vault_id, const char *id,
                              const json_t *doc, const unsigned char *secret, size_t secret_len)
{
	struct db_stmt *st = NULL;
	char *text = json_dumps(doc, JSON_COMPACT);
	int r = AL_E_IO;
	if (db_prepare(db,
	               "UPDATE vault_credentials SET doc = ?3, secret = coalesce(?4, secret) "
	               "WHERE id = ?1 AND vault_id = ?2 AND archived_at IS NULL",
	               &st) == 0) {
		db_bind_text(st, 1, id);
		db_bind_text(st, 2, vault_id);
		db_bind_text(st, 3, text);
		if (secret)
			db_bind_blob(st, 4, secret, (size_t)secret_len);
		else
			db_bind_null(st, 4);
		if (db_step(st) == DB_DONE && db_changes(db) == 1)
			r = 0;
	}
	db_finalize(st);
	free(text);
	return r;
}

int
vault_store_credential_archive(struct db *db, const char *vault_id, const char *id,
                               const json_t *doc, int64_t now)
{
	/* The secret goes with the archive: an archived credential is never used again,
	 * so keeping even its ciphertext only adds exposure. */
	return exec4(db,
	             "UPDATE vault_credentials SET doc = ?3, archived_at = ?4, "
	             "secret = NULL WHERE id = ?1 AND vault_id = ?2",
	             id, vault_id, doc, now);
}

int
vault_store_credential_delete(struct db *db, const char *vault_id, const char *id)
{
	return exec4(db, "DELETE FROM vault_credentials WHERE id = ?1 AND vault_id = ?2", id,
	             vault_id, NULL, 0);
}

int
vault_store_list_credentials(struct db *db, const char *vault_id, const struct doc_list *q,
                             struct doc_page *out)
{
	return doc_store_page(db, "vault_credentials", "vault_id", vault_id, q, out);
}

int
vault_store_find_secret(struct db *db, const char *vault_id, const char *url_key,
                        char *credential_id, size_t id_len, unsigned char **secret,
                        size_t *secret_len)
{
	return vault_store_find_secret_typed(db, vault_id, url_key, "static_bearer", credential_id,
	                                     id_len, secret, secret_len);
}

int
vault_store_find_secret_typed(struct db *db, const char *vault_id, const char *url_key,
                              const char *auth_type, char *credential_id, size_t id_len,
                              unsigned char **secret, size_t *secret_len)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	*secret = NULL;
	*secret_len = 0;
	if (db_prepare(db,
	               "SELECT c.id, c.secret FROM vault_credentials c JOIN vaults v "
	               "ON v.id = c.vault_id WHERE c.vault_id = ?1 AND c.url_key = ?2 "
	               "AND c.auth_type = ?3 AND c.archived_at IS NULL "
	               "AND v.archived_at IS NULL AND c.secret IS NOT NULL LIMIT 1",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, vault_id);
	db_bind_text(st, 2, url_key);
	db_bind_text(st, 3, auth_type);
	if (db_step(st) == DB_ROW) {
		const char *cid = db_col_text(st, 0);
		size_t n = db_col_bytes(st, 1);
		snprintf(credential_id, id_len, "%s", cid ? cid : "");
		*secret = xmalloc(n ? n : 1);
		if (n)
			memcpy(*secret, db_col_blob(st, 1), n);
		*secret_len = n;
		r = 0;
	}
	db_finalize(st);
	return r;
}

static int64_t
count_int(struct db *db, const char *sql, const void *blob, int blen)
{
	struct db_stmt *st = NULL;
	int64_t n = -1;
	if (db_prepare(db, sql, &st) != 0)
		return -1;
	if (blob)
		db_bind_blob(st, 1, blob, (size_t)blen);
	if (db_step(st) == DB_ROW)
		n = db_col_int64(st, 0);
	db_finalize(st);
	return n;
}

int64_t
vault_store_count_sealed(struct db *db)
{
	return count_int(db, "SELECT COUNT(*) FROM vault_credentials WHERE secret IS NOT NULL",
	                 NULL, 0);
}

int64_t
vault_store_count_foreign(struct db *db, const unsigned char *key_id, size_t len)
{
	return count_int(db,
	                 "SELECT COUNT(*) FROM vault_credentials WHERE secret IS NOT "
	                 "NULL AND substr(secret, 2, 8) != ?1",
	                 key_id, (int)len);
}
