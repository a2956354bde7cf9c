/* JOSE: JWK/JWKS parsing, compact JWS verify/sign, JWT claim checks (see jose.h).
 *
 * Keys reach OpenSSL as DER SubjectPublicKeyInfo that we build from the JWK's fields
 * (d2i_PUBKEY), so one decoder path serves RSA, P-256 and Ed25519 and OpenSSL checks the
 * key itself (an EC point off the curve fails there). The same small DER reader turns
 * our own keys back into JWKs and converts ECDSA signatures between JWS's fixed-width
 * r||s and the DER form OpenSSL speaks. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "buf.h"
#include "err.h"
#include "jose.h"
#include "sha256.h"
#include "util.h"
#include "xalloc.h"

/* Scratch buffers (DER, signing input) hold at most a token or a key. */
#define SCRATCH_MAX (2 * JOSE_MAX_TOKEN)

enum jose_kty { KTY_RSA = 1, KTY_EC_P256, KTY_ED25519 };

struct jose_key {
	int refs;
	enum jose_kty kty;
	unsigned algs; /* what this key may verify/sign */
	char *kid;     /* may be NULL */
	EVP_PKEY *pkey;
	bool priv;
};

struct jose_keyset {
	size_t n;
	struct jose_key **keys;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* One byte onto a growing DER or text buffer (the buffers here have no cap). */
static void
put1(struct buf *b, uint8_t c)
{
	buf_add(b, &c, 1);
}

/* ---- algorithms ---- */

static const struct {
	enum jose_alg alg;
	const char *name;
} alg_names[] = {
    {JOSE_RS256, "RS256"},
    {JOSE_PS256, "PS256"},
    {JOSE_ES256, "ES256"},
    {JOSE_EDDSA, "EdDSA"},
};

enum jose_alg
jose_alg_from_name(const char *name)
{
	for (size_t i = 0; name != NULL && i < ARRAY_LEN(alg_names); i++)
		if (strcmp(name, alg_names[i].name) == 0)
			return alg_names[i].alg;
	return JOSE_ALG_UNKNOWN;
}

const char *
jose_alg_name(enum jose_alg alg)
{
	for (size_t i = 0; i < ARRAY_LEN(alg_names); i++)
		if (alg_names[i].alg == alg)
			return alg_names[i].name;
	return "unknown";
}

static unsigned
kty_algs(enum jose_kty kty)
{
	switch (kty) {
	case KTY_RSA:
		return JOSE_RS256 | JOSE_PS256;
	case KTY_EC_P256:
		return JOSE_ES256;
	case KTY_ED25519:
		return JOSE_EDDSA;
	}
	return 0;
}

/* ---- DER: just enough to build and read SubjectPublicKeyInfo and ECDSA-Sig-Value ---- */

static void
der_len(struct buf *b, size_t n)
{
	if (n < 0x80) {
		put1(b, (uint8_t)n);
	} else if (n < 0x100) {
		put1(b, 0x81);
		put1(b, (uint8_t)n);
	} else {
		put1(b, 0x82);
		put1(b, (uint8_t)(n >> 8));
		put1(b, (uint8_t)n);
	}
}

static void
der_tlv(struct buf *b, uint8_t tag, const void *p, size_t n)
{
	put1(b, tag);
	der_len(b, n);
	buf_add(b, p, n);
}

/* An unsigned big-endian integer as a DER INTEGER: leading zeros dropped, one added when
 * the top bit is set (DER integers are signed). */
static void
der_uint(struct buf *b, const unsigned char *p, size_t n)
{
	while (n > 1 && p[0] == 0) {
		p++;
		n--;
	}
	put1(b, 0x02);
	if (n > 0 && (p[0] & 0x80)) {
		der_len(b, n + 1);
		put1(b, 0);
	} else {
		der_len(b, n);
	}
	buf_add(b, p, n);
}

/* Reads one TLV with the expected tag at *p, advancing past it. Definite short or
 * one/two-byte long lengths only (everything we read is small). */
static int
der_read(const unsigned char **p, const unsigned char *end, uint8_t tag, const unsigned char **body,
         size_t *blen)
{
	const unsigned char *q = *p;
	if (end - q < 2 || q[0] != tag)
		return AL_E_INVAL;
	size_t n = q[1];
	q += 2;
	if (n == 0x81 || n == 0x82) {
		size_t k = n & 0x7f;
		if ((size_t)(end - q) < k)
			return AL_E_INVAL;
		n = 0;
		for (size_t i = 0; i < k; i++)
			n = (n << 8) | *q++;
	} else if (n > 0x7f) {
		return AL_E_INVAL;
	}
	if ((size_t)(end - q) < n)
		return AL_E_INVAL;
	*body = q;
	*blen = n;
	*p = q + n;
	return 0;
}

static const unsigned char oid_rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
static const unsigned char oid_ec[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const unsigned char oid_p256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const unsigned char oid_ed25519[] = {0x2b, 0x65, 0x70};

/* SubjectPublicKeyInfo: SEQ { SEQ { OID alg, params }, BIT STRING key }. */
static void
spki_build(struct buf *out, const struct buf *algid, const unsigned char *key, size_t keylen)
{
	struct buf inner, bits;
	buf_init(&inner, SCRATCH_MAX);
	buf_init(&bits, SCRATCH_MAX);
	der_tlv(&inner, 0x30, (const unsigned char *)algid->data, algid->len);
	put1(&bits, 0); /* no unused bits */
	buf_add(&bits, key, keylen);
	der_tlv(&inner, 0x03, (const unsigned char *)bits.data, bits.len);
	der_tlv(out, 0x30, (const unsigned char *)inner.data, inner.len);
	buf_free(&inner);
	buf_free(&bits);
}

static EVP_PKEY *
pkey_from_spki(const struct buf *der)
{
	const unsigned char *start = (const unsigned char *)der->data, *p = start;
	EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)der->len);
	if (k != NULL && p != start + der->len) {
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

/* What an SPKI holds: kty and a pointer to the key bits (past the unused-bits byte). */
static int
spki_parse(const unsigned char *der, size_t len, enum jose_kty *kty, const unsigned char **key,
           size_t *keylen)
{
	const unsigned char *p = der, *end = der + len, *seq, *alg, *oid, *bits;
	size_t seqlen, alglen, oidlen, bitslen;
	if (der_read(&p, end, 0x30, &seq, &seqlen) != 0)
		return AL_E_INVAL;
	p = seq;
	end = seq + seqlen;
	if (der_read(&p, end, 0x30, &alg, &alglen) != 0 ||
	    der_read(&p, end, 0x03, &bits, &bitslen) != 0 || bitslen < 1 || bits[0] != 0)
		return AL_E_INVAL;
	const unsigned char *a = alg, *aend = alg + alglen;
	if (der_read(&a, aend, 0x06, &oid, &oidlen) != 0)
		return AL_E_INVAL;
	if (oidlen == sizeof(oid_rsa) && memcmp(oid, oid_rsa, oidlen) == 0) {
		*kty = KTY_RSA;
	} else if (oidlen == sizeof(oid_ed25519) && memcmp(oid, oid_ed25519, oidlen) == 0) {
		*kty = KTY_ED25519;
	} else if (oidlen == sizeof(oid_ec) && memcmp(oid, oid_ec, oidlen) == 0) {
		const unsigned char *curve;
		size_t curvelen;
		if (der_read(&a, aend, 0x06, &curve, &curvelen) != 0 ||
		    curvelen != sizeof(oid_p256) || memcmp(curve, oid_p256, curvelen) != 0)
			return AL_E_UNSUPPORTED;
		*kty = KTY_EC_P256;
	} else {
		return AL_E_UNSUPPORTED;
	}
	*key = bits + 1;
	*keylen = bitslen - 1;
	return 0;
}

/* ---- keys ---- */

static struct jose_key *
key_new(enum jose_kty kty, const char *kid, EVP_PKEY *pkey, bool priv)
{
	struct jose_key *k = xcalloc(1, sizeof *k);
	k->refs = 1;
	k->kty = kty;
	k->algs = kty_algs(kty);
	k->kid = kid != NULL ? xstrdup(kid) : NULL;
	k->pkey = pkey;
	k->priv = priv;
	return k;
}

struct jose_key *
jose_key_ref(struct jose_key *k)
{
	if (k != NULL)
		k->refs++;
	return k;
}

void
jose_key_free(struct jose_key *k)
{
	if (k == NULL || --k->refs > 0)
		return;
	EVP_PKEY_free(k->pkey);
	free(k->kid);
	free(k);
}

const char *
jose_key_kid(const struct jose_key *k)
{
	return k->kid;
}

unsigned
jose_key_algs(const struct jose_key *k)
{
	return k->algs;
}

/* A JWK member that must be a base64url string; decoded, length-checked. */
static int
jwk_bytes(const json_t *jwk, const char *name, size_t min, size_t max, unsigned char **out,
          size_t *len, char *err, size_t errlen)
{
	const char *s = json_string_value(json_object_get(jwk, name));
	if (s == NULL) {
		seterr(err, errlen, "JWK has no \"%s\"", name);
		return AL_E_INVAL;
	}
	if (base64url_decode_strict(s, strlen(s), out, len) != 0) {
		seterr(err, errlen, "JWK \"%s\" is not base64url", name);
		return AL_E_INVAL;
	}
	if (*len < min || *len > max) {
		seterr(err, errlen, "JWK \"%s\" has %zu bytes", name, *len);
		free(*out);
		*out = NULL;
		return AL_E_INVAL;
	}
	return 0;
}

int
jose_jwk_parse(const json_t *jwk, struct jose_key **out, char *err, size_t errlen)
{
	int r = AL_E_INVAL;
	unsigned char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	struct buf algid, key, der;
	buf_init(&algid, SCRATCH_MAX);
	buf_init(&key, SCRATCH_MAX);
	buf_init(&der, SCRATCH_MAX);
	EVP_PKEY *pkey = NULL;
	enum jose_kty kty;

	if (!json_is_object(jwk)) {
		seterr(err, errlen, "JWK is not an object");
		goto out;
	}
	const char *ktys = json_string_value(json_object_get(jwk, "kty"));
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	const char *use = json_string_value(json_object_get(jwk, "use"));
	const char *kid = json_string_value(json_object_get(jwk, "kid"));
	const json_t *algj = json_object_get(jwk, "alg");
	if (ktys == NULL) {
		seterr(err, errlen, "JWK has no \"kty\"");
		goto out;
	}
	if (kid != NULL && strlen(kid) > JOSE_MAX_KID) {
		seterr(err, errlen, "JWK \"kid\" is longer than %d bytes", JOSE_MAX_KID);
		goto out;
	}
	if (use != NULL && strcmp(use, "sig") != 0) {
		seterr(err, errlen, "JWK is for \"use\": \"%s\", not signatures", use);
		r = AL_E_UNSUPPORTED;
		goto out;
	}
	if (strcmp(ktys, "RSA") == 0) {
		kty = KTY_RSA;
		if ((r = jwk_bytes(jwk, "n", JOSE_RSA_MIN_BITS / 8 - 8, JOSE_RSA_MAX_BITS / 8 + 1,
		                   &a, &alen, err, errlen)) != 0 ||
		    (r = jwk_bytes(jwk, "e", 1, 8, &b, &blen, err, errlen)) != 0)
			goto out;
		unsigned char nul = 0;
		der_tlv(&algid, 0x06, oid_rsa, sizeof oid_rsa);
		der_tlv(&algid, 0x05, &nul, 0);
		struct buf ints;
		buf_init(&ints, SCRATCH_MAX);
		der_uint(&ints, a, alen);
		der_uint(&ints, b, blen);
		der_tlv(&key, 0x30, (const unsigned char *)ints.data, ints.len);
		buf_free(&ints);
	} else if (strcmp(ktys, "EC") == 0) {
		if (crv == NULL || strcmp(crv, "P-256") != 0) {
			seterr(err, errlen, "EC JWK curve \"%s\" is not P-256", crv ? crv : "");
			r = AL_E_UNSUPPORTED;
			goto out;
		}
		kty = KTY_EC_P256;
		if ((r = jwk_bytes(jwk, "x", 32, 32, &a, &alen, err, errlen)) != 0 ||
		    (r = jwk_bytes(jwk, "y", 32, 32, &b, &blen, err, errlen)) != 0)
			goto out;
		der_tlv(&algid, 0x06, oid_ec, sizeof oid_ec);
		der_tlv(&algid, 0x06, oid_p256, sizeof oid_p256);
		put1(&key, 0x04); /* uncompressed point */
		buf_add(&key, a, alen);
		buf_add(&key, b, blen);
	} else if (strcmp(ktys, "OKP") == 0) {
		if (crv == NULL || strcmp(crv, "Ed25519") != 0) {
			seterr(err, errlen, "OKP JWK curve \"%s\" is not Ed25519", crv ? crv : "");
			r = AL_E_UNSUPPORTED;
			goto out;
		}
		kty = KTY_ED25519;
		if ((r = jwk_bytes(jwk, "x", 32, 32, &a, &alen, err, errlen)) != 0)
			goto out;
		der_tlv(&algid, 0x06, oid_ed25519, sizeof oid_ed25519);
		buf_add(&key, a, alen);
	} else {
		seterr(err, errlen, "JWK \"kty\" \"%s\" is not RSA, EC or OKP", ktys);
		r = AL_E_UNSUPPORTED;
		goto out;
	}
	unsigned algs = kty_algs(kty);
	if (algj != NULL) {
		enum jose_alg alg = jose_alg_from_name(json_string_value(algj));
		if (alg == JOSE_ALG_UNKNOWN || (alg & algs) == 0) {
			seterr(err, errlen, "JWK \"alg\" is not one we accept for kty %s", ktys);
			r = AL_E_UNSUPPORTED;
			goto out;
		}
		algs = alg; /* RFC 7517 §4.4: the key is for that algorithm only */
	}
	spki_build(&der, &algid, (const unsigned char *)key.data, key.len);
	if ((pkey = pkey_from_spki(&der)) == NULL) {
		seterr(err, errlen, "JWK is not a valid %s public key", ktys);
		r = AL_E_INVAL;
		goto out;
	}
	if (kty == KTY_RSA) {
		int bits = EVP_PKEY_get_bits(pkey);
		if (bits < JOSE_RSA_MIN_BITS || bits > JOSE_RSA_MAX_BITS) {
			seterr(err, errlen, "RSA JWK has %d bits (%d..%d accepted)", bits,
			       JOSE_RSA_MIN_BITS, JOSE_RSA_MAX_BITS);
			r = AL_E_UNSUPPORTED;
			goto out;
		}
	}
	*out = key_new(kty, kid, pkey, false);
	(*out)->algs = algs;
	pkey = NULL;
	r = 0;
out:
	EVP_PKEY_free(pkey);
	free(a);
	free(b);
	buf_free(&algid);
	buf_free(&key);
	buf_free(&der);
	return r;
}

struct jose_keyset *
jose_keyset_new(struct jose_key *const *keys, size_t n)
{
	struct jose_keyset *ks = xcalloc(1, sizeof *ks);
	ks->keys = xcalloc(n ? n : 1, sizeof *ks->keys);
	for (size_t i = 0; i < n; i++)
		ks->keys[ks->n++] = jose_key_ref(keys[i]);
	return ks;
}

int
jose_jwks_parse(const char *doc, size_t len, struct jose_keyset **out, char *err, size_t errlen)
{
	int r = AL_E_INVAL;
	json_t *root = NULL;
	struct jose_keyset *ks = NULL;
	if (len > JOSE_MAX_JWKS) {
		seterr(err, errlen, "JWKS is larger than %d bytes", JOSE_MAX_JWKS);
		return AL_E_TOOBIG;
	}
	json_error_t je;
	root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &je);
	const json_t *keys = json_object_get(root, "keys");
	if (!json_is_array(keys)) {
		seterr(err, errlen, "JWKS is not an object with a \"keys\" array");
		goto out;
	}
	if (json_array_size(keys) > JOSE_MAX_KEYS) {
		seterr(err, errlen, "JWKS has %zu keys (at most %d)", json_array_size(keys),
		       JOSE_MAX_KEYS);
		r = AL_E_TOOBIG;
		goto out;
	}
	ks = xcalloc(1, sizeof *ks);
	ks->keys = xcalloc(json_array_size(keys) + 1, sizeof *ks->keys);
	size_t i;
	const json_t *jwk;
	char first[160] = "";
	json_array_foreach(keys, i, jwk)
	{
		struct jose_key *k;
		char e[160];
		int kr = jose_jwk_parse(jwk, &k, e, sizeof e);
		if (kr == 0)
			ks->keys[ks->n++] = k;
		else if (first[0] == '\0')
			snprintf(first, sizeof first, "key %zu: %s", i, e);
	}
	if (ks->n == 0) {
		seterr(err, errlen, "JWKS has no usable signing key%s%s", first[0] ? "; " : "",
		       first);
		goto out;
	}
	*out = ks;
	ks = NULL;
	r = 0;
out:
	jose_keyset_free(ks);
	json_decref(root);
	return r;
}

size_t
jose_keyset_count(const struct jose_keyset *ks)
{
	return ks ? ks->n : 0;
}

void
jose_keyset_free(struct jose_keyset *ks)
{
	if (ks == NULL)
		return;
	for (size_t i = 0; i < ks->n; i++)
		jose_key_free(ks->keys[i]);
	free(ks->keys);
	free(ks);
}

static int
key_from_pkey(EVP_PKEY *pkey, const char *kid, bool priv, struct jose_key **out)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pkey, &der);
	if (n <= 0)
		return AL_E_INVAL;
	enum jose_kty kty;
	const unsigned char *bits;
	size_t bitslen;
	int r = spki_parse(der, (size_t)n, &kty, &bits, &bitslen);
	OPENSSL_free(der);
	if (r != 0)
		return r;
	if (kty == KTY_RSA && EVP_PKEY_get_bits(pkey) < JOSE_RSA_MIN_BITS)
		return AL_E_UNSUPPORTED;
	*out = key_new(kty, kid, pkey, priv);
	return 0;
}

