/* Sandbox speed (bench/sandbox_bench.sh runs it): a new sandbox + /bin/true, cold and
 * from a warm spare, against `bwrap --unshare-all` + /bin/true and plain fork+exec, and
 * `echo` in a live sandbox. Each iteration runs every variant once, so noise hits all
 * alike. Numbers and ratios against baselines measured in the same run; no pass/fail. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "monitor.h"
#include "sandbox.h"
#include "tools.h"

static double
now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
pct(double *v, int n, double q)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[(int)(q * (n - 1))];
}

static double
host_run(char *const *argv)
{
	double t0 = now_us();
	int st;
	pid_t p = fork();
	if (p == 0) {
		int nul = open("/dev/null", O_WRONLY);
		dup2(nul, 1);
		dup2(nul, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	waitpid(p, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -1;
	return now_us() - t0;
}

static int
sb_run(struct sandbox *sb, const char *const *argv, int out)
{
	struct sandbox_proc *p;
	int st, r = sandbox_spawn(sb, argv, NULL, NULL, -1, out, out, &p);
	if (r != 0)
		return r;
	r = sandbox_proc_wait(p, &st);
	sandbox_proc_free(p);
	return r ? r : st;
}

/* The toolset's process hooks on a sandbox, as the worker's executor uses them (there the
 * spawn goes through the monitor; the per-call path after that is the same pipes). */
static int
tool_sb_spawn(void *arg, const struct tool_spawn_req *req, void **proc)
{
	return sandbox_spawn_fds(arg, req->path, req->argv, req->envp, req->cwd, req->fds,
	                         (size_t)req->nfds, (struct sandbox_proc **)proc);
}

static void
tool_sb_kill(void *arg, void *proc)
{
	(void)arg;
	(void)sandbox_proc_kill(proc, SIGKILL);
}

static int
tool_sb_reap(void *arg, void *proc, int *wstatus)
{
	int st = 0, r = sandbox_proc_wait(proc, &st);
	(void)arg;
	sandbox_proc_free(proc);
	if (wstatus != NULL)
		*wstatus = st;
	return r == AL_E_CLOSED ? 0 : r;
}

/* The bash tool's `echo hi` in a live session sandbox: the persistent shell was started
 * by the first call (not timed); each timed call is tool_run() end to end (framing,
 * pipes into the sandbox, status line, result). p50/p99 into *p50 / *p99; 0 or -1. */
static int
bash_tool_echo(struct sandbox *sb, const char *ws, int n, double *p50, double *p99)
{
	struct tool_spawner sp = {
	    .spawn = tool_sb_spawn, .kill = tool_sb_kill, .reap = tool_sb_reap, .arg = sb};
	struct tool_ctx *ctx = NULL;
	json_t *in = json_pack("{s:s}", "command", "echo hi"), *content = NULL;
	double *v = calloc((size_t)n, sizeof(double));
	int r = -1, i;
	bool is_error = false;

	if (in == NULL || v == NULL || tool_ctx_new(ws, &sp, &ctx) != 0)
		goto out;
	for (i = -1; i < n; i++) {
		double t0 = now_us();
		if (tool_run(ctx, "bash", in, &content, &is_error) != 0 || is_error)
			goto out;
		if (i >= 0)
			v[i] = now_us() - t0;
		json_decref(content);
		content = NULL;
	}
	*p99 = pct(v, n, .99);
	*p50 = pct(v, n, .5);
	r = 0;
out:
	json_decref(content);
	json_decref(in);
	tool_ctx_free(ctx);
	free(v);
	return r;
}

/* Through the monitor, as the worker does it: create, spawn /bin/true, wait = "create to
 * first exec done"; then destroy. Sessions 100 ms apart, so the monitor refills its spare
 * in between (spares < 0: none, every create cold). p50 in us, or -1. */
