/* The audit_outbox table: audit records written in the same transaction as what they
 * record: by processes other than the server (`airlock keys` works on the database while
 * the server runs), and by the agent loop with the events it commits (one fsync for both).
 * The server moves them into its audit log (src/server/audit/) and deletes them once the
 * log is synced. The only place with SQL on audit_outbox. */
#ifndef AL_SERVER_AUDIT_STORE_H
#define AL_SERVER_AUDIT_STORE_H

#include <stdint.h>

#include <jansson.h>

struct db;

/* Adds a record (the canonical text of an object without seq/prev/hash: audit_text_build);
 * inside the caller's transaction when there is one. *id (may be NULL) gets its row id.
 * 0 or AL_E_IO. */
int audit_store_outbox_add(struct db *db, const char *text, int64_t *id);
/* Calls fn for up to max records whose id is above after_id, oldest first; fn's non-zero
 * return stops and is returned. rec is borrowed for the call. 0 or AL_E_IO. */
int audit_store_outbox_list(struct db *db, int64_t after_id, unsigned max,
                            int (*fn)(void *arg, int64_t id, json_t *rec), void *arg);
/* Removes one record once it is in the log: 0 or AL_E_IO. */
int audit_store_outbox_delete(struct db *db, int64_t id);

#endif