int
jose_key_generate(enum jose_alg alg, const char *kid, struct jose_key **out)
{
	EVP_PKEY *pkey = NULL;
	switch (alg) {
	case JOSE_ES256:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case JOSE_EDDSA:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	case JOSE_RS256:
	case JOSE_PS256:
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	default:
		return AL_E_INVAL;
	}
	if (pkey == NULL)
		return AL_E_IO;
	int r = key_from_pkey(pkey, kid, true, out);
	if (r != 0)
		EVP_PKEY_free(pkey);
	return r;
}

int
jose_key_load_pem(const char *path, const char *kid, struct jose_key **out, char *err,
                  size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		int e = errno;
		seterr(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pkey == NULL) {
		seterr(err, errlen, "%s: not an unencrypted PEM private key", path);
		return AL_E_INVAL;
	}
	int r = key_from_pkey(pkey, kid, true, out);
	if (r != 0) {
		seterr(err, errlen, "%s: key type is not RSA (>= 2048 bits), P-256 or Ed25519",
		       path);
		EVP_PKEY_free(pkey);
	}
	return r;
}

int
jose_key_write_pem(const struct jose_key *k, const char *path)
{
	if (!k->priv)
		return AL_E_INVAL;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		int e = errno;
		close(fd);
		return -e;
	}
	int ok = PEM_write_PrivateKey(f, k->pkey, NULL, NULL, 0, NULL, NULL);
	int cr = fclose(f);
	return ok == 1 && cr == 0 ? 0 : AL_E_IO;
}

