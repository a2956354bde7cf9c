/* The audit_outbox table: audit records made by processes other than the server (the
 * `airlock keys` command works on the database while the server runs). They are written
 * in the same transaction as what they record; the server moves them into its audit log
 * (src/server/audit/) and deletes them. The only place with SQL on audit_outbox. */
#ifndef AL_SERVER_AUDIT_STORE_H
#define AL_SERVER_AUDIT_STORE_H

#include <stdint.h>

#include <jansson.h>

struct db;

/* Adds a record (an object without seq/prev/hash); inside the caller's transaction when
 * there is one. 0 or AL_E_IO. */
int audit_store_outbox_add(struct db *db, const json_t *rec);
/* Calls fn for up to max records, oldest first; fn's non-zero return stops and is
 * returned. rec is borrowed for the call. 0 or AL_E_IO. */
int audit_store_outbox_list(struct db *db, unsigned max,
                            int (*fn)(void *arg, int64_t id, json_t *rec), void *arg);
/* Removes one record once it is in the log: 0 or AL_E_IO. */
int audit_store_outbox_delete(struct db *db, int64_t id);

#endif
