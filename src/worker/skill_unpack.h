/* Unpacks a skill bundle (a ustar archive from GET /v1/skills/{id}/versions/{v}/content)
 * into a directory, with the SDK worker's rules (docs/worker/skills.md): regular files and
 * directories only (links, devices and FIFOs are dropped), no absolute member and no ".." segment,
 * one wrapper directory stripped, files 0755 when any exec bit was set else 0644,
 * bounded sizes. Parsing is separate from writing so the parser can be fuzzed alone
 * (tests/fuzz/fuzz_skill_unpack.c). docs/worker/skills.md. */
#ifndef AL_WORKER_SKILL_UNPACK_H
#define AL_WORKER_SKILL_UNPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SKILL_UNPACK_MAX_BYTES (64u << 20) /* archive bytes */
#define SKILL_UNPACK_MAX_MEMBERS 10000
#define SKILL_UNPACK_MAX_PATH 1024

struct skill_member {
	char path[SKILL_UNPACK_MAX_PATH + 1]; /* wrapper directory not yet stripped */
	bool dir;
	unsigned mode;
	const char *data; /* into the archive */
	size_t size;
};

/* Calls fn for each regular file or directory member in order; other types are skipped.
 * 0, AL_E_INVAL (malformed: bad checksum, size past the end, an unsafe path) with why set,
 * AL_E_TOOBIG (a bound), or fn's error. */
typedef int skill_member_fn(const struct skill_member *m, void *arg);
int skill_tar_walk(const char *tar, size_t len, skill_member_fn *fn, void *arg, const char **why);

/* Unpacks into dest (a directory path, created 0755; it must not exist), stripping a
 * single top directory that holds every member. 0, or an error with why set; on an
 * error dest may hold part of the bundle: the caller removes it. */
int skill_unpack(const char *tar, size_t len, const char *dest, const char **why);

/* Removes path and everything below it (no symlink is followed; depth ≤ 64). */
int skill_remove_tree(const char *path);
/* The same for name beneath the directory dfd (name itself not followed either). */
int skill_remove_at(int dfd, const char *name);

#endif