static json_t *
b64_json(const unsigned char *p, size_t n)
{
	char *s = base64url_encode(p, n);
	json_t *j = json_string(s);
	free(s);
	return j;
}

json_t *
jose_key_public_jwk(const struct jose_key *k)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k->pkey, &der);
	if (n <= 0)
		return NULL;
	json_t *j = NULL;
	enum jose_kty kty;
	const unsigned char *bits;
	size_t bitslen;
	if (spki_parse(der, (size_t)n, &kty, &bits, &bitslen) != 0)
		goto out;
	j = json_object();
	switch (kty) {
	case KTY_RSA: {
		const unsigned char *p = bits, *end = bits + bitslen, *seq, *nn, *e;
		size_t seqlen, nlen, elen;
		if (der_read(&p, end, 0x30, &seq, &seqlen) != 0)
			goto bad;
		p = seq;
		end = seq + seqlen;
		if (der_read(&p, end, 0x02, &nn, &nlen) != 0 ||
		    der_read(&p, end, 0x02, &e, &elen) != 0)
			goto bad;
		while (nlen > 1 && nn[0] == 0) {
			nn++;
			nlen--;
		}
		while (elen > 1 && e[0] == 0) {
			e++;
			elen--;
		}
		json_object_set_new(j, "kty", json_string("RSA"));
		json_object_set_new(j, "n", b64_json(nn, nlen));
		json_object_set_new(j, "e", b64_json(e, elen));
		break;
	}
	case KTY_EC_P256:
		if (bitslen != 65 || bits[0] != 0x04)
			goto bad;
		json_object_set_new(j, "kty", json_string("EC"));
		json_object_set_new(j, "crv", json_string("P-256"));
		json_object_set_new(j, "x", b64_json(bits + 1, 32));
		json_object_set_new(j, "y", b64_json(bits + 33, 32));
		break;
	case KTY_ED25519:
		if (bitslen != 32)
			goto bad;
		json_object_set_new(j, "kty", json_string("OKP"));
		json_object_set_new(j, "crv", json_string("Ed25519"));
		json_object_set_new(j, "x", b64_json(bits, 32));
		break;
	}
	if (k->kid != NULL)
		json_object_set_new(j, "kid", json_string(k->kid));
	json_object_set_new(j, "use", json_string("sig"));
	if ((k->algs & (k->algs - 1)) == 0)
		json_object_set_new(j, "alg", json_string(jose_alg_name((enum jose_alg)k->algs)));
	goto out;
