/* Host probes and their verdicts (hostprobe.h): what this machine offers outside any
 * sandbox, and whether a sandbox check means anything here. The judges are pure so that
 * tests/unit/sandbox/test_hostprobe.c can hand them any host at all. */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "hostprobe.h"
#include "sandbox_int.h"
#include "util.h"

static const char *const need_names[HP_NEED_COUNT] = {
    [HP_NEED_ROOT] = "root",
    [HP_NEED_NAMESPACES] = "namespaces",
    [HP_NEED_UNPRIV_USERNS] = "unprivileged user namespaces",
    [HP_NEED_SECCOMP] = "seccomp filter",
    [HP_NEED_CGROUPS] = "cgroups",
    [HP_NEED_CG_V2] = "cgroup v2",
    [HP_NEED_CG_CPU] = "cgroup cpu controller",
    [HP_NEED_LANDLOCK] = "landlock",
    [HP_NEED_LANDLOCK_SCOPE] = "landlock scopes",
    [HP_NEED_SECCOMP_NOTIFY] = "seccomp user notification",
    [HP_NEED_KTLS] = "kTLS",
    [HP_NEED_IPV6_LO] = "IPv6 loopback",
    [HP_NEED_NFT] = "nftables",
    [HP_NEED_KVM] = "kvm",
    [HP_NEED_FINE_CLOCK] = "clock resolution",
};

const char *
hostprobe_need_name(enum hostprobe_need n)
{
	return (unsigned)n < HP_NEED_COUNT ? need_names[n] : "?";
}

/* ------------------------------------------------------------------ probes */

long
hostprobe_sysctl(const char *path)
{
	char b[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	uint64_t v;
	if (fd < 0)
		return -1;
	n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == ' '))
		n--;
	return parse_uint(b, (size_t)n, INT32_MAX, &v) == 0 ? (long)v : -1;
}

int
hostprobe_namespaces(void)
{
	int st;
	pid_t pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) == 0
		          ? 0
		          : (errno & 0x7f));
	if (waitpid(pid, &st, 0) < 0)
		return errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : EINTR;
}

static bool
file_has_word(const char *path, const char *word)
{
	char b[512], *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	size_t wl = strlen(word);
	if (fd < 0)
		return false;
	n = read(fd, b, sizeof(b) - 1);
	close(fd);
	b[n > 0 ? n : 0] = '\0';
	for (p = b; (p = strstr(p, word)) != NULL; p += wl)
		if ((p == b || p[-1] == ' ') && (p[wl] == '\0' || p[wl] == ' ' || p[wl] == '\n'))
			return true;
	return false;
}

static bool
probe_ipv6_lo(void)
{
	struct sockaddr_in6 a;
	int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;
	if (s < 0)
		return false;
	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_loopback;
	ok = bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(s);
	return ok;
}

/* nft present and the kernel's nf_tables working (built in, it has no /sys/module
 * entry): add a table in a network namespace of its own, which goes with the child. */
