/* ustar reading and careful writing of skill bundles; see skill_unpack.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "skill_unpack.h"
#include "xalloc.h"

#define BLOCK 512

static int
octal(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	while (i < n && p[i] == ' ')
		i++;
	if (i == n || p[i] < '0' || p[i] > '7')
		return AL_E_INVAL;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		if (v > (UINT64_MAX >> 3))
			return AL_E_INVAL;
		v = v * 8 + (uint64_t)(p[i] - '0');
	}
	for (; i < n; i++)
		if (p[i] != ' ' && p[i] != '\0')
			return AL_E_INVAL;
	*out = v;
	return 0;
}

static bool
zero_block(const char *b)
{
	for (size_t i = 0; i < BLOCK; i++)
		if (b[i] != 0)
			return false;
	return true;
}

/* Relative, no empty, "." or ".." segments (a trailing '/' on a directory is dropped). */
static bool
path_safe(char *p)
{
	size_t n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		p[--n] = '\0';
	if (n == 0 || p[0] == '/')
		return false;
	for (const char *s = p;;) {
		const char *e = strchr(s, '/');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len == 0 || (len == 1 && s[0] == '.') ||
		    (len == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == '\\')
				return false;
		if (e == NULL)
			return true;
		s = e + 1;
	}
}

int
skill_tar_walk(const char *tar, size_t len, skill_member_fn *fn, void *arg, const char **why)
{
	size_t off = 0, members = 0;
	*why = NULL;
	if (len > SKILL_UNPACK_MAX_BYTES) {
		*why = "skill archive too large";
		return AL_E_TOOBIG;
	}
	while (off + BLOCK <= len) {
		const char *h = tar + off;
		if (zero_block(h))
			return 0; /* the end (a second zero block may follow) */
		uint64_t sum = 0, want, size, mode;
		for (size_t i = 0; i < BLOCK; i++)
			sum += (i >= 148 && i < 156) ? ' ' : (unsigned char)h[i];
		if (octal(h + 148, 8, &want) != 0 || want != sum) {
			*why = "skill archive: bad header checksum";
			return AL_E_INVAL;
		}
		if (memcmp(h + 257, "ustar", 5) != 0) {
			*why = "skill archive: not a ustar archive";
			return AL_E_INVAL;
		}
		if (octal(h + 124, 12, &size) != 0 || octal(h + 100, 8, &mode) != 0) {
			*why = "skill archive: bad size or mode";
			return AL_E_INVAL;
		}
		off += BLOCK;
		if (size > len - off) {
			*why = "skill archive: a member runs past the end";
			return AL_E_INVAL;
		}
		if (++members > SKILL_UNPACK_MAX_MEMBERS) {
			*why = "skill archive: too many members";
			return AL_E_TOOBIG;
		}
		char type = h[156];
		if (type == '0' || type == '\0' || type == '5') {
			struct skill_member m = {.dir = type == '5', .mode = (unsigned)mode};
			size_t pl = strnlen(h + 345, 155), nl = strnlen(h, 100);
			if (pl) {
				memcpy(m.path, h + 345, pl);
				m.path[pl] = '/';
				pl++;
			}
			memcpy(m.path + pl, h, nl);
			m.path[pl + nl] = '\0';
			if (!path_safe(m.path)) {
				*why = "skill archive: an absolute or '..' member";
				return AL_E_INVAL;
			}
			m.data = tar + off;
			m.size = m.dir ? 0 : (size_t)size;
			int r = fn(&m, arg);
			if (r != 0)
				return r;
		}
		/* links, devices, FIFOs, pax and GNU extension headers: dropped (their data
		 * skipped) — the server writes none */
		off += (size_t)((size + BLOCK - 1) / BLOCK * BLOCK);
	}
	*why = "skill archive: no end blocks";
	return AL_E_INVAL;
}

/* ---- writing ---- */

struct top_scan {
	char top[SKILL_UNPACK_MAX_PATH + 1];
	bool any, common, nested;
};

