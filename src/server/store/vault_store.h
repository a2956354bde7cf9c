/* The vaults and vault_credentials tables. The only place with SQL on them
 * (docs/server/storage.md). Secrets arrive here sealed (vault_seal.c) and leave sealed;
 * documents never hold one. */
#ifndef AL_SERVER_VAULT_STORE_H
#define AL_SERVER_VAULT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "doc_store.h"

struct db;

/* The key a credential's mcp_server_url is stored and looked up under: the URL without
 * a trailing slash (heap string). */
char *vault_store_url_key(const char *url);

/* ---- vaults ---- */

/* The vault's document (new reference); *err: 0, AL_E_NOTFOUND or AL_E_IO. */
json_t *vault_store_get(struct db *db, const char *id, int *err);
/* Whether the vault exists and is not archived. */
bool vault_store_live(struct db *db, const char *id);
/* Adds a vault at the next list position, in one transaction. */
int vault_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at);
int vault_store_update(struct db *db, const char *id, const json_t *doc);
/* Archives the vault with its new document and, in the same transaction, every live
 * credential in it (their sealed secrets purged, their documents stamped). */
int vault_store_archive(struct db *db, const char *id, const json_t *doc, int64_t now);
/* Deletes the vault and its credentials, in one transaction. */
int vault_store_delete(struct db *db, const char *id);
/* A page of vaults (scope_id unused). */
int vault_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                     struct doc_page *out);

/* ---- credentials ---- */

struct vault_credential_new {
	const char *id;
	const char *vault_id;
	const char *url_key;   /* mcp_server_url without a trailing slash; "env:<name>" */
	const char *auth_type; /* NULL: static_bearer; or environment_variable */
	int64_t created_at;
	const unsigned char *secret; /* the sealed token */
	size_t secret_len;
	const json_t *doc;
};

/* The credential's document, only within vault_id; *err as vault_store_get. */
json_t *vault_store_credential_get(struct db *db, const char *vault_id, const char *id, int *err);
/* Adds a static_bearer credential, in one transaction that first checks the vault has
 * room: AL_E_CONFLICT when a live credential has the URL key (its id in dup, or dup ""
 * when the unique index caught a concurrent writer), AL_E_TOOBIG when the vault holds
 * max_live live credentials already, AL_E_IO. */
int vault_store_credential_insert(struct db *db, const struct vault_credential_new *c,
                                  int64_t max_live, char *dup, size_t dup_len);
/* Replaces a live credential's document and, when secret is not NULL, its sealed
 * token. 0, or AL_E_IO (also when it is gone or archived). */
int vault_store_credential_update(struct db *db, const char *vault_id, const char *id,
                                  const json_t *doc, const unsigned char *secret,
                                  size_t secret_len);
/* Archives a credential with its new document and purges its sealed secret. */
int vault_store_credential_archive(struct db *db, const char *vault_id, const char *id,
                                   const json_t *doc, int64_t now);
int vault_store_credential_delete(struct db *db, const char *vault_id, const char *id);
/* A page of one vault's credentials (scope_id: the vault id). */
int vault_store_list_credentials(struct db *db, const char *vault_id, const struct doc_list *q,
                                 struct doc_page *out);
/* The sealed token of the live static_bearer credential with url_key in the live vault
 * vault_id: 0 (credential_id filled, *secret heap-allocated), AL_E_NOTFOUND or AL_E_IO. */
int vault_store_find_secret(struct db *db, const char *vault_id, const char *url_key,
                            char *credential_id, size_t id_len, unsigned char **secret,
                            size_t *secret_len);
/* The same for a credential of auth_type (environment_variable: url_key "env:<name>").
 * The MCP connector uses only the static_bearer form above. */
int vault_store_find_secret_typed(struct db *db, const char *vault_id, const char *url_key,
                                  const char *auth_type, char *credential_id, size_t id_len,
                                  unsigned char **secret, size_t *secret_len);

/* ---- the master key check at start (vault_seal.c) ---- */

/* How many credentials hold a sealed secret / one sealed under a key whose fingerprint
 * is not key_id (bytes 2..9 of the blob). -1 on error. */
int64_t vault_store_count_sealed(struct db *db);
int64_t vault_store_count_foreign(struct db *db, const unsigned char *key_id, size_t len);

#endif