bad:
	json_decref(j);
	j = NULL;
out:
	OPENSSL_free(der);
	return j;
}

char *
jose_key_thumbprint(const struct jose_key *k)
{
	json_t *jwk = jose_key_public_jwk(k);
	if (jwk == NULL)
		return NULL;
	/* RFC 7638 §3.2: only the required members of the key type */
	static const char *const keep[] = {"crv", "e", "kty", "n", "x", "y"};
	json_t *req = json_object();
	for (size_t i = 0; i < ARRAY_LEN(keep); i++) {
		json_t *v = json_object_get(jwk, keep[i]);
		if (v != NULL)
			json_object_set(req, keep[i], v);
	}
	char *text = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(req);
	json_decref(jwk);
	if (text == NULL)
		return NULL;
	unsigned char h[32];
	sha256(text, strlen(text), h);
	free(text);
	return base64url_encode(h, sizeof h);
}

/* ---- signatures ---- */

/* JWS ES256 signatures are r||s, 32 bytes each; OpenSSL wants ECDSA-Sig-Value DER. */
static void
ecdsa_raw_to_der(const unsigned char raw[64], struct buf *der)
{
	struct buf ints;
	buf_init(&ints, SCRATCH_MAX);
	der_uint(&ints, raw, 32);
	der_uint(&ints, raw + 32, 32);
	der_tlv(der, 0x30, (const unsigned char *)ints.data, ints.len);
	buf_free(&ints);
}

