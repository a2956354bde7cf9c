/* The calls a sandbox must refuse, made in a child so that a kill or a fault ends only
 * the child. libc only: tests/sandbox/sbtry.c compiles this file too and makes the same
 * calls inside a sandbox (the driver compares both through hostprobe_judge_call). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostprobe.h"

#define NOBODY 65534

static const char *const call_names[HP_CALL_COUNT] = {
    [HP_CALL_I386] = "i386",
    [HP_CALL_X32] = "x32",
    [HP_CALL_IO_URING] = "io_uring_setup",
    [HP_CALL_UNSHARE_USER] = "unshare(CLONE_NEWUSER)",
    [HP_CALL_CLONE_USER] = "clone(CLONE_NEWUSER)",
};

const char *
hostprobe_call_name(enum hostprobe_call_id id)
{
	return (unsigned)id < HP_CALL_COUNT ? call_names[id] : "?";
}

/* The call itself, in the child; returns its result, or the errno through *err. */
static long
make_call(enum hostprobe_call_id id, int *err)
{
	long r = -1;
	errno = 0;
	switch (id) {
	case HP_CALL_I386:
#if defined(__x86_64__)
		/* getpid through the i386 entry: eax 20. No entry: the CPU raises a fault. */
		__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
		if (r < 0 && r > -4096) {
			errno = (int)-r;
			r = -1;
		}
#else
		errno = ENOSYS;
#endif
		break;
	case HP_CALL_X32:
#if defined(__x86_64__)
		r = syscall(0x40000000L | SYS_getpid); /* __X32_SYSCALL_BIT */
#else
		errno = ENOSYS;
#endif
		break;
	case HP_CALL_IO_URING:
		r = syscall(SYS_io_uring_setup, 1, NULL);
		break;
	case HP_CALL_UNSHARE_USER:
		r = unshare(CLONE_NEWUSER);
		break;
	case HP_CALL_CLONE_USER:
		r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
		if (r == 0)
			_exit(0); /* the new child: gone at once */
		if (r > 0)
			(void)waitpid((pid_t)r, NULL, 0);
		break;
	default:
		errno = EINVAL;
		break;
	}
	*err = r < 0 ? errno : 0;
	return r;
}

void
hostprobe_call_run(enum hostprobe_call_id id, struct hostprobe_call *out)
{
	struct hostprobe_call res = {0};
	int pfd[2], st;
	pid_t pid;
	ssize_t n;

	memset(out, 0, sizeof(*out));
	if ((unsigned)id >= HP_CALL_COUNT || pipe2(pfd, O_CLOEXEC) != 0)
		return;
	fflush(NULL);
	if ((pid = fork()) < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return;
	}
	if (pid == 0) {
		int err = 0;
		close(pfd[0]);
		/* A sandbox has no privilege: neither has the host's probe (root may create a
		 * user namespace where nobody may not). */
		if (geteuid() == 0 &&
		    (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
		     setresuid(NOBODY, NOBODY, NOBODY) != 0))
			_exit(99);
		res.ret = make_call(id, &err);
		res.err = res.ret < 0 ? err : 0;
		res.end = HP_END_RETURNED;
		_exit(write(pfd[1], &res, sizeof(res)) == (ssize_t)sizeof(res) ? 0 : 98);
	}
	close(pfd[1]);
	while ((n = read(pfd[0], &res, sizeof(res))) < 0 && errno == EINTR)
		;
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return;
	if (WIFSIGNALED(st)) {
		out->end = HP_END_SIGNALED;
		out->sig = WTERMSIG(st);
	} else if (n == (ssize_t)sizeof(res) && res.end == HP_END_RETURNED) {
		*out = res;
	} else if (WIFEXITED(st)) {
		out->end = HP_END_EXITED;
		out->ret = WEXITSTATUS(st);
	}
}

void
hostprobe_call_fmt(const struct hostprobe_call *c, char *out, size_t cap)
{
	snprintf(out, cap, "end=%d ret=%ld err=%d sig=%d", (int)c->end, c->ret, c->err, c->sig);
}

void
hostprobe_call_str(const struct hostprobe_call *c, char *out, size_t cap)
{
	switch (c->end) {
	case HP_END_RETURNED:
		if (c->ret < 0)
			snprintf(out, cap, "failed: %s", strerror(c->err));
		else
			snprintf(out, cap, "returned %ld", c->ret);
		break;
	case HP_END_SIGNALED:
		snprintf(out, cap, "killed by SIG%s",
		         sigabbrev_np(c->sig) ? sigabbrev_np(c->sig) : "?");
		break;
	case HP_END_EXITED:
		snprintf(out, cap, "probe child exited %ld", c->ret);
		break;
	default:
		snprintf(out, cap, "not run");
		break;
	}
}
