/* Trampolines for the OpenSSL functions the tree calls (macros such as SSL_CTX_set_mode,
 * BIO_flush or OPENSSL_free land on SSL_CTX_ctrl, BIO_ctrl, CRYPTO_free, ...), resolved
 * with dlopen/dlsym on first call; see ssl_dl.h. They are hidden so that the executable
 * never exports an OpenSSL name that libssl, or a dlopen'ed libcurl, could bind to. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* the real declarations: every trampoline below is checked against them */
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "dl_table.h"
#include "err.h"
#include "ssl_dl.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* F: returns a value, loads on first use, answers `fail` when OpenSSL is missing.
 * V: returns nothing, loads on first use.
 * N: releases or clears something only a loaded OpenSSL can have made, so it never
 *    loads: cleanup paths of a process that never used TLS stay free of OpenSSL. */
#define SSL_DL_FUNCTIONS(F, V, N)                                                                  \
	/* libssl */                                                                               \
	F(int, SSL_CTX_check_private_key, (const SSL_CTX *c), (c), 0)                              \
	F(long, SSL_CTX_ctrl, (SSL_CTX * c, int cmd, long l, void *p), (c, cmd, l, p), 0)          \
	N(SSL_CTX_free, (SSL_CTX * c), (c))                                                        \
	F(int, SSL_CTX_load_verify_locations, (SSL_CTX * c, const char *f, const char *d),         \
	  (c, f, d), 0)                                                                            \
	F(SSL_CTX *, SSL_CTX_new, (const SSL_METHOD *m), (m), NULL)                                \
	F(int, SSL_CTX_set_alpn_protos, (SSL_CTX * c, const unsigned char *p, unsigned int n),     \
	  (c, p, n), 1)                                                                            \
	V(SSL_CTX_set_alpn_select_cb, (SSL_CTX * c, SSL_CTX_alpn_select_cb_func cb, void *arg),    \
	  (c, cb, arg))                                                                            \
	F(int, SSL_CTX_set_ciphersuites, (SSL_CTX * c, const char *s), (c, s), 0)                  \
	F(int, SSL_CTX_set_default_verify_paths, (SSL_CTX * c), (c), 0)                            \
	F(uint64_t, SSL_CTX_set_options, (SSL_CTX * c, uint64_t op), (c, op), 0)                   \
	V(SSL_CTX_set_verify, (SSL_CTX * c, int mode, SSL_verify_cb cb), (c, mode, cb))            \
	F(int, SSL_CTX_use_PrivateKey_file, (SSL_CTX * c, const char *f, int type), (c, f, type),  \
	  0)                                                                                       \
	F(int, SSL_CTX_use_certificate_chain_file, (SSL_CTX * c, const char *f), (c, f), 0)        \
	F(int, SSL_accept, (SSL * s), (s), -1)                                                     \
	F(int, SSL_connect, (SSL * s), (s), -1)                                                    \
	F(long, SSL_ctrl, (SSL * s, int cmd, long l, void *p), (s, cmd, l, p), 0)                  \
	F(int, SSL_do_handshake, (SSL * s), (s), -1)                                               \
	N(SSL_free, (SSL * s), (s))                                                                \
	V(SSL_get0_alpn_selected, (const SSL *s, const unsigned char **d, unsigned int *n),        \
	  (s, d, n))                                                                               \
	F(X509_VERIFY_PARAM *, SSL_get0_param, (SSL * s), (s), NULL)                               \
	F(X509 *, SSL_get1_peer_certificate, (const SSL *s), (s), NULL)                            \
	F(const SSL_CIPHER *, SSL_get_current_cipher, (const SSL *s), (s), NULL)                   \
	F(const char *, SSL_CIPHER_get_name, (const SSL_CIPHER *c), (c), "(NONE)")                 \
	F(int, SSL_get_error, (const SSL *s, int rc), (s, rc), SSL_ERROR_SSL)                      \
	F(int, SSL_get_fd, (const SSL *s), (s), -1)                                                \
	F(long, SSL_get_verify_result, (const SSL *s), (s), X509_V_ERR_UNSPECIFIED)                \
	F(BIO *, SSL_get_wbio, (const SSL *s), (s), NULL)                                          \
	F(int, SSL_has_pending, (const SSL *s), (s), 0)                                            \
	F(SSL *, SSL_new, (SSL_CTX * c), (c), NULL)                                                \
	F(int, SSL_read, (SSL * s, void *b, int n), (s, b, n), -1)                                 \
	F(int, SSL_read_ex, (SSL * s, void *b, size_t n, size_t *got), (s, b, n, got), 0)          \
	F(int, SSL_select_next_proto,                                                              \
	  (unsigned char **out, unsigned char *outlen, const unsigned char *in,                    \
	   unsigned int inlen, const unsigned char *client, unsigned int clientlen),               \
	  (out, outlen, in, inlen, client, clientlen), OPENSSL_NPN_NO_OVERLAP)                     \
	F(int, SSL_set1_host, (SSL * s, const char *h), (s, h), 0)                                 \
	V(SSL_set_accept_state, (SSL * s), (s))                                                    \
	F(int, SSL_set_alpn_protos, (SSL * s, const unsigned char *p, unsigned int n), (s, p, n),  \
	  1)                                                                                       \
	V(SSL_set_bio, (SSL * s, BIO * r, BIO * w), (s, r, w))                                     \
	V(SSL_set_connect_state, (SSL * s), (s))                                                   \
	V(SSL_set_default_read_buffer_len, (SSL * s, size_t n), (s, n))                            \
	F(int, SSL_set_fd, (SSL * s, int fd), (s, fd), 0)                                          \
	V(SSL_set_read_ahead, (SSL * s, int yes), (s, yes))                                        \
	F(int, SSL_shutdown, (SSL * s), (s), -1)                                                   \
	F(int, SSL_write, (SSL * s, const void *b, int n), (s, b, n), -1)                          \
	F(int, SSL_write_ex, (SSL * s, const void *b, size_t n, size_t *put), (s, b, n, put), 0)   \
	F(const SSL_METHOD *, TLS_client_method, (void), (), NULL)                                 \
	F(const SSL_METHOD *, TLS_server_method, (void), (), NULL)                                 \
	/* libcrypto, found through libssl's handle (dlsym searches its dependencies) */           \
	F(int, ASN1_INTEGER_set, (ASN1_INTEGER * a, long v), (a, v), 0)                            \
	F(long, BIO_ctrl, (BIO * b, int cmd, long l, void *p), (b, cmd, l, p), 0)                  \
	F(const BIO_METHOD *, BIO_f_buffer, (void), (), NULL)                                      \
	F(int, BIO_free, (BIO * b), (b), 0)                                                        \
	F(long, BIO_int_ctrl, (BIO * b, int cmd, long l, int i), (b, cmd, l, i), 0)                \
	F(BIO *, BIO_new, (const BIO_METHOD *m), (m), NULL)                                        \
	F(BIO *, BIO_new_socket, (int fd, int close_flag), (fd, close_flag), NULL)                 \
	F(BIO *, BIO_push, (BIO * b, BIO * next), (b, next), NULL)                                 \
	F(int, BIO_test_flags, (const BIO *b, int flags), (b, flags), 0)                           \
	N(CRYPTO_free, (void *p, const char *file, int line), (p, file, line))                     \
	F(int, EVP_CIPHER_CTX_ctrl, (EVP_CIPHER_CTX * c, int type, int arg, void *p),              \
	  (c, type, arg, p), 0)                                                                    \
	N(EVP_CIPHER_CTX_free, (EVP_CIPHER_CTX * c), (c))                                          \
	F(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_new, (void), (), NULL)                                  \
	F(int, EVP_DecryptFinal_ex, (EVP_CIPHER_CTX * c, unsigned char *out, int *outl),           \
	  (c, out, outl), 0)                                                                       \
	F(int, EVP_DecryptInit_ex,                                                                 \
	  (EVP_CIPHER_CTX * c, const EVP_CIPHER *t, ENGINE *e, const unsigned char *key,           \
	   const unsigned char *iv),                                                               \
	  (c, t, e, key, iv), 0)                                                                   \
	F(int, EVP_DecryptUpdate,                                                                  \
	  (EVP_CIPHER_CTX * c, unsigned char *out, int *outl, const unsigned char *in, int inl),   \
	  (c, out, outl, in, inl), 0)                                                              \
	F(int, EVP_Digest,                                                                         \
	  (const void *d, size_t n, unsigned char *md, unsigned int *mdlen, const EVP_MD *t,       \
	   ENGINE *e),                                                                             \
	  (d, n, md, mdlen, t, e), 0)                                                              \
	F(int, EVP_DigestFinal_ex, (EVP_MD_CTX * c, unsigned char *md, unsigned int *n),           \
	  (c, md, n), 0)                                                                           \
	F(int, EVP_DigestInit_ex, (EVP_MD_CTX * c, const EVP_MD *t, ENGINE *e), (c, t, e), 0)      \
	F(int, EVP_DigestUpdate, (EVP_MD_CTX * c, const void *d, size_t n), (c, d, n), 0)          \
	F(int, EVP_EncodeBlock, (unsigned char *t, const unsigned char *f, int n), (t, f, n), -1)  \
	F(int, EVP_EncryptFinal_ex, (EVP_CIPHER_CTX * c, unsigned char *out, int *outl),           \
	  (c, out, outl), 0)                                                                       \
	F(int, EVP_EncryptInit_ex,                                                                 \
	  (EVP_CIPHER_CTX * c, const EVP_CIPHER *t, ENGINE *e, const unsigned char *key,           \
	   const unsigned char *iv),                                                               \
	  (c, t, e, key, iv), 0)                                                                   \
	F(int, EVP_EncryptUpdate,                                                                  \
	  (EVP_CIPHER_CTX * c, unsigned char *out, int *outl, const unsigned char *in, int inl),   \
	  (c, out, outl, in, inl), 0)                                                              \
	N(EVP_MD_CTX_free, (EVP_MD_CTX * c), (c))                                                  \
	F(EVP_MD_CTX *, EVP_MD_CTX_new, (void), (), NULL)                                          \
	F(EVP_MD *, EVP_MD_fetch, (OSSL_LIB_CTX * l, const char *a, const char *p), (l, a, p),     \
	  NULL)                                                                                    \
	N(EVP_PKEY_free, (EVP_PKEY * k), (k))                                                      \
	F(const EVP_CIPHER *, EVP_aes_256_gcm, (void), (), NULL)                                   \
	F(const EVP_MD *, EVP_sha256, (void), (), NULL)                                            \
	F(int, PEM_write_PrivateKey,                                                               \
	  (FILE * f, const EVP_PKEY *k, const EVP_CIPHER *enc, const unsigned char *kstr,          \
	   int klen, pem_password_cb *cb, void *u),                                                \
	  (f, k, enc, kstr, klen, cb, u), 0)                                                       \
	F(int, PEM_write_X509, (FILE * f, const X509 *x), (f, x), 0)                               \
	F(unsigned char *, SHA256, (const unsigned char *d, size_t n, unsigned char *md),          \
	  (d, n, md), NULL)                                                                        \
	F(X509_EXTENSION *, X509V3_EXT_conf_nid,                                                   \
	  (LHASH_OF(CONF_VALUE) * conf, X509V3_CTX * c, int nid, const char *value),               \
	  (conf, c, nid, value), NULL)                                                             \
	V(X509V3_set_ctx,                                                                          \
	  (X509V3_CTX * c, X509 * issuer, X509 * subject, X509_REQ * req, X509_CRL * crl,          \
	   int flags),                                                                             \
	  (c, issuer, subject, req, crl, flags))                                                   \
	N(X509_EXTENSION_free, (X509_EXTENSION * x), (x))                                          \
	F(int, X509_NAME_add_entry_by_txt,                                                         \
	  (X509_NAME * n, const char *field, int type, const unsigned char *b, int len, int loc,   \
	   int set),                                                                               \
	  (n, field, type, b, len, loc, set), 0)                                                   \
	F(int, X509_VERIFY_PARAM_set1_host, (X509_VERIFY_PARAM * p, const char *h, size_t n),      \
	  (p, h, n), 0)                                                                            \
	F(int, X509_VERIFY_PARAM_set1_ip_asc, (X509_VERIFY_PARAM * p, const char *ip), (p, ip), 0) \
	V(X509_VERIFY_PARAM_set_hostflags, (X509_VERIFY_PARAM * p, unsigned int f), (p, f))        \
	F(int, X509_add_ext, (X509 * x, X509_EXTENSION * e, int loc), (x, e, loc), 0)              \
	N(X509_free, (X509 * x), (x))                                                              \
	F(EVP_PKEY *, X509_get0_pubkey, (const X509 *x), (x), NULL)                                \
	F(ASN1_INTEGER *, X509_get_serialNumber, (X509 * x), (x), NULL)                            \
	F(X509_NAME *, X509_get_subject_name, (const X509 *x), (x), NULL)                          \
	F(ASN1_TIME *, X509_getm_notAfter, (const X509 *x), (x), NULL)                             \
	F(ASN1_TIME *, X509_getm_notBefore, (const X509 *x), (x), NULL)                            \
	F(ASN1_TIME *, X509_gmtime_adj, (ASN1_TIME * t, long adj), (t, adj), NULL)                 \
	F(X509 *, X509_new, (void), (), NULL)                                                      \
	F(int, X509_set_issuer_name, (X509 * x, const X509_NAME *n), (x, n), 0)                    \
	F(int, X509_set_pubkey, (X509 * x, EVP_PKEY * k), (x, k), 0)                               \
	F(int, X509_set_version, (X509 * x, long v), (x, v), 0)                                    \
	F(int, X509_sign, (X509 * x, EVP_PKEY * k, const EVP_MD *md), (x, k, md), 0)               \
	F(const char *, X509_verify_cert_error_string, (long n), (n), errmsg)                      \
	F(int, i2d_PUBKEY, (const EVP_PKEY *k, unsigned char **pp), (k, pp), -1)                   \
	/* JOSE (lib/jose.c): signatures over JWS, keys from JWK/PEM */                            \
	F(EVP_PKEY *, d2i_PUBKEY, (EVP_PKEY * *a, const unsigned char **pp, long n), (a, pp, n),   \
	  NULL)                                                                                    \
	F(int, EVP_DigestSign,                                                                     \
	  (EVP_MD_CTX * c, unsigned char *sig, size_t *siglen, const unsigned char *tbs,           \
	   size_t tbslen),                                                                         \
	  (c, sig, siglen, tbs, tbslen), 0)                                                        \
	F(int, EVP_DigestSignInit,                                                                 \
	  (EVP_MD_CTX * c, EVP_PKEY_CTX * *pc, const EVP_MD *md, ENGINE *e, EVP_PKEY *k),          \
	  (c, pc, md, e, k), 0)                                                                    \
	F(int, EVP_DigestVerify,                                                                   \
	  (EVP_MD_CTX * c, const unsigned char *sig, size_t siglen, const unsigned char *tbs,      \
	   size_t tbslen),                                                                         \
	  (c, sig, siglen, tbs, tbslen), -1)                                                       \
	F(int, EVP_DigestVerifyInit,                                                               \
	  (EVP_MD_CTX * c, EVP_PKEY_CTX * *pc, const EVP_MD *md, ENGINE *e, EVP_PKEY *k),          \
	  (c, pc, md, e, k), 0)                                                                    \
	F(int, EVP_PKEY_CTX_set_rsa_padding, (EVP_PKEY_CTX * c, int pad), (c, pad), 0)             \
	F(int, EVP_PKEY_CTX_set_rsa_pss_saltlen, (EVP_PKEY_CTX * c, int len), (c, len), 0)         \
	F(int, EVP_PKEY_get_bits, (const EVP_PKEY *k), (k), 0)                                     \
	F(EVP_PKEY *, PEM_read_PrivateKey,                                                         \
	  (FILE * f, EVP_PKEY * *x, pem_password_cb * cb, void *u), (f, x, cb, u), NULL)           \
	/* tunnel certificates (server/tunnel/tunnel_cert.c) and inner TLS */                      \
	F(int, ASN1_TIME_to_tm, (const ASN1_TIME *t, struct tm *tm), (t, tm), 0)                   \
	F(BIO *, BIO_new_mem_buf, (const void *b, int n), (b, n), NULL)                            \
	F(int, BIO_read, (BIO * b, void *d, int n), (b, d, n), -1)                                 \
	F(const BIO_METHOD *, BIO_s_mem, (void), (), NULL)                                         \
	F(int, BIO_write, (BIO * b, const void *d, int n), (b, d, n), -1)                          \
	F(size_t, BIO_ctrl_pending, (BIO * b), (b), 0)                                             \
	F(int, EVP_PKEY_get_base_id, (const EVP_PKEY *k), (k), 0)                                  \
	F(int, EVP_PKEY_get_utf8_string_param,                                                     \
	  (const EVP_PKEY *k, const char *n, char *s, size_t m, size_t *l), (k, n, s, m, l), 0)    \
	F(const char *, OBJ_nid2sn, (int n), (n), NULL)                                            \
	/* only tests sign with it: a SHA-1 CA must be refused */                                  \
	F(const EVP_MD *, EVP_sha1, (void), (), NULL)                                              \
	F(X509 *, PEM_read_bio_X509, (BIO * b, X509 * *x, pem_password_cb * cb, void *u),          \
	  (b, x, cb, u), NULL)                                                                     \
	F(int, SSL_CTX_use_certificate, (SSL_CTX * c, X509 * x), (c, x), 0)                        \
	F(int, SSL_CTX_use_PrivateKey, (SSL_CTX * c, EVP_PKEY * k), (c, k), 0)                     \
	F(X509_STORE *, SSL_CTX_get_cert_store, (const SSL_CTX *c), (c), NULL)                     \
	F(X509_VERIFY_PARAM *, SSL_CTX_get0_param, (SSL_CTX * c), (c), NULL)                       \
	F(SSL_SESSION *, SSL_get1_session, (SSL * s), (s), NULL)                                   \
	F(int, SSL_get_shutdown, (const SSL *s), (s), 0)                                           \
	F(int, SSL_session_reused, (const SSL *s), (s), 0)                                         \
	F(SSL_CTX *, SSL_get_SSL_CTX, (const SSL *s), (s), NULL)                                   \
	F(int, SSL_set_session, (SSL * s, SSL_SESSION * x), (s, x), 0)                             \
	N(SSL_SESSION_free, (SSL_SESSION * x), (x))                                                \
	F(int, SSL_SESSION_is_resumable, (const SSL_SESSION *x), (x), 0)                           \
	F(int, X509_EXTENSION_get_critical, (const X509_EXTENSION *e), (e), 0)                     \
	F(X509 *, X509_STORE_CTX_get_current_cert, (const X509_STORE_CTX *c), (c), NULL)           \
	F(int, X509_STORE_CTX_get_error_depth, (const X509_STORE_CTX *c), (c), -1)                 \
	V(X509_STORE_CTX_set_error, (X509_STORE_CTX * c, int e), (c, e))                           \
	F(int, X509_STORE_add_cert, (X509_STORE * s, X509 * x), (s, x), 0)                         \
	V(X509_VERIFY_PARAM_set_depth, (X509_VERIFY_PARAM * p, int d), (p, d))                     \
	F(int, X509_VERIFY_PARAM_set_flags, (X509_VERIFY_PARAM * p, unsigned long f), (p, f), 0)   \
	F(int, X509_digest, (const X509 *x, const EVP_MD *t, unsigned char *md, unsigned int *n),  \
	  (x, t, md, n), 0)                                                                        \
	F(const ASN1_TIME *, X509_get0_notAfter, (const X509 *x), (x), NULL)                       \
	F(const ASN1_TIME *, X509_get0_notBefore, (const X509 *x), (x), NULL)                      \
	F(const ASN1_OCTET_STRING *, X509_get0_subject_key_id, (X509 * x), (x), NULL)              \
	F(X509_EXTENSION *, X509_get_ext, (const X509 *x, int i), (x, i), NULL)                    \
	F(int, X509_get_ext_by_NID, (const X509 *x, int n, int last), (x, n, last), -1)            \
	F(uint32_t, X509_get_extension_flags, (X509 * x), (x), 0)                                  \
	F(uint32_t, X509_get_key_usage, (X509 * x), (x), 0)                                        \
	F(int, X509_get_signature_info, (X509 * x, int *md, int *pk, int *bits, uint32_t *fl),     \
	  (x, md, pk, bits, fl), 0)                                                                \
	F(EVP_PKEY *, PEM_read_bio_PrivateKey,                                                     \
	  (BIO * b, EVP_PKEY * *x, pem_password_cb * cb, void *u), (b, x, cb, u), NULL)            \
	/* the egress proxy's TLS termination (src/worker/egress_tls.c) */                         \
	F(const char *, SSL_get_servername, (const SSL *s, int type), (s, type), NULL)             \
	F(X509 *, PEM_read_X509, (FILE * f, X509 * *x, pem_password_cb * cb, void *u),             \
	  (f, x, cb, u), NULL)                                                                     \
	F(int, X509_check_private_key, (const X509 *x, const EVP_PKEY *k), (x, k), 0)              \
	F(int, RAND_bytes, (unsigned char *b, int n), (b, n), 0)                                   \
	F(X509_NAME *, X509_get_issuer_name, (const X509 *x), (x), NULL)                           \
	F(int, X509_check_host, (X509 * x, const char *h, size_t n, unsigned int fl, char **peer), \
	  (x, h, n, fl, peer), -2)                                                                 \
	F(int, X509_verify, (X509 * x, EVP_PKEY * k), (x, k), -1)                                  \
	F(int, X509_cmp_current_time, (const ASN1_TIME *t), (t), 0)                                \
	F(int, X509_NAME_cmp, (const X509_NAME *a, const X509_NAME *b), (a, b), -2)                \
	F(ASN1_TIME *, X509_time_adj_ex, (ASN1_TIME * s, int d, long sec, time_t *t),              \
	  (s, d, sec, t), NULL)                                                                    \
	F(X509 *, SSL_CTX_get0_certificate, (const SSL_CTX *c), (c), NULL)                         \
	F(int, X509_check_ip_asc, (X509 * x, const char *a, unsigned int fl), (x, a, fl), -2)      \
	F(const char *, X509_get_default_cert_file, (void), (), NULL)

