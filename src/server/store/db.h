/* The server's storage: one SQLite database in WAL mode with synchronous=FULL, so a
 * committed transaction survives kill -9 and power loss. Every state change the API
 * acknowledges is committed first. The server is single-threaded, so one connection
 * serves everything; long work never happens inside a transaction. */
#ifndef AL_SERVER_DB_H
#define AL_SERVER_DB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <sqlite3.h>

#define DB_STMT_CACHE 16

struct db {
	sqlite3 *h;
	int tx_depth;
	/* statements of the hot paths, prepared once (db_prepare_cached) */
	struct {
		const char *sql; /* the literal's address is the key */
		sqlite3_stmt *st;
	} cache[DB_STMT_CACHE];
	char *path; /* dir/airlock.db, for db_ping */
	dev_t dev;  /* the file opened: a path that names another one (or none) */
	ino_t ino;  /* later means the storage was swapped or removed under us */
};

/* Opens (creating) dir/airlock.db and applies pending migrations. */
int db_open(const char *dir, struct db **out);
/* The same for a database that must exist already: AL_E_NOTFOUND when dir/airlock.db
 * does not (the admin commands never create one by accident). */
int db_open_existing(const char *dir, struct db **out);
void db_close(struct db *db);
/* Readiness probe: the file the server opened is still the one at its path, and a
 * read works. 0, or AL_E_IO (storage removed, replaced or unreadable). */
int db_ping(struct db *db);

/* Nested calls join the outer transaction; only the outermost commits. BEGIN IMMEDIATE
 * so concurrent processes (admin CLI) serialize instead of failing on upgrade. */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* Prepares sql (cached by SQLite's own statement cache is not available; callers
 * finalize). Logs and returns AL_E_IO on failure. */
int db_prepare(struct db *db, const char *sql, sqlite3_stmt **st);
/* For statements run on every request or event (sql a string literal): prepared once per
 * connection and kept, so parsing and planning are not paid each time. Give it back with
 * db_cached_done (reset, bindings cleared), never sqlite3_finalize. Falls back to a fresh
 * statement, which db_cached_done then finalizes, when the cache is full. */
int db_prepare_cached(struct db *db, const char *sql, sqlite3_stmt **st);
void db_cached_done(struct db *db, sqlite3_stmt *st);
int db_exec(struct db *db, const char *sql);

/* Binding helpers: text NULL binds SQL NULL. */
void db_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* Column helpers: json parses a TEXT column (NULL → NULL). */
json_t *db_col_json(sqlite3_stmt *st, int col);
const char *db_col_text(sqlite3_stmt *st, int col);

/* The `doc` column of table's row id (new reference). *err: 0, AL_E_NOTFOUND or AL_E_IO.
 * table is one of ours, never input. */
json_t *db_load_doc(struct db *db, const char *table, const char *id, int *err);

/* Monotonic per-database sequence for ordering (events, lists). */
int64_t db_next_seq(struct db *db, const char *name);

#endif
