/* Starting the toolset's processes: the default spawner (fork/exec into a new session so a
 * kill takes the whole process group) and the scrubbed environment they get. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "tools_int.h"
#include "util.h"
#include "xalloc.h"

extern char **environ;

#define SPAWN_MAX_FDS 8

struct plain_proc {
	pid_t pid;
	bool killed;
};

/* Runs in the forked child: only async-signal-safe calls until execve. */
static void __attribute__((noreturn)) child_exec(const struct tool_spawn_req *req, int errpipe)
{
	int tmp[SPAWN_MAX_FDS];
	int err;

	(void)setsid();
	/* Lift the error pipe out of the way of the fds being set up. */
	int hi = fcntl(errpipe, F_DUPFD_CLOEXEC, SPAWN_MAX_FDS + 3);
	if (hi >= 0)
		errpipe = hi;
	/* Move the sources above the target range first so dup2 cannot clobber one. */
	for (int i = 0; i < req->nfds; i++) {
		int src = req->fds[i];
		if (src < 0)
			src = open("/dev/null", O_RDWR);
		tmp[i] = src < 0 ? -1 : fcntl(src, F_DUPFD, SPAWN_MAX_FDS + 3);
		if (tmp[i] < 0)
			goto fail;
	}
	for (int i = 0; i < req->nfds; i++)
		if (dup2(tmp[i], i) < 0)
			goto fail;
	if (errpipe > req->nfds)
		(void)close_range((unsigned)req->nfds, (unsigned)errpipe - 1, 0);
	(void)close_range((unsigned)errpipe + 1, ~0U, 0);
	if (req->cwd != NULL && chdir(req->cwd) != 0)
		goto fail;
	sigset_t none;
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	(void)signal(SIGPIPE, SIG_DFL);
	execve(req->path, (char *const *)req->argv, (char *const *)req->envp);
fail:
	err = errno;
	(void)!write(errpipe, &err, sizeof(err));
	_exit(127);
}

static int
plain_spawn(void *arg, const struct tool_spawn_req *req, void **proc)
{
	int ep[2], err = 0;
	(void)arg;
	if (req->nfds > SPAWN_MAX_FDS)
		return AL_E_INVAL;
	if (pipe2(ep, O_CLOEXEC) != 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		err = -errno;
		close(ep[0]);
		close(ep[1]);
		return err;
	}
	if (pid == 0)
		child_exec(req, ep[1]);
	close(ep[1]);
	/* The pipe closes on exec: a read of 0 bytes means the program is running. */
	ssize_t n;
	do
		n = read(ep[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n == (ssize_t)sizeof(err)) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return -err;
	}
	struct plain_proc *p = xcalloc(1, sizeof(*p));
	p->pid = pid;
	*proc = p;
	return 0;
}

static void
plain_kill(void *arg, void *proc)
{
	struct plain_proc *p = proc;
	(void)arg;
	if (p == NULL)
		return;
	/* The child leads its own process group (setsid), so this takes its jobs too. */
	if (kill(-p->pid, SIGKILL) != 0)
		(void)kill(p->pid, SIGKILL);
	p->killed = true;
}

static int
plain_reap(void *arg, void *proc, int *wstatus)
{
	struct plain_proc *p = proc;
	int st = 0, r = 0;
	(void)arg;
	if (p == NULL)
		return AL_E_INVAL;
	while (waitpid(p->pid, &st, 0) < 0) {
		if (errno != EINTR) {
			r = -errno;
			break;
		}
	}
	if (wstatus != NULL)
		*wstatus = st;
	free(p);
	return r;
}

const struct tool_spawner tool_default_spawner = {
    .spawn = plain_spawn,
    .kill = plain_kill,
    .reap = plain_reap,
    .arg = NULL,
};

static bool
same_key(const char *a, const char *b)
{
	const char *ea = strchr(a, '='), *eb = strchr(b, '=');
	size_t na = ea != NULL ? (size_t)(ea - a) : strlen(a);
	size_t nb = eb != NULL ? (size_t)(eb - b) : strlen(b);
	return na == nb && memcmp(a, b, na) == 0;
}

char **
tool_env_build(const char *const *extra)
{
	size_t n = 0, ne = 0, o = 0;
	while (environ != NULL && environ[n] != NULL)
		n++;
	while (extra != NULL && extra[ne] != NULL)
		ne++;
	char **env = xcalloc(n + ne + 1, sizeof(*env));
	for (size_t i = 0; i < n; i++) {
		/* The worker's credentials (API key, session token) must not reach tools. */
		if (strncasecmp(environ[i], "ANTHROPIC_", 10) == 0)
			continue;
		bool replaced = false;
		for (size_t j = 0; j < ne && !replaced; j++)
			replaced = same_key(environ[i], extra[j]);
		if (!replaced)
			env[o++] = xstrdup(environ[i]);
	}
	for (size_t j = 0; j < ne; j++)
		env[o++] = xstrdup(extra[j]);
	env[o] = NULL;
	return env;
}

void
tool_env_free(char **env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

int
tool_ms_left(uint64_t deadline_ms)
{
	uint64_t now = now_mono_ms();
	if (now >= deadline_ms)
		return 0;
	uint64_t left = deadline_ms - now;
	return left > 60000 ? 60000 : (int)left;
}
