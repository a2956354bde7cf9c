/* What a database engine provides to db.c: one table of functions (style.md §1, after
 * OpenSMTPD's queue_backend.c). db.c holds what both engines share: the statement cache,
 * transaction nesting, the migration list and runner, db_load_doc and db_next_seq. Only
 * db.c and the backends (db_sqlite.c) include this. */
#ifndef AL_SERVER_DB_BACKEND_H
#define AL_SERVER_DB_BACKEND_H

#include "db.h"

/* A backend's statement starts with this (its own fields follow). */
struct db_stmt {
	struct db *db;
};

struct db_backend {
	const char *name;
	enum db_dialect dialect;
	/* the statement that opens a write transaction */
	const char *begin_sql;
	void (*close)(struct db *db);
	int (*ping)(struct db *db);
	bool (*unavailable)(struct db *db); /* NULL: never */
	/* NULL where the engine has no notifications (db.h db_listen) */
	int (*listen)(struct db *db, const char *channel);
	int (*notifications)(struct db *db, void (*fn)(void *arg, const char *payload), void *arg);
	unsigned (*generation)(struct db *db);
	int (*socket)(struct db *db); /* NULL: no socket to watch (db_listen_socket) */
	int (*exec)(struct db *db, const char *sql);
	const char *(*errmsg)(struct db *db);
	int64_t (*changes)(struct db *db);
	/* cached: kept for the connection's life (db_prepare_cached), worth preparing on
	 * the server side */
	int (*prepare)(struct db *db, const char *sql, bool cached, struct db_stmt **st);
	void (*finalize)(struct db_stmt *st);
	/* clear: drop the bindings too (a cached statement going back to the cache) */
	void (*reset)(struct db_stmt *st, bool clear);
	/* s NULL: a NULL of type text (`? IS NULL OR col = ?` needs the type) */
	void (*bind_text)(struct db_stmt *st, int idx, const char *s, size_t len);
	void (*bind_int64)(struct db_stmt *st, int idx, int64_t v);
	void (*bind_null)(struct db_stmt *st, int idx);
	void (*bind_blob)(struct db_stmt *st, int idx, const void *p, size_t len);
	int (*step)(struct db_stmt *st);
	bool (*col_is_null)(struct db_stmt *st, int col);
	int64_t (*col_int64)(struct db_stmt *st, int col);
	const char *(*col_text)(struct db_stmt *st, int col);
	size_t (*col_bytes)(struct db_stmt *st, int col);
	const void *(*col_blob)(struct db_stmt *st, int col);
	/* Schema version: read, and written inside the migration's transaction. lock and
	 * unlock bracket the whole run so replicas starting together apply each migration
	 * once (NULL where the engine's write lock already serializes). */
	int (*version_get)(struct db *db, int *version);
	int (*version_set)(struct db *db, int version);
	int (*migrate_lock)(struct db *db);
	void (*migrate_unlock)(struct db *db);
};

struct db {
	const struct db_backend *be;
	void *conn; /* the backend's connection state */
	int tx_depth;
	/* db_on_notes: the backend calls it when notifications were read with an answer */
	void (*notes_fn)(void *arg);
	void *notes_arg;
	/* statements of the hot paths, prepared once (db_prepare_cached) */
	struct {
		const char *sql; /* the literal's address is the key */
		struct db_stmt *st;
	} cache[DB_STMT_CACHE];
};

/* After a backend connected: wraps conn in a struct db and migrates (the backend's
 * dialect picks the migration texts). On failure the backend's close runs on conn. */
int db_attach(const struct db_backend *be, void *conn, struct db **out);

extern const struct db_backend db_sqlite_backend;
extern const struct db_backend db_pg_backend;

#endif
