/* JOSE for identity: JSON Web Keys and key sets (RFC 7517), compact JWS verification and
 * signing (RFC 7515) with the four asymmetric algorithms we accept — RS256, PS256, ES256
 * and EdDSA (Ed25519) — and the registered JWT claim checks (RFC 7519). `none` and the
 * HMAC algorithms are never accepted: an IdP's public key must not double as an HMAC
 * secret. Every input bound is fixed here; see docs/lib/jose.md. */
#ifndef AL_JOSE_H
#define AL_JOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Hard bounds on untrusted input. A token carrying more groups than fits is refused
 * (AL_E_TOOBIG), not truncated. */
#define JOSE_MAX_TOKEN (16 * 1024) /* Entra ID keeps tokens near 8 KiB (group overage) */
#define JOSE_MAX_HEADER 2048       /* decoded protected header */
#define JOSE_MAX_JWKS (256 * 1024)
#define JOSE_MAX_KEYS 64
#define JOSE_MAX_KID 256
#define JOSE_RSA_MIN_BITS 2048
#define JOSE_RSA_MAX_BITS 8192

enum jose_alg {
	JOSE_ALG_UNKNOWN = 0,
	JOSE_RS256 = 1 << 0,
	JOSE_PS256 = 1 << 1,
	JOSE_ES256 = 1 << 2,
	JOSE_EDDSA = 1 << 3,
};
#define JOSE_ALGS_ALL (JOSE_RS256 | JOSE_PS256 | JOSE_ES256 | JOSE_EDDSA)

/* "RS256" → JOSE_RS256 …; anything else (none, HS256, ES384 …) → JOSE_ALG_UNKNOWN. */
enum jose_alg jose_alg_from_name(const char *name);
const char *jose_alg_name(enum jose_alg alg);

/* One key: public, or a private key we sign with. Immutable once made. */
struct jose_key;
/* A parsed JWK Set: keys in document order. */
struct jose_keyset;

/* Parses one JWK (kty RSA, EC with crv P-256, OKP with crv Ed25519). A private part ("d")
 * is ignored: verification keys only. 0, AL_E_INVAL (malformed), AL_E_UNSUPPORTED (a
 * well-formed key we do not use: other curve, enc-only, RSA outside the bit bounds). */
int jose_jwk_parse(const json_t *jwk, struct jose_key **out, char *err, size_t errlen);
/* Parses a JWKS document. Keys we cannot use are skipped (IdPs publish encryption and
 * other-curve keys beside signing ones); a set with no usable key is AL_E_INVAL. */
int jose_jwks_parse(const char *doc, size_t len, struct jose_keyset **out, char *err,
                    size_t errlen);
size_t jose_keyset_count(const struct jose_keyset *ks);
void jose_keyset_free(struct jose_keyset *ks);
/* A set of the given keys (each reference is taken: the caller keeps its own). */
struct jose_keyset *jose_keyset_new(struct jose_key *const *keys, size_t n);

const char *jose_key_kid(const struct jose_key *k);
/* The algorithms this key can verify or sign (a mask of enum jose_alg). */
unsigned jose_key_algs(const struct jose_key *k);
struct jose_key *jose_key_ref(struct jose_key *k);
void jose_key_free(struct jose_key *k); /* drops one reference; NULL is fine */

/* A fresh private key for alg (ES256 or EdDSA; RS256/PS256 make 2048-bit RSA). */
int jose_key_generate(enum jose_alg alg, const char *kid, struct jose_key **out);
/* A private key from a PEM file (PKCS#8 or traditional); its algorithms follow its type. */
int jose_key_load_pem(const char *path, const char *kid, struct jose_key **out, char *err,
                      size_t errlen);
/* Writes the private key as unencrypted PKCS#8 PEM, created 0600 (never overwrites). */
int jose_key_write_pem(const struct jose_key *k, const char *path);
/* The public JWK (kty, kid, alg when the key has exactly one, use "sig", and the public
 * parameters). New reference, or NULL when the key cannot be exported. */
json_t *jose_key_public_jwk(const struct jose_key *k);

/* The RFC 7638 thumbprint of the key's public JWK (base64url SHA-256 of its required
 * members, sorted, compact): a kid that names the key itself. malloc'ed, or NULL. */
char *jose_key_thumbprint(const struct jose_key *k);

/* Signs a compact JWS: header {"alg", "typ":"JWT", "kid"} and the compact JSON of payload.
 * alg must be one of the key's. *out is malloc'ed. */
int jose_sign(const struct jose_key *k, enum jose_alg alg, const json_t *payload, char **out);

/* Decodes a token's protected header without verifying anything, to read `kid` and `alg`
 * before choosing keys. New reference in *header. */
int jose_peek_header(const char *token, size_t len, json_t **header, char *err, size_t errlen);

/* Verifies a compact JWS against ks, accepting only the algorithms in allowed_algs.
 * On success *payload is the decoded JSON object (new reference).
 * Returns 0; AL_E_TOOBIG (over JOSE_MAX_TOKEN); AL_E_INVAL (not a compact JWS, bad
 * base64url, header or payload not a JSON object, `crit` present); AL_E_PERM (the
 * algorithm is not accepted: none, HS*, or outside allowed_algs); AL_E_NOTFOUND (no key
 * for its kid: the caller may refetch the JWKS); AL_E_AUTH (the signature does not
 * verify). err says which, for logs and API errors. */
int jose_verify(const char *token, size_t len, const struct jose_keyset *ks, unsigned allowed_algs,
                json_t **payload, char *err, size_t errlen);

/* The registered claims a verifier checks. iss/aud NULL: not checked. */
struct jose_claims_rules {
	const char *iss;
	const char *aud;      /* must equal aud, or be one element of an aud array */
	int64_t now;          /* seconds since the epoch */
	int64_t skew;         /* seconds of clock skew tolerated on exp/nbf/iat */
	bool require_exp;     /* a token without exp is refused */
	int64_t max_lifetime; /* > 0: exp - iat (or exp - now) may not exceed it */
};
/* 0, or AL_E_AUTH with err naming the claim ("token expired at …", "wrong audience"). */
int jose_check_claims(const json_t *payload, const struct jose_claims_rules *r, char *err,
                      size_t errlen);

#endif
