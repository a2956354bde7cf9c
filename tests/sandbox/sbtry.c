/* sbtry: escape attempts run INSIDE a sandbox by tests/sandbox/sandbox_test.c. Each
 * attempt prints "BLOCKED <what>: <how>" or "ESCAPED <what>: <how>"; exit 0 when every
 * attempt of the mode was blocked, 1 when any escaped, 2 on usage errors. Attempts whose
 * meaning depends on the host (lib/sandbox/hostprobe.h calls: the 32-bit ABIs, io_uring,
 * user namespaces) print "CALL <id> <result>" instead: the driver made the same call on
 * the host and judges both (hostprobe_judge_call). The list of attempts is
 * tests/sandbox/README.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostprobe.h"

static int escaped;

static long
num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *end == '\0' ? v : -1;
}

static void
verdict(int ok, const char *what, const char *how)
{
	printf("%s %s: %s\n", ok ? "BLOCKED" : "ESCAPED", what, how);
	if (!ok)
		escaped = 1;
}

/* A call whose verdict needs the host's answer to the same call (sandbox_test judges). */
static void
host_dependent(enum hostprobe_call_id id)
{
	struct hostprobe_call c;
	char res[96];
	hostprobe_call_run(id, &c);
	hostprobe_call_fmt(&c, res, sizeof(res));
	printf("CALL %d %s\n", (int)id, res);
}

/* A syscall that must fail with want_errno. Children made by an unexpected success of a
 * clone-like call leave at once. */
static void
expect_errno(const char *name, long r, int want)
{
	char how[96];
	int e = errno;
	snprintf(how, sizeof(how), "ret=%ld errno=%s", r, r < 0 ? strerror(e) : "-");
	verdict(r < 0 && e == want, name, how);
}

#define TRY(name, call, want)                                                                      \
	do {                                                                                       \
		errno = 0;                                                                         \
		expect_errno(name, (long)(call), want);                                            \
	} while (0)

/* Socket families (issue 11, finding 7): only AF_UNIX, AF_INET(6) and route netlink. */
static void
try_socket_families(void)
{
	static const struct {
		const char *name;
		long domain;
		int type, protocol, want;
	} no[] = {
	    {"socket(AF_VSOCK)", 40 /* AF_VSOCK */, SOCK_STREAM, 0, EAFNOSUPPORT},
	    {"socket(AF_VSOCK, DGRAM)", 40, SOCK_DGRAM, 0, EAFNOSUPPORT},
	    {"socket(AF_PACKET)", 17 /* AF_PACKET */, SOCK_RAW, 0, EAFNOSUPPORT},
	    {"socket(AF_ALG)", 38 /* AF_ALG */, SOCK_SEQPACKET, 0, EAFNOSUPPORT},
	    {"socket(AF_KEY)", 15 /* AF_KEY */, SOCK_RAW, 2, EAFNOSUPPORT},
	    {"socket(AF_XDP)", 44 /* AF_XDP */, SOCK_RAW, 0, EAFNOSUPPORT},
	    {"socket(AF_UNSPEC)", 0, SOCK_STREAM, 0, EAFNOSUPPORT},
	    {"socket(AF_VSOCK|1<<32)", (1l << 32) | 40, SOCK_STREAM, 0, EAFNOSUPPORT},
	    {"socket(AF_UNIX|1<<32)", (1l << 32) | AF_UNIX, SOCK_STREAM, 0, EAFNOSUPPORT},
	    {"socket(AF_NETLINK, KOBJECT_UEVENT)", 16 /* AF_NETLINK */, SOCK_DGRAM, 15,
	     EPROTONOSUPPORT},
	    {"socket(AF_NETLINK, AUDIT)", 16, SOCK_RAW, 9, EPROTONOSUPPORT},
	    {"socket(AF_NETLINK, SOCK_DIAG)", 16, SOCK_RAW, 4, EPROTONOSUPPORT},
	};
	int sv[2];
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		TRY(no[i].name, syscall(SYS_socket, no[i].domain, no[i].type, no[i].protocol),
		    no[i].want);
		char name[64];
		snprintf(name, sizeof(name), "socketpair%s", no[i].name + 6);
		TRY(name, syscall(SYS_socketpair, no[i].domain, no[i].type, no[i].protocol, sv),
		    no[i].want);
	}
	/* what a sandbox needs still works */
	int u = socket(AF_UNIX, SOCK_STREAM, 0), in = socket(AF_INET, SOCK_STREAM, 0);
	int nl = socket(AF_NETLINK, SOCK_RAW, 0 /* NETLINK_ROUTE */);
	int pr = socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	verdict(u >= 0 && in >= 0 && nl >= 0 && pr == 0, "allowed socket families stay usable",
	        "AF_UNIX, AF_INET, NETLINK_ROUTE, socketpair(AF_UNIX)");
	close(u);
	close(in);
	close(nl);
	if (pr == 0) {
		close(sv[0]);
		close(sv[1]);
	}
}

