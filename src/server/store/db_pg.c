/* The PostgreSQL engine behind db.h (libpq). One connection per server; statements from
 * db_prepare_cached become server-side prepared statements of that connection (named,
 * prepared on first use with the types of the first bindings, prepared again after a
 * reconnect), the others run with PQexecParams. Every call is synchronous and bounded by
 * connect_timeout and statement_timeout: see "PostgreSQL" in docs/server/storage.md for
 * why, and for the known gap against libpq's async API on the event loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "buf.h"
#include "db_backend.h"
#include "err.h"
#include "log.h"
#include "pq_dl.h"
#include "xalloc.h"

/* type oids from pg_type.h (server headers, not in libpq-dev's client set) */
#define PG_OID_BOOL 16
#define PG_OID_BYTEA 17
#define PG_OID_INT8 20
#define PG_OID_TEXT 25

/* default bounds when the URL and PG* variables name none (docs/server/storage.md) */
#define PG_CONNECT_TIMEOUT "5"
#define PG_STATEMENT_TIMEOUT_MS "10000"

struct pg {
	PGconn *h;
	unsigned gen;       /* bumped by each (re)connect: prepared names are per connection */
	unsigned next_name; /* s1, s2, ... */
	int64_t changes;
	char err[256];
	char listen[64]; /* the LISTEN channel, renewed after a reconnect ("" none) */
	/* notifications libpq read along with an answer, kept for pg_notifications: popped
	 * at once so that the hub learns of them (db_on_notes) instead of finding them only
	 * at its next timer, the socket having nothing left to show */
	PGnotify *held, *held_tail;
};

struct pg_stmt {
	struct db_stmt base;
	char *sql; /* ? rewritten as $n */
	int nparams;
	bool named; /* a server-side prepared statement (db_prepare_cached) */
	char name[16];
	unsigned prepared_gen; /* 0: not prepared on this connection */
	Oid *types;            /* the types it was prepared with (0: PostgreSQL infers) */
	char **vals;
	int *lens;
	int *fmts;
	PGresult *res;
	int row, nrows;
	unsigned char **blobs; /* decoded bytea of the current row, per column */
	size_t *blob_lens;
};

static struct pg *
conn(struct db *db)
{
	return db->conn;
}

static struct pg_stmt *
pst(struct db_stmt *st)
{
	return (struct pg_stmt *)st;
}

static void
set_err(struct pg *c, const char *msg)
{
	snprintf(c->err, sizeof(c->err), "%s", msg ? msg : "unknown error");
	/* libpq's messages end in a newline */
	size_t n = strlen(c->err);
	while (n > 0 && (c->err[n - 1] == '\n' || c->err[n - 1] == ' '))
		c->err[--n] = '\0';
}

/* Our own notifications come back to us too (we LISTEN on the channel we notify). The
 * server acted on each of its own commits already, as on SQLite, which has none: the
 * echo would only repeat that work (a second catch-up read, a second loop step, a claim
 * that finds the queue dry), once per append. */
static bool
own_note(struct pg *c, const PGnotify *n)
{
	return n->be_pid == PQbackendPID(c->h);
}

/* After each answer: moves what notifications came with it to c->held and tells the
 * listener (db_on_notes). Nothing but memory: no system call on the hot path. */
static void
hold_notes(struct db *db)
{
	struct pg *c = conn(db);
	PGnotify *n;
	bool any = false;
	while ((n = PQnotifies(c->h)) != NULL) {
		if (own_note(c, n)) {
			PQfreemem(n);
			continue;
		}
		n->next = NULL;
		if (c->held_tail)
			c->held_tail->next = n;
		else
			c->held = n;
		c->held_tail = n;
		any = true;
	}
	if (any && db->notes_fn)
		db->notes_fn(db->notes_arg);
}

/* After a failure: a connection that went away is reset once here, so the next request
 * finds it back (recovery without a restart); this one still fails. */
static void
check_conn(struct db *db)
{
	struct pg *c = conn(db);
	if (PQstatus(c->h) != CONNECTION_BAD)
		return;
	log_warn("database connection lost; reconnecting", "error", c->err);
	PQreset(c->h);
	if (PQstatus(c->h) == CONNECTION_OK) {
		c->gen++;
		log_info("database connection restored", NULL);
		if (c->listen[0]) {
			char sql[96];
			snprintf(sql, sizeof(sql), "LISTEN %s", c->listen);
			PQclear(PQexec(c->h, sql));
		}
		/* the socket changed and notifications may have been missed: the listener
		 * watches the new one and catches up now */
		if (db->notes_fn)
			db->notes_fn(db->notes_arg);
	}
}

