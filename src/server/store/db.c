/* SQLite storage and schema migrations; see db.h and docs/server/storage.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "err.h"
#include "log.h"
#include "xalloc.h"

/* Append-only: never edit a migration that has shipped, add a new one. Resources keep
 * their full JSON rendering in `doc` next to the columns that queries filter on, so
 * the wire shape round-trips exactly and new fields need no migration. */
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE seqs (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
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
    /* 2: MCP tunnels (tunnel_api.c). token is kept for reveal_token; only token_hash
     * authenticates, so rotation retires the old value for new connections at once. */
    "CREATE TABLE tunnels ("
    "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, display_name TEXT,"
    "  domain TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, archived_at INTEGER,"
    "  token_id TEXT NOT NULL, token TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,"
    "  rotated_at INTEGER);",
    /* 3: vaults and credentials (vaults.c). secret is the AES-256-GCM blob, never the
     * plaintext; url_key is mcp_server_url without a trailing slash, unique among a
     * vault's live credentials. */
    "CREATE TABLE vaults ("
    "  id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL, archived_at INTEGER, doc TEXT NOT NULL);"
    "CREATE TABLE vault_credentials ("
    "  id TEXT PRIMARY KEY, vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL UNIQUE, auth_type TEXT NOT NULL, url_key TEXT,"
    "  created_at INTEGER NOT NULL, archived_at INTEGER, secret BLOB, doc TEXT NOT NULL);"
    "CREATE INDEX vault_credentials_vault ON vault_credentials(vault_id, seq);"
    "CREATE UNIQUE INDEX vault_credentials_live_url ON vault_credentials(vault_id, url_key)"
    "  WHERE archived_at IS NULL;",
    /* 4: the user who created a session (OIDC issuer + subject, and the groups the token
     * carried then); NULL for sessions made with a server API key. Users see their own. */
    "ALTER TABLE sessions ADD COLUMN owner_iss TEXT;"
    "ALTER TABLE sessions ADD COLUMN owner_sub TEXT;"
    "ALTER TABLE sessions ADD COLUMN owner_groups TEXT;"
    "CREATE INDEX sessions_owner ON sessions(owner_iss, owner_sub, seq);",
    /* 5: the owner's email (tool policy rules may name users by it); API-key sessions
     * record owner_sub "apikey:<key id>" with no issuer. */
    "ALTER TABLE sessions ADD COLUMN owner_email TEXT;",
    /* 6: audit records made outside the server (airlock keys), in the transaction of what
     * they record, until the server appends them to its audit log (audit_store.c). */
    "CREATE TABLE audit_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL);",
    /* 7: memory stores (memory_store.c). A memory's content lives in its row and in the
     * version that wrote it; a version keeps its row after its memory is deleted, and
     * redaction empties it (path, content, hash, size NULL). Attachments record which
     * sessions mount a store, with the session owner, so a user may read the stores of
     * their own sessions. */
    "CREATE TABLE memory_stores ("
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
};

int
db_prepare(struct db *db, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK) {
		log_error("sqlite prepare failed", "error", sqlite3_errmsg(db->h));
		return AL_E_IO;
	}
	return 0;
}

int
db_prepare_cached(struct db *db, const char *sql, sqlite3_stmt **st)
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
db_cached_done(struct db *db, sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < DB_STMT_CACHE; i++) {
		if (db->cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	}
	sqlite3_finalize(st);
}

int
db_exec(struct db *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("sqlite exec failed", "error", msg ? msg : "?");
		sqlite3_free(msg);
		return AL_E_IO;
	}
	return 0;
}

int
db_begin(struct db *db)
{
	if (db->tx_depth++ > 0)
		return 0;
	int r = db_exec(db, "BEGIN IMMEDIATE");
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

void
db_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
	if (s)
		sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, idx);
}

const char *
db_col_text(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);
}

json_t *
db_col_json(sqlite3_stmt *st, int col)
{
	const char *s = db_col_text(st, col);
	if (s == NULL)
		return NULL;
	return json_loads(s, JSON_DECODE_ANY, NULL);
}

json_t *
db_load_doc(struct db *db, const char *table, const char *id, int *err)
{
	sqlite3_stmt *st = NULL;
	json_t *doc = NULL;
	char sql[128];
	*err = AL_E_NOTFOUND;
	snprintf(sql, sizeof(sql), "SELECT doc FROM %s WHERE id = ?", table);
	if (db_prepare(db, sql, &st) != 0) {
		*err = AL_E_IO;
		return NULL;
	}
	db_bind_text(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW && (doc = db_col_json(st, 0)) != NULL)
		*err = 0;
	sqlite3_finalize(st);
	return doc;
}

