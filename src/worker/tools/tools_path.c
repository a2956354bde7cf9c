/* Path confinement for the file tools: the SDK's canonicalize-then-contain check for the
 * texts the model sees, then race-free access with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)
 * from the root's dirfd, so a symlink swapped in between fails closed. Also the atomic write. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"
#include "tools_int.h"
#include "util.h"
#include "xalloc.h"

/* Linux MAXSYMLINKS, the SDK's hop limit too. */
#define MAX_SYMLINK_HOPS 40
#define PATH_BUF_MAX (64 * 1024)

bool tool_path_force_walk;

char *
tool_path_lexical(const char *base, const char *p)
{
	struct buf out;
	const char *parts[2] = {base, p};
	buf_init(&out, PATH_BUF_MAX);
	/* An absolute p discards base, as path.resolve does. */
	for (size_t k = (p[0] == '/' ? 1 : 0); k < 2; k++) {
		const char *s = parts[k];
		while (*s != '\0') {
			while (*s == '/')
				s++;
			const char *e = s;
			while (*e != '\0' && *e != '/')
				e++;
			size_t n = (size_t)(e - s);
			if (n == 0 || (n == 1 && s[0] == '.')) {
				/* nothing */
			} else if (n == 2 && s[0] == '.' && s[1] == '.') {
				char *slash = out.len > 0 ? memrchr(out.data, '/', out.len) : NULL;
				out.len = slash != NULL ? (size_t)(slash - out.data) : 0;
				if (out.data != NULL)
					out.data[out.len] = '\0';
			} else if (buf_add(&out, "/", 1) != 0 || buf_add(&out, s, n) != 0) {
				/* Longer than any real path; the caller's open fails on it. */
				break;
			}
			s = e;
		}
	}
	if (out.len == 0)
		(void)buf_add(&out, "/", 1);
	return buf_steal(&out);
}

/* dirname of a normalized absolute path. */
static char *
path_dirname(const char *p)
{
	const char *slash = strrchr(p, '/');
	if (slash == NULL || slash == p)
		return xstrdup("/");
	return xstrndup(p, (size_t)(slash - p));
}

static bool
is_within(const char *root, const char *p)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return p[0] == '/';
	return strncmp(root, p, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

int
tool_path_canon(const char *abs, char **out)
{
	int r = AL_E_INTERNAL, hops = 0;
	char *prefix = xstrdup(abs), *real = NULL, *suffix = xstrdup("");
	char *parent = NULL, *joined = NULL;
	char link[PATH_MAX];
	struct stat st;

	*out = NULL;
	for (;;) {
		if ((real = realpath(prefix, NULL)) != NULL)
			break;
		int rerr = errno;
		if (lstat(prefix, &st) != 0) {
			int lerr = errno;
			if ((lerr != ENOENT && lerr != ENOTDIR) || strcmp(prefix, "/") == 0) {
				r = -lerr;
				goto out;
			}
			/* Missing: climb one level and re-append this name afterwards. */
			const char *base = strrchr(prefix, '/') + 1;
			char *ns = xasprintf("/%s%s", base, suffix);
			free(suffix);
			suffix = ns;
			char *np = path_dirname(prefix);
			free(prefix);
			prefix = np;
			continue;
		}
		if (!S_ISLNK(st.st_mode)) {
			r = -rerr;
			goto out;
		}
		/* A dangling link: follow it by hand so its target is what gets checked. */
		if (++hops > MAX_SYMLINK_HOPS) {
			r = -ELOOP;
			goto out;
		}
		free(parent);
		char *dir = path_dirname(prefix);
		parent = realpath(dir, NULL);
		free(dir);
		if (parent == NULL) {
			r = -errno;
			goto out;
		}
		ssize_t n = readlink(prefix, link, sizeof(link) - 1);
		if (n < 0) {
			r = -errno;
			goto out;
		}
		link[n] = '\0';
		free(joined);
		joined = xasprintf("%s%s", link, suffix);
		free(prefix);
		prefix = tool_path_lexical(parent, joined);
		free(suffix);
		suffix = xstrdup("");
	}
	if (suffix[0] == '\0') {
		*out = real;
		real = NULL;
	} else {
		*out = tool_path_lexical(real, suffix + 1);
	}
	r = 0;
out:
	free(prefix);
	free(real);
	free(suffix);
	free(parent);
	free(joined);
	return r;
}

void
tool_json_quote(struct buf *out, const char *s)
{
	(void)buf_add(out, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '"':
			(void)buf_add(out, "\\\"", 2);
			break;
		case '\\':
			(void)buf_add(out, "\\\\", 2);
			break;
		case '\b':
			(void)buf_add(out, "\\b", 2);
			break;
		case '\f':
			(void)buf_add(out, "\\f", 2);
			break;
		case '\n':
			(void)buf_add(out, "\\n", 2);
			break;
		case '\r':
			(void)buf_add(out, "\\r", 2);
			break;
		case '\t':
			(void)buf_add(out, "\\t", 2);
			break;
		default:
			if (c < 0x20)
				(void)buf_addf(out, "\\u%04x", c);
			else
				(void)buf_add(out, s, 1);
		}
	}
	(void)buf_add(out, "\"", 1);
}

