/* The parent side of a sandbox: plan (ops, filters, uid, cgroup, journal), clone3 into
 * fresh namespaces, uid/gid maps, cgroup attach, release the child, which sets up
 * everything but the workspace ahead of demand (a spare); the claim binds a session's
 * workspace, journals the session and lets the child lock itself down. Then it talks to
 * pid 1 to run processes; destroy kills the pid namespace and queues the cgroups for
 * sandbox_gc(). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "sandbox_int.h"
#include "util.h"
#include "xalloc.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define READY_TIMEOUT_MS 20000

struct sandbox {
	char *sid;
	char *state_dir;
	pid_t pid; /* pid 1 inside, as the host sees it */
	int pidfd; /* of pid 1 */
	int ctl;   /* SOCK_SEQPACKET to pid 1 */
	uid_t host_uid;
	gid_t host_gid;
	bool path_mode;  /* the child binds by path (no open_tree clones) */
	char cgname[48]; /* its cgroups' name (sessions come later: never the session id) */
	long slot;       /* uid slot (root monitor), -1 otherwise */
	int idmap_fd;    /* user namespace of the workspace's idmapped mount, or -1 */
	struct sandbox_cg cg;
	bool reaped;
};

struct sandbox_proc {
	int status_fd;
	pid_t pid;
	bool done;
	int wstatus;
	struct sandbox *sb; /* for kill, when kill_fn is NULL */
	int (*kill_fn)(void *ctx, uint32_t tag, pid_t pid, int sig);
	void *ctx;
	uint32_t tag;
};

/* Host uid slots of a root monitor: one uid per live sandbox, so two sandboxes never share
 * an owner (files, signals, RLIMIT_NPROC, and the per-user kernel counters: epoll
 * watches, pipe buffers, SCM_RIGHTS in flight). A slot's uid is also leased host-wide
 * (flock on SANDBOX_UID_LEASE_DIR/<uid>, held while the sandbox lives): two workers with
 * the same uid range never hand out the same uid at once. */
static int *slots; /* per slot: 0 free, 1 taken without a lease, else lease fd + 2 */
static uint32_t nslots;
static bool lease_warned;

/* The lease of one host uid: an fd holding an exclusive flock, -EWOULDBLOCK when another
 * process holds it, another error when the lease dir is unusable. */