/* resolved like the others, trampolines written by hand below: variadic, or answering
 * without a library */
#define SSL_DL_HAND_WRITTEN(X)                                                                     \
	X(ERR_clear_error)                                                                         \
	X(ERR_error_string_n) X(ERR_get_error) X(ERR_peek_error) X(EVP_PKEY_Q_keygen)

#define ENUM_F(ret, name, params, args, fail) I_##name,
#define ENUM_V(name, params, args) I_##name,
#define ENUM_H(name) I_##name,
enum { SSL_DL_FUNCTIONS(ENUM_F, ENUM_V, ENUM_V) SSL_DL_HAND_WRITTEN(ENUM_H) I_COUNT };

#define NAME_F(ret, name, params, args, fail) #name,
#define NAME_V(name, params, args) #name,
#define NAME_H(name) #name,
static const char *const names[I_COUNT] = {SSL_DL_FUNCTIONS(NAME_F, NAME_V, NAME_V)
                                               SSL_DL_HAND_WRITTEN(NAME_H)};

static void (*fn[I_COUNT])(void);
/* the function pointer with the type of OpenSSL's own declaration */
#define REAL(name) ((__typeof__(name) *)fn[I_##name])

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int state; /* 0 not tried, 1 loaded, -1 failed; written once, in load() */
static char errmsg[256] = "OpenSSL was not loaded";

