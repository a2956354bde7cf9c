/* /v1/vaults and /v1/vaults/{id}/credentials: vault and credential CRUD and the
 * bearer-token lookup for the MCP connector. Secrets are sealed by vault_seal.c and
 * stored by vault_store.c. Secrets are write-only: no response, log line or
 * stored document ever holds one. See docs/server/vaults.md. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_dl.h"

#include "api.h"
#include "audit.h"
#include "egress_policy.h"
#include "err.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "util.h"
#include "validate.h"
#include "vault_store.h"
#include "vaults.h"
#include "xalloc.h"

/* ---- validation ---- */

static bool
is_loopback_host(const char *host)
{
	struct in_addr a4;
	if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
		return true;
	return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

int
vaults_check_url(const char *url, const char *path, struct verr *e)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *user = NULL, *frag = NULL;
	size_t len = strlen(url);
	int r = AL_E_INVAL;
	if (len == 0 || len > VAULTS_MAX_URL) {
		r = verr_set(e, "%s: must be 1 to %d bytes", path, VAULTS_MAX_URL);
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f) {
			r = verr_set(e,
			             "%s: must be printable ASCII without spaces (encode "
			             "international names and spaces)",
			             path);
			goto out;
		}
	bool https = strncasecmp(url, "https://", 8) == 0;
	if (!https && strncasecmp(url, "http://", 7) != 0) {
		r = verr_set(e, "%s: must be an absolute https:// URL", path);
		goto out;
	}
	/* libcurl would read "https:///x" as host "x"; no server means that. */
	if (url[https ? 8 : 7] == '/') {
		r = verr_set(e, "%s: not a valid absolute URL (no host)", path);
		goto out;
	}
	if ((u = curl_url()) == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		r = verr_set(e, "%s: not a valid absolute URL", path);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		/* It would be returned in every response and sent in clear to logs of
		 * proxies; the token belongs in auth.token. */
		r = verr_set(e, "%s: must not contain user information (user:password@)", path);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
		r = verr_set(e, "%s: must not contain a fragment (#...)", path);
		goto out;
	}
	if (!https && !is_loopback_host(host)) {
		r = verr_set(e,
		             "%s: must use https (plain http is accepted only for loopback "
		             "hosts)",
		             path);
		goto out;
	}
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(frag);
	curl_url_cleanup(u);
	return r;
}

static size_t
utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* A string of 1..255 characters without NUL. */
static int
check_display_name(const json_t *v, const char *path, struct verr *e)
{
	if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)))
		return verr_set(e, "%s: must be a string", path);
	size_t n = utf8_chars(json_string_value(v));
	if (n < 1 || n > VAULTS_MAX_DISPLAY_NAME)
		return verr_set(e, "%s: must be 1 to %d characters", path, VAULTS_MAX_DISPLAY_NAME);
	return 0;
}

/* Tokens go into an Authorization header: visible ASCII only, so a token can never
 * split or add a header. The message never repeats the token. */
