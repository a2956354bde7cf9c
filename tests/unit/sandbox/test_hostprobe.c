/* Unit tests for the host-probe verdicts (lib/sandbox/hostprobe.c): a fake host for each
 * probe, and what a check then reports (pass / fail / skip with its reason). Pure: no
 * probe runs here except hostprobe_run's smoke test at the end. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "hostprobe.h"
#include "sandbox_int.h"

#define RET(v) ((struct hostprobe_call){.end = HP_END_RETURNED, .ret = (v)})
#define ERR(e) ((struct hostprobe_call){.end = HP_END_RETURNED, .ret = -1, .err = (e)})
#define SIG(s) ((struct hostprobe_call){.end = HP_END_SIGNALED, .sig = (s)})
#define NOTRUN ((struct hostprobe_call){.end = HP_END_NOT_RUN})

/* A host that offers everything. */
static struct hostprobe
good_host(void)
{
	struct hostprobe h;
	memset(&h, 0, sizeof(h));
	h.calls[HP_CALL_I386] = RET(42);
	h.calls[HP_CALL_X32] = RET(42);
	h.calls[HP_CALL_IO_URING] = ERR(EFAULT);
	h.calls[HP_CALL_UNSHARE_USER] = RET(0);
	h.calls[HP_CALL_CLONE_USER] = RET(43);
	h.root = true;
	h.userns_clone = -1;
	h.max_user_ns = 15000;
	h.apparmor_userns = -1;
	h.io_uring_disabled = 0;
	h.seccomp = h.seccomp_notify = true;
	h.cg_mode = SB_CG_V2;
	h.cg_detail = "cgroup v2 (delegated)";
	h.cg_cpu = true;
	h.landlock_abi = 6;
	h.ktls = h.ipv6_lo = h.nft = h.kvm = true;
	h.clock_res_ns = 1;
	return h;
}

struct call_case {
	const char *name;
	enum hostprobe_call_id id;
	struct hostprobe_call host, inside;
	long io_uring_disabled;
	enum hostprobe_verdict want;
	const char *why; /* substring of the reason (NULL: not checked) */
};

