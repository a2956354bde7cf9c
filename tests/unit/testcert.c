/* See testcert.h: one certificate maker for the TLS unit tests (tls, httpc native,
 * ssl_dl). */
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "testcert.h"

int
testcert_add_ext(X509 *c, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, c, c, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	int ok = e != NULL && X509_add_ext(c, e, -1) == 1;
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

static int
write_pem(const char *path, X509 *c, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	int ok = c != NULL ? PEM_write_X509(f, c) == 1
	                   : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
	return fclose(f) == 0 && ok ? 0 : -1;
}

int
testcert_write(const char *cert_path, const char *key_path, const char *cn, const char *san)
{
	int r = -1;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *c = X509_new();
	if (k == NULL || c == NULL || X509_set_version(c, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(c), 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(c), -60) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(c), 3600) == NULL || X509_set_pubkey(c, k) != 1)
		goto out;
	X509_NAME *n = X509_get_subject_name(c);
	if (X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
	                               0) != 1 ||
	    X509_set_issuer_name(c, n) != 1 ||
	    (san != NULL && testcert_add_ext(c, NID_subject_alt_name, san) != 0) ||
	    testcert_add_ext(c, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
	    X509_sign(c, k, EVP_sha256()) <= 0)
		goto out;
	if (write_pem(cert_path, c, NULL) != 0 || write_pem(key_path, NULL, k) != 0)
		goto out;
	r = 0;
out:
	X509_free(c);
	EVP_PKEY_free(k);
	return r;
}
