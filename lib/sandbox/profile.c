/* Sandbox profiles and the setup plan as data (bubblewrap's SetupOp list): which mounts,
 * files and devices a sandbox gets, and the environment its processes see. Nothing here
 * touches the kernel, so all of it is unit-tested. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"
#include "util.h"
#include "sandbox_int.h"
#include "xalloc.h"

void
sandbox_profile_defaults(struct sandbox_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->memory_mb = 2048;
	p->pids_max = 512;
	p->cpu_quota_percent = 100;
	p->wall_clock_s = 0;
	p->tmp_size_mb = 512;
	p->fsize_mb = 4096;
	p->nofile = 4096;
	p->uid_base = 100000;
	p->uid_count = 65536;
	p->state_dir = SANDBOX_DEFAULT_STATE_DIR;
}

bool
sandbox_id_valid(const char *s)
{
	size_t n = 0;
	if (s == NULL)
		return false;
	for (; s[n] != '\0'; n++) {
		char c = s[n];
		if (n >= 64)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return n > 0;
}

bool
sandbox_path_valid(const char *s)
{
	size_t n;
	const char *c;
	if (s == NULL || s[0] != '/')
		return false;
	n = strlen(s);
	if (n >= PATH_MAX)
		return false;
	/* Walk components: reject "", ".", ".." anywhere except the single root "/". */
	if (n == 1)
		return true;
	c = s + 1;
	for (;;) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		if (len == 0 && !(e == NULL)) /* "//" */
			return false;
		if (len == 0 && e == NULL) /* trailing slash */
			return false;
		if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (e == NULL)
			break;
		c = e + 1;
	}
	return true;
}

/* One problem line: "key: what" or "key: path: what". */
static int
line(struct buf *err, const char *key, const char *path, const char *what)
{
	if (err != NULL) {
		if (path != NULL)
			(void)buf_addf(err, "%s: %s: %s\n", key, path, what);
		else
			(void)buf_addf(err, "%s: %s\n", key, what);
	}
	return AL_E_INVAL;
}

int
sandbox_profile_check(const struct sandbox_profile *p, struct buf *err)
{
	int r = 0;
	size_t i;
	if (p->memory_mb != 0 && p->memory_mb < 16)
		r = line(err, "sandbox.memory_mb", NULL, "must be 0 (none) or at least 16");
	if (p->memory_mb > (1ull << 30))
		r = line(err, "sandbox.memory_mb", NULL, "too large");
	if (p->pids_max != 0 && (p->pids_max < 8 || p->pids_max > 4194304))
		r = line(err, "sandbox.pids_max", NULL, "must be 0 (none) or 8..4194304");
	if (p->cpu_quota_percent > 100000)
		r = line(err, "sandbox.cpu_quota_percent", NULL, "must be at most 100000");
	if (p->tmp_size_mb < 1 || p->tmp_size_mb > (1ull << 30))
		r = line(err, "sandbox.tmp_size_mb", NULL, "must be 1..2^30");
	if (p->fsize_mb < 1 || p->fsize_mb > (1ull << 40))
		r = line(err, "sandbox.fsize_mb", NULL, "must be 1..2^40");
	if (p->nofile < 64 || p->nofile > 1048576)
		r = line(err, "sandbox.nofile", NULL, "must be 64..1048576");
	if (p->uid_count < 1 || p->uid_base < 1000 ||
	    (uint64_t)p->uid_base + p->uid_count > 0xfffffffeull)
		r = line(err, "sandbox.uid_base", NULL,
		         "uid_base >= 1000, uid_count >= 1, in range");
	if (p->run_as_set && (p->run_as_uid == 0 || p->run_as_gid == 0 ||
	                      p->run_as_uid >= 0xffffffffu || p->run_as_gid >= 0xffffffffu))
		r = line(err, "sandbox run_as", NULL, "never root, never -1");
	if (p->ws_owner_set && (p->ws_owner_uid == 0 || p->ws_owner_gid == 0 ||
	                        p->ws_owner_uid >= 0xffffffffu || p->ws_owner_gid >= 0xffffffffu))
		r = line(err, "sandbox ws_owner", NULL, "never root, never -1");
	if (p->root_dir != NULL && !sandbox_path_valid(p->root_dir))
		r = line(err, "sandbox.root_dir", p->root_dir, "not an absolute normalized path");
	if (p->state_dir == NULL || !sandbox_path_valid(p->state_dir))
		r = line(err, "sandbox.state_dir", p->state_dir ? p->state_dir : "(unset)",
		         "not an absolute normalized path");
	if (p->n_ro_binds > SANDBOX_MAX_BINDS || p->n_rw_binds > SANDBOX_MAX_BINDS)
		return line(err, "sandbox binds", NULL, "too many");
	for (i = 0; i < p->n_ro_binds; i++)
		if (!sandbox_path_valid(p->ro_binds[i]) || strcmp(p->ro_binds[i], "/") == 0)
			r = line(err, "sandbox.ro_binds",
			         p->ro_binds[i] ? p->ro_binds[i] : "(null)",
			         "not an absolute normalized path");
	for (i = 0; i < p->n_rw_binds; i++)
		if (!sandbox_path_valid(p->rw_binds[i]) || strcmp(p->rw_binds[i], "/") == 0)
			r = line(err, "sandbox.rw_binds",
			         p->rw_binds[i] ? p->rw_binds[i] : "(null)",
			         "not an absolute normalized path");
	return r;
}