static int
pg_exec(struct db *db, const char *sql)
{
	struct pg *c = conn(db);
	PGresult *res = PQexec(c->h, sql);
	hold_notes(db);
	int st = PQresultStatus(res);
	int r = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : AL_E_IO;
	if (r != 0) {
		set_err(c, PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
		                                        : PQerrorMessage(c->h));
		check_conn(db);
	}
	PQclear(res);
	return r;
}

static const char *
pg_errmsg(struct db *db)
{
	return conn(db)->err;
}

static int64_t
pg_changes(struct db *db)
{
	return conn(db)->changes;
}

/* SQLite's `?` and `?N` as PostgreSQL's `$N`, outside quoted strings and names. */
static char *
rewrite(const char *sql, int *nparams)
{
	size_t n = strlen(sql);
	char *out = xmalloc(n * 5 + 16), *o = out; /* "?" is at most "$1000" */
	int next = 0, max = 0;
	char quote = 0;
	for (const char *p = sql; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
			*o++ = *p;
			continue;
		}
		if (*p == '\'' || *p == '"') {
			quote = *p;
			*o++ = *p;
			continue;
		}
		if (*p != '?') {
			*o++ = *p;
			continue;
		}
		int idx = 0;
		if (p[1] >= '0' && p[1] <= '9') {
			while (p[1] >= '0' && p[1] <= '9' && idx < 1000)
				idx = idx * 10 + (*++p - '0');
		} else {
			idx = ++next;
		}
		if (idx > max)
			max = idx;
		o += snprintf(o, 8, "$%d", idx);
	}
	*o = '\0';
	*nparams = max;
	return out;
}

static int
pg_prepare(struct db *db, const char *sql, bool cached, struct db_stmt **out)
{
	struct pg *c = conn(db);
	struct pg_stmt *st = xcalloc(1, sizeof(*st));
	st->sql = rewrite(sql, &st->nparams);
	int n = st->nparams > 0 ? st->nparams : 1;
	st->types = xcalloc((size_t)n, sizeof(*st->types));
	st->vals = xcalloc((size_t)n, sizeof(*st->vals));
	st->lens = xcalloc((size_t)n, sizeof(*st->lens));
	st->fmts = xcalloc((size_t)n, sizeof(*st->fmts));
	st->row = -1;
	if (cached) {
		st->named = true;
		snprintf(st->name, sizeof(st->name), "s%u", ++c->next_name);
	}
	*out = &st->base;
	return 0;
}

static void
clear_row(struct pg_stmt *st)
{
	if (st->blobs == NULL || st->res == NULL)
		return;
	for (int i = 0; i < PQnfields(st->res); i++) {
		PQfreemem(st->blobs[i]);
		st->blobs[i] = NULL;
	}
}

static void
clear_result(struct pg_stmt *st)
{
	clear_row(st);
	free(st->blobs);
	free(st->blob_lens);
	st->blobs = NULL;
	st->blob_lens = NULL;
	PQclear(st->res);
	st->res = NULL;
	st->row = -1;
	st->nrows = 0;
}

static void
clear_binds(struct pg_stmt *st)
{
	for (int i = 0; i < st->nparams; i++) {
		free(st->vals[i]);
		st->vals[i] = NULL;
		st->lens[i] = 0;
		st->fmts[i] = 0;
	}
}

static void
pg_reset(struct db_stmt *s, bool clear)
{
	struct pg_stmt *st = pst(s);
	clear_result(st);
	if (clear)
		clear_binds(st);
}

static void
pg_finalize(struct db_stmt *s)
{
	struct pg_stmt *st = pst(s);
	struct pg *c = conn(s->db);
	clear_result(st);
	clear_binds(st);
	if (st->named && st->prepared_gen == c->gen && PQstatus(c->h) == CONNECTION_OK) {
		char sql[48];
		snprintf(sql, sizeof(sql), "DEALLOCATE %s", st->name);
		PQclear(PQexec(c->h, sql));
	}
	free(st->sql);
	free(st->types);
	free(st->vals);
	free(st->lens);
	free(st->fmts);
	free(st);
}