static void
load(void)
{
	int r = dl_table_open("libssl.so.3", "libssl3", "OpenSSL 3.0 or newer needed", names, fn,
	                      I_COUNT, errmsg, sizeof(errmsg));
	__atomic_store_n(&state, r == 0 ? 1 : -1, __ATOMIC_RELEASE);
}

int
ssl_dl_load(void)
{
	pthread_once(&once, load);
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == 1 ? 0 : AL_E_IO;
}

const char *
ssl_dl_error(void)
{
	ssl_dl_load();
	return errmsg;
}

int
ssl_dl_loaded(void)
{
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == 1;
}

#define READY() (ssl_dl_load() == 0)

/* The table's trampolines, except the hand-written ones at its end. An object handed to
 * a trampoline can only come from a loaded OpenSSL, so `fail` answers only constructors
 * and lookups made while the library is missing. */
#define DEF_F(ret, name, params, args, fail)                                                       \
	HIDDEN ret name params                                                                     \
	{                                                                                          \
		return READY() ? REAL(name) args : (fail);                                         \
	}
#define DEF_V(name, params, args)                                                                  \
	HIDDEN void name params                                                                    \
	{                                                                                          \
		if (READY())                                                                       \
			REAL(name) args;                                                           \
	}
#define DEF_N(name, params, args)                                                                  \
	HIDDEN void name params                                                                    \
	{                                                                                          \
		if (ssl_dl_loaded())                                                               \
			REAL(name) args;                                                           \
	}
