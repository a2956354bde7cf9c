/* What a skill bundle upload must be (docs/server/skills.md): the path of each file, the
 * SKILL.md front matter, and the ustar records the bundle is stored as. Pure functions
 * over untrusted bytes: fuzzed by tests/fuzz/fuzz_skill_bundle.c. */
#ifndef AL_SERVER_SKILL_BUNDLE_H
#define AL_SERVER_SKILL_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SKILL_MAX_PATH 255          /* bytes of a file's path in the bundle */
#define SKILL_MAX_DEPTH 16          /* segments of a path */
#define SKILL_MAX_FILES 1000        /* files in a bundle */
#define SKILL_MAX_BYTES (30u << 20) /* all files' bytes together */
#define SKILL_MAX_NAME 64
#define SKILL_MAX_DESCRIPTION 1024
#define SKILL_FRONT_MAX 65536 /* bytes of SKILL.md read for its front matter */
#define SKILL_TAR_BLOCK 512

/* A bundle path: relative, '/'-separated, at least two segments (the bundle's top-level
 * directory, then the file), each segment non-empty and not "." or "..", no backslash,
 * no control character or NUL, valid UTF-8, ≤ SKILL_MAX_PATH bytes and SKILL_MAX_DEPTH
 * segments. NULL when fine, else why (for a 400). */
const char *skill_path_error(const char *path);

/* The front matter of SKILL.md (text, len bytes; the head of the file is enough):
 * "---" line, "key: value" lines (quoted values unquoted, indented lines continue the
 * value before them), "---" line. name: 1-64 of [a-z0-9-], without "anthropic" or
 * "claude"; description: 1-1024 bytes, no '<' or '>'. 0, or AL_E_INVAL with why set. */
struct skill_meta {
	char name[SKILL_MAX_NAME + 1];
	char description[SKILL_MAX_DESCRIPTION + 1];
};
int skill_front_matter(const char *text, size_t len, struct skill_meta *out, const char **why);

/* A ustar header for a regular file (mode 0644, mtime given) of size bytes at path
 * (a checked bundle path; long ones split into prefix/name). 0, or AL_E_TOOBIG when the
 * path cannot be split to fit. */
int skill_tar_header(const char *path, uint64_t size, int64_t mtime,
                     unsigned char out[SKILL_TAR_BLOCK]);

#endif
