/* The child side of sandbox creation, in the order of spec sandbox.md §2, split in two:
 * the spare phase (cgroup namespace, private mounts, tmpfs root with the SetupOp list,
 * pivot_root, hostname and lo, setsid, rlimits) runs ahead of demand; the claim phase
 * binds the workspace, drops every capability, no_new_privs, Landlock, seccomp last; then
 * the pid-1 loop. Any failure is reported to the parent with the step's name and ends
 * the child. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"
#include "sandbox_int.h"
#include "util.h"

#define BASE "/tmp" /* any existing dir: the tmpfs over it is private to our mount ns */
#define OLD "/oldroot"
#define NEW "/newroot"

static int ctl_fd = -1;
static uint32_t phase = SB_INIT_SPARE; /* the message a failure is reported as */
/* Where the new root is seen from: NEW while the host tree is at OLD, "" after the second
 * pivot_root. */
static const char *root_prefix = NEW;

static void __attribute__((noreturn)) die(const char *step, int err)
{
	struct sandbox_msg m;
	sandbox_msg_init(&m);
	(void)sandbox_msg_put_u32(&m, phase);
	(void)sandbox_msg_put_u32(&m, (uint32_t)err);
	(void)sandbox_msg_put_str(&m, step);
	(void)sandbox_msg_put_u32(&m, 0);
	(void)sandbox_msg_send(ctl_fd, &m, NULL, 0);
	_exit(1);
}

#define CHECK(step, expr)                                                                          \
	do {                                                                                       \
		if ((expr) != 0)                                                                   \
			die(step, -errno);                                                         \
	} while (0)

static void
path2(char *out, const char *prefix, const char *p)
{
	if (snprintf(out, PATH_MAX, "%s%s", prefix, p) >= PATH_MAX)
		die("path too long", AL_E_TOOBIG);
}

static int
mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t i, n = strlen(path);
	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -errno;
		tmp[i] = i == n ? '\0' : '/';
	}
	return 0;
}

static int
mkparent(const char *path)
{
	char tmp[PATH_MAX];
	char *slash;
	snprintf(tmp, sizeof(tmp), "%s", path);
	slash = strrchr(tmp, '/');
	if (slash == NULL || slash == tmp)
		return 0;
	*slash = '\0';
	return mkdir_p(tmp, 0755);
}

static int
touch(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return errno == EEXIST ? 0 : -1;
	close(fd);
	return 0;
}

/* Adds (never clears) mount flags, recursively. mount_setattr (5.12) keeps the flags the
 * kernel locked for us in this user namespace; the old remount path must repeat them. */
static int
restrict_mount(const char *path, bool rdonly, bool recursive)
{
	struct mount_attr a = {0};
	struct statvfs sv;
	unsigned long fl;
	a.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (rdonly ? MOUNT_ATTR_RDONLY : 0);
	if (syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &a,
	            sizeof(a)) == 0)
		return 0;
	if (errno != ENOSYS)
		return -1;
	if (statvfs(path, &sv) != 0)
		return -1;
	fl = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (rdonly ? MS_RDONLY : 0);
	fl |= sv.f_flag & (ST_NOEXEC | ST_NOATIME | ST_NODIRATIME | ST_RELATIME);
	return mount(NULL, path, NULL, fl, NULL);
}

static void
do_bind(const struct sandbox_op *o, const char *dst)
{
	struct stat st;
	char src[PATH_MAX];
	if (o->fd >= 0) {
		/* The parent cloned the tree (open_tree) with host privileges and set its
		 * flags: we only move it in, needing no search permission on host paths. */
		if (fstat(o->fd, &st) != 0)
			die("bind source", -errno);
		CHECK("bind mkdir", mkparent(dst));
		if (S_ISDIR(st.st_mode)) {
			if (mkdir(dst, 0755) != 0 && errno != EEXIST)
				die("bind mkdir", -errno);
		} else {
			CHECK("bind touch", touch(dst, 0644));
		}
		CHECK("move_mount", (int)syscall(SYS_move_mount, o->fd, "", AT_FDCWD, dst,
		                                 MOVE_MOUNT_F_EMPTY_PATH));
		close(o->fd);
		return;
	}
	path2(src, OLD, o->src);
	if (stat(src, &st) != 0) {
		if (errno == ENOENT && (o->flags & SB_OPF_OPTIONAL))
			return;
		die("bind source", -errno);
	}
	CHECK("bind mkdir", mkparent(dst));
	if (S_ISDIR(st.st_mode)) {
		if (mkdir(dst, 0755) != 0 && errno != EEXIST)
			die("bind mkdir", -errno);
	} else {
		CHECK("bind touch", touch(dst, 0644));
	}
	CHECK("bind mount", mount(src, dst, NULL, MS_BIND | MS_REC, NULL));
	CHECK("bind restrict", restrict_mount(dst, !(o->flags & SB_OPF_RW), true));
}

