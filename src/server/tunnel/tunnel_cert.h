/* Customer CA certificates of a tunnel (inner TLS): checking one uploaded PEM against the
 * reference's rules before it is stored. See docs/server/tunnels.md "Certificates". */
#ifndef AL_SERVER_TUNNEL_CERT_H
#define AL_SERVER_TUNNEL_CERT_H

#include <stddef.h>
#include <stdint.h>

#define TUNNEL_CERT_PEM_MAX 8192 /* the reference's "Maximum 8KB" */

struct tunnel_cert_info {
	char fingerprint[65]; /* lower-case hex SHA-256 of the DER encoding */
	int64_t not_after_us; /* 0: the certificate does not expire (GeneralizedTime 9999) */
};

/* Checks one CA certificate in PEM: exactly one CERTIFICATE block and nothing else that
 * looks like PEM (a private key is refused by name), ≤ TUNNEL_CERT_PEM_MAX bytes,
 * basicConstraints CA:TRUE marked critical, a subject key identifier, keyUsage with
 * keyCertSign, valid at now_s, RSA ≥ 2048 bits or ECDSA on P-256/P-384/P-521, signed
 * with SHA-256 or stronger. Returns 0 and fills out, or AL_E_INVAL with a message for
 * the API answer in err. */
int tunnel_cert_check(const char *pem, size_t len, int64_t now_s, struct tunnel_cert_info *out,
                      char *err, size_t errlen);

/* The key rule alone (RSA ≥ 2048 bits, ECDSA P-256/P-384/P-521), for the CA and for the
 * gateway's certificate; err starts with what. 0 or AL_E_INVAL. */
#include <openssl/x509.h>
int tunnel_cert_key_check(X509 *x, const char *what, char *err, size_t errlen);

#endif
