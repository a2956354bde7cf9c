/* Adversarial sandbox tests: creates real sandboxes (as root: cgroups, uid per sandbox)
 * and runs sbtry inside them; every escape attempt must fail, every limit must hold, and
 * nothing may outlive a session. Modes: escapes, limits, lifecycle, monitor, unpriv.
 * Usage: sandbox_test <mode> <path to sbtry>. Prints TAP-like lines; a check that does not
 * apply on this host (lib/sandbox/hostprobe.h, probed here, outside any sandbox, first)
 * prints "skip: <check>: <reason>" instead, which tests/run.sh collects. Ends with
 * "# N passed, N failed, N skipped"; exit 0 = no check failed and some passed, 1 = a check
 * failed, 77 = nothing applied here (not root, no namespaces, no cgroups, ...).
 * AIRLOCK_TEST_FAKE_NO_I386=1 (this driver only; tests/README.md): act as on a host
 * whose int 0x80 faults, outside the sandbox and in it, to exercise the skip path. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include "err.h"
#include "hostprobe.h"
#include "log.h"
#include "monitor.h"
#include "sandbox.h"
#include "sandbox_int.h"
#include "util.h"

static int failures, checks, skips;
static struct hostprobe host; /* probed before any sandbox exists */
static bool fake_no_i386;
static int i386_skips; /* what the fake no-i386 host must come to */
static const char *sbtry;
static bool warm; /* create_or_die claims a spare that was set up first */
static char tmpdir[PATH_MAX];

static void
check(int ok, const char *name, const char *detail)
{
	checks++;
	printf("%s %d - %s%s%s\n", ok ? "ok" : "not ok", checks, name, detail ? ": " : "",
	       detail ? detail : "");
	fflush(stdout);
	if (!ok)
		failures++;
}

/* Not applicable on this host: never counted as a pass. */
static void
skip(const char *name, const char *reason)
{
	skips++;
	printf("skip: %s: %s\n", name, reason);
	fflush(stdout);
}

static void
verdict(enum hostprobe_verdict v, const char *name, const char *detail)
{
	if (v == HP_SKIP)
		skip(name, detail);
	else
		check(v == HP_PASS, name, detail);
}

/* A check that only means something where the host offers n. */
static void
check_need(enum hostprobe_need n, int ok, const char *name, const char *detail)
{
	char why[256];
	if (hostprobe_judge_need(n, &host, ok, why, sizeof(why)) == HP_SKIP)
		skip(name, why);
	else
		check(ok, name, detail);
}

/* sbtry's "CALL <id> <result>" line: the same call made inside, judged against the host. */
static void
judge_call_line(const char *name, const char *l)
{
	struct hostprobe_call in;
	enum hostprobe_verdict v;
	char *end, why[256], what[128];
	long id = strtol(l + 5, &end, 10);
	if (end == l + 5 || *end != ' ' || id < 0 || id >= HP_CALL_COUNT ||
	    hostprobe_call_parse(end + 1, &in) != 0) {
		check(0, name, l);
		return;
	}
	if (fake_no_i386 && id == HP_CALL_I386)
		in = (struct hostprobe_call){.end = HP_END_SIGNALED, .sig = SIGSEGV};
	snprintf(what, sizeof(what), "%s %s", name,
	         hostprobe_call_name((enum hostprobe_call_id)id));
	v = hostprobe_judge_call((enum hostprobe_call_id)id, &host, &in, why, sizeof(why));
	i386_skips += id == HP_CALL_I386 && v == HP_SKIP;
	verdict(v, what, why);
}

static void __attribute__((format(printf, 1, 2))) xsystem(const char *fmt, ...)
{
	char cmd[PATH_MAX * 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0) {
		fprintf(stderr, "setup failed: %s\n", cmd);
		exit(99);
	}
}

static void
copy_file(const char *from, const char *to)
{
	char cmd[PATH_MAX * 2 + 32];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0755 '%s'", from, to, to);
	if (system(cmd) != 0)
		exit(99);
}

static char *
mkdir_in(const char *name)
{
	static char paths[16][PATH_MAX];
	static int n;
	char *p = paths[n++ % 16];
	snprintf(p, PATH_MAX, "%s/%s", tmpdir, name);
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		exit(99);
	return p;
}

static void
profile_for_tests(struct sandbox_profile *p, const char *state)
{
	sandbox_profile_defaults(p);
	p->state_dir = state;
	p->memory_mb = 64;
	p->pids_max = 64;
	p->tmp_size_mb = 8;
	p->fsize_mb = 32;
	p->uid_base = 200000 + (uint32_t)(getpid() % 500) * 100;
	p->uid_count = 100;
}

/* Runs argv in sb; collects stdout+stderr (up to 64 KiB) and the wait status. */
static int
run(struct sandbox *sb, const char *const *argv, const char *const *envp, char *out, size_t cap,
    int *wstatus)
{
	int pfd[2], r;
	struct sandbox_proc *p;
	size_t len = 0;
	ssize_t n;
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -errno;
	r = sandbox_spawn(sb, argv, envp, NULL, -1, pfd[1], pfd[1], &p);
	close(pfd[1]);
	if (r != 0) {
		close(pfd[0]);
		return r;
	}
	while ((n = read(pfd[0], out + len, cap - 1 - len)) > 0 && len + (size_t)n < cap - 1)
		len += (size_t)n;
	if (n > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(pfd[0]);
	r = sandbox_proc_wait(p, wstatus);
	sandbox_proc_free(p);
	return r;
}

/* Runs sbtry <args> and checks it reported no escape (one check per BLOCKED/ESCAPED line). */
static void
try_in(struct sandbox *sb, const char *name, const char *const *args)
{
	const char *argv[16] = {"/workspace/sbtry"};
	static char out[65536];
	int st = 0, r, i;
	char *l, *cur;
	for (i = 0; args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	r = run(sb, argv, NULL, out, sizeof(out), &st);
	if (r != 0) {
		check(0, name, al_strerror(r));
		return;
	}
	for (cur = out; (l = strsep(&cur, "\n")) != NULL;)
		if (strncmp(l, "BLOCKED ", 8) == 0 || strncmp(l, "ESCAPED ", 8) == 0)
			check(l[0] == 'B', name, l);
		else if (strncmp(l, "CALL ", 5) == 0)
			judge_call_line(name, l);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0, name, "sbtry exit status 0");
}

static int
host_pid_of(const struct sandbox *sb)
{
	char path[64], line[128];
	FILE *f;
	int pid = -1;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", sandbox_pidfd(sb));
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "Pid:", 4) == 0)
			pid = (int)strtol(line + 4, NULL, 10);
	fclose(f);
	return pid;
}

static unsigned long
pidns_of(int pid)
{
	char path[64], link[64];
	ssize_t n;
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	if ((n = readlink(path, link, sizeof(link) - 1)) < 0)
		return 0;
	link[n] = '\0';
	return strtoul(link + 5, NULL, 10); /* "pid:[123]" */
}

static int
count_in_pidns(unsigned long ns)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)) != NULL)
		if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
		    pidns_of((int)strtol(e->d_name, NULL, 10)) == ns)
			n++;
	if (d)
		closedir(d);
	return n;
}

static void
read_record(const char *state, const char *sid, char *out, size_t cap)
{
	char path[PATH_MAX];
	int fd;
	ssize_t n = 0;
	snprintf(path, sizeof(path), "%s/sandboxes/%s.rec", state, sid);
	out[0] = '\0';
	if ((fd = open(path, O_RDONLY)) >= 0) {
		n = read(fd, out, cap - 1);
		close(fd);
	}
	out[n > 0 ? n : 0] = '\0';
}

static int
record_cgroups_gone(const char *rec)
{
	char copy[8192], *l, *cur = copy;
	struct stat st;
	snprintf(copy, sizeof(copy), "%s", rec);
	while ((l = strsep(&cur, "\n")) != NULL)
		if (strncmp(l, "cg ", 3) == 0 && stat(l + 3, &st) == 0)
			return 0;
	return 1;
}

static struct sandbox *
create_or_die(const struct sandbox_profile *p, const char *sid, const char *ws)
{
	struct sandbox *sb;
	struct sandbox_spare *sp;
	int r;
	if (warm) {
		/* A spare fully set up before the session exists, as the monitor keeps one. */
		r = sandbox_spare_new(p, &sp);
		check(r == 0, "sandbox_spare_new", al_strerror(r));
		if (r == 0) {
			r = sandbox_spare_wait(sp, 20000);
			check(r == 0, "spare set up", al_strerror(r));
			r = sandbox_spare_claim(sp, sid, ws, &sb);
			check(r == 0, "sandbox_spare_claim", al_strerror(r));
		}
	} else {
		r = sandbox_create(p, sid, ws, &sb);
		check(r == 0, "sandbox_create", al_strerror(r));
	}
	if (r != 0)
		exit(1);
	return sb;
}

/* ---------------------------------------------------------------- escapes */

