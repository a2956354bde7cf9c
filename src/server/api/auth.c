/* Credential resolution and key issuance; see auth.h and docs/server/auth.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "err.h"
#include "key_store.h"
#include "log.h"
#include "routes.h"
#include "server.h"
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

int
auth_resolve(struct server *srv, const struct http_request *req, struct principal *who)
{
	const char *cred = credential_of(req);
	char hash[65];
	int r;

	memset(who, 0, sizeof(*who));
	if (cred == NULL)
		return AL_E_INVAL;
	size_t clen = strlen(cred);
	if (clen > 512)
		return AL_E_AUTH;
	const char *envkey = srv->cfg.api_key;
	if (envkey && *envkey && strlen(envkey) == clen && CRYPTO_memcmp(envkey, cred, clen) == 0) {
		who->kind = PRINCIPAL_API_KEY;
		snprintf(who->key_id, sizeof(who->key_id), "env:AIRLOCK_API_KEY");
		return 0;
	}
	sha256_hex(cred, clen, hash);
	if (strncmp(cred, TOKEN_PREFIX_SESSION, strlen(TOKEN_PREFIX_SESSION)) == 0) {
		struct work_token_row w;
		if ((r = work_store_find_token(srv->db, hash, &w)) != 0)
			return r == AL_E_NOTFOUND ? AL_E_AUTH : r;
		who->kind = PRINCIPAL_SESSION_TOKEN;
		snprintf(who->work_id, sizeof(who->work_id), "%s", w.work_id);
		snprintf(who->key_id, sizeof(who->key_id), "%s", w.work_id);
		snprintf(who->environment_id, sizeof(who->environment_id), "%s", w.environment_id);
		snprintf(who->session_id, sizeof(who->session_id), "%s", w.session_id);
		return 0;
	}
	struct key_row k;
	if ((r = key_store_find_live(srv->db, hash, &k)) != 0)
		return r == AL_E_NOTFOUND ? AL_E_AUTH : r;
	snprintf(who->key_id, sizeof(who->key_id), "%s", k.id);
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
	return strcmp(who->environment_id, environment_id) == 0;
}

bool
auth_can_session(const struct principal *who, const char *session_id,
                 const char *session_environment_id)
{
	switch (who->kind) {
	case PRINCIPAL_API_KEY:
		return true;
	case PRINCIPAL_ENV_KEY:
		return session_environment_id &&
		       strcmp(who->environment_id, session_environment_id) == 0;
	case PRINCIPAL_SESSION_TOKEN:
		return strcmp(who->session_id, session_id) == 0;
	default:
		return false;
	}
}