static bool
probe_nft(void)
{
	static const char *const bins[] = {"/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"};
	const char *bin = NULL;
	int st, fd;
	pid_t pid;
	for (size_t i = 0; i < ARRAY_LEN(bins) && bin == NULL; i++)
		if (access(bins[i], X_OK) == 0)
			bin = bins[i];
	if (bin == NULL)
		return false;
	fflush(NULL);
	if ((pid = fork()) < 0)
		return false;
	if (pid == 0) {
		int flags = CLONE_NEWNET | (geteuid() == 0 ? 0 : CLONE_NEWUSER);
		if (unshare(flags) != 0)
			_exit(1);
		if ((fd = open("/dev/null", O_RDWR)) >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, "nft", "add", "table", "inet", "airlock_probe", (char *)NULL);
		_exit(1);
	}
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* In a child: sandbox_cg_probe caches what it finds (v1), and the caller's later
 * detection (maybe after dropping privileges) must make its own. detail points at a
 * static string, the same in both processes. */
static void
probe_cgroups(struct hostprobe *h)
{
	struct {
		int mode;
		bool cpu;
		const char *detail;
	} res = {SB_CG_NONE, false, "the cgroup probe did not run"};
	int pfd[2];
	pid_t pid;
	bool warn;

	h->cg_mode = res.mode;
	h->cg_detail = res.detail;
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return;
	fflush(NULL);
	if ((pid = fork()) == 0) {
		close(pfd[0]);
		res.mode = (int)sandbox_cg_probe(&res.detail, &warn);
		res.cpu = res.mode != SB_CG_NONE && sandbox_cg_has_cpu();
		_exit(write(pfd[1], &res, sizeof(res)) == (ssize_t)sizeof(res) ? 0 : 1);
	}
	close(pfd[1]);
	if (pid > 0) {
		if (read(pfd[0], &res, sizeof(res)) == (ssize_t)sizeof(res)) {
			h->cg_mode = res.mode;
			h->cg_cpu = res.cpu;
			h->cg_detail = res.detail;
		}
		(void)waitpid(pid, NULL, 0);
	}
	close(pfd[0]);
}

void
hostprobe_run(struct hostprobe *h)
{
	struct timespec ts;
	unsigned int act = SECCOMP_RET_USER_NOTIF;
	int i;

	memset(h, 0, sizeof(*h));
	for (i = 0; i < HP_CALL_COUNT; i++)
		hostprobe_call_run((enum hostprobe_call_id)i, &h->calls[i]);
	h->root = geteuid() == 0;
	h->namespaces_err = hostprobe_namespaces();
	h->userns_clone = hostprobe_sysctl("/proc/sys/kernel/unprivileged_userns_clone");
	h->max_user_ns = hostprobe_sysctl("/proc/sys/user/max_user_namespaces");
	h->apparmor_userns =
	    hostprobe_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
	h->io_uring_disabled = hostprobe_sysctl("/proc/sys/kernel/io_uring_disabled");
	h->seccomp = !(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL);
	h->seccomp_notify = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &act) == 0;
	probe_cgroups(h);
	h->landlock_abi = sandbox_landlock_abi();
	h->ktls = file_has_word("/proc/sys/net/ipv4/tcp_available_ulp", "tls") ||
	          access("/sys/module/tls", F_OK) == 0;
	h->ipv6_lo = probe_ipv6_lo();
	h->nft = probe_nft();
	/* cgroup2-vm.sh's rule: another /dev/kvm backend (kvm_pvm) cannot boot its kernel */
	h->kvm =
	    access("/dev/kvm", R_OK | W_OK) == 0 && (access("/sys/module/kvm_intel", F_OK) == 0 ||
	                                             access("/sys/module/kvm_amd", F_OK) == 0);
	h->clock_res_ns = clock_getres(CLOCK_MONOTONIC, &ts) == 0
	                      ? (long)ts.tv_sec * 1000000000L + ts.tv_nsec
	                      : -1;
}

/* ------------------------------------------------------------------ verdicts */

static bool
same_end(const struct hostprobe_call *a, const struct hostprobe_call *b)
{
	if (a->end != b->end)
		return false;
	if (a->end == HP_END_SIGNALED)
		return a->sig == b->sig;
	if (a->end == HP_END_RETURNED)
		return (a->ret < 0) == (b->ret < 0) && (a->ret >= 0 || a->err == b->err);
	return a->end != HP_END_EXITED || a->ret == b->ret;
}

/* How the sandbox refuses each call: the seccomp filter's arch check kills the 32-bit
 * ABIs; the denied syscalls fail with EPERM. */
static struct hostprobe_call
refused(enum hostprobe_call_id id)
{
	struct hostprobe_call c = {.end = HP_END_RETURNED, .ret = -1, .err = EPERM};
	if (id == HP_CALL_I386 || id == HP_CALL_X32)
		c = (struct hostprobe_call){.end = HP_END_SIGNALED, .sig = SIGSYS};
	return c;
}

/* The host has no such entry at all: a fault for int 0x80, ENOSYS for a syscall. */
static bool
no_entry(enum hostprobe_call_id id, const struct hostprobe_call *c)
{
	if (id == HP_CALL_I386)
		return c->end == HP_END_SIGNALED &&
		       (c->sig == SIGSEGV || c->sig == SIGILL || c->sig == SIGBUS);
	return c->end == HP_END_RETURNED && c->ret < 0 && c->err == ENOSYS;
}