static void
mode_escapes(void)
{
	struct sandbox_profile p;
	struct sandbox *a, *b;
	char *state = mkdir_in("state"), *wa = mkdir_in("wsA"), *wb = mkdir_in("wsB");
	char secret[PATH_MAX], bfile[PATH_MAX], out[8192], marker[64], abs_name[64], port_s[16];
	char owned[PATH_MAX];
	const char *envp[] = {"ANTHROPIC_API_KEY=sk-ant-marker-7f3a", "FOO=bar", NULL};
	struct sockaddr_in sa;
	struct sockaddr_un su;
	socklen_t sl = sizeof(sa);
	int lsock, usock, st, r, spare;
	struct stat sst;

	profile_for_tests(&p, state);
	check(sandbox_sweep(state) == 0, "sweep", NULL);
	snprintf(secret, sizeof(secret), "%s/host-secret", tmpdir);
	xsystem("echo hunter2 > '%s'", secret);
	snprintf(bfile, sizeof(bfile), "%s/b-private", wb);
	xsystem("echo private > '%s'", bfile);
	snprintf(owned, sizeof(owned), "%s/sbtry", wa);
	copy_file(sbtry, owned);
	snprintf(owned, sizeof(owned), "%s/sbtry", wb);
	copy_file(sbtry, owned);
	/* A host fd without O_CLOEXEC must not leak into the sandbox. */
	spare = open("/etc/hostname", O_RDONLY);

	a = create_or_die(&p, "escA", wa);
	b = create_or_die(&p, "escB", wb);
	check(sandbox_host_uid(a) != 0 && sandbox_host_uid(a) != sandbox_host_uid(b),
	      "distinct unprivileged host uids", NULL);

	try_in(a, "status", (const char *[]){"status", NULL});
	try_in(a, "syscalls", (const char *[]){"syscalls", NULL});
	try_in(a, "32-bit abi", (const char *[]){"abi", NULL});
	try_in(a, "read outside",
	       (const char *[]){"read", secret, "/etc/shadow", "/root/.bashrc", state, bfile,
	                        "/proc/1/root/etc/shadow", NULL});
	try_in(a, "write outside",
	       (const char *[]){"write", "/usr/pwned", "/etc/pwned", "/pwned", "/bin/pwned", bfile,
	                        "/proc/sys/kernel/core_pattern", "/dev/pwned", NULL});
	/* B runs a marked process; A must not see it, nor the host's test process. */
	snprintf(marker, sizeof(marker), "sbB%d", (int)getpid());
	{
		char cmd[128];
		struct sandbox_proc *bp;
		snprintf(cmd, sizeof(cmd), "exec -a %s sleep 1000", marker);
		r = sandbox_spawn(b, (const char *[]){"/bin/bash", "-c", cmd, NULL}, NULL, NULL, -1,
		                  -1, -1, &bp);
		check(r == 0, "spawn marked process in B", al_strerror(r));
		usleep(100000);
		try_in(a, "other session's processes", (const char *[]){"proc", marker, NULL});
		snprintf(marker, sizeof(marker), "sbhost%d", (int)getpid());
		prctl(PR_SET_NAME, marker);
		try_in(a, "host processes", (const char *[]){"proc", marker, NULL});
		if (r == 0) {
			sandbox_proc_kill(bp, SIGKILL);
			sandbox_proc_wait(bp, &st);
			sandbox_proc_free(bp);
		}
	}
	/* Network: a host listener on loopback and an abstract socket must be unreachable. */
	lsock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lsock, 4) != 0 ||
	    getsockname(lsock, (struct sockaddr *)&sa, &sl) != 0)
		exit(99);
	snprintf(port_s, sizeof(port_s), "%d", ntohs(sa.sin_port));
	snprintf(abs_name, sizeof(abs_name), "airlock-sbtest-%d", (int)getpid());
	usock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&su, 0, sizeof(su));
	su.sun_family = AF_UNIX;
	memcpy(su.sun_path + 1, abs_name, strlen(abs_name));
	if (bind(usock, (struct sockaddr *)&su,
	         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abs_name))) != 0 ||
	    listen(usock, 4) != 0)
		exit(99);
	try_in(a, "network", (const char *[]){"net", port_s, abs_name, NULL});
	close(lsock);
	close(usock);

	/* Environment: the worker's credentials never enter, even when passed. */
	setenv("ANTHROPIC_API_KEY", "sk-ant-marker-7f3a", 1);
	{
		const char *argv[] = {"/workspace/sbtry", "env", "sk-ant-marker-7f3a", NULL};
		r = run(a, argv, envp, out, sizeof(out), &st);
		check(r == 0 && strstr(out, "ESCAPED") == NULL && strstr(out, "BLOCKED worker env"),
		      "worker environment", out);
	}
	try_in(a, "inherited fds", (const char *[]){"fds", NULL});
	close(spare);

	/* Nested user namespaces through the real tool. */
	r = run(a, (const char *[]){"unshare", "-U", "true", NULL}, NULL, out, sizeof(out), &st);
	check_need(HP_NEED_UNPRIV_USERNS, r == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0),
	           "unshare -U fails", out);

	/* Signals to pid 1 are ignored; the sandbox keeps working. */
	try_in(a, "kill pid 1", (const char *[]){"killinit", NULL});
	r = run(a, (const char *[]){"true", NULL}, NULL, out, sizeof(out), &st);
	check(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "pid 1 survived", al_strerror(r));

	/* The workspace is writable, at /workspace and at its host path, owned by the
	 * sandbox's host uid. */
	{
		char cmd[PATH_MAX + 64];
		snprintf(cmd, sizeof(cmd), "echo x > /workspace/owned && echo y > %s/owned2", wa);
		r = run(a, (const char *[]){"/bin/sh", "-c", cmd, NULL}, NULL, out, sizeof(out),
		        &st);
		check(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "workspace writable", out);
		snprintf(owned, sizeof(owned), "%s/owned", wa);
		check(stat(owned, &sst) == 0 && sst.st_uid == sandbox_host_uid(a) &&
		          sst.st_uid != 0,
		      "files owned by the sandbox uid", NULL);
		snprintf(owned, sizeof(owned), "%s/owned2", wa);
		check(stat(owned, &sst) == 0, "workspace at its host path", NULL);
	}
	sandbox_destroy(a);
	sandbox_destroy(b);
	check(sandbox_gc(true) == 0, "cgroups removed", NULL);
	if (fake_no_i386)
		check(i386_skips == 1,
		      "no i386 entry: the i386 check is a skip, not a pass or a fail", NULL);
}

/* ---------------------------------------------------------------- limits */

/* The directory of the record line containing `marker` (v1: "/memory/", "/pids/"; v2:
 * "/sb-", the one group that holds every controller); "" when none. */
static void
record_dir(const char *rec, const char *marker, char *out, size_t cap)
{
	const char *l = strstr(rec, marker), *b, *e;
	out[0] = '\0';
	if (l == NULL)
		return;
	for (b = l; b > rec && b[-1] != '\n'; b--)
		;
	if (strncmp(b, "cg ", 3) != 0 || (e = strchr(l, '\n')) == NULL)
		return;
	snprintf(out, cap, "%.*s", (int)(e - b - 3), b + 3);
}

/* Reads dir/file into out without its trailing newline; "" when unreadable. */
static void
cg_read(const char *dir, const char *file, char *out, size_t cap)
{
	char path[PATH_MAX];
	ssize_t n = -1;
	int fd;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, out, cap - 1);
		close(fd);
	}
	out[n > 0 ? n : 0] = '\0';
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = '\0';
}

