/* dl_table.h: dlopen a library and resolve a table of its functions. */
#include <dlfcn.h>
#include <stdio.h>

#include "dl_table.h"
#include "err.h"

int
dl_table_open(const char *soname, const char *package, const char *needs, const char *const *names,
              void (**fn)(void), size_t n, char *errmsg, size_t errlen)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		snprintf(errmsg, errlen, "%s not found: apt-get install %s (%s)", soname, package,
		         dlerror());
		return AL_E_IO;
	}
	for (size_t i = 0; i < n; i++) {
		void *p = dlsym(h, names[i]);
		if (p == NULL) {
			snprintf(errmsg, errlen, "%s lacks %s%s%s", soname, names[i],
			         needs ? ": " : "", needs ? needs : "");
			dlclose(h);
			return AL_E_IO;
		}
		*(void **)&fn[i] = p; /* POSIX: a dlsym result converts to a function pointer */
	}
	if (errlen > 0)
		errmsg[0] = '\0';
	return 0;
}