static int
check_token(const json_t *v, const char *path, struct verr *e)
{
	if (!json_is_string(v))
		return verr_set(e, "%s: must be a string", path);
	size_t n = json_string_length(v);
	const unsigned char *p = (const unsigned char *)json_string_value(v);
	if (n < 1 || n > VAULTS_MAX_TOKEN)
		return verr_set(e, "%s: must be 1 to %d bytes", path, VAULTS_MAX_TOKEN);
	for (size_t i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return verr_set(e,
			                "%s: must be visible ASCII characters (no spaces or "
			                "control characters)",
			                path);
	return 0;
}

/* auth.type values this server refuses, with the reason. */
static int
check_auth_type(const json_t *auth, const char **type, struct verr *e)
{
	const json_t *t = json_is_object(auth) ? json_object_get(auth, "type") : NULL;
	if (!json_is_object(auth))
		return verr_set(e, "auth: must be an object");
	if (!json_is_string(t))
		return verr_set(e, "auth.type: Field required ('static_bearer')");
	*type = json_string_value(t);
	if (strcmp(*type, "mcp_oauth") == 0)
		return verr_set(e, "auth.type: mcp_oauth credentials are not supported by a "
		                   "self-hosted server; store the token as a static_bearer "
		                   "credential");
	if (strcmp(*type, "environment_variable") == 0)
		return 0;
	if (strcmp(*type, "static_bearer") != 0)
		return verr_set(e, "auth.type: must be 'static_bearer' (also known: mcp_oauth, "
		                   "environment_variable)");
	return 0;
}

/* environment_variable (issue 14, docs/worker/egress.md "Secrets"): the sandbox sees a
 * placeholder under secret_name; the worker's proxy puts the value into requests to the
 * credential's hosts only. The value is write-only like a token. */
#define VAULTS_ENV_MAX_HOSTS 16

static int
check_secret_name(const json_t *v, struct verr *e)
{
	const char *n = json_string_value(v);
	size_t len = n ? strlen(n) : 0;
	bool ok = n && len >= 1 && len <= 128 && len == json_string_length(v) &&
	          !(n[0] >= '0' && n[0] <= '9');
	for (size_t i = 0; ok && i < len; i++)
		ok = (n[i] >= 'A' && n[i] <= 'Z') || (n[i] >= 'a' && n[i] <= 'z') ||
		     (n[i] >= '0' && n[i] <= '9') || n[i] == '_';
	if (!ok)
		return verr_set(e, "auth.secret_name: must be an environment variable name "
		                   "([A-Za-z_][A-Za-z0-9_]*, at most 128 characters)");
	if (strncmp(n, "ANTHROPIC_", 10) == 0 || strcmp(n, "PATH") == 0 || strcmp(n, "HOME") == 0 ||
	    strstr(n, "PROXY") != NULL || strstr(n, "proxy") != NULL)
		return verr_set(e, "auth.secret_name: %s is reserved in the sandbox", n);
	return 0;
}

/* networking {type: limited, allowed_hosts: [1..16 names, IPv4 or *. wildcards]} and
 * injection_location {header, body}; *nw and *loc get the normalised copies. */
static int
check_env_placement(const json_t *nwv, const json_t *locv, json_t **nw, json_t **loc,
                    struct verr *e)
{
	static const char *const nw_keys[] = {"type", "allowed_hosts", NULL};
	static const char *const loc_keys[] = {"header", "body", NULL};
	const json_t *hosts = json_object_get(nwv, "allowed_hosts"), *h;
	size_t i;
	char err[256];
	if (!json_is_object(nwv))
		return verr_set(e, "auth.networking: Field required ({\"type\": \"limited\", "
		                   "\"allowed_hosts\": [...]}: the hosts the secret may be sent "
		                   "to)");
	if (validate_only_keys(nwv, "auth.networking", nw_keys, e) != 0)
		return AL_E_INVAL;
	if (!json_is_string(json_object_get(nwv, "type")) ||
	    strcmp(json_string_value(json_object_get(nwv, "type")), "limited") != 0)
		return verr_set(e, "auth.networking.type: must be 'limited' (a secret goes to "
		                   "listed hosts only)");
	if (!json_is_array(hosts) || json_array_size(hosts) < 1 ||
	    json_array_size(hosts) > VAULTS_ENV_MAX_HOSTS)
		return verr_set(e, "auth.networking.allowed_hosts: must be a list of 1 to %d hosts",
		                VAULTS_ENV_MAX_HOSTS);
	json_t *norm = json_array();
	json_array_foreach(hosts, i, h)
	{
		struct egress_host p;
		if (!json_is_string(h) ||
		    egress_pattern_parse(json_string_value(h), false, &p, err, sizeof(err)) != 0) {
			json_decref(norm);
			return verr_set(e, "auth.networking.allowed_hosts[%zu]: %s", i,
			                json_is_string(h) ? err : "must be a string");
		}
		json_array_append_new(norm, json_string_nocheck(json_string_value(h)));
	}
	bool header = true, body = false;
	if (locv && !json_is_null(locv)) {
		if (!json_is_object(locv) ||
		    validate_only_keys(locv, "auth.injection_location", loc_keys, e) != 0) {
			json_decref(norm);
			return json_is_object(locv)
			           ? AL_E_INVAL
			           : verr_set(e, "auth.injection_location: must be "
			                         "an object");
		}
		const json_t *hv = json_object_get(locv, "header"),
		             *bv = json_object_get(locv, "body");
		if ((hv && !json_is_boolean(hv)) || (bv && !json_is_boolean(bv))) {
			json_decref(norm);
			return verr_set(e, "auth.injection_location: header and body are booleans");
		}
		header = hv ? json_is_true(hv) : false;
		body = bv ? json_is_true(bv) : false;
	}
	*nw = json_pack("{s:s, s:o}", "type", "limited", "allowed_hosts", norm);
	*loc = json_pack("{s:b, s:b}", "header", header, "body", body);
	return 0;
}

/* ---- storage ---- */

static bool
is_archived(const json_t *doc)
{
	return !json_is_null(json_object_get(doc, "archived_at"));
}

static void
set_times(json_t *doc, int64_t now, bool created, bool archived)
{
	if (created)
		json_object_set_new(doc, "created_at", api_time(now));
	json_object_set_new(doc, "updated_at", api_time(now));
	if (archived)
		json_object_set_new(doc, "archived_at", api_time(now));
}

/* Loads a vault for an operation; e says why not. */
static json_t *
vault_get(struct db *db, const char *vault_id, int *err, struct verr *e)
{
	json_t *v = vault_store_get(db, vault_id, err);
	if (v == NULL)
		verr_set(e, *err == AL_E_NOTFOUND ? "vault %s not found" : "cannot load vault %s",
		         vault_id);
	return v;
}

int
vaults_create(struct server *s, const char *display_name, const json_t *metadata, json_t **doc,
              struct verr *e)
{
	json_t *d = NULL, *dn = json_string(display_name ? display_name : "");
	char *id = NULL;
	int r;
	if (dn == NULL) {
		r = verr_set(e, "display_name: must be valid UTF-8");
		goto out;
	}
	if ((r = check_display_name(dn, "display_name", e)) != 0)
		goto out;
	id = id_new("vlt_");
	int64_t now = now_real_us();
	d = json_pack("{s:s, s:s, s:O, s:o}", "type", "vault", "id", id, "display_name", dn,
	              "metadata", metadata ? json_deep_copy(metadata) : json_object());
	set_times(d, now, true, false);
	json_object_set_new(d, "archived_at", json_null());
	if ((r = vault_store_insert(s->db, id, d, now)) != 0) {
		verr_set(e, "cannot store vault");
		goto out;
	}
	log_info("vault created", "vault_id", id);
	*doc = d;
	d = NULL;
	r = 0;
out:
	json_decref(d);
	json_decref(dn);
	free(id);
	return r;
}

/* A new credential of vault_id: the display name checked, its document (auth: the public
 * part, stolen), the sealed secret and the row, in one go; *d gets the document. 0, the
 * store's answer (AL_E_CONFLICT with dup, AL_E_TOOBIG, AL_E_IO: e not set), or
 * AL_E_INVAL / AL_E_INTERNAL with e set. */
static int
credential_insert(struct server *s, const char *vault_id, const char *id, const char *key,
                  json_t *auth, const json_t *secret, const json_t *display_name,
                  const json_t *metadata, json_t **d, char *dup, size_t dup_len, struct verr *e)
{
	unsigned char *blob = NULL;
	size_t blen = 0;
	int64_t now = now_real_us();
	dup[0] = '\0';
	if (display_name && !json_is_null(display_name) &&
	    check_display_name(display_name, "display_name", e) != 0) {
		json_decref(auth);
		return AL_E_INVAL;
	}
	if (s->vault_key == NULL) {
		json_decref(auth);
		verr_set(e, "vault master key not loaded");
		return AL_E_INTERNAL;
	}
	*d = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "type", "vault_credential", "id", id,
	               "vault_id", vault_id, "display_name",
	               display_name ? json_deep_copy(display_name) : json_null(), "metadata",
	               metadata ? json_deep_copy(metadata) : json_object(), "auth", auth);
	set_times(*d, now, true, false);
	json_object_set_new(*d, "archived_at", json_null());
	if (vaults_seal(s->vault_key, id, json_string_value(secret), json_string_length(secret),
	                &blob, &blen) != 0) {
		verr_set(e, "cannot seal credential");
		return AL_E_INTERNAL;
	}
	struct vault_credential_new cn = {.id = id,
	                                  .vault_id = vault_id,
	                                  .url_key = key,
	                                  .auth_type =
	                                      json_string_value(json_object_get(auth, "type")),
	                                  .created_at = now,
	                                  .secret = blob,
	                                  .secret_len = blen,
	                                  .doc = *d};
	int r = vault_store_credential_insert(s->db, &cn, VAULTS_MAX_CREDENTIALS, dup, dup_len);
	free(blob);
	return r;
}

