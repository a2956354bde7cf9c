/* Credential resolution and key issuance; see auth.h and docs/server/auth.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "err.h"
#include "key_store.h"
#include "log.h"
#include "oidc.h"
#include "policy.h"
#include "routes.h"
#include "server.h"
#include "session_store.h"
#include "util.h"
#include "work_store.h"
#include "xalloc.h"

const char *
auth_bearer(const char *authorization)
{
	if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
		return NULL;
	const char *a = authorization + 7;
	while (*a == ' ')
		a++;
	return *a ? a : NULL;
}

static const char *
credential_of(const struct http_request *req)
{
	const char *k = http_request_header(req, "x-api-key");
	if (k && *k)
		return k;
	return auth_bearer(http_request_header(req, "authorization"));
}

static const char *
form_of(const char *cred)
{
	if (strncmp(cred, KEY_PREFIX_SERVER, strlen(KEY_PREFIX_SERVER)) == 0)
		return "server key";
	if (strncmp(cred, KEY_PREFIX_ENV, strlen(KEY_PREFIX_ENV)) == 0)
		return "environment key";
	if (strncmp(cred, TOKEN_PREFIX_SESSION, strlen(TOKEN_PREFIX_SESSION)) == 0)
		return "sessions token";
	return "unknown form";
}

const char *
auth_kind_phrase(enum principal_kind kind)
{
	switch (kind) {
	case PRINCIPAL_API_KEY:
		return "a server API key";
	case PRINCIPAL_ENV_KEY:
		return "an environment key";
	case PRINCIPAL_SESSION_TOKEN:
		return "a sessions token";
	case PRINCIPAL_USER:
		return "a user token";
	default:
		return "this credential";
	}
}

void
auth_principal_reset(struct principal *who)
{
	oidc_user_reset(&who->user);
	memset(who, 0, sizeof(*who));
}

enum user_role
auth_user_role(struct server *srv, const struct oidc_user *u)
{
	if (srv->policy == NULL)
		return ROLE_USER;
	struct policy_principal pp = {.sub = u->sub,
	                              .email = u->email_verified ? u->email : NULL,
	                              .groups = (const char *const *)u->groups,
	                              .n_groups = u->ngroups};
	switch (policy_role(srv->policy, &pp)) {
	case POLICY_ROLE_ADMIN:
		return ROLE_ADMIN;
	case POLICY_ROLE_DEVELOPER:
		return ROLE_DEVELOPER;
	case POLICY_ROLE_USER:
		return ROLE_USER;
	default:
		return ROLE_NONE;
	}
}

/* A bearer JWT from the OpenID provider: a user, whose role the policy file's `roles`
 * give by group (`user` without a policy file; docs/server/identity.md). */
static int
resolve_user(struct server *srv, const char *token, struct principal *who, char *why, size_t whylen)
{
	char err[256] = "";
	int r = oidc_authenticate(srv->oidc, token, &who->user, err, sizeof err);
	if (r != 0) {
		if (why != NULL)
			snprintf(why, whylen, "%s", err);
		return r;
	}
	who->kind = PRINCIPAL_USER;
	who->role = auth_user_role(srv, &who->user);
	snprintf(who->key_id, sizeof(who->key_id), "user:%s", who->user.sub);
	return 0;
}

int
auth_resolve(struct server *srv, const struct http_request *req, struct principal *who, char *why,
             size_t whylen)
{
	const char *cred = credential_of(req);
	char hash[65];
	int r;

	memset(who, 0, sizeof(*who));
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	who->cred = "none";
	who->fail = "no credential";
	if (cred == NULL)
		return AL_E_INVAL;
	if (srv->oidc != NULL && oidc_looks_like_jwt(cred)) {
		who->cred = "user token";
		who->fail = "user token refused";
		return resolve_user(srv, cred, who, why, whylen);
	}
	size_t clen = strlen(cred);
	who->cred = form_of(cred);
	who->fail = "too long";
	if (clen > 512)
		return AL_E_AUTH;
	who->fail = "";
	const char *envkey = srv->cfg.api_key;
	if (envkey && *envkey && strlen(envkey) == clen && CRYPTO_memcmp(envkey, cred, clen) == 0) {
		who->kind = PRINCIPAL_API_KEY;
		who->cred = "AIRLOCK_API_KEY";
		snprintf(who->key_id, sizeof(who->key_id), "env:AIRLOCK_API_KEY");
		return 0;
	}
	sha256_hex(cred, clen, hash);
	if (strncmp(cred, TOKEN_PREFIX_SESSION, strlen(TOKEN_PREFIX_SESSION)) == 0) {
		struct work_token_row w;
		if ((r = work_store_find_token(srv->db, hash, &w)) != 0) {
			who->fail = "no live work item has this token";
			return r == AL_E_NOTFOUND ? AL_E_AUTH : r;
		}
		who->kind = PRINCIPAL_SESSION_TOKEN;
		snprintf(who->work_id, sizeof(who->work_id), "%s", w.work_id);
		snprintf(who->key_id, sizeof(who->key_id), "%s", w.work_id);
		snprintf(who->environment_id, sizeof(who->environment_id), "%s", w.environment_id);
		snprintf(who->session_id, sizeof(who->session_id), "%s", w.session_id);
		return 0;
	}
	struct key_row k;
	if ((r = key_store_find(srv->db, hash, &k)) != 0) {
		who->fail = "no such key in this server's database";
		return r == AL_E_NOTFOUND ? AL_E_AUTH : r;
	}
	/* the id of a revoked key is not a secret, and tells the operator which one */
	snprintf(who->key_id, sizeof(who->key_id), "%s", k.id);
	if (k.revoked) {
		who->fail = "revoked key";
		return AL_E_AUTH;
	}
	if (strcmp(k.kind, "server") == 0) {
		who->kind = PRINCIPAL_API_KEY;
	} else {
		who->kind = PRINCIPAL_ENV_KEY;
		snprintf(who->environment_id, sizeof(who->environment_id), "%s", k.environment_id);
	}
	return 0;
}