static int
cg_write(const char *dir, const char *file, const char *val)
{
	char path[PATH_MAX];
	int fd, r = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* v1 has no cgroup.kill: SIGKILL every pid the group lists (pid 1 takes its namespace). */
static int
xkill_listed(const char *dir)
{
	char procs[4096], *l, *cur = procs;
	int n = 0;
	cg_read(dir, "cgroup.procs", procs, sizeof(procs));
	while ((l = strsep(&cur, "\n")) != NULL)
		if (l[0] >= '1' && l[0] <= '9' && kill((pid_t)strtol(l, NULL, 10), SIGKILL) == 0)
			n++;
	return n > 0 ? 0 : -ESRCH;
}

/* Runs `sleep 30` in sw; kills the sandbox through cgdir's group when given (else the
 * wall clock does); the process and then the sandbox must report the SIGKILL. */
static void
sleep_until_killed(struct sandbox *sw, const char *cgdir, const char *what)
{
	struct sandbox_proc *pr;
	struct pollfd pf = {sandbox_pidfd(sw), POLLIN, 0};
	char name[128];
	int st = 0, r;
	r = sandbox_spawn(sw, (const char *[]){"sleep", "30", NULL}, NULL, NULL, -1, -1, -1, &pr);
	check(r == 0, "spawn sleep", al_strerror(r));
	if (r != 0)
		return;
	if (cgdir != NULL) {
		r = sandbox_cg_detect(NULL) == SB_CG_V2 ? cg_write(cgdir, "cgroup.kill", "1")
		                                        : xkill_listed(cgdir);
		check(r == 0, "kill the sandbox's cgroup", al_strerror(r));
	}
	r = sandbox_proc_wait(pr, &st);
	snprintf(name, sizeof(name), "%s killed the process", what);
	check(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, name, al_strerror(r));
	sandbox_proc_free(pr);
	snprintf(name, sizeof(name), "sandbox pidfd reports the %s", what);
	check(poll(&pf, 1, 10000) == 1, name, NULL);
}

/* The profile's limits as the kernel holds them: v1 per controller, v2 in one group. */
static void
check_cg_limits(const char *rec, const struct sandbox_profile *p)
{
	char dir[PATH_MAX], v[128], want[64], why[256];
	if (sandbox_cg_detect(NULL) == SB_CG_V1) {
		/* v1 has no memory.high, memory.events nor cpu.max to read back */
		(void)hostprobe_lacks(HP_NEED_CG_V2, &host, why, sizeof(why));
		skip("v2 memory.high, memory.swap.max, cpu.max, memory.events", why);
		record_dir(rec, "/memory/", dir, sizeof(dir));
		cg_read(dir, "memory.limit_in_bytes", v, sizeof(v));
		check(strtoull(v, NULL, 10) == p->memory_mb << 20, "v1 memory limit written", v);
		record_dir(rec, "/pids/", dir, sizeof(dir));
		cg_read(dir, "pids.max", v, sizeof(v));
		check(strtoull(v, NULL, 10) == p->pids_max, "v1 pids.max written", v);
		return;
	}
	record_dir(rec, "/sb-", dir, sizeof(dir));
	check(strstr(rec, "/memory/") == NULL && strstr(rec, "/pids/") == NULL,
	      "v2: one group for every controller", rec);
	cg_read(dir, "memory.max", v, sizeof(v));
	check(strtoull(v, NULL, 10) == p->memory_mb << 20, "v2 memory.max written", v);
	cg_read(dir, "memory.high", v, sizeof(v));
	check(strtoull(v, NULL, 10) > 0 && strtoull(v, NULL, 10) < p->memory_mb << 20,
	      "v2 memory.high below memory.max", v);
	cg_read(dir, "memory.swap.max", v, sizeof(v));
	if (v[0] == '\0')
		skip("v2 memory.swap.max 0", "no swap accounting here (the sandbox's group has no "
		                             "memory.swap.max)");
	else
		check(strcmp(v, "0") == 0, "v2 memory.swap.max 0", v);
	cg_read(dir, "pids.max", v, sizeof(v));
	check(strtoull(v, NULL, 10) == p->pids_max, "v2 pids.max written", v);
	snprintf(want, sizeof(want), "%u 100000", p->cpu_quota_percent * 1000);
	cg_read(dir, "cpu.max", v, sizeof(v));
	check_need(HP_NEED_CG_CPU, strcmp(v, want) == 0, "v2 cpu.max written", v);
}

static void
mode_limits(void)
{
	struct sandbox_profile p, pw;
	struct sandbox *sb, *sw;
	char *state = mkdir_in("state"), *ws = mkdir_in("ws"), *ws2 = mkdir_in("ws2");
	char out[8192], rec[8192], rec2[8192], path[PATH_MAX + 64];
	struct sandbox_proc *pr;
	int st = 0, r;
	pid_t hp;
	uint64_t t0;

	profile_for_tests(&p, state);
	check(sandbox_sweep(state) == 0, "sweep", NULL);
	snprintf(path, sizeof(path), "%s/sbtry", ws);
	copy_file(sbtry, path);
	sb = create_or_die(&p, "lim", ws);

	read_record(state, "lim", rec, sizeof(rec));
	check(strstr(rec, "cg /sys/fs/cgroup/") != NULL, "journal names the cgroups", rec);
	check_cg_limits(rec, &p);

	t0 = now_mono_ms();
	try_in(sb, "fork bomb", (const char *[]){"forkbomb", "200", NULL});
	printf("# fork bomb took %llu ms\n", (unsigned long long)(now_mono_ms() - t0));
	hp = fork();
	if (hp == 0)
		_exit(0);
	check(hp > 0 && waitpid(hp, &st, 0) == hp, "host can still fork", NULL);

	t0 = now_mono_ms();
	r = run(sb, (const char *[]){"/workspace/sbtry", "memhog", "512", NULL}, NULL, out,
	        sizeof(out), &st);
	/* not asserted (no timed assertions): how long the bomb ran before the kill */
	printf("# memory bomb took %llu ms\n", (unsigned long long)(now_mono_ms() - t0));
	check(r == 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "memory bomb OOM-killed", out);
	if (sandbox_cg_detect(NULL) == SB_CG_V2) {
		char dir[PATH_MAX], ev[512], *k;
		record_dir(rec, "/sb-", dir, sizeof(dir));
		cg_read(dir, "memory.events", ev, sizeof(ev));
		k = strstr(ev, "oom_kill ");
		check(k != NULL && strtoull(k + 9, NULL, 10) >= 1,
		      "v2 memory.events counts the OOM kill", ev);
	}

	try_in(sb, "disk fill (RLIMIT_FSIZE)",
	       (const char *[]){"diskfill", "/workspace/big", "128", NULL});
	try_in(sb, "disk fill (/tmp size)", (const char *[]){"diskfill", "/tmp/big", "128", NULL});

	r = run(sb, (const char *[]){"/bin/sh", "-c", "ulimit -c; ulimit -n; ulimit -f", NULL},
	        NULL, out, sizeof(out), &st);
	check(r == 0 && strcmp(out, "0\n4096\n65536\n") == 0, "rlimits core/nofile/fsize", out);

	r = run(sb, (const char *[]){"true", NULL}, NULL, out, sizeof(out), &st);
	check(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "sandbox usable after bombs",
	      al_strerror(r));
	sandbox_destroy(sb);

	/* Wall clock: the sandbox dies with everything in it. */
	pw = p;
	pw.wall_clock_s = 1;
	sw = create_or_die(&pw, "wall", ws2);
	sleep_until_killed(sw, NULL, "wall clock");
	r = sandbox_spawn(sw, (const char *[]){"true", NULL}, NULL, NULL, -1, -1, -1, &pr);
	check(r == AL_E_CLOSED, "spawn after wall clock fails", al_strerror(r));
	sandbox_destroy(sw);

	/* Killed from the host through its cgroup (v2 cgroup.kill; v1: every listed pid): the
	 * sandbox reports death like a wall-clock kill. */
	sw = create_or_die(&p, "cgkill", ws2);
	read_record(state, "cgkill", rec2, sizeof(rec2));
	record_dir(rec2, sandbox_cg_detect(NULL) == SB_CG_V2 ? "/sb-" : "/pids/", path,
	           sizeof(path));
	{
		char kill_file[PATH_MAX + 16];
		snprintf(kill_file, sizeof(kill_file), "%s/cgroup.kill", path);
		if (sandbox_cg_detect(NULL) == SB_CG_V2 && access(kill_file, F_OK) != 0)
			skip("cgroup kill", "kernel has no cgroup.kill (Linux 5.14)");
		else
			sleep_until_killed(sw, path, "cgroup kill");
	}
	sandbox_destroy(sw);
	check(sandbox_gc(true) == 0, "limits: cgroups removed", NULL);
	check(record_cgroups_gone(rec) && record_cgroups_gone(rec2), "limits: no cgroup left",
	      NULL);
}

/* ---------------------------------------------------------------- lifecycle */

static void
mode_lifecycle(void)
{
	struct sandbox_profile p, p2;
	struct sandbox *sb, *dup = NULL;
	char *state = mkdir_in("state"), *state2 = mkdir_in("state2"), *ws = mkdir_in("ws");
	char out[8192], rec[8192], path[PATH_MAX];
	struct sandbox_proc *pr;
	int st = 0, r, pipefd[2], hostpid, i;
	unsigned long ns;
	pid_t c;

	profile_for_tests(&p, state);
	snprintf(path, sizeof(path), "%s/sbtry", ws);
	copy_file(sbtry, path);

	/* A worker that dies (SIGKILL) takes its sandboxes with it; the next start's sweep
	 * removes the host leftovers. Runs in a child so the kill is real. */
	profile_for_tests(&p2, state2);
	if (pipe(pipefd) != 0)
		exit(99);
	if ((c = fork()) == 0) {
		struct sandbox *x;
		if (sandbox_sweep(state2) != 0 || sandbox_create(&p2, "crash", ws, &x) != 0)
			_exit(1);
		sandbox_spawn(x, (const char *[]){"sleep", "1000", NULL}, NULL, NULL, -1, -1, -1,
		              &pr);
		hostpid = host_pid_of(x);
		(void)!write(pipefd[1], &hostpid, sizeof(hostpid));
		pause();
		_exit(0);
	}
	close(pipefd[1]);
	hostpid = -1;
	(void)!read(pipefd[0], &hostpid, sizeof(hostpid));
	close(pipefd[0]);
	check(hostpid > 0, "crashing worker made a sandbox", NULL);
	ns = pidns_of(hostpid);
	read_record(state2, "crash", rec, sizeof(rec));
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	for (i = 0; i < 1000 && count_in_pidns(ns) > 0; i++)
		usleep(10000);
	check(ns != 0 && count_in_pidns(ns) == 0, "worker death killed the sandbox", NULL);
	check(rec[0] != '\0' && !record_cgroups_gone(rec), "leftover cgroup before sweep", rec);
	check(sandbox_sweep(state2) == 0, "sweep after crash", NULL);
	check(record_cgroups_gone(rec), "sweep removed leftover cgroups", NULL);
	read_record(state2, "crash", rec, sizeof(rec));
	check(rec[0] == '\0', "sweep removed the journal record", rec);

	check(sandbox_sweep(state) == 0, "sweep", NULL);
	sb = create_or_die(&p, "life", ws);
	r = sandbox_create(&p, "life", ws, &dup);
	check(r == AL_E_CONFLICT, "same session twice refused", al_strerror(r));

	r = run(sb, (const char *[]){"echo", "hello", NULL}, NULL, out, sizeof(out), &st);
	check(r == 0 && strcmp(out, "hello\n") == 0 && st == 0, "echo via PATH", out);
	r = run(sb, (const char *[]){"/bin/sh", "-c", "pwd; exit 7", NULL}, NULL, out, sizeof(out),
	        &st);
	check(r == 0 && strcmp(out, "/workspace\n") == 0 && WEXITSTATUS(st) == 7, "exit status",
	      out);
	r = sandbox_spawn(sb, (const char *[]){"no-such-binary", NULL}, NULL, NULL, -1, -1, -1,
	                  &pr);
	check(r == -ENOENT, "missing binary is ENOENT", al_strerror(r));
	r = sandbox_spawn(sb, (const char *[]){"true", NULL}, NULL, "/nonexistent", -1, -1, -1,
	                  &pr);
	check(r == -ENOENT, "missing cwd is ENOENT", al_strerror(r));

	/* kill reaches the whole process group of a command. */
	r = sandbox_spawn(sb,
	                  (const char *[]){"/bin/sh", "-c", "sleep 1000 & sleep 1000; wait", NULL},
	                  NULL, NULL, -1, -1, -1, &pr);
	check(r == 0, "spawn tree", al_strerror(r));
	if (r == 0) {
		usleep(100000);
		check(sandbox_proc_kill(pr, SIGTERM) == 0, "kill", NULL);
		r = sandbox_proc_wait(pr, &st);
		check(r == 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "killed by SIGTERM",
		      NULL);
		sandbox_proc_free(pr);
	}

	/* Everything started in a session dies with it, even detached daemons. */
	r = run(sb, (const char *[]){"/workspace/sbtry", "sleeper", NULL}, NULL, out, sizeof(out),
	        &st);
	check(r == 0 && out[0] >= '1' && out[0] <= '9', "detached sleeper started", out);
	hostpid = host_pid_of(sb);
	ns = pidns_of(hostpid);
	check(ns != 0 && count_in_pidns(ns) >= 2, "sleeper alive before destroy", NULL);
	read_record(state, "life", rec, sizeof(rec));
	sandbox_destroy(sb);
	check(count_in_pidns(ns) == 0, "no process survives destroy", NULL);
	/* The cgroups and the record go asynchronously (sandbox_gc), never before the
	 * processes are gone; a re-created session takes its old name over at once. */
	check(sandbox_gc(false) <= 1, "gc pass", NULL);
	sb = create_or_die(&p, "life", ws);
	r = run(sb, (const char *[]){"true", NULL}, NULL, out, sizeof(out), &st);
	check(r == 0 && st == 0, "session re-created before gc", al_strerror(r));
	sandbox_destroy(sb);
	check(sandbox_gc(true) == 0, "gc done", NULL);
	check(record_cgroups_gone(rec), "cgroups removed", NULL);
	read_record(state, "life", rec, sizeof(rec));
	check(rec[0] == '\0', "journal record removed", NULL);
}

/* ---------------------------------------------------------------- spares */

/* The one child of this process that is not `except`: a spare's pid 1. */
static pid_t
child_pid(pid_t except)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = -1;
	char path[64], buf[512], *rp;
	while (d && (e = readdir(d)) != NULL) {
		int fd;
		ssize_t n;
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((fd = open(path, O_RDONLY)) < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
		/* "pid (comm) S ppid ..." */
		if ((rp = strrchr(buf, ')')) != NULL && strtol(rp + 4, NULL, 10) == getpid() &&
		    strtol(e->d_name, NULL, 10) != except)
			found = (pid_t)strtol(e->d_name, NULL, 10);
	}
	if (d)
		closedir(d);
	return found;
}

static int
records_in(const char *state)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int n = 0, i;
	/* session records, and those of spares' or destroyed sandboxes' cgroups */
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", state, i ? "cgroups" : "sandboxes");
		if ((d = opendir(path)) == NULL)
			return -1;
		while ((e = readdir(d)) != NULL)
			n += e->d_name[0] != '.';
		closedir(d);
	}
	return n;
}