/* The environment_variable form of vaults_credential_create (the vault is live). Stored
 * under the key "env:<secret_name>" (mcp_server_url keys are https URLs: no clash), so a
 * vault holds one live credential per name. */
static int
env_credential_create(struct server *s, const char *vault_id, const json_t *auth,
                      const json_t *display_name, const json_t *metadata, json_t **doc,
                      struct verr *e)
{
	static const char *const keys[] = {"type",       "secret_name",        "secret_value",
	                                   "networking", "injection_location", NULL};
	const json_t *name = json_object_get(auth, "secret_name"),
	             *val = json_object_get(auth, "secret_value");
	json_t *nw = NULL, *loc = NULL, *d = NULL;
	char *id = NULL, *key = NULL, dup[80];
	int r;
	if ((r = validate_only_keys(auth, "auth", keys, e)) != 0)
		goto out;
	if (name == NULL) {
		r = verr_set(e, "auth.secret_name: Field required");
		goto out;
	}
	if (val == NULL) {
		r = verr_set(e, "auth.secret_value: Field required");
		goto out;
	}
	if ((r = check_secret_name(name, e)) != 0 ||
	    (r = check_token(val, "auth.secret_value", e)) != 0 ||
	    (r = check_env_placement(json_object_get(auth, "networking"),
	                             json_object_get(auth, "injection_location"), &nw, &loc, e)) !=
	        0)
		goto out;
	key = xasprintf("env:%s", json_string_value(name));
	id = id_new("vcrd_");
	r = credential_insert(s, vault_id, id, key,
	                      json_pack("{s:s, s:s, s:O, s:O}", "type", "environment_variable",
	                                "secret_name", json_string_value(name), "networking", nw,
	                                "injection_location", loc),
	                      val, display_name, metadata, &d, dup, sizeof(dup), e);
	if (r == AL_E_INVAL || r == AL_E_INTERNAL)
		; /* e says it */
	else if (r == AL_E_TOOBIG)
		verr_set(e, "vault %s already holds %d live credentials, the maximum", vault_id,
		         VAULTS_MAX_CREDENTIALS);
	else if (r == AL_E_CONFLICT)
		verr_set(e, "vault %s already has a live credential for secret_name %s%s%s",
		         vault_id, json_string_value(name), dup[0] ? ": " : "", dup);
	else if (r != 0)
		verr_set(e, "cannot store credential in vault %s", vault_id);
	if (r != 0)
		goto out;
	log_info("vault credential created", "vault_id", vault_id, "credential_id", id);
	*doc = d;
	d = NULL;
out:
	json_decref(nw);
	json_decref(loc);
	json_decref(d);
	free(key);
	free(id);
	return r;
}

