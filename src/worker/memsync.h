/* The session's memory stores in airlock worker (docs/worker/memory.md): a copy of each
 * store under the session's workspace, downloaded before the first tool call and synced
 * back after tool calls and at the item's end with the SDK worker's conflict rules. */
#ifndef AIRLOCK_WORKER_MEMSYNC_H
#define AIRLOCK_WORKER_MEMSYNC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct worker;
struct memsync;

#define MEMSYNC_MAX_STORES 8
#define MEMSYNC_MAX_MEMORIES 10000
#define MEMSYNC_MAX_CONTENT (100u * 1000) /* the server's per-memory limit */
#define MEMSYNC_INTERVAL_MS 15000
#define MEMSYNC_DELETE_AFTER_MS 30000
#define MEMSYNC_MARKER ".anthropic-memory-store"

/* What one path needs, from its local, baseline (last synced) and remote sha256s (NULL:
 * absent). Pure, so the table is tested alone (tests/unit/worker/test_memsync.c). */
enum memsync_action {
	MEMSYNC_NONE,
	MEMSYNC_ADOPT,         /* local and remote agree on new content: only the baseline moves */
	MEMSYNC_PULL,          /* the store changed: fetch it */
	MEMSYNC_REMOVE_LOCAL,  /* the store deleted it: remove the local file */
	MEMSYNC_CREATE,        /* new local file: create the memory */
	MEMSYNC_UPDATE,        /* local edit: update with the baseline as precondition */
	MEMSYNC_DELETE,        /* local delete: delete with the baseline as expected sha */
	MEMSYNC_CONFLICT_PULL, /* both changed: the store wins (logged) */
	MEMSYNC_RECREATE,      /* the store deleted what was edited here: the file is the only copy,
	                        * so it is created again (the SDK's rule; read_only: kept unsent) */
};
enum memsync_action memsync_decide(const char *local, const char *base, const char *remote);
const char *memsync_action_name(enum memsync_action a);

/* Store directory name from a resource's mount_path (its last segment) or the store id:
 * [A-Za-z0-9._-] only, never "." or "..". False when neither gives one. */
bool memsync_dir_name(const char *mount_path, const char *store_id, char *out, size_t len);

typedef void memsync_done_fn(void *arg, int err);

/* The memory_store entries of the session's resources (others ignored); none: *out NULL
 * and 0. cred is borrowed and must outlive m. */
int memsync_new(struct worker *w, const char *session_id, const char *cred, const char *workspace,
                const json_t *resources, struct memsync **out);
/* Lists each store (view=full, paged) into <workspace>/memory/<name>/; done(arg, 0) when
 * every store is there, or an error (the item cannot run as the session expects). */
void memsync_download(struct memsync *m, memsync_done_fn *done, void *arg);
/* After a tool call: a sync pass now, or within MEMSYNC_INTERVAL_MS of the last one. */
void memsync_kick(struct memsync *m);
/* The item's end (the sandbox is gone): a last pass, then the copies are removed. */
void memsync_final(struct memsync *m, memsync_done_fn *done, void *arg);
bool memsync_busy(const struct memsync *m);
/* The host directory of each read_only store's copy (i < count), for the file tools'
 * read-only roots; NULL past the end or for a read_write store. */
char *memsync_read_only_dir(const struct memsync *m, size_t i);
void memsync_free(struct memsync *m);

#endif