static int
scan_top(const struct skill_member *m, void *arg)
{
	struct top_scan *t = arg;
	size_t n = strcspn(m->path, "/");
	if (!t->any) {
		snprintf(t->top, sizeof(t->top), "%.*s", (int)n, m->path);
		t->any = t->common = true;
	} else if (strlen(t->top) != n || strncmp(t->top, m->path, n) != 0) {
		t->common = false;
	}
	if (m->path[n] == '/')
		t->nested = true;
	return 0;
}

struct writer {
	int root; /* dest's fd */
	size_t strip;
};

/* Opens (creating) each directory of rel below root without following links; returns
 * the fd of the last one, or -1. rel is modified. */
static int
open_dirs(int root, char *rel, size_t upto)
{
	int fd = dup(root);
	char *s = rel, *end = rel + upto;
	while (fd >= 0 && s < end) {
		char *e = memchr(s, '/', (size_t)(end - s));
		if (e == NULL)
			e = end;
		char save = *e;
		*e = '\0';
		if (mkdirat(fd, s, 0755) != 0 && errno != EEXIST) {
			close(fd);
			return -1;
		}
		int nfd = openat(fd, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		*e = save;
		close(fd);
		fd = nfd;
		s = e + 1;
	}
	return fd;
}

static int
write_member(const struct skill_member *m, void *arg)
{
	struct writer *w = arg;
	char rel[SKILL_UNPACK_MAX_PATH + 1];
	if (strlen(m->path) <= w->strip)
		return 0; /* the wrapper directory itself */
	snprintf(rel, sizeof(rel), "%s", m->path + w->strip);
	size_t n = strlen(rel);
	if (m->dir) {
		int fd = open_dirs(w->root, rel, n);
		if (fd < 0)
			return AL_E_IO;
		close(fd);
		return 0;
	}
	char *slash = strrchr(rel, '/');
	int dfd = slash ? open_dirs(w->root, rel, (size_t)(slash - rel)) : dup(w->root);
	if (dfd < 0)
		return AL_E_IO;
	const char *base = slash ? slash + 1 : rel;
	int fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                (m->mode & 0111) ? 0755 : 0644);
	close(dfd);
	if (fd < 0)
		return AL_E_IO;
	const char *p = m->data;
	size_t left = m->size;
	int r = 0;
	while (left > 0) {
		ssize_t k = write(fd, p, left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = AL_E_IO;
			break;
		}
		p += k;
		left -= (size_t)k;
	}
	if (close(fd) != 0 && r == 0)
		r = AL_E_IO;
	return r;
}

int
skill_unpack(const char *tar, size_t len, const char *dest, const char **why)
{
	struct top_scan t = {0};
	int r = skill_tar_walk(tar, len, scan_top, &t, why);
	if (r != 0)
		return r;
	if (mkdir(dest, 0755) != 0) {
		*why = "cannot create the skill's directory";
		return AL_E_IO;
	}
	struct writer w = {.strip = t.any && t.common && t.nested ? strlen(t.top) + 1 : 0};
	w.root = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (w.root < 0) {
		*why = "cannot open the skill's directory";
		return AL_E_IO;
	}
	r = skill_tar_walk(tar, len, write_member, &w, why);
	if (r == AL_E_IO && *why == NULL)
		*why = "cannot write a skill file (a member given twice, or a file where a "
		       "directory is)";
	close(w.root);
	return r;
}

static int
remove_at(int dfd, const char *name, int depth)
{
	if (depth > 64)
		return AL_E_TOOBIG;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return unlinkat(dfd, name, 0) == 0 || errno == ENOENT ? 0 : AL_E_IO;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return AL_E_IO;
	}
	int r = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (remove_at(dirfd(d), e->d_name, depth + 1) != 0)
			r = AL_E_IO;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		r = AL_E_IO;
	return r;
}

int
skill_remove_tree(const char *path)
{
	return remove_at(AT_FDCWD, path, 0);
}

int
skill_remove_at(int dfd, const char *name)
{
	return remove_at(dfd, name, 0);
}
