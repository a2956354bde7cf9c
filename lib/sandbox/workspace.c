/* Per-session workspace directories: made and removed by fd, beneath a directory the
 * caller opened once, never through a symlink or across a mount (docs/lib/sandbox.md,
 * "Workspaces"). The monitor uses them as root for the workspace root's sessions/ dir;
 * an unsandboxed worker uses them as itself. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "sandbox_int.h"

/* Deeper trees are left for a later attempt (each level holds one fd). */
#define TREE_MAX_DEPTH 512

int
sandbox_ws_open(int parentfd, const char *name, unsigned flags)
{
	struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
	                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	                                  RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
	long fd;
	if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return AL_E_INVAL;
	/* One component: the only mount it can cross into is one on that very entry. */
	if (flags & SANDBOX_WS_MOUNTED)
		how.resolve &= ~(uint64_t)RESOLVE_NO_XDEV;
	if ((flags & SANDBOX_WS_CREATE) && mkdirat(parentfd, name, 0700) != 0 && errno != EEXIST)
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
			if ((sub = sandbox_ws_open(dfd, e->d_name, 0)) < 0) {
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

/* ---- size-capped workspaces: an ext4 image on a loop device per session ---- */

#define EXT4_MAGIC 0xEF53
static const char *const mkfs_paths[] = {"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"};

static const char *
mkfs_path(void)
{
	for (size_t i = 0; i < sizeof(mkfs_paths) / sizeof(mkfs_paths[0]); i++)
		if (access(mkfs_paths[i], X_OK) == 0)
			return mkfs_paths[i];
	return NULL;
}

int
sandbox_ws_quota_probe(void)
{
	int fd;
	if (mkfs_path() == NULL)
		return -ENOENT; /* e2fsprogs */
	if ((fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC)) < 0)
		return -errno;
	close(fd);
	/* ext4 itself (a module on some kernels: this loads it, or says it cannot) */
	if ((fd = (int)syscall(SYS_fsopen, "ext4", FSOPEN_CLOEXEC)) < 0)
		return -errno;
	close(fd);
	return 0;
}

/* Whether dirfd is the root of a mount on top of the entry in parentfd. */
static bool
is_mount_root(int parentfd, int dirfd)
{
	struct stat a, b;
	return fstat(parentfd, &a) == 0 && fstat(dirfd, &b) == 0 && a.st_dev != b.st_dev;
}

/* mkfs.ext4 on the image (fd), in a child with nothing of ours but that fd. */
static int
mkfs(int imgfd)
{
	const char *prog = mkfs_path();
	int st;
	pid_t pid;
	if (prog == NULL)
		return -ENOENT;
	if ((pid = fork()) < 0)
		return -errno;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		if (dup2(imgfd, 3) < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 ||
		    dup2(nul, 2) < 0)
			_exit(127);
		syscall(SYS_close_range, 4, ~0U, 0);
		/* no reserved blocks, no lost+found needed by anyone here, lazy init: the
		 * image stays sparse (about 2 MB for 4 GiB) and this takes ~40 ms */
		execle(prog, "mkfs.ext4", "-q", "-F", "-m", "0", "-E",
		       "lazy_itable_init=1,lazy_journal_init=1,nodiscard", "/proc/self/fd/3",
		       (char *)NULL, (char *const[]){"PATH=/usr/sbin:/sbin:/usr/bin:/bin", NULL});
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : AL_E_INTERNAL;
}

/* A free loop device bound to imgfd, detached by the kernel once its fs is unmounted. */
static int
loop_attach(int imgfd)
{
	struct loop_config lc;
	char dev[32];
	int ctl, fd = -1, r = -EBUSY;
	if ((ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC)) < 0)
		return -errno;
	for (int tries = 0; tries < 8 && fd < 0 && r == -EBUSY; tries++) {
		long n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0) {
			r = -errno;
			break;
		}
		snprintf(dev, sizeof(dev), "/dev/loop%ld", n);
		if ((fd = open(dev, O_RDWR | O_CLOEXEC)) < 0) {
			r = -errno;
			break;
		}
		memset(&lc, 0, sizeof(lc));
		lc.fd = (uint32_t)imgfd;
		lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		if (ioctl(fd, LOOP_CONFIGURE, &lc) != 0) {
			r = -errno; /* EBUSY: another process took it first */
			close(fd);
			fd = -1;
		}
	}
	close(ctl);
	return fd >= 0 ? fd : r;
}

