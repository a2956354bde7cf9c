/* The parent side of a sandbox: plan (ops, filters, cgroup, journal), clone3 into fresh
 * namespaces, uid/gid maps, release the child, then talk to its pid 1 to run processes;
 * destroy kills the pid namespace and removes every host artefact. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	long slot; /* uid slot (root monitor), -1 otherwise */
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
 * an owner (files, signals, RLIMIT_NPROC). */
static unsigned char *slots;
static uint32_t nslots;

static long
slot_get(uint32_t count)
{
	uint32_t i;
	if (slots == NULL) {
		nslots = count;
		slots = xcalloc(count, 1);
	}
	for (i = 0; i < nslots && i < count; i++)
		if (!slots[i]) {
			slots[i] = 1;
			return (long)i;
		}
	return -1;
}

static void
slot_put(long s)
{
	if (s >= 0 && (uint32_t)s < nslots)
		slots[s] = 0;
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

int
sandbox_create(const struct sandbox_profile *p, const char *session_id, const char *workspace_dir,
               struct sandbox **out)
{
	struct sandbox *sb = NULL;
	struct sandbox_ops ops = {0};
	struct sandbox_msg m;
	char ws[PATH_MAX], map[64];
	const void *prog;
	size_t prog_len;
	int sv[2] = {-1, -1}, syncp[2] = {-1, -1}, r;
	uint32_t type, ll_abi;
	int32_t cerr;
	const char *step;
	pid_t pid = 0;
	uid_t huid;
	gid_t hgid;
	bool root = geteuid() == 0, journaled = false;
	struct stat st;

	sandbox_msg_init(&m);
	*out = NULL;
	if (!sandbox_id_valid(session_id) || workspace_dir == NULL ||
	    sandbox_profile_check(p, NULL) != 0) {
		r = AL_E_INVAL;
		goto out;
	}
	if (realpath(workspace_dir, ws) == NULL) {
		r = -errno;
		goto out;
	}
	if (stat(ws, &st) != 0 || !S_ISDIR(st.st_mode)) {
		r = AL_E_INVAL;
		goto out;
	}
	if ((r = sandbox_seccomp_prog(&prog, &prog_len)) != 0)
		goto out;
	if ((r = sandbox_ops_build(p, ws, &ops)) != 0 || (r = sandbox_ops_resolve(&ops)) != 0)
		goto out;

	sb = xcalloc(1, sizeof(*sb));
	sb->sid = xstrdup(session_id);
	sb->state_dir = xstrdup(p->state_dir);
	sb->pidfd = sb->ctl = -1;
	sb->slot = -1;
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
			if ((sb->slot = slot_get(p->uid_count)) < 0) {
				r = AL_E_AGAIN;
				goto out;
			}
			huid = (uid_t)(p->uid_base + (uint32_t)sb->slot);
			hgid = (gid_t)huid;
		}
		/* Workspace files the sandbox writes must belong to its uid. By fd, never
		 * following a symlink: the path may come from the unprivileged side. */
		int wfd = open(ws, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (wfd < 0 || fchown(wfd, huid, hgid) != 0) {
			r = -errno;
			if (wfd >= 0)
				close(wfd);
			goto out;
		}
		close(wfd);
	} else {
		huid = geteuid();
		hgid = getegid();
	}
	sb->host_uid = huid;

	if (sandbox_cg_detect(NULL) == SB_CG_NONE && !(p->degraded & SANDBOX_DEGRADED_NO_CGROUPS)) {
		const char *why;
		sandbox_cg_detect(&why);
		log_error("sandbox: no usable cgroups (start with degraded no-cgroups to run "
		          "without memory/pids limits)",
		          "reason", why);
		r = AL_E_UNSUPPORTED;
		goto out;
	}
	/* Journal first: a crash after this point leaves a record the sweep acts on. */
	if ((r = sandbox_journal_write(p->state_dir, session_id, &sb->cg, true)) != 0)
		goto out;
	journaled = true;
	if ((r = sandbox_cg_create(p, session_id, &sb->cg)) != 0)
		goto out;
	if (sb->cg.mode == SB_CG_NONE)
		log_warn("sandbox DEGRADED: no cgroups, memory and pids limits are rlimits only",
		         "session_id", session_id);
	if ((r = sandbox_journal_write(p->state_dir, session_id, &sb->cg, false)) != 0)
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
	if ((r = sandbox_cg_attach(&sb->cg, pid)) != 0)
		goto out;
	if (write(syncp[1], "x", 1) != 1) {
		r = -errno;
		goto out;
	}
	close(syncp[1]);
	syncp[1] = -1;

	if ((r = wait_readable(sb->ctl, READY_TIMEOUT_MS)) != 0)
		goto out;
	if ((r = sandbox_msg_recv(sb->ctl, &m)) != 0 || sandbox_msg_get_u32(&m, &type) != 0 ||
	    type != SB_INIT_READY || sandbox_msg_get_i32(&m, &cerr) != 0 ||
	    sandbox_msg_get_str(&m, &step) != 0 || sandbox_msg_get_u32(&m, &ll_abi) != 0) {
		r = r ? r : AL_E_PROTO;
		log_error("sandbox: pid 1 did not report ready", "session_id", session_id, "error",
		          al_strerror(r));
		goto out;
	}
	if (cerr != 0) {
		r = cerr;
		log_error("sandbox setup failed in the child", "session_id", session_id, "step",
		          step, "error", al_strerror(cerr));
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
		if (sb->ctl >= 0)
			close(sb->ctl);
		sb->ctl = -1;
		reap_init(sb);
		if (sb->pidfd >= 0)
			close(sb->pidfd);
		if (sb->cg.n > 0)
			(void)sandbox_cg_remove(&sb->cg);
		sandbox_cg_free(&sb->cg);
		if (journaled)
			sandbox_journal_remove(p->state_dir, session_id);
		slot_put(sb->slot);
		free(sb->sid);
		free(sb->state_dir);
		free(sb);
	}
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (syncp[i] >= 0)
			close(syncp[i]);
	}
	sandbox_ops_free(&ops);
	sandbox_msg_reset(&m);
	buf_free(&m.b);
	return r;
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
	/* EOF makes pid 1 exit; SIGKILL makes sure. Either way the kernel kills the whole pid
	 * namespace before pid 1 can be reaped. */
	if (sb->ctl >= 0)
		close(sb->ctl);
	reap_init(sb);
	if (sb->pidfd >= 0)
		close(sb->pidfd);
	if (sandbox_cg_remove(&sb->cg) == 0)
		sandbox_journal_remove(sb->state_dir, sb->sid);
	sandbox_cg_free(&sb->cg);
	slot_put(sb->slot);
	free(sb->sid);
	free(sb->state_dir);
	free(sb);
}