int
vaults_env_secrets(struct server *s, const json_t *vault_ids, json_t **out)
{
	json_t *res = json_array();
	int r = 0;
	if (s->vault_key == NULL) {
		json_decref(res);
		return AL_E_INTERNAL;
	}
	for (size_t i = 0; i < json_array_size(vault_ids) && r == 0; i++) {
		const char *vid = json_string_value(json_array_get(vault_ids, i));
		struct doc_list q = {.limit = 100, .created_lo = 0, .created_hi = INT64_MAX};
		struct doc_page pg;
		json_t *c;
		size_t j;
		if (vid == NULL || !vault_store_live(s->db, vid))
			continue;
		if ((r = vault_store_list_credentials(s->db, vid, &q, &pg)) != 0) {
			doc_page_free(&pg);
			break;
		}
		json_array_foreach(pg.data, j, c)
		{
			const json_t *a = json_object_get(c, "auth");
			const char *type = json_string_value(json_object_get(a, "type"));
			const char *name = json_string_value(json_object_get(a, "secret_name"));
			if (type == NULL || strcmp(type, "environment_variable") != 0 ||
			    name == NULL || !json_is_null(json_object_get(c, "archived_at")))
				continue;
			char *key = xasprintf("env:%s", name), cid[80];
			unsigned char *blob = NULL;
			size_t blen = 0;
			char *value = NULL;
			int fr =
			    vault_store_find_secret_typed(s->db, vid, key, "environment_variable",
			                                  cid, sizeof(cid), &blob, &blen);
			free(key);
			if (fr == AL_E_NOTFOUND)
				continue;
			if (fr == 0)
				fr = vaults_unseal(s->vault_key, cid, blob, blen, &value);
			free(blob);
			if (fr != 0) {
				log_error("vault credential cannot be unsealed", "credential_id",
				          cid);
				r = AL_E_IO;
				break;
			}
			const json_t *nw = json_object_get(a, "networking"),
			             *loc = json_object_get(a, "injection_location");
			json_array_append_new(
			    res, json_pack("{s:s, s:s, s:s, s:O, s:b, s:b}", "credential_id", cid,
			                   "secret_name", name, "value", value, "allowed_hosts",
			                   json_object_get(nw, "allowed_hosts"), "header",
			                   json_is_true(json_object_get(loc, "header")), "body",
			                   json_is_true(json_object_get(loc, "body"))));
			secret_free(value);
		}
		doc_page_free(&pg);
	}
	if (r != 0) {
		json_decref(res);
		return r;
	}
	*out = res;
	return 0;
}

