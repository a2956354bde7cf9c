/* Credentials: server API keys, environment keys and per-work-item sessions tokens.
 * Key material is stored as SHA-256 hashes only; the plaintext is shown once. */
#ifndef AL_SERVER_AUTH_H
#define AL_SERVER_AUTH_H

#include "api.h"
#include "db.h"
#include "http.h"

/* Prefixes are airlock's own: secret scanners report `sk-ant-` to Anthropic. */
#define KEY_PREFIX_SERVER "alk_srv_"
#define KEY_PREFIX_ENV "alk_env_"
#define TOKEN_PREFIX_SESSION "alk_req_"

struct server;

/* The token of an "Authorization: Bearer <token>" value (scheme case-insensitive,
 * spaces before the token skipped); NULL for another scheme, an empty token or NULL. */
const char *auth_bearer(const char *authorization);

/* Reads x-api-key or Authorization: Bearer and fills who (release it with
 * auth_principal_reset). A bearer JWT is a user's when OIDC is on. Returns 0, AL_E_AUTH
 * for a credential that matches nothing (or is revoked), AL_E_INVAL when none was sent;
 * for user tokens also AL_E_AGAIN (the IdP's keys are not loaded: 503), AL_E_NOTFOUND
 * (signed by a key we do not have yet: refresh the keys and ask again), AL_E_TOOBIG and
 * AL_E_PERM. why (may be NULL) gets the reason a user token was refused. */
int auth_resolve(struct server *srv, const struct http_request *req, struct principal *who,
                 char *why, size_t whylen);
void auth_principal_reset(struct principal *who);

/* Whether a signed-in user's role may use this route (a route open to server API keys;
 * pattern and method as in the route table). */
bool auth_user_may(enum user_role role, const char *method, const char *pattern);
const char *auth_role_name(enum user_role role); /* "admin", "developer", "user" */
/* What a refusal calls a credential of this kind: "an environment key", "a sessions
 * token", "a user token", "a server API key". */
const char *auth_kind_phrase(enum principal_kind kind);
/* A signed-in user's role under the policy file's `roles` (user without a policy). */
enum user_role auth_user_role(struct server *srv, const struct oidc_user *u);

/* Issues a key. kind "server" or "environment" (environment_id required then).
 * *plaintext is the only copy of the secret; *key_id names it for revocation. */
int auth_key_create(struct db *db, const char *kind, const char *environment_id, const char *name,
                    char **key_id, char **plaintext);
int auth_key_revoke(struct db *db, const char *key_id);

/* Whether the principal may act on this environment / session. Env keys and tokens
 * see only their own; the API key sees all. Callers answer 404 on false. */
bool auth_can_environment(const struct principal *who, const char *environment_id);
bool auth_can_session(struct server *srv, const struct principal *who, const char *session_id,
                      const char *session_environment_id);

#endif
