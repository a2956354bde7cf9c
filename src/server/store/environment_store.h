/* The environments table. The only place with SQL on environments
 * (docs/server/storage.md). Documents are the exact wire JSON. */
#ifndef AL_SERVER_ENVIRONMENT_STORE_H
#define AL_SERVER_ENVIRONMENT_STORE_H

#include <stdint.h>

#include <jansson.h>

#include "doc_store.h"

struct db;

/* The environment's document (new reference); *err: 0, AL_E_NOTFOUND or AL_E_IO. */
json_t *environment_store_get(struct db *db, const char *id, int *err);
/* 0 when the environment exists and is not archived, AL_E_CONFLICT when archived,
 * AL_E_NOTFOUND, AL_E_IO. */
int environment_store_live(struct db *db, const char *id);
/* Adds an environment (takes the next list position); one transaction. */
int environment_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at);
/* Replaces the document; archived_at non-zero also marks the row archived. */
int environment_store_update(struct db *db, const char *id, const json_t *doc, int64_t archived_at);
/* Deletes the environment and revokes its environment keys, in one transaction. */
int environment_store_delete(struct db *db, const char *id, int64_t now);
/* A page of environments (scope_id unused). */
int environment_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                           struct doc_page *out);

#endif
