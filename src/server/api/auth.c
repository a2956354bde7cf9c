/* Credential resolution and key issuance; see auth.h and docs/server/auth.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "err.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "util.h"
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
	sqlite3_stmt *st = NULL;
	int r = AL_E_AUTH;

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
		/* A sessions token lives exactly as long as its work item is not stopped. */
		if (db_prepare(srv->db,
		               "SELECT w.id, w.environment_id, w.session_id FROM work w "
		               "WHERE w.token_hash = ? AND w.state != 'stopped'",
		               &st) != 0)
			return AL_E_IO;
		db_bind_text(st, 1, hash);
		if (sqlite3_step(st) == SQLITE_ROW) {
			who->kind = PRINCIPAL_SESSION_TOKEN;
			snprintf(who->work_id, sizeof(who->work_id), "%s", db_col_text(st, 0));
			snprintf(who->key_id, sizeof(who->key_id), "%s", db_col_text(st, 0));
			snprintf(who->environment_id, sizeof(who->environment_id), "%s",
			         db_col_text(st, 1));
			snprintf(who->session_id, sizeof(who->session_id), "%s",
			         db_col_text(st, 2) ? db_col_text(st, 2) : "");
			r = 0;
		}
		goto out;
	}
	if (db_prepare(srv->db,
	               "SELECT id, kind, environment_id FROM api_keys "
	               "WHERE hash = ? AND revoked_at IS NULL",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, hash);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *kind = db_col_text(st, 1);
		snprintf(who->key_id, sizeof(who->key_id), "%s", db_col_text(st, 0));
		if (strcmp(kind, "server") == 0) {
			who->kind = PRINCIPAL_API_KEY;
		} else {
			who->kind = PRINCIPAL_ENV_KEY;
			snprintf(who->environment_id, sizeof(who->environment_id), "%s",
			         db_col_text(st, 2) ? db_col_text(st, 2) : "");
		}
		r = 0;
	}
out:
	sqlite3_finalize(st);
	return r;
}

int
auth_key_create(struct db *db, const char *kind, const char *environment_id, const char *name,
                char **key_id, char **plaintext)
{
	char hash[65];
	sqlite3_stmt *st = NULL;
	bool server = strcmp(kind, "server") == 0;
	int r = AL_E_IO;
	char *id = id_new(server ? "apikey_" : "envkey_");
	char *key = token_new(server ? KEY_PREFIX_SERVER : KEY_PREFIX_ENV);

	sha256_hex(key, strlen(key), hash);
	if (db_prepare(db,
	               "INSERT INTO api_keys(id, kind, environment_id, hash, name, created_at) "
	               "VALUES (?, ?, ?, ?, ?, ?)",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, id);
	db_bind_text(st, 2, server ? "server" : "environment");
	db_bind_text(st, 3, server ? NULL : environment_id);
	db_bind_text(st, 4, hash);
	db_bind_text(st, 5, name);
	sqlite3_bind_int64(st, 6, now_real_us());
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	*key_id = id;
	*plaintext = key;
	id = key = NULL;
	r = 0;
out:
	sqlite3_finalize(st);
	free(id);
	secret_free(key);
	return r;
}

int
auth_key_revoke(struct db *db, const char *key_id)
{
	sqlite3_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
	               &st) != 0)
		return AL_E_IO;
	sqlite3_bind_int64(st, 1, now_real_us());
	db_bind_text(st, 2, key_id);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = sqlite3_changes(db->h) == 1 ? 0 : AL_E_NOTFOUND;
	sqlite3_finalize(st);
	return r;
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