static void
test_call_verdicts(void **state)
{
	static const struct call_case cases[] = {
	    /* the three i386 cases */
	    {"i386: no entry on host or inside", HP_CALL_I386, SIG(SIGSEGV), SIG(SIGSEGV), 0,
	     HP_SKIP, "host has no i386 syscall entry (int 0x80 faults outside the sandbox too)"},
	    {"i386: host works, sandbox kills", HP_CALL_I386, RET(42), SIG(SIGSYS), 0, HP_PASS,
	     "SIGSYS"},
	    {"i386: host works, sandbox works", HP_CALL_I386, RET(42), RET(7), 0, HP_FAIL, NULL},
	    /* and the ones around them */
	    {"i386: host works, fault inside", HP_CALL_I386, RET(42), SIG(SIGSEGV), 0, HP_FAIL,
	     NULL},
	    {"i386: no entry, yet the filter kills", HP_CALL_I386, SIG(SIGSEGV), SIG(SIGSYS), 0,
	     HP_PASS, NULL},
	    {"i386: no entry on host, call ran inside", HP_CALL_I386, SIG(SIGSEGV), RET(7), 0,
	     HP_FAIL, NULL},
	    {"i386: SIGILL both", HP_CALL_I386, SIG(SIGILL), SIG(SIGILL), 0, HP_SKIP, "i386"},
	    {"i386: host probe not run", HP_CALL_I386, NOTRUN, SIG(SIGSYS), 0, HP_SKIP,
	     "did not run"},
	    {"i386: no result inside", HP_CALL_I386, RET(42), NOTRUN, 0, HP_FAIL, "no result"},
	    {"x32: host works, sandbox kills", HP_CALL_X32, RET(42), SIG(SIGSYS), 0, HP_PASS, NULL},
	    {"x32: no ABI on host, sandbox kills", HP_CALL_X32, ERR(ENOSYS), SIG(SIGSYS), 0,
	     HP_PASS, NULL},
	    {"x32: no ABI anywhere", HP_CALL_X32, ERR(ENOSYS), ERR(ENOSYS), 0, HP_SKIP,
	     "host has no x32 ABI"},
	    {"x32: host works, sandbox works", HP_CALL_X32, RET(42), RET(9), 0, HP_FAIL, NULL},
	    {"io_uring: available, EPERM inside", HP_CALL_IO_URING, ERR(EFAULT), ERR(EPERM), 0,
	     HP_PASS, NULL},
	    {"io_uring: sysctl off, EPERM both", HP_CALL_IO_URING, ERR(EPERM), ERR(EPERM), 2,
	     HP_SKIP, "kernel.io_uring_disabled=2"},
	    {"io_uring: group-only, EPERM both", HP_CALL_IO_URING, ERR(EPERM), ERR(EPERM), 1,
	     HP_SKIP, "kernel.io_uring_disabled=1"},
	    {"io_uring: reached the kernel inside", HP_CALL_IO_URING, ERR(EFAULT), ERR(EFAULT), 0,
	     HP_FAIL, NULL},
	    {"io_uring: not built, EPERM inside", HP_CALL_IO_URING, ERR(ENOSYS), ERR(EPERM), 0,
	     HP_PASS, NULL},
	    {"io_uring: not built anywhere", HP_CALL_IO_URING, ERR(ENOSYS), ERR(ENOSYS), 0, HP_SKIP,
	     "no io_uring_setup"},
	    {"unshare: host allows, EPERM inside", HP_CALL_UNSHARE_USER, RET(0), ERR(EPERM), 0,
	     HP_PASS, NULL},
	    {"unshare: host refuses too", HP_CALL_UNSHARE_USER, ERR(EPERM), ERR(EPERM), 0, HP_SKIP,
	     "unprivileged user namespaces are off"},
	    {"unshare: allowed inside", HP_CALL_UNSHARE_USER, RET(0), RET(0), 0, HP_FAIL, NULL},
	    {"clone: host allows, EPERM inside", HP_CALL_CLONE_USER, RET(43), ERR(EPERM), 0,
	     HP_PASS, NULL},
	    {"clone: host refuses too", HP_CALL_CLONE_USER, ERR(EPERM), ERR(EPERM), 0, HP_SKIP,
	     "user namespaces are off"},
	    {"clone: allowed inside", HP_CALL_CLONE_USER, RET(43), RET(12), 0, HP_FAIL, NULL},
	    {"clone: other errno inside", HP_CALL_CLONE_USER, RET(43), ERR(EINVAL), 0, HP_FAIL,
	     NULL},
	};
	char why[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct call_case *c = &cases[i];
		struct hostprobe h = good_host();
		enum hostprobe_verdict v;
		h.calls[c->id] = c->host;
		h.io_uring_disabled = c->io_uring_disabled;
		v = hostprobe_judge_call(c->id, &h, &c->inside, why, sizeof(why));
		if (v != c->want || (c->why != NULL && strstr(why, c->why) == NULL))
			fail_msg("%s: verdict %d (want %d), reason '%s'", c->name, (int)v,
			         (int)c->want, why);
	}
}

struct need_case {
	enum hostprobe_need need;
	void (*lack)(struct hostprobe *h);
	const char *why;
};

