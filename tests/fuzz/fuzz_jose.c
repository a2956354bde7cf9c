/* Fuzzes lib/jose's parsers of untrusted bytes. The first input byte picks one:
 *   0: a JWKS document (an IdP's, fetched over the network)
 *   1: a compact JWS checked against fixed keys (a bearer token from any client); the
 *      header peek and, on success, the claim checks run too
 *   2: strict base64url: whatever decodes must encode back to the same text (one text per
 *      byte string, or signatures could be re-encoded around a cache or a log)
 * Tokens cannot verify by chance; the seeds hold real ones so the fuzzer mutates around
 * valid structure. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "jose.h"
#include "util.h"

static struct jose_keyset *keys;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* the keys the seed tokens name by kid are fresh each run, so those tokens reach
	 * the signature check and fail there: the paths before it are what is fuzzed */
	struct jose_key *k[3] = {NULL, NULL, NULL};
	if (jose_key_generate(JOSE_ES256, "ec", &k[0]) != 0 ||
	    jose_key_generate(JOSE_EDDSA, "ed", &k[1]) != 0 ||
	    jose_key_generate(JOSE_RS256, "rsa", &k[2]) != 0)
		abort();
	keys = jose_keyset_new(k, 3);
	for (int i = 0; i < 3; i++)
		jose_key_free(k[i]);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (keys == NULL)
		LLVMFuzzerInitialize(NULL, NULL);
	if (size < 1)
		return 0;
	const char *in = (const char *)data + 1;
	size_t n = size - 1;
	char err[200];
	switch (data[0] % 3) {
	case 0: {
		struct jose_keyset *ks = NULL;
		if (jose_jwks_parse(in, n, &ks, err, sizeof err) == 0 && jose_keyset_count(ks) == 0)
			abort();
		jose_keyset_free(ks);
		break;
	}
	case 1: {
		json_t *h = NULL, *p = NULL;
		if (jose_peek_header(in, n, &h, err, sizeof err) == 0 && !json_is_object(h))
			abort();
		json_decref(h);
		if (jose_verify(in, n, keys, JOSE_ALGS_ALL, &p, err, sizeof err) == 0) {
			struct jose_claims_rules r = {.iss = "x", .aud = "y", .now = 1, .skew = 60};
			jose_check_claims(p, &r, err, sizeof err);
		}
		json_decref(p);
		break;
	}
	case 2: {
		unsigned char *raw = NULL;
		size_t rawlen = 0;
		if (base64url_decode_strict(in, n, &raw, &rawlen) == 0) {
			char *back = base64url_encode(raw, rawlen);
			if (strlen(back) != n || memcmp(back, in, n) != 0)
				abort();
			free(back);
			free(raw);
		}
		break;
	}
	}
	return 0;
}
