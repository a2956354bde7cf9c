/* The engine-neutral half of the storage: the statement API every store calls, the
 * statement cache, transaction nesting, the schema migrations and the migration runner;
 * each call goes to the engine's table (db_backend.h). See docs/server/storage.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_backend.h"
#include "err.h"
#include "log.h"
#include "xalloc.h"

/* Append-only: never edit a migration that has shipped, add a new one. Resources keep
 * their full JSON rendering in `doc` next to the columns that queries filter on, so
 * the wire shape round-trips exactly and new fields need no migration. Each migration
 * has a text per engine; pg NULL means the SQLite text is valid PostgreSQL as it is
 * (write new ones that way: BIGINT for integers, no AUTOINCREMENT, no BLOB). */
struct migration {
	const char *sqlite;
	const char *pg;
};

static const struct migration migrations[] = {

    /* 1 */
    {"CREATE TABLE seqs (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
     "CREATE TABLE api_keys ("
     "  id TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('server','environment')),"
     "  environment_id TEXT, hash TEXT NOT NULL UNIQUE, name TEXT,"
     "  created_at INTEGER NOT NULL, revoked_at INTEGER);"
     "CREATE TABLE agents ("
     "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, version INTEGER NOT NULL,"
     "  created_at INTEGER NOT NULL, archived_at INTEGER, doc TEXT NOT NULL);"
     "CREATE TABLE agent_versions ("
     "  agent_id TEXT NOT NULL REFERENCES agents(id), version INTEGER NOT NULL,"
     "  doc TEXT NOT NULL, PRIMARY KEY (agent_id, version));"
     "CREATE TABLE environments ("
     "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE,"
     "  created_at INTEGER NOT NULL, archived_at INTEGER, doc TEXT NOT NULL);"
     "CREATE TABLE sessions ("
     "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, environment_id TEXT NOT NULL,"
     "  agent_id TEXT NOT NULL, agent_version INTEGER NOT NULL, status TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL, archived_at INTEGER, doc TEXT NOT NULL,"
     "  loop_state TEXT);"
     "CREATE INDEX sessions_env ON sessions(environment_id);"
     "CREATE TABLE events ("
     "  id TEXT PRIMARY KEY, session_id TEXT NOT NULL, seq INTEGER NOT NULL,"
     "  type TEXT NOT NULL, created_at INTEGER NOT NULL, processed_at INTEGER,"
     "  answers TEXT, doc TEXT NOT NULL, UNIQUE (session_id, seq));"
     "CREATE INDEX events_answers ON events(session_id, answers);"
     "CREATE TABLE work ("
     "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, environment_id TEXT NOT NULL,"
     "  session_id TEXT, data_type TEXT NOT NULL, state TEXT NOT NULL,"
     "  metadata TEXT NOT NULL DEFAULT '{}', token_hash TEXT UNIQUE,"
     "  created_at INTEGER NOT NULL, delivered_at INTEGER, delivered_to TEXT,"
     "  acknowledged_at INTEGER, started_at INTEGER, latest_heartbeat_at INTEGER,"
     "  last_heartbeat TEXT, lease_expires_at INTEGER, ttl_seconds INTEGER NOT NULL DEFAULT 90,"
     "  stop_requested_at INTEGER, stopped_at INTEGER);"
     "CREATE INDEX work_queue ON work(environment_id, state, seq);"
     "CREATE INDEX work_session ON work(session_id, state);"
     "CREATE TABLE workers_seen (environment_id TEXT NOT NULL, worker_id TEXT NOT NULL,"
     "  seen_at INTEGER NOT NULL, PRIMARY KEY (environment_id, worker_id));",
     NULL},
    /* 2: MCP tunnels (tunnel_api.c). token is kept for reveal_token; only token_hash
     * authenticates, so rotation retires the old value for new connections at once. */
    {"CREATE TABLE tunnels ("
     "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, display_name TEXT,"
     "  domain TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, archived_at INTEGER,"
     "  token_id TEXT NOT NULL, token TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,"
     "  rotated_at INTEGER);",
     NULL},
    /* 3: vaults and credentials (vaults.c). secret is the AES-256-GCM blob, never the
     * plaintext; url_key is mcp_server_url without a trailing slash, unique among a
     * vault's live credentials. */
    {"CREATE TABLE vaults ("
     "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE,"
     "  created_at INTEGER NOT NULL, archived_at INTEGER, doc TEXT NOT NULL);"
     "CREATE TABLE vault_credentials ("
     "  id TEXT PRIMARY KEY, vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,"
     "  seq INTEGER NOT NULL UNIQUE, auth_type TEXT NOT NULL, url_key TEXT,"
     "  created_at INTEGER NOT NULL, archived_at INTEGER, secret BLOB, doc TEXT NOT NULL);"
     "CREATE INDEX vault_credentials_vault ON vault_credentials(vault_id, seq);"
     "CREATE UNIQUE INDEX vault_credentials_live_url ON vault_credentials(vault_id, url_key)"
     "  WHERE archived_at IS NULL;",
     NULL},
    /* 4: the user who created a session (OIDC issuer + subject, and the groups the token
     * carried then); NULL for sessions made with a server API key. Users see their own. */
    {"ALTER TABLE sessions ADD COLUMN owner_iss TEXT;"
     "ALTER TABLE sessions ADD COLUMN owner_sub TEXT;"
     "ALTER TABLE sessions ADD COLUMN owner_groups TEXT;"
     "CREATE INDEX sessions_owner ON sessions(owner_iss, owner_sub, seq);",
     NULL},
    /* 5: the owner's email (tool policy rules may name users by it); API-key sessions
     * record owner_sub "apikey:<key id>" with no issuer. */
    {"ALTER TABLE sessions ADD COLUMN owner_email TEXT;", NULL},
    /* 6: audit records made outside the server (airlock keys), in the transaction of what
     * they record, until the server appends them to its audit log (audit_store.c). */
    {"CREATE TABLE audit_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL);",
     NULL},
    /* 7: memory stores (memory_store.c). A memory's content lives in its row and in the
     * version that wrote it; a version keeps its row after its memory is deleted, and
     * redaction empties it (path, content, hash, size NULL). Attachments record which
     * sessions mount a store, with the session owner, so a user may read the stores of
     * their own sessions. */
    {"CREATE TABLE memory_stores ("
     "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE,"
     "  created_at INTEGER NOT NULL, archived_at INTEGER, doc TEXT NOT NULL);"
     "CREATE TABLE memories ("
     "  id TEXT PRIMARY KEY, store_id TEXT NOT NULL, seq INTEGER NOT NULL UNIQUE,"
     "  path TEXT NOT NULL, content TEXT NOT NULL, sha256 TEXT NOT NULL,"
     "  size INTEGER NOT NULL, version_id TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, UNIQUE (store_id, path));"
     "CREATE TABLE memory_versions ("
     "  id TEXT PRIMARY KEY, store_id TEXT NOT NULL, memory_id TEXT NOT NULL,"
     "  seq INTEGER NOT NULL UNIQUE, operation TEXT NOT NULL, path TEXT, content TEXT,"
     "  sha256 TEXT, size INTEGER, created_at INTEGER NOT NULL, created_by TEXT,"
     "  session_id TEXT, api_key_id TEXT, redacted_at INTEGER, redacted_by TEXT);"
     "CREATE INDEX memory_versions_store ON memory_versions(store_id, seq);"
     "CREATE TABLE memory_store_attachments ("
     "  session_id TEXT NOT NULL, store_id TEXT NOT NULL, owner_iss TEXT, owner_sub TEXT,"
     "  PRIMARY KEY (session_id, store_id));"
     "CREATE INDEX memory_store_attachments_owner ON"
     "  memory_store_attachments(store_id, owner_iss, owner_sub);",
     NULL},
    /* 8: customer CA certificates of tunnels (inner TLS, tunnel_store.c): the PEM as
     * uploaded, its SHA-256 fingerprint, expiry (NULL: none). At most two live per tunnel,
     * checked in the inserting transaction. */
    {"CREATE TABLE tunnel_certificates ("
     "  id TEXT PRIMARY KEY, tunnel_id TEXT NOT NULL, seq BIGINT NOT NULL UNIQUE,"
     "  pem TEXT NOT NULL, fingerprint TEXT NOT NULL, expires_at BIGINT,"
     "  created_at BIGINT NOT NULL, archived_at BIGINT);"
     "CREATE INDEX tunnel_certificates_tunnel ON tunnel_certificates(tunnel_id, seq);",
     NULL},
    /* 9: files (file_store.c). The bytes live under <data_dir>/files/<id>; the row is
     * committed only after they are synced there. archived_at stays NULL (files are
     * deleted, not archived) so the shared list code applies. */
    {"CREATE TABLE files ("
     "  id TEXT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, created_at BIGINT NOT NULL,"
     "  archived_at BIGINT, scope_id TEXT, size_bytes BIGINT NOT NULL, sha256 TEXT NOT NULL,"
     "  doc TEXT NOT NULL);"
     "CREATE INDEX files_scope ON files(scope_id, seq);",
     NULL},
    /* 10: the hashes of tunnel tokens that a rotation or the archive retired, so the edge
     * can tell a gateway that its token was replaced or its tunnel archived rather than
     * that it is unknown (tunnel_store_retired_token). A hash of a dead random token. */
    {"CREATE TABLE tunnel_retired_tokens ("
     "  token_hash TEXT PRIMARY KEY, tunnel_id TEXT NOT NULL, retired_at BIGINT NOT NULL);",
     NULL},
    /* 11: skills (skill_store.c). A version's bundle is <data_dir>/skills/<skill>-<version>.tar,
     * renamed into place before its row commits. archived_at stays NULL (skills and
     * versions are deleted) so the shared list code applies. */
    {"CREATE TABLE skills ("
     "  id TEXT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, created_at BIGINT NOT NULL,"
     "  archived_at BIGINT, source TEXT NOT NULL, doc TEXT NOT NULL);"
     "CREATE TABLE skill_versions ("
     "  id TEXT NOT NULL, skill_id TEXT NOT NULL, seq BIGINT NOT NULL UNIQUE,"
     "  created_at BIGINT NOT NULL, archived_at BIGINT, size_bytes BIGINT NOT NULL,"
     "  sha256 TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (skill_id, id));",
     NULL},
    /* 12: the agent loop's tool.call audit record, in its tool use's own row until the
     * server's audit log has it synced (then NULL again): the transaction that stores the
     * event stores its record with no page of its own to write (docs/server/audit.md,
     * "The outbox"). */
    {"ALTER TABLE events ADD COLUMN audit TEXT;", NULL},
};