static void
mode_spares(void)
{
	struct sandbox_profile p;
	struct sandbox_spare *s1, *s2;
	struct sandbox *a, *b;
	char *state = mkdir_in("state"), *wa = mkdir_in("wsA"), *wb = mkdir_in("wsB");
	char out[8192], marker[64], cmd[256];
	int r, st;
	pid_t pid;
	unsigned long ns;

	profile_for_tests(&p, state);
	check(sandbox_sweep(state) == 0, "sweep", NULL);

	/* Nothing of one session reaches the next: B's spare is set up while A lives and
	 * is claimed after A is gone; A's /tmp, /dev/shm, workspace, daemons stay A's. */
	check(sandbox_spare_new(&p, &s1) == 0 && sandbox_spare_new(&p, &s2) == 0, "two spares",
	      NULL);
	check(sandbox_spare_wait(s1, 20000) == 0, "spare 1 set up", NULL);
	r = sandbox_spare_claim(s1, "spA", wa, &a);
	check(r == 0, "claim spare 1 for A", al_strerror(r));
	if (r != 0)
		exit(1);
	snprintf(marker, sizeof(marker), "spmark%d", (int)getpid());
	snprintf(cmd, sizeof(cmd),
	         "echo s > /tmp/%s; echo s > /dev/shm/%s; echo s > /workspace/%s; "
	         "(setsid bash -c 'exec -a %s sleep 1000' >/dev/null 2>&1 &)",
	         marker, marker, marker, marker);
	r = run(a, (const char *[]){"/bin/bash", "-c", cmd, NULL}, NULL, out, sizeof(out), &st);
	check(r == 0 && st == 0, "A leaves files and a daemon", out);
	sandbox_destroy(a);
	r = sandbox_spare_claim(s2, "spB", wb, &b);
	check(r == 0, "claim spare 2 for B", al_strerror(r));
	if (r != 0)
		exit(1);
	snprintf(cmd, sizeof(cmd),
	         "ls /tmp /dev/shm /workspace; cat /proc/[0-9]*/cmdline | tr '\\0' ' '; "
	         "hostname; id -u");
	r = run(b, (const char *[]){"/bin/bash", "-c", cmd, NULL}, NULL, out, sizeof(out), &st);
	check(r == 0 && st == 0 && strstr(out, marker) == NULL && strstr(out, "sandbox\n1000\n"),
	      "B sees nothing of A", out);
	ns = pidns_of(host_pid_of(b));
	check(count_in_pidns(ns) == 1, "only pid 1 after the command", NULL);
	/* From the host: pid 1 is in the sandbox's own memory and pids groups (it joined
	 * them itself, before its set-up; the parent never waits for that). */
	{
		char path[64], cg[4096] = {0};
		int fd, n = 0;
		ssize_t k;
		char *l, *cur = cg;
		snprintf(path, sizeof(path), "/proc/%d/cgroup", host_pid_of(b));
		if ((fd = open(path, O_RDONLY)) >= 0) {
			k = read(fd, cg, sizeof(cg) - 1);
			cg[k > 0 ? k : 0] = '\0';
			close(fd);
		}
		/* v1: the memory and pids lines; v2: the one "0::" line */
		while ((l = strsep(&cur, "\n")) != NULL) {
			bool ours = strstr(l, "/airlock-") && strstr(l, "/sb-");
			if (strstr(l, ":memory:") || strstr(l, ":pids:"))
				n += ours ? 1 : -100;
			else if (strncmp(l, "0::", 3) == 0 && ours)
				n = n < 0 ? n : 2;
		}
		check(n == 2, "pid 1 in its own memory and pids cgroups", NULL);
	}
	sandbox_destroy(b);

	/* A claim that fails consumes the spare and leaves nothing behind. */
	check(sandbox_spare_new(&p, &s1) == 0, "spare for a bad claim", NULL);
	r = sandbox_spare_claim(s1, "spBad", "/nonexistent-ws", &a);
	check(r == -ENOENT && a == NULL, "claim with a missing workspace fails", al_strerror(r));
	check(sandbox_spare_new(&p, &s1) == 0, "spare for a bad id", NULL);
	r = sandbox_spare_claim(s1, "../x", wa, &a);
	check(r == AL_E_INVAL, "claim with a bad session id fails", al_strerror(r));
	(void)sandbox_gc(true);
	check(records_in(state) == 0, "no record after failed claims", NULL);
	check(child_pid(-1) == -1, "no spare process after failed claims", NULL);

	/* A spare that died is AL_E_CLOSED at the claim (the monitor then goes cold). */
	check(sandbox_spare_new(&p, &s1) == 0, "spare to kill", NULL);
	check(sandbox_spare_wait(s1, 20000) == 0, "spare to kill set up", NULL);
	pid = child_pid(-1);
	check(pid > 0 && kill(pid, SIGKILL) == 0, "kill the spare's pid 1", NULL);
	usleep(50000);
	check(sandbox_spare_wait(s1, 0) == AL_E_CLOSED, "a dead spare is reported", NULL);
	r = sandbox_spare_claim(s1, "spDead", wa, &a);
	check(r == AL_E_CLOSED, "claim of a dead spare", al_strerror(r));
	check(sandbox_gc(true) == 0 && records_in(state) == 0, "no record after the dead claim",
	      NULL);

	/* An unclaimed spare that is freed leaves no process. */
	check(sandbox_spare_new(&p, &s1) == 0, "spare to free", NULL);
	pid = child_pid(-1);
	sandbox_spare_free(s1);
	check(pid > 0 && kill(pid, 0) != 0, "freed spare is gone", NULL);
	check(sandbox_gc(true) == 0 && records_in(state) == 0, "nothing left", NULL);
}

/* ---------------------------------------------------------------- monitor */

/* The client side of a test that runs a monitor in a child: its results to the parent,
 * then the monitor's end (it exits once its client is gone). */
static void __attribute__((noreturn))
client_report(int fd, const int *res, size_t len, struct monitor *m)
{
	(void)!write(fd, res, len);
	if (m != NULL)
		monitor_free(m);
	_exit(0);
}

static void
parent_collect(int rep[2], int *res, size_t len)
{
	close(rep[1]);
	(void)!read(rep[0], res, len);
	close(rep[0]);
}

static void monitor_swap_race(const struct sandbox_profile *p);
static void monitor_root_parent(const struct sandbox_profile *p);
static void monitor_session_dirs(const struct sandbox_profile *p);
static void uid_ws_owner(const struct sandbox_profile *base);
static void monitor_quota(const struct sandbox_profile *p);
static void monitor_quota_crash(const struct sandbox_profile *p, const char *root);

