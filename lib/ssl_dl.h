/* OpenSSL (libssl.so.3 + libcrypto.so.3) loaded on first use instead of linked: a worker
 * that talks http://, its privileged monitor and the sandbox spares never map or relocate
 * OpenSSL. Call sites keep including <openssl/...> and calling SSL_*, EVP_*, ... directly:
 * lib/ssl_dl.c defines each OpenSSL function the tree uses as a hidden trampoline into the
 * dlopen'ed library. See docs/lib/tls.md. */
#ifndef AL_SSL_DL_H
#define AL_SSL_DL_H

/* Loads libssl.so.3 and resolves every function the tree uses, once (thread-safe). 0, or
 * AL_E_IO when the library or one of its functions is missing; ssl_dl_error() then says
 * why. Every trampoline calls this itself; callers use it to fail early and clearly. */
int ssl_dl_load(void);
/* Why the load failed ("" when it did not), e.g. "libssl.so.3 not found: apt-get install
 * libssl3 (...)". */
const char *ssl_dl_error(void);
/* Whether OpenSSL is loaded in this process; asking never loads it (tests, memory checks). */
int ssl_dl_loaded(void);

#endif