static void
do_tmpfs(const char *dst, uint64_t size, mode_t mode, unsigned long extra)
{
	char opt[64];
	snprintf(opt, sizeof(opt), "mode=%o,size=%llu", (unsigned)mode, (unsigned long long)size);
	CHECK("tmpfs mkdir", mkdir_p(dst, 0755));
	CHECK("tmpfs mount", mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV | extra, opt));
}

/* OCI runtime defaults: hide kernel-global files, make the writable knobs read-only. */
static const char *const proc_null[] = {"kcore",         "keys", "timer_list", "sched_debug",
                                        "latency_stats", "kmsg", "kallsyms"};
static const char *const proc_empty[] = {"acpi", "scsi"};
static const char *const proc_ro[] = {"sys", "sysrq-trigger", "irq", "bus", "fs", "asound"};

static void
do_proc(const char *dst)
{
	char p[PATH_MAX];
	size_t i;
	CHECK("proc mkdir", mkdir_p(dst, 0555));
	CHECK("proc mount", mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
	for (i = 0; i < ARRAY_LEN(proc_null); i++) {
		snprintf(p, sizeof(p), "%s/%s", dst, proc_null[i]);
		if (access(p, F_OK) == 0)
			CHECK("proc mask", mount(OLD "/dev/null", p, NULL, MS_BIND, NULL));
	}
	for (i = 0; i < ARRAY_LEN(proc_empty); i++) {
		snprintf(p, sizeof(p), "%s/%s", dst, proc_empty[i]);
		if (access(p, F_OK) == 0)
			CHECK("proc mask dir", mount("tmpfs", p, "tmpfs",
			                             MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			                             "size=0,mode=0555"));
	}
	for (i = 0; i < ARRAY_LEN(proc_ro); i++) {
		snprintf(p, sizeof(p), "%s/%s", dst, proc_ro[i]);
		if (access(p, F_OK) != 0)
			continue;
		CHECK("proc ro bind", mount(p, p, NULL, MS_BIND | MS_REC, NULL));
		CHECK("proc ro", restrict_mount(p, true, true));
	}
}

static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

static void
do_dev(const char *dst)
{
	char p[PATH_MAX], src[PATH_MAX];
	size_t i;
	do_tmpfs(dst, 256 * 1024, 0755, MS_NOEXEC);
	for (i = 0; i < ARRAY_LEN(dev_nodes); i++) {
		snprintf(p, sizeof(p), "%s/%s", dst, dev_nodes[i]);
		snprintf(src, sizeof(src), OLD "/dev/%s", dev_nodes[i]);
		CHECK("dev touch", touch(p, 0666));
		CHECK("dev bind", mount(src, p, NULL, MS_BIND, NULL));
	}
	/* A fresh devpts instance: ptys of this sandbox only. Optional (old kernels). */
	snprintf(p, sizeof(p), "%s/pts", dst);
	CHECK("dev pts mkdir", mkdir_p(p, 0755));
	if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC,
	          "newinstance,ptmxmode=0666,mode=620") == 0) {
		snprintf(p, sizeof(p), "%s/ptmx", dst);
		CHECK("dev ptmx", symlink("pts/ptmx", p));
	}
	snprintf(p, sizeof(p), "%s/fd", dst);
	CHECK("dev fd", symlink("/proc/self/fd", p));
	snprintf(p, sizeof(p), "%s/stdin", dst);
	CHECK("dev stdin", symlink("/proc/self/fd/0", p));
	snprintf(p, sizeof(p), "%s/stdout", dst);
	CHECK("dev stdout", symlink("/proc/self/fd/1", p));
	snprintf(p, sizeof(p), "%s/stderr", dst);
	CHECK("dev stderr", symlink("/proc/self/fd/2", p));
}

static void
do_file(const char *dst, const char *data, mode_t mode)
{
	int fd;
	size_t n = data ? strlen(data) : 0;
	CHECK("file mkdir", mkparent(dst));
	fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		die("file create", -errno);
	if (n && write(fd, data, n) != (ssize_t)n)
		die("file write", -errno);
	close(fd);
}

static void finish_root(void);