int
vaults_credential_create(struct server *s, const char *vault_id, const json_t *auth,
                         const json_t *display_name, const json_t *metadata, json_t **doc,
                         struct verr *e)
{
	static const char *const bearer_keys[] = {"type", "mcp_server_url", "token", NULL};
	struct db *db = s->db;
	json_t *vault = NULL, *d = NULL;
	const char *type = NULL, *url;
	const json_t *u, *tok;
	char *id = NULL, *key = NULL, dup[80];
	int r;
	if ((vault = vault_get(db, vault_id, &r, e)) == NULL)
		goto out;
	if (is_archived(vault)) {
		r = verr_set(e, "vault %s is archived; archived vaults are read-only", vault_id);
		goto out;
	}
	if ((r = check_auth_type(auth, &type, e)) != 0)
		goto out;
	if (strcmp(type, "environment_variable") == 0) {
		r = env_credential_create(s, vault_id, auth, display_name, metadata, doc, e);
		goto out;
	}
	if ((r = validate_only_keys(auth, "auth", bearer_keys, e)) != 0)
		goto out;
	u = json_object_get(auth, "mcp_server_url");
	tok = json_object_get(auth, "token");
	if (!json_is_string(u)) {
		r = verr_set(e, "auth.mcp_server_url: Field required (an https URL)");
		goto out;
	}
	if (tok == NULL) {
		r = verr_set(e, "auth.token: Field required");
		goto out;
	}
	url = json_string_value(u);
	if ((r = vaults_check_url(url, "auth.mcp_server_url", e)) != 0 ||
	    (r = check_token(tok, "auth.token", e)) != 0)
		goto out;
	key = vault_store_url_key(url);
	id = id_new("vcrd_");
	r = credential_insert(
	    s, vault_id, id, key,
	    json_pack("{s:s, s:s}", "type", "static_bearer", "mcp_server_url", url), tok,
	    display_name, metadata, &d, dup, sizeof(dup), e);
	if (r == AL_E_INVAL || r == AL_E_INTERNAL)
		goto out; /* e says it */
	if (r == AL_E_CONFLICT && dup[0]) {
		verr_set(e,
		         "vault %s already has a live credential for this mcp_server_url (%s); "
		         "archive or delete it first, or update its token",
		         vault_id, dup);
		goto out;
	}
	if (r == AL_E_TOOBIG) {
		r = verr_set(e, "vault %s already holds %d live credentials, the maximum", vault_id,
		             VAULTS_MAX_CREDENTIALS);
		goto out;
	}
	if (r != 0) {
		verr_set(e,
		         r == AL_E_CONFLICT ? "vault %s already has a live credential for this "
		                              "mcp_server_url"
		                            : "cannot store credential in vault %s",
		         vault_id);
		goto out;
	}
	log_info("vault credential created", "vault_id", vault_id, "credential_id", id);
	*doc = d;
	d = NULL;
out:
	json_decref(vault);
	json_decref(d);
	free(key);
	free(id);
	return r;
}

int
vaults_credential_archive(struct server *s, const char *vault_id, const char *credential_id,
                          json_t **doc, struct verr *e)
{
	json_t *vault = NULL, *d = NULL;
	int r;
	if ((vault = vault_get(s->db, vault_id, &r, e)) == NULL)
		goto out;
	if ((d = vault_store_credential_get(s->db, vault_id, credential_id, &r)) == NULL) {
		verr_set(e, "credential %s not found in vault %s", credential_id, vault_id);
		goto out;
	}
	if (!is_archived(d)) {
		int64_t now = now_real_us();
		set_times(d, now, false, true);
		/* The secret goes with the archive (the store purges it). */
		if ((r = vault_store_credential_archive(s->db, vault_id, credential_id, d, now)) !=
		    0) {
			verr_set(e, "cannot archive credential");
			goto out;
		}
		log_info("vault credential archived", "vault_id", vault_id, "credential_id",
		         credential_id);
	}
	*doc = d;
	d = NULL;
	r = 0;
out:
	json_decref(vault);
	json_decref(d);
	return r;
}

int
vaults_archive(struct server *s, const char *vault_id, json_t **doc, struct verr *e)
{
	struct db *db = s->db;
	json_t *d = NULL;
	int r;
	if ((d = vault_get(db, vault_id, &r, e)) == NULL)
		goto out;
	if (!is_archived(d)) {
		int64_t now = now_real_us();
		set_times(d, now, false, true);
		if (vault_store_archive(db, vault_id, d, now) != 0) {
			verr_set(e, "cannot archive vault");
			r = AL_E_IO;
			goto out;
		}
		log_info("vault archived", "vault_id", vault_id);
	}
	*doc = d;
	d = NULL;
	r = 0;
out:
	json_decref(d);
	return r;
}

/* ---- HTTP handlers ---- */

static void
reply_status(struct api_call *c, int r, const struct verr *e)
{
	switch (r) {
	case AL_E_INVAL:
		api_reply_error(c, 400, "invalid_request_error", NULL, "%s", e->msg);
		break;
	case AL_E_NOTFOUND:
		api_reply_error(c, 404, "not_found_error", NULL, "%s", e->msg);
		break;
	case AL_E_CONFLICT:
		api_reply_error(c, 409, "invalid_request_error", NULL, "%s", e->msg);
		break;
	default:
		api_reply_err(c, r, e->msg[0] ? e->msg : "vault storage error");
		break;
	}
}

/* metadata of the body: absent or null → NULL (keep / empty); else a validated copy
 * (a patch over base when base is given). Replies itself on failure. */
static int
body_metadata(struct api_call *c, json_t *base, json_t **out)
{
	json_t *v = json_object_get(c->body, "metadata");
	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	return api_metadata(c, v, base, base != NULL, out);
}