SSL_DL_FUNCTIONS(DEF_F, DEF_V, DEF_N)

/* OpenSSL's error queue is empty until OpenSSL runs, so clearing it never loads it.
 * Callers clear before every SSL_read/SSL_write (SSL_get_error needs an empty queue),
 * and OpenSSL 3's ERR_clear_error walks all 16 slots of the thread's queue: 840-1,700
 * instructions a call, 8 % of the gateway per small request. Peeking first costs ~200,
 * and an empty queue has nothing to clear. */
HIDDEN void
ERR_clear_error(void)
{
	if (ssl_dl_loaded() && REAL(ERR_peek_error)() != 0)
		REAL(ERR_clear_error)();
}

/* When the library is missing the constructor that failed left no error of its own:
 * NOT_LOADED stands in for one, and ERR_error_string_n spells it out, so callers' usual
 * "ERR_get_error, ERR_error_string_n" path reports the missing library. */
#define NOT_LOADED 0x7fffffffUL

static unsigned long
pending_error(unsigned long (*get)(void))
{
	if (ssl_dl_loaded())
		return get();
	return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == -1 ? NOT_LOADED : 0;
}

HIDDEN unsigned long
ERR_get_error(void)
{
	return pending_error(REAL(ERR_get_error));
}

HIDDEN unsigned long
ERR_peek_error(void)
{
	return pending_error(REAL(ERR_peek_error));
}

