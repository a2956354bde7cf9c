/* Server-side TLS context setup; see tls.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "err.h"
#include "tls.h"
#include "xalloc.h"

struct tls_alpn_list {
	unsigned char wire[64];
	size_t len;
};

static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
	struct tls_alpn_list *a = arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen, a->wire, (unsigned)a->len, in,
	                          inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

static void
fill_err(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[200];
	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s %s: %s", what, file, e ? buf : "unknown error");
	ERR_clear_error();
}

struct tls_server_ctx *
tls_server_ctx_new(const char *cert_file, const char *key_file, const char *const *alpn, char *err,
                   size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		fill_err(err, errlen, "cannot create TLS context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		fill_err(err, errlen, "cannot load certificate", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		fill_err(err, errlen, "cannot load private key", key_file);
		goto fail;
	}
	struct tls_alpn_list *a = NULL;
	if (alpn && alpn[0]) {
		/* The list lives as long as the context: tls_server_ctx_free releases it. */
		a = xcalloc(1, sizeof(*a));
		for (size_t i = 0; alpn[i]; i++) {
			size_t n = strlen(alpn[i]);
			if (n == 0 || n > 32 || a->len + n + 1 > sizeof(a->wire))
				break;
			a->wire[a->len++] = (unsigned char)n;
			memcpy(a->wire + a->len, alpn[i], n);
			a->len += n;
		}
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, a);
	}
	struct tls_server_ctx *t = xcalloc(1, sizeof(*t));
	t->ctx = ctx;
	t->alpn = a;
	return t;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
tls_server_ctx_reload(struct tls_server_ctx *t, const char *cert_file, const char *key_file,
                      char *err, size_t errlen)
{
	/* Load into a throwaway context first: a bad pair must leave the running one whole. */
	struct tls_server_ctx *probe = tls_server_ctx_new(cert_file, key_file, NULL, err, errlen);
	if (probe == NULL)
		return AL_E_INVAL;
	tls_server_ctx_free(probe);
	/* Each connection copies the certificate from the context when it is accepted, so
	 * this applies to new connections only; open ones keep theirs. One thread: nothing
	 * accepts between the two calls. */
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) {
		fill_err(err, errlen, "cannot load certificate", cert_file);
		return AL_E_INVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t->ctx) != 1) {
		fill_err(err, errlen, "cannot load private key (changed while reloading?)",
		         key_file);
		return AL_E_INVAL;
	}
	return 0;
}

void
tls_server_ctx_free(struct tls_server_ctx *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t->alpn);
	free(t);
}