static struct sandbox_op *
op_add(struct sandbox_ops *ops, enum sandbox_op_type t, unsigned flags, const char *src,
       const char *dst)
{
	struct sandbox_op *o;
	if (ops->n == ops->cap) {
		ops->cap = ops->cap ? ops->cap * 2 : 32;
		ops->v = xreallocarray(ops->v, ops->cap, sizeof(*ops->v));
	}
	o = &ops->v[ops->n++];
	memset(o, 0, sizeof(*o));
	o->type = t;
	o->flags = flags;
	o->src = src ? xstrdup(src) : NULL;
	o->dst = xstrdup(dst);
	o->mode = 0755;
	o->fd = -1;
	return o;
}

static char *
join(const char *root, const char *rel)
{
	if (root == NULL || strcmp(root, "/") == 0)
		return xasprintf("/%s", rel);
	return xasprintf("%s/%s", root, rel);
}

/* Host /etc entries a toolchain needs; everything else in /etc (keys, configs of other
 * services) stays outside. passwd, group, hosts, nsswitch.conf, resolv.conf are generated. */
static const char *const etc_binds[] = {
    "alternatives",   "ssl",        "ca-certificates", "ca-certificates.conf",
    "ld.so.cache",    "ld.so.conf", "ld.so.conf.d",    "localtime",
    "timezone",       "protocols",  "services",        "mime.types",
    "bash.bashrc",    "inputrc",    "terminfo",        "magic",
    "debian_version", "os-release", "gai.conf",        "python3",
    "perl",
};