void
tool_path_errtext(struct buf *out, int err, const char *file)
{
	int code = err < 0 ? -err : err;
	const char *what;
	switch (code) {
	case ENOENT:
		what = "no such file or directory";
		break;
	case EACCES:
	case EPERM:
		what = "permission denied";
		break;
	case ENOTDIR:
		what = "not a directory";
		break;
	case EISDIR:
		what = "is a directory";
		break;
	case ELOOP:
		what = "too many levels of symbolic links";
		break;
	case ENAMETOOLONG:
		what = "file name too long";
		break;
	case ENOSPC:
		what = "no space left on device";
		break;
	case EMFILE:
	case ENFILE:
		what = "too many open files";
		break;
	default: {
		const char *name = code > 0 ? strerrorname_np(code) : NULL;
		if (name != NULL)
			(void)buf_addf(out, "%s: i/o error (%s)", file, name);
		else
			(void)buf_addf(out, "%s: i/o error", file);
		return;
	}
	}
	(void)buf_addf(out, "%s: %s", file, what);
}

int
tool_path_resolve(struct tool_ctx *ctx, const char *p, char **canon, struct tool_res *res)
{
	int r;
	char *joined = tool_path_lexical(ctx->root, p), *real = NULL;
	struct buf name;

	*canon = NULL;
	buf_init(&name, PATH_BUF_MAX);
	(void)buf_add_str(&name, "path ");
	tool_json_quote(&name, p);
	if ((r = tool_path_canon(joined, &real)) != 0) {
		res->is_error = true;
		buf_reset(&res->text);
		tool_path_errtext(&res->text, r, name.data);
		r = -1;
		goto out;
	}
	if (is_within(ctx->root, real)) {
		*canon = real;
		real = NULL;
		r = 0;
		goto out;
	}
	for (size_t i = 0; i < ctx->nroots; i++) {
		if (is_within(ctx->roots[i].canon, real)) {
			*canon = real;
			real = NULL;
			r = 0;
			goto out;
		}
	}
	tool_fail(res, "%s is outside %s", name.data,
	          ctx->nroots > 0
	              ? "the session's working directory and its other permitted directories"
	              : "the session's working directory");
	r = -1;
out:
	free(joined);
	free(real);
	buf_free(&name);
	return r;
}

const struct tool_root *
tool_path_ro_root(struct tool_ctx *ctx, const char *canon)
{
	for (size_t i = 0; i < ctx->nroots; i++)
		if (ctx->roots[i].read_only && is_within(ctx->roots[i].canon, canon))
			return &ctx->roots[i];
	return NULL;
}

/* The dirfd to start from and the path relative to it. *owned is set when the caller must
 * close the returned fd. */
static int
root_for(struct tool_ctx *ctx, const char *canon, const char **rel, bool *owned)
{
	const char *root = NULL;
	int fd = -1;
	*owned = false;
	if (is_within(ctx->root, canon)) {
		root = ctx->root;
		fd = ctx->root_fd;
	} else {
		for (size_t i = 0; i < ctx->nroots && root == NULL; i++)
			if (is_within(ctx->roots[i].canon, canon))
				root = ctx->roots[i].canon;
		if (root == NULL)
			return -EXDEV;
		fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		*owned = true;
	}
	size_t n = strlen(root);
	if (n == 1)
		n = 0; /* root "/" */
	*rel = canon[n] == '\0' ? "." : canon + n + 1;
	return fd;
}