static void
bind(struct pg_stmt *st, int idx, Oid type, const char *p, size_t len, int fmt)
{
	if (idx < 1 || idx > st->nparams)
		return;
	free(st->vals[idx - 1]);
	st->vals[idx - 1] = NULL;
	if (p != NULL) {
		st->vals[idx - 1] = xmalloc(len + 1);
		memcpy(st->vals[idx - 1], p, len);
		st->vals[idx - 1][len] = '\0';
	}
	st->lens[idx - 1] = (int)len;
	st->fmts[idx - 1] = fmt;
	/* the first binding's type is what the statement is prepared with */
	if (st->prepared_gen == 0 && type != 0)
		st->types[idx - 1] = type;
}

static void
pg_bind_text(struct db_stmt *st, int idx, const char *s, size_t len)
{
	/* typed text, NULL too: `? IS NULL OR col = ?` cannot infer it otherwise */
	bind(pst(st), idx, PG_OID_TEXT, s, len, 0);
}

static void
pg_bind_int64(struct db_stmt *st, int idx, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%lld", (long long)v);
	bind(pst(st), idx, PG_OID_INT8, num, (size_t)n, 0);
}

static void
pg_bind_null(struct db_stmt *st, int idx)
{
	bind(pst(st), idx, 0, NULL, 0, 0);
}

static void
pg_bind_blob(struct db_stmt *st, int idx, const void *p, size_t len)
{
	/* binary format: the bytes as they are, no escaping */
	bind(pst(st), idx, PG_OID_BYTEA, p ? p : "", len, 1);
}

static int
run(struct pg_stmt *st)
{
	struct pg *c = conn(st->base.db);
	PGresult *res = NULL;
	if (st->named) {
		if (st->prepared_gen != c->gen) {
			res = PQprepare(c->h, st->name, st->sql, st->nparams, st->types);
			if (PQresultStatus(res) != PGRES_COMMAND_OK)
				goto fail;
			PQclear(res);
			st->prepared_gen = c->gen;
		}
		res = PQexecPrepared(c->h, st->name, st->nparams, (const char *const *)st->vals,
		                     st->lens, st->fmts, 0);
	} else {
		res = PQexecParams(c->h, st->sql, st->nparams, st->types,
		                   (const char *const *)st->vals, st->lens, st->fmts, 0);
	}
	hold_notes(st->base.db);
	switch (PQresultStatus(res)) {
	case PGRES_TUPLES_OK:
	case PGRES_COMMAND_OK: {
		uint64_t n = 0;
		const char *t = PQcmdTuples(res);
		c->changes = t[0] && parse_uint_cstr(t, INT64_MAX, &n) == 0 ? (int64_t)n : 0;
		st->res = res;
		st->nrows = PQntuples(res);
		st->row = -1;
		if (PQnfields(res) > 0) {
			st->blobs = xcalloc((size_t)PQnfields(res), sizeof(*st->blobs));
			st->blob_lens = xcalloc((size_t)PQnfields(res), sizeof(*st->blob_lens));
		}
		return 0;
	}
	default:
		break;
	}
fail:;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	int rc = state && strncmp(state, "23", 2) == 0 ? DB_CONSTRAINT : DB_ERROR;
	set_err(c, res && PQresultErrorMessage(res)[0] ? PQresultErrorMessage(res)
	                                               : PQerrorMessage(c->h));
	PQclear(res);
	if (rc == DB_ERROR)
		check_conn(st->base.db);
	return rc;
}

static int
pg_step(struct db_stmt *s)
{
	struct pg_stmt *st = pst(s);
	if (st->res == NULL) {
		int rc = run(st);
		if (rc != 0)
			return rc;
	}
	clear_row(st);
	if (st->row + 1 < st->nrows) {
		st->row++;
		return DB_ROW;
	}
	st->row = st->nrows;
	return DB_DONE;
}

static bool
pg_col_is_null(struct db_stmt *s, int col)
{
	struct pg_stmt *st = pst(s);
	if (st->res == NULL || st->row < 0 || st->row >= st->nrows || col >= PQnfields(st->res))
		return true;
	return PQgetisnull(st->res, st->row, col);
}

static int64_t
pg_col_int64(struct db_stmt *s, int col)
{
	struct pg_stmt *st = pst(s);
	if (pg_col_is_null(s, col))
		return 0;
	const char *v = PQgetvalue(st->res, st->row, col);
	if (PQftype(st->res, col) == PG_OID_BOOL)
		return v[0] == 't';
	bool neg = v[0] == '-';
	uint64_t n = 0;
	if (parse_uint_cstr(v + neg, (uint64_t)INT64_MAX, &n) != 0)
		return 0;
	return neg ? -(int64_t)n : (int64_t)n;
}

