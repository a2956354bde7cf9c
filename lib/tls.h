/* TLS contexts (OpenSSL 3) for the HTTP server and the tunnel edge: TLS 1.2+ server
 * side from PEM cert/key files. Client-side TLS goes through libcurl or the gateway's
 * own context. */
#ifndef AL_TLS_H
#define AL_TLS_H

#include <openssl/ssl.h>

struct tls_alpn_list;

struct tls_server_ctx {
	SSL_CTX *ctx;
	struct tls_alpn_list *alpn; /* owned; the select callback points into it */
};

/* Loads cert (chain) and key; on failure returns NULL and fills err (≥256 bytes). */
struct tls_server_ctx *tls_server_ctx_new(const char *cert_file, const char *key_file,
                                          const char *const *alpn, char *err, size_t errlen);
/* Loads the pair again into t (certificate rotation on SIGHUP) after checking it in a
 * throwaway context: on failure fills err and the running certificate stays. New
 * connections get the new certificate; open ones keep theirs. */
int tls_server_ctx_reload(struct tls_server_ctx *t, const char *cert_file, const char *key_file,
                          char *err, size_t errlen);
void tls_server_ctx_free(struct tls_server_ctx *t);

#endif