int64_t
db_next_seq(struct db *db, const char *name)
{
	static const char sql[] =
	    "INSERT INTO seqs(name, value) VALUES (?, 1) "
	    "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value";
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (db_prepare_cached(db, sql, &st) != 0)
		return -1;
	db_bind_text(st, 1, name);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	/* RETURNING: step once more so the statement finishes before it is reset */
	while (sqlite3_step(st) == SQLITE_ROW)
		;
	db_cached_done(db, st);
	return v;
}

static int
migrate(struct db *db)
{
	sqlite3_stmt *st = NULL;
	int version = 0, r;
	if ((r = db_prepare(db, "PRAGMA user_version", &st)) != 0)
		return r;
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > (int)(sizeof(migrations) / sizeof(migrations[0]))) {
		log_error("database is newer than this binary", NULL);
		return AL_E_UNSUPPORTED;
	}
	for (size_t i = (size_t)version; i < sizeof(migrations) / sizeof(migrations[0]); i++) {
		char pragma[64];
		if ((r = db_begin(db)) != 0)
			return r;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %zu", i + 1);
		if ((r = db_exec(db, migrations[i])) != 0 || (r = db_exec(db, pragma)) != 0) {
			db_rollback(db);
			return r;
		}
		if ((r = db_commit(db)) != 0)
			return r;
	}
	return 0;
}

/* The data directory holds every transcript and the tunnel tokens: other users have no
 * business in it. A directory made elsewhere (an install step, a volume) is used as it
 * is, with a warning naming the fix. */
static void
check_dir_mode(const char *dir)
{
	struct stat st;
	char mode[8];
	if (stat(dir, &st) != 0 || (st.st_mode & 0007) == 0)
		return;
	snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
	log_warn("data directory is open to other users; chmod 700 it", "dir", dir, "mode", mode);
}

/* The database and its -wal and -shm files are the owner's alone (SQLite gives the
 * -wal and -shm files the database file's mode when it creates them, at any time
 * later). A file left 0644 by an older version is tightened, and that is logged. */
static void
tighten_files(const char *path)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		char *p = xasprintf("%s%s", path, suffix[i]);
		struct stat st;
		if (stat(p, &st) == 0 && (st.st_mode & 0077) != 0) {
			char mode[8];
			snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
			if (chmod(p, 0600) == 0)
				log_info("database file was open to others; now 0600", "path", p,
				         "was", mode);
			else
				log_warn("database file is open to others and cannot be chmod'ed",
				         "path", p, "mode", mode);
		}
		free(p);
	}
}

static int
open_dir(const char *dir, bool create, struct db **out)
{
	struct db *db = xcalloc(1, sizeof(*db));
	char *path = NULL;
	int r = AL_E_IO;
	/* single-threaded here (start-up, or the keys command): the files SQLite creates
	 * during the open, the WAL switch and the migrations are 0600 whatever the umask */
	mode_t old_mask = umask(077);

	path = xasprintf("%s/airlock.db", dir);
	if (!create) {
		struct stat st;
		if (stat(path, &st) != 0) {
			r = AL_E_NOTFOUND;
			goto out;
		}
	} else if (mkdir(dir, 0700) < 0 && access(dir, W_OK) != 0) {
		log_error("cannot create data directory", "dir", dir);
		goto out;
	}
	check_dir_mode(dir);
	tighten_files(path);
	if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0),
	                    NULL) != SQLITE_OK) {
		log_error("cannot open database", "path", path, "error", sqlite3_errmsg(db->h));
		goto out;
	}
	sqlite3_busy_timeout(db->h, 5000);
	struct stat pst;
	if (stat(path, &pst) == 0) {
		db->dev = pst.st_dev;
		db->ino = pst.st_ino;
	}
	db->path = xstrdup(path);
	if ((r = db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                     "PRAGMA foreign_keys=ON;")) != 0)
		goto out;
	if ((r = migrate(db)) != 0)
		goto out;
	*out = db;
	db = NULL;
	r = 0;
out:
	umask(old_mask);
	free(path);
	db_close(db);
	return r;
}

int
db_open(const char *dir, struct db **out)
{
	return open_dir(dir, true, out);
}

int
db_open_existing(const char *dir, struct db **out)
{
	return open_dir(dir, false, out);
}

int
db_ping(struct db *db)
{
	sqlite3_stmt *st = NULL;
	struct stat pst;
	if (db->path == NULL || stat(db->path, &pst) != 0 || pst.st_dev != db->dev ||
	    pst.st_ino != db->ino)
		return AL_E_IO;
	int r = db_prepare(db, "SELECT count(*) FROM sqlite_master", &st);
	if (r == 0 && sqlite3_step(st) != SQLITE_ROW)
		r = AL_E_IO;
	sqlite3_finalize(st);
	return r;
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; i < DB_STMT_CACHE; i++)
		sqlite3_finalize(db->cache[i].st);
	sqlite3_close_v2(db->h);
	free(db->path);
	free(db);
}
