/* lib/jose: JWK/JWKS parsing, JWS sign/verify round trips for the four algorithms, the
 * refusals (none, HS*, crit, unknown kid, tampering, bounds) and the claim checks. The
 * independent check against another implementation is tests/interop/jose.test.mjs. */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "err.h"
#include "jose.h"
#include "util.h"

static const enum jose_alg all_algs[] = {JOSE_RS256, JOSE_PS256, JOSE_ES256, JOSE_EDDSA};

/* The JWKS text of the given keys' public halves, parsed back through jose_jwks_parse. */
static struct jose_keyset *
keyset_of(struct jose_key *const *keys, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *jwk = jose_key_public_jwk(keys[i]);
		assert_non_null(jwk);
		json_array_append_new(arr, jwk);
	}
	json_t *doc = json_pack("{s:o}", "keys", arr);
	char *text = json_dumps(doc, 0);
	json_decref(doc);
	struct jose_keyset *ks = NULL;
	char err[200];
	assert_int_equal(jose_jwks_parse(text, strlen(text), &ks, err, sizeof err), 0);
	free(text);
	return ks;
}

static char *
make_token(const char *header_json, const char *payload_json, const char *sig)
{
	char *h = base64url_encode(header_json, strlen(header_json));
	char *p = base64url_encode(payload_json, strlen(payload_json));
	size_t n = strlen(h) + strlen(p) + strlen(sig) + 3;
	char *t = malloc(n);
	snprintf(t, n, "%s.%s.%s", h, p, sig);
	free(h);
	free(p);
	return t;
}