#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

/* ---- statements ---- */

int
db_prepare(struct db *db, const char *sql, struct db_stmt **st)
{
	*st = NULL;
	if (db->be->prepare(db, sql, st) != 0) {
		log_error("database prepare failed", "engine", db->be->name, "error",
		          db->be->errmsg(db));
		return AL_E_IO;
	}
	(*st)->db = db;
	return 0;
}

int
db_prepare_cached(struct db *db, const char *sql, struct db_stmt **st)
{
	size_t free_slot = DB_STMT_CACHE;
	for (size_t i = 0; i < DB_STMT_CACHE; i++) {
		if (db->cache[i].sql == sql) {
			*st = db->cache[i].st;
			return 0;
		}
		if (db->cache[i].sql == NULL && free_slot == DB_STMT_CACHE)
			free_slot = i;
	}
	int r = db_prepare(db, sql, st);
	if (r == 0 && free_slot < DB_STMT_CACHE) {
		db->cache[free_slot].sql = sql;
		db->cache[free_slot].st = *st;
	}
	return r;
}

void
db_cached_done(struct db *db, struct db_stmt *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < DB_STMT_CACHE; i++) {
		if (db->cache[i].st == st) {
			db->be->reset(st, true);
			return;
		}
	}
	db_finalize(st);
}

