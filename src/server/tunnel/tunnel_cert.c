/* Checks a customer CA certificate before a tunnel trusts it for inner TLS (the rules of
 * the reference, docs/server/tunnels.md "Certificates"). Everything here reads bytes an
 * API caller sent: each refusal names what is wrong, nothing is stored half-way. */
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "tunnel_cert.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return AL_E_INVAL;
}

static size_t
count(const char *p, size_t len, const char *needle)
{
	size_t n = 0, nl = strlen(needle);
	const char *at = p, *end = p + len;
	while (at < end && (at = memmem(at, (size_t)(end - at), needle, nl)) != NULL) {
		n++;
		at += nl;
	}
	return n;
}

/* Seconds since the epoch of an ASN.1 time; false when it does not parse. */
static bool
asn1_epoch(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return false;
	*out = (int64_t)timegm(&tm);
	return true;
}

/* RSA ≥ 2048 bits or ECDSA on a NIST curve of 256 bits or more. */
int
tunnel_cert_key_check(X509 *x, const char *what, char *err, size_t errlen)
{
	EVP_PKEY *pk = X509_get0_pubkey(x);
	if (pk == NULL)
		return fail(err, errlen, "%s: the public key cannot be read", what);
	int id = EVP_PKEY_get_base_id(pk);
	if (id == EVP_PKEY_RSA) {
		if (EVP_PKEY_get_bits(pk) < 2048)
			return fail(err, errlen, "%s: RSA key of %d bits; at least 2048 required",
			            what, EVP_PKEY_get_bits(pk));
		return 0;
	}
	if (id == EVP_PKEY_EC) {
		char group[64] = "";
		size_t gl = 0;
		if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                   sizeof(group), &gl) != 1)
			return fail(err, errlen, "%s: the EC curve cannot be read", what);
		if (strcmp(group, "prime256v1") == 0 || strcmp(group, "secp384r1") == 0 ||
		    strcmp(group, "secp521r1") == 0)
			return 0;
		return fail(err, errlen,
		            "%s: ECDSA curve %s is not allowed (P-256, P-384 or "
		            "P-521)",
		            what, group);
	}
	return fail(err, errlen,
	            "%s: key type %s is not allowed (RSA of at least 2048 bits "
	            "or ECDSA P-256 or larger)",
	            what, OBJ_nid2sn(id));
}

static int
check_x509(X509 *x, int64_t now_s, struct tunnel_cert_info *out, char *err, size_t errlen)
{
	uint32_t fl = X509_get_extension_flags(x); /* also caches the extensions */
	if (fl & EXFLAG_INVALID)
		return fail(err, errlen, "ca_certificate_pem: its extensions cannot be parsed");
	int bi = X509_get_ext_by_NID(x, NID_basic_constraints, -1);
	if (!(fl & EXFLAG_BCONS) || !(fl & EXFLAG_CA) || bi < 0)
		return fail(err, errlen,
		            "ca_certificate_pem: not a CA certificate (basicConstraints CA:TRUE "
		            "required)");
	if (!X509_EXTENSION_get_critical(X509_get_ext(x, bi)))
		return fail(err, errlen,
		            "ca_certificate_pem: basicConstraints must be marked critical");
	if (X509_get0_subject_key_id(x) == NULL)
		return fail(err, errlen,
		            "ca_certificate_pem: subjectKeyIdentifier extension required");
	if (!(fl & EXFLAG_KUSAGE) || !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN))
		return fail(err, errlen, "ca_certificate_pem: keyUsage must include keyCertSign");
	int64_t nb, na;
	if (!asn1_epoch(X509_get0_notBefore(x), &nb) || !asn1_epoch(X509_get0_notAfter(x), &na))
		return fail(err, errlen, "ca_certificate_pem: validity dates cannot be read");
	if (now_s < nb)
		return fail(err, errlen, "ca_certificate_pem: not valid yet (notBefore is ahead)");
	if (now_s > na)
		return fail(err, errlen, "ca_certificate_pem: certificate has expired");
	int r = tunnel_cert_key_check(x, "ca_certificate_pem", err, errlen);
	if (r != 0)
		return r;
	int md = NID_undef;
	if (X509_get_signature_info(x, &md, NULL, NULL, NULL) != 1 ||
	    (md != NID_sha256 && md != NID_sha384 && md != NID_sha512))
		return fail(err, errlen,
		            "ca_certificate_pem: signature digest %s is not allowed (SHA-256, "
		            "SHA-384 or SHA-512)",
		            md == NID_undef ? "unknown" : OBJ_nid2sn(md));
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	if (X509_digest(x, EVP_sha256(), d, &dl) != 1 || dl != 32)
		return fail(err, errlen, "ca_certificate_pem: cannot compute its fingerprint");
	for (unsigned i = 0; i < dl; i++)
		snprintf(out->fingerprint + 2 * i, 3, "%02x", d[i]);
	/* RFC 5280 4.1.2.5: 99991231235959Z means "no well-defined expiration date". */
	out->not_after_us = na >= 253402300799 ? 0 : na * 1000000;
	return 0;
}

int
tunnel_cert_check(const char *pem, size_t len, int64_t now_s, struct tunnel_cert_info *out,
                  char *err, size_t errlen)
{
	int r = AL_E_INVAL;
	BIO *b = NULL;
	X509 *x = NULL;
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return fail(err, errlen, "ca_certificate_pem: must not be empty");
	if (len > TUNNEL_CERT_PEM_MAX)
		return fail(err, errlen, "ca_certificate_pem: %zu bytes; at most %d", len,
		            TUNNEL_CERT_PEM_MAX);
	if (memchr(pem, '\0', len))
		return fail(err, errlen, "ca_certificate_pem: must not contain NUL bytes");
	if (count(pem, len, "PRIVATE KEY") > 0)
		return fail(err, errlen,
		            "ca_certificate_pem: contains private key material; upload only the "
		            "CA certificate");
	size_t begins = count(pem, len, "-----BEGIN ");
	size_t certs = count(pem, len, "-----BEGIN CERTIFICATE-----");
	if (certs == 0 || begins != certs)
		return fail(err, errlen,
		            "ca_certificate_pem: must be one PEM block \"-----BEGIN "
		            "CERTIFICATE-----\"");
	if (certs > 1)
		return fail(err, errlen,
		            "ca_certificate_pem: contains %zu certificates; exactly one required",
		            certs);
	b = BIO_new_mem_buf(pem, (int)len);
	if (b == NULL || (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		fail(err, errlen, "ca_certificate_pem: not a valid PEM X.509 certificate");
		goto out;
	}
	r = check_x509(x, now_s, out, err, errlen);
out:
	ERR_clear_error();
	X509_free(x);
	BIO_free(b);
	return r;
}
