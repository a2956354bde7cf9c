/* TLS termination at the egress proxy (issue 14): the worker's CA, the leaf certificates
 * it signs for credential hosts, the origin-side context that verifies against the
 * system trust, and a non-blocking bridge between one TLS connection and a plaintext
 * socket on the worker's loop. docs/worker/egress.md "TLS termination". */
#ifndef AL_WORKER_EGRESS_TLS_H
#define AL_WORKER_EGRESS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct loop;
struct egress_ca;
struct egress_tls_bridge;

#define EGRESS_LEAF_VALIDITY_S (24 * 3600) /* a leaf lives one day... */
#define EGRESS_LEAF_RENEW_S 3600           /* ...and is made anew in its last hour */
#define EGRESS_LEAF_CACHE 64               /* hosts whose leaf is kept */

/* The CA from cert_file/key_file (both, PEM), or, with neither, the one in
 * <state_dir>/egress-ca.{crt,key} (made there, 0600, when missing: EC P-256, ten years).
 * origin_ca_file: extra CAs an origin may chain to besides the system's (NULL: none).
 * AL_E_INVAL with err filled for a missing, mismatched or non-CA pair. */
int egress_ca_open(const char *cert_file, const char *key_file, const char *state_dir,
                   const char *origin_ca_file, struct egress_ca **out, char *err, size_t errlen);
void egress_ca_free(struct egress_ca *ca);
/* The CA certificate, PEM (owned by ca). */
const char *egress_ca_pem(const struct egress_ca *ca);
/* Writes path (0644): the system's trusted CAs (sys_bundle; NULL: the Debian bundle
 * /etc/ssl/certs/ca-certificates.crt, else OpenSSL's default certificate file, skipped
 * when absent) followed by the CA. */
int egress_ca_write_bundle(const struct egress_ca *ca, const char *sys_bundle, const char *path,
                           char *err, size_t errlen);
/* A leaf for host (a name or an IP literal) signed by the CA, valid now-1h ..
 * now+EGRESS_LEAF_VALIDITY_S, in a server context ready to accept with (owned by the
 * cache: valid until the next call). Made once per host and kept (at most
 * EGRESS_LEAF_CACHE hosts, the oldest made goes) until its last hour. NULL on failure. */
SSL_CTX *egress_ca_leaf_ctx(struct egress_ca *ca, const char *host, int64_t now_s);
/* The leaf certificate of that context (tests). */
X509 *egress_ca_leaf_cert(SSL_CTX *leaf);
X509 *egress_ca_cert(const struct egress_ca *ca);
/* A new client-side SSL for the origin: SNI and host check for host, verification on
 * (the system trust plus origin_ca_file; never weaker). NULL on failure. */
SSL *egress_ca_origin_ssl(struct egress_ca *ca, const char *host, bool is_ip);

/* Drives ssl's handshake on fd (non-blocking; the bridge takes both), then calls
 * done(arg, ok, why): ok false frees the bridge (fd closed) right after the call and why
 * says what failed. On success the caller hands a plaintext socket with
 * egress_tls_bridge_start: bytes then move both ways until either side ends; then the
 * bridge closes its fds and frees itself. deadline_ms bounds the handshake; idle_ms a
 * bridge silent both ways. */
typedef void egress_tls_done_cb(void *arg, bool ok, const char *why);
struct egress_tls_bridge *egress_tls_bridge_new(struct loop *l, SSL *ssl, int fd, bool server,
                                                uint64_t deadline_ms, uint64_t idle_ms,
                                                egress_tls_done_cb *done, void *arg);
void egress_tls_bridge_start(struct egress_tls_bridge *b, int plain_fd);
SSL *egress_tls_bridge_ssl(struct egress_tls_bridge *b);
/* Closes and frees a bridge (its handshake callback is not called). NULL ok. */
void egress_tls_bridge_free(struct egress_tls_bridge *b);

#endif