/* setuid/setgid bits (issue 11, finding 8): every way to set them is EPERM, and a file
 * asked for with such a mode ends up without them. dir is writable. */
static void
try_setid_modes(const char *dir)
{
	char f[256], g[256], d[256], n[256];
	struct stat st;
	int fd;
	snprintf(f, sizeof(f), "%s/sbtry-suid", dir);
	snprintf(g, sizeof(g), "%s/sbtry-suid-new", dir);
	snprintf(d, sizeof(d), "%s/sbtry-sgid-dir", dir);
	snprintf(n, sizeof(n), "%s/sbtry-fifo", dir);
	unlink(f);
	unlink(g);
	unlink(n);
	rmdir(d);
	fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	if (fd < 0) {
		verdict(0, "setid: create a plain file", strerror(errno));
		return;
	}
	TRY("chmod 4755", chmod(f, 04755), EPERM);
	TRY("chmod 2755", chmod(f, 02755), EPERM);
	TRY("chmod 6755|1<<32", syscall(SYS_chmod, f, (1ul << 32) | 06755), EPERM);
	TRY("fchmod 4755", fchmod(fd, 04755), EPERM);
	TRY("fchmodat 4755", syscall(SYS_fchmodat, AT_FDCWD, f, 04755), EPERM);
	errno = 0;
	long r = syscall(452 /* fchmodat2 */, AT_FDCWD, f, 04755, 0);
	verdict(r < 0 && (errno == EPERM || errno == ENOSYS), "fchmodat2 4755",
	        r < 0 ? strerror(errno) : "succeeded");
	TRY("open(O_CREAT, 04755)", open(g, O_WRONLY | O_CREAT, 04755), EPERM);
	TRY("openat(O_CREAT, 02755)", syscall(SYS_openat, AT_FDCWD, g, O_WRONLY | O_CREAT, 02755),
	    EPERM);
	TRY("creat 04755", creat(g, 04755), EPERM);
	TRY("open(O_TMPFILE, 04755)", open(dir, O_RDWR | O_TMPFILE, 04755), EPERM);
	TRY("openat2", syscall(437 /* openat2 */, AT_FDCWD, g, NULL, 0), ENOSYS);
	TRY("mknod fifo 04644", mknod(n, S_IFIFO | 04644, 0), EPERM);
	TRY("mkdir 02755", mkdir(d, 02755), EPERM);
	/* ordinary modes still work, and nothing above left a bit behind */
	verdict(fchmod(fd, 0700) == 0 && chmod(f, 0755) == 0, "setid: plain chmod works",
	        "0700, 0755");
	verdict(stat(f, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)) == 0, "setid: file mode",
	        "no setuid/setgid bit");
	verdict(stat(g, &st) != 0, "setid: no file created with a setid mode", g);
	close(fd);
	unlink(f);
}

