/* Vaults and their credentials (/v1/vaults...): CRUD and the lookup the MCP connector
 * uses to find the bearer token for a server URL. Sealing is vault_seal.h. See
 * docs/server/vaults.md. */
#ifndef AL_SERVER_VAULTS_H
#define AL_SERVER_VAULTS_H

#include <stddef.h>

#include <jansson.h>

#include "validate.h"
#include "vault_seal.h"

struct server;

#define VAULTS_MAX_URL 2048         /* bytes of an mcp_server_url */
#define VAULTS_MAX_DISPLAY_NAME 255 /* characters */
#define VAULTS_MAX_CREDENTIALS 20   /* live credentials per vault */

/* Checks an mcp_server_url: absolute https URL (http only for loopback hosts), no
 * userinfo or fragment, printable ASCII, ≤VAULTS_MAX_URL bytes. */
int vaults_check_url(const char *url, const char *path, struct verr *e);

/* --- the operations behind the routes (also used by tests and admin tools) --- */

/* display_name 1..255 characters; metadata an already validated object or NULL. */
int vaults_create(struct server *s, const char *display_name, const json_t *metadata, json_t **doc,
                  struct verr *e);
/* auth as a client sends it; display_name NULL, JSON null or a string. Returns
 * AL_E_INVAL (e names the field), AL_E_NOTFOUND (no such vault), AL_E_CONFLICT (a live
 * credential of this vault already has the URL). doc never holds the secret. */
int vaults_credential_create(struct server *s, const char *vault_id, const json_t *auth,
                             const json_t *display_name, const json_t *metadata, json_t **doc,
                             struct verr *e);
/* Archiving is permanent and purges the sealed secret; a vault's archive archives
 * every credential in it. Archiving twice returns the archived resource. */
/* The live environment_variable credentials of the live vaults among vault_ids, with
 * their values (for the session's worker only: work.c): a new array of {credential_id,
 * secret_name, value, allowed_hosts, header, body}. Callers wipe the values. */
int vaults_env_secrets(struct server *s, const json_t *vault_ids, json_t **out);
int vaults_archive(struct server *s, const char *vault_id, json_t **doc, struct verr *e);
int vaults_credential_archive(struct server *s, const char *vault_id, const char *credential_id,
                              json_t **doc, struct verr *e);

#endif