static int
ecdsa_der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
	const unsigned char *p = der, *end = der + len, *seq, *v;
	size_t seqlen, vlen;
	if (der_read(&p, end, 0x30, &seq, &seqlen) != 0)
		return AL_E_INVAL;
	p = seq;
	end = seq + seqlen;
	for (int i = 0; i < 2; i++) {
		if (der_read(&p, end, 0x02, &v, &vlen) != 0)
			return AL_E_INVAL;
		while (vlen > 0 && v[0] == 0) {
			v++;
			vlen--;
		}
		if (vlen > 32)
			return AL_E_INVAL;
		memset(raw + 32 * i, 0, 32 - vlen);
		memcpy(raw + 32 * i + 32 - vlen, v, vlen);
	}
	return 0;
}

/* Sets up ctx for alg over k (sign or verify): digest, and PSS padding for PS256. */
static int
sig_init(EVP_MD_CTX *ctx, const struct jose_key *k, enum jose_alg alg, bool sign)
{
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = alg == JOSE_EDDSA ? NULL : EVP_sha256();
	int ok = sign ? EVP_DigestSignInit(ctx, &pctx, md, NULL, k->pkey)
	              : EVP_DigestVerifyInit(ctx, &pctx, md, NULL, k->pkey);
	if (ok != 1)
		return AL_E_INVAL;
	if (alg == JOSE_PS256 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
		return AL_E_INVAL;
	return 0;
}

static int
sig_verify(const struct jose_key *k, enum jose_alg alg, const char *input, size_t inlen,
           const unsigned char *sig, size_t siglen)
{
	int r = AL_E_AUTH;
	struct buf der;
	buf_init(&der, SCRATCH_MAX);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		goto out;
	if (alg == JOSE_ES256) {
		if (siglen != 64)
			goto out;
		ecdsa_raw_to_der(sig, &der);
		sig = (const unsigned char *)der.data;
		siglen = der.len;
	}
	if (sig_init(ctx, k, alg, false) != 0)
		goto out;
	if (EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)input, inlen) == 1)
		r = 0;
