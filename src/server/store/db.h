/* The server's storage: a handle on one database and a small statement API that every
 * store uses, so no store names an engine. Today's engine is SQLite in WAL mode with
 * synchronous=FULL (a committed transaction survives kill -9 and power loss); the
 * engine sits behind a table of functions (struct db_backend in db_backend.h). Every
 * state change the API acknowledges is committed first. The server is single-threaded,
 * so one connection serves everything; long work never happens inside a transaction.
 *
 * How a store runs a statement (docs/server/storage.md):
 *
 *     struct db_stmt *st = NULL;
 *     if (db_prepare(db, "SELECT doc FROM agents WHERE id = ? AND version = ?", &st) != 0)
 *             goto out;                  // AL_E_IO, logged
 *     db_bind_text(st, 1, id);          // placeholders are `?`, numbered from 1
 *     db_bind_int64(st, 2, version);
 *     while ((rc = db_step(st)) == DB_ROW)
 *             use(db_col_text(st, 0));  // valid until the next step/reset/finalize
 *     if (rc != DB_DONE) ...            // DB_CONSTRAINT (unique/check) or DB_ERROR
 *    out:
 *     db_finalize(st);                  // NULL is fine
 *
 * SQL must be a dialect both SQLite and PostgreSQL accept: `?` placeholders only (no
 * `?NNN`, no `:name`), `INSERT ... ON CONFLICT ... DO NOTHING/UPDATE` (never `INSERT OR
 * IGNORE/REPLACE`), `RETURNING` instead of last_insert_rowid, `CAST(? AS TEXT)` where a
 * parameter's type cannot be inferred (`? IS NULL`), no engine-only functions. A
 * statement run on every request goes through db_prepare_cached (prepared once per
 * connection) and back through db_cached_done. */
#ifndef AL_SERVER_DB_H
#define AL_SERVER_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define DB_STMT_CACHE 16

struct db;      /* opaque: one connection and its cache */
struct db_stmt; /* opaque: one prepared statement */

/* db_step's answers. Not AL_E_* codes: a store decides what a constraint means. */
enum db_rc {
	DB_ROW = 1,        /* a row is ready for db_col_* */
	DB_DONE = 2,       /* finished; db_changes() counts the rows it changed */
	DB_CONSTRAINT = 3, /* a UNIQUE, CHECK, NOT NULL or foreign key constraint failed */
	DB_ERROR = 4,      /* anything else (logged with the engine's message) */
};

/* Which SQL a store must write where the engines differ (JSON functions): most SQL is
 * one text for both; a store that needs two keeps them side by side and picks by this. */
enum db_dialect {
	DB_DIALECT_SQLITE = 0,
	DB_DIALECT_PG = 1,
};

/* Opens (creating) dir/airlock.db and applies pending migrations. */
int db_open(const char *dir, struct db **out);
/* The same for a database that must exist already: AL_E_NOTFOUND when dir/airlock.db
 * does not (the admin commands never create one by accident). */
int db_open_existing(const char *dir, struct db **out);
/* Connects to PostgreSQL (a libpq URI or key=value string; PG* variables fill what it
 * leaves out, sslmode=verify-full and the rest pass through) and applies pending
 * migrations under an advisory lock. The URL is never logged (it may hold a password).
 * AL_E_AGAIN: could not connect (worth retrying); AL_E_AUTH: the password was refused. */
int db_open_url(const char *url, struct db **out);
void db_close(struct db *db);
/* Readiness probe: the database the server opened is still there and a read works. 0,
 * or AL_E_IO (storage removed, replaced, unreachable or unreadable). */
int db_ping(struct db *db);
/* True while the database server is out of reach (the connection was lost and is not
 * back yet): a failure now is the outage, answered 503 rather than 500. Never for
 * SQLite. */
bool db_unavailable(struct db *db);
/* The engine's name ("sqlite"), for logs and metrics. */
const char *db_engine(const struct db *db);
enum db_dialect db_dialect(const struct db *db);

/* Nested calls join the outer transaction; only the outermost commits. SQLite takes the
 * write lock at BEGIN (IMMEDIATE) so concurrent processes (admin CLI) serialize instead
 * of failing on lock upgrade. */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* Prepares sql; the caller finalizes. Logs and returns AL_E_IO on failure. */
int db_prepare(struct db *db, const char *sql, struct db_stmt **st);
/* For statements run on every request or event (sql a string literal): prepared once per
 * connection and kept, so parsing and planning are not paid each time. Give it back with
 * db_cached_done (reset, bindings cleared), never db_finalize. Falls back to a fresh
 * statement, which db_cached_done then finalizes, when the cache is full. */
