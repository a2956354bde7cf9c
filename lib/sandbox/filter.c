/* The workload's kernel filters: the seccomp deny-list (built once with libseccomp and
 * exported as raw BPF, so the child only needs one seccomp(2) call) and the Landlock
 * ruleset (raw syscalls; rights follow the ABI the running kernel reports). */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "err.h"
#include "sandbox_int.h"
#include "util.h"
#include "xalloc.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

/* Syscalls that fail with EPERM whatever their arguments (spec sandbox.md §8). */
static const char *const deny_eperm[] = {
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "setns",
    "open_by_handle_at",
    "name_to_handle_at",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "fanotify_init",
    "nfsservctl",
    "uselib",
    "_sysctl",
    "ustat",
    "sysfs",
    "vm86",
    "vm86old",
};

/* Namespace flags: any one of them in clone/unshare is refused. */
static const uint64_t ns_flags[] = {
    CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
};

/* personality(2) values allowed (the container runtimes' set): PER_LINUX, PER_LINUX32,
 * UNAME26, both, and 0xffffffff (a query). Flags like ADDR_NO_RANDOMIZE or
 * READ_IMPLIES_EXEC would turn off ASLR or NX for the caller's next exec. Sorted. */
static const uint32_t personality_ok[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffffu};

/* Socket families a workload may open: local sockets and IP (the sandbox's netns has only
 * lo, or the egress proxy's veth). Everything else is EAFNOSUPPORT: AF_VSOCK is not
 * network-namespaced (the host's and hypervisor's vsock ports would be reachable), and
 * AF_PACKET, AF_ALG, AF_KEY, AF_XDP and the rest are kernel surface no tool needs.
 * AF_NETLINK stays for NETLINK_ROUTE only (per-netns; getifaddrs, ip, glibc's
 * getaddrinfo AI_ADDRCONFIG use it); other netlink protocols (uevents, audit, sock_diag)
 * are EPROTONOSUPPORT. Sorted; AF_NETLINK must be the largest. */
static const unsigned socket_families_ok[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};

/* Mode bits a workload may never set: a setuid/setgid file left in the host workspace
 * runs as the worker's uid for whoever starts it there (the workspace mount is nosuid
 * only inside the sandbox). */
static const uint64_t setid_bits[] = {S_ISUID, S_ISGID};

#ifndef __NR_fchmodat2
#define AL_NR_FCHMODAT2 452 /* the same number on every architecture (Linux 6.6) */
#else
#define AL_NR_FCHMODAT2 __NR_fchmodat2
#endif
#ifndef __O_TMPFILE
#define __O_TMPFILE 020000000
#endif

static void *prog_mem;
static size_t prog_len;

/* The filter allows by default, so the complement of personality_ok is denied: each gap
 * as aligned power-of-two blocks, one masked-equality rule per block. The kernel reads
 * the argument as 32 bits; the masks leave the upper half out, as for ioctl. */
static int
deny_personality(scmp_filter_ctx ctx)
{
	size_t i;
	int r;
	for (i = 0; i + 1 < ARRAY_LEN(personality_ok); i++) {
		uint64_t lo = (uint64_t)personality_ok[i] + 1, hi = personality_ok[i + 1];
		/* [lo, hi): the largest block lo is aligned to that still fits, then on. */
		while (lo < hi) {
			uint64_t size = lo & (~lo + 1);
			if (lo == 0)
				size = 1ull << 32;
			while (lo + size > hi)
				size >>= 1;
			r = seccomp_rule_add(
			    ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
			    SCMP_A0(SCMP_CMP_MASKED_EQ, ~(size - 1) & 0xffffffffu, lo));
			if (r != 0)
				return r;
			lo += size;
		}
	}
	return 0;
}

/* socket(2) and socketpair(2): domain is arg 0, protocol arg 2. The kernel reads them as
 * int; the comparisons see all 64 bits, so a value with high bits set is above
 * AF_NETLINK and refused (fail closed). */