static void
create_vault(struct api_call *c)
{
	static const char *const allowed[] = {"display_name", "metadata", NULL};
	struct verr e = {{0}};
	json_t *meta = NULL, *doc = NULL, *dn;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	dn = json_object_get(c->body, "display_name");
	if (dn == NULL || json_is_null(dn)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "display_name: Field required");
		return;
	}
	if (check_display_name(dn, "display_name", &e) != 0) {
		validate_reply(c, &e);
		return;
	}
	if (body_metadata(c, NULL, &meta) != 0)
		return;
	if ((r = vaults_create(c->srv, json_string_value(dn), meta, &doc, &e)) != 0)
		reply_status(c, r, &e);
	else
		api_reply_json(c, 200, doc);
	json_decref(meta);
}

static void
get_vault(struct api_call *c)
{
	struct verr e = {{0}};
	int r;
	json_t *doc = vault_get(c->srv->db, c->params[0], &r, &e);
	if (doc == NULL)
		reply_status(c, r, &e);
	else
		api_reply_json(c, 200, doc);
}

static void
update_vault(struct api_call *c)
{
	static const char *const allowed[] = {"display_name", "metadata", NULL};
	const char *id = c->params[0];
	struct verr e = {{0}};
	json_t *cur = NULL, *doc = NULL, *meta = NULL, *dn;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if ((cur = vault_get(c->srv->db, id, &r, &e)) == NULL) {
		reply_status(c, r, &e);
		return;
	}
	if (is_archived(cur)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "vault %s is archived; archived vaults are read-only", id);
		goto out;
	}
	doc = json_deep_copy(cur);
	/* display_name is required on a vault: null means "leave it". */
	dn = json_object_get(c->body, "display_name");
	if (dn && !json_is_null(dn)) {
		if (check_display_name(dn, "display_name", &e) != 0) {
			validate_reply(c, &e);
			goto out;
		}
		json_object_set(doc, "display_name", dn);
	}
	if (body_metadata(c, json_object_get(cur, "metadata"), &meta) != 0)
		goto out;
	if (meta)
		json_object_set(doc, "metadata", meta);
	if (!json_equal(doc, cur)) {
		int64_t now = now_real_us();
		set_times(doc, now, false, false);
		if ((r = vault_store_update(c->srv->db, id, doc)) != 0) {
			api_reply_err(c, r, "cannot store vault");
			goto out;
		}
	}
	api_reply_json(c, 200, doc);
	doc = NULL;
out:
	json_decref(cur);
	json_decref(doc);
	json_decref(meta);
}

static void
archive_vault(struct api_call *c)
{
	struct verr e = {{0}};
	json_t *doc = NULL;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((r = vaults_archive(c->srv, c->params[0], &doc, &e)) != 0) {
		reply_status(c, r, &e);
		return;
	}
	audit_api(c, "vault.archive", NULL, "ok", json_pack("{s:s}", "vault_id", c->params[0]));
	api_reply_json(c, 200, doc);
}

static void
delete_vault(struct api_call *c)
{
	const char *id = c->params[0];
	struct db *db = c->srv->db;
	struct verr e = {{0}};
	json_t *doc;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((doc = vault_get(db, id, &r, &e)) == NULL) {
		reply_status(c, r, &e);
		return;
	}
	json_decref(doc);
	/* Sessions may still name the vault in vault_ids: that is how access is revoked
	 * (the connector finds no credential any more). */
	if (vault_store_delete(db, id) != 0) {
		api_reply_err(c, AL_E_IO, "cannot delete vault");
		return;
	}
	log_info("vault deleted", "vault_id", id);
	audit_api(c, "vault.delete", NULL, "ok", json_pack("{s:s}", "vault_id", id));
	api_reply_json(c, 200, json_pack("{s:s, s:s}", "id", id, "type", "vault_deleted"));
}

static void
list_vaults(struct api_call *c)
{
	validate_list_docs(c, vault_store_list, NULL);
}

static void
create_credential(struct api_call *c)
{
	static const char *const allowed[] = {"auth", "display_name", "metadata", NULL};
	struct verr e = {{0}};
	json_t *meta = NULL, *doc = NULL, *auth;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if ((auth = json_object_get(c->body, "auth")) == NULL) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "auth: Field required");
		return;
	}
	if (body_metadata(c, NULL, &meta) != 0)
		return;
	if ((r = vaults_credential_create(c->srv, c->params[0], auth,
	                                  json_object_get(c->body, "display_name"), meta, &doc,
	                                  &e)) != 0)
		reply_status(c, r, &e);
	else {
		audit_api(c, "vault.credential.create", NULL, "ok",
		          json_pack("{s:s, s:O?}", "vault_id", c->params[0], "credential_id",
		                    json_object_get(doc, "id")));
		api_reply_json(c, 200, doc);
	}
	json_decref(meta);
}