static void
monitor_client_part(const struct sandbox_profile *p, const char *root, const char *ws, int report)
{
	struct monitor_config cfg = {.profile = p, .workspace_root = root};
	struct monitor *m;
	struct sandbox_proc *pr;
	uint32_t id = 0, id2;
	int pfd[2], r, st, hostpid;
	char out[256] = {0}, link[PATH_MAX];
	ssize_t n;

	r = monitor_start(&cfg, &m);
	/* From here on: the worker (child), unprivileged. */
	check(r == 0, "monitor_start", al_strerror(r));
	if (r != 0)
		exit(1);
	check(getuid() != 0 && geteuid() != 0, "worker dropped root", NULL);
	r = monitor_client_create(m, "mon1", ws, &id);
	check(r == 0, "create through the monitor", al_strerror(r));
	if (pipe(pfd) != 0)
		exit(99);
	r = monitor_client_spawn(m, id, (const char *[]){"echo", "via-monitor", NULL}, NULL, NULL,
	                         -1, pfd[1], -1, &pr);
	close(pfd[1]);
	check(r == 0, "spawn through the monitor", al_strerror(r));
	n = read(pfd[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	check(strcmp(out, "via-monitor\n") == 0, "output relayed", out);
	if (r == 0) {
		check(sandbox_proc_wait(pr, &st) == 0 && st == 0, "status relayed", NULL);
		sandbox_proc_free(pr);
	}
	/* Four child fds and an explicit program path (the worker's persistent bash): fd 3
	 * is its status pipe; fds 4..7 of the sandbox's pid 1 must not leak in. */
	{
		int o[2], s3[2], io[4];
		char b3[64] = {0};
		if (pipe(o) != 0 || pipe(s3) != 0)
			exit(99);
		io[0] = -1, io[1] = o[1], io[2] = o[1], io[3] = s3[1];
		r = monitor_client_spawn_fds(
		    m, id, "/bin/bash",
		    (const char *const[]){
		        "bash", "-c",
		        "echo out; echo st >&3; ls /proc/self/fd 2>&1 | tr '\\n' ' ' >&3", NULL},
		    NULL, NULL, io, 4, &pr);
		close(o[1]);
		close(s3[1]);
		check(r == 0, "spawn with 4 fds through the monitor", al_strerror(r));
		n = read(o[0], out, sizeof(out) - 1);
		out[n > 0 ? n : 0] = '\0';
		check(strcmp(out, "out\n") == 0, "fd 1 relayed", out);
		for (n = 0;;) { /* to EOF: two writes */
			ssize_t k = read(s3[0], b3 + n, sizeof(b3) - 1 - (size_t)n);
			if (k <= 0)
				break;
			n += k;
		}
		b3[n] = '\0';
		/* ls's own listing: 0 1 2 3 plus the dir fd it reads; nothing else */
		check(strncmp(b3, "st\n0 1 2 3 ", 11) == 0 && strlen(b3) <= 15,
		      "fd 3 relayed, no other fd inherited", b3);
		close(o[0]);
		close(s3[0]);
		if (r == 0) {
			check(sandbox_proc_wait(pr, &st) == 0 && st == 0, "4-fd status", NULL);
			sandbox_proc_free(pr);
		}
		r = monitor_client_spawn_fds(m, id, "no/abs", (const char *const[]){"x", NULL},
		                             NULL, NULL, io, 0, &pr);
		check(r == AL_E_INVAL, "relative program path refused by the client", NULL);
	}
	/* pid -1: the whole sandbox (a setsid'd daemon escapes a group kill, not this). */
	r = monitor_client_spawn(
	    m, id, (const char *[]){"bash", "-c", "setsid sleep 1000 & sleep 1000", NULL}, NULL,
	    NULL, -1, -1, -1, &pr);
	if (r == 0) {
		check(monitor_client_kill(m, id, -1, SIGKILL) == 0, "kill everything", NULL);
		check(sandbox_proc_wait(pr, &st) == 0 && WTERMSIG(st) == SIGKILL,
		      "tree killed by pid -1", NULL);
		sandbox_proc_free(pr);
		if (pipe(pfd) != 0)
			exit(99);
		/* the processes left besides pid 1 and this shell (and its ls) */
		r = monitor_client_spawn(
		    m, id,
		    (const char *[]){"bash", "-c", "cat /proc/[0-9]*/comm | sort | tr '\\n' ' '",
		                     NULL},
		    NULL, NULL, -1, pfd[1], -1, &pr);
		close(pfd[1]);
		n = r == 0 ? read(pfd[0], out, sizeof(out) - 1) : 0;
		out[n > 0 ? n : 0] = '\0';
		close(pfd[0]);
		check(strstr(out, "sleep") == NULL, "no sleeper survives the pid -1 kill", out);
		if (r == 0) {
			(void)sandbox_proc_wait(pr, &st);
			sandbox_proc_free(pr);
		}
	}
	r = monitor_client_spawn(m, id, (const char *[]){"sleep", "1000", NULL}, NULL, NULL, -1, -1,
	                         -1, &pr);
	if (r == 0) {
		check(sandbox_proc_kill(pr, SIGTERM) == 0, "kill through the monitor", NULL);
		check(sandbox_proc_wait(pr, &st) == 0 && WTERMSIG(st) == SIGTERM, "killed", NULL);
		sandbox_proc_free(pr);
	}
	r = monitor_client_create(m, "evil1", "/etc", &id2);
	check(r == AL_E_PERM, "workspace outside the root refused", al_strerror(r));
	snprintf(link, sizeof(link), "%s/link", root);
	r = monitor_client_create(m, "evil2", link, &id2);
	check(r == AL_E_PERM, "symlink out of the root refused", al_strerror(r));
	r = monitor_client_create(m, "../x", ws, &id2);
	check(r == AL_E_INVAL, "bad session id refused", al_strerror(r));
	r = monitor_client_destroy(m, id);
	check(r == 0, "destroy through the monitor", al_strerror(r));
	r = monitor_client_spawn(m, id, (const char *[]){"true", NULL}, NULL, NULL, -1, -1, -1,
	                         &pr);
	check(r == AL_E_NOTFOUND, "destroyed sandbox is gone", al_strerror(r));

	/* A compromised worker sends garbage: the monitor must kill us, clean up, and live
	 * on to exit with MONITOR_EXIT_PROTO. */
	r = monitor_client_create(m, "mon2", ws, &id);
	check(r == 0, "create before garbage", al_strerror(r));
	hostpid = -1;
	{
		char path[64], line[128];
		FILE *f;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d",
		         monitor_client_sandbox_fd(m, id));
		if ((f = fopen(path, "r")) != NULL) {
			while (fgets(line, sizeof(line), f))
				if (strncmp(line, "Pid:", 4) == 0)
					hostpid = (int)strtol(line + 4, NULL, 10);
			fclose(f);
		}
	}
	(void)!write(report, &hostpid, sizeof(hostpid));
	(void)!write(report, &failures, sizeof(failures));
	monitor_client_send_raw(m, "\x66\x00\x00\x00garbage", 11);
	pause(); /* the monitor kills us here */
	_exit(0);
}

static void
mode_monitor(void)
{
	struct sandbox_profile p;
	char *state = mkdir_in("mstate"), *root = mkdir_in("wsroot"), link[PATH_MAX];
	char ws[PATH_MAX];
	int rep[2], st, hostpid = -1, childfail = -1;
	pid_t d;

	profile_for_tests(&p, state);
	snprintf(ws, sizeof(ws), "%s/ws1", root);
	mkdir(ws, 0755);
	snprintf(link, sizeof(link), "%s/link", root);
	if (symlink("/etc", link) != 0)
		exit(99);
	chmod(tmpdir, 0755);
	if (pipe(rep) != 0)
		exit(99);
	fflush(stdout);
	if ((d = fork()) == 0) {
		close(rep[0]);
		monitor_client_part(&p, root, ws, rep[1]);
		_exit(0);
	}
	close(rep[1]);
	(void)!read(rep[0], &hostpid, sizeof(hostpid));
	(void)!read(rep[0], &childfail, sizeof(childfail));
	close(rep[0]);
	waitpid(d, &st, 0);
	check(childfail == 0, "client-side checks passed", NULL);
	check(WIFEXITED(st) && WEXITSTATUS(st) == MONITOR_EXIT_PROTO,
	      "malformed request: monitor killed the worker and exited", NULL);
	check(hostpid > 0 && kill(hostpid, 0) != 0, "its sandboxes are gone", NULL);
	monitor_swap_race(&p);
	monitor_root_parent(&p);
	monitor_session_dirs(&p);
	uid_ws_owner(&p);
	monitor_quota(&p);
}

/* Issue 11 finding 1: a process of the drop uid swaps the workspace with a symlink to a
 * root-owned decoy (renameat2 RENAME_EXCHANGE, as fast as it can) while the worker creates
 * sessions. The monitor must never chown or bind the decoy: each create gets the real
 * directory or a refusal. Before the fix (path checked, then resolved again by the claim)
 * the decoy was chowned and bound within a few dozen creates. */
static void
monitor_swap_race(const struct sandbox_profile *p)
{
	char *root = mkdir_in("raceroot"), *decoy = mkdir_in("decoy");
	char ws[PATH_MAX], lnk[PATH_MAX], marker[PATH_MAX];
	int rep[2], res[5] = {-1, -1, -1, -1, -1}, st, fd;
	pid_t swapper, client;
	struct stat dst;

	snprintf(ws, sizeof(ws), "%s/ws", root);
	snprintf(lnk, sizeof(lnk), "%s/lnk", root);
	snprintf(marker, sizeof(marker), "%s/decoy-marker", decoy);
	if (mkdir(ws, 0755) != 0 || symlink(decoy, lnk) != 0 || chmod(decoy, 0700) != 0 ||
	    chown(root, 65534, 65534) != 0 || chown(ws, 65534, 65534) != 0 ||
	    lchown(lnk, 65534, 65534) != 0 ||
	    (fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0 || pipe(rep) != 0)
		exit(99);
	close(fd);
	fflush(stdout);
	if ((swapper = fork()) == 0) {
		if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
		    setresuid(65534, 65534, 65534) != 0)
			_exit(99);
		for (;;)
			syscall(SYS_renameat2, AT_FDCWD, ws, AT_FDCWD, lnk,
			        2 /* RENAME_EXCHANGE */);
	}
	if ((client = fork()) == 0) {
		struct monitor_config cfg = {.profile = p, .workspace_root = root};
		struct monitor *m;
		uint64_t until = now_mono_ms() + 4000;
		int i, r;
		close(rep[0]);
		res[0] = monitor_start(&cfg, &m);
		/* from here on the worker, as nobody */
		res[1] = res[2] = res[3] = res[4] = 0;
		/* Refusals are quick: bounded by time, and by 60 creates that got through. */
		for (i = 0; res[0] == 0 && res[1] < 60 && i < 20000 && now_mono_ms() < until; i++) {
			char sid[32], out[64] = {0};
			uint32_t id;
			int pfd[2];
			ssize_t n;
			struct sandbox_proc *pr;
			snprintf(sid, sizeof(sid), "race%d", i);
			r = monitor_client_create(m, sid, ws, &id);
			if (r == AL_E_PERM || r == -ENOENT) {
				res[2]++;
				continue;
			}
			if (r != 0) {
				res[4]++;
				continue;
			}
			res[1]++;
			if (pipe(pfd) != 0)
				_exit(99);
			r = monitor_client_spawn(
			    m, id,
			    (const char *[]){"sh", "-c",
			                     "test -e /workspace/decoy-marker && echo SEEN", NULL},
			    NULL, NULL, -1, pfd[1], -1, &pr);
			close(pfd[1]);
			n = r == 0 ? read(pfd[0], out, sizeof(out) - 1) : 0;
			out[n > 0 ? n : 0] = '\0';
			close(pfd[0]);
			if (strstr(out, "SEEN") != NULL)
				res[3]++;
			if (r == 0) {
				(void)sandbox_proc_wait(pr, &st);
				sandbox_proc_free(pr);
			}
			(void)monitor_client_destroy(m, id);
		}
		client_report(rep[1], res, sizeof(res), res[0] == 0 ? m : NULL);
	}
	parent_collect(rep, res, sizeof(res));
	waitpid(client, &st, 0);
	kill(swapper, SIGKILL);
	waitpid(swapper, &st, 0);
	printf("# swap race: %d creates, %d refused, %d other errors\n", res[1], res[2], res[4]);
	check(res[0] == 0, "race: monitor started", al_strerror(res[0]));
	check(res[1] > 0, "race: sessions created while the swap ran", NULL);
	check(res[3] == 0, "race: no sandbox got the decoy at /workspace", NULL);
	check(stat(decoy, &dst) == 0 && dst.st_uid == 0 && dst.st_gid == 0 &&
	          (dst.st_mode & 07777) == 0700,
	      "race: the root-owned decoy was never chowned", NULL);
}

/* The drop uid must not be able to rename the workspace root's entry (or one above it):
 * such a root is refused at start. A root-owned root in a sticky world-writable dir is
 * fine (the sticky bit keeps the entry). Each monitor_start runs in a child: if it
 * accepted, that process would become the monitor. */
static int
monitor_start_in_child(const struct sandbox_profile *p, const char *root)
{
	int rep[2], r = -1, st;
	pid_t c;
	if (pipe(rep) != 0)
		exit(99);
	fflush(stdout);
	if ((c = fork()) == 0) {
		struct monitor_config cfg = {.profile = p, .workspace_root = root};
		struct monitor *m;
		close(rep[0]);
		r = monitor_start(&cfg, &m);
		(void)!write(rep[1], &r, sizeof(r));
		_exit(0); /* the worker (or the refused original): the monitor exits with it */
	}
	close(rep[1]);
	(void)!read(rep[0], &r, sizeof(r));
	close(rep[0]);
	waitpid(c, &st, 0);
	return r;
}

static void
monitor_root_parent(const struct sandbox_profile *p)
{
	char *par = mkdir_in("nobodys"), *sticky = mkdir_in("sticky"), root[PATH_MAX];
	int r;
	if (chown(par, 65534, 65534) != 0 || chmod(sticky, 01777) != 0)
		exit(99);
	snprintf(root, sizeof(root), "%s/wsroot", par);
	if (mkdir(root, 0755) != 0 && errno != EEXIST)
		exit(99);
	r = monitor_start_in_child(p, root);
	check(r == AL_E_PERM, "root in a dir the drop user owns refused", al_strerror(r));
	snprintf(root, sizeof(root), "%s/wsroot", sticky);
	if (mkdir(root, 0755) != 0 && errno != EEXIST)
		exit(99);
	r = monitor_start_in_child(p, root);
	check(r == 0, "root-owned root in a sticky dir accepted", al_strerror(r));
	if (chown(root, 65534, 65534) != 0)
		exit(99);
	r = monitor_start_in_child(p, root);
	check(r == AL_E_PERM, "drop-user-owned root in a sticky dir refused", al_strerror(r));
}

/* Runs "sh -c cmd" in sandbox id through the monitor; its stdout into out. */
static int
mon_sh(struct monitor *m, uint32_t id, const char *cmd, char *out, size_t cap)
{
	struct sandbox_proc *pr;
	int pfd[2], r, st;
	ssize_t n, len = 0;
	out[0] = '\0';
	if (pipe(pfd) != 0)
		return -errno;
	r = monitor_client_spawn(m, id, (const char *[]){"sh", "-c", cmd, NULL}, NULL, NULL, -1,
	                         pfd[1], -1, &pr);
	close(pfd[1]);
	while (r == 0 && (n = read(pfd[0], out + len, cap - 1 - (size_t)len)) > 0)
		len += n;
	out[len] = '\0';
	close(pfd[0]);
	if (r == 0) {
		(void)sandbox_proc_wait(pr, &st);
		sandbox_proc_free(pr);
	}
	return r;
}

/* Issue 11 finding 5: each session has its own workspace, <root>/sessions/<id>, made by
 * the monitor: the same session finds its files again, another session sees nothing of
 * them, and after REMOVE they are gone. */
static void
monitor_session_dirs(const struct sandbox_profile *p)
{
	char *root = mkdir_in("sessroot"), wa[PATH_MAX], wb[PATH_MAX];
	int rep[2], res[12], st, i;
	pid_t c;
	struct stat sst;

	for (i = 0; i < 12; i++)
		res[i] = -1;
	snprintf(wa, sizeof(wa), "%s/sessions/sessA", root);
	snprintf(wb, sizeof(wb), "%s/sessions/sessB", root);
	if (pipe(rep) != 0)
		exit(99);
	fflush(stdout);
	if ((c = fork()) == 0) {
		struct monitor_config cfg = {
		    .profile = p, .workspace_root = root, .session_dirs = true};
		struct monitor *m;
		uint32_t id;
		char out[512];
		close(rep[0]);
		if ((res[0] = monitor_start(&cfg, &m)) == 0) {
			res[1] = monitor_client_create(m, "sessA", wa, &id);
			if (res[1] == 0) {
				mon_sh(m, id, "echo planted > /workspace/a.txt; pwd", out,
				       sizeof(out));
				res[2] = strcmp(out, "/workspace\n") == 0;
				res[3] = monitor_client_remove(m, "sessA"); /* live: refused */
				monitor_client_destroy(m, id);
			}
			res[4] = monitor_client_create(m, "sessB", wb, &id);
			if (res[4] == 0) {
				char cmd[PATH_MAX + 128];
				/* by /workspace and by A's host path */
				snprintf(cmd, sizeof(cmd),
				         "ls -A /workspace; cat /workspace/a.txt '%s/a.txt' "
				         "2>/dev/null; echo end",
				         wa);
				mon_sh(m, id, cmd, out, sizeof(out));
				res[5] = strcmp(out, "end\n") == 0; /* nothing of A's */
				monitor_client_destroy(m, id);
			}
			/* another session's path is not a workspace for this one */
			res[6] = monitor_client_create(m, "sessB", wa, &id);
			if (monitor_client_create(m, "sessA", wa, &id) == 0) {
				mon_sh(m, id, "cat /workspace/a.txt", out, sizeof(out));
				res[7] = strcmp(out, "planted\n") == 0; /* the same session's */
				monitor_client_destroy(m, id);
			}
			res[8] = monitor_client_remove(m, "sessA");
			if (monitor_client_create(m, "sessA", wa, &id) == 0) {
				mon_sh(m, id, "ls -A /workspace; echo end", out, sizeof(out));
				res[9] = strcmp(out, "end\n") == 0; /* a fresh, empty one */
				monitor_client_destroy(m, id);
			}
			res[10] = monitor_client_remove(m, "sessA");
			res[11] = monitor_client_remove(m, "../x");
		}
		(void)!write(rep[1], res, sizeof(res));
		if (res[0] == 0)
			monitor_free(m); /* the monitor waits for the removals, then exits */
		_exit(0);
	}
	close(rep[1]);
	(void)!read(rep[0], res, sizeof(res));
	close(rep[0]);
	waitpid(c, &st, 0);
	check(res[0] == 0, "session dirs: monitor started", al_strerror(res[0]));
	check(res[1] == 0, "session dirs: create makes the session's dir", al_strerror(res[1]));
	check(res[2] == 1, "session dirs: the sandbox writes in it", NULL);
	check(res[3] == AL_E_CONFLICT, "session dirs: no removal while the session lives",
	      al_strerror(res[3]));
	check(res[4] == 0 && res[5] == 1, "session dirs: another session sees nothing of it",
	      al_strerror(res[4]));
	check(res[6] == AL_E_PERM, "session dirs: another session's dir refused",
	      al_strerror(res[6]));
	check(res[7] == 1, "session dirs: the same session finds its files again", NULL);
	check(res[8] == 0 && res[9] == 1, "session dirs: after removal the session starts empty",
	      al_strerror(res[8]));
	check(res[10] == 0 && res[11] == AL_E_INVAL, "session dirs: remove again, bad id",
	      al_strerror(res[10]));
	check(stat(wa, &sst) != 0 && errno == ENOENT, "session dirs: the removed one is gone",
	      NULL);
	{
		char sess[PATH_MAX], cmd[PATH_MAX + 64];
		snprintf(sess, sizeof(sess), "%s/sessions", root);
		check(stat(sess, &sst) == 0 && sst.st_uid == 0 && (sst.st_mode & 07777) == 0711,
		      "session dirs: sessions/ is root's, 0711", NULL);
		/* only sessB's dir is left: no .rm-* leftovers */
		snprintf(cmd, sizeof(cmd), "test \"$(ls -A '%s')\" = sessB", sess);
		if (system(cmd) != 0) {
			snprintf(cmd, sizeof(cmd), "ls -la '%s' >&2", sess);
			(void)!system(cmd);
		}
		snprintf(cmd, sizeof(cmd), "test \"$(ls -A '%s')\" = sessB", sess);
		check(system(cmd) == 0, "session dirs: removals finished before the monitor exit",
		      NULL);
	}
}

/* The host uid of a sandbox's pid 1, from its pidfd's fdinfo and /proc. */
static long
host_uid_of(struct sandbox *sb)
{
	char path[64], line[256];
	long pid = -1, uid = -1;
	FILE *f;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", sandbox_pidfd(sb));
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "Pid:", 4) == 0)
				pid = strtol(line + 4, NULL, 10);
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if (pid > 0 && (f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "Uid:", 4) == 0)
				uid = strtol(line + 4, NULL, 10);
		fclose(f);
	}
	return uid;
}