void
db_finalize(struct db_stmt *st)
{
	if (st != NULL)
		st->db->be->finalize(st);
}

void
db_reset(struct db_stmt *st)
{
	st->db->be->reset(st, false);
}

int
db_exec(struct db *db, const char *sql)
{
	if (db->be->exec(db, sql) != 0) {
		log_error("database exec failed", "engine", db->be->name, "error",
		          db->be->errmsg(db));
		return AL_E_IO;
	}
	return 0;
}

void
db_bind_text(struct db_stmt *st, int idx, const char *s)
{
	if (s)
		st->db->be->bind_text(st, idx, s, strlen(s));
	else
		st->db->be->bind_null(st, idx);
}

void
db_bind_textn(struct db_stmt *st, int idx, const char *s, size_t len)
{
	if (s)
		st->db->be->bind_text(st, idx, s, len);
	else
		st->db->be->bind_null(st, idx);
}

void
db_bind_int64(struct db_stmt *st, int idx, int64_t v)
{
	st->db->be->bind_int64(st, idx, v);
}

void
db_bind_null(struct db_stmt *st, int idx)
{
	st->db->be->bind_null(st, idx);
}

void
db_bind_blob(struct db_stmt *st, int idx, const void *p, size_t len)
{
	st->db->be->bind_blob(st, idx, p, len);
}

