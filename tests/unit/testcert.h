/* A self-signed P-256 certificate and key for TLS tests, written as PEM files. */
#ifndef AL_TESTCERT_H
#define AL_TESTCERT_H

/* cn: the subject (and issuer) common name; san: an OpenSSL subjectAltName value such as
 * "IP:127.0.0.1,DNS:localhost", or NULL for none. The certificate is its own CA
 * (basicConstraints CA:TRUE), valid from a minute ago for an hour. 0, or -1. */
int testcert_write(const char *cert_path, const char *key_path, const char *cn, const char *san);

/* Adds one extension in openssl.cnf syntax ("critical,CA:TRUE"), the certificate being
 * its own issuer. 0, or -1. */
#include <openssl/x509.h>
int testcert_add_ext(X509 *c, int nid, const char *value);

#endif
