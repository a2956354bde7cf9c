/* Per-session workspace directories: made and removed by fd, beneath a directory the
 * caller opened once, never through a symlink or across a mount (docs/lib/sandbox.md,
 * "Workspaces"). The monitor uses them as root for the workspace root's sessions/ dir;
 * an unsandboxed worker uses them as itself. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"
#include "sandbox_int.h"

/* Deeper trees are left for a later attempt (each level holds one fd). */
#define TREE_MAX_DEPTH 512

int
sandbox_ws_open(int parentfd, const char *name, bool create)
{
	struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
	                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	                                  RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
	long fd;
	if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return AL_E_INVAL;
	if (create && mkdirat(parentfd, name, 0700) != 0 && errno != EEXIST)
		return -errno;
	fd = syscall(SYS_openat2, parentfd, name, &how, sizeof(how));
	if (fd < 0)
		return errno == ELOOP || errno == EXDEV || errno == ENOTDIR ? AL_E_PERM : -errno;
	return (int)fd;
}

/* Empties dfd (closed here). Entries are unlinked relative to their directory's fd;
 * a subdirectory is entered only through openat2 beneath it without symlinks, so a
 * rename racing us moves what we delete, never where we delete. */
static int
tree_empty(int dfd, unsigned depth)
{
	DIR *d;
	struct dirent *e;
	int r = 0, sub;

	if (depth > TREE_MAX_DEPTH) {
		close(dfd);
		return -ELOOP;
	}
	/* A directory the sandbox made read-only is still its owner's to empty. */
	(void)fchmod(dfd, 0700);
	/* Passes until one removes nothing (readdir may miss what changes under it). */
	for (;;) {
		unsigned removed = 0;
		int fd2 = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
		r = 0;
		if (fd2 < 0 || (d = fdopendir(fd2)) == NULL) {
			r = -errno;
			if (fd2 >= 0)
				close(fd2);
			break;
		}
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			if (unlinkat(dfd, e->d_name, 0) == 0) {
				removed++;
				continue;
			}
			if (errno == ENOENT)
				continue;
			if (errno != EISDIR && errno != EPERM) {
				r = r ? r : -errno;
				continue;
			}
			if ((sub = sandbox_ws_open(dfd, e->d_name, false)) < 0) {
				r = r ? r : sub;
				continue;
			}
			int r2 = tree_empty(sub, depth + 1);
			if (r2 == 0 && unlinkat(dfd, e->d_name, AT_REMOVEDIR) != 0 &&
			    errno != ENOENT)
				r2 = -errno;
			if (r2 == 0)
				removed++;
			r = r ? r : r2;
		}
		closedir(d);
		if (removed == 0)
			break;
	}
	close(dfd);
	return r;
}

int
sandbox_ws_empty(int dirfd)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	return tree_empty(fd, 0);
}