/* Per-component walk for kernels without openat2: no component may be a symlink. */
static int
open_walk(int dirfd, const char *rel, int flags, mode_t mode)
{
	int fd = dup(dirfd), r;
	const char *s = rel;
	if (fd < 0)
		return -errno;
	for (;;) {
		const char *slash = strchr(s, '/');
		char comp[NAME_MAX + 1];
		size_t n = slash != NULL ? (size_t)(slash - s) : strlen(s);
		if (n > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(comp, s, n);
		comp[n] = '\0';
		int nfd;
		if (slash == NULL)
			nfd = openat(fd, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
		else
			nfd = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = -errno;
		close(fd);
		if (nfd < 0)
			return r;
		fd = nfd;
		if (slash == NULL)
			return fd;
		s = slash + 1;
	}
}

static int
open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
	if (!tool_path_force_walk) {
		struct open_how how = {
		    .flags = (uint64_t)(flags | O_CLOEXEC),
		    .mode = (flags & O_CREAT) ? mode : 0,
		    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
		};
		long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS)
			return -errno;
	}
	return open_walk(dirfd, rel, flags, mode);
}

int
tool_path_open(struct tool_ctx *ctx, const char *canon, int flags, mode_t mode)
{
	const char *rel;
	bool owned;
	int dirfd = root_for(ctx, canon, &rel, &owned);
	if (dirfd < 0)
		return dirfd;
	int fd = open_beneath(dirfd, rel, flags, mode);
	if (owned)
		close(dirfd);
	return fd;
}

int
tool_path_open_parent(struct tool_ctx *ctx, const char *canon, bool mkdirs, const char **leaf)
{
	const char *rel;
	bool owned;
	int r, dirfd = root_for(ctx, canon, &rel, &owned);
	if (dirfd < 0)
		return dirfd;
	int fd = dup(dirfd);
	if (owned)
		close(dirfd);
	if (fd < 0)
		return -errno;
	if (strcmp(rel, ".") == 0) {
		/* The root itself: its parent is outside, and it is a directory anyway. */
		close(fd);
		return -EISDIR;
	}
	const char *s = rel;
	for (;;) {
		const char *slash = strchr(s, '/');
		if (slash == NULL) {
			*leaf = s;
			return fd;
		}
		char comp[NAME_MAX + 1];
		size_t n = (size_t)(slash - s);
		if (n > NAME_MAX) {
			close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(comp, s, n);
		comp[n] = '\0';
		bool existed = false;
		if (mkdirs && mkdirat(fd, comp, 0700) != 0) {
			if (errno != EEXIST) {
				r = -errno;
				close(fd);
				return r;
			}
			existed = true;
		}
		int nfd = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = -errno;
		close(fd);
		if (nfd < 0) {
			/* Node's mkdir -p: an existing non-directory where the parent itself
			 * should be is EEXIST; one further up is ENOTDIR. */
			if (r == -ENOTDIR && existed && strchr(slash + 1, '/') == NULL)
				return -EEXIST;
			return r;
		}
		fd = nfd;
		s = slash + 1;
	}
}

static void
uuid_v4(char out[37])
{
	unsigned char b[16];
	static const char hex[] = "0123456789abcdef";
	random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	size_t o = 0;
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

int
tool_path_write_atomic(int dirfd, const char *leaf, const char *data, size_t len)
{
	int r = AL_E_INTERNAL, fd = -1;
	char uuid[37], tmp[80];
	struct stat st;
	bool have_mode = fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0;

	uuid_v4(uuid);
	(void)snprintf(tmp, sizeof(tmp), ".tmp-%ld-%s", (long)getpid(), uuid);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* The rename replaces the inode: carry the old file's permission bits over, but
	 * never setuid/setgid (a write by anyone without CAP_FSETID clears them too). */
	if (have_mode && fchmod(fd, st.st_mode & 01777) != 0) {
		r = -errno;
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		r = -errno;
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		r = -errno;
		goto out;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, leaf) != 0) {
		r = -errno;
		goto out;
	}
	/* Make the rename itself durable. */
	int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
out:
	if (fd >= 0)
		close(fd);
	(void)unlinkat(dirfd, tmp, 0);
	return r;
}
