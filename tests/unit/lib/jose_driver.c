/* Drives lib/jose from tests/interop/jose.test.mjs, so that tokens are checked against an
 * independent JOSE implementation (npm `jose`) in both directions:
 *   jose_driver verify JWKS_FILE ISS AUD TOKEN   → the payload JSON, exit 0; or
 *                                                  "error: <code>: <why>", exit 1
 *   jose_driver sign ALG KID PAYLOAD_JSON        → {"jwks": {...}, "token": "..."} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "jose.h"

static int
verify(const char *jwks_path, const char *iss, const char *aud, const char *token)
{
	FILE *f = fopen(jwks_path, "re");
	if (f == NULL) {
		perror(jwks_path);
		return 2;
	}
	static char doc[JOSE_MAX_JWKS + 1];
	size_t n = fread(doc, 1, sizeof doc, f);
	fclose(f);
	struct jose_keyset *ks = NULL;
	json_t *payload = NULL;
	char err[256] = "";
	int r = jose_jwks_parse(doc, n, &ks, err, sizeof err);
	if (r == 0)
		r = jose_verify(token, strlen(token), ks, JOSE_ALGS_ALL, &payload, err, sizeof err);
	if (r == 0) {
		struct jose_claims_rules rules = {.iss = iss,
		                                  .aud = aud,
		                                  .now = (int64_t)time(NULL),
		                                  .skew = 60,
		                                  .require_exp = true};
		r = jose_check_claims(payload, &rules, err, sizeof err);
	}
	if (r != 0) {
		printf("error: %s: %s\n", al_strerror(r), err);
	} else {
		char *s = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
		printf("%s\n", s);
		free(s);
	}
	json_decref(payload);
	jose_keyset_free(ks);
	return r == 0 ? 0 : 1;
}

static int
sign(const char *algname, const char *kid, const char *payload_json)
{
	enum jose_alg alg = jose_alg_from_name(algname);
	json_t *payload = json_loads(payload_json, 0, NULL);
	struct jose_key *k = NULL;
	char *tok = NULL;
	if (payload == NULL || jose_key_generate(alg, kid, &k) != 0 ||
	    jose_sign(k, alg, payload, &tok) != 0) {
		fprintf(stderr, "sign failed\n");
		return 2;
	}
	json_t *out =
	    json_pack("{s:{s:[o]}, s:s}", "jwks", "keys", jose_key_public_jwk(k), "token", tok);
	char *s = json_dumps(out, JSON_COMPACT);
	printf("%s\n", s);
	free(s);
	free(tok);
	json_decref(out);
	json_decref(payload);
	jose_key_free(k);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "verify") == 0)
		return verify(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 5 && strcmp(argv[1], "sign") == 0)
		return sign(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: jose_driver verify JWKS ISS AUD TOKEN | sign ALG KID PAYLOAD\n");
	return 2;
}