int
sandbox_ws_quota_mount(int parentfd, const char *name, int dirfd, uint64_t size_mb, int *rootfd)
{
	char img[96], src[32];
	int imgfd = -1, loopfd = -1, fsfd = -1, mfd = -1, r;
	bool made = false;

	*rootfd = -1;
	if (is_mount_root(parentfd, dirfd)) {
		struct statfs sf;
		/* ours from an earlier create of this session (only root mounts there) */
		if (fstatfs(dirfd, &sf) != 0 || sf.f_type != EXT4_MAGIC)
			return AL_E_PERM;
		if ((*rootfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0)) < 0)
			return -errno;
		return 0;
	}
	if (snprintf(img, sizeof(img), ".img-%s", name) >= (int)sizeof(img))
		return AL_E_INVAL;
	imgfd = openat(parentfd, img, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (imgfd < 0 && errno == ENOENT) {
		imgfd =
		    openat(parentfd, img, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		made = imgfd >= 0;
		if (made && ftruncate(imgfd, (off_t)(size_mb << 20)) != 0) {
			r = -errno;
			goto out;
		}
		if (made && (r = mkfs(imgfd)) != 0)
			goto out;
	}
	if (imgfd < 0) {
		r = -errno;
		goto out;
	}
	if ((loopfd = loop_attach(imgfd)) < 0) {
		r = loopfd;
		goto out;
	}
	snprintf(src, sizeof(src), "/proc/self/fd/%d", loopfd);
	if ((fsfd = (int)syscall(SYS_fsopen, "ext4", FSOPEN_CLOEXEC)) < 0 ||
	    syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "source", src, 0) != 0 ||
	    syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, "discard", NULL, 0) != 0 ||
	    syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0 ||
	    (mfd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC,
	                        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) < 0) {
		r = -errno;
		goto out;
	}
	/* Over the entry we resolved (by fd: nothing is looked up by path here). */
	if (syscall(SYS_move_mount, mfd, "", dirfd, "",
	            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
		r = -errno;
		goto out;
	}
	if ((*rootfd = openat(mfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		goto out;
	}
	if (made) /* nobody here runs e2fsck by hand; the name would only puzzle a model */
		(void)unlinkat(*rootfd, "lost+found", AT_REMOVEDIR);
	r = 0;
out:
	if (r != 0 && made)
		(void)unlinkat(parentfd, img, 0);
	if (mfd >= 0)
		close(mfd);
	if (fsfd >= 0)
		close(fsfd);
	if (loopfd >= 0)
		close(loopfd); /* the mount holds the device; autoclear at unmount */
	if (imgfd >= 0)
		close(imgfd);
	return r;
}

int
sandbox_ws_unmount(int parentfd, const char *name)
{
	char path[32];
	int fd = sandbox_ws_open(parentfd, name, SANDBOX_WS_MOUNTED), r = 0;
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	if (is_mount_root(parentfd, fd)) {
		/* Lazily: a file tool or a dying sandbox may still hold it. */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (umount2(path, MNT_DETACH) != 0)
			r = -errno;
	}
	close(fd);
	return r;
}

int
sandbox_ws_image_remove(int parentfd, const char *name)
{
	char img[96];
	if (snprintf(img, sizeof(img), ".img-%s", name) >= (int)sizeof(img))
		return AL_E_INVAL;
	return unlinkat(parentfd, img, 0) == 0 || errno == ENOENT ? 0 : -errno;
}