static void
mode_syscalls(void)
{
	struct clone_args ca;
	struct iovec iov = {0};
	char c = 'x';
	long r;

	TRY("mount", mount("none", "/tmp", "tmpfs", 0, NULL), EPERM);
	TRY("umount2", umount2("/proc", MNT_DETACH), EPERM);
	TRY("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"), EPERM);
	TRY("chroot", chroot("/tmp"), EPERM);
	TRY("move_mount", syscall(SYS_move_mount, -1, "", -1, "", 0), EPERM);
	TRY("open_tree", syscall(SYS_open_tree, -1, "/", 0), EPERM);
	TRY("fsopen", syscall(SYS_fsopen, "tmpfs", 0), EPERM);
	TRY("fsconfig", syscall(SYS_fsconfig, -1, 0, NULL, NULL, 0), EPERM);
	TRY("fsmount", syscall(SYS_fsmount, -1, 0, 0), EPERM);
	TRY("fspick", syscall(SYS_fspick, -1, "/", 0), EPERM);
	TRY("mount_setattr", syscall(SYS_mount_setattr, -1, "/", 0, NULL, 0), EPERM);
	TRY("ptrace", ptrace(PTRACE_TRACEME, 0, NULL, NULL), EPERM);
	TRY("process_vm_readv", syscall(SYS_process_vm_readv, 1, &iov, 1, &iov, 1, 0), EPERM);
	TRY("process_vm_writev", syscall(SYS_process_vm_writev, 1, &iov, 1, &iov, 1, 0), EPERM);
	TRY("pidfd_getfd", syscall(SYS_pidfd_getfd, -1, 0, 0), EPERM);
	TRY("bpf", syscall(SYS_bpf, 0, NULL, 0), EPERM);
	TRY("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
	TRY("userfaultfd", syscall(SYS_userfaultfd, 0), EPERM);
	TRY("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0), EPERM);
	TRY("add_key", syscall(SYS_add_key, "user", "x", "y", 1, -2), EPERM);
	TRY("request_key", syscall(SYS_request_key, "user", "x", NULL, 0), EPERM);
	TRY("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0), EPERM);
	TRY("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0), EPERM);
	host_dependent(HP_CALL_IO_URING); /* kernel.io_uring_disabled may refuse it too */
	TRY("io_uring_enter", syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0), EPERM);
	TRY("io_uring_register", syscall(SYS_io_uring_register, -1, 0, NULL, 0), EPERM);
	TRY("setns", syscall(SYS_setns, -1, 0), EPERM);
	TRY("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0), EPERM);
	TRY("name_to_handle_at", syscall(SYS_name_to_handle_at, -1, "/", NULL, NULL, 0), EPERM);
	TRY("init_module", syscall(SYS_init_module, NULL, 0, ""), EPERM);
	TRY("finit_module", syscall(SYS_finit_module, -1, "", 0), EPERM);
	TRY("delete_module", syscall(SYS_delete_module, "x", 0), EPERM);
	TRY("swapon", syscall(SYS_swapon, "/nonexistent", 0), EPERM);
	TRY("swapoff", syscall(SYS_swapoff, "/nonexistent"), EPERM);
	TRY("reboot", syscall(SYS_reboot, 0, 0, 0, NULL), EPERM);
	TRY("acct", syscall(SYS_acct, NULL), EPERM);
	TRY("quotactl", syscall(SYS_quotactl, 0, NULL, 0, NULL), EPERM);
	TRY("syslog", syscall(SYS_syslog, 10, NULL, 0), EPERM);
	TRY("settimeofday", syscall(SYS_settimeofday, NULL, NULL), EPERM);
	TRY("clock_settime", syscall(SYS_clock_settime, CLOCK_REALTIME, NULL), EPERM);
	TRY("iopl", syscall(SYS_iopl, 3), EPERM);
	TRY("ioperm", syscall(SYS_ioperm, 0, 1, 1), EPERM);
	host_dependent(HP_CALL_UNSHARE_USER); /* as may the host's userns settings */
	TRY("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS), EPERM);
	TRY("unshare(CLONE_NEWNET)", unshare(CLONE_NEWNET), EPERM);
	host_dependent(HP_CALL_CLONE_USER);
	memset(&ca, 0, sizeof(ca));
	ca.flags = CLONE_NEWUSER;
	ca.exit_signal = SIGCHLD;
	errno = 0;
	r = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r == 0)
		_exit(0);
	expect_errno("clone3", r, ENOSYS);
	TRY("ioctl(TIOCSTI)", ioctl(0, TIOCSTI, &c), EPERM);
	TRY("ioctl(TIOCSTI|1<<32)", syscall(SYS_ioctl, 0, (unsigned long)TIOCSTI | (1ul << 32), &c),
	    EPERM);
	TRY("ioctl(TIOCLINUX)", ioctl(0, TIOCLINUX, &c), EPERM);
	TRY("mknod(/tmp/null)", mknod("/tmp/null", S_IFCHR | 0666, makedev(1, 3)), EPERM);
	/* personality: ASLR off, READ_IMPLIES_EXEC, other flags, high bits set; the allowed
	 * values still work (a query returns the current one). */
	TRY("personality(ADDR_NO_RANDOMIZE)", syscall(SYS_personality, 0x0040000), EPERM);
	TRY("personality(READ_IMPLIES_EXEC)", syscall(SYS_personality, 0x0400000), EPERM);
	TRY("personality(ADDR_COMPAT_LAYOUT)", syscall(SYS_personality, 0x0200000), EPERM);
	TRY("personality(MMAP_PAGE_ZERO)", syscall(SYS_personality, 0x0100000), EPERM);
	TRY("personality(PER_BSD)", syscall(SYS_personality, 0x6), EPERM);
	TRY("personality(0xfffffffe)", syscall(SYS_personality, 0xfffffffeul), EPERM);
	TRY("personality(ADDR_NO_RANDOMIZE|1<<32)",
	    syscall(SYS_personality, (1ul << 32) | 0x0040000), EPERM);
	errno = 0;
	r = syscall(SYS_personality, 0xfffffffful);
	verdict(r == 0 && syscall(SYS_personality, 0x0ul) == 0 &&
	            syscall(SYS_personality, 0x8ul) == 0 &&
	            syscall(SYS_personality, 0xfffffffful) == 0x8 &&
	            syscall(SYS_personality, 0x0ul) == 0x8,
	        "personality stays usable", "query, PER_LINUX, PER_LINUX32 allowed");
	try_socket_families();
	try_setid_modes("/tmp");
}

/* The i386 (int 0x80) and x32 ABIs must kill the caller (seccomp's arch check) wherever
 * the host offers them; a host without them faults or says ENOSYS outside too. */
static void
mode_abi(void)
{
	host_dependent(HP_CALL_I386);
	host_dependent(HP_CALL_X32);
}

static int
status_field(const char *name, char *out, size_t cap)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	int found = 0;
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ':') {
			char *v = line + strlen(name) + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, cap, "%s", v);
			found = 1;
		}
	fclose(f);
	return found;
}