static const char *const sys_dirs[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"};

static const char etc_passwd[] = "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                 "sandbox:x:1000:1000:sandbox:/workspace:/bin/bash\n"
                                 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
static const char etc_group[] = "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n";
static const char etc_hosts[] = "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n";
static const char etc_nsswitch[] = "passwd: files\ngroup: files\nhosts: files dns\n";

int
sandbox_ops_build(const struct sandbox_profile *p, const char *workspace, struct sandbox_ops *ops)
{
	size_t i;
	char *s;
	struct sandbox_op *o;
	uint64_t tmp = p->tmp_size_mb * 1024 * 1024;

	memset(ops, 0, sizeof(*ops));
	if (workspace != NULL && (!sandbox_path_valid(workspace) || strcmp(workspace, "/") == 0))
		return AL_E_INVAL;
	if (sandbox_profile_check(p, NULL) != 0)
		return AL_E_INVAL;

	for (i = 0; i < ARRAY_LEN(sys_dirs); i++) {
		char *dst = xasprintf("/%s", sys_dirs[i]);
		s = join(p->root_dir, sys_dirs[i]);
		op_add(ops, SB_OP_SYSDIR, SB_OPF_OPTIONAL, s, dst);
		free(s);
		free(dst);
	}
	op_add(ops, SB_OP_DIR, 0, NULL, "/etc");
	for (i = 0; i < ARRAY_LEN(etc_binds); i++) {
		char *dst = xasprintf("/etc/%s", etc_binds[i]);
		s = join(p->root_dir, dst + 1);
		op_add(ops, SB_OP_BIND, SB_OPF_OPTIONAL, s, dst);
		free(s);
		free(dst);
	}
	o = op_add(ops, SB_OP_FILE, 0, NULL, "/etc/passwd");
	o->data = xstrdup(etc_passwd);
	o->mode = 0644;
	o = op_add(ops, SB_OP_FILE, 0, NULL, "/etc/group");
	o->data = xstrdup(etc_group);
	o->mode = 0644;
	o = op_add(ops, SB_OP_FILE, 0, NULL, "/etc/hosts");
	o->data = xstrdup(etc_hosts);
	o->mode = 0644;
	o = op_add(ops, SB_OP_FILE, 0, NULL, "/etc/nsswitch.conf");
	o->data = xstrdup(etc_nsswitch);
	o->mode = 0644;
	o = op_add(ops, SB_OP_FILE, 0, NULL, "/etc/hostname");
	o->data = xstrdup("sandbox\n");
	o->mode = 0644;
	o = op_add(ops, SB_OP_FILE, 0, NULL, "/etc/resolv.conf");
	o->data = xstrdup("");
	o->mode = 0644;

	op_add(ops, SB_OP_DEV, 0, NULL, "/dev");
	o = op_add(ops, SB_OP_TMPFS, SB_OPF_RW, NULL, "/dev/shm");
	o->size = tmp;
	o->mode = 01777;
	op_add(ops, SB_OP_PROC, 0, NULL, "/proc");
	o = op_add(ops, SB_OP_TMPFS, SB_OPF_RW, NULL, "/tmp");
	o->size = tmp;
	o->mode = 01777;
	o = op_add(ops, SB_OP_TMPFS, 0, NULL, "/run");
	o->size = 64 * 1024;
	o->mode = 0755;

	for (i = 0; i < p->n_ro_binds; i++)
		op_add(ops, SB_OP_BIND, 0, p->ro_binds[i], p->ro_binds[i]);
	for (i = 0; i < p->n_rw_binds; i++)
		op_add(ops, SB_OP_BIND, SB_OPF_RW, p->rw_binds[i], p->rw_binds[i]);
	/* The claim binds the workspace last, over any profile bind below it (the full plan
	 * lists it in that place for the tests). */
	if (workspace != NULL) {
		op_add(ops, SB_OP_BIND, SB_OPF_RW, workspace, "/workspace");
		if (strcmp(workspace, "/workspace") != 0)
			op_add(ops, SB_OP_BIND, SB_OPF_RW, workspace, workspace);
	}
	return 0;
}

void
sandbox_ops_free(struct sandbox_ops *ops)
{
	size_t i;
	for (i = 0; i < ops->n; i++) {
		if (ops->v[i].fd >= 0)
			close(ops->v[i].fd);
		free(ops->v[i].src);
		free(ops->v[i].dst);
		free(ops->v[i].data);
	}
	free(ops->v);
	memset(ops, 0, sizeof(*ops));
}

int
sandbox_ops_resolve(struct sandbox_ops *ops)
{
	size_t i, k = 0;
	for (i = 0; i < ops->n; i++) {
		struct sandbox_op *o = &ops->v[i];
		struct stat st;
		int fd;
		if (o->type == SB_OP_SYSDIR) {
			if (lstat(o->src, &st) != 0) {
				if (errno != ENOENT)
					return -errno;
				goto drop;
			}
			if (S_ISLNK(st.st_mode)) {
				/* merged /usr: /bin -> usr/bin stays a symlink, as on the host */
				char target[PATH_MAX];
				ssize_t n = readlink(o->src, target, sizeof(target) - 1);
				if (n < 0)
					return -errno;
				target[n] = '\0';
				o->type = SB_OP_SYMLINK;
				o->data = xstrdup(target);
				goto keep;
			}
		} else if (o->type != SB_OP_BIND) {
			goto keep;
		}
		/* A detached copy of the mount tree, made with our (host) privileges; the child
		 * only moves it into place. */
		fd = (int)syscall(SYS_open_tree, AT_FDCWD, o->src,
		                  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (fd < 0) {
			if (errno == ENOENT && (o->flags & SB_OPF_OPTIONAL))
				goto drop;
			/* < 5.2, or not root: the child binds by path (an unprivileged worker's
			 * child has the worker's own uid, so it can reach what the worker can). */
			if (errno == ENOSYS || errno == EPERM)
				goto keep;
			return -errno;
		}
		{
			struct mount_attr a = {0};
			a.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
			             ((o->flags & SB_OPF_RW) ? 0 : MOUNT_ATTR_RDONLY);
			if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a,
			            sizeof(a)) != 0) {
				int e = errno;
				close(fd);
				return -e;
			}
		}
		o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 64);
		close(fd);
		if (o->fd < 0)
			return -errno;
	keep:
		ops->v[k++] = *o;
		continue;
	drop:
		free(o->src);
		free(o->dst);
		free(o->data);
	}
	ops->n = k;
	return 0;
}

