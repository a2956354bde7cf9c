/* Agent identity tokens (agent_identity.h). The kid of each key is its RFC 7638
 * thumbprint, so a key file carries its own name and a rotated key can never be confused
 * with the one before it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent_identity.h"
#include "err.h"
#include "jose.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

struct agent_identity {
	char *issuer;
	struct jose_key *key;      /* signs */
	struct jose_key *previous; /* published only; may be NULL */
	enum jose_alg alg;
	unsigned ttl_s;
};

/* The algorithm we sign with for a key: ES256, EdDSA, or RS256 for RSA keys. */
static enum jose_alg
sign_alg(const struct jose_key *k)
{
	unsigned a = jose_key_algs(k);
	if (a & JOSE_ES256)
		return JOSE_ES256;
	if (a & JOSE_EDDSA)
		return JOSE_EDDSA;
	return JOSE_RS256;
}

static int
load_key(const char *path, const char *what, struct jose_key **out, char *err, size_t errlen)
{
	struct stat st;
	char why[300];
	if (stat(path, &st) == 0 && (st.st_mode & 0077) != 0) {
		snprintf(err, errlen, "%s: %s is readable by others; chmod 600", what, path);
		return AL_E_PERM;
	}
	struct jose_key *tmp = NULL;
	int r = jose_key_load_pem(path, NULL, &tmp, why, sizeof why);
	if (r != 0) {
		snprintf(err, errlen, "%s: %s", what, why);
		return r;
	}
	/* reload with the thumbprint as kid (keys are immutable) */
	char *kid = jose_key_thumbprint(tmp);
	jose_key_free(tmp);
	r = jose_key_load_pem(path, kid, out, why, sizeof why);
	free(kid);
	if (r != 0)
		snprintf(err, errlen, "%s: %s", what, why);
	return r;
}

int
agent_identity_open(const struct agent_identity_config *cfg, struct agent_identity **out, char *err,
                    size_t errlen)
{
	int r = AL_E_INVAL;
	struct agent_identity *ai = xcalloc(1, sizeof(*ai));
	char *made = NULL;
	if (cfg->issuer == NULL ||
	    (strncmp(cfg->issuer, "https://", 8) != 0 && strncmp(cfg->issuer, "http://", 7) != 0)) {
		snprintf(err, errlen,
		         "identity.agent_identity.issuer: an https:// URL (receivers "
		         "fetch <issuer>/.well-known/jwks.json)");
		goto out;
	}
	size_t n = strlen(cfg->issuer);
	ai->issuer = xstrdup(cfg->issuer);
	if (n > 0 && ai->issuer[n - 1] == '/')
		ai->issuer[n - 1] = '\0'; /* "no path or trailing slash" */
	ai->ttl_s =
	    cfg->ttl_s && cfg->ttl_s < AGENT_IDENTITY_TTL_S ? cfg->ttl_s : AGENT_IDENTITY_TTL_S;

	const char *path = cfg->key_file;
	if (path == NULL || path[0] == '\0') {
		made = xasprintf("%s/agent-identity.pem", cfg->data_dir ? cfg->data_dir : ".");
		path = made;
		struct stat st;
		if (stat(path, &st) != 0 && errno == ENOENT) {
			struct jose_key *k = NULL;
			if ((r = jose_key_generate(JOSE_ES256, NULL, &k)) != 0 ||
			    (r = jose_key_write_pem(k, path)) != 0) {
				snprintf(err, errlen,
				         "identity.agent_identity: cannot create %s: %s", path,
				         al_strerror(r));
				jose_key_free(k);
				goto out;
			}
			jose_key_free(k);
			log_info("generated an agent identity signing key (P-256)", "path", path);
		}
	}
	if ((r = load_key(path, "identity.agent_identity.key_file", &ai->key, err, errlen)) != 0)
		goto out;
	if (cfg->previous_key_file && cfg->previous_key_file[0] &&
	    (r = load_key(cfg->previous_key_file, "identity.agent_identity.previous_key_file",
	                  &ai->previous, err, errlen)) != 0)
		goto out;
	ai->alg = sign_alg(ai->key);
	*out = ai;
	ai = NULL;
	r = 0;
out:
	free(made);
	agent_identity_free(ai);
	return r;
}

void
agent_identity_free(struct agent_identity *ai)
{
	if (ai == NULL)
		return;
	jose_key_free(ai->key);
	jose_key_free(ai->previous);
	free(ai->issuer);
	free(ai);
}

const char *
agent_identity_issuer(const struct agent_identity *ai)
{
	return ai->issuer;
}

char *
agent_identity_mint(struct agent_identity *ai, const struct agent_identity_claims *c)
{
	int64_t now = now_real_us() / 1000000;
	unsigned char rnd[16];
	random_bytes(rnd, sizeof rnd);
	char *jti = base64url_encode(rnd, sizeof rnd);
	json_t *who = json_object();
	if (c->user_sub)
		json_object_set_new(who, "sub", json_string(c->user_sub));
	if (c->user_iss)
		json_object_set_new(who, "iss", json_string(c->user_iss));
	if (c->user_email)
		json_object_set_new(who, "email", json_string(c->user_email));
	json_t *groups = json_array();
	for (size_t i = 0; i < c->ngroups; i++)
		json_array_append_new(groups, json_string(c->groups[i]));
	json_object_set_new(who, "groups", groups);
	json_t *claims = json_pack(
	    "{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:{s:s, s:s?, s:I}, s:s, s:o}", "iss", ai->issuer,
	    "aud", c->audience ? c->audience : "", "sub", c->agent_id ? c->agent_id : "", "iat",
	    (json_int_t)now, "nbf", (json_int_t)now, "exp", (json_int_t)(now + ai->ttl_s), "jti",
	    jti, "agent", "id", c->agent_id ? c->agent_id : "", "name", c->agent_name, "version",
	    (json_int_t)c->agent_version, "session_id", c->session_id ? c->session_id : "",
	    "on_behalf_of", who);
	free(jti);
	char *tok = NULL;
	int r = claims ? jose_sign(ai->key, ai->alg, claims, &tok) : AL_E_INVAL;
	json_decref(claims);
	if (r != 0) {
		log_error("cannot sign an agent identity token", "error", al_strerror(r));
		return NULL;
	}
	return tok;
}

json_t *
agent_identity_jwks(const struct agent_identity *ai)
{
	json_t *keys = json_array();
	json_t *cur = jose_key_public_jwk(ai->key);
	if (cur) {
		json_object_set_new(cur, "alg", json_string(jose_alg_name(ai->alg)));
		json_array_append_new(keys, cur);
	}
	if (ai->previous) {
		json_t *prev = jose_key_public_jwk(ai->previous);
		if (prev) {
			json_object_set_new(prev, "alg",
			                    json_string(jose_alg_name(sign_alg(ai->previous))));
			json_array_append_new(keys, prev);
		}
	}
	return json_pack("{s:o}", "keys", keys);
}

json_t *
agent_identity_discovery(const struct agent_identity *ai)
{
	char *uri = xasprintf("%s/.well-known/jwks.json", ai->issuer);
	json_t *d = json_pack("{s:s, s:s, s:[s]}", "issuer", ai->issuer, "jwks_uri", uri,
	                      "id_token_signing_alg_values_supported", jose_alg_name(ai->alg));
	free(uri);
	return d;
}

char *
agent_identity_sign(struct agent_identity *ai, const json_t *payload)
{
	char *tok = NULL;
	return jose_sign(ai->key, ai->alg, payload, &tok) == 0 ? tok : NULL;
}