static void
mode_status(void)
{
	static const char *const zero[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
	char v[128];
	size_t i;
	for (i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
		int ok = status_field(zero[i], v, sizeof(v)) && strcmp(v, "0000000000000000") == 0;
		verdict(ok, zero[i], v);
	}
	verdict(status_field("NoNewPrivs", v, sizeof(v)) && strcmp(v, "1") == 0, "no_new_privs", v);
	verdict(status_field("Seccomp", v, sizeof(v)) && strcmp(v, "2") == 0, "seccomp filter", v);
	snprintf(v, sizeof(v), "uid=%d gid=%d", (int)getuid(), (int)getgid());
	verdict(getuid() == 1000 && geteuid() == 1000 && getgid() == 1000, "unprivileged uid", v);
	{
		struct statvfs sv;
		verdict(statvfs("/usr", &sv) == 0 && (sv.f_flag & ST_NOSUID) &&
		            (sv.f_flag & ST_RDONLY),
		        "/usr ro,nosuid", "statvfs");
	}
	verdict(access("/sys/kernel", F_OK) != 0, "/sys hidden", "no /sys");
}

static void
mode_read(int argc, char **argv)
{
	int i;
	for (i = 0; i < argc; i++) {
		char how[160];
		int fd = open(argv[i], O_RDONLY);
		struct stat st;
		int e = errno;
		snprintf(how, sizeof(how), "%s: %s", argv[i], fd < 0 ? strerror(e) : "opened");
		if (fd >= 0)
			close(fd);
		verdict(fd < 0 && stat(argv[i], &st) != 0, "read outside", how);
	}
}

static void
mode_write(int argc, char **argv)
{
	int i;
	for (i = 0; i < argc; i++) {
		char how[160];
		int fd = open(argv[i], O_WRONLY | O_CREAT | O_APPEND, 0644);
		int e = errno;
		snprintf(how, sizeof(how), "%s: %s", argv[i], fd < 0 ? strerror(e) : "opened");
		if (fd >= 0)
			close(fd);
		verdict(fd < 0, "write outside", how);
	}
}

static int
write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), r;
	if (fd < 0)
		return -1;
	r = write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
	close(fd);
	return r;
}

