/* Trampolines for the libcurl functions the tree uses, resolved with dlopen/dlsym on
 * first call; see curl_dl.h. They are hidden so that the executable never exports a
 * curl_* symbol that the dlopen'ed libcurl could bind its own internal calls to. */
#define CURL_DISABLE_TYPECHECK /* we define curl_easy_setopt itself, not call it */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>

#include "curl_dl.h"
#include "err.h"

#define HIDDEN __attribute__((visibility("hidden")))

static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	CURLcode (*easy_pause)(CURL *, int);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	CURLU *(*url)(void);
	void (*url_cleanup)(CURLU *);
	CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
	CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
	void (*free)(void *);
} fn;

#define SYM(name)                                                                                  \
	{                                                                                          \
		"curl_" #name, offsetof(__typeof__(fn), name)                                      \
	}
static const struct {
	const char *name;
	size_t off;
} syms[] = {
    SYM(global_init),      SYM(easy_init),
    SYM(easy_cleanup),     SYM(easy_reset),
    SYM(easy_setopt),      SYM(easy_getinfo),
    SYM(easy_strerror),    SYM(easy_pause),
    SYM(multi_init),       SYM(multi_cleanup),
    SYM(multi_add_handle), SYM(multi_remove_handle),
    SYM(multi_setopt),     SYM(multi_socket_action),
    SYM(multi_info_read),  SYM(slist_append),
    SYM(slist_free_all),   SYM(url),
    SYM(url_cleanup),      SYM(url_set),
    SYM(url_get),          SYM(free),
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int load_err = AL_E_IO;
static char errmsg[256] = "libcurl was not loaded";

static void
load(void)
{
	/* RTLD_LOCAL: libcurl's own symbols stay out of the global scope */
	void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		snprintf(errmsg, sizeof(errmsg),
		         "libcurl.so.4 not found: apt-get install libcurl4 (%s)", dlerror());
		return;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *p = dlsym(h, syms[i].name);
		if (p == NULL) {
			snprintf(errmsg, sizeof(errmsg),
			         "libcurl.so.4 lacks %s: libcurl 7.80 or newer needed",
			         syms[i].name);
			dlclose(h);
			return;
		}
		/* POSIX guarantees a dlsym result converts to a function pointer */
		*(void **)((char *)&fn + syms[i].off) = p;
	}
	if (fn.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(errmsg, sizeof(errmsg), "curl_global_init failed");
		return; /* the handle stays open: a failed init may have left threads or hooks */
	}
	errmsg[0] = '\0';
	load_err = 0;
}

int
curl_dl_load(void)
{
	pthread_once(&once, load);
	return load_err;
}

const char *
curl_dl_error(void)
{
	curl_dl_load();
	return errmsg;
}

int
curl_dl_loaded(void)
{
	/* no load here: asking must not map the library */
	return fn.global_init != NULL && load_err == 0;
}

/* Each trampoline loads on first use and answers like libcurl does for a bad handle
 * when the library is missing, so callers' existing error paths apply. */
#define READY() (curl_dl_load() == 0)

HIDDEN CURLcode
curl_global_init(long flags)
{
	(void)flags; /* load() initialized with the default flags, the only ones we use */
	return READY() ? CURLE_OK : CURLE_FAILED_INIT;
}

HIDDEN CURL *
curl_easy_init(void)
{
	return READY() ? fn.easy_init() : NULL;
}

HIDDEN void
curl_easy_cleanup(CURL *e)
{
	if (READY())
		fn.easy_cleanup(e);
}

HIDDEN void
curl_easy_reset(CURL *e)
{
	if (READY())
		fn.easy_reset(e);
}

/* The variadic ones: libcurl itself reads the argument by the option's type range
 * (long, object pointer, function pointer, curl_off_t), so we read and pass it on the
 * same way. */