int db_prepare_cached(struct db *db, const char *sql, struct db_stmt **st);
void db_cached_done(struct db *db, struct db_stmt *st);
void db_finalize(struct db_stmt *st);
/* Back to before the first step, bindings kept (run it again with new ones). */
void db_reset(struct db_stmt *st);
/* Runs one or more statements without parameters or rows (DDL, BEGIN). */
int db_exec(struct db *db, const char *sql);

/* Binding: idx counts from 1. Text NULL binds SQL NULL; values are copied. */
void db_bind_text(struct db_stmt *st, int idx, const char *s);
void db_bind_textn(struct db_stmt *st, int idx, const char *s, size_t len);
void db_bind_int64(struct db_stmt *st, int idx, int64_t v);
void db_bind_null(struct db_stmt *st, int idx);
void db_bind_blob(struct db_stmt *st, int idx, const void *p, size_t len);

/* DB_ROW, DB_DONE, DB_CONSTRAINT or DB_ERROR. */
int db_step(struct db_stmt *st);
/* Rows changed by the last INSERT/UPDATE/DELETE that finished on this connection. */
int64_t db_changes(struct db *db);
/* The engine's last error message, for logs (never holds a bound value). */
const char *db_errmsg(struct db *db);

/* Columns of the current row, counted from 0. NULL reads as NULL text, 0, no bytes. */
bool db_col_is_null(struct db_stmt *st, int col);
int64_t db_col_int64(struct db_stmt *st, int col);
int db_col_int(struct db_stmt *st, int col);
const char *db_col_text(struct db_stmt *st, int col);
/* Length in bytes of a text or blob column. */
size_t db_col_bytes(struct db_stmt *st, int col);
const void *db_col_blob(struct db_stmt *st, int col);
/* Parses a TEXT column as JSON (NULL → NULL; new reference). */
json_t *db_col_json(struct db_stmt *st, int col);

/* The `doc` column of table's row id (new reference). *err: 0, AL_E_NOTFOUND or AL_E_IO.
 * table is one of ours, never input. */
json_t *db_load_doc(struct db *db, const char *table, const char *id, int *err);

/* Sets string members k1 (and k2 when not NULL) of the `doc` of table's row id, keeping
 * the document's own key order (PostgreSQL's jsonb_set would not: json_set's job on
 * SQLite). 0, AL_E_NOTFOUND or AL_E_IO. */
/* The resource tables' shared shape (id, seq, created_at, archived_at, doc): a new row in
 * its own transaction, seq from the sequence named after the table; and a new doc (with
 * archived_at when non-zero) for row id, in the caller's transaction if any. table is one
 * of ours, never input. 0, AL_E_NOTFOUND (no such row), AL_E_CONFLICT (a constraint) or
 * AL_E_IO. */
int db_insert_doc(struct db *db, const char *table, const char *id, const json_t *doc,
                  int64_t created_at);
int db_set_doc(struct db *db, const char *table, const char *id, const json_t *doc,
               int64_t archived_at);
int db_doc_set_str(struct db *db, const char *table, const char *id, const char *k1, const char *v1,
                   const char *k2, const char *v2);

/* Notifications between servers on one database (PostgreSQL LISTEN/NOTIFY; SQLite has
 * none: AL_E_UNSUPPORTED). db_listen subscribes this connection to channel (a name of
 * ours: [a-z_]), again by itself after every reconnect. db_notify(channel, payload)
 * queues a notification that is sent when the current transaction commits (never if it
 * rolls back). db_notifications reads what has arrived, without blocking, and calls
 * fn(arg, payload) per notification: 0, or AL_E_IO when the connection is down.
 * db_generation changes with every reconnect (notifications may have been missed). */
int db_listen(struct db *db, const char *channel);
int db_notify(struct db *db, const char *channel, const char *payload);
int db_notifications(struct db *db, void (*fn)(void *arg, const char *payload), void *arg);
unsigned db_generation(struct db *db);
/* For an event loop: db_listen_socket is the connection's socket, readable when
 * notifications (or the connection's end) arrived, -1 while down or without
 * notifications. It is libpq's: watch a dup of it, never close it, and compare
 * db_generation to know when it changed. A statement's answer may carry notifications
 * that the library reads with it, and then the socket shows nothing: db_on_notes(fn)
 * is called whenever that happens (and after a reconnect), so the caller drains soon
 * instead of at its safety timer. fn NULL: none. */
int db_listen_socket(struct db *db);
void db_on_notes(struct db *db, void (*fn)(void *arg), void *arg);

/* Monotonic per-database sequence for ordering (events, lists). */
int64_t db_next_seq(struct db *db, const char *name);
/* A named value beside the sequences (a flag a store keeps with its rows): set, and read
 * (0 when never set). 0 or AL_E_IO. */
int db_seq_set(struct db *db, const char *name, int64_t value);
int db_seq_get(struct db *db, const char *name, int64_t *value);

#endif
