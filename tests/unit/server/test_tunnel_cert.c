/* Tunnel CA certificate checks (src/server/tunnel/tunnel_cert.c): a table of certificates
 * made here, each with one property wrong, and the message its refusal must carry; a
 * good one of each allowed key type passes with its fingerprint and expiry. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "testcert.h"
#include "tunnel_cert.h"

enum key { K_P256, K_P384, K_RSA2048, K_RSA1024, K_ED25519, K_P224 };

struct mk {
	enum key key;
	const char *bc; /* basicConstraints value, NULL: none */
	const char *ku; /* keyUsage value, NULL: none */
	bool ski;       /* subjectKeyIdentifier */
	long from, to;  /* validity relative to now, seconds */
	bool sha1;      /* sign with SHA-1 */
};

static const struct mk GOOD = {
    K_P256, "critical,CA:TRUE", "critical,keyCertSign,cRLSign", true, -60, 86400, false};

static EVP_PKEY *
key_new(enum key k)
{
	switch (k) {
	case K_P256:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	case K_P384:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	case K_P224:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-224");
	case K_RSA2048:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	case K_RSA1024:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	case K_ED25519:
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	}
	return NULL;
}

/* PEM text of a certificate built as m says (a heap string), and with the key appended
 * when with_key. */
static char *
make(const struct mk *m, bool with_key)
{
	char *text = NULL;
	size_t len = 0;
	EVP_PKEY *k = key_new(m->key);
	X509 *c = X509_new();
	assert_non_null(k);
	assert_non_null(c);
	assert_int_equal(X509_set_version(c, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(c), 7);
	X509_gmtime_adj(X509_getm_notBefore(c), m->from);
	X509_gmtime_adj(X509_getm_notAfter(c), m->to);
	assert_int_equal(X509_set_pubkey(c, k), 1);
	X509_NAME *n = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"test CA", -1, -1,
	                           0);
	X509_set_issuer_name(c, n);
	if (m->bc)
		assert_int_equal(testcert_add_ext(c, NID_basic_constraints, m->bc), 0);
	if (m->ku)
		assert_int_equal(testcert_add_ext(c, NID_key_usage, m->ku), 0);
	if (m->ski)
		assert_int_equal(testcert_add_ext(c, NID_subject_key_identifier, "hash"), 0);
	const EVP_MD *md = m->key == K_ED25519 ? NULL : m->sha1 ? EVP_sha1() : EVP_sha256();
	assert_true(X509_sign(c, k, md) > 0);
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, c), 1);
	if (with_key)
		assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	X509_free(c);
	EVP_PKEY_free(k);
	return text;
}

static int
check(const char *pem, struct tunnel_cert_info *info, char *err, size_t errlen)
{
	return tunnel_cert_check(pem, strlen(pem), (int64_t)time(NULL), info, err, errlen);
}

static void
test_good(void **state)
{
	static const enum key keys[] = {K_P256, K_P384, K_RSA2048};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		struct mk m = GOOD;
		m.key = keys[i];
		char *pem = make(&m, false);
		struct tunnel_cert_info info;
		char err[256] = "";
		int r = check(pem, &info, err, sizeof(err));
		if (r != 0)
			fail_msg("key %zu refused: %s", i, err);
		assert_int_equal(strlen(info.fingerprint), 64);
		int64_t want = ((int64_t)time(NULL) + 86400) * 1000000;
		assert_true(info.not_after_us > want - 5000000 &&
		            info.not_after_us <= want + 1000000);
		free(pem);
	}
}