static void
test_b64url_strict(void **state)
{
	(void)state;
	unsigned char *out;
	size_t n;
	assert_int_equal(base64url_decode_strict("QUJD", 4, &out, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "ABC", 3);
	free(out);
	assert_int_equal(base64url_decode_strict("QQ", 2, &out, &n), 0); /* "A" */
	assert_int_equal(n, 1);
	free(out);
	assert_int_equal(base64url_decode_strict("QR", 2, &out, &n), AL_E_INVAL);   /* stray bits */
	assert_int_equal(base64url_decode_strict("QQ==", 4, &out, &n), AL_E_INVAL); /* padding */
	assert_int_equal(base64url_decode_strict("a+b/", 4, &out, &n),
	                 AL_E_INVAL); /* std alphabet */
	assert_int_equal(base64url_decode_strict("QUJDR", 5, &out, &n), AL_E_INVAL); /* 1 mod 4 */
	assert_int_equal(base64url_decode_strict("", 0, &out, &n), 0);
	assert_int_equal(n, 0);
	free(out);
}

/* Each algorithm: sign, verify through a JWKS, then tampering and refusals. */
static void
test_round_trip_all_algs(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(all_algs); i++) {
		enum jose_alg alg = all_algs[i];
		struct jose_key *k = NULL;
		assert_int_equal(jose_key_generate(alg, "k1", &k), 0);
		struct jose_keyset *ks = keyset_of(&k, 1);
		json_t *claims = json_pack("{s:s, s:s, s:i}", "sub", "alice", "iss", "https://idp",
		                           "exp", 4000000000);
		char *tok = NULL;
		assert_int_equal(jose_sign(k, alg, claims, &tok), 0);

		json_t *pl = NULL;
		char err[200] = "";
		assert_int_equal(
		    jose_verify(tok, strlen(tok), ks, JOSE_ALGS_ALL, &pl, err, sizeof err), 0);
		assert_true(json_equal(pl, claims));
		json_decref(pl);

		/* header says which key and algorithm */
		json_t *h = NULL;
		assert_int_equal(jose_peek_header(tok, strlen(tok), &h, err, sizeof err), 0);
		assert_string_equal(json_string_value(json_object_get(h, "alg")),
		                    jose_alg_name(alg));
		assert_string_equal(json_string_value(json_object_get(h, "kid")), "k1");
		json_decref(h);

		/* not accepted when the caller allows only other algorithms */
		pl = NULL;
		assert_int_equal(
		    jose_verify(tok, strlen(tok), ks, JOSE_ALGS_ALL & ~alg, &pl, err, sizeof err),
		    AL_E_PERM);
		assert_null(pl);

		/* a flipped signature bit (first character: every bit of it counts) */
		char *bad = strdup(tok);
		char *sig = strrchr(bad, '.') + 1;
		sig[0] = sig[0] == 'A' ? 'B' : 'A';
		assert_int_equal(
		    jose_verify(bad, strlen(bad), ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
		    AL_E_AUTH);
		free(bad);

		/* a payload swapped for another with the original signature */
		json_t *other = json_pack("{s:s, s:s, s:i}", "sub", "mallory", "iss", "https://idp",
		                          "exp", 4000000000);
		char *tok2 = NULL;
		assert_int_equal(jose_sign(k, alg, other, &tok2), 0);
		char *d1 = strchr(tok, '.'), *d2 = strchr(tok2, '.');
		char *e1 = strrchr(tok, '.'), *e2 = strrchr(tok2, '.');
		char spliced[8192];
		snprintf(spliced, sizeof spliced, "%.*s%.*s%s", (int)(d1 - tok), tok,
		         (int)(e2 - d2), d2, e1);
		assert_int_equal(
		    jose_verify(spliced, strlen(spliced), ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
		    AL_E_AUTH);
		(void)e2;
		free(tok2);
		json_decref(other);

		/* another key with the same kid: the signature does not verify */
		struct jose_key *k2 = NULL;
		assert_int_equal(jose_key_generate(alg, "k1", &k2), 0);
		struct jose_keyset *ks2 = keyset_of(&k2, 1);
		assert_int_equal(
		    jose_verify(tok, strlen(tok), ks2, JOSE_ALGS_ALL, &pl, err, sizeof err),
		    AL_E_AUTH);
		jose_keyset_free(ks2);
		jose_key_free(k2);

		free(tok);
		json_decref(claims);
		jose_keyset_free(ks);
		jose_key_free(k);
	}
}

static void
test_refused_algorithms(void **state)
{
	(void)state;
	struct jose_key *k = NULL;
	assert_int_equal(jose_key_generate(JOSE_RS256, "rsa", &k), 0);
	struct jose_keyset *ks = keyset_of(&k, 1);
	const char *headers[] = {
	    "{\"alg\":\"none\"}",  "{\"alg\":\"HS256\",\"kid\":\"rsa\"}",
	    "{\"alg\":\"HS512\"}", "{\"alg\":\"ES384\"}",
	    "{\"alg\":\"rs256\"}",
	};
	for (size_t i = 0; i < ARRAY_LEN(headers); i++) {
		char *t = make_token(headers[i], "{\"sub\":\"x\"}", "c2ln");
		json_t *pl = NULL;
		char err[200] = "";
		assert_int_equal(jose_verify(t, strlen(t), ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
		                 AL_E_PERM);
		assert_non_null(strstr(err, "not accepted"));
		free(t);
	}
	/* HS256 signed with the RSA key's public JWK text as the HMAC secret: the classic
	 * confusion; refused on the algorithm before any key is looked at */
	json_t *jwk = jose_key_public_jwk(k);
	char *secret = json_dumps(jwk, JSON_COMPACT);
	json_decref(jwk);
	char *t = make_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"sub\":\"admin\"}", "AAAA");
	json_t *pl = NULL;
	char err[200];
	assert_int_equal(jose_verify(t, strlen(t), ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
	                 AL_E_PERM);
	free(t);
	free(secret);
	jose_keyset_free(ks);
	jose_key_free(k);
}

static void
test_malformed_tokens(void **state)
{
	(void)state;
	struct jose_key *k = NULL;
	assert_int_equal(jose_key_generate(JOSE_ES256, "ec", &k), 0);
	struct jose_keyset *ks = keyset_of(&k, 1);
	json_t *pl = NULL;
	char err[200];
	struct {
		const char *tok;
		int want;
	} cases[] = {
	    {"", AL_E_INVAL},
	    {"abc", AL_E_INVAL},
	    {"a.b", AL_E_INVAL},
	    {"a.b.", AL_E_INVAL},          /* empty signature */
	    {".b.c", AL_E_INVAL},          /* empty header */
	    {"a..c", AL_E_INVAL},          /* empty payload */
	    {"a.b.c.d.e", AL_E_INVAL},     /* JWE compact */
	    {"e30.e30.c2ln", AL_E_INVAL},  /* {} header: no alg */
	    {"W10.e30.c2ln", AL_E_INVAL},  /* [] header */
	    {"e30=.e30.c2ln", AL_E_INVAL}, /* padding */
	    {"!!!.e30.c2ln", AL_E_INVAL},  /* not base64url */
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		assert_int_equal(jose_verify(cases[i].tok, strlen(cases[i].tok), ks, JOSE_ALGS_ALL,
		                             &pl, err, sizeof err),
		                 cases[i].want);

	char *t = make_token("{\"alg\":\"ES256\",\"kid\":\"ec\",\"crit\":[\"b64\"],\"b64\":false}",
	                     "{}", "c2ln");
	assert_int_equal(jose_verify(t, strlen(t), ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
	                 AL_E_INVAL);
	assert_non_null(strstr(err, "crit"));
	free(t);
	/* duplicate member names in the header are refused, not last-one-wins */
	t = make_token("{\"alg\":\"ES256\",\"alg\":\"none\"}", "{}", "c2ln");
	assert_int_equal(jose_verify(t, strlen(t), ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
	                 AL_E_INVAL);
	free(t);
	/* a kid that is not a string */
	t = make_token("{\"alg\":\"ES256\",\"kid\":7}", "{}", "c2ln");
	assert_int_equal(jose_verify(t, strlen(t), ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
	                 AL_E_INVAL);
	free(t);
	/* ES256 with a signature of the wrong width */
	t = make_token("{\"alg\":\"ES256\",\"kid\":\"ec\"}", "{}", "c2ln");
	assert_int_equal(jose_verify(t, strlen(t), ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
	                 AL_E_AUTH);
	free(t);

	/* over the token bound: refused before any decoding */
	size_t big = JOSE_MAX_TOKEN + 1;
	char *huge = malloc(big + 1);
	memset(huge, 'A', big);
	huge[10] = '.';
	huge[20] = '.';
	huge[big] = 0;
	assert_int_equal(jose_verify(huge, big, ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
	                 AL_E_TOOBIG);
	free(huge);
	assert_null(pl);
	jose_keyset_free(ks);
	jose_key_free(k);
}

static void
test_key_selection(void **state)
{
	(void)state;
	struct jose_key *a = NULL, *b = NULL, *c = NULL;
	assert_int_equal(jose_key_generate(JOSE_ES256, "a", &a), 0);
	assert_int_equal(jose_key_generate(JOSE_ES256, "b", &b), 0);
	assert_int_equal(jose_key_generate(JOSE_ES256, NULL, &c), 0);
	struct jose_key *both[] = {a, b};
	struct jose_keyset *ks = keyset_of(both, 2);
	json_t *claims = json_pack("{s:s}", "sub", "x");
	char *ta = NULL, *tc = NULL;
	assert_int_equal(jose_sign(a, JOSE_ES256, claims, &ta), 0);
	assert_int_equal(jose_sign(c, JOSE_ES256, claims, &tc), 0); /* no kid */
	json_t *pl = NULL;
	char err[200];
	assert_int_equal(jose_verify(ta, strlen(ta), ks, JOSE_ALGS_ALL, &pl, err, sizeof err), 0);
	json_decref(pl);
	/* no kid and two keys that could sign: ambiguous */
	assert_int_equal(jose_verify(tc, strlen(tc), ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
	                 AL_E_INVAL);
	/* kid unknown to the set: NOTFOUND so the caller can refetch the JWKS */
	struct jose_keyset *only_b = keyset_of(&b, 1);
	assert_int_equal(jose_verify(ta, strlen(ta), only_b, JOSE_ALGS_ALL, &pl, err, sizeof err),
	                 AL_E_NOTFOUND);
	assert_non_null(strstr(err, "kid \"a\""));
	/* no kid, one key: that key is used (and here it is the wrong one) */
	assert_int_equal(jose_verify(tc, strlen(tc), only_b, JOSE_ALGS_ALL, &pl, err, sizeof err),
	                 AL_E_AUTH);
	free(ta);
	free(tc);
	json_decref(claims);
	jose_keyset_free(ks);
	jose_keyset_free(only_b);
	jose_key_free(a);
	jose_key_free(b);
	jose_key_free(c);
}

static struct jose_keyset *
parse_jwks(const char *doc, int *r)
{
	struct jose_keyset *ks = NULL;
	char err[200];
	*r = jose_jwks_parse(doc, strlen(doc), &ks, err, sizeof err);
	return ks;
}

static void
test_jwks_parsing(void **state)
{
	(void)state;
	struct jose_key *ec = NULL, *ed = NULL;
	assert_int_equal(jose_key_generate(JOSE_ES256, "ec", &ec), 0);
	assert_int_equal(jose_key_generate(JOSE_EDDSA, "ed", &ed), 0);
	json_t *ecj = jose_key_public_jwk(ec), *edj = jose_key_public_jwk(ed);
	assert_string_equal(json_string_value(json_object_get(ecj, "crv")), "P-256");
	assert_string_equal(json_string_value(json_object_get(edj, "kty")), "OKP");

	/* unusable keys beside usable ones are skipped */
	json_t *enc = json_deep_copy(ecj);
	json_object_set_new(enc, "use", json_string("enc"));
	json_object_set_new(enc, "kid", json_string("enc"));
	json_t *p384 = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-384", "kid",
	                         "p384", "x", "AAAA", "y", "AAAA");
	json_t *oct = json_pack("{s:s, s:s}", "kty", "oct", "k", "c2VjcmV0");
	json_t *doc = json_pack("{s:[O,O,O,O,O]}", "keys", enc, p384, oct, ecj, edj);
	char *text = json_dumps(doc, 0);
	int r;
	struct jose_keyset *ks = parse_jwks(text, &r);
	assert_int_equal(r, 0);
	assert_int_equal(jose_keyset_count(ks), 2);
	jose_keyset_free(ks);
	free(text);
	json_decref(doc);

	/* nothing usable: an error that names the first problem */
	doc = json_pack("{s:[O,O]}", "keys", enc, oct);
	text = json_dumps(doc, 0);
	ks = parse_jwks(text, &r);
	assert_int_equal(r, AL_E_INVAL);
	assert_null(ks);
	free(text);
	json_decref(doc);

	/* an EC point off the curve: y changed */
	json_t *off = json_deep_copy(ecj);
	const char *y = json_string_value(json_object_get(off, "y"));
	char *y2 = strdup(y);
	y2[5] = y2[5] == 'A' ? 'B' : 'A';
	json_object_set_new(off, "y", json_string(y2));
	free(y2);
	struct jose_key *k = NULL;
	char err[200];
	assert_int_equal(jose_jwk_parse(off, &k, err, sizeof err), AL_E_INVAL);
	json_decref(off);

	/* a JWK alg restricts the key: an RS256-only key cannot verify PS256 */
	struct jose_key *rsa = NULL;
	assert_int_equal(jose_key_generate(JOSE_RS256, "r", &rsa), 0);
	json_t *rj = jose_key_public_jwk(rsa);
	json_object_set_new(rj, "alg", json_string("RS256"));
	doc = json_pack("{s:[O]}", "keys", rj);
	text = json_dumps(doc, 0);
	ks = parse_jwks(text, &r);
	assert_int_equal(r, 0);
	json_t *claims = json_pack("{s:s}", "sub", "x");
	char *tok = NULL;
	assert_int_equal(jose_sign(rsa, JOSE_PS256, claims, &tok), 0);
	json_t *pl = NULL;
	assert_int_equal(jose_verify(tok, strlen(tok), ks, JOSE_ALGS_ALL, &pl, err, sizeof err),
	                 AL_E_NOTFOUND);
	free(tok);
	assert_int_equal(jose_sign(rsa, JOSE_RS256, claims, &tok), 0);
	assert_int_equal(jose_verify(tok, strlen(tok), ks, JOSE_ALGS_ALL, &pl, err, sizeof err), 0);
	json_decref(pl);
	free(tok);
	json_decref(claims);
	jose_keyset_free(ks);
	free(text);
	json_decref(doc);
	/* alg of another family on a key: unusable */
	json_object_set_new(rj, "alg", json_string("ES256"));
	assert_int_equal(jose_jwk_parse(rj, &k, err, sizeof err), AL_E_UNSUPPORTED);
	/* a 1024-bit-sized modulus: refused by the size bound */
	json_object_del(rj, "alg");
	json_object_set_new(rj, "n", json_string("AQAB"));
	assert_int_equal(jose_jwk_parse(rj, &k, err, sizeof err), AL_E_INVAL);
	json_decref(rj);
	jose_key_free(rsa);

	/* not JSON, no keys array, too many keys, too large */
	assert_null(parse_jwks("{", &r));
	assert_int_equal(r, AL_E_INVAL);
	assert_null(parse_jwks("{\"keys\":{}}", &r));
	assert_int_equal(r, AL_E_INVAL);
	json_t *many = json_array();
	for (int i = 0; i < JOSE_MAX_KEYS + 1; i++)
		json_array_append(many, edj);
	doc = json_pack("{s:o}", "keys", many);
	text = json_dumps(doc, 0);
	assert_null(parse_jwks(text, &r));
	assert_int_equal(r, AL_E_TOOBIG);
	free(text);
	json_decref(doc);

	json_decref(enc);
	json_decref(p384);
	json_decref(oct);
	json_decref(ecj);
	json_decref(edj);
	jose_key_free(ec);
	jose_key_free(ed);
}

static int
check(const char *payload, const struct jose_claims_rules *r)
{
	json_t *p = json_loads(payload, 0, NULL);
	assert_non_null(p);
	char err[200];
	int rc = jose_check_claims(p, r, err, sizeof err);
	json_decref(p);
	return rc;
}

static void
test_claims(void **state)
{
	(void)state;
	struct jose_claims_rules r = {
	    .iss = "https://idp", .aud = "airlock", .now = 1000, .skew = 60, .require_exp = true};
	assert_int_equal(check("{\"iss\":\"https://idp\",\"aud\":\"airlock\",\"exp\":2000}", &r),
	                 0);
	assert_int_equal(
	    check("{\"iss\":\"https://idp\",\"aud\":[\"x\",\"airlock\"],\"exp\":2000}", &r), 0);
	/* expired, but within the skew; then past it */
	assert_int_equal(check("{\"iss\":\"https://idp\",\"aud\":\"airlock\",\"exp\":990}", &r), 0);
	assert_int_equal(check("{\"iss\":\"https://idp\",\"aud\":\"airlock\",\"exp\":940}", &r),
	                 AL_E_AUTH);
	assert_int_equal(check("{\"iss\":\"https://idp\",\"aud\":\"airlock\"}", &r), AL_E_AUTH);
	assert_int_equal(
	    check("{\"iss\":\"https://idp\",\"aud\":\"airlock\",\"exp\":\"2000\"}", &r), AL_E_AUTH);
	assert_int_equal(check("{\"iss\":\"https://evil\",\"aud\":\"airlock\",\"exp\":2000}", &r),
	                 AL_E_AUTH);
	assert_int_equal(check("{\"aud\":\"airlock\",\"exp\":2000}", &r), AL_E_AUTH);
	assert_int_equal(check("{\"iss\":\"https://idp\",\"aud\":\"other\",\"exp\":2000}", &r),
	                 AL_E_AUTH);
	assert_int_equal(check("{\"iss\":\"https://idp\",\"aud\":[],\"exp\":2000}", &r), AL_E_AUTH);
	/* not yet valid */
	assert_int_equal(
	    check("{\"iss\":\"https://idp\",\"aud\":\"airlock\",\"exp\":3000,\"nbf\":1050}", &r),
	    0);
	assert_int_equal(
	    check("{\"iss\":\"https://idp\",\"aud\":\"airlock\",\"exp\":3000,\"nbf\":1100}", &r),
	    AL_E_AUTH);
	/* issued in the future */
	assert_int_equal(
	    check("{\"iss\":\"https://idp\",\"aud\":\"airlock\",\"exp\":3000,\"iat\":1200}", &r),
	    AL_E_AUTH);
	/* lifetime bound (agent identity tokens: at most 5 min) */
	r.max_lifetime = 300;
	assert_int_equal(
	    check("{\"iss\":\"https://idp\",\"aud\":\"airlock\",\"exp\":1290,\"iat\":1000}", &r),
	    0);
	assert_int_equal(
	    check("{\"iss\":\"https://idp\",\"aud\":\"airlock\",\"exp\":1400,\"iat\":1000}", &r),
	    AL_E_AUTH);
	/* nothing asked, nothing checked */
	struct jose_claims_rules none = {.now = 1000};
	assert_int_equal(check("{}", &none), 0);
}

static void
test_pem_round_trip(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_jose.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/signing.pem", dir);
	struct jose_key *k = NULL, *loaded = NULL;
	assert_int_equal(jose_key_generate(JOSE_ES256, "s1", &k), 0);
	assert_int_equal(jose_key_write_pem(k, path), 0);
	assert_true(jose_key_write_pem(k, path) < 0); /* never overwrites */
	char err[200];
	assert_int_equal(jose_key_load_pem(path, "s1", &loaded, err, sizeof err), 0);
	json_t *claims = json_pack("{s:s}", "sub", "x");
	char *tok = NULL;
	assert_int_equal(jose_sign(loaded, JOSE_ES256, claims, &tok), 0);
	struct jose_keyset *ks = keyset_of(&k, 1);
	json_t *pl = NULL;
	assert_int_equal(jose_verify(tok, strlen(tok), ks, JOSE_ALGS_ALL, &pl, err, sizeof err), 0);
	json_decref(pl);
	/* a public-only key cannot sign */
	json_t *jwk = jose_key_public_jwk(k);
	struct jose_key *pub = NULL;
	assert_int_equal(jose_jwk_parse(jwk, &pub, err, sizeof err), 0);
	char *t2 = NULL;
	assert_int_equal(jose_sign(pub, JOSE_ES256, claims, &t2), AL_E_INVAL);
	assert_int_equal(jose_key_load_pem("/nonexistent/key.pem", NULL, &loaded, err, sizeof err),
	                 -ENOENT);
	json_decref(jwk);
	jose_key_free(pub);
	free(tok);
	json_decref(claims);
	jose_keyset_free(ks);
	jose_key_free(k);
	jose_key_free(loaded);
	unlink(path);
	rmdir(dir);
}

/* RFC 7638 §3.1's example key and its thumbprint */
static void
test_thumbprint(void **state)
{
	(void)state;
	json_t *jwk = json_pack(
	    "{s:s, s:s, s:s, s:s}", "kty", "RSA", "e", "AQAB", "alg", "RS256", "n",
	    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
	    "_"
	    "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-"
	    "65YGjQR0_"
	    "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
	    "bFTWhAI4"
	    "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw");
	struct jose_key *k = NULL;
	char err[200];
	assert_int_equal(jose_jwk_parse(jwk, &k, err, sizeof err), 0);
	char *tp = jose_key_thumbprint(k);
	assert_string_equal(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	free(tp);
	jose_key_free(k);
	json_decref(jwk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_b64url_strict),
	    cmocka_unit_test(test_round_trip_all_algs),
	    cmocka_unit_test(test_refused_algorithms),
	    cmocka_unit_test(test_malformed_tokens),
	    cmocka_unit_test(test_key_selection),
	    cmocka_unit_test(test_jwks_parsing),
	    cmocka_unit_test(test_claims),
	    cmocka_unit_test(test_pem_round_trip),
	    cmocka_unit_test(test_thumbprint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