/* Loads vault and credential for a credential route; replies 404 itself. */
static json_t *
cred_for_route(struct api_call *c, json_t **vault)
{
	struct verr e = {{0}};
	json_t *d;
	int r;
	*vault = NULL;
	if ((*vault = vault_get(c->srv->db, c->params[0], &r, &e)) == NULL) {
		reply_status(c, r, &e);
		return NULL;
	}
	if ((d = vault_store_credential_get(c->srv->db, c->params[0], c->params[1], &r)) == NULL) {
		json_decref(*vault);
		*vault = NULL;
		if (r == AL_E_NOTFOUND)
			api_reply_error(c, 404, "not_found_error", NULL,
			                "credential %s not found in vault %s", c->params[1],
			                c->params[0]);
		else
			api_reply_err(c, r, "cannot load credential");
	}
	return d;
}

static void
get_credential(struct api_call *c)
{
	json_t *vault, *d = cred_for_route(c, &vault);
	json_decref(vault);
	if (d)
		api_reply_json(c, 200, d);
}

static void
list_credentials(struct api_call *c)
{
	struct verr e = {{0}};
	int r;
	json_t *vault = vault_get(c->srv->db, c->params[0], &r, &e);
	if (vault == NULL) {
		reply_status(c, r, &e);
		return;
	}
	json_decref(vault);
	validate_list_docs(c, vault_store_list_credentials, c->params[0]);
}

/* auth of an update: {type (must match), token?}. *tok is the new token or NULL. */
static int
update_auth(const json_t *auth, const json_t *cur_auth, const json_t **tok, json_t *doc_auth,
            struct verr *e)
{
	static const char *const keys[] = {"type", "token", NULL};
	static const char *const env_keys[] = {"type",       "secret_name",        "secret_value",
	                                       "networking", "injection_location", NULL};
	const char *cur_type = json_string_value(json_object_get(cur_auth, "type"));
	const json_t *t = json_object_get(auth, "type");
	*tok = NULL;
	if (!json_is_object(auth))
		return verr_set(e, "auth: must be an object");
	if (!json_is_string(t))
		return verr_set(e, "auth.type: Field required ('%s')", cur_type ? cur_type : "?");
	if (cur_type == NULL || strcmp(json_string_value(t), cur_type) != 0)
		return verr_set(e,
		                "auth.type: a credential's type cannot change (this one is "
		                "'%s')",
		                cur_type ? cur_type : "?");
	if (strcmp(cur_type, "environment_variable") == 0) {
		const json_t *n = json_object_get(auth, "secret_name"),
		             *v = json_object_get(auth, "secret_value");
		json_t *nw = NULL, *loc = NULL;
		if (validate_only_keys(auth, "auth", env_keys, e) != 0)
			return AL_E_INVAL;
		if (n && !json_equal(n, json_object_get(cur_auth, "secret_name")))
			return verr_set(e,
			                "auth.secret_name: immutable; archive this credential and "
			                "create a new one");
		if (v && !json_is_null(v)) {
			if (check_token(v, "auth.secret_value", e) != 0)
				return AL_E_INVAL;
			*tok = v;
		}
		/* omitted fields keep their value */
		const json_t *nwv = json_object_get(auth, "networking"),
		             *locv = json_object_get(auth, "injection_location");
		if (check_env_placement(nwv ? nwv : json_object_get(cur_auth, "networking"),
		                        locv ? locv
		                             : json_object_get(cur_auth, "injection_location"),
		                        &nw, &loc, e) != 0)
			return AL_E_INVAL;
		json_object_set_new(doc_auth, "networking", nw);
		json_object_set_new(doc_auth, "injection_location", loc);
		return 0;
	}
	if (json_object_get(auth, "mcp_server_url"))
		return verr_set(e, "auth.mcp_server_url: immutable; archive this credential and "
		                   "create a new one");
	if (validate_only_keys(auth, "auth", keys, e) != 0)
		return AL_E_INVAL;
	const json_t *v = json_object_get(auth, "token");
	if (v && !json_is_null(v)) {
		if (check_token(v, "auth.token", e) != 0)
			return AL_E_INVAL;
		*tok = v;
	}
	return 0;
}