HIDDEN void
ERR_error_string_n(unsigned long e, char *b, size_t n)
{
	if (ssl_dl_loaded() && e != NOT_LOADED)
		REAL(ERR_error_string_n)(e, b, n);
	else if (n > 0)
		snprintf(b, n, "%s", ssl_dl_error());
}

/* Reads the variadic argument the way OpenSSL itself does for the key type (EVP_EC_gen
 * passes a curve name, EVP_RSA_gen a size_t of bits, the others nothing). */
HIDDEN EVP_PKEY *
EVP_PKEY_Q_keygen(OSSL_LIB_CTX *l, const char *q, const char *t, ...)
{
	if (!READY())
		return NULL;
	va_list ap;
	va_start(ap, t);
	EVP_PKEY *k;
	if (strcasecmp(t, "RSA") == 0)
		k = REAL(EVP_PKEY_Q_keygen)(l, q, t, va_arg(ap, size_t));
	else if (strcasecmp(t, "EC") == 0 || strcasecmp(t, "SM2") == 0)
		k = REAL(EVP_PKEY_Q_keygen)(l, q, t, va_arg(ap, char *));
	else
		k = REAL(EVP_PKEY_Q_keygen)(l, q, t);
	va_end(ap);
	return k;
}

/* Constant-time compare (auth.c checks tokens with it): no reason to map OpenSSL for
 * it, so it is ours rather than a trampoline. */
HIDDEN int
CRYPTO_memcmp(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d;
}
