/* Users from an OpenID Connect provider: the issuer's discovery document and JWK Set,
 * fetched on the loop and cached; bearer JWTs verified against them (lib/jose) and turned
 * into a user (sub, issuer, email, groups). Keys rotate without a restart: an unknown
 * `kid` refetches the JWKS (rate-limited, concurrent askers share one fetch), and the set
 * is refreshed periodically. While the IdP is down the last good keys keep working; a
 * token signed by a key we never saw fails closed. See docs/server/identity.md. */
#ifndef AL_SERVER_OIDC_H
#define AL_SERVER_OIDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "loop.h"

#define OIDC_MAX_GROUPS 1000 /* a token naming more is refused, not truncated */
#define OIDC_MAX_CLAIM 256   /* bytes of sub, email and each group name */

struct oidc_config {
	const char *issuer;       /* https://…; http:// only on a loopback address (tests) */
	const char *audience;     /* required: the `aud` our tokens carry */
	const char *groups_claim; /* NULL: "groups"; "roles" is read as well */
	const char *ca_file;      /* NULL: the system trust store */
	const char *groups_file;  /* NULL: none; YAML `users: {<sub or email>: [groups]}` */
	unsigned skew_s;          /* 0: 60 */
	unsigned refetch_min_ms;  /* 0: 30000 — at most one JWKS refetch per this interval */
	unsigned refresh_ms;      /* 0: 900000 — periodic JWKS refresh */
};

/* A signed-in user, as the token (and the mapping file) say at request time. */
struct oidc_user {
	char sub[OIDC_MAX_CLAIM + 1];
	char iss[512];
	char email[OIDC_MAX_CLAIM + 1]; /* "" when the token has none */
	bool email_verified;            /* the token says so: only then may policy and the
	                                 * groups file name the user by email */
	char **groups;                  /* sorted, unique; owned */
	size_t ngroups;
	bool groups_from_file; /* the mapping file supplied them (overage, no claim) */
	int64_t exp;
};
void oidc_user_reset(struct oidc_user *u);
/* A deep copy (dst's own groups). */
void oidc_user_copy(struct oidc_user *dst, const struct oidc_user *src);

struct oidc;

/* Checks the configuration (issuer scheme and host, audience, the mapping file) and makes
 * the client; nothing is fetched yet. err gets "identity.oidc.issuer: …" on failure. */
int oidc_new(struct loop *l, const struct oidc_config *cfg, struct oidc **out, char *err,
             size_t errlen);
/* Starts fetching discovery and keys (retried with backoff until they load). */
void oidc_start(struct oidc *o);
void oidc_free(struct oidc *o);
/* Whether a key set is loaded (readiness). */
bool oidc_ready(const struct oidc *o);

/* Whether a bearer token is a JWT (three base64url parts, a JSON header) rather than an
 * airlock key: only then is it ours to verify. */
bool oidc_looks_like_jwt(const char *token);

/* Verifies token with the cached keys and fills u. Returns 0; AL_E_AGAIN (no keys loaded
 * yet: answer 503); AL_E_NOTFOUND (signed by a key we do not have: oidc_refresh, then
 * ask again); AL_E_TOOBIG, AL_E_PERM, AL_E_AUTH, AL_E_INVAL (refused; err says why). */
int oidc_authenticate(struct oidc *o, const char *token, struct oidc_user *u, char *err,
                      size_t errlen);

/* Refetches the JWKS, then calls cb(arg, r) once (r = 0 when a new set loaded). When a
 * refetch ran less than refetch_min_ms ago the answer is AL_E_AGAIN at once and cb is not
 * called; a fetch in progress is joined. Cancel a pending callback with oidc_forget. */
int oidc_refresh(struct oidc *o, void (*cb)(void *arg, int r), void *arg);
void oidc_forget(struct oidc *o, void *arg);

/* The user from a verified payload (exposed for tests): sub, email and groups from the
 * configured claim and `roles`; the mapping file when the token has no groups claim or
 * only Entra ID's overage pointer (`_claim_names.groups`). */
int oidc_user_from_claims(struct oidc *o, const json_t *payload, struct oidc_user *u, char *err,
                          size_t errlen);

/* The IdP's authorization and token endpoints from its discovery document (for the
 * console's sign-in); NULL until discovery loaded, or when it names none. */
const char *oidc_authorization_endpoint(const struct oidc *o);
const char *oidc_token_endpoint(const struct oidc *o);
const char *oidc_issuer(const struct oidc *o);

/* Counters for /metrics and tests. */
struct oidc_stats {
	uint64_t jwks_fetches, jwks_failures, cache_hits, verified, refused;
};
void oidc_get_stats(const struct oidc *o, struct oidc_stats *st);

#endif