/* /proc: pid 1 is non-dumpable, kernel knobs are read-only, kernel files masked, and no
 * process outside the sandbox is visible (marker = a comm or argv word of one). */
static void
mode_proc(const char *marker)
{
	char buf[4096], how[160];
	int fd;
	ssize_t n;
	DIR *d;
	struct dirent *e;
	int seen = 0, count = 0;

	n = readlink("/proc/1/root", buf, sizeof(buf) - 1);
	snprintf(how, sizeof(how), "readlink: %s", n < 0 ? strerror(errno) : "allowed");
	verdict(n < 0, "/proc/1/root", how);
	fd = open("/proc/1/environ", O_RDONLY);
	verdict(fd < 0, "/proc/1/environ", fd < 0 ? strerror(errno) : "opened");
	if (fd >= 0)
		close(fd);
	fd = open("/proc/1/mem", O_RDONLY);
	verdict(fd < 0, "/proc/1/mem", fd < 0 ? strerror(errno) : "opened");
	if (fd >= 0)
		close(fd);
	verdict(write_file("/proc/sys/kernel/hostname", "pwned") != 0, "/proc/sys write",
	        strerror(errno));
	verdict(write_file("/proc/sysrq-trigger", "h") != 0, "/proc/sysrq-trigger",
	        strerror(errno));
	fd = open("/proc/kcore", O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	verdict(n <= 0, "/proc/kcore", "masked");
	if (fd >= 0)
		close(fd);
	fd = open("/proc/keys", O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	verdict(n <= 0, "/proc/keys", "masked");
	if (fd >= 0)
		close(fd);
	if ((d = opendir("/proc")) != NULL) {
		while ((e = readdir(d)) != NULL) {
			char p[300];
			if (e->d_name[0] < '0' || e->d_name[0] > '9')
				continue;
			count++;
			snprintf(p, sizeof(p), "/proc/%s/cmdline", e->d_name);
			if ((fd = open(p, O_RDONLY)) >= 0) {
				n = read(fd, buf, sizeof(buf) - 1);
				close(fd);
				for (ssize_t i = 0; i < n; i++)
					if (buf[i] == '\0')
						buf[i] = ' ';
				buf[n > 0 ? n : 0] = '\0';
				if (marker && strstr(buf, marker) && !strstr(buf, "sbtry"))
					seen = 1;
			}
			snprintf(p, sizeof(p), "/proc/%s/comm", e->d_name);
			if ((fd = open(p, O_RDONLY)) >= 0) {
				n = read(fd, buf, sizeof(buf) - 1);
				close(fd);
				buf[n > 0 ? n : 0] = '\0';
				if (marker && strstr(buf, marker))
					seen = 1;
			}
		}
		closedir(d);
	}
	snprintf(how, sizeof(how), "%d processes visible", count);
	verdict(!seen && count < 20, "outside processes", how);
}

static void
mode_forkbomb(long limit)
{
	pid_t kids[65536];
	long n = 0, i;
	int e = 0;
	char how[96];
	while (n < (long)(sizeof(kids) / sizeof(kids[0]))) {
		pid_t p = fork();
		if (p == 0) {
			pause();
			_exit(0);
		}
		if (p < 0) {
			e = errno;
			break;
		}
		kids[n++] = p;
	}
	snprintf(how, sizeof(how), "%ld forks then %s", n, e ? strerror(e) : "no failure");
	verdict(e == EAGAIN && n < limit, "fork bomb", how);
	for (i = 0; i < n; i++)
		kill(kids[i], SIGKILL);
	for (i = 0; i < n; i++)
		waitpid(kids[i], NULL, 0);
}

static void
mode_memhog(long mb)
{
	long i;
	for (i = 0; i < mb; i++) {
		char *p =
		    mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			break;
		memset(p, (int)i, 1 << 20);
	}
	/* Still alive: the limit did not hold (or mmap failed first). */
	printf("ESCAPED memory bomb: touched %ld MiB\n", i);
	exit(1);
}

static void
mode_diskfill(const char *path, long mb)
{
	static char chunk[1 << 20];
	long written = 0;
	int fd, e = 0;
	char how[128];
	signal(SIGXFSZ, SIG_IGN);
	memset(chunk, 'x', sizeof(chunk));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		verdict(0, "disk fill", strerror(errno));
		return;
	}
	while (written < mb) {
		ssize_t n = write(fd, chunk, sizeof(chunk));
		if (n < 0) {
			e = errno;
			break;
		}
		if (n < (ssize_t)sizeof(chunk)) {
			n = write(fd, chunk, sizeof(chunk));
			e = n < 0 ? errno : 0;
			break;
		}
		written++;
	}
	close(fd);
	unlink(path);
	snprintf(how, sizeof(how), "%s: %ld MiB then %s", path, written, e ? strerror(e) : "-");
	verdict((e == EFBIG || e == ENOSPC) && written < mb, "disk fill", how);
}

static void
mode_net(int port, const char *abstract)
{
	struct sockaddr_in a;
	struct ifaddrs *ifs, *i;
	char how[128];
	int s, r, others = 0;

	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(53);
	inet_pton(AF_INET, "1.1.1.1", &a.sin_addr);
	r = connect(s, (struct sockaddr *)&a, sizeof(a));
	snprintf(how, sizeof(how), "1.1.1.1:53: %s", r < 0 ? strerror(errno) : "connected");
	verdict(r < 0, "internet", how);
	close(s);

	s = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	r = connect(s, (struct sockaddr *)&a, sizeof(a));
	snprintf(how, sizeof(how), "host 127.0.0.1:%d: %s", port,
	         r < 0 ? strerror(errno) : "connected");
	verdict(r < 0, "host loopback", how);
	close(s);

	s = socket(AF_INET, SOCK_DGRAM, 0);
	a.sin_port = htons(9);
	inet_pton(AF_INET, "169.254.169.254", &a.sin_addr);
	r = connect(s, (struct sockaddr *)&a, sizeof(a));
	snprintf(how, sizeof(how), "169.254.169.254: %s", r < 0 ? strerror(errno) : "routed");
	verdict(r < 0, "metadata", how);
	close(s);

	if (abstract != NULL) {
		struct sockaddr_un u;
		memset(&u, 0, sizeof(u));
		u.sun_family = AF_UNIX;
		snprintf(u.sun_path + 1, sizeof(u.sun_path) - 1, "%s", abstract);
		s = socket(AF_UNIX, SOCK_STREAM, 0);
		r = connect(
		    s, (struct sockaddr *)&u,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract)));
		snprintf(how, sizeof(how), "@%s: %s", abstract,
		         r < 0 ? strerror(errno) : "connected");
		verdict(r < 0, "host abstract socket", how);
		close(s);
	}
	if (getifaddrs(&ifs) == 0) {
		for (i = ifs; i; i = i->ifa_next)
			if (strcmp(i->ifa_name, "lo") != 0)
				others++;
		freeifaddrs(ifs);
	}
	snprintf(how, sizeof(how), "%d non-lo interface entries", others);
	verdict(others == 0, "interfaces", how);
	/* local servers still work: bind + connect on the sandbox's own lo */
	s = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_port = 0;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	r = bind(s, (struct sockaddr *)&a, sizeof(a));
	if (r == 0)
		r = listen(s, 1);
	verdict(r == 0, "lo usable", r == 0 ? "bind+listen ok" : strerror(errno));
	close(s);
}