static void
lack_root(struct hostprobe *h)
{
	h->root = false;
}
static void
lack_ns(struct hostprobe *h)
{
	h->namespaces_err = EPERM, h->max_user_ns = 0;
}
static void
lack_userns_sysctl(struct hostprobe *h)
{
	h->userns_clone = 0;
}
static void
lack_userns_max(struct hostprobe *h)
{
	h->max_user_ns = 0;
}
static void
lack_userns_aa(struct hostprobe *h)
{
	h->apparmor_userns = 1;
}
static void
lack_userns_call(struct hostprobe *h)
{
	h->calls[HP_CALL_UNSHARE_USER] = ERR(ENOSPC);
}
static void
lack_seccomp(struct hostprobe *h)
{
	h->seccomp = false;
}
static void
lack_cg(struct hostprobe *h)
{
	h->cg_mode = SB_CG_NONE;
	h->cg_detail = "cgroup v2: memory and pids controllers not delegated to this cgroup";
}
static void
lack_v2(struct hostprobe *h)
{
	h->cg_mode = SB_CG_V1;
}
static void
lack_cpu(struct hostprobe *h)
{
	h->cg_cpu = false;
}
static void
lack_ll(struct hostprobe *h)
{
	h->landlock_abi = 0;
}
static void
lack_scope(struct hostprobe *h)
{
	h->landlock_abi = 5;
}
static void
lack_notify(struct hostprobe *h)
{
	h->seccomp_notify = false;
}
static void
lack_ktls(struct hostprobe *h)
{
	h->ktls = false;
}
static void
lack_v6(struct hostprobe *h)
{
	h->ipv6_lo = false;
}
static void
lack_nft(struct hostprobe *h)
{
	h->nft = false;
}
static void
lack_kvm(struct hostprobe *h)
{
	h->kvm = false;
}
static void
lack_clock(struct hostprobe *h)
{
	h->clock_res_ns = 4000000;
}
static void
lack_clock_unknown(struct hostprobe *h)
{
	h->clock_res_ns = -1;
}

static void
test_need_verdicts(void **state)
{
	static const struct need_case cases[] = {
	    {HP_NEED_ROOT, lack_root, "needs root"},
	    {HP_NEED_NAMESPACES, lack_ns, "user.max_user_namespaces=0"},
	    {HP_NEED_UNPRIV_USERNS, lack_userns_sysctl, "kernel.unprivileged_userns_clone=0"},
	    {HP_NEED_UNPRIV_USERNS, lack_userns_max, "user.max_user_namespaces=0"},
	    {HP_NEED_UNPRIV_USERNS, lack_userns_aa,
	     "kernel.apparmor_restrict_unprivileged_userns=1"},
	    {HP_NEED_UNPRIV_USERNS, lack_userns_call, "No space left"},
	    {HP_NEED_SECCOMP, lack_seccomp, "CONFIG_SECCOMP_FILTER"},
	    {HP_NEED_CGROUPS, lack_cg, "not delegated"},
	    {HP_NEED_CG_V2, lack_v2, "v1"},
	    {HP_NEED_CG_CPU, lack_cpu, "cpu controller"},
	    {HP_NEED_LANDLOCK, lack_ll, "no Landlock"},
	    {HP_NEED_LANDLOCK_SCOPE, lack_scope, "ABI 5 < 6"},
	    {HP_NEED_SECCOMP_NOTIFY, lack_notify, "user notification"},
	    {HP_NEED_KTLS, lack_ktls, "tls"},
	    {HP_NEED_IPV6_LO, lack_v6, "::1"},
	    {HP_NEED_NFT, lack_nft, "nf_tables"},
	    {HP_NEED_KVM, lack_kvm, "/dev/kvm"},
	    {HP_NEED_FINE_CLOCK, lack_clock, "4000000 ns"},
	    {HP_NEED_FINE_CLOCK, lack_clock_unknown, "-1 ns"},
	};
	bool covered[HP_NEED_COUNT] = {0};
	char why[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct need_case *c = &cases[i];
		struct hostprobe h = good_host();
		const char *name = hostprobe_need_name(c->need);
		covered[c->need] = true;
		/* a host that has it: the check's own outcome decides */
		if (hostprobe_judge_need(c->need, &h, true, why, sizeof(why)) != HP_PASS)
			fail_msg("%s: good host, ok check: not a pass (%s)", name, why);
		if (hostprobe_judge_need(c->need, &h, false, why, sizeof(why)) != HP_FAIL)
			fail_msg("%s: good host, failed check: not a fail (%s)", name, why);
		/* a host that lacks it: a skip with the reason, whatever the check said */
		c->lack(&h);
		if (hostprobe_judge_need(c->need, &h, true, why, sizeof(why)) != HP_SKIP ||
		    strstr(why, c->why) == NULL)
			fail_msg("%s: lacking host, ok check: not a skip with '%s' (%s)", name,
			         c->why, why);
		if (hostprobe_judge_need(c->need, &h, false, why, sizeof(why)) != HP_SKIP)
			fail_msg("%s: lacking host, failed check: not a skip", name);
	}
	for (int n = 0; n < HP_NEED_COUNT; n++)
		if (!covered[n])
			fail_msg("need %s has no case",
			         hostprobe_need_name((enum hostprobe_need)n));
}

