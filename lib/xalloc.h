/* Allocation wrappers that abort on OOM: daemons run under memory limits, and a
 * half-handled allocation failure is worse than a clean restart. Sizes that input can
 * influence must be bounded by the caller before they get here. */
#ifndef AL_XALLOC_H
#define AL_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Zero memory in a way the compiler cannot elide (for secrets). */
void explicit_wipe(void *p, size_t n);
/* Wipe a NUL-terminated secret and free it. Accepts NULL. */
void secret_free(char *s);
/* Wipe a whole heap block (malloc_usable_size) and free it; accepts NULL. The free of
 * json_set_alloc_funcs in processes that parse or build JSON holding credentials:
 * jansson copies strings into its own blocks, out of reach of the caller. */
void wipe_free(void *p);

#endif