extern char **environ;

static void
mode_env(const char *secret)
{
	char **e;
	int bad = 0;
	for (e = environ; *e; e++)
		if (strncmp(*e, "ANTHROPIC_", 10) == 0 || (secret && strstr(*e, secret)))
			bad = 1;
	verdict(!bad, "worker environment", bad ? "leaked" : "absent");
	verdict(getenv("HOME") && strcmp(getenv("HOME"), "/workspace") == 0, "HOME", "/workspace");
}

static void
mode_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int extra = 0;
	char how[64];
	while (d && (e = readdir(d)) != NULL) {
		int fd = (int)num(e->d_name);
		if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
			continue;
		extra++;
	}
	if (d)
		closedir(d);
	snprintf(how, sizeof(how), "%d inherited fds beyond stdio", extra);
	verdict(extra == 0, "inherited fds", how);
}

/* Detaches a grandchild that tries to outlive the session; prints its pid. */
static void
mode_sleeper(void)
{
	pid_t p = fork();
	if (p == 0) {
		setsid();
		if (fork() == 0) {
			printf("%d\n", (int)getpid());
			fflush(stdout);
			for (int i = 0; i < 3; i++)
				close(i);
			for (;;)
				pause();
		}
		_exit(0);
	}
	waitpid(p, NULL, 0);
}