static const char *
pg_col_text(struct db_stmt *s, int col)
{
	struct pg_stmt *st = pst(s);
	if (pg_col_is_null(s, col))
		return NULL;
	return PQgetvalue(st->res, st->row, col);
}

/* bytea comes back as text (\x hex); decoded once per row and column */
static const unsigned char *
blob(struct pg_stmt *st, int col, size_t *len)
{
	if (st->blobs[col] == NULL)
		st->blobs[col] = PQunescapeBytea(
		    (const unsigned char *)PQgetvalue(st->res, st->row, col), &st->blob_lens[col]);
	*len = st->blob_lens[col];
	return st->blobs[col];
}

static size_t
pg_col_bytes(struct db_stmt *s, int col)
{
	struct pg_stmt *st = pst(s);
	size_t n = 0;
	if (pg_col_is_null(s, col))
		return 0;
	if (PQftype(st->res, col) == PG_OID_BYTEA) {
		blob(st, col, &n);
		return n;
	}
	return (size_t)PQgetlength(st->res, st->row, col);
}

static const void *
pg_col_blob(struct db_stmt *s, int col)
{
	struct pg_stmt *st = pst(s);
	size_t n;
	if (pg_col_is_null(s, col))
		return NULL;
	if (PQftype(st->res, col) == PG_OID_BYTEA)
		return blob(st, col, &n);
	return PQgetvalue(st->res, st->row, col);
}

static int
pg_version_get(struct db *db, int *version)
{
	struct pg *c = conn(db);
	if (pg_exec(db, "CREATE TABLE IF NOT EXISTS airlock_schema (version BIGINT NOT NULL)") != 0)
		return AL_E_IO;
	PGresult *res = PQexec(c->h, "SELECT max(version) FROM airlock_schema");
	int r = AL_E_IO;
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		uint64_t v = 0;
		if (!PQgetisnull(res, 0, 0))
			parse_uint_cstr(PQgetvalue(res, 0, 0), 1000000, &v);
		*version = (int)v;
		r = 0;
	} else {
		set_err(c, PQresultErrorMessage(res));
	}
	PQclear(res);
	return r;
}

static int
pg_version_set(struct db *db, int version)
{
	char sql[96];
	snprintf(sql, sizeof(sql),
	         "DELETE FROM airlock_schema; INSERT INTO airlock_schema VALUES (%d)", version);
	return db_exec(db, sql);
}

/* One session-level advisory lock around the whole migration run: replicas that start
 * together wait here, then find the version already current. The key is fixed (the
 * database is airlock's alone): 'airl' as an integer. */
static int
pg_migrate_lock(struct db *db)
{
	return db_exec(db, "SELECT pg_advisory_lock(1634888300)");
}

static void
pg_migrate_unlock(struct db *db)
{
	db_exec(db, "SELECT pg_advisory_unlock(1634888300)");
}

static int
pg_ping(struct db *db)
{
	struct pg *c = conn(db);
	if (PQstatus(c->h) != CONNECTION_OK)
		check_conn(db);
	if (PQstatus(c->h) != CONNECTION_OK)
		return AL_E_IO;
	return pg_exec(db, "SELECT 1");
}

static int
pg_listen(struct db *db, const char *channel)
{
	struct pg *c = conn(db);
	char sql[96];
	size_t n = strlen(channel);
	if (n == 0 || n >= sizeof(c->listen) || strspn(channel, "abcdefghijklmnopqrstuvwxyz_") != n)
		return AL_E_INVAL;
	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	snprintf(c->listen, sizeof(c->listen), "%s", channel);
	return db_exec(db, sql);
}

static int
pg_notifications(struct db *db, void (*fn)(void *arg, const char *payload), void *arg)
{
	struct pg *c = conn(db);
	PGnotify *n;
	/* first what came with answers, then what is on the socket: arrival order */
	while ((n = c->held) != NULL) {
		c->held = n->next;
		if (c->held == NULL)
			c->held_tail = NULL;
		fn(arg, n->extra);
		PQfreemem(n);
	}
	if (PQstatus(c->h) != CONNECTION_OK)
		return AL_E_IO;
	if (PQconsumeInput(c->h) == 0) {
		set_err(c, PQerrorMessage(c->h));
		return AL_E_IO;
	}
	while ((n = PQnotifies(c->h)) != NULL) {
		if (!own_note(c, n))
			fn(arg, n->extra);
		PQfreemem(n);
	}
	return 0;
}

