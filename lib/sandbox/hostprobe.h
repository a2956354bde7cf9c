/* Host probes: what this machine offers OUTSIDE any sandbox (i386/x32 syscall entries,
 * cgroups, Landlock, io_uring and user-namespace sysctls, seccomp notify, kTLS, IPv6 on
 * lo, nftables, /dev/kvm, clock resolution), and the pure verdicts that turn "what the
 * host does" plus "what the sandbox did" into pass / fail / skip. The adversarial suite
 * (tests/sandbox) and `airlock worker check` share them (docs/lib/sandbox.md "Host
 * probes", tests/README.md). */
#ifndef AL_HOSTPROBE_H
#define AL_HOSTPROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* How one attempted call ended. */
enum hostprobe_end {
	HP_END_NOT_RUN = 0, /* not attempted (or the probe itself failed) */
	HP_END_RETURNED,    /* the call returned: ret, err */
	HP_END_SIGNALED,    /* the process died of sig (SIGSYS: seccomp; SIGSEGV: no entry) */
	HP_END_EXITED,      /* the process exited with code status without making the call */
};

struct hostprobe_call {
	enum hostprobe_end end;
	long ret; /* HP_END_RETURNED: the return value */
	int err;  /* HP_END_RETURNED with ret < 0: errno */
	int sig;  /* HP_END_SIGNALED: the signal */
};

/* Calls a sandbox must refuse; the host runs each one too, unprivileged, to learn whether
 * the sandbox's refusal can be told apart from the host's own answer. */
enum hostprobe_call_id {
	HP_CALL_I386,         /* int $0x80 getpid: the sandbox must kill it (SIGSYS) */
	HP_CALL_X32,          /* getpid | __X32_SYSCALL_BIT: killed (SIGSYS) */
	HP_CALL_IO_URING,     /* io_uring_setup(1, NULL): EPERM */
	HP_CALL_UNSHARE_USER, /* unshare(CLONE_NEWUSER): EPERM */
	HP_CALL_CLONE_USER,   /* clone(CLONE_NEWUSER): EPERM */
	HP_CALL_COUNT
};

/* Preconditions of checks: without them a check is not applicable on this host. */
enum hostprobe_need {
	HP_NEED_ROOT,           /* uid 0: cgroups, a uid per sandbox */
	HP_NEED_NAMESPACES,     /* this process may create user+mount+pid+net namespaces */
	HP_NEED_UNPRIV_USERNS,  /* an unprivileged process may create a user namespace */
	HP_NEED_SECCOMP,        /* seccomp filter mode */
	HP_NEED_CGROUPS,        /* a writable memory+pids cgroup hierarchy (v1 or v2) */
	HP_NEED_CG_V2,          /* cgroup v2 (memory.events, memory.high, cgroup.kill) */
	HP_NEED_CG_CPU,         /* the cpu controller for sandboxes */
	HP_NEED_LANDLOCK,       /* Landlock ABI >= 1 */
	HP_NEED_LANDLOCK_SCOPE, /* Landlock ABI >= 6 (signal and abstract-socket scopes) */
	HP_NEED_SECCOMP_NOTIFY, /* SECCOMP_RET_USER_NOTIF */
	HP_NEED_KTLS,           /* the tls ULP (kernel module) */
	HP_NEED_IPV6_LO,        /* ::1 can be bound */
	HP_NEED_NFT,            /* nft and the kernel's nf_tables */
	HP_NEED_KVM,            /* /dev/kvm backed by kvm_intel/kvm_amd */
	HP_NEED_FINE_CLOCK,     /* CLOCK_MONOTONIC resolution <= 1 ms */
	HP_NEED_COUNT
};

struct hostprobe {
	struct hostprobe_call calls[HP_CALL_COUNT];
	bool root;
	int namespaces_err;     /* 0: namespaces can be made; else the errno */
	long userns_clone;      /* kernel.unprivileged_userns_clone; -1 when absent */
	long max_user_ns;       /* user.max_user_namespaces; -1 when absent */
	long apparmor_userns;   /* kernel.apparmor_restrict_unprivileged_userns; -1 absent */
	long io_uring_disabled; /* kernel.io_uring_disabled; -1 when absent */
	bool seccomp;
	bool seccomp_notify;
	int cg_mode;           /* 0 none, 1 v1, 2 v2 (enum sandbox_cg_mode) */
	const char *cg_detail; /* why none, or which (static) */
	bool cg_cpu;
	int landlock_abi; /* 0 when absent */
	bool ktls;
	bool ipv6_lo;
	bool nft;
	bool kvm;
	long clock_res_ns; /* CLOCK_MONOTONIC; -1 unknown */
};

enum hostprobe_verdict { HP_PASS, HP_FAIL, HP_SKIP };

/* Runs every probe (a few forks, no lasting change: cgroups are only looked at). */
void hostprobe_run(struct hostprobe *h);
/* Runs one call here, in a child (dropped to nobody when root, as a sandbox has no
 * privilege); what it did goes to *out. Also what sbtry does inside the sandbox. */
void hostprobe_call_run(enum hostprobe_call_id id, struct hostprobe_call *out);

/* What sandbox creation does first: unshare(CLONE_NEWUSER|NEWNS|NEWPID|NEWNET) in a
 * child, with this process's privileges. 0, or the errno. */
int hostprobe_namespaces(void);
/* A number from /proc/sys (path in full); -1 when absent or not a number. */
long hostprobe_sysctl(const char *path);

/* Pure: a refused call. inside is what the call did in the sandbox, h->calls[id] what it
 * did on the host. PASS: refused inside as the sandbox refuses it, and the host answers
 * differently; SKIP (*why): the host gives that same answer or has no such entry at all;
 * FAIL: anything else (the call ran inside). */
enum hostprobe_verdict hostprobe_judge_call(enum hostprobe_call_id id, const struct hostprobe *h,
                                            const struct hostprobe_call *inside, char *why,
                                            size_t cap);
/* Pure: whether h lacks what a check needs; the reason goes to why. */
bool hostprobe_lacks(enum hostprobe_need n, const struct hostprobe *h, char *why, size_t cap);
/* Pure: a check that needs n and came out ok: SKIP (reason in why) when h lacks n, else
 * PASS or FAIL by ok. */
enum hostprobe_verdict hostprobe_judge_need(enum hostprobe_need n, const struct hostprobe *h,
                                            bool ok, char *why, size_t cap);

const char *hostprobe_call_name(enum hostprobe_call_id id);
const char *hostprobe_need_name(enum hostprobe_need n);
/* What sbtry prints for a call and the driver parses back: "end=<n> ret=<r> err=<e>
 * sig=<s>" (numbers only). parse: 0 or AL_E_INVAL. */
void hostprobe_call_fmt(const struct hostprobe_call *c, char *out, size_t cap);
int hostprobe_call_parse(const char *s, struct hostprobe_call *out);
/* For people: "returned 12", "failed: Operation not permitted", "killed by SIGSYS". */
void hostprobe_call_str(const struct hostprobe_call *c, char *out, size_t cap);
/* One line per probe ("probe <name>: <value>"), then one per check family the test
 * suite would skip here ("suite would skip <what>: <reason>"). */
int hostprobe_report(const struct hostprobe *h, struct buf *out);

#endif