static double
via_monitor(const struct sandbox_profile *p, const char *root, const char *ws, int spares, int n)
{
	int pfd[2], st;
	double r = -1;
	pid_t h;
	if (pipe(pfd) != 0)
		return -1;
	fflush(stdout);
	if ((h = fork()) == 0) {
		struct monitor_config cfg = {
		    .profile = p, .workspace_root = root, .keep_root = true, .spares = spares};
		struct monitor *m;
		double *v = calloc((size_t)n, sizeof(double)), res = -1;
		int i, nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
		close(pfd[0]);
		if (monitor_start(&cfg, &m) != 0) /* from here: the worker side */
			_exit(1);
		usleep(100000);
		for (i = 0; i < n; i++) {
			struct sandbox_proc *pr;
			uint32_t id;
			double t0 = now_us();
			if (monitor_client_create(m, "benchm", ws, &id) != 0 ||
			    monitor_client_spawn(m, id, (const char *[]){"/bin/true", NULL}, NULL,
			                         NULL, -1, nul, nul, &pr) != 0 ||
			    sandbox_proc_wait(pr, &st) != 0)
				break;
			v[i] = now_us() - t0;
			sandbox_proc_free(pr);
			monitor_client_destroy(m, id);
			usleep(100000);
		}
		if (i == n)
			res = pct(v, n, .5);
		(void)!write(pfd[1], &res, sizeof(res));
		monitor_free(m);
		_exit(0);
	}
	close(pfd[1]);
	if (h > 0 && read(pfd[0], &r, sizeof(r)) != sizeof(r))
		r = -1;
	close(pfd[0]);
	if (h > 0)
		waitpid(h, &st, 0);
	return r;
}

