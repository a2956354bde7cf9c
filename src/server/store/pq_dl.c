/* Trampolines for the libpq functions db_pg.c calls, resolved with dlopen/dlsym on first
 * use, like lib/ssl_dl.c and lib/curl_dl.c. Why: libpq depends on libssl, so linking it
 * at load time would make every role of the one binary need libssl.so.3 and libpq.so.5
 * to start at all — the worker's plain-HTTP transport on a host without OpenSSL, and a
 * server on SQLite, included (integration-worker_transport hides libssl to prove the
 * former). Only a server given a PostgreSQL URL loads libpq. The trampolines are hidden
 * so the executable never exports a PQ name libpq could bind its own calls to. */
#include <pthread.h>
#include <stdio.h>

/* the real declarations: every trampoline below is checked against them */
#include <libpq-fe.h>

#include "dl_table.h"
#include "err.h"
#include "pq_dl.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* F: returns a value, loads on first use, answers `fail` when libpq is missing.
 * N: releases something only a loaded libpq can have made, so it never loads. */
#define PQ_DL_FUNCTIONS(F, N)                                                                      \
	F(int, PQbackendPID, (const PGconn *conn), (conn), 0)                                      \
	N(PQclear, (PGresult * res), (res))                                                        \
	F(char *, PQcmdTuples, (PGresult * res), (res), NULL)                                      \
	F(int, PQconsumeInput, (PGconn * conn), (conn), 0)                                         \
	F(PGconn *, PQconnectdbParams,                                                             \
	  (const char *const *keywords, const char *const *values, int expand_dbname),             \
	  (keywords, values, expand_dbname), NULL)                                                 \
	F(int, PQconnectionUsedPassword, (const PGconn *conn), (conn), 0)                          \
	F(char *, PQdb, (const PGconn *conn), (conn), NULL)                                        \
	F(char *, PQerrorMessage, (const PGconn *conn), (conn), NULL)                              \
	F(PGresult *, PQexec, (PGconn * conn, const char *query), (conn, query), NULL)             \
	F(PGresult *, PQexecParams,                                                                \
	  (PGconn * conn, const char *command, int nParams, const Oid *paramTypes,                 \
	   const char *const *paramValues, const int *paramLengths, const int *paramFormats,       \
	   int resultFormat),                                                                      \
	  (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats,            \
	   resultFormat),                                                                          \
	  NULL)                                                                                    \
	F(PGresult *, PQexecPrepared,                                                              \
	  (PGconn * conn, const char *stmtName, int nParams, const char *const *paramValues,       \
	   const int *paramLengths, const int *paramFormats, int resultFormat),                    \
	  (conn, stmtName, nParams, paramValues, paramLengths, paramFormats, resultFormat), NULL)  \
	N(PQfinish, (PGconn * conn), (conn))                                                       \
	N(PQfreemem, (void *ptr), (ptr))                                                           \
	F(Oid, PQftype, (const PGresult *res, int field_num), (res, field_num), 0)                 \
	F(int, PQgetisnull, (const PGresult *res, int tup_num, int field_num),                     \
	  (res, tup_num, field_num), 1)                                                            \
	F(int, PQgetlength, (const PGresult *res, int tup_num, int field_num),                     \
	  (res, tup_num, field_num), 0)                                                            \
	F(char *, PQgetvalue, (const PGresult *res, int tup_num, int field_num),                   \
	  (res, tup_num, field_num), NULL)                                                         \
	F(char *, PQhost, (const PGconn *conn), (conn), NULL)                                      \
	F(int, PQnfields, (const PGresult *res), (res), 0)                                         \
	F(PGnotify *, PQnotifies, (PGconn * conn), (conn), NULL)                                   \
	F(int, PQntuples, (const PGresult *res), (res), 0)                                         \
	F(char *, PQport, (const PGconn *conn), (conn), NULL)                                      \
	F(PGresult *, PQprepare,                                                                   \
	  (PGconn * conn, const char *stmtName, const char *query, int nParams,                    \
	   const Oid *paramTypes),                                                                 \
	  (conn, stmtName, query, nParams, paramTypes), NULL)                                      \
	N(PQreset, (PGconn * conn), (conn))                                                        \
	F(char *, PQresultErrorField, (const PGresult *res, int fieldcode), (res, fieldcode),      \
	  NULL)                                                                                    \
	F(char *, PQresultErrorMessage, (const PGresult *res), (res), NULL)                        \
	F(ExecStatusType, PQresultStatus, (const PGresult *res), (res), PGRES_FATAL_ERROR)         \
	F(PQnoticeProcessor, PQsetNoticeProcessor,                                                 \
	  (PGconn * conn, PQnoticeProcessor proc, void *arg), (conn, proc, arg), NULL)             \
	F(int, PQsocket, (const PGconn *conn), (conn), -1)                                         \
	F(int, PQsslInUse, (PGconn * conn), (conn), 0)                                             \
	F(ConnStatusType, PQstatus, (const PGconn *conn), (conn), CONNECTION_BAD)                  \
	F(unsigned char *, PQunescapeBytea, (const unsigned char *strtext, size_t *retbuflen),     \
	  (strtext, retbuflen), NULL)                                                              \
	F(char *, PQuser, (const PGconn *conn), (conn), NULL)

#define ENUM_F(ret, name, params, args, fail) I_##name,
#define ENUM_N(name, params, args) I_##name,
enum { PQ_DL_FUNCTIONS(ENUM_F, ENUM_N) I_COUNT };

#define NAME_F(ret, name, params, args, fail) #name,
#define NAME_N(name, params, args) #name,
static const char *const names[I_COUNT] = {PQ_DL_FUNCTIONS(NAME_F, NAME_N)};

static void (*fn[I_COUNT])(void);
/* the function pointer with the type of libpq's own declaration */
#define REAL(name) ((__typeof__(name) *)fn[I_##name])

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int state; /* 0 not tried, 1 loaded, -1 failed; written once, in load() */
static char errmsg[256] = "libpq was not loaded";

static void
load(void)
{
	int r =
	    dl_table_open("libpq.so.5", "libpq5", NULL, names, fn, I_COUNT, errmsg, sizeof(errmsg));
	__atomic_store_n(&state, r == 0 ? 1 : -1, __ATOMIC_RELEASE);
}

int
pq_dl_load(void)
{
	pthread_once(&once, load);
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == 1 ? 0 : AL_E_IO;
}

const char *
pq_dl_error(void)
{
	pq_dl_load();
	return errmsg;
}

static int
loaded(void)
{
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == 1;
}

#define DEF_F(ret, name, params, args, fail)                                                       \
	HIDDEN ret name params                                                                     \
	{                                                                                          \
		return pq_dl_load() == 0 ? REAL(name) args : (fail);                               \
	}
#define DEF_N(name, params, args)                                                                  \
	HIDDEN void name params                                                                    \
	{                                                                                          \
		if (loaded())                                                                      \
			REAL(name) args;                                                           \
	}
PQ_DL_FUNCTIONS(DEF_F, DEF_N)