HIDDEN CURLcode
curl_easy_setopt(CURL *e, CURLoption o, ...)
{
	if (!READY())
		return CURLE_FAILED_INIT;
	va_list ap;
	va_start(ap, o);
	CURLcode rc;
	if (o < CURLOPTTYPE_OBJECTPOINT)
		rc = fn.easy_setopt(e, o, va_arg(ap, long));
	else if (o < CURLOPTTYPE_FUNCTIONPOINT)
		rc = fn.easy_setopt(e, o, va_arg(ap, void *));
	else if (o < CURLOPTTYPE_OFF_T)
		rc = fn.easy_setopt(e, o, va_arg(ap, void (*)(void)));
	else if (o < CURLOPTTYPE_BLOB)
		rc = fn.easy_setopt(e, o, va_arg(ap, curl_off_t));
	else
		rc = fn.easy_setopt(e, o, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

HIDDEN CURLcode
curl_easy_getinfo(CURL *e, CURLINFO i, ...)
{
	if (!READY())
		return CURLE_FAILED_INIT;
	va_list ap;
	va_start(ap, i);
	CURLcode rc = fn.easy_getinfo(e, i, va_arg(ap, void *)); /* always a pointer */
	va_end(ap);
	return rc;
}

HIDDEN const char *
curl_easy_strerror(CURLcode rc)
{
	return READY() ? fn.easy_strerror(rc) : errmsg;
}

HIDDEN CURLcode
curl_easy_pause(CURL *e, int bitmask)
{
	return READY() ? fn.easy_pause(e, bitmask) : CURLE_FAILED_INIT;
}

HIDDEN CURLM *
curl_multi_init(void)
{
	return READY() ? fn.multi_init() : NULL;
}

HIDDEN CURLMcode
curl_multi_cleanup(CURLM *m)
{
	return READY() ? fn.multi_cleanup(m) : CURLM_BAD_HANDLE;
}

HIDDEN CURLMcode
curl_multi_add_handle(CURLM *m, CURL *e)
{
	return READY() ? fn.multi_add_handle(m, e) : CURLM_BAD_HANDLE;
}

HIDDEN CURLMcode
curl_multi_remove_handle(CURLM *m, CURL *e)
{
	return READY() ? fn.multi_remove_handle(m, e) : CURLM_BAD_HANDLE;
}

HIDDEN CURLMcode
curl_multi_setopt(CURLM *m, CURLMoption o, ...)
{
	if (!READY())
		return CURLM_BAD_HANDLE;
	va_list ap;
	va_start(ap, o);
	CURLMcode rc;
	if (o < CURLOPTTYPE_OBJECTPOINT)
		rc = fn.multi_setopt(m, o, va_arg(ap, long));
	else if (o < CURLOPTTYPE_FUNCTIONPOINT)
		rc = fn.multi_setopt(m, o, va_arg(ap, void *));
	else if (o < CURLOPTTYPE_OFF_T)
		rc = fn.multi_setopt(m, o, va_arg(ap, void (*)(void)));
	else
		rc = fn.multi_setopt(m, o, va_arg(ap, curl_off_t));
	va_end(ap);
	return rc;
}

HIDDEN CURLMcode
curl_multi_socket_action(CURLM *m, curl_socket_t s, int ev_bitmask, int *running)
{
	return READY() ? fn.multi_socket_action(m, s, ev_bitmask, running) : CURLM_BAD_HANDLE;
}

HIDDEN CURLMsg *
curl_multi_info_read(CURLM *m, int *left)
{
	if (READY())
		return fn.multi_info_read(m, left);
	*left = 0;
	return NULL;
}

HIDDEN struct curl_slist *
curl_slist_append(struct curl_slist *l, const char *s)
{
	return READY() ? fn.slist_append(l, s) : NULL;
}

HIDDEN void
curl_slist_free_all(struct curl_slist *l)
{
	if (READY())
		fn.slist_free_all(l);
}

HIDDEN CURLU *
curl_url(void)
{
	return READY() ? fn.url() : NULL;
}

HIDDEN void
curl_url_cleanup(CURLU *u)
{
	if (READY())
		fn.url_cleanup(u);
}

HIDDEN CURLUcode
curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags)
{
	return READY() ? fn.url_set(u, what, part, flags) : CURLUE_BAD_HANDLE;
}

/* curl 7.88's signature; later releases made the handle const */
HIDDEN CURLUcode
curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags)
{
	return READY() ? fn.url_get(u, what, part, flags) : CURLUE_BAD_HANDLE;
}

HIDDEN void
curl_free(void *p)
{
	if (READY())
		fn.free(p);
}