static void
no_entry_reason(enum hostprobe_call_id id, char *why, size_t cap)
{
	if (id == HP_CALL_I386)
		snprintf(why, cap,
		         "host has no i386 syscall entry (int 0x80 faults outside "
		         "the sandbox too)");
	else if (id == HP_CALL_X32)
		snprintf(why, cap, "host has no x32 ABI (ENOSYS outside the sandbox too)");
	else
		snprintf(why, cap, "host kernel has no %s (ENOSYS outside the sandbox too)",
		         hostprobe_call_name(id));
}

/* The host refuses the call itself as the sandbox would: name the setting. */
static void
same_refusal_reason(enum hostprobe_call_id id, const struct hostprobe *h, char *why, size_t cap)
{
	char how[96];
	hostprobe_call_str(&h->calls[id], how, sizeof(how));
	if (id == HP_CALL_IO_URING && h->io_uring_disabled > 0)
		snprintf(why, cap,
		         "io_uring disabled by sysctl kernel.io_uring_disabled=%ld (%s outside "
		         "the sandbox too)",
		         h->io_uring_disabled, how);
	else if ((id == HP_CALL_UNSHARE_USER || id == HP_CALL_CLONE_USER))
		snprintf(why, cap,
		         "unprivileged user namespaces are off on this host (%s outside the "
		         "sandbox too)",
		         how);
	else
		snprintf(why, cap, "the host refuses %s the same way (%s outside the sandbox too)",
		         hostprobe_call_name(id), how);
}

enum hostprobe_verdict
hostprobe_judge_call(enum hostprobe_call_id id, const struct hostprobe *h,
                     const struct hostprobe_call *inside, char *why, size_t cap)
{
	struct hostprobe_call want;
	const struct hostprobe_call *host;
	char a[96], b[96];

	if ((unsigned)id >= HP_CALL_COUNT) {
		snprintf(why, cap, "unknown call");
		return HP_FAIL;
	}
	host = &h->calls[id];
	want = refused(id);
	hostprobe_call_str(inside, a, sizeof(a));
	hostprobe_call_str(host, b, sizeof(b));
	if (inside->end == HP_END_NOT_RUN || inside->end == HP_END_EXITED) {
		snprintf(why, cap, "no result from inside the sandbox (%s)", a);
		return HP_FAIL;
	}
	if (host->end == HP_END_NOT_RUN || host->end == HP_END_EXITED) {
		snprintf(why, cap, "the host probe for %s did not run (%s)",
		         hostprobe_call_name(id), b);
		return HP_SKIP;
	}
	if (same_end(inside, &want)) {
		if (same_end(host, &want)) {
			same_refusal_reason(id, h, why, cap);
			return HP_SKIP;
		}
		snprintf(why, cap, "inside: %s; host: %s", a, b);
		return HP_PASS;
	}
	if (no_entry(id, host) && same_end(inside, host)) {
		no_entry_reason(id, why, cap);
		return HP_SKIP;
	}
	snprintf(why, cap, "inside: %s; host: %s", a, b);
	return HP_FAIL;
}

