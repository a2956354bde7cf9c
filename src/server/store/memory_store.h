/* The memory_stores, memories, memory_versions and memory_store_attachments tables: the
 * only place with SQL on them (docs/server/storage.md, docs/server/memory.md). Routes
 * validate paths, content and access; this module keeps the rules that must hold in one
 * transaction: path uniqueness and overlap, the content precondition, one version row
 * per change, the per-store bounds. */
#ifndef AL_SERVER_MEMORY_STORE_H
#define AL_SERVER_MEMORY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "doc_store.h"

struct db;

/* Bounds (docs/server/memory.md "Limits"). Content and path sizes are the reference's. */
#define MEMORY_MAX_CONTENT 102400  /* bytes of one memory's content */
#define MEMORY_MAX_PATH 1024       /* bytes of a path */
#define MEMORY_MAX_SEGMENTS 20     /* segments of a path */
#define MEMORY_MAX_PER_STORE 10000 /* live memories in one store */
#define MEMORY_MAX_VERSIONS 50000  /* retained versions in one store (oldest pruned) */
#define MEMORY_CONFLICT_ID_LEN 80
#define MEMORY_CONFLICT_PATH_LEN (MEMORY_MAX_PATH + 1)

/* ---- stores ---- */

/* The store's document (new reference); *err: 0, AL_E_NOTFOUND or AL_E_IO. */
json_t *memory_store_get(struct db *db, const char *id, int *err);
int memory_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at);
int memory_store_update(struct db *db, const char *id, const json_t *doc);
int memory_store_archive(struct db *db, const char *id, const json_t *doc, int64_t now);
/* Deletes the store with its memories, versions and session attachments, in one
 * transaction. */
int memory_store_delete(struct db *db, const char *id);
/* A page of stores (scope_id unused). */
int memory_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                      struct doc_page *out);

/* ---- memories ---- */

/* Who wrote a version: api_actor, session_actor or user_actor (docs/server/memory.md). */
struct memory_actor {
	const char *api_key_id; /* api_actor */
	const char *session_id; /* session_actor */
	const char *user_id;    /* user_actor */
};

/* A create or an update. path/content NULL on an update: unchanged. */
struct memory_write {
	const char *store_id;
	const char *id;
	const char *path;
	const char *content;
	size_t content_len;
	const char *expected_sha256; /* update/delete precondition, or NULL */
	struct memory_actor actor;
	int64_t now;
};

/* Why a write was refused with AL_E_CONFLICT: the memory whose path is taken or
 * overlaps (ancestor or descendant), "" when the unique index caught a concurrent
 * writer. */
struct memory_conflict {
	char id[MEMORY_CONFLICT_ID_LEN];
	char path[MEMORY_CONFLICT_PATH_LEN];
};

/* The memory as the API shows it (content null unless with_content); *err as
 * memory_store_get. */
json_t *memory_store_memory_get(struct db *db, const char *store_id, const char *id,
                                bool with_content, int *err);
/* Adds a memory and its "created" version in one transaction: 0 (*out: the memory,
 * content omitted unless with_content), AL_E_CONFLICT (conflict filled), AL_E_TOOBIG (the
 * store holds MEMORY_MAX_PER_STORE memories), AL_E_IO. */
int memory_store_memory_create(struct db *db, const struct memory_write *w, bool with_content,
                               json_t **out, struct memory_conflict *conflict);
/* Updates content and/or path under the precondition, in one transaction: a change adds a
 * "modified" version; no change adds none (and then the precondition is not asked, as
 * the reference does). 0 (*out), AL_E_NOTFOUND, AL_E_PRECOND, AL_E_CONFLICT, AL_E_IO. */
int memory_store_memory_update(struct db *db, const struct memory_write *w, bool with_content,
                               json_t **out, struct memory_conflict *conflict);
/* Deletes a memory under the precondition and adds its "deleted" version. 0,
 * AL_E_NOTFOUND, AL_E_PRECOND, AL_E_IO. */
int memory_store_memory_delete(struct db *db, const struct memory_write *w);

/* One list page in path order. prefix ends with '/' ("/" for the whole store); depth 0
 * lists every memory below it, depth n rolls memories more than n segments down into
 * {type:"memory_prefix", path} items. from: start after this path (or at it when
 * from_inclusive); NULL for the first page. */
struct memory_list {
	const char *store_id;
	const char *prefix;
	unsigned depth;
	bool with_content;
	const char *from;
	bool from_inclusive;
	unsigned limit;
};
/* data: the items; more: another page follows, from next (heap) with next_inclusive. */
struct memory_page {
	json_t *data;
	bool more;
	char *next;
	bool next_inclusive;
};
int memory_store_memory_list(struct db *db, const struct memory_list *q, struct memory_page *out);
void memory_page_free(struct memory_page *p);

/* ---- versions ---- */

struct memory_version_filter {
	const char *memory_id, *operation, *session_id, *api_key_id; /* NULL: any */
	bool none;                                                   /* match nothing */
};
json_t *memory_store_version_get(struct db *db, const char *store_id, const char *id,
                                 bool with_content, int *err);
int memory_store_version_list(struct db *db, const char *store_id,
                              const struct memory_version_filter *f, const struct doc_list *q,
                              bool with_content, struct doc_page *out);
/* Removes a version's content, path, hash and size and stamps redacted_at/by; the row
 * stays. 0 (*out: the version), AL_E_NOTFOUND, AL_E_CONFLICT (it holds the current
 * content of a live memory: update or delete the memory first), AL_E_IO. */
int memory_store_version_redact(struct db *db, const char *store_id, const char *id,
                                const struct memory_actor *by, int64_t now, json_t **out);

/* ---- sessions ---- */

/* Records that session_id (owned by iss/sub, NULL for API keys) mounts store_id; joins
 * the caller's transaction (the session's create). */
int memory_store_attach(struct db *db, const char *session_id, const char *store_id,
                        const char *owner_iss, const char *owner_sub);
/* Forgets one store of a session (its resource was removed; joins the caller's
 * transaction). */
int memory_store_detach(struct db *db, const char *session_id, const char *store_id);
/* Forgets a deleted session's attachments (joins the caller's transaction). */
int memory_store_detach_session(struct db *db, const char *session_id);
/* Whether a session owned by iss/sub mounts store_id. */
bool memory_store_attached_to_owner(struct db *db, const char *store_id, const char *iss,
                                    const char *sub);

#endif
