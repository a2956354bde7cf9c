/* Fuzzes the skill bundle rules (src/server/api/skill_bundle.c): the input is a bundle
 * path (first line) and a SKILL.md (the rest). A path the rules accept must make a
 * ustar header whose checksum adds up and whose name fields give the path back; a front
 * matter they accept must give a name and description within the documented rules. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "skill_bundle.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	size_t plen = nl ? (size_t)(nl - in) : size;
	char *path = strndup(in, plen);
	if (skill_path_error(path) == NULL) {
		unsigned char h[SKILL_TAR_BLOCK];
		if (strncmp(path, "../", 3) == 0 || strstr(path, "/../") || path[0] == '/')
			abort();
		if (skill_tar_header(path, 12345, 1, h) == 0) {
			unsigned sum = 0;
			for (size_t i = 0; i < SKILL_TAR_BLOCK; i++)
				sum += i >= 148 && i < 156 ? ' ' : h[i];
			if (strtoul((const char *)h + 148, NULL, 8) != sum)
				abort();
			char back[SKILL_MAX_PATH + 2];
			size_t pl = strnlen((const char *)h + 345, 155),
			       nl2 = strnlen((const char *)h, 100);
			size_t k = 0;
			if (pl) {
				memcpy(back, h + 345, pl);
				back[pl] = '/';
				k = pl + 1;
			}
			memcpy(back + k, h, nl2);
			back[k + nl2] = '\0';
			if (strcmp(back, path) != 0)
				abort();
		}
	}
	free(path);
	if (nl) {
		struct skill_meta m;
		const char *why = NULL;
		size_t mlen = size - plen - 1;
		if (skill_front_matter(nl + 1, mlen, &m, &why) == 0) {
			size_t n = strlen(m.name);
			if (n == 0 || n > SKILL_MAX_NAME ||
			    strspn(m.name, "abcdefghijklmnopqrstuvwxyz0123456789-") != n ||
			    m.description[0] == '\0' || strchr(m.description, '<'))
				abort();
		} else if (why == NULL) {
			abort();
		}
	}
	return 0;
}