bool
hostprobe_lacks(enum hostprobe_need n, const struct hostprobe *h, char *why, size_t cap)
{
	const struct hostprobe_call *u = &h->calls[HP_CALL_UNSHARE_USER];
	char how[96];

	why[0] = '\0';
	switch (n) {
	case HP_NEED_ROOT:
		if (h->root)
			return false;
		snprintf(why, cap, "needs root (cgroups, a uid per sandbox)");
		return true;
	case HP_NEED_NAMESPACES:
		if (h->namespaces_err == 0)
			return false;
		snprintf(why, cap, "cannot create user/mount/pid/net namespaces here (%s)%s",
		         strerror(h->namespaces_err),
		         h->max_user_ns == 0 ? ": user.max_user_namespaces=0" : "");
		return true;
	case HP_NEED_UNPRIV_USERNS:
		if (h->userns_clone == 0)
			snprintf(why, cap,
			         "unprivileged user namespaces disabled "
			         "(kernel.unprivileged_userns_clone=0)");
		else if (h->max_user_ns == 0)
			snprintf(why, cap, "user namespaces disabled (user.max_user_namespaces=0)");
		else if (h->apparmor_userns == 1)
			snprintf(why, cap,
			         "AppArmor restricts unprivileged user namespaces "
			         "(kernel.apparmor_restrict_unprivileged_userns=1)");
		else if (!(u->end == HP_END_RETURNED && u->ret == 0)) {
			hostprobe_call_str(u, how, sizeof(how));
			snprintf(why, cap, "unshare(CLONE_NEWUSER) as nobody: %s", how);
		}
		return why[0] != '\0';
	case HP_NEED_SECCOMP:
		if (h->seccomp)
			return false;
		snprintf(why, cap, "kernel has no seccomp filter mode (CONFIG_SECCOMP_FILTER)");
		return true;
	case HP_NEED_CGROUPS:
		if (h->cg_mode != SB_CG_NONE)
			return false;
		snprintf(why, cap, "no writable memory+pids cgroups: %s",
		         h->cg_detail ? h->cg_detail : "unknown");
		return true;
	case HP_NEED_CG_V2:
		if (h->cg_mode == SB_CG_V2)
			return false;
		snprintf(why, cap, "host cgroups are %s, the check reads cgroup v2 files",
		         h->cg_mode == SB_CG_V1 ? "v1" : "unusable");
		return true;
	case HP_NEED_CG_CPU:
		if (h->cg_cpu)
			return false;
		snprintf(why, cap, "the cpu controller is not available to sandboxes here");
		return true;
	case HP_NEED_LANDLOCK:
		if (h->landlock_abi > 0)
			return false;
		snprintf(why, cap, "kernel has no Landlock (not in the lsm= boot parameter)");
		return true;
	case HP_NEED_LANDLOCK_SCOPE:
		if (h->landlock_abi >= 6)
			return false;
		snprintf(why, cap,
		         "Landlock ABI %d < 6: no signal and abstract-socket scopes (Linux 6.12)",
		         h->landlock_abi);
		return true;
	case HP_NEED_SECCOMP_NOTIFY:
		if (h->seccomp_notify)
			return false;
		snprintf(why, cap, "kernel lacks seccomp user notification (Linux 5.0)");
		return true;
	case HP_NEED_KTLS:
		if (h->ktls)
			return false;
		snprintf(why, cap,
		         "no tls kernel module (not in net.ipv4.tcp_available_ulp; "
		         "modprobe tls)");
		return true;
	case HP_NEED_IPV6_LO:
		if (h->ipv6_lo)
			return false;
		snprintf(why, cap, "cannot bind ::1 (IPv6 off on loopback)");
		return true;
	case HP_NEED_NFT:
		if (h->nft)
			return false;
		snprintf(why, cap, "no nft binary or no nf_tables in the kernel");
		return true;
	case HP_NEED_KVM:
		if (h->kvm)
			return false;
		snprintf(why, cap,
		         "no /dev/kvm backed by kvm_intel/kvm_amd (QEMU falls back to "
		         "TCG, several times slower)");
		return true;
	case HP_NEED_FINE_CLOCK:
		if (h->clock_res_ns > 0 && h->clock_res_ns <= 1000000)
			return false;
		snprintf(why, cap, "CLOCK_MONOTONIC resolution %ld ns is coarser than 1 ms",
		         h->clock_res_ns);
		return true;
	default:
		snprintf(why, cap, "unknown need");
		return true;
	}
}

enum hostprobe_verdict
hostprobe_judge_need(enum hostprobe_need n, const struct hostprobe *h, bool ok, char *why,
                     size_t cap)
{
	if (hostprobe_lacks(n, h, why, cap))
		return HP_SKIP;
	return ok ? HP_PASS : HP_FAIL;
}

int
hostprobe_call_parse(const char *s, struct hostprobe_call *out)
{
	static const char *const keys[] = {"end=", "ret=", "err=", "sig="};
	long v[4];
	const char *p = s;
	char *end;

	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		while (*p == ' ')
			p++;
		if (strncmp(p, keys[i], 4) != 0)
			return AL_E_INVAL;
		errno = 0;
		v[i] = strtol(p + 4, &end, 10);
		if (errno != 0 || end == p + 4 || (*end != ' ' && *end != '\0'))
			return AL_E_INVAL;
		p = end;
	}
	if (*p != '\0' || v[0] < HP_END_NOT_RUN || v[0] > HP_END_EXITED || v[2] < 0 ||
	    v[2] > 4095 || v[3] < 0 || v[3] > 64)
		return AL_E_INVAL;
	out->end = (enum hostprobe_end)v[0];
	out->ret = v[1];
	out->err = (int)v[2];
	out->sig = (int)v[3];
	return 0;
}

