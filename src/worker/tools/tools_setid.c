/* Host-side strip of setuid/setgid bits in a session's workspace. The sandbox's seccomp
 * filter refuses those bits (docs/lib/sandbox.md), but an unsandboxed worker's bash can set
 * them, and a file left setuid in the host workspace runs as the worker's uid for any
 * local user who starts it (issue 11, finding 8). The worker calls this when a session's
 * tools close, once nothing of the session runs any more. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "tools.h"

#define SETID_MAX_DEPTH 128

struct strip {
	unsigned long entries, cleared, max_entries;
	int err; /* the first error met; the walk goes on past it */
};

/* Clears the bits on name (never following a symlink): the O_PATH fd pins the inode
 * fstatat saw, and chmod through /proc/self/fd changes that inode, whatever the name
 * points to by then. */
static void
clear_bits(struct strip *s, int dfd, const char *name, const struct stat *seen)
{
	char path[64];
	struct stat st;
	int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (s->err == 0)
			s->err = -errno;
		return;
	}
	if (fstat(fd, &st) != 0 || st.st_ino != seen->st_ino || st.st_dev != seen->st_dev ||
	    S_ISLNK(st.st_mode)) {
		close(fd);
		return; /* swapped since: not what we looked at */
	}
	(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (chmod(path, st.st_mode & 07777 & ~(mode_t)(S_ISUID | S_ISGID)) == 0)
		s->cleared++;
	else if (s->err == 0)
		s->err = -errno;
	close(fd);
}

static void
strip_dir(struct strip *s, int dfd, unsigned depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	if (d == NULL) {
		close(dfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (++s->entries > s->max_entries) {
			s->err = AL_E_TOOBIG;
			break;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    S_ISLNK(st.st_mode))
			continue;
		if (st.st_mode & (S_ISUID | S_ISGID))
			clear_bits(s, dirfd(d), de->d_name, &st);
		if (!S_ISDIR(st.st_mode))
			continue;
		if (depth + 1 >= SETID_MAX_DEPTH) {
			s->err = AL_E_TOOBIG;
			continue;
		}
		int sub =
		    openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			strip_dir(s, sub, depth + 1); /* a dir we cannot read hides its files too */
	}
	closedir(d);
}

int
tool_setid_strip(const char *dir, unsigned long max_entries, unsigned long *cleared)
{
	struct strip s = {.max_entries = max_entries};
	struct stat st;
	*cleared = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID))) {
		char path[64];
		(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (chmod(path, st.st_mode & 07777 & ~(mode_t)(S_ISUID | S_ISGID)) == 0)
			s.cleared++;
	}
	strip_dir(&s, fd, 0);
	*cleared = s.cleared;
	return s.err;
}
