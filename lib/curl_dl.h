/* libcurl loaded on first use instead of linked: the worker and its privileged monitor
 * never map libcurl's dependency chain (gnutls, krb5, ldap, ssh2, ...) unless a transfer
 * actually goes through curl. Include this instead of <curl/curl.h>; call sites stay
 * the same, because lib/curl_dl.c defines each curl_* function the tree uses as a
 * trampoline into the dlopen'ed library. See docs/lib/httpc.md. */
#ifndef AL_CURL_DL_H
#define AL_CURL_DL_H

#include <curl/curl.h>

/* Loads libcurl.so.4 and runs curl_global_init once (thread-safe). 0, or AL_E_IO when
 * the library or one of its functions is missing; curl_dl_error() then says why. Every
 * trampoline calls this itself; callers use it to fail early with a clear message. */
int curl_dl_load(void);
/* Why the load failed ("" when it did not), e.g. "libcurl.so.4 not found: apt-get
 * install libcurl4". */
const char *curl_dl_error(void);
/* Whether libcurl is mapped in this process (tests, the worker's memory check). */
int curl_dl_loaded(void);

#endif
