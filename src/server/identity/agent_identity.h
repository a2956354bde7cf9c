/* Agent identity: the server signs a short-lived JWT per MCP operation naming the agent
 * (id, version, name), the session and the principal it acts for, so an MCP server or a
 * gateway inside the private network can give each agent its own access and check it
 * against public keys we publish (docs/server/agent-identity.md). Keys: one signing key,
 * plus previous keys still published while tokens they signed can live (rotation with
 * overlap). */
#ifndef AL_SERVER_AGENT_IDENTITY_H
#define AL_SERVER_AGENT_IDENTITY_H

#include <stddef.h>

#include <jansson.h>

#define AGENT_IDENTITY_TTL_S 300 /* a token lives at most this long */

struct agent_identity_config {
	const char *issuer;   /* the "iss"; receivers fetch <issuer>/.well-known/jwks.json */
	const char *key_file; /* PEM private key (RSA >= 2048, P-256, Ed25519); NULL: */
	const char *data_dir; /* <data_dir>/agent-identity.pem, made (P-256) if missing */
	const char *previous_key_file; /* NULL, or a retired key still published in the JWKS */
	unsigned ttl_s;                /* 0: AGENT_IDENTITY_TTL_S; at most that */
};

/* Who and what a token names. Borrowed for the call. */
struct agent_identity_claims {
	const char *audience; /* the MCP server URL the token is sent to */
	const char *agent_id, *agent_name;
	long long agent_version;
	const char *session_id;
	/* the principal the session acts for: a user (sub, iss, email, groups) or an API key
	 * (sub "apikey:<key id>", iss NULL) */
	const char *user_sub, *user_iss, *user_email;
	const char *const *groups;
	size_t ngroups;
};

struct agent_identity;

/* Loads (or creates) the keys. err says what is wrong ("identity.agent_identity.key_file:
 * …"). */
int agent_identity_open(const struct agent_identity_config *cfg, struct agent_identity **out,
                        char *err, size_t errlen);
void agent_identity_free(struct agent_identity *ai);
const char *agent_identity_issuer(const struct agent_identity *ai);
/* A fresh token (malloc'ed), or NULL when signing failed (logged). */
char *agent_identity_mint(struct agent_identity *ai, const struct agent_identity_claims *c);
/* A compact JWS of payload with the current key (its kid in the header), for other
 * statements the server vouches for with the same published keys: the audit log's
 * checkpoints (docs/server/audit.md). malloc'ed, or NULL when signing failed. */
char *agent_identity_sign(struct agent_identity *ai, const json_t *payload);
/* {"keys":[current, previous…]}: what /.well-known/jwks.json serves. New reference. */
json_t *agent_identity_jwks(const struct agent_identity *ai);
/* {"issuer", "jwks_uri"}: the discovery document receivers may fetch. New reference. */
json_t *agent_identity_discovery(const struct agent_identity *ai);

#endif