int
db_step(struct db_stmt *st)
{
	return st->db->be->step(st);
}

int64_t
db_changes(struct db *db)
{
	return db->be->changes(db);
}

const char *
db_errmsg(struct db *db)
{
	return db->be->errmsg(db);
}

bool
db_col_is_null(struct db_stmt *st, int col)
{
	return st->db->be->col_is_null(st, col);
}

int64_t
db_col_int64(struct db_stmt *st, int col)
{
	return st->db->be->col_int64(st, col);
}

int
db_col_int(struct db_stmt *st, int col)
{
	return (int)st->db->be->col_int64(st, col);
}

const char *
db_col_text(struct db_stmt *st, int col)
{
	return st->db->be->col_text(st, col);
}

size_t
db_col_bytes(struct db_stmt *st, int col)
{
	return st->db->be->col_bytes(st, col);
}

const void *
db_col_blob(struct db_stmt *st, int col)
{
	return st->db->be->col_blob(st, col);
}

json_t *
db_col_json(struct db_stmt *st, int col)
{
	const char *s = db_col_text(st, col);
	if (s == NULL)
		return NULL;
	return json_loads(s, JSON_DECODE_ANY, NULL);
}

/* ---- transactions ---- */

int
db_begin(struct db *db)
{
	if (db->tx_depth++ > 0)
		return 0;
	int r = db_exec(db, db->be->begin_sql);
	if (r != 0)
		db->tx_depth = 0;
	return r;
}

int
db_commit(struct db *db)
{
	if (db->tx_depth == 0)
		return AL_E_INTERNAL;
	if (--db->tx_depth > 0)
		return 0;
	int r = db_exec(db, "COMMIT");
	if (r != 0)
		db_exec(db, "ROLLBACK");
	return r;
}

void
db_rollback(struct db *db)
{
	if (db->tx_depth == 0)
		return;
	/* A failure anywhere inside aborts the whole outer transaction. */
	db->tx_depth = 0;
	db_exec(db, "ROLLBACK");
}

/* ---- shared helpers ---- */