int
auth_key_create(struct db *db, const char *kind, const char *environment_id, const char *name,
                char **key_id, char **plaintext)
{
	char hash[65];
	bool server = strcmp(kind, "server") == 0;
	int r = AL_E_IO;
	char *id = id_new(server ? "apikey_" : "envkey_");
	char *key = token_new(server ? KEY_PREFIX_SERVER : KEY_PREFIX_ENV);

	sha256_hex(key, strlen(key), hash);
	if ((r = key_store_insert(db, id, server ? "server" : "environment",
	                          server ? NULL : environment_id, hash, name, now_real_us())) != 0)
		goto out;
	*key_id = id;
	*plaintext = key;
	id = key = NULL;
	r = 0;
out:
	free(id);
	secret_free(key);
	return r;
}

int
auth_key_revoke(struct db *db, const char *key_id)
{
	return key_store_revoke(db, key_id, now_real_us());
}

bool
auth_can_environment(const struct principal *who, const char *environment_id)
{
	if (who->kind == PRINCIPAL_API_KEY)
		return true;
	if (who->kind == PRINCIPAL_USER)
		return who->role >= ROLE_DEVELOPER;
	return strcmp(who->environment_id, environment_id) == 0;
}

bool
auth_can_session(struct server *srv, const struct principal *who, const char *session_id,
                 const char *session_environment_id)
{
	switch (who->kind) {
	case PRINCIPAL_API_KEY:
		return true;
	case PRINCIPAL_USER:
		return who->role == ROLE_ADMIN ||
		       session_store_owned_by(srv->db, session_id, who->user.iss, who->user.sub);
	case PRINCIPAL_ENV_KEY:
		return session_environment_id &&
		       strcmp(who->environment_id, session_environment_id) == 0;
	case PRINCIPAL_SESSION_TOKEN:
		return strcmp(who->session_id, session_id) == 0;
	default:
		return false;
	}
}

/* The routes a role may use, beyond what the route table allows a server API key. One
 * row per (method, pattern); "*" matches any method. Admins are not listed: they may use
 * every route an API key may; routes listed for no role (keys, GET /v1/audit_events) are
 * theirs alone. */