/* Issue 11 finding 3: every sandbox runs as its own host uid (per-user kernel counters:
 * epoll watches, pipe buffers, SCM_RIGHTS in flight, are not the worker's), leased
 * host-wide, while the workspace's files stay the worker's on disk through an idmapped
 * mount, so the worker's host-side file tools and the sandbox share them. nobody (65534)
 * plays the worker's user. */
static void
uid_ws_owner(const struct sandbox_profile *base)
{
	struct sandbox_profile p = *base;
	char *wa = mkdir_in("ownA"), *wb = mkdir_in("ownB"), f[PATH_MAX], out[256];
	struct sandbox *a = NULL, *b = NULL;
	struct stat st;
	int r, wst, fd;
	long ua = -1, ub = -1;

	fd = open(tmpdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	r = fd < 0 ? -errno : sandbox_idmap_probe(fd);
	if (fd >= 0)
		close(fd);
	if (r != 0) {
		skip("ws_owner: per-sandbox uids with an idmapped workspace",
		     r == -EINVAL ? "no idmapped mounts on this filesystem" : al_strerror(r));
		return;
	}
	p.ws_owner_set = true;
	p.ws_owner_uid = p.ws_owner_gid = 65534;
	r = sandbox_create(&p, "ownA", wa, &a);
	check(r == 0, "ws_owner: create A", al_strerror(r));
	r = sandbox_create(&p, "ownB", wb, &b);
	check(r == 0, "ws_owner: create B", al_strerror(r));
	if (a == NULL || b == NULL)
		goto out;
	ua = host_uid_of(a);
	ub = host_uid_of(b);
	snprintf(out, sizeof(out), "A %ld, B %ld", ua, ub);
	check(ua > 0 && ub > 0 && ua != ub && ua != 65534 && ub != 65534 &&
	          ua == (long)sandbox_host_uid(a),
	      "ws_owner: each sandbox its own host uid, not the worker's", out);
	/* another worker cannot lease A's uid while A lives */
	snprintf(f, sizeof(f), "%s/%ld", SANDBOX_UID_LEASE_DIR, ua);
	fd = open(f, O_RDWR | O_CLOEXEC);
	check(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK,
	      "ws_owner: A's uid is leased host-wide", f);
	if (fd >= 0)
		close(fd);
	check(stat(wa, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534,
	      "ws_owner: the workspace belongs to the owner on disk", NULL);
	r = run(a,
	        (const char *[]){"sh", "-c",
	                         "id -u; echo made > /workspace/bysb; stat -c %u /workspace/bysb",
	                         NULL},
	        NULL, out, sizeof(out), &wst);
	check(r == 0 && strcmp(out, "1000\n1000\n") == 0, "ws_owner: inside, the files are 1000's",
	      out);
	snprintf(f, sizeof(f), "%s/bysb", wa);
	check(stat(f, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534,
	      "ws_owner: what the sandbox writes is the owner's on disk", NULL);
	/* the owner (the worker's file tools) writes a private file: the sandbox reads it */
	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
		    setresuid(65534, 65534, 65534) != 0)
			_exit(1);
		snprintf(f, sizeof(f), "%s/bytool", wa);
		int k = open(f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		_exit(k >= 0 && write(k, "tool\n", 5) == 5 ? 0 : 1);
	}
	waitpid(c, &wst, 0);
	r = run(a,
	        (const char *[]){"sh", "-c",
	                         "cat /workspace/bytool >> /workspace/bysb && cat /workspace/bysb",
	                         NULL},
	        NULL, out, sizeof(out), &wst);
	check(WIFEXITED(wst) && WEXITSTATUS(wst) == 0 && strcmp(out, "made\ntool\n") == 0,
	      "ws_owner: the owner's 0600 files are the sandbox's to read and write", out);
	/* B cannot touch A's files even by a path it could name: another uid, another mount */
	snprintf(f, sizeof(f), "%s/bysb", wa);
	{
		char cmd[PATH_MAX + 64];
		snprintf(cmd, sizeof(cmd), "cat '%s' 2>/dev/null || echo denied", f);
		r = run(b, (const char *[]){"sh", "-c", cmd, NULL}, NULL, out, sizeof(out), &wst);
		check(r == 0 && strcmp(out, "denied\n") == 0, "ws_owner: B cannot read A's files",
		      out);
	}
out:
	sandbox_destroy(a);
	sandbox_destroy(b);
	(void)sandbox_gc(true);
	snprintf(f, sizeof(f), "%s/%ld", SANDBOX_UID_LEASE_DIR, (long)ua);
	fd = open(f, O_RDWR | O_CLOEXEC);
	check(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "ws_owner: the lease ends with A", f);
	if (fd >= 0)
		close(fd);
}

/* A monitor killed with SIGKILL leaves its session's mount; the next start removes it. */
static void
monitor_quota_crash(const struct sandbox_profile *p, const char *root)
{
	struct monitor_config cfg = {
	    .profile = p, .workspace_root = root, .session_dirs = true, .workspace_mb = 16};
	char ws[PATH_MAX], sess[PATH_MAX];
	int rep[2], res[2] = {-1, -1}, st;
	struct stat a, b;
	pid_t c;

	snprintf(sess, sizeof(sess), "%s/sessions", root);
	snprintf(ws, sizeof(ws), "%s/q3", sess);
	if (pipe(rep) != 0)
		exit(99);
	fflush(stdout);
	if ((c = fork()) == 0) {
		struct monitor *m;
		uint32_t id;
		close(rep[0]);
		if ((res[0] = monitor_start(&cfg, &m)) == 0)
			res[1] = monitor_client_create(m, "q3", ws, &id);
		(void)!write(rep[1], res, sizeof(res));
		pause(); /* killed with the monitor (PDEATHSIG) */
		_exit(0);
	}
	parent_collect(rep, res, sizeof(res));
	kill(c, SIGKILL); /* the monitor */
	waitpid(c, &st, 0);
	check(res[0] == 0 && res[1] == 0 && stat(ws, &a) == 0 && stat(sess, &b) == 0 &&
	          a.st_dev != b.st_dev,
	      "quota: a killed monitor leaves its session's mount", al_strerror(res[1]));
	if (pipe(rep) != 0)
		exit(99);
	fflush(stdout);
	if ((c = fork()) == 0) {
		struct monitor *m;
		close(rep[0]);
		if ((res[0] = monitor_start(&cfg, &m)) == 0) {
			res[1] = stat(ws, &a) == 0 && stat(sess, &b) == 0 && a.st_dev == b.st_dev;
			(void)monitor_client_remove(m, "q3");
		}
		client_report(rep[1], res, sizeof(res), res[0] == 0 ? m : NULL);
	}
	parent_collect(rep, res, sizeof(res));
	waitpid(c, &st, 0);
	check(res[0] == 0 && res[1] == 1, "quota: the next start unmounts it", NULL);
}

/* Issue 11 finding 6: with workspace_mb each session's workspace is its own filesystem
 * (an ext4 image on a loop device) of that size: a session fills it, not the host's. It
 * stays mounted after its sandbox goes until another session's create, its files come
 * back at the next create, REMOVE takes the image, and the monitor's exit every mount. */
static void
monitor_quota(const struct sandbox_profile *p)
{
	char *root = mkdir_in("quotaroot"), ws[PATH_MAX], ws2[PATH_MAX], sess[PATH_MAX],
	     img[PATH_MAX], kf[PATH_MAX];
	int rep[2], res[10], st, i;
	pid_t c;
	struct stat a, b;

	if ((i = sandbox_ws_quota_probe()) != 0) {
		skip("quota: size-capped workspaces",
		     i == -ENOENT ? "no /dev/loop-control or mkfs.ext4 here" : al_strerror(i));
		return;
	}
	for (i = 0; i < 10; i++)
		res[i] = -1;
	snprintf(sess, sizeof(sess), "%s/sessions", root);
	snprintf(ws, sizeof(ws), "%s/q1", sess);
	snprintf(img, sizeof(img), "%s/.img-q1", sess);
	snprintf(ws2, sizeof(ws2), "%s/q2", sess);
	snprintf(kf, sizeof(kf), "%s/k", ws);
	if (pipe(rep) != 0)
		exit(99);
	fflush(stdout);
	if ((c = fork()) == 0) {
		struct monitor_config cfg = {
		    .profile = p, .workspace_root = root, .session_dirs = true, .workspace_mb = 16};
		struct monitor *m;
		uint32_t id;
		char out[1024];
		close(rep[0]);
		if ((res[0] = monitor_start(&cfg, &m)) == 0) {
			res[1] = monitor_client_create(m, "q1", ws, &id);
			if (res[1] == 0) {
				mon_sh(m, id,
				       "dd if=/dev/zero of=/workspace/big bs=1M count=40 2>&1 | "
				       "grep -c 'No space left'; rm -f /workspace/big; "
				       "echo keep > /workspace/k",
				       out, sizeof(out));
				res[2] = strcmp(out, "1\n") == 0;
				res[3] = stat(ws, &a) == 0 && stat(sess, &b) == 0 &&
				         a.st_dev != b.st_dev;
				monitor_client_destroy(m, id);
			}
			/* the worker's look after the sandbox (setuid bits): still mounted */
			res[4] = stat(kf, &a) == 0;
			if (monitor_client_create(m, "q2", ws2, &id) == 0) {
				/* another session's create unmounts q1's */
				res[9] = stat(ws, &a) == 0 && stat(sess, &b) == 0 &&
				         a.st_dev == b.st_dev && stat(kf, &a) != 0;
				monitor_client_destroy(m, id);
			}
			if (monitor_client_create(m, "q1", ws, &id) == 0) {
				mon_sh(m, id, "cat /workspace/k", out, sizeof(out));
				res[5] = strcmp(out, "keep\n") == 0;
				monitor_client_destroy(m, id);
			}
			res[6] = stat(img, &a) == 0;
			res[7] = monitor_client_remove(m, "q1");
			res[8] = stat(img, &a) != 0 && errno == ENOENT;
			(void)monitor_client_remove(m, "q2");
		}
		client_report(rep[1], res, sizeof(res), res[0] == 0 ? m : NULL);
	}
	parent_collect(rep, res, sizeof(res));
	waitpid(c, &st, 0);
	check(res[0] == 0 && res[1] == 0, "quota: a session with a 16 MiB workspace",
	      al_strerror(res[1]));
	check(res[2] == 1, "quota: writing 40 MiB ends in ENOSPC inside", NULL);
	check(res[3] == 1, "quota: the workspace is its own filesystem on the host", NULL);
	check(res[4] == 1, "quota: still mounted after the session's sandbox goes", NULL);
	check(res[9] == 1, "quota: unmounted at another session's create", NULL);
	check(res[5] == 1, "quota: the next create of the session finds its files", NULL);
	check(res[6] == 1 && res[7] == 0 && res[8] == 1, "quota: REMOVE takes the image",
	      al_strerror(res[7]));
	{
		char line[4096];
		bool left = false;
		FILE *f = fopen("/proc/self/mountinfo", "r");
		while (f != NULL && fgets(line, sizeof(line), f))
			if (strstr(line, root) != NULL)
				left = true;
		if (f != NULL)
			fclose(f);
		check(!left, "quota: no mount left under the root after the monitor's exit", NULL);
	}
	monitor_quota_crash(p, root);
}

/* ---------------------------------------------------------------- unpriv */

static void
mode_unpriv(void)
{
	struct sandbox_profile p;
	char *state = mkdir_in("ustate"), *ws = mkdir_in("uws"), out[256], f[PATH_MAX];
	struct sandbox *sb;
	struct stat sst;
	int st, r, rep[2], res[5] = {-1, -1, -1, -1, -1};
	pid_t c;

	chmod(tmpdir, 0755);
	if (chown(state, 65534, 65534) != 0 || chown(ws, 65534, 65534) != 0 || pipe(rep) != 0)
		exit(99);
	fflush(stdout);
	if ((c = fork()) == 0) {
		if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
		    setresuid(65534, 65534, 65534) != 0)
			_exit(99);
		/* As if started unprivileged: a uid change made us non-dumpable, which would
		 * hide /proc/<child>/uid_map from us. */
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		profile_for_tests(&p, state);
		/* nobody cannot write cgroups here, unless a group was delegated to it */
		p.degraded = SANDBOX_DEGRADED_NO_CGROUPS;
		res[0] = sandbox_sweep(state);
		res[1] = sandbox_create(&p, "unpriv", ws, &sb);
		res[3] = (int)sandbox_cg_detect(NULL);
		if (res[1] == 0) {
			r = run(
			    sb,
			    (const char *[]){"/bin/sh", "-c", "id -u; echo x > /workspace/u", NULL},
			    NULL, out, sizeof(out), &st);
			res[2] = r == 0 && strcmp(out, "1000\n") == 0;
			sandbox_destroy(sb);
			res[4] = (int)sandbox_gc(true);
		}
		(void)!write(rep[1], res, sizeof(res));
		_exit(0);
	}
	close(rep[1]);
	(void)!read(rep[0], res, sizeof(res));
	waitpid(c, &st, 0);
	check(res[0] == 0, "unprivileged sweep", NULL);
	check(res[1] == 0, "unprivileged create", al_strerror(res[1]));
	check(res[2] == 1, "inside uid 1000", NULL);
	check(res[4] == 0, "unprivileged gc removed everything", NULL);
	/* cgroups only where a group was delegated to that uid (v2, cgroup2-vm.sh) */
	printf("# unprivileged cgroups: %s\n", res[3] == SB_CG_V2   ? "v2"
	                                       : res[3] == SB_CG_V1 ? "v1"
	                                                            : "none");
	snprintf(f, sizeof(f), "%s/u", ws);
	check(stat(f, &sst) == 0 && sst.st_uid == 65534, "maps to the worker's own uid", NULL);
}

/* Probes the host (outside any sandbox) and says so when the whole mode cannot apply. */
static bool
needs_met(const char *mode)
{
	static const enum hostprobe_need all[] = {HP_NEED_NAMESPACES, HP_NEED_SECCOMP,
	                                          HP_NEED_CGROUPS};
	struct buf rep;
	char why[256], *l, *cur;
	const char *fake = getenv("AIRLOCK_TEST_FAKE_NO_I386");

	hostprobe_run(&host);
	if (fake != NULL && strcmp(fake, "1") == 0) {
		fake_no_i386 = true;
		host.calls[HP_CALL_I386] =
		    (struct hostprobe_call){.end = HP_END_SIGNALED, .sig = SIGSEGV};
		printf("# AIRLOCK_TEST_FAKE_NO_I386=1: int 0x80 taken to fault on the host and "
		       "inside\n");
	}
	buf_init(&rep, 16384);
	(void)hostprobe_report(&host, &rep);
	(void)buf_add(&rep, "", 1);
	for (cur = rep.data; cur && (l = strsep(&cur, "\n")) != NULL;)
		if (*l)
			printf("# %s\n", l);
	buf_free(&rep);
	for (size_t i = 0; i < ARRAY_LEN(all); i++) {
		/* the unprivileged mode runs without cgroups (degraded) */
		if (all[i] == HP_NEED_CGROUPS && strcmp(mode, "unpriv") == 0)
			continue;
		if (hostprobe_lacks(all[i], &host, why, sizeof(why)))
			goto lacking;
	}
	if (strcmp(mode, "unpriv") == 0 &&
	    hostprobe_lacks(HP_NEED_UNPRIV_USERNS, &host, why, sizeof(why)))
		goto lacking;
	return true;
lacking:
	printf("skip: sandbox-%s: %s\n# 0 passed, 0 failed, 1 skipped\n", mode, why);
	return false;
}

int
main(int argc, char **argv)
{
	const char *mode;
	if (argc < 3) {
		fprintf(stderr,
		        "usage: sandbox_test escapes|escapes-warm|limits|lifecycle|spares|monitor|"
		        "unpriv SBTRY\n");
		return 2;
	}
	mode = argv[1];
	sbtry = argv[2];
	if (geteuid() != 0) {
		printf("skip: sandbox-%s: needs root (cgroups, uid ranges)\n"
		       "# 0 passed, 0 failed, 1 skipped\n",
		       mode);
		return 77;
	}
	log_setup(LOG_FMT_TEXT, LOG_LVL_INFO, "sandbox_test");
	if (!needs_met(mode))
		return 77;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/airlock-sbtest-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 99;
	chmod(tmpdir, 0755);
	if (strcmp(mode, "escapes") == 0)
		mode_escapes();
	else if (strcmp(mode, "escapes-warm") == 0)
		warm = true, mode_escapes();
	else if (strcmp(mode, "spares") == 0)
		mode_spares();
	else if (strcmp(mode, "limits") == 0)
		mode_limits();
	else if (strcmp(mode, "lifecycle") == 0)
		mode_lifecycle();
	else if (strcmp(mode, "monitor") == 0)
		mode_monitor();
	else if (strcmp(mode, "unpriv") == 0)
		mode_unpriv();
	else
		return 2;
	xsystem("rm -rf '%s'", tmpdir);
	printf("1..%d\n# %d passed, %d failed, %d skipped\n", checks, checks - failures, failures,
	       skips);
	if (failures)
		return 1;
	return checks == 0 && skips > 0 ? 77 : 0;
}