static int
deny_socket_families(scmp_filter_ctx ctx)
{
	static const int calls[] = {SCMP_SYS(socket), SCMP_SYS(socketpair)};
	const unsigned top = socket_families_ok[ARRAY_LEN(socket_families_ok) - 1];
	int r;
	for (size_t c = 0; c < ARRAY_LEN(calls); c++) {
		size_t k = 0;
		for (unsigned f = 0; f < top; f++) {
			if (k < ARRAY_LEN(socket_families_ok) && socket_families_ok[k] == f) {
				k++;
				continue;
			}
			if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), calls[c], 1,
			                          SCMP_A0(SCMP_CMP_EQ, f, 0))) != 0)
				return r;
		}
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), calls[c], 1,
		                          SCMP_A0(SCMP_CMP_GT, top, 0))) != 0)
			return r;
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPROTONOSUPPORT), calls[c], 2,
		                          SCMP_A0(SCMP_CMP_EQ, AF_NETLINK, 0),
		                          SCMP_A2(SCMP_CMP_NE, NETLINK_ROUTE, 0))) != 0)
			return r;
	}
	return 0;
}

/* EPERM for every way to give a file the setuid or setgid bit: chmod and its variants,
 * and the mode of a file or node being created. open/openat only look at the mode with
 * O_CREAT or O_TMPFILE (it is garbage otherwise). openat2 carries its mode in a struct
 * seccomp cannot read: ENOSYS, so callers fall back to openat (glibc's open never uses
 * it). Only the mode bits are compared, so high bits change nothing. */
static int
deny_setid_modes(scmp_filter_ctx ctx)
{
	static const struct {
		int nr;
		unsigned mode_arg;
	} plain[] = {
	    {SCMP_SYS(chmod), 1},   {SCMP_SYS(fchmod), 1}, {SCMP_SYS(fchmodat), 2},
	    {AL_NR_FCHMODAT2, 2},   {SCMP_SYS(creat), 1},  {SCMP_SYS(mknod), 1},
	    {SCMP_SYS(mknodat), 2}, {SCMP_SYS(mkdir), 1},  {SCMP_SYS(mkdirat), 2},
	};
	static const struct {
		int nr;
		unsigned flags_arg;
	} opens[] = {{SCMP_SYS(open), 1}, {SCMP_SYS(openat), 2}};
	static const uint64_t creating[] = {O_CREAT, __O_TMPFILE};
	int r;
	for (size_t b = 0; b < ARRAY_LEN(setid_bits); b++) {
		uint64_t bit = setid_bits[b];
		for (size_t i = 0; i < ARRAY_LEN(plain); i++) {
			if (plain[i].nr < 0)
				continue; /* not on this architecture (aarch64 has no chmod) */
			struct scmp_arg_cmp cmp = {plain[i].mode_arg, SCMP_CMP_MASKED_EQ, bit, bit};
			if ((r = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), plain[i].nr, 1,
			                                &cmp)) != 0)
				return r;
		}
		for (size_t i = 0; i < ARRAY_LEN(opens); i++) {
			if (opens[i].nr < 0)
				continue;
			for (size_t c = 0; c < ARRAY_LEN(creating); c++) {
				struct scmp_arg_cmp cmp[2] = {
				    {opens[i].flags_arg, SCMP_CMP_MASKED_EQ, creating[c],
				     creating[c]},
				    {opens[i].flags_arg + 1, SCMP_CMP_MASKED_EQ, bit, bit},
				};
				if ((r = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM),
				                                opens[i].nr, 2, cmp)) != 0)
					return r;
			}
		}
	}
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0);
}

static int
build(void)
{
	scmp_filter_ctx ctx;
	int r = AL_E_INTERNAL, fd = -1;
	size_t i;
	struct stat st;
	char *mem = NULL;

	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL)
		return -ENOMEM;
	/* Only the native ABI: i386 (int 0x80) and x32 calls kill the process. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) != 0)
		goto out;
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) != 0)
		goto out;
	for (i = 0; i < ARRAY_LEN(deny_eperm); i++) {
		int nr = seccomp_syscall_resolve_name(deny_eperm[i]);
		if (nr == __NR_SCMP_ERROR || nr < 0)
			continue; /* not on this architecture */
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) != 0)
			goto out;
	}
	/* clone3 passes flags in memory that seccomp cannot read: ENOSYS makes libc fall back
	 * to clone, whose flags we can inspect. */
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) != 0)
		goto out;
	for (i = 0; i < ARRAY_LEN(ns_flags); i++) {
		uint64_t f = ns_flags[i];
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
		                          SCMP_A0(SCMP_CMP_MASKED_EQ, f, f))) != 0)
			goto out;
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
		                          SCMP_A0(SCMP_CMP_MASKED_EQ, f, f))) != 0)
			goto out;
	}
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
	                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWTIME, CLONE_NEWTIME))) != 0)
		goto out;
	/* The kernel truncates the ioctl request to 32 bits: compare only those, or a caller
	 * could set high bits and slip TIOCSTI past an equality test. */
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
	                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI))) != 0)
		goto out;
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
	                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX))) != 0)
		goto out;
	if ((r = deny_personality(ctx)) != 0)
		goto out;
	if ((r = deny_socket_families(ctx)) != 0)
		goto out;
	if ((r = deny_setid_modes(ctx)) != 0)
		goto out;

	if ((fd = memfd_create("airlock-seccomp", MFD_CLOEXEC)) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = seccomp_export_bpf(ctx, fd)) != 0)
		goto out;
	if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > 65536 ||
	    st.st_size % (off_t)sizeof(struct sock_filter) != 0) {
		r = AL_E_INTERNAL;
		goto out;
	}
	mem = xmalloc((size_t)st.st_size);
	if (pread(fd, mem, (size_t)st.st_size, 0) != st.st_size) {
		r = AL_E_IO;
		goto out;
	}
	prog_mem = mem;
	prog_len = (size_t)st.st_size;
	mem = NULL;
	r = 0;
