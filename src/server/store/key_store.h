/* The api_keys table: server and environment API keys, stored as SHA-256 hashes only.
 * The only place with SQL on api_keys (docs/server/storage.md). */
#ifndef AL_SERVER_KEY_STORE_H
#define AL_SERVER_KEY_STORE_H

#include <stdbool.h>
#include <stdint.h>

struct db;

struct key_row {
	char id[80];
	char kind[16];           /* "server" or "environment" */
	char environment_id[80]; /* "" for a server key */
	char name[256];          /* "" when none was given */
	bool revoked;
	int64_t created_at; /* unix microseconds */
	int64_t revoked_at; /* 0 while live */
};

/* Adds a live key. environment_id NULL for a server key, name may be NULL. */
int key_store_insert(struct db *db, const char *id, const char *kind, const char *environment_id,
                     const char *hash, const char *name, int64_t created_at);
/* The key with this hash, live or revoked (out->revoked says which; callers refuse a
 * revoked one and may name it in a log): 0, AL_E_NOTFOUND or AL_E_IO. */
int key_store_find(struct db *db, const char *hash, struct key_row *out);
/* Marks one live key revoked: 0, AL_E_NOTFOUND (no such live key) or AL_E_IO. */
int key_store_revoke(struct db *db, const char *id, int64_t now);
/* Revokes every live key of an environment (it is being deleted): 0 or AL_E_IO. */
int key_store_revoke_environment(struct db *db, const char *environment_id, int64_t now);
/* Calls fn for every key, oldest first; a non-zero return stops and is returned. */
int key_store_list(struct db *db, int (*fn)(void *arg, const struct key_row *k), void *arg);

/* How many live keys of a kind ("server" or "environment"): 0 or AL_E_IO. */
int key_store_count_live(struct db *db, const char *kind, int64_t *out);

#endif