out:
	EVP_MD_CTX_free(ctx);
	buf_free(&der);
	return r;
}

int
jose_sign(const struct jose_key *k, enum jose_alg alg, const json_t *payload, char **out)
{
	int r = AL_E_INVAL;
	char *hjson = NULL, *pjson = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL;
	unsigned char *sig = NULL;
	struct buf input;
	buf_init(&input, SCRATCH_MAX);
	EVP_MD_CTX *ctx = NULL;
	if (!k->priv || (alg & k->algs) == 0 || !json_is_object(payload))
		goto out;
	json_t *h = json_pack("{s:s, s:s}", "alg", jose_alg_name(alg), "typ", "JWT");
	if (k->kid != NULL)
		json_object_set_new(h, "kid", json_string(k->kid));
	hjson = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	pjson = json_dumps(payload, JSON_COMPACT);
	if (hjson == NULL || pjson == NULL)
		goto out;
	h64 = base64url_encode(hjson, strlen(hjson));
	p64 = base64url_encode(pjson, strlen(pjson));
	buf_add_str(&input, h64);
	put1(&input, '.');
	buf_add_str(&input, p64);

	r = AL_E_IO;
	size_t siglen = 0;
	if ((ctx = EVP_MD_CTX_new()) == NULL || sig_init(ctx, k, alg, true) != 0 ||
	    EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input.data, input.len) != 1)
		goto out;
	sig = xmalloc(siglen);
	if (EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input.data, input.len) != 1)
		goto out;
	if (alg == JOSE_ES256) {
		unsigned char raw[64];
		if (ecdsa_der_to_raw(sig, siglen, raw) != 0)
			goto out;
		s64 = base64url_encode(raw, sizeof raw);
	} else {
		s64 = base64url_encode(sig, siglen);
	}
	put1(&input, '.');
	buf_add_str(&input, s64);
	*out = buf_steal(&input);
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(hjson);
	free(pjson);
	free(h64);
	free(p64);
	free(s64);
	free(sig);
	buf_free(&input);
	return r;
}