static int
uid_lease(uint32_t uid)
{
	char path[64];
	int fd;
	if (mkdir("/run/airlock", 0755) != 0 && errno != EEXIST)
		return -errno;
	if (mkdir(SANDBOX_UID_LEASE_DIR, 0700) != 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/%u", SANDBOX_UID_LEASE_DIR, uid);
	if ((fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int write_proc(pid_t pid, const char *name, const char *val);

static long
slot_get(uint32_t base, uint32_t count)
{
	uint32_t i;
	int fd;
	if (slots == NULL) {
		nslots = count;
		slots = xcalloc(count, sizeof(*slots));
	}
	for (i = 0; i < nslots && i < count; i++) {
		if (slots[i])
			continue;
		if ((fd = uid_lease(base + i)) == -EWOULDBLOCK)
			continue; /* another worker's sandbox has it now */
		if (fd < 0 && !lease_warned) {
			lease_warned = true;
			log_warn("sandbox: no host-wide uid leases (uids are unique in this worker "
			         "only)",
			         "dir", SANDBOX_UID_LEASE_DIR, "error", al_strerror(fd));
		}
		slots[i] = fd < 0 ? 1 : fd + 2;
		return (long)i;
	}
	return -1;
}

static void
slot_put(long s)
{
	if (s >= 0 && (uint32_t)s < nslots && slots[s]) {
		if (slots[s] >= 2)
			close(slots[s] - 2);
		slots[s] = 0;
	}
}

/* A user namespace that maps the workspace's on-disk owner to the sandbox's host uid, for
 * its idmapped mount (files the sandbox writes are the owner's on disk, the owner's look
 * like the sandbox's own inside). Only its fd is kept: the process that made it exits
 * before this returns. */
static int
idmap_userns(uint32_t disk_uid, uint32_t disk_gid, uid_t uid, gid_t gid)
{
	char map[64], path[64];
	int pfd[2], fd = -1, r;
	pid_t pid;
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -errno;
	pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid == 0) {
		char c;
		close(pfd[1]);
		(void)!read(pfd[0], &c, 1); /* EOF: the parent has its fd */
		_exit(0);
	}
	close(pfd[0]);
	if (pid < 0) {
		r = -errno;
		close(pfd[1]);
		return r;
	}
	snprintf(map, sizeof(map), "%u %u 1\n", disk_uid, (unsigned)uid);
	if ((r = write_proc(pid, "uid_map", map)) == 0) {
		snprintf(map, sizeof(map), "%u %u 1\n", disk_gid, (unsigned)gid);
		r = write_proc(pid, "gid_map", map);
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	if (r == 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		r = -errno;
	close(pfd[1]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return r != 0 ? r : fd;
}

static int
write_proc(pid_t pid, const char *name, const char *val)
{
	char path[64];
	int fd, r = 0;
	size_t n = strlen(val);
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (write(fd, val, n) != (ssize_t)n)
		r = -errno;
	close(fd);
	return r;
}

static int
wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? AL_E_TIMEOUT : 0;
}

static void
reap_init(struct sandbox *sb)
{
	siginfo_t si;
	if (sb->reaped || sb->pidfd < 0)
		return;
	syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
	memset(&si, 0, sizeof(si));
	while (waitid((idtype_t)P_PIDFD, (id_t)sb->pidfd, &si, WEXITED) != 0 && errno == EINTR)
		;
	sb->reaped = true;
}

int
sandbox_idmap_probe(int dirfd)
{
	struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP};
	int ns, tree, r = 0;
	if ((ns = idmap_userns(65534, 65534, 65534, 65534)) < 0)
		return ns;
	tree = (int)syscall(SYS_open_tree, dirfd, "",
	                    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	a.userns_fd = (uint64_t)ns;
	if (tree < 0 || syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &a, sizeof(a)) != 0)
		r = -errno;
	if (tree >= 0)
		close(tree);
	close(ns);
	return r;
}

int
sandbox_pidfd(const struct sandbox *sb)
{
	return sb->pidfd;
}

uid_t
sandbox_host_uid(const struct sandbox *sb)
{
	return sb->host_uid;
}

static int
clone_child(int *pidfd, pid_t *pid)
{
	struct clone_args ca;
	long r;
	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
	           CLONE_NEWUTS | CLONE_PIDFD;
	ca.pidfd = (uint64_t)(uintptr_t)pidfd;
	ca.exit_signal = SIGCHLD;
	r = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r < 0 && errno == ENOSYS) {
		/* < 5.3: classic clone (fork-like, no stack) and pidfd_open. */
		r = syscall(SYS_clone,
		            CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
		                CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD,
		            NULL, NULL, NULL, NULL);
		if (r > 0 && (*pidfd = (int)syscall(SYS_pidfd_open, (pid_t)r, 0)) < 0) {
			kill((pid_t)r, SIGKILL);
			waitpid((pid_t)r, NULL, 0);
			return -errno;
		}
	}
	if (r < 0)
		return -errno;
	*pid = (pid_t)r;
	return 0;
}

static unsigned spare_seq;
static void destroy_spent(struct sandbox *sb);

struct sandbox_spare {
	struct sandbox *sb;
	const struct sandbox_profile *p;
	bool ready; /* SB_INIT_SPARE received */
};

/* Reads the child's SPARE or READY report: type, i32 err, str step, u32 Landlock ABI.
 * A failure in the child arrives with its step, which is logged here. */
static int
read_report(struct sandbox *sb, uint32_t want, int timeout_ms, uint32_t *ll_abi)
{
	struct sandbox_msg m;
	uint32_t type, abi = 0;
	int32_t cerr;
	const char *step = "";
	int r;

	sandbox_msg_init(&m);
	if ((r = wait_readable(sb->ctl, timeout_ms)) != 0)
		goto out;
	if ((r = sandbox_msg_recv(sb->ctl, &m)) != 0 || sandbox_msg_get_u32(&m, &type) != 0 ||
	    (type != want && type != SB_INIT_READY && type != SB_INIT_SPARE) ||
	    sandbox_msg_get_i32(&m, &cerr) != 0 || sandbox_msg_get_str(&m, &step) != 0 ||
	    sandbox_msg_get_u32(&m, &abi) != 0) {
		r = r ? r : AL_E_PROTO;
		goto out;
	}
	if (cerr != 0) {
		r = cerr;
		log_error("sandbox setup failed in the child", "step", step, "error",
		          al_strerror(cerr));
		goto out;
	}
	r = type == want ? 0 : AL_E_PROTO;
out:
	if (ll_abi != NULL)
		*ll_abi = abi;
	sandbox_msg_reset(&m);
	buf_free(&m.b);
	return r;
}

/* Kills pid 1 (if any), closes its fds, gives back the uid slot. Host artefacts (cgroup,
 * record) are the caller's. */
static void
sb_free(struct sandbox *sb)
{
	if (sb == NULL)
		return;
	if (sb->ctl >= 0)
		close(sb->ctl);
	sb->ctl = -1;
	reap_init(sb);
	if (sb->pidfd >= 0)
		close(sb->pidfd);
	sandbox_cg_free(&sb->cg);
	if (sb->idmap_fd >= 0)
		close(sb->idmap_fd);
	slot_put(sb->slot);
	free(sb->sid);
	free(sb->state_dir);
	free(sb);
}

int
sandbox_spare_new(const struct sandbox_profile *p, struct sandbox_spare **out)
{
	struct sandbox *sb = NULL;
	struct sandbox_ops ops = {0};
	char map[64];
	const void *prog;
	size_t prog_len, i;
	int sv[2] = {-1, -1}, syncp[2] = {-1, -1}, r;
	pid_t pid = 0;
	uid_t huid;
	gid_t hgid;
	bool root = geteuid() == 0, path_mode = false, journaled = false;

	*out = NULL;
	if (sandbox_profile_check(p, NULL) != 0) {
		r = AL_E_INVAL;
		goto out;
	}
	if (sandbox_cg_detect(NULL) == SB_CG_NONE && !(p->degraded & SANDBOX_DEGRADED_NO_CGROUPS)) {
		const char *why;
		sandbox_cg_detect(&why);
		log_error("sandbox: no usable cgroups (start with degraded no-cgroups to run "
		          "without memory/pids limits)",
		          "reason", why);
		r = AL_E_UNSUPPORTED;
		goto out;
	}
	if ((r = sandbox_seccomp_prog(&prog, &prog_len)) != 0)
		goto out;
	if ((r = sandbox_ops_build(p, NULL, &ops)) != 0 || (r = sandbox_ops_resolve(&ops)) != 0)
		goto out;
	/* No open_tree clones (unprivileged): the child binds by path, the workspace too. */
	for (i = 0; i < ops.n; i++)
		if ((ops.v[i].type == SB_OP_BIND || ops.v[i].type == SB_OP_SYSDIR) &&
		    ops.v[i].fd < 0)
			path_mode = true;

	sb = xcalloc(1, sizeof(*sb));
	sb->state_dir = xstrdup(p->state_dir);
	sb->pidfd = sb->ctl = -1;
	sb->slot = -1;
	sb->idmap_fd = -1;
	sb->path_mode = path_mode;
	if (root) {
		/* Root's supplementary groups would still apply to host files inside. */
		if (getgroups(0, NULL) > 0 && setgroups(0, NULL) != 0) {
			r = -errno;
			goto out;
		}
		if (p->run_as_set) {
			huid = (uid_t)p->run_as_uid;
			hgid = (gid_t)p->run_as_gid;
		} else {
			if ((sb->slot = slot_get(p->uid_base, p->uid_count)) < 0) {
				r = AL_E_AGAIN;
				goto out;
			}
			huid = (uid_t)(p->uid_base + (uint32_t)sb->slot);
			hgid = (gid_t)huid;
			/* Off the session's path: the claim only attaches it to the mount. */
			if (p->ws_owner_set && !path_mode &&
			    (sb->idmap_fd =
			         idmap_userns(p->ws_owner_uid, p->ws_owner_gid, huid, hgid)) < 0) {
				r = sb->idmap_fd;
				sb->idmap_fd = -1;
				goto out;
			}
		}
	} else {
		huid = geteuid();
		hgid = getegid();
	}
	sb->host_uid = huid;
	sb->host_gid = hgid;

	/* The cgroup now, with a name of its own: moving a process into a v1 cgroup waits
	 * for an RCU grace period (~10 ms on an idle host), which no claim should pay. The
	 * child joins it itself, so neither do we (the monitor keeps serving meanwhile). */
	snprintf(sb->cgname, sizeof(sb->cgname), "sb-%d-%u", (int)getpid(), ++spare_seq);
	if ((r = sandbox_journal_write(p->state_dir, false, sb->cgname, &sb->cg, true)) != 0)
		goto out;
	journaled = true;
	if ((r = sandbox_cg_create(p, sb->cgname, &sb->cg)) != 0)
		goto out;
	if (sb->cg.mode == SB_CG_NONE)
		log_warn("sandbox DEGRADED: no cgroups, memory and pids limits are rlimits only");
	if ((r = sandbox_journal_write(p->state_dir, false, sb->cgname, &sb->cg, false)) != 0)
		goto out;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 ||
	    pipe2(syncp, O_CLOEXEC) != 0) {
		r = -errno;
		goto out;
	}
	if ((r = clone_child(&sb->pidfd, &pid)) != 0)
		goto out;
	if (pid == 0) {
		struct sandbox_child_args a = {
		    .profile = p,
		    .ops = &ops,
		    .seccomp_prog = prog,
		    .seccomp_len = prog_len,
		    .ctl = sv[1],
		    .sync = syncp[0],
		    .path_mode = path_mode,
		    .cg = &sb->cg,
		};
		sandbox_child_main(&a);
	}
	sb->pid = pid;
	close(sv[1]);
	sv[1] = -1;
	close(syncp[0]);
	syncp[0] = -1;
	sb->ctl = sv[0];
	sv[0] = -1;

	if ((r = write_proc(pid, "setgroups", "deny")) != 0)
		goto out;
	snprintf(map, sizeof(map), "%u %u 1\n", SANDBOX_INNER_UID, (unsigned)huid);
	if ((r = write_proc(pid, "uid_map", map)) != 0)
		goto out;
	snprintf(map, sizeof(map), "%u %u 1\n", SANDBOX_INNER_UID, (unsigned)hgid);
	if ((r = write_proc(pid, "gid_map", map)) != 0)
		goto out;
	if (write(syncp[1], "x", 1) != 1) {
		r = -errno;
		goto out;
	}
	/* The child sets itself up from here on, concurrently with our caller. */
	*out = xcalloc(1, sizeof(**out));
	(*out)->sb = sb;
	(*out)->p = p;
	sb = NULL;
	r = 0;
out:
	if (sb != NULL) {
		if (sb->ctl >= 0)
			close(sb->ctl);
		sb->ctl = -1;
		reap_init(sb);
		if (sb->cg.n > 0)
			(void)sandbox_cg_remove(&sb->cg);
		if (journaled)
			sandbox_journal_remove(p->state_dir, false, sb->cgname);
		sb_free(sb);
	}
	for (i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (syncp[i] >= 0)
			close(syncp[i]);
	}
	sandbox_ops_free(&ops);
	return r;
}

int
sandbox_spare_fd(const struct sandbox_spare *sp)
{
	return sp->sb->ctl;
}

int
sandbox_spare_wait(struct sandbox_spare *sp, int timeout_ms)
{
	int r;
	if (sp->ready) {
		/* A set-up spare says nothing until claimed: anything on ctl is its death. */
		struct pollfd pf = {sp->sb->ctl, POLLIN, 0};
		return poll(&pf, 1, 0) > 0 ? AL_E_CLOSED : 0;
	}
	if ((r = read_report(sp->sb, SB_INIT_SPARE, timeout_ms, NULL)) == 0)
		sp->ready = true;
	return r;
}

void
sandbox_spare_free(struct sandbox_spare *sp)
{
	if (sp == NULL)
		return;
	destroy_spent(sp->sb);
	free(sp);
}

/* The pending removals of destroyed sandboxes and spares (sandbox_gc): cgroups whose
 * processes are all dead, journaled in <state_dir>/cgroups/<name>.rec. */
struct grave {
	char *state_dir;
	char name[48];
	struct sandbox_cg cg;
};
static struct grave *graves;
static size_t ngraves, capgraves;

/* The record goes only with the cgroups: one that stays is the next start's sweep's. */
static void
grave_bury(size_t i, bool gone)
{
	struct grave *g = &graves[i];
	if (gone)
		sandbox_journal_remove(g->state_dir, false, g->name);
	sandbox_cg_free(&g->cg);
	free(g->state_dir);
	*g = graves[--ngraves];
}

/* Pid 1 is reaped (the whole pid namespace is dead): its cgroups wait for sandbox_gc. */
static void
grave_add(struct sandbox *sb)
{
	struct grave *g;
	if (ngraves == capgraves) {
		capgraves = capgraves ? capgraves * 2 : 8;
		graves = xreallocarray(graves, capgraves, sizeof(*graves));
	}
	g = &graves[ngraves++];
	g->state_dir = sb->state_dir;
	snprintf(g->name, sizeof(g->name), "%s", sb->cgname);
	g->cg = sb->cg;
	sb->state_dir = NULL;
	memset(&sb->cg, 0, sizeof(sb->cg));
}

size_t
sandbox_gc(bool wait)
{
	size_t i = 0;
	while (i < ngraves) {
		int r =
		    wait ? sandbox_cg_remove(&graves[i].cg) : sandbox_cg_try_remove(&graves[i].cg);
		if (r != -EBUSY)
			grave_bury(i, r == 0); /* moved the last one to i */
		else
			i++;
	}
	return ngraves;
}

/* EOF makes pid 1 exit; SIGKILL makes sure. Either way the kernel kills the whole pid
 * namespace before pid 1 can be reaped: once reap_init returns, nothing of the sandbox
 * runs any more. Its cgroups (rmdir in up to three v1 hierarchies) go later, in
 * sandbox_gc(): that is not the session's end's business. */
static void
destroy_spent(struct sandbox *sb)
{
	if (sb->ctl >= 0)
		close(sb->ctl);
	sb->ctl = -1;
	reap_init(sb);
	grave_add(sb);
	sb_free(sb);
}

int
sandbox_spare_claim_fd(struct sandbox_spare *sp, const char *session_id, int wfd, const char *ws,
                       struct sandbox **out)
{
	struct sandbox *sb = sp->sb;
	const struct sandbox_profile *p = sp->p;
	struct sandbox_msg m;
	int fds[2] = {-1, -1}, r;
	size_t nfds = 0, i;
	uint32_t ll_abi;
	bool journaled = false, ready = sp->ready;
	struct stat st;

	free(sp); /* consumed: it becomes *out, or goes */
	sandbox_msg_init(&m);
	*out = NULL;
	if (!sandbox_id_valid(session_id) || wfd < 0 || !sandbox_path_valid(ws) ||
	    strcmp(ws, "/") == 0) {
		r = AL_E_INVAL;
		goto out;
	}
	/* The workspace is this fd from here on: what we chown and clone is what the caller
	 * checked; ws only names the mount point inside (never resolved on the host, except
	 * in path mode, where no privilege boundary exists: docs/lib/sandbox.md). */
	if (fstat(wfd, &st) != 0 || !S_ISDIR(st.st_mode)) {
		r = AL_E_INVAL;
		goto out;
	}
	/* Workspace files the sandbox writes must belong to its uid: on disk, or (ws_owner)
	 * through the idmapped mount, where the owner's files are the sandbox's own. */
	if (geteuid() == 0 &&
	    fchown(wfd, sb->idmap_fd >= 0 ? (uid_t)p->ws_owner_uid : sb->host_uid,
	           sb->idmap_fd >= 0 ? (gid_t)p->ws_owner_gid : sb->host_gid) != 0) {
		r = -errno;
		goto out;
	}
	if (!sb->path_mode) {
		nfds = strcmp(ws, "/workspace") == 0 ? 1 : 2;
		for (i = 0; i < nfds; i++) {
			struct mount_attr a = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
			if (sb->idmap_fd >= 0) {
				a.attr_set |= MOUNT_ATTR_IDMAP;
				a.userns_fd = (uint64_t)sb->idmap_fd;
			}
			fds[i] = (int)syscall(SYS_open_tree, wfd, "",
			                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
			                          AT_EMPTY_PATH);
			if (fds[i] < 0 ||
			    syscall(SYS_mount_setattr, fds[i], "", AT_EMPTY_PATH | AT_RECURSIVE, &a,
			            sizeof(a)) != 0) {
				r = -errno;
				goto out;
			}
		}
	}
	/* The session's record (its cgroups) replaces the spare's; O_EXCL: one sandbox per
	 * session. */
	if ((r = sandbox_journal_write(p->state_dir, true, session_id, &sb->cg, true)) != 0)
		goto out;
	journaled = true;
	sandbox_journal_remove(p->state_dir, false, sb->cgname);
	sb->sid = xstrdup(session_id);
	if ((r = sandbox_msg_put_u32(&m, SB_INIT_CLAIM)) != 0 ||
	    (r = sandbox_msg_put_str(&m, ws)) != 0 ||
	    (r = sandbox_msg_send(sb->ctl, &m, fds, nfds)) != 0) {
		r = r == -EPIPE || r == -ECONNRESET ? AL_E_CLOSED : r;
		goto out;
	}
	/* A spare still setting up finds the claim queued when it is done: one hand-off
	 * less than waiting for it first (each costs a wakeup on a loaded host). */
	if ((!ready && (r = read_report(sb, SB_INIT_SPARE, READY_TIMEOUT_MS, NULL)) != 0) ||
	    (r = read_report(sb, SB_INIT_READY, READY_TIMEOUT_MS, &ll_abi)) != 0) {
		log_error("sandbox: pid 1 did not report ready", "session_id", session_id, "error",
		          al_strerror(r));
		goto out;
	}
	if (ll_abi == 0)
		log_warn("sandbox: Landlock unavailable, mount namespace is the only fs layer",
		         "session_id", session_id);
	*out = sb;
	sb = NULL;
	r = 0;
out:
	if (sb != NULL) {
		/* Whatever failed, this spare is spent: its groups go the way of a destroy. */
		if (journaled &&
		    sandbox_journal_release(sb->state_dir, session_id, sb->cgname) != 0)
			sandbox_journal_remove(sb->state_dir, true, session_id);
		destroy_spent(sb);
	}
	for (i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	sandbox_msg_reset(&m);
	buf_free(&m.b);
	return r;
}

/* The path form, for callers whose path is their own (no less privileged party can
 * rename along it): resolved once here, then the fd form. */
int
sandbox_spare_claim(struct sandbox_spare *sp, const char *session_id, const char *workspace_dir,
                    struct sandbox **out)
{
	char ws[PATH_MAX];
	int wfd = -1, r;

	*out = NULL;
	if (workspace_dir == NULL || realpath(workspace_dir, ws) == NULL) {
		r = workspace_dir == NULL ? AL_E_INVAL : -errno;
		goto fail;
	}
	if ((wfd = open(ws, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		r = errno == ENOTDIR ? AL_E_INVAL : -errno;
		goto fail;
	}
	r = sandbox_spare_claim_fd(sp, session_id, wfd, ws, out);
	close(wfd);
	return r;
fail:
	sandbox_spare_free(sp); /* consumed in every case */
	return r;
}

int
sandbox_create(const struct sandbox_profile *p, const char *session_id, const char *workspace_dir,
               struct sandbox **out)
{
	struct sandbox_spare *sp;
	int r;
	*out = NULL;
	if (!sandbox_id_valid(session_id) || workspace_dir == NULL)
		return AL_E_INVAL;
	if ((r = sandbox_spare_new(p, &sp)) != 0)
		return r;
	return sandbox_spare_claim(sp, session_id, workspace_dir, out);
}

int
sandbox_create_fd(const struct sandbox_profile *p, const char *session_id, int wfd, const char *ws,
                  struct sandbox **out)
{
	struct sandbox_spare *sp;
	int r;
	*out = NULL;
	if (!sandbox_id_valid(session_id) || wfd < 0)
		return AL_E_INVAL;
	if ((r = sandbox_spare_new(p, &sp)) != 0)
		return r;
	return sandbox_spare_claim_fd(sp, session_id, wfd, ws, out);
}

static int
roundtrip(struct sandbox *sb, struct sandbox_msg *m, const int *fds, size_t nfds, uint32_t want)
{
	uint32_t type;
	int r;
	if (sb->ctl < 0)
		return AL_E_CLOSED;
	if ((r = sandbox_msg_send(sb->ctl, m, fds, nfds)) != 0)
		goto dead;
	if ((r = sandbox_msg_recv(sb->ctl, m)) != 0)
		goto dead;
	if (sandbox_msg_get_u32(m, &type) != 0 || type != want) {
		r = AL_E_PROTO;
		goto dead;
	}
	return 0;
dead:
	/* pid 1 is gone (wall clock, OOM) or misbehaved: this sandbox is over. */
	close(sb->ctl);
	sb->ctl = -1;
	return r == AL_E_PROTO ? r : AL_E_CLOSED;
}

int
sandbox_spawn(struct sandbox *sb, const char *const *argv, const char *const *envp, const char *cwd,
              int stdin_fd, int stdout_fd, int stderr_fd, struct sandbox_proc **out)
{
	int io[3] = {stdin_fd, stdout_fd, stderr_fd};
	return sandbox_spawn_fds(sb, NULL, argv, envp, cwd, io, 3, out);
}

int
sandbox_spawn_fds(struct sandbox *sb, const char *path, const char *const *argv,
                  const char *const *envp, const char *cwd, const int *io, size_t nio,
                  struct sandbox_proc **out)
{
	struct sandbox_msg m;
	char **env = NULL;
	int fds[SANDBOX_MAX_CHILD_FDS], r, sfd;
	size_t nfds = 0, i;
	uint32_t mask = 0;
	int32_t err, pid;
	struct sandbox_proc *p;

	*out = NULL;
	if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0' || nio > SANDBOX_MAX_CHILD_FDS)
		return AL_E_INVAL;
	if (path != NULL && !sandbox_path_valid(path))
		return AL_E_INVAL;
	if (cwd == NULL)
		cwd = "/workspace";
	if (!sandbox_path_valid(cwd))
		return AL_E_INVAL;
	for (i = 0; i < nio; i++)
		if (io[i] >= 0) {
			mask |= 1u << i;
			fds[nfds++] = io[i];
		}
	sandbox_msg_init(&m);
	env = sandbox_env_build(envp);
	if ((r = sandbox_msg_put_u32(&m, SB_INIT_SPAWN)) != 0 ||
	    (r = sandbox_msg_put_u32(&m, mask)) != 0 ||
	    (r = sandbox_msg_put_str(&m, path != NULL ? path : "")) != 0 ||
	    (r = sandbox_msg_put_strv(&m, argv)) != 0 ||
	    (r = sandbox_msg_put_strv(&m, (const char *const *)env)) != 0 ||
	    (r = sandbox_msg_put_str(&m, cwd)) != 0)
		goto out;
	if ((r = roundtrip(sb, &m, fds, nfds, SB_INIT_SPAWNED)) != 0)
		goto out;
	if (sandbox_msg_get_i32(&m, &err) != 0 || sandbox_msg_get_i32(&m, &pid) != 0) {
		r = AL_E_PROTO;
		goto out;
	}
	if (err != 0) {
		r = err;
		goto out;
	}
	if ((sfd = sandbox_msg_take_fd(&m, 0)) < 0) {
		r = AL_E_PROTO;
		goto out;
	}
	p = xcalloc(1, sizeof(*p));
	p->status_fd = sfd;
	p->pid = pid;
	p->sb = sb;
	*out = p;
	r = 0;
out:
	sandbox_strv_free(env);
	sandbox_msg_reset(&m);
	buf_free(&m.b);
	return r;
}

int
sandbox_kill_pid(struct sandbox *sb, pid_t pid, int sig)
{
	struct sandbox_msg m;
	int32_t err;
	int r;
	sandbox_msg_init(&m);
	if ((r = sandbox_msg_put_u32(&m, SB_INIT_KILL)) == 0 &&
	    (r = sandbox_msg_put_u32(&m, (uint32_t)pid)) == 0 &&
	    (r = sandbox_msg_put_u32(&m, (uint32_t)sig)) == 0 &&
	    (r = roundtrip(sb, &m, NULL, 0, SB_INIT_KILLED)) == 0)
		r = sandbox_msg_get_i32(&m, &err) == 0 ? err : AL_E_PROTO;
	sandbox_msg_reset(&m);
	buf_free(&m.b);
	return r;
}

struct sandbox_proc *
sandbox_proc_new_ext(int status_fd, pid_t pid, int (*kill_fn)(void *, uint32_t, pid_t, int),
                     void *ctx, uint32_t tag)
{
	struct sandbox_proc *p = xcalloc(1, sizeof(*p));
	p->tag = tag;
	p->status_fd = status_fd;
	p->pid = pid;
	p->kill_fn = kill_fn;
	p->ctx = ctx;
	return p;
}

int
sandbox_proc_steal_fd(struct sandbox_proc *p)
{
	int fd = p->status_fd;
	p->status_fd = -1;
	return fd;
}

int
sandbox_proc_fd(const struct sandbox_proc *p)
{
	return p->status_fd;
}

pid_t
sandbox_proc_pid(const struct sandbox_proc *p)
{
	return p->pid;
}

int
sandbox_proc_wait(struct sandbox_proc *p, int *wstatus)
{
	ssize_t n;
	int st;
	if (!p->done) {
		if (p->status_fd < 0)
			return AL_E_CLOSED;
		do
			n = read(p->status_fd, &st, sizeof(st));
		while (n < 0 && errno == EINTR);
		p->done = true;
		/* EOF without a status: pid 1 died, and the kernel killed everything with it. */
		p->wstatus = n == sizeof(st) ? st : SIGKILL;
		close(p->status_fd);
		p->status_fd = -1;
		if (n != sizeof(st)) {
			*wstatus = p->wstatus;
			return AL_E_CLOSED;
		}
	}
	*wstatus = p->wstatus;
	return 0;
}

int
sandbox_proc_kill(struct sandbox_proc *p, int sig)
{
	if (p->done)
		return -ESRCH;
	if (p->kill_fn != NULL)
		return p->kill_fn(p->ctx, p->tag, p->pid, sig);
	if (p->sb == NULL)
		return AL_E_CLOSED;
	return sandbox_kill_pid(p->sb, p->pid, sig);
}

void
sandbox_proc_free(struct sandbox_proc *p)
{
	if (p == NULL)
		return;
	if (p->status_fd >= 0)
		close(p->status_fd);
	free(p);
}

void
sandbox_destroy(struct sandbox *sb)
{
	if (sb == NULL)
		return;
	/* The session id is free again at once; the groups stay journaled until removed. */
	if (sb->sid != NULL && sandbox_journal_release(sb->state_dir, sb->sid, sb->cgname) != 0)
		sandbox_journal_remove(sb->state_dir, true, sb->sid);
	destroy_spent(sb);
}