static void
test_call_line_round_trip(void **state)
{
	static const char *const bad[] = {"",
	                                  "end=1",
	                                  "end=1 ret=0 err=0",
	                                  "end=9 ret=0 err=0 sig=0",
	                                  "end=1 ret=x err=0 sig=0",
	                                  "end=1 ret=0 err=0 sig=0 extra",
	                                  "end=1 ret=0 err=-1 sig=0",
	                                  "end=2 ret=0 err=0 sig=99",
	                                  "ret=0 end=1 err=0 sig=0"};
	struct hostprobe_call in[] = {RET(42), ERR(EPERM), SIG(SIGSYS), NOTRUN}, out;
	char line[128];
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		hostprobe_call_fmt(&in[i], line, sizeof(line));
		assert_int_equal(hostprobe_call_parse(line, &out), 0);
		assert_int_equal(in[i].end, out.end);
		assert_int_equal(in[i].ret, out.ret);
		assert_int_equal(in[i].err, out.err);
		assert_int_equal(in[i].sig, out.sig);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (hostprobe_call_parse(bad[i], &out) != AL_E_INVAL)
			fail_msg("accepted '%s'", bad[i]);
}

/* `airlock worker check` prints this: what the suite would skip on such a host. */
static void
test_report_names_skips(void **state)
{
	struct hostprobe h = good_host();
	struct buf b;
	buf_init(&b, 16384);
	assert_int_equal(hostprobe_report(&h, &b), 0);
	assert_int_equal(buf_add(&b, "", 1), 0);
	assert_null(strstr(b.data, "suite would skip"));
	buf_reset(&b);
	h.calls[HP_CALL_I386] = SIG(SIGSEGV);
	h.calls[HP_CALL_IO_URING] = ERR(EPERM);
	h.io_uring_disabled = 2;
	h.nft = false;
	assert_int_equal(hostprobe_report(&h, &b), 0);
	assert_int_equal(buf_add(&b, "", 1), 0);
	assert_non_null(strstr(b.data, "suite would skip sandbox-escapes i386: host has no i386 "
	                               "syscall entry"));
	assert_non_null(strstr(b.data, "kernel.io_uring_disabled=2"));
	assert_non_null(strstr(b.data, "suite would skip integration-tunnel_netns"));
	assert_null(strstr(b.data, "x32:"));
	buf_free(&b);
}

/* The real probes on this machine: whatever it offers, every call was made. */
static void
test_run_smoke(void **state)
{
	struct hostprobe h;
	hostprobe_run(&h);
	for (int i = 0; i < HP_CALL_COUNT; i++)
		if (h.calls[i].end == HP_END_NOT_RUN)
			fail_msg("call %s not run", hostprobe_call_name((enum hostprobe_call_id)i));
	assert_true(h.clock_res_ns > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_call_verdicts),
	    cmocka_unit_test(test_need_verdicts),
	    cmocka_unit_test(test_call_line_round_trip),
	    cmocka_unit_test(test_report_names_skips),
	    cmocka_unit_test(test_run_smoke),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