/* ---- verification ---- */

/* Splits a compact JWS into its three segments (bounds, exactly two dots). */
static int
split_token(const char *t, size_t len, size_t dot[2], char *err, size_t errlen)
{
	if (len > JOSE_MAX_TOKEN) {
		seterr(err, errlen, "token is longer than %d bytes", JOSE_MAX_TOKEN);
		return AL_E_TOOBIG;
	}
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		if (t[i] != '.')
			continue;
		if (n == 2) {
			seterr(err, errlen,
			       "token is not a compact JWS (more than three parts; JWE?)");
			return AL_E_INVAL;
		}
		dot[n++] = i;
	}
	if (n != 2 || dot[0] == 0 || dot[1] == dot[0] + 1 || dot[1] + 1 == len) {
		seterr(err, errlen, "token is not a compact JWS (header.payload.signature)");
		return AL_E_INVAL;
	}
	return 0;
}

static int
decode_json_object(const char *s, size_t len, size_t max, const char *what, json_t **out, char *err,
                   size_t errlen)
{
	unsigned char *raw = NULL;
	size_t rawlen = 0;
	if (len > max / 3 * 4 + 4) {
		seterr(err, errlen, "token %s is too large", what);
		return AL_E_TOOBIG;
	}
	if (base64url_decode_strict(s, len, &raw, &rawlen) != 0) {
		seterr(err, errlen, "token %s is not base64url", what);
		return AL_E_INVAL;
	}
	json_error_t je;
	json_t *j = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, &je);
	free(raw);
	if (!json_is_object(j)) {
		json_decref(j);
		seterr(err, errlen, "token %s is not a JSON object", what);
		return AL_E_INVAL;
	}
	*out = j;
	return 0;
}

int
jose_peek_header(const char *token, size_t len, json_t **header, char *err, size_t errlen)
{
	size_t dot[2];
	int r = split_token(token, len, dot, err, errlen);
	if (r != 0)
		return r;
	return decode_json_object(token, dot[0], JOSE_MAX_HEADER, "header", header, err, errlen);
}

int
jose_verify(const char *token, size_t len, const struct jose_keyset *ks, unsigned allowed_algs,
            json_t **payload, char *err, size_t errlen)
{
	int r;
	size_t dot[2];
	json_t *hdr = NULL, *pl = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;

	if ((r = split_token(token, len, dot, err, errlen)) != 0 ||
	    (r = decode_json_object(token, dot[0], JOSE_MAX_HEADER, "header", &hdr, err, errlen)) !=
	        0)
		goto out;
	r = AL_E_INVAL;
	const char *algname = json_string_value(json_object_get(hdr, "alg"));
	if (algname == NULL) {
		seterr(err, errlen, "token header has no \"alg\"");
		goto out;
	}
	if (json_object_get(hdr, "crit") != NULL) {
		/* RFC 7515 §4.1.11: we understand no extension, so the token is invalid */
		seterr(err, errlen, "token header has \"crit\" extensions we do not understand");
		goto out;
	}
	enum jose_alg alg = jose_alg_from_name(algname);
	if (alg == JOSE_ALG_UNKNOWN || (alg & allowed_algs) == 0) {
		seterr(err, errlen, "token algorithm \"%.32s\" is not accepted", algname);
		r = AL_E_PERM;
		goto out;
	}
	const json_t *kidj = json_object_get(hdr, "kid");
	if (kidj != NULL && !json_is_string(kidj)) {
		seterr(err, errlen, "token header \"kid\" is not a string");
		goto out;
	}
	const char *kid = json_string_value(kidj);
	/* The key: the one with this kid that can do alg; without a kid, the only such key. */
	const struct jose_key *key = NULL;
	size_t candidates = 0;
	for (size_t i = 0; ks != NULL && i < ks->n; i++) {
		const struct jose_key *k = ks->keys[i];
		if ((k->algs & alg) == 0)
			continue;
		if (kid != NULL ? (k->kid != NULL && strcmp(k->kid, kid) == 0) : true) {
			key = k;
			candidates++;
		}
	}
	if (candidates != 1) {
		if (kid != NULL && candidates == 0)
			seterr(err, errlen, "no %s key with kid \"%.64s\"", algname, kid);
		else if (kid == NULL && candidates > 1)
			seterr(err, errlen, "token has no \"kid\" and %zu keys could sign it",
			       candidates);
		else if (candidates > 1)
			seterr(err, errlen, "%zu keys share kid \"%.64s\"", candidates, kid);
		else
			seterr(err, errlen, "no %s key", algname);
		r = candidates == 0 ? AL_E_NOTFOUND : AL_E_INVAL;
		goto out;
	}
	if (base64url_decode_strict(token + dot[1] + 1, len - dot[1] - 1, &sig, &siglen) != 0) {
		seterr(err, errlen, "token signature is not base64url");
		goto out;
	}
	if (sig_verify(key, alg, token, dot[1], sig, siglen) != 0) {
		seterr(err, errlen, "token signature does not verify");
		r = AL_E_AUTH;
		goto out;
	}
	/* only now is the payload worth parsing */
	if ((r = decode_json_object(token + dot[0] + 1, dot[1] - dot[0] - 1, JOSE_MAX_TOKEN,
	                            "payload", &pl, err, errlen)) != 0)
		goto out;
	*payload = pl;
	pl = NULL;
	r = 0;
out:
	json_decref(hdr);
	json_decref(pl);
	free(sig);
	return r;
}

