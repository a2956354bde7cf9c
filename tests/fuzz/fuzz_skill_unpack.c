/* Fuzzes the worker's ustar reader (src/worker/skill_unpack.c, skill_tar_walk): any
 * bytes as a skill archive. Every member it reports must have a safe path (relative, no
 * empty, "." or ".." segment) and data inside the input. Nothing is written to disk. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "skill_unpack.h"

struct span {
	const char *p;
	size_t n;
};

static int
check(const struct skill_member *m, void *arg)
{
	const struct span *in = arg;
	if (m->path[0] == '\0' || m->path[0] == '/' || strstr(m->path, "//") ||
	    strncmp(m->path, "../", 3) == 0 || strstr(m->path, "/../") ||
	    strcmp(m->path, "..") == 0)
		abort();
	size_t n = strlen(m->path);
	if ((n >= 3 && strcmp(m->path + n - 3, "/..") == 0) || strcmp(m->path, ".") == 0)
		abort();
	if (m->data < in->p || m->size > in->n || m->data + m->size > in->p + in->n)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct span in = {(const char *)data, size};
	const char *why = NULL;
	int r = skill_tar_walk((const char *)data, size, check, &in, &why);
	if (r != 0 && why == NULL)
		abort();
	return 0;
}