out:
	free(mem);
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return r;
}

int
sandbox_seccomp_prog(const void **prog, size_t *len)
{
	int r;
	if (prog_mem == NULL && (r = build()) != 0)
		return r;
	*prog = prog_mem;
	*len = prog_len;
	return 0;
}

int
sandbox_seccomp_load(const void *prog, size_t len)
{
	struct sock_fprog fp = {
	    .len = (unsigned short)(len / sizeof(struct sock_filter)),
	    .filter = (struct sock_filter *)prog,
	};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) != 0)
		return -errno;
	return 0;
}

/* ---- Landlock ---- */

#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif
#define LL_FS_TRUNCATE (1ULL << 14)
#define LL_FS_IOCTL_DEV (1ULL << 15)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)
#define LL_RULE_PATH_BENEATH 1

/* Newer than the installed uapi header; the kernel takes the size we pass. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

struct ll_path_beneath {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

int
sandbox_landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return v < 0 ? 0 : (int)v;
}

static int
ll_rule(int rs, const char *path, uint64_t access, uint64_t handled)
{
	struct ll_path_beneath pb;
	int fd = open(path, O_PATH | O_CLOEXEC), r = 0;
	struct stat st;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	/* Directory-only rights on a file are EINVAL: keep what applies to files. */
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		access &= LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
		          LANDLOCK_ACCESS_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV;
	pb.allowed_access = access & handled;
	pb.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0) != 0)
		r = -errno;
	close(fd);
	return r;
}

int
sandbox_landlock_apply(const struct sandbox_ops *ops, const char *const *extra_rw, size_t n_extra)
{
	int abi = sandbox_landlock_abi(), rs = -1, r;
	struct ll_ruleset_attr attr;
	size_t attr_size, i;
	uint64_t all, ro, rw;

	if (abi <= 0)
		return AL_E_UNSUPPORTED;
	all = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
	if (abi >= 2)
		all |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		all |= LL_FS_TRUNCATE;
	if (abi >= 5)
		all |= LL_FS_IOCTL_DEV;
	memset(&attr, 0, sizeof(attr));
	attr.handled_access_fs = all;
	attr_size = sizeof(uint64_t);
	if (abi >= 4)
		attr_size = 2 * sizeof(uint64_t); /* TCP stays unhandled: netns has only lo */
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}
	rs = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (rs < 0)
		return -errno;
	ro =
	    LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
	rw = all;
	if ((r = ll_rule(rs, "/", ro, all)) != 0)
		goto out;
	if ((r = ll_rule(rs, "/dev",
	                 ro | LANDLOCK_ACCESS_FS_WRITE_FILE | LL_FS_IOCTL_DEV | LL_FS_TRUNCATE,
	                 all)) != 0)
		goto out;
	if ((r = ll_rule(rs, "/proc", ro | LANDLOCK_ACCESS_FS_WRITE_FILE, all)) != 0)
		goto out;
	for (i = 0; i < ops->n; i++) {
		const struct sandbox_op *o = &ops->v[i];
		if (!(o->flags & SB_OPF_RW))
			continue;
		if ((r = ll_rule(rs, o->dst, rw, all)) != 0)
			goto out;
	}
	for (i = 0; i < n_extra; i++)
		if ((r = ll_rule(rs, extra_rw[i], rw, all)) != 0)
			goto out;
	if (syscall(SYS_landlock_restrict_self, rs, 0) != 0) {
		r = -errno;
		goto out;
	}
	r = 0;
out:
	close(rs);
	return r;
}