static void
update_credential(struct api_call *c)
{
	static const char *const allowed[] = {"auth", "display_name", "metadata", NULL};
	const char *vid = c->params[0], *cid = c->params[1];
	struct db *db = c->srv->db;
	struct verr e = {{0}};
	json_t *vault = NULL, *cur = NULL, *doc = NULL, *meta = NULL, *v;
	const json_t *tok = NULL;
	unsigned char *blob = NULL;
	size_t blen = 0;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if ((cur = cred_for_route(c, &vault)) == NULL)
		return;
	if (is_archived(vault) || is_archived(cur)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "%s %s is archived; archived %s are read-only",
		                is_archived(cur) ? "credential" : "vault",
		                is_archived(cur) ? cid : vid,
		                is_archived(cur) ? "credentials" : "vaults");
		goto out;
	}
	doc = json_deep_copy(cur);
	if ((v = json_object_get(c->body, "auth")) != NULL && !json_is_null(v) &&
	    update_auth(v, json_object_get(cur, "auth"), &tok, json_object_get(doc, "auth"), &e) !=
	        0) {
		validate_reply(c, &e);
		goto out;
	}
	if ((v = json_object_get(c->body, "display_name")) != NULL) {
		if (!json_is_null(v) && check_display_name(v, "display_name", &e) != 0) {
			validate_reply(c, &e);
			goto out;
		}
		json_object_set(doc, "display_name", v);
	}
	if (body_metadata(c, json_object_get(cur, "metadata"), &meta) != 0)
		goto out;
	if (meta)
		json_object_set(doc, "metadata", meta);
	if (tok == NULL && json_equal(doc, cur)) {
		api_reply_json(c, 200, cur);
		cur = NULL;
		goto out;
	}
	set_times(doc, now_real_us(), false, false);
	if (tok && vaults_seal(c->srv->vault_key, cid, json_string_value(tok),
	                       json_string_length(tok), &blob, &blen) != 0) {
		api_reply_err(c, AL_E_INTERNAL, "cannot seal credential");
		goto out;
	}
	r = vault_store_credential_update(db, vid, cid, doc, blob, blen);
	if (r != 0) {
		api_reply_err(c, r, "cannot store credential");
		goto out;
	}
	if (tok)
		log_info("vault credential token replaced", "vault_id", vid, "credential_id", cid);
	audit_api(c, "vault.credential.update", NULL, "ok",
	          json_pack("{s:s, s:s, s:b}", "vault_id", vid, "credential_id", cid,
	                    "secret_replaced", tok != NULL));
	api_reply_json(c, 200, doc);
	doc = NULL;
out:
	json_decref(vault);
	json_decref(cur);
	json_decref(doc);
	json_decref(meta);
	free(blob);
}

static void
archive_credential(struct api_call *c)
{
	struct verr e = {{0}};
	json_t *doc = NULL;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((r = vaults_credential_archive(c->srv, c->params[0], c->params[1], &doc, &e)) != 0) {
		reply_status(c, r, &e);
		return;
	}
	audit_api(c, "vault.credential.archive", NULL, "ok",
	          json_pack("{s:s, s:s}", "vault_id", c->params[0], "credential_id", c->params[1]));
	api_reply_json(c, 200, doc);
}

static void
delete_credential(struct api_call *c)
{
	json_t *vault, *d;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((d = cred_for_route(c, &vault)) == NULL)
		return;
	json_decref(vault);
	json_decref(d);
	if ((r = vault_store_credential_delete(c->srv->db, c->params[0], c->params[1])) != 0) {
		api_reply_err(c, r, "cannot delete credential");
		return;
	}
	log_info("vault credential deleted", "vault_id", c->params[0], "credential_id",
	         c->params[1]);
	audit_api(c, "vault.credential.delete", NULL, "ok",
	          json_pack("{s:s, s:s}", "vault_id", c->params[0], "credential_id", c->params[1]));
	api_reply_json(
	    c, 200,
	    json_pack("{s:s, s:s}", "id", c->params[1], "type", "vault_credential_deleted"));
}

/* Only mcp_oauth credentials can be validated, and this server stores none. */
static void
validate_credential(struct api_call *c)
{
	json_t *vault, *d;
	if ((d = cred_for_route(c, &vault)) == NULL)
		return;
	json_decref(vault);
	json_decref(d);
	api_reply_error(c, 400, "invalid_request_error", NULL,
	                "credential %s is not an mcp_oauth credential; mcp_oauth credentials "
	                "are not supported by a self-hosted server",
	                c->params[1]);
}

const struct api_route vaults_routes[] = {
    {"POST", "/v1/vaults", CREDS_API, create_vault},
    {"GET", "/v1/vaults", CREDS_API, list_vaults},
    {"GET", "/v1/vaults/{}", CREDS_API, get_vault},
    {"POST", "/v1/vaults/{}", CREDS_API, update_vault},
    {"DELETE", "/v1/vaults/{}", CREDS_API, delete_vault},
    {"POST", "/v1/vaults/{}/archive", CREDS_API, archive_vault},
    {"POST", "/v1/vaults/{}/credentials", CREDS_API, create_credential},
    {"GET", "/v1/vaults/{}/credentials", CREDS_API, list_credentials},
    {"GET", "/v1/vaults/{}/credentials/{}", CREDS_API, get_credential},
    {"POST", "/v1/vaults/{}/credentials/{}", CREDS_API, update_credential},
    {"DELETE", "/v1/vaults/{}/credentials/{}", CREDS_API, delete_credential},
    {"POST", "/v1/vaults/{}/credentials/{}/archive", CREDS_API, archive_credential},
    {"POST", "/v1/vaults/{}/credentials/{}/mcp_oauth_validate", CREDS_API, validate_credential},
    {NULL, NULL, 0, NULL},
};