static void
run_op(const struct sandbox_op *o)
{
	char dst[PATH_MAX];
	path2(dst, root_prefix, o->dst);
	switch (o->type) {
	case SB_OP_SYSDIR:
	case SB_OP_BIND:
		do_bind(o, dst);
		return;
	case SB_OP_TMPFS:
		do_tmpfs(dst, o->size, o->mode, 0);
		return;
	case SB_OP_PROC:
		do_proc(dst);
		return;
	case SB_OP_DEV:
		do_dev(dst);
		return;
	case SB_OP_FILE:
		do_file(dst, o->data, o->mode);
		return;
	case SB_OP_DIR:
		CHECK("dir", mkdir_p(dst, o->mode));
		return;
	case SB_OP_SYMLINK:
		CHECK("symlink mkdir", mkparent(dst));
		CHECK("symlink", symlink(o->data, dst));
		return;
	}
	die("unknown op", AL_E_INTERNAL);
}

/* Everything but the workspace. In fd mode the new root is final afterwards (the host
 * tree detached); in path mode the host tree stays at /oldroot for the claim's bind. */
static void
setup_fs(const struct sandbox_ops *ops, bool path_mode)
{
	size_t i;
	char dst[PATH_MAX];
	CHECK("make / private", mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	CHECK("base tmpfs",
	      mount("tmpfs", BASE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k"));
	CHECK("chdir base", chdir(BASE));
	CHECK("mkdir newroot", mkdir("newroot", 0755));
	CHECK("mkdir oldroot", mkdir("oldroot", 0755));
	CHECK("root tmpfs",
	      mount("tmpfs", "newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m"));
	/* The host tree stays reachable at /oldroot while the ops copy parts of it. */
	CHECK("pivot_root 1", (int)syscall(SYS_pivot_root, BASE, BASE "/oldroot"));
	CHECK("chdir /", chdir("/"));
	for (i = 0; i < ops->n; i++)
		run_op(&ops->v[i]);
	/* /dev itself read-only once /dev/shm and /dev/pts are mounted in it. */
	for (i = 0; i < ops->n; i++)
		if (ops->v[i].type == SB_OP_DEV) {
			path2(dst, NEW, ops->v[i].dst);
			CHECK("dev ro", restrict_mount(dst, true, false));
		}
	if (!path_mode)
		finish_root();
}

static void
finish_root(void)
{
	int fd;
	CHECK("umount oldroot", umount2(OLD, MNT_DETACH));
	CHECK("chdir newroot", chdir(NEW));
	CHECK("pivot_root 2", (int)syscall(SYS_pivot_root, ".", "."));
	CHECK("umount base", umount2(".", MNT_DETACH));
	CHECK("chdir /", chdir("/"));
	root_prefix = "";
	/* stdio on the sandbox's own /dev/null from here on, not the host's. */
	if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
		die("open /dev/null", -errno);
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	close(fd);
}

/* The claim's part: the workspace at /workspace and at its host path (trees the parent
 * cloned, or path binds from /oldroot), then the root goes read-only. */
static void
claim_fs(const char *ws, const int *fds, size_t nfds, bool path_mode)
{
	struct sandbox_op o;
	char dst[PATH_MAX];
	const char *dsts[2] = {"/workspace", ws};
	size_t i, n = strcmp(ws, "/workspace") == 0 ? 1 : 2;
	if (nfds != (path_mode ? 0 : n))
		die("claim fds", AL_E_PROTO);
	for (i = 0; i < n; i++) {
		memset(&o, 0, sizeof(o));
		o.type = SB_OP_BIND;
		o.flags = SB_OPF_RW;
		o.src = (char *)ws;
		o.dst = (char *)dsts[i];
		o.fd = path_mode ? -1 : fds[i];
		path2(dst, root_prefix, dsts[i]);
		do_bind(&o, dst);
	}
	if (path_mode)
		finish_root();
	CHECK("root ro", restrict_mount("/", true, false));
}

static void
setup_net(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		die("lo socket", -errno);
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	CHECK("lo flags", ioctl(s, SIOCGIFFLAGS, &ifr));
	ifr.ifr_flags |= IFF_UP;
	CHECK("lo up", ioctl(s, SIOCSIFFLAGS, &ifr));
	close(s);
}

static void
set_rl(int res, rlim_t v, const char *step)
{
	struct rlimit rl = {v, v};
	CHECK(step, setrlimit(res, &rl));
}

static void
setup_rlimits(const struct sandbox_profile *p)
{
	set_rl(RLIMIT_CORE, 0, "rlimit core");
	set_rl(RLIMIT_NOFILE, p->nofile, "rlimit nofile");
	set_rl(RLIMIT_FSIZE, (rlim_t)p->fsize_mb * 1024 * 1024, "rlimit fsize");
	set_rl(RLIMIT_STACK, 8 * 1024 * 1024, "rlimit stack");
	set_rl(RLIMIT_RTPRIO, 0, "rlimit rtprio");
	set_rl(RLIMIT_NICE, 0, "rlimit nice");
	set_rl(RLIMIT_MEMLOCK, 8 * 1024 * 1024, "rlimit memlock");
	/* Counted per user namespace (5.14+), so this is per sandbox: a backstop for pids. */
	if (p->pids_max)
		set_rl(RLIMIT_NPROC, p->pids_max, "rlimit nproc");
}

static void
set_ids(void)
{
	CHECK("setresgid", setresgid(SANDBOX_INNER_UID, SANDBOX_INNER_UID, SANDBOX_INNER_UID));
	CHECK("setresuid", setresuid(SANDBOX_INNER_UID, SANDBOX_INNER_UID, SANDBOX_INNER_UID));
}

static void
drop_caps(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	int cap;
	CHECK("securebits",
	      prctl(PR_SET_SECUREBITS,
	            SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
	                SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
	                SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
	            0, 0, 0));
	for (cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
			if (errno == EINVAL)
				break; /* past the kernel's last capability */
			die("drop bounding set", -errno);
		}
	CHECK("clear ambient", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
	set_ids();
	memset(d, 0, sizeof(d));
	CHECK("capset", (int)syscall(SYS_capset, &h, d));
}

/* /proc/1/cmdline is world-readable inside (non-dumpable or not): the worker's argv it
 * still shows after the clone (ids, even a key given as a flag) is overwritten in our own
 * copy of the argument area. Fields 48 and 49 of /proc/self/stat bound that area. */
static void
scrub_cmdline(void)
{
	static const char name[] = "airlock-sandbox-init";
	char st[2048], *p, *e;
	uint64_t v[2] = {0, 0};
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC), field = 2, k = 0;
	ssize_t n = fd >= 0 ? read(fd, st, sizeof(st) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	st[n] = '\0';
	if ((p = strrchr(st, ')')) == NULL)
		return;
	for (p++; *p == ' ' && k < 2; field++) {
		p++;
		e = strchr(p, ' ');
		if (e == NULL)
			e = p + strlen(p);
		if ((field + 1 == 48 || field + 1 == 49) &&
		    parse_uint(p, (size_t)(e - p), UINT64_MAX, &v[k]) == 0)
			k++;
		p = e;
	}
	if (k != 2 || v[1] <= v[0] || v[1] - v[0] > (1u << 20))
		return;
	memset((void *)(uintptr_t)v[0], 0, (size_t)(v[1] - v[0]));
	memcpy((void *)(uintptr_t)v[0], name,
	       v[1] - v[0] > sizeof(name) ? sizeof(name) : (size_t)(v[1] - v[0] - 1));
}

/* Into our cgroups before anything else runs here (the limits hold from now on), while
 * our credentials are still our creator's (root owns cgroup.procs): "0" = the writer. The
 * write may wait for an RCU grace period; we wait, our creator does not. */
static void
join_cgroups(const struct sandbox_cg *cg)
{
	char path[PATH_MAX];
	size_t i;
	int fd;
	for (i = 0; i < cg->n; i++) {
		if (cg->paths[i] == NULL)
			continue;
		if (snprintf(path, sizeof(path), "%s/cgroup.procs", cg->paths[i]) >=
		    (int)sizeof(path))
			die("cgroup path", AL_E_TOOBIG);
		if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
			die("cgroup open", -errno);
		if (write(fd, "0", 1) != 1)
			die("cgroup attach", -errno);
		close(fd);
	}
}

/* Waits for the parent's next message of type want; EOF (the spare was dropped, or the
 * claim gave up) ends the child quietly. */
static void
recv_msg(struct sandbox_msg *m, uint32_t want)
{
	uint32_t type;
	int r = sandbox_msg_recv(ctl_fd, m);
	if (r == AL_E_CLOSED)
		_exit(0);
	if (r != 0 || sandbox_msg_get_u32(m, &type) != 0 || type != want)
		die("claim message", AL_E_PROTO);
}

static void
report(uint32_t type, uint32_t ll_abi)
{
	struct sandbox_msg m;
	sandbox_msg_init(&m);
	(void)sandbox_msg_put_u32(&m, type);
	(void)sandbox_msg_put_u32(&m, 0);
	(void)sandbox_msg_put_str(&m, "");
	(void)sandbox_msg_put_u32(&m, ll_abi);
	if (sandbox_msg_send(ctl_fd, &m, NULL, 0) != 0)
		_exit(1);
	buf_free(&m.b);
}

void
sandbox_child_main(const struct sandbox_child_args *a)
{
	int nul, ctl, sync, r;
	char c;
	sigset_t all;
	uint64_t deadline = 0;
	struct sandbox_msg m;
	const char *ws, *rw[2];
	size_t nrw;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	scrub_cmdline();
	/* Keep exactly: 0-2 (/dev/null), 3 (ctl), 4 (sync). */
	ctl = fcntl(a->ctl, F_DUPFD_CLOEXEC, 10);
	sync = fcntl(a->sync, F_DUPFD_CLOEXEC, 10);
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (ctl < 0 || sync < 0 || nul < 0)
		_exit(1);
	dup2(nul, 0);
	dup2(nul, 1);
	dup2(nul, 2);
	if (dup3(ctl, 3, O_CLOEXEC) < 0 || dup3(sync, 4, O_CLOEXEC) < 0)
		_exit(1);
	/* Everything else inherited goes once the bind fds (>= 64) have been used. */
	syscall(SYS_close_range, 5, 63, 0);
	ctl_fd = 3;
	/* The parent writes our uid/gid maps, then one byte. EOF means it gave up (or died):
	 * leave quietly. */
	if (read(4, &c, 1) != 1)
		_exit(1);
	close(4);
	join_cgroups(a->cg);
	/* A spare may wait long before its lockdown: no same-uid host process (an
	 * unprivileged worker) may ptrace it or read its memory meanwhile. The maps are
	 * written, so nothing needs our /proc files any more. */
	CHECK("dumpable", prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));

	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	for (r = 1; r < NSIG; r++)
		if (r != SIGKILL && r != SIGSTOP)
			signal(r, SIG_DFL);
	clearenv();

	/* uid 1000 right away (caps stay: our old uid has no mapping here, so no setuid
	 * fixup), so files the ops create have a mapped owner. */
	set_ids();
	/* The parent moved us into our cgroup before the release: it is this namespace's root. */
	CHECK("unshare cgroup ns", unshare(CLONE_NEWCGROUP));
	setup_fs(a->ops, a->path_mode);
	/* A spare holds nothing of its creator's but ctl: no host fd waits with it. */
	syscall(SYS_close_range, 4, ~0U, 0);
	CHECK("sethostname", sethostname("sandbox", 7));
	setup_net();
	if (setsid() < 0)
		die("setsid", -errno);
	setup_rlimits(a->profile);

	/* ---- spare: ready for a claim, nothing of any session in it yet ---- */
	report(SB_INIT_SPARE, 0);
	phase = SB_INIT_READY;
	sandbox_msg_init(&m);
	recv_msg(&m, SB_INIT_CLAIM);
	if (sandbox_msg_get_str(&m, &ws) != 0 || !sandbox_msg_done(&m) || !sandbox_path_valid(ws) ||
	    strcmp(ws, "/") == 0)
		die("claim message", AL_E_PROTO);
	claim_fs(ws, m.fds, m.nfds, a->path_mode);
	m.nfds = 0; /* moved into place and closed: the message must not close them again */
	rw[0] = "/workspace";
	rw[1] = ws;
	nrw = strcmp(ws, "/workspace") == 0 ? 1 : 2;
	drop_caps();
	CHECK("no_new_privs", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	/* Nothing in the sandbox may ptrace or read /proc/1/{mem,fd,environ} of pid 1. */
	CHECK("dumpable", prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
	r = sandbox_landlock_apply(a->ops, rw, nrw);
	if (r != 0 && r != AL_E_UNSUPPORTED)
		die("landlock", r);
	if (sandbox_seccomp_load(a->seccomp_prog, a->seccomp_len) != 0)
		die("seccomp", -errno);
	sandbox_msg_reset(&m);
	buf_free(&m.b);

	if (a->profile->wall_clock_s)
		deadline = now_mono_ms() + (uint64_t)a->profile->wall_clock_s * 1000;
	report(SB_INIT_READY, r == 0 ? (uint32_t)sandbox_landlock_abi() : 0);
	sandbox_init_loop(3, deadline);
}
