/* A library loaded on first use (lib/ssl_dl.c, src/server/store/pq_dl.c): dlopen'ed
 * RTLD_LOCAL, so its symbols stay out of the global scope, and a table of its functions
 * resolved by name. Why load late at all: one binary serves every role, and a role that
 * never uses the library must start on a host without it (docs/lib/tls.md). */
#ifndef AL_DL_TABLE_H
#define AL_DL_TABLE_H

#include <stddef.h>

/* Opens soname and fills fn[i] with names[i] for i < n. 0, with errmsg ""; or AL_E_IO
 * with errmsg naming what is missing: the library (with `apt-get install package`) or a
 * function (with `needs`, e.g. "OpenSSL 3.0 or newer needed"; NULL says nothing more).
 * On failure the library is closed again and fn may hold some entries: callers keep a
 * loaded/failed state and never call through a table that failed. */
int dl_table_open(const char *soname, const char *package, const char *needs,
                  const char *const *names, void (**fn)(void), size_t n, char *errmsg,
                  size_t errlen);

#endif