/* ------------------------------------------------------------------ report */

/* Which checks of the suite each need guards (tests/README.md has the full list). */
static const struct {
	enum hostprobe_need need;
	const char *checks;
} guards[] = {
    {HP_NEED_ROOT, "every sandbox-* test, interop-worker_sandbox, integration-tunnel_netns"},
    {HP_NEED_NAMESPACES, "every sandbox-* test"},
    {HP_NEED_SECCOMP, "every sandbox-* test"},
    {HP_NEED_CGROUPS, "sandbox-escapes/-warm/limits/lifecycle/spares/monitor"},
    {HP_NEED_UNPRIV_USERNS, "sandbox-unpriv; unshare -U in sandbox-escapes"},
    {HP_NEED_CG_V2,
     "the v2-only checks of sandbox-limits (memory.high, memory.swap.max, cpu.max, memory.events)"},
    {HP_NEED_CG_CPU, "cpu.max check in sandbox-limits"},
    {HP_NEED_NFT, "integration-tunnel_netns"},
    {HP_NEED_KVM, "sandbox-cgroup2-vm under TCG"},
};

int
hostprobe_report(const struct hostprobe *h, struct buf *out)
{
	char why[256], how[96];
	int r = 0;

	for (int i = 0; i < HP_CALL_COUNT; i++) {
		hostprobe_call_str(&h->calls[i], how, sizeof(how));
		r |= buf_addf(out, "probe %s (unprivileged): %s\n", hostprobe_call_name(i), how);
	}
	r |= buf_addf(out, "probe cgroups: %s%s\n",
	              h->cg_mode == SB_CG_V2   ? "v2"
	              : h->cg_mode == SB_CG_V1 ? "v1"
	                                       : "none",
	              h->cg_cpu ? " (memory, pids, cpu)" : "");
	r |= buf_addf(out, "probe landlock ABI: %d\n", h->landlock_abi);
	r |= buf_addf(out,
	              "probe sysctls: io_uring_disabled=%ld unprivileged_userns_clone=%ld "
	              "max_user_namespaces=%ld apparmor_restrict_unprivileged_userns=%ld\n",
	              h->io_uring_disabled, h->userns_clone, h->max_user_ns, h->apparmor_userns);
	r |= buf_addf(out, "probe seccomp: %s, user notification %s\n",
	              h->seccomp ? "filter" : "none", h->seccomp_notify ? "yes" : "no");
	r |= buf_addf(out, "probe kTLS %s, IPv6 loopback %s, nftables %s, kvm %s\n",
	              h->ktls ? "yes" : "no", h->ipv6_lo ? "yes" : "no", h->nft ? "yes" : "no",
	              h->kvm ? "yes" : "no");
	r |= buf_addf(out, "probe clock resolution: %ld ns\n", h->clock_res_ns);
	/* calls: as a working sandbox answers them; a fault of int 0x80 comes before the
	 * filter, so a host without that entry faults inside too */
	for (int i = 0; i < HP_CALL_COUNT; i++) {
		struct hostprobe_call in = refused((enum hostprobe_call_id)i);
		if (i == HP_CALL_I386 && no_entry(i, &h->calls[i]))
			in = h->calls[i];
		if (hostprobe_judge_call(i, h, &in, why, sizeof(why)) == HP_SKIP)
			r |= buf_addf(out, "suite would skip sandbox-escapes %s: %s\n",
			              hostprobe_call_name(i), why);
	}
	for (size_t i = 0; i < ARRAY_LEN(guards); i++)
		if (hostprobe_lacks(guards[i].need, h, why, sizeof(why)))
			r |= buf_addf(out, "suite would %s %s: %s\n",
			              guards[i].need == HP_NEED_KVM ? "run" : "skip",
			              guards[i].checks, why);
	return r ? AL_E_TOOBIG : 0;
}