/* A NumericDate claim (RFC 7519 §2): a JSON number; fractions allowed. */
static int
numeric_date(const json_t *payload, const char *name, bool *present, int64_t *v, char *err,
             size_t errlen)
{
	const json_t *j = json_object_get(payload, name);
	*present = j != NULL;
	if (j == NULL)
		return 0;
	if (!json_is_number(j)) {
		seterr(err, errlen, "token claim \"%s\" is not a number", name);
		return AL_E_AUTH;
	}
	double d = json_number_value(j);
	if (!(d > -1e15 && d < 1e15)) {
		seterr(err, errlen, "token claim \"%s\" is out of range", name);
		return AL_E_AUTH;
	}
	*v = (int64_t)d;
	return 0;
}

int
jose_check_claims(const json_t *payload, const struct jose_claims_rules *rl, char *err,
                  size_t errlen)
{
	int64_t exp = 0, nbf = 0, iat = 0;
	bool has_exp, has_nbf, has_iat;
	if (numeric_date(payload, "exp", &has_exp, &exp, err, errlen) != 0 ||
	    numeric_date(payload, "nbf", &has_nbf, &nbf, err, errlen) != 0 ||
	    numeric_date(payload, "iat", &has_iat, &iat, err, errlen) != 0)
		return AL_E_AUTH;
	if (rl->iss != NULL) {
		const char *iss = json_string_value(json_object_get(payload, "iss"));
		if (iss == NULL || strcmp(iss, rl->iss) != 0) {
			seterr(err, errlen, "token issuer is not %s", rl->iss);
			return AL_E_AUTH;
		}
	}
	if (rl->aud != NULL) {
		const json_t *aud = json_object_get(payload, "aud");
		bool ok = json_is_string(aud) && strcmp(json_string_value(aud), rl->aud) == 0;
		size_t i;
		const json_t *a;
		if (json_is_array(aud))
			json_array_foreach(aud, i, a) ok |=
			    json_is_string(a) && strcmp(json_string_value(a), rl->aud) == 0;
		if (!ok) {
			seterr(err, errlen, "token audience does not include %s", rl->aud);
			return AL_E_AUTH;
		}
	}
	if (rl->require_exp && !has_exp) {
		seterr(err, errlen, "token has no \"exp\"");
		return AL_E_AUTH;
	}
	if (has_exp && rl->now >= exp + rl->skew) {
		seterr(err, errlen, "token expired %lld s ago", (long long)(rl->now - exp));
		return AL_E_AUTH;
	}
	if (has_nbf && rl->now + rl->skew < nbf) {
		seterr(err, errlen, "token is not valid for another %lld s",
		       (long long)(nbf - rl->now));
		return AL_E_AUTH;
	}
	if (has_iat && iat > rl->now + rl->skew) {
		seterr(err, errlen, "token was issued %lld s in the future",
		       (long long)(iat - rl->now));
		return AL_E_AUTH;
	}
	if (rl->max_lifetime > 0 && has_exp && exp - (has_iat ? iat : rl->now) > rl->max_lifetime) {
		seterr(err, errlen, "token lifetime exceeds %lld s", (long long)rl->max_lifetime);
		return AL_E_AUTH;
	}
	return 0;
}
