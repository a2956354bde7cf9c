/* What the resource tables share (agents, environments, sessions, vaults,
 * vault_credentials): rows of id, doc (the exact wire JSON), seq (list order), created_at
 * and archived_at. The family stores build their lists on doc_store_page; routes never
 * call it themselves (docs/server/storage.md). */
#ifndef AL_SERVER_DOC_STORE_H
#define AL_SERVER_DOC_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct db;
struct db_stmt;

/* One page of a list route, as validated by the API layer. */
struct doc_list {
	bool include_archived;
	int64_t created_lo, created_hi; /* µs, inclusive */
	bool has_cursor;
	int64_t after_seq; /* exclusive bound from the cursor */
	unsigned limit;
	bool desc;
};

/* data: up to limit documents in page order; more: another page follows, starting
 * after last_seq. Every function that fills one initializes it first, so a caller may
 * doc_page_free it after a failure too. */
struct doc_page {
	json_t *data;
	int64_t last_seq;
	bool more;
};

/* The page of table (one of ours, never input) that q asks for; scope_col/scope_id
 * (both NULL, or e.g. "vault_id" and its value) narrow it to one parent. 0 or AL_E_IO. */
int doc_store_page(struct db *db, const char *table, const char *scope_col, const char *scope_id,
                   const struct doc_list *q, struct doc_page *out);
/* Steps st (columns: seq, doc; at most limit+1 rows in page order) into out. */
int doc_store_collect(struct db_stmt *st, unsigned limit, struct doc_page *out);
void doc_page_free(struct doc_page *p);
/* Runs sql, which returns no rows, with text ?1..?3 (NULL binds NULL; parameters past the
 * statement's own are ignored), logging a failed step under store ("memory", "skill").
 * 0 or AL_E_IO; db_changes tells the caller how many rows it touched. */
int doc_store_exec(struct db *db, const char *store, const char *sql, const char *a, const char *b,
                   const char *c);
/* Whether sql (a SELECT, text ?1..?3 bound as for doc_store_exec) finds a row. *err (may
 * be NULL): 0, or AL_E_IO when the statement failed, which answers false. */
/* Runs sql (an UPDATE or DELETE of one row by id, text ?1..?3 as above): 0 when it touched
 * a row, AL_E_NOTFOUND when none, AL_E_IO. */
int doc_store_change_one(struct db *db, const char *sql, const char *a, const char *b,
                         const char *c);
bool doc_store_exists(struct db *db, const char *sql, const char *a, const char *b, const char *c,
                      int *err);
/* A stored µs timestamp as documents carry it: RFC 3339 string, or JSON null for 0.
 * (The same rendering as api_time; stores do not include the API layer.) */
json_t *doc_store_time(int64_t real_us);

#endif
