/* Pid 1 of a sandbox: already unprivileged and filtered (it runs after seccomp), it forks
 * and execs commands on request from its parent, reports each exit status through a pipe
 * per process, reaps orphans, and exits on EOF or at the wall-clock deadline, which makes
 * the kernel kill every process in the pid namespace. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "sandbox_int.h"
#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define MAX_KIDS 4096

#if defined(__SANITIZE_ADDRESS__)
#define SB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SB_ASAN 1
#endif
#endif
#ifdef SB_ASAN
#include <sanitizer/asan_interface.h>
#endif

struct kid {
	pid_t pid;
	int status_fd; /* write end; the parent holds the read end */
};

static struct kid kids[MAX_KIDS];
static size_t nkids;

static void
reap(void)
{
	int st;
	pid_t pid;
	size_t i;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (i = 0; i < nkids; i++)
			if (kids[i].pid == pid)
				break;
		if (i == nkids)
			continue; /* an orphan reparented to us */
		(void)!write(kids[i].status_fd, &st, sizeof(st));
		close(kids[i].status_fd);
		kids[i] = kids[--nkids];
	}
}

static const char *
env_path(char *const *envp)
{
	size_t i;
	for (i = 0; envp[i] != NULL; i++)
		if (strncmp(envp[i], "PATH=", 5) == 0)
			return envp[i] + 5;
	return "/usr/bin:/bin";
}

/* execvpe() against the env we pass, not ours. Returns the most telling errno. */
static int
exec_search(const char *file, char *const *argv, char *const *envp)
{
	char path[PATH_MAX];
	const char *p, *e;
	int err = ENOENT;
	if (strchr(file, '/') != NULL) {
		execve(file, argv, envp);
		return errno;
	}
	for (p = env_path(envp);; p = e + 1) {
		size_t dl;
		e = strchr(p, ':');
		dl = e ? (size_t)(e - p) : strlen(p);
		if (dl == 0)
			dl = 1, p = ".";
		if (dl + 1 + strlen(file) < sizeof(path)) {
			memcpy(path, p, dl);
			path[dl] = '/';
			memcpy(path + dl + 1, file, strlen(file) + 1);
			execve(path, argv, envp);
			if (errno == EACCES)
				err = EACCES;
			else if (errno != ENOENT && errno != ENOTDIR && err != EACCES)
				err = errno;
		}
		if (e == NULL)
			break;
	}
	return err;
}

#define NFD SANDBOX_MAX_CHILD_FDS

/* What the spawned child needs; err is how it reports a failed exec (it shares our
 * memory until the exec). */
struct spawn {
	const char *path, *cwd;
	const char **argv, **envp;
	const int *fds;
	int err;
};

/* The child runs on its own stack, sharing pid 1's memory (CLONE_VM | CLONE_VFORK, like
 * posix_spawn): no page-table copy of pid 1, which is a clone of the whole worker. Pid 1
 * is suspended until the exec, so the stack is reused for the next spawn. */
static char child_stack[64 * 1024] __attribute__((aligned(16)));

static int
child(void *arg)
{
	struct spawn *sp = arg;
	const char *path = sp->path, **argv = sp->argv, **envp = sp->envp;
	const int *fds = sp->fds;
	sigset_t all;
	int i, e, tmp[NFD];
	/* Our own copy of the dispositions (no CLONE_SIGHAND): resetting them is ours only. */
	signal(SIGPIPE, SIG_DFL); /* ignored dispositions would survive exec */
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	(void)setsid(); /* own session and process group: killable as a tree */
	/* Lift every source above the target range first, so no dup2 clobbers a source
	 * that is still needed. */
	for (i = 0; i < NFD; i++)
		if ((tmp[i] = fds[i] >= 0 ? fcntl(fds[i], F_DUPFD_CLOEXEC, 2 * NFD) : -1) < 0 &&
		    fds[i] >= 0)
			goto fail;
	for (i = 0; i < NFD; i++) {
		if (tmp[i] >= 0) {
			if (dup2(tmp[i], i) < 0)
				goto fail;
		} else if (i > 2) {
			close(i); /* ctl, signalfd...: nothing of pid 1's may leak */
		}
	}
	if (chdir(sp->cwd) != 0)
		goto fail;
	syscall(SYS_close_range, NFD, ~0U, CLOSE_RANGE_CLOEXEC);
	if (path[0] != '\0') {
		execve(path, (char *const *)argv, (char *const *)envp);
		e = errno;
	} else {
		e = exec_search(argv[0], (char *const *)argv, (char *const *)envp);
	}
	errno = e;
fail:
	sp->err = errno ? errno : ENOEXEC;
	_exit(127);
}

