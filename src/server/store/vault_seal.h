/* Vault secrets at rest: the server master key, AES-256-GCM sealing of credential
 * tokens, and the bearer-token lookup of the MCP connector (vault_seal.c). The functions keep the
 * vaults_ prefix of the vault family. */
#ifndef AL_SERVER_VAULT_SEAL_H
#define AL_SERVER_VAULT_SEAL_H

#include <stddef.h>

#include <jansson.h>

struct server;

#define VAULTS_KEY_LEN 32
#define VAULTS_KEY_ID_LEN 8
#define VAULTS_MAX_TOKEN 16384 /* bytes of a static bearer token */

/* The master key and its public fingerprint (stored with every sealed secret so a
 * wrong key is named as such instead of failing as corruption). */
struct vaults_key {
	unsigned char key[VAULTS_KEY_LEN];
	unsigned char id[VAULTS_KEY_ID_LEN];
};

/* Loads the master key: from s->cfg.master_key_file (AIRLOCK_MASTER_KEY_FILE) when set, else from
 * <data_dir>/master.key, which is created (32 random bytes, base64url, mode 0600) when
 * absent. Refuses to start when the database holds secrets sealed under another key
 * or when the key file vanished while secrets exist. Needs s->db and s->cfg.data_dir. */
int vaults_init(struct server *s);
/* Wipes and frees the key. Safe to call twice. */
void vaults_shutdown(struct server *s);

/* Parses a key file's text: 64 hex digits or base64/base64url of 32 bytes, surrounding
 * whitespace ignored. Fills k (key and fingerprint). */
int vaults_key_parse(const char *text, size_t len, struct vaults_key *k);

/* AES-256-GCM with a fresh 96-bit nonce; aad binds the ciphertext to its owner (the
 * credential id). blob = version(1) | key id(8) | nonce(12) | ciphertext | tag(16),
 * heap-allocated. */
int vaults_seal(const struct vaults_key *k, const char *aad, const void *pt, size_t n,
                unsigned char **blob, size_t *blob_len);
/* Inverse of vaults_seal: a NUL-terminated plaintext the caller frees with
 * secret_free. AL_E_AUTH when the blob was sealed under another key, AL_E_INVAL when
 * it is malformed or fails authentication. */
int vaults_unseal(const struct vaults_key *k, const char *aad, const unsigned char *blob,
                  size_t blob_len, char **pt);

/* For the MCP connector: the decrypted token of the first live static_bearer
 * credential, searching the vaults in vault_ids order, whose mcp_server_url equals
 * mcp_server_url once a trailing slash is ignored on both sides. A credential or
 * vault that is archived or deleted never matches. AL_E_NOTFOUND when none does.
 * The caller wipes *token with secret_free. */
int vaults_bearer_for(struct server *s, const json_t *vault_ids, const char *mcp_server_url,
                      char **token);

#endif