static int
pg_socket(struct db *db)
{
	struct pg *c = conn(db);
	return c->listen[0] && PQstatus(c->h) == CONNECTION_OK ? PQsocket(c->h) : -1;
}

static unsigned
pg_generation(struct db *db)
{
	return conn(db)->gen;
}

static bool
pg_unavailable(struct db *db)
{
	return PQstatus(conn(db)->h) != CONNECTION_OK;
}

static void
pg_free(struct pg *c)
{
	if (c == NULL)
		return;
	while (c->held) {
		PGnotify *n = c->held;
		c->held = n->next;
		PQfreemem(n);
	}
	PQfinish(c->h);
	free(c);
}

static void
pg_close(struct db *db)
{
	pg_free(conn(db));
}

const struct db_backend db_pg_backend = {
    .name = "postgresql",
    .dialect = DB_DIALECT_PG,
    .begin_sql = "BEGIN",
    .close = pg_close,
    .ping = pg_ping,
    .unavailable = pg_unavailable,
    .listen = pg_listen,
    .notifications = pg_notifications,
    .generation = pg_generation,
    .socket = pg_socket,
    .exec = pg_exec,
    .errmsg = pg_errmsg,
    .changes = pg_changes,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .reset = pg_reset,
    .bind_text = pg_bind_text,
    .bind_int64 = pg_bind_int64,
    .bind_null = pg_bind_null,
    .bind_blob = pg_bind_blob,
    .step = pg_step,
    .col_is_null = pg_col_is_null,
    .col_int64 = pg_col_int64,
    .col_text = pg_col_text,
    .col_bytes = pg_col_bytes,
    .col_blob = pg_col_blob,
    .version_get = pg_version_get,
    .version_set = pg_version_set,
    .migrate_lock = pg_migrate_lock,
    .migrate_unlock = pg_migrate_unlock,
};

/* Where we tried to connect, for logs: host, port, database and user as libpq resolved
 * them, never the URL (it may hold the password). */
static void
log_target(const char *msg, PGconn *h, const char *err)
{
	char why[256];
	snprintf(why, sizeof(why), "%s", err ? err : "");
	size_t n = strlen(why);
	while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' '))
		why[--n] = '\0';
	log_error(msg, "host", h && PQhost(h) ? PQhost(h) : "?", "port",
	          h && PQport(h) ? PQport(h) : "?", "database", h && PQdb(h) ? PQdb(h) : "?",
	          "user", h && PQuser(h) ? PQuser(h) : "?", "error", why);
}

/* NOTICEs (an IF NOT EXISTS that skipped) are not ours to print on stderr */
static void
notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

int
db_open_url(const char *url, struct db **out)
{
	/* defaults first: the URL's own settings and PG* variables (expand_dbname) win */
	const char *const keys[] = {"connect_timeout", "application_name", "options", "dbname",
	                            NULL};
	/* every call is bounded, and stays bounded across reconnects (options travel with
	 * the connection, a SET would not) */
	const char *const vals[] = {PG_CONNECT_TIMEOUT, "airlock",
	                            "-c statement_timeout=" PG_STATEMENT_TIMEOUT_MS, url, NULL};
	struct pg *c = NULL;
	int r = AL_E_IO;
	/* a host without libpq cannot use PostgreSQL at all: say so once, never retry */
	if (pq_dl_load() != 0) {
		log_error("cannot use the PostgreSQL database", "error", pq_dl_error());
		return AL_E_IO;
	}
	c = xcalloc(1, sizeof(*c));
	c->h = PQconnectdbParams(keys, vals, 1);
	if (c->h == NULL || PQstatus(c->h) != CONNECTION_OK) {
		log_target("cannot connect to the database", c->h,
		           c->h ? PQerrorMessage(c->h) : "out of memory");
		/* a refused password stays refused: no point retrying it */
		r = c->h && PQconnectionUsedPassword(c->h) ? AL_E_AUTH : AL_E_AGAIN;
		goto out;
	}
	PQsetNoticeProcessor(c->h, notice, NULL);
	c->gen = 1;
	log_info("database connected", "engine", "postgresql", "host",
	         PQhost(c->h) ? PQhost(c->h) : "?", "database", PQdb(c->h) ? PQdb(c->h) : "?",
	         "ssl", PQsslInUse(c->h) ? "on" : "off");
	r = db_attach(&db_pg_backend, c, out);
	c = NULL;
out:
	pg_free(c);
	return r;
}