json_t *
db_load_doc(struct db *db, const char *table, const char *id, int *err)
{
	struct db_stmt *st = NULL;
	json_t *doc = NULL;
	char sql[128];
	*err = AL_E_NOTFOUND;
	snprintf(sql, sizeof(sql), "SELECT doc FROM %s WHERE id = ?", table);
	if (db_prepare(db, sql, &st) != 0) {
		*err = AL_E_IO;
		return NULL;
	}
	db_bind_text(st, 1, id);
	int rc = db_step(st);
	if (rc == DB_ROW && (doc = db_col_json(st, 0)) != NULL)
		*err = 0;
	else if (rc != DB_ROW && rc != DB_DONE)
		*err = AL_E_IO;
	db_finalize(st);
	return doc;
}

int64_t
db_next_seq(struct db *db, const char *name)
{
	static const char sql[] =
	    "INSERT INTO seqs(name, value) VALUES (?, 1) "
	    "ON CONFLICT(name) DO UPDATE SET value = seqs.value + 1 RETURNING value";
	struct db_stmt *st = NULL;
	int64_t v = -1;
	if (db_prepare_cached(db, sql, &st) != 0)
		return -1;
	db_bind_text(st, 1, name);
	if (db_step(st) == DB_ROW)
		v = db_col_int64(st, 0);
	/* RETURNING: step once more so the statement finishes before it is reset */
	while (db_step(st) == DB_ROW)
		;
	db_cached_done(db, st);
	return v;
}

int
db_seq_set(struct db *db, const char *name, int64_t value)
{
	static const char sql[] = "INSERT INTO seqs(name, value) VALUES (?, ?) "
	                          "ON CONFLICT(name) DO UPDATE SET value = excluded.value";
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare_cached(db, sql, &st) != 0)
		return r;
	db_bind_text(st, 1, name);
	db_bind_int64(st, 2, value);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_cached_done(db, st);
	return r;
}

int
db_seq_get(struct db *db, const char *name, int64_t *value)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO, rc;
	*value = 0;
	if (db_prepare(db, "SELECT value FROM seqs WHERE name = ?", &st) != 0)
		return r;
	db_bind_text(st, 1, name);
	if ((rc = db_step(st)) == DB_ROW)
		*value = db_col_int64(st, 0);
	if (rc == DB_ROW || rc == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}

/* ---- connections and migrations ---- */

static int
migrate(struct db *db, enum db_dialect dialect)
{
	int version = 0, r;
	if (db->be->migrate_lock && (r = db->be->migrate_lock(db)) != 0)
		return r;
	/* read under the lock: another replica may have migrated while we waited */
	if ((r = db->be->version_get(db, &version)) != 0)
		goto out;
	if (version > (int)N_MIGRATIONS) {
		log_error("database is newer than this binary", NULL);
		r = AL_E_UNSUPPORTED;
		goto out;
	}
	for (size_t i = (size_t)version; i < N_MIGRATIONS; i++) {
		const char *sql = dialect == DB_DIALECT_PG && migrations[i].pg
		                      ? migrations[i].pg
		                      : migrations[i].sqlite;
		if ((r = db_begin(db)) != 0)
			goto out;
		if ((r = db_exec(db, sql)) != 0 || (r = db->be->version_set(db, (int)i + 1)) != 0) {
			db_rollback(db);
			goto out;
		}
		if ((r = db_commit(db)) != 0)
			goto out;
	}
	r = 0;
out:
	if (db->be->migrate_unlock)
		db->be->migrate_unlock(db);
	return r;
}

int
db_attach(const struct db_backend *be, void *conn, enum db_dialect dialect, struct db **out)
{
	struct db *db = xcalloc(1, sizeof(*db));
	int r;
	db->be = be;
	db->conn = conn;
	if ((r = migrate(db, dialect)) != 0) {
		db_close(db);
		return r;
	}
	*out = db;
	return 0;
}

const char *
db_engine(const struct db *db)
{
	return db->be->name;
}

int
db_ping(struct db *db)
{
	return db->be->ping(db);
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; i < DB_STMT_CACHE; i++)
		db_finalize(db->cache[i].st);
	db->be->close(db);
	free(db);
}