static const struct {
	enum user_role min_role;
	const char *method;
	const char *pattern;
} user_routes[] = {
    /* users: run sessions, and read what they need to start one */
    {ROLE_USER, "*", "/v1/sessions"},
    {ROLE_USER, "*", "/v1/sessions/{}"},
    {ROLE_USER, "*", "/v1/sessions/{}/archive"},
    {ROLE_USER, "*", "/v1/sessions/{}/events"},
    {ROLE_USER, "*", "/v1/sessions/{}/events/stream"},
    {ROLE_USER, "GET", "/v1/sessions/{}/resources"},
    {ROLE_USER, "GET", "/v1/sessions/{}/resources/{}"},
    {ROLE_USER, "GET", "/v1/agents"},
    {ROLE_USER, "GET", "/v1/agents/{}"},
    {ROLE_USER, "GET", "/v1/agents/{}/versions"},
    {ROLE_USER, "GET", "/v1/environments"},
    {ROLE_USER, "GET", "/v1/environments/{}"},
    {ROLE_USER, "GET", "/v1/vaults"},
    {ROLE_USER, "GET", "/v1/vaults/{}"},
    /* users read the memory stores their own sessions mount (memory_stores.c checks
     * the attachment; anything else answers 404) */
    {ROLE_USER, "GET", "/v1/memory_stores/{}"},
    {ROLE_USER, "GET", "/v1/memory_stores/{}/memories"},
    {ROLE_USER, "GET", "/v1/memory_stores/{}/memories/{}"},
    {ROLE_USER, "GET", "/v1/memory_stores/{}/memory_versions"},
    {ROLE_USER, "GET", "/v1/memory_stores/{}/memory_versions/{}"},
    /* developers: agents, environments (not their keys), vaults, tunnels, work items,
     * memory stores */
    {ROLE_DEVELOPER, "*", "/v1/agents"},
    {ROLE_DEVELOPER, "*", "/v1/agents/{}"},
    {ROLE_DEVELOPER, "*", "/v1/agents/{}/archive"},
    {ROLE_DEVELOPER, "*", "/v1/environments"},
    {ROLE_DEVELOPER, "*", "/v1/environments/{}"},
    {ROLE_DEVELOPER, "*", "/v1/environments/{}/archive"},
    {ROLE_DEVELOPER, "*", "/v1/environments/{}/work/stats"},
    {ROLE_DEVELOPER, "*", "/v1/environments/{}/work/{}"},
    {ROLE_DEVELOPER, "*", "/v1/vaults"},
    {ROLE_DEVELOPER, "*", "/v1/vaults/{}"},
    {ROLE_DEVELOPER, "*", "/v1/vaults/{}/archive"},
    {ROLE_DEVELOPER, "*", "/v1/vaults/{}/credentials"},
    {ROLE_DEVELOPER, "*", "/v1/vaults/{}/credentials/{}"},
    {ROLE_DEVELOPER, "*", "/v1/vaults/{}/credentials/{}/archive"},
    {ROLE_DEVELOPER, "*", "/v1/vaults/{}/credentials/{}/mcp_oauth_validate"},
    {ROLE_DEVELOPER, "*", "/v1/sessions/{}/resources"},
    {ROLE_DEVELOPER, "*", "/v1/sessions/{}/resources/{}"},
    {ROLE_DEVELOPER, "*", "/v1/skills"},
    {ROLE_DEVELOPER, "*", "/v1/skills/{}"},
    {ROLE_DEVELOPER, "*", "/v1/skills/{}/versions"},
    {ROLE_DEVELOPER, "*", "/v1/skills/{}/versions/{}"},
    {ROLE_DEVELOPER, "*", "/v1/skills/{}/versions/{}/content"},
    {ROLE_DEVELOPER, "*", "/v1/files"},
    {ROLE_DEVELOPER, "*", "/v1/files/{}"},
    {ROLE_DEVELOPER, "*", "/v1/files/{}/content"},
    {ROLE_DEVELOPER, "*", "/v1/memory_stores"},
    {ROLE_DEVELOPER, "*", "/v1/memory_stores/{}"},
    {ROLE_DEVELOPER, "*", "/v1/memory_stores/{}/archive"},
    {ROLE_DEVELOPER, "*", "/v1/memory_stores/{}/memories"},
    {ROLE_DEVELOPER, "*", "/v1/memory_stores/{}/memories/{}"},
    {ROLE_DEVELOPER, "*", "/v1/memory_stores/{}/memory_versions"},
    {ROLE_DEVELOPER, "*", "/v1/memory_stores/{}/memory_versions/{}"},
    {ROLE_DEVELOPER, "*", "/v1/memory_stores/{}/memory_versions/{}/redact"},
    {ROLE_DEVELOPER, "*", "/v1/tunnels"},
    {ROLE_DEVELOPER, "*", "/v1/tunnels/{}"},
    {ROLE_DEVELOPER, "*", "/v1/tunnels/{}/archive"},
    {ROLE_DEVELOPER, "*", "/v1/tunnels/{}/reveal_token"},
    {ROLE_DEVELOPER, "*", "/v1/tunnels/{}/rotate_token"},
    {ROLE_DEVELOPER, "*", "/v1/tunnels/{}/routes/{}/{*}"},
};

bool
auth_user_may(enum user_role role, const char *method, const char *pattern)
{
	if (role == ROLE_ADMIN)
		return true;
	if (role == ROLE_NONE)
		return false;
	for (size_t i = 0; i < sizeof(user_routes) / sizeof(user_routes[0]); i++) {
		if (role < user_routes[i].min_role || strcmp(user_routes[i].pattern, pattern) != 0)
			continue;
		if (strcmp(user_routes[i].method, "*") == 0 ||
		    strcmp(user_routes[i].method, method) == 0)
			return true;
	}
	return false;
}

const char *
auth_role_name(enum user_role role)
{
	return role == ROLE_ADMIN       ? "admin"
	       : role == ROLE_DEVELOPER ? "developer"
	       : role == ROLE_USER      ? "user"
	                                : "none";
}