static void
test_refused(void **state)
{
	struct rc {
		struct mk m;
		bool with_key;
		const char *msg;
	} cases[] = {
	    {{K_P256, "critical,CA:FALSE", "critical,keyCertSign", true, -60, 86400, false},
	     false,
	     "not a CA certificate"},
	    {{K_P256, NULL, "critical,keyCertSign", true, -60, 86400, false},
	     false,
	     "not a CA certificate"},
	    {{K_P256, "CA:TRUE", "critical,keyCertSign", true, -60, 86400, false},
	     false,
	     "basicConstraints must be marked critical"},
	    {{K_P256, "critical,CA:TRUE", "critical,keyCertSign", false, -60, 86400, false},
	     false,
	     "subjectKeyIdentifier"},
	    {{K_P256, "critical,CA:TRUE", "critical,digitalSignature", true, -60, 86400, false},
	     false,
	     "keyCertSign"},
	    {{K_P256, "critical,CA:TRUE", NULL, true, -60, 86400, false}, false, "keyCertSign"},
	    {{K_P256, "critical,CA:TRUE", "critical,keyCertSign", true, -7200, -3600, false},
	     false,
	     "expired"},
	    {{K_P256, "critical,CA:TRUE", "critical,keyCertSign", true, 3600, 7200, false},
	     false,
	     "not valid yet"},
	    {{K_RSA1024, "critical,CA:TRUE", "critical,keyCertSign", true, -60, 86400, false},
	     false,
	     "RSA key of 1024 bits"},
	    {{K_ED25519, "critical,CA:TRUE", "critical,keyCertSign", true, -60, 86400, false},
	     false,
	     "key type ED25519 is not allowed"},
	    {{K_P224, "critical,CA:TRUE", "critical,keyCertSign", true, -60, 86400, false},
	     false,
	     "curve secp224r1 is not allowed"},
	    {{K_RSA2048, "critical,CA:TRUE", "critical,keyCertSign", true, -60, 86400, true},
	     false,
	     "signature digest SHA1 is not allowed"},
	    {GOOD, true, "private key material"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *pem = make(&cases[i].m, cases[i].with_key);
		struct tunnel_cert_info info;
		char err[256] = "";
		int r = check(pem, &info, err, sizeof(err));
		if (r != AL_E_INVAL || strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: r=%d err=\"%s\", want \"%s\"", i, r, err, cases[i].msg);
		free(pem);
	}
}

static void
test_malformed(void **state)
{
	char *a = make(&GOOD, false), *b = make(&GOOD, false);
	size_t al = strlen(a), bl = strlen(b);
	char *two = malloc(al + bl + 1);
	memcpy(two, a, al);
	memcpy(two + al, b, bl + 1);
	char *big = calloc(1, TUNNEL_CERT_PEM_MAX + 2);
	memset(big, 'A', TUNNEL_CERT_PEM_MAX + 1);
	char *cut = strdup(a);
	cut[al / 2] = '\0';
	char *cut_end = malloc(al + 1);
	memcpy(cut_end, a, al + 1);
	memcpy(strstr(cut_end, "-----END"), "-----EOF", 8);
	struct {
		const char *pem;
		size_t len;
		const char *msg;
	} cases[] = {
	    {"", 0, "must not be empty"},
	    {big, TUNNEL_CERT_PEM_MAX + 1, "at most 8192"},
	    {two, al + bl, "contains 2 certificates"},
	    {"hello", 5, "must be one PEM block"},
	    {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 56,
	     "must be one PEM block"},
	    {cut, strlen(cut), "not a valid PEM X.509 certificate"},
	    {cut_end, al, "not a valid PEM X.509 certificate"},
	    {a, al + 1, "NUL"}, /* the terminating NUL counted as content */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tunnel_cert_info info;
		char err[256] = "";
		int r = tunnel_cert_check(cases[i].pem, cases[i].len, (int64_t)time(NULL), &info,
		                          err, sizeof(err));
		if (r != AL_E_INVAL || strstr(err, cases[i].msg) == NULL)
			fail_msg("case %zu: r=%d err=\"%s\", want \"%s\"", i, r, err, cases[i].msg);
	}
	free(a);
	free(b);
	free(two);
	free(big);
	free(cut);
	free(cut_end);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
