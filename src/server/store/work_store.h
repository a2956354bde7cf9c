/* The work and workers_seen tables: the self-hosted work queue (docs/server/work.md).
 * The only place with SQL on them, as the queue's routes move here
 * (docs/server/storage.md). */
#ifndef AL_SERVER_WORK_STORE_H
#define AL_SERVER_WORK_STORE_H

struct db;

/* The work item a sessions token belongs to. */
struct work_token_row {
	char work_id[80];
	char environment_id[80];
	char session_id[80]; /* "" when the item has none */
};

/* The not-stopped work item whose token has this hash: a sessions token lives exactly
 * as long as its work item is not stopped. 0, AL_E_NOTFOUND or AL_E_IO. */
int work_store_find_token(struct db *db, const char *token_hash, struct work_token_row *out);

#endif