int
main(int argc, char **argv)
{
	int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 100, i, nul;
	double *plain = calloc((size_t)n, sizeof(double)), *bw = calloc((size_t)n, sizeof(double));
	double *cyc = calloc((size_t)n, sizeof(double)), *echo = calloc((size_t)n, sizeof(double));
	double *create = calloc((size_t)n, sizeof(double));
	double *wfirst = calloc((size_t)n, sizeof(double)),
	       *wcyc = calloc((size_t)n, sizeof(double));
	double *destroy = calloc((size_t)n, sizeof(double)),
	       *gc = calloc((size_t)n, sizeof(double));
	double *claim = calloc((size_t)n, sizeof(double));
	char state[] = "/tmp/airlock-bench-XXXXXX", ws[64];
	char *const truev[] = {"/bin/true", NULL};
	char *const bwrapv[] = {"/usr/bin/bwrap", "--unshare-all", "--ro-bind", "/usr",
	                        "/usr",           "--symlink",     "usr/bin",   "/bin",
	                        "--symlink",      "usr/lib",       "/lib",      "--symlink",
	                        "usr/lib64",      "/lib64",        "--proc",    "/proc",
	                        "--dev",          "/dev",          "/bin/true", NULL};
	struct sandbox_profile p;
	struct sandbox *sb;
	struct sandbox_spare *sp;
	double mw, mc, tool_e = -1, tool_e99 = -1;
	int mn = n < 30 ? n : 30;
	int have_bwrap = access(bwrapv[0], X_OK) == 0;

	log_setup(LOG_FMT_TEXT, LOG_LVL_WARN, "bench");
	if (mkdtemp(state) == NULL)
		return 1;
	snprintf(ws, sizeof(ws), "%s/ws", state);
	mkdir(ws, 0755);
	sandbox_profile_defaults(&p);
	p.state_dir = state;
	if (sandbox_sweep(state) != 0)
		return 1;
	nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
	for (i = 0; i < n; i++) {
		double t0;
		plain[i] = host_run(truev);
		bw[i] = have_bwrap ? host_run(bwrapv) : -1;
		t0 = now_us();
		if (sandbox_create(&p, "bench", ws, &sb) != 0) {
			fprintf(stderr, "sandbox_create failed\n");
			return 1;
		}
		create[i] = now_us() - t0;
		if (sb_run(sb, (const char *[]){"/bin/true", NULL}, nul) != 0)
			return 1;
		sandbox_destroy(sb);
		cyc[i] = now_us() - t0;
		t0 = now_us();
		(void)sandbox_gc(true); /* the monitor does this when idle, off every path */
		gc[i] = now_us() - t0;

		/* Warm: the spare was set up ahead of demand (as the monitor keeps one). */
		if (sandbox_spare_new(&p, &sp) != 0 || sandbox_spare_wait(sp, 20000) != 0) {
			fprintf(stderr, "spare failed\n");
			return 1;
		}
		t0 = now_us();
		if (sandbox_spare_claim(sp, "bench", ws, &sb) != 0) {
			fprintf(stderr, "claim failed\n");
			return 1;
		}
		claim[i] = now_us() - t0;
		if (sb_run(sb, (const char *[]){"/bin/true", NULL}, nul) != 0)
			return 1;
		wfirst[i] = now_us() - t0;
		sandbox_destroy(sb);
		wcyc[i] = now_us() - t0;
		destroy[i] = wcyc[i] - wfirst[i];
		(void)sandbox_gc(true);
	}
	if (sandbox_create(&p, "bench", ws, &sb) != 0)
		return 1;
	for (i = 0; i < n; i++) {
		double t0 = now_us();
		if (sb_run(sb, (const char *[]){"echo", "hi", NULL}, nul) != 0)
			return 1;
		echo[i] = now_us() - t0;
	}
	if (bash_tool_echo(sb, ws, n, &tool_e, &tool_e99) != 0) {
		fprintf(stderr, "bash tool call failed\n");
		return 1;
	}
	sandbox_destroy(sb);
	(void)sandbox_gc(true);
	{
		char mstate[80], mroot[80], mws[96];
		struct sandbox_profile mp = p;
		snprintf(mstate, sizeof(mstate), "%s/mstate", state);
		snprintf(mroot, sizeof(mroot), "%s/mroot", state);
		snprintf(mws, sizeof(mws), "%s/ws", mroot);
		mkdir(mroot, 0755);
		mkdir(mws, 0755);
		mp.state_dir = mstate;
		mw = via_monitor(&mp, mroot, mws, 0, mn);
		mc = via_monitor(&mp, mroot, mws, -1, mn);
	}
	{
		double pl = pct(plain, n, .5), b = have_bwrap ? pct(bw, n, .5) : 0,
		       c = pct(cyc, n, .5), c99 = pct(cyc, n, .99), cr = pct(create, n, .5),
		       e = pct(echo, n, .5), e99 = pct(echo, n, .99), wf = pct(wfirst, n, .5),
		       wf99 = pct(wfirst, n, .99), wc = pct(wcyc, n, .5), wc99 = pct(wcyc, n, .99),
		       cl = pct(claim, n, .5), de = pct(destroy, n, .5), g = pct(gc, n, .5);
		printf("runs: %d\n", n);
		printf("plain fork+exec /bin/true              p50 %8.0f us\n", pl);
		if (have_bwrap)
			printf(
			    "bwrap --unshare-all true               p50 %8.0f us  (+%.0f us over "
			    "plain)\n",
			    b, b - pl);
		printf("cold: create (to ready)                p50 %8.0f us\n", cr);
		printf("cold: create+true+destroy              p50 %8.0f us  p99 %8.0f us\n", c,
		       c99);
		printf("warm: claim a spare (to ready)         p50 %8.0f us\n", cl);
		printf("warm: create to first exec done        p50 %8.0f us  p99 %8.0f us\n", wf,
		       wf99);
		printf("warm: create+true+destroy              p50 %8.0f us  p99 %8.0f us\n", wc,
		       wc99);
		printf("destroy (kill, reap pid 1)             p50 %8.0f us\n", de);
		printf("cgroup removal (async, sandbox_gc)     p50 %8.0f us  (off the session's "
		       "path)\n",
		       g);
		printf("bash tool `echo hi`, live sandbox       p50 %8.0f us  p99 %8.0f us  "
		       "(target p50 <= 1000 us: ratio %.2f)\n",
		       tool_e, tool_e99, tool_e / 1000);
		printf("/bin/echo spawned in a live sandbox    p50 %8.0f us  p99 %8.0f us\n", e,
		       e99);
		printf("monitor: create to first exec, spare   p50 %8.0f us  (%d sessions 100 ms "
		       "apart)\n",
		       mw, mn);
		printf("monitor: create to first exec, cold    p50 %8.0f us  (same, spares: -1)\n",
		       mc);
		if (have_bwrap) {
			printf("ratio cold create+true+destroy / bwrap: %.2f\n", c / b);
			printf("ratio warm create+true+destroy / bwrap: %.2f\n", wc / b);
			printf("ratio warm create to first exec / bwrap: %.2f\n", wf / b);
			printf("ratio monitor create to first exec (spare) / bwrap: %.2f\n",
			       mw / b);
		}
		printf("ratio echo-in-sandbox / plain fork+exec: %.2f\n", e / pl);
	}
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", state);
		(void)!system(cmd);
	}
	return 0;
}
