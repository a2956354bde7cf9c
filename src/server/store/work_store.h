/* The work and workers_seen tables: the self-hosted work queue (docs/server/work.md).
 * The only place with SQL on them (docs/server/storage.md). The queue's rules (who may
 * claim, lease lengths, fencing values) are the routes' (api/work.c); these functions
 * make each state change one conditional statement, so a lost race shows as
 * AL_E_CONFLICT or AL_E_PRECOND instead of a double transition. */
#ifndef AL_SERVER_WORK_STORE_H
#define AL_SERVER_WORK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "doc_store.h"

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

/* One work item. Times are µs, 0 when not set. */
struct work_item {
	char id[80];
	char environment_id[80];
	char session_id[80]; /* "" when none */
	char data_type[32];
	char state[16];   /* queued, starting, active, stopping, stopped */
	json_t *metadata; /* owned; work_item_reset frees it */
	int64_t created_at, acknowledged_at, started_at, latest_heartbeat_at;
	int64_t stop_requested_at, stopped_at, lease_expires_at;
	bool has_heartbeat;
	char last_heartbeat[48];
	unsigned ttl_seconds;
	int64_t seq;
};
void work_item_reset(struct work_item *w);

/* The item, within environment_id when that is not NULL. 0, AL_E_NOTFOUND or AL_E_IO. */
int work_store_get(struct db *db, const char *environment_id, const char *id,
                   struct work_item *out);
/* Whether the session has an item that is not stopped. */
int work_store_session_live(struct db *db, const char *session_id, bool *live);
/* Adds a queued session item at the next queue position (PostgreSQL: and notifies the
 * other replicas at commit, "work:<environment id>" on airlock_events). */
int work_store_insert(struct db *db, const char *id, const char *environment_id,
                      const char *session_id, unsigned ttl_seconds, int64_t now);
/* The session ended: never-acked items stop outright, acked ones are asked to stop. */
int work_store_end_session(struct db *db, const char *session_id, int64_t now);
/* Records that worker_id polled the environment (for stats); best effort. */
void work_store_note_worker(struct db *db, const char *environment_id, const char *worker_id,
                            int64_t now);
/* In one transaction: the oldest queued item of the environment never delivered, or
 * delivered before redeliver_before, is marked delivered to worker_id with a new token
 * hash. 0 (id filled), AL_E_NOTFOUND (nothing to deliver) or AL_E_IO. */
int work_store_claim(struct db *db, const char *environment_id, int64_t redeliver_before,
                     const char *worker_id, const char *token_hash, int64_t now, char *id,
                     size_t id_len);
/* queued → starting, the lease running until lease_expires_at. AL_E_CONFLICT when the
 * item was not queued any more. */
int work_store_ack(struct db *db, const char *id, int64_t now, int64_t lease_expires_at);
/* A heartbeat with compare-and-set fencing: provided the item is starting or active and
 * its last heartbeat is still expected (none when first), it becomes active with
 * heartbeat value hb and a lease of ttl_seconds. AL_E_PRECOND when the value moved. */
int work_store_heartbeat(struct db *db, const char *id, const char *hb, int64_t now,
                         unsigned ttl_seconds, bool first, const char *expected);
/* force (or a queued item): stopped now; else starting/active → stopping.
 * AL_E_CONFLICT when the item was already past that. */
int work_store_stop(struct db *db, const char *id, bool force, int64_t now);
/* starting/active → stopped (its lease expired). AL_E_CONFLICT when it moved. */
int work_store_expire(struct db *db, const char *id, int64_t now);
/* Items whose lease ended before now (at most max), oldest first: fn per item. */
int work_store_expired(struct db *db, int64_t now, unsigned max,
                       void (*fn)(void *arg, const char *id, const char *session_id,
                                  const char *environment_id),
                       void *arg);
/* Queue stats: queued items never delivered (depth) and delivered but not acked
 * (pending), the oldest queued item's creation (0 if none), workers seen since since. */
struct work_stats {
	int64_t depth, pending, oldest_queued_at, workers;
};
int work_store_stats(struct db *db, const char *environment_id, int64_t since,
                     struct work_stats *out);
/* A page of the environment's items (q: cursor, limit, order): fn per item. */
int work_store_list(struct db *db, const char *environment_id, const struct doc_list *q,
                    int (*fn)(void *arg, const struct work_item *w), void *arg, bool *more);
int work_store_set_metadata(struct db *db, const char *id, const json_t *metadata);

#endif