/* Signals to pid 1 from inside are ignored: the sandbox must survive this. */
static void
mode_killinit(void)
{
	int r1 = kill(1, SIGKILL), r2 = kill(1, SIGTERM);
	printf("kill(1) returned %d %d\n", r1, r2);
	verdict(1, "kill pid 1", "sent; the driver checks pid 1 survived");
}

int
main(int argc, char **argv)
{
	const char *m;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return 2;
	m = argv[1];
	if (strcmp(m, "syscalls") == 0)
		mode_syscalls();
	else if (strcmp(m, "abi") == 0)
		mode_abi();
	else if (strcmp(m, "status") == 0)
		mode_status();
	else if (strcmp(m, "read") == 0)
		mode_read(argc - 2, argv + 2);
	else if (strcmp(m, "write") == 0)
		mode_write(argc - 2, argv + 2);
	else if (strcmp(m, "proc") == 0)
		mode_proc(argc > 2 ? argv[2] : NULL);
	else if (strcmp(m, "forkbomb") == 0 && argc > 2)
		mode_forkbomb(num(argv[2]));
	else if (strcmp(m, "memhog") == 0 && argc > 2)
		mode_memhog(num(argv[2]));
	else if (strcmp(m, "diskfill") == 0 && argc > 3)
		mode_diskfill(argv[2], num(argv[3]));
	else if (strcmp(m, "net") == 0 && argc > 2)
		mode_net((int)num(argv[2]), argc > 3 ? argv[3] : NULL);
	else if (strcmp(m, "env") == 0)
		mode_env(argc > 2 ? argv[2] : NULL);
	else if (strcmp(m, "fds") == 0)
		mode_fds();
	else if (strcmp(m, "sleeper") == 0)
		mode_sleeper();
	else if (strcmp(m, "killinit") == 0)
		mode_killinit();
	else
		return 2;
	return escaped;
}
