/* The SQLite engine behind db.h: dir/airlock.db in WAL mode with synchronous=FULL, its
 * file modes, and the readiness check that the file is still the one opened. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db_backend.h"
#include "err.h"
#include "log.h"
#include "xalloc.h"

struct lite {
	sqlite3 *h;
	char *path; /* dir/airlock.db, for the ping */
	dev_t dev;  /* the file opened: a path that names another one (or none) */
	ino_t ino;  /* later means the storage was swapped or removed under us */
};

struct lite_stmt {
	struct db_stmt base;
	sqlite3_stmt *h;
};

static struct lite *
conn(struct db *db)
{
	return db->conn;
}

static sqlite3_stmt *
sth(struct db_stmt *st)
{
	return ((struct lite_stmt *)st)->h;
}

static int
lite_exec(struct db *db, const char *sql)
{
	return sqlite3_exec(conn(db)->h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : AL_E_IO;
}

static const char *
lite_errmsg(struct db *db)
{
	return sqlite3_errmsg(conn(db)->h);
}

static int64_t
lite_changes(struct db *db)
{
	return sqlite3_changes(conn(db)->h);
}

static int
lite_prepare(struct db *db, const char *sql, bool cached, struct db_stmt **out)
{
	sqlite3_stmt *h = NULL;
	if (sqlite3_prepare_v2(conn(db)->h, sql, -1, &h, NULL) != SQLITE_OK)
		return AL_E_IO;
	struct lite_stmt *st = xcalloc(1, sizeof(*st));
	st->h = h;
	*out = &st->base;
	return 0;
}

static void
lite_finalize(struct db_stmt *st)
{
	sqlite3_finalize(sth(st));
	free(st);
}

static void
lite_reset(struct db_stmt *st, bool clear)
{
	sqlite3_reset(sth(st));
	if (clear)
		sqlite3_clear_bindings(sth(st));
}

static void
lite_bind_text(struct db_stmt *st, int idx, const char *s, size_t len)
{
	if (s == NULL)
		sqlite3_bind_null(sth(st), idx);
	else
		sqlite3_bind_text64(sth(st), idx, s, len, SQLITE_TRANSIENT, SQLITE_UTF8);
}

static void
lite_bind_int64(struct db_stmt *st, int idx, int64_t v)
{
	sqlite3_bind_int64(sth(st), idx, v);
}

static void
lite_bind_null(struct db_stmt *st, int idx)
{
	sqlite3_bind_null(sth(st), idx);
}

static void
lite_bind_blob(struct db_stmt *st, int idx, const void *p, size_t len)
{
	sqlite3_bind_blob64(sth(st), idx, p, len, SQLITE_TRANSIENT);
}

static int
lite_step(struct db_stmt *st)
{
	switch (sqlite3_step(sth(st))) {
	case SQLITE_ROW:
		return DB_ROW;
	case SQLITE_DONE:
		return DB_DONE;
	case SQLITE_CONSTRAINT:
		return DB_CONSTRAINT;
	default:
		return DB_ERROR;
	}
}

static bool
lite_col_is_null(struct db_stmt *st, int col)
{
	return sqlite3_column_type(sth(st), col) == SQLITE_NULL;
}

static int64_t
lite_col_int64(struct db_stmt *st, int col)
{
	return sqlite3_column_int64(sth(st), col);
}

static const char *
lite_col_text(struct db_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(sth(st), col);
}

static size_t
lite_col_bytes(struct db_stmt *st, int col)
{
	return (size_t)sqlite3_column_bytes(sth(st), col);
}

static const void *
lite_col_blob(struct db_stmt *st, int col)
{
	return sqlite3_column_blob(sth(st), col);
}

static int
lite_version_get(struct db *db, int *version)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(conn(db)->h, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return AL_E_IO;
	*version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
}

static int
lite_version_set(struct db *db, int version)
{
	char pragma[64];
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version);
	return db_exec(db, pragma);
}

/* A stat of the path must still find the file opened, and a read must work. */
static int
lite_ping(struct db *db)
{
	struct lite *c = conn(db);
	sqlite3_stmt *st = NULL;
	struct stat pst;
	if (c->path == NULL || stat(c->path, &pst) != 0 || pst.st_dev != c->dev ||
	    pst.st_ino != c->ino)
		return AL_E_IO;
	int r = sqlite3_prepare_v2(c->h, "SELECT count(*) FROM sqlite_master", -1, &st, NULL) ==
	                SQLITE_OK
	            ? 0
	            : AL_E_IO;
	if (r == 0 && sqlite3_step(st) != SQLITE_ROW)
		r = AL_E_IO;
	sqlite3_finalize(st);
	return r;
}

static void
lite_free(struct lite *c)
{
	if (c == NULL)
		return;
	sqlite3_close_v2(c->h);
	free(c->path);
	free(c);
}

static void
lite_close(struct db *db)
{
	lite_free(conn(db));
}

const struct db_backend db_sqlite_backend = {
    .name = "sqlite",
    .dialect = DB_DIALECT_SQLITE,
    /* IMMEDIATE so concurrent processes (admin CLI) serialize instead of failing on
     * lock upgrade */
    .begin_sql = "BEGIN IMMEDIATE",
    .close = lite_close,
    .ping = lite_ping,
    .exec = lite_exec,
    .errmsg = lite_errmsg,
    .changes = lite_changes,
    .prepare = lite_prepare,
    .finalize = lite_finalize,
    .reset = lite_reset,
    .bind_text = lite_bind_text,
    .bind_int64 = lite_bind_int64,
    .bind_null = lite_bind_null,
    .bind_blob = lite_bind_blob,
    .step = lite_step,
    .col_is_null = lite_col_is_null,
    .col_int64 = lite_col_int64,
    .col_text = lite_col_text,
    .col_bytes = lite_col_bytes,
    .col_blob = lite_col_blob,
    .version_get = lite_version_get,
    .version_set = lite_version_set,
};

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
	struct lite *c = xcalloc(1, sizeof(*c));
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
	if (sqlite3_open_v2(path, &c->h, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0),
	                    NULL) != SQLITE_OK) {
		log_error("cannot open database", "path", path, "error", sqlite3_errmsg(c->h));
		goto out;
	}
	sqlite3_busy_timeout(c->h, 5000);
	struct stat pst;
	if (stat(path, &pst) == 0) {
		c->dev = pst.st_dev;
		c->ino = pst.st_ino;
	}
	c->path = xstrdup(path);
	if (sqlite3_exec(c->h,
	                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                 "PRAGMA foreign_keys=ON;",
	                 NULL, NULL, NULL) != SQLITE_OK) {
		log_error("cannot set up database", "path", path, "error", sqlite3_errmsg(c->h));
		goto out;
	}
	/* db_attach owns c from here, failing or not */
	r = db_attach(&db_sqlite_backend, c, out);
	c = NULL;
out:
	umask(old_mask);
	free(path);
	lite_free(c);
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