const struct sandbox_op *
sandbox_ops_find(const struct sandbox_ops *ops, const char *dst)
{
	size_t i;
	for (i = 0; i < ops->n; i++)
		if (strcmp(ops->v[i].dst, dst) == 0)
			return &ops->v[i];
	return NULL;
}

static const char *const base_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/workspace",
    "LANG=C.UTF-8",
    "TERM=dumb",
};

static bool
env_name_ok(const char *e, size_t *name_len)
{
	const char *eq = strchr(e, '=');
	size_t i, n;
	if (eq == NULL || eq == e)
		return false;
	n = (size_t)(eq - e);
	if (n > 256)
		return false;
	for (i = 0; i < n; i++) {
		char c = e[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		      (i > 0 && c >= '0' && c <= '9')))
			return false;
	}
	*name_len = n;
	return true;
}

char **
sandbox_env_build(const char *const *envp)
{
	size_t n_extra = 0, n = 0, i, j, cap;
	char **v;
	while (envp != NULL && envp[n_extra] != NULL)
		n_extra++;
	cap = ARRAY_LEN(base_env) + n_extra + 1;
	v = xcalloc(cap, sizeof(*v));
	for (i = 0; i < ARRAY_LEN(base_env); i++)
		v[n++] = xstrdup(base_env[i]);
	for (i = 0; i < n_extra; i++) {
		size_t nl;
		if (!env_name_ok(envp[i], &nl))
			continue;
		/* Credentials of the worker never enter; the sandbox gets sentinels instead. */
		if (nl >= 10 && strncmp(envp[i], "ANTHROPIC_", 10) == 0)
			continue;
		for (j = 0; j < n; j++)
			if (strncmp(v[j], envp[i], nl + 1) == 0)
				break;
		if (j < n) {
			free(v[j]);
			v[j] = xstrdup(envp[i]);
		} else {
			v[n++] = xstrdup(envp[i]);
		}
	}
	v[n] = NULL;
	return v;
}

void
sandbox_strv_free(char **v)
{
	size_t i;
	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}