static int
reply(int ctl, uint32_t type, int32_t err, int32_t pid, int fd)
{
	struct sandbox_msg m;
	int r;
	sandbox_msg_init(&m);
	(void)sandbox_msg_put_u32(&m, type);
	(void)sandbox_msg_put_u32(&m, (uint32_t)err);
	if (type == SB_INIT_SPAWNED)
		(void)sandbox_msg_put_u32(&m, (uint32_t)pid);
	r = sandbox_msg_send(ctl, &m, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
	buf_free(&m.b);
	return r;
}

static const char *argv_v[SANDBOX_MSG_MAX_STRV];
static const char *env_v[SANDBOX_MSG_MAX_STRV];

/* Returns AL_E_PROTO on a message that cannot come from a correct parent. */
static int
do_spawn(int ctl, struct sandbox_msg *m)
{
	uint32_t mask;
	const char *cwd, *path;
	int fds[NFD], st[2] = {-1, -1};
	size_t i, k = 0;
	int err = 0, r;
	pid_t pid;
	sigset_t all, old;
	struct spawn sp;

	for (i = 0; i < NFD; i++)
		fds[i] = -1;
	if (sandbox_msg_get_u32(m, &mask) != 0 || mask >= (1u << NFD) ||
	    sandbox_msg_get_str(m, &path) != 0 || (path[0] != '\0' && !sandbox_path_valid(path)) ||
	    sandbox_msg_get_strv(m, argv_v, SANDBOX_MSG_MAX_STRV) != 0 || argv_v[0] == NULL ||
	    sandbox_msg_get_strv(m, env_v, SANDBOX_MSG_MAX_STRV) != 0 ||
	    sandbox_msg_get_str(m, &cwd) != 0 || !sandbox_msg_done(m))
		return AL_E_PROTO;
	for (i = 0; i < NFD; i++)
		if (mask & (1u << i)) {
			if ((fds[i] = sandbox_msg_take_fd(m, k++)) < 0)
				return AL_E_PROTO;
		}
	if (k != m->nfds)
		return AL_E_PROTO;
	if (nkids == MAX_KIDS) {
		err = -EAGAIN;
		goto out;
	}
	if (pipe2(st, O_CLOEXEC) != 0) {
		err = -errno;
		goto out;
	}
	sp = (struct spawn){path, cwd, argv_v, env_v, fds, 0};
	/* Blocked across the clone: the child must not run a handler of ours on shared
	 * memory before it has reset them (it unblocks everything itself). */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
#ifdef SB_ASAN
	/* A child that exec'd never returned through its frames: their redzones would
	 * still be poisoned under the next child's. */
	ASAN_UNPOISON_MEMORY_REGION(child_stack, sizeof(child_stack));
#endif
	pid =
	    clone(child, child_stack + sizeof(child_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &sp);
	if (pid < 0)
		err = -errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0)
		goto out;
	/* We run again once the child exec'd (or failed and exited). */
	if (sp.err != 0) {
		waitpid(pid, NULL, 0);
		err = -sp.err;
		goto out;
	}
	kids[nkids].pid = pid;
	kids[nkids].status_fd = st[1];
	nkids++;
	st[1] = -1;
	r = reply(ctl, SB_INIT_SPAWNED, 0, pid, st[0]);
	close(st[0]);
	st[0] = -1;
	for (i = 0; i < NFD; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r == 0 ? 0 : AL_E_CLOSED;
out:
	for (i = 0; i < 2; i++)
		if (st[i] >= 0)
			close(st[i]);
	for (i = 0; i < NFD; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return reply(ctl, SB_INIT_SPAWNED, err, 0, -1) == 0 ? 0 : AL_E_CLOSED;
}

static int
do_kill(int ctl, struct sandbox_msg *m)
{
	int32_t pid, sig;
	size_t i;
	int err = -ESRCH;
	if (sandbox_msg_get_i32(m, &pid) != 0 || sandbox_msg_get_i32(m, &sig) != 0 ||
	    !sandbox_msg_done(m) || m->nfds != 0 || sig < 0 || sig >= NSIG)
		return AL_E_PROTO;
	/* Every process of the sandbox but us: the tree kill of a session (kill(-1) from a
	 * pid-namespace init reaches exactly its namespace, never the init itself). */
	if (pid == -1) {
		err = kill(-1, sig) == 0 || errno == ESRCH ? 0 : -errno;
		return reply(ctl, SB_INIT_KILLED, err, 0, -1) == 0 ? 0 : AL_E_CLOSED;
	}
	/* Only our own live children: never a recycled pid, never pid 1. */
	for (i = 0; i < nkids; i++)
		if (kids[i].pid == pid && pid > 1) {
			err = 0;
			if (kill(-pid, sig) != 0 && kill(pid, sig) != 0)
				err = -errno;
			break;
		}
	return reply(ctl, SB_INIT_KILLED, err, 0, -1) == 0 ? 0 : AL_E_CLOSED;
}

void
sandbox_init_loop(int ctl, uint64_t deadline)
{
	sigset_t s;
	int sfd, r;
	struct sandbox_msg m;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&s);
	sigaddset(&s, SIGCHLD);
	sigprocmask(SIG_BLOCK, &s, NULL);
	if ((sfd = signalfd(-1, &s, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		_exit(3);
	sandbox_msg_init(&m);
	for (;;) {
		struct pollfd p[2] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}};
		int timeout = -1;
		uint32_t type;
		if (deadline) {
			uint64_t now = now_mono_ms();
			if (now >= deadline)
				_exit(124); /* wall clock: the kernel kills the rest of the ns */
			timeout = deadline - now > INT32_MAX ? INT32_MAX : (int)(deadline - now);
		}
		if (poll(p, 2, timeout) < 0 && errno != EINTR)
			_exit(3);
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			reap();
		}
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = sandbox_msg_recv(ctl, &m);
		if (r == AL_E_CLOSED)
			_exit(0); /* the sandbox's owner is gone: end everything */
		if (r != 0 || sandbox_msg_get_u32(&m, &type) != 0)
			_exit(2);
		if (type == SB_INIT_SPAWN)
			r = do_spawn(ctl, &m);
		else if (type == SB_INIT_KILL)
			r = do_kill(ctl, &m);
		else
			r = AL_E_PROTO;
		if (r != 0)
			_exit(2); /* an impossible message: the child dies, never the parent */
		sandbox_msg_reset(&m);
	}
}
