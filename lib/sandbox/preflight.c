/* Host checks before any sandbox is made (spec sandbox.md §11): one line per check saying
 * what the host lacks and how to fix it. `airlock worker check` prints this report. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "err.h"
#include "hostprobe.h"
#include "sandbox_int.h"

static int
add(struct buf *b, bool *ok, const char *level, const char *check, const char *msg)
{
	if (strcmp(level, "fail") == 0)
		*ok = false;
	return buf_addf(b, "%s %s: %s\n", level, check, msg);
}

int
sandbox_preflight(struct buf *report, bool *ok)
{
	struct utsname u;
	unsigned long maj = 0, min = 0;
	int r = 0, e, abi;
	const char *why;
	char msg[256];
	enum sandbox_cg_mode cg;
	bool cg_warn;

	*ok = true;
	if (uname(&u) == 0) {
		const char *p = u.release;
		while (*p >= '0' && *p <= '9')
			maj = maj * 10 + (unsigned long)(*p++ - '0');
		if (*p == '.')
			p++;
		while (*p >= '0' && *p <= '9')
			min = min * 10 + (unsigned long)(*p++ - '0');
	}
	snprintf(msg, sizeof(msg), "Linux %s", u.release);
	if (maj < 5 || (maj == 5 && min < 9))
		r |= add(
		    report, ok, "fail", "kernel",
		    "kernel >= 5.9 required (pidfd, close_range), 5.15 LTS or later recommended");
	else if (maj == 5 && min < 15)
		r |= add(report, ok, "warn", "kernel", "kernel >= 5.15 LTS recommended");
	else
		r |= add(report, ok, "ok", "kernel", msg);

	e = -hostprobe_namespaces();
	if (e == 0) {
		r |= add(report, ok, "ok", "user namespaces",
		         "unprivileged namespaces can be created");
	} else {
		if (hostprobe_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == 0)
			r |= add(report, ok, "fail", "user namespaces",
			         "disabled: sysctl -w kernel.unprivileged_userns_clone=1");
		if (hostprobe_sysctl("/proc/sys/user/max_user_namespaces") == 0)
			r |= add(report, ok, "fail", "user namespaces",
			         "disabled: sysctl -w user.max_user_namespaces=15000");
		if (hostprobe_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1)
			r |= add(
			    report, ok, "fail", "apparmor",
			    "kernel.apparmor_restrict_unprivileged_userns=1: install the airlock "
			    "AppArmor profile (allows userns) or sysctl -w "
			    "kernel.apparmor_restrict_unprivileged_userns=0");
		snprintf(
		    msg, sizeof(msg),
		    "cannot create namespaces (%s): in a container, run with a seccomp profile "
		    "that allows unshare/clone namespace flags and AppArmor unconfined, or use "
		    "a VM",
		    strerror(-e));
		r |= add(report, ok, "fail", "namespaces", msg);
	}

	cg = sandbox_cg_probe(&why, &cg_warn);
	if (cg == SB_CG_NONE) {
		snprintf(msg, sizeof(msg),
		         "%s; systemd: Delegate=yes; containers: cgroupns + rw cgroupfs (or run "
		         "with degraded no-cgroups: rlimits only)",
		         why);
		r |= add(report, ok, "fail", "cgroups", msg);
	} else if (cg == SB_CG_V1) {
		r |= add(report, ok, "warn", "cgroups",
		         "cgroup v1 fallback (memory, pids, cpu): boot with "
		         "systemd.unified_cgroup_hierarchy=1 for v2");
	} else {
		r |= add(report, ok, cg_warn ? "warn" : "ok", "cgroups", why);
	}

	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL)
		r |= add(report, ok, "fail", "seccomp", "kernel needs CONFIG_SECCOMP_FILTER");
	else {
		const void *prog;
		size_t len;
		if (sandbox_seccomp_prog(&prog, &len) != 0)
			r |= add(report, ok, "fail", "seccomp",
			         "libseccomp could not build the filter");
		else
			r |= add(report, ok, "ok", "seccomp", "filter mode available");
	}

	abi = sandbox_landlock_abi();
	if (abi <= 0)
		r |= add(report, ok, "warn", "landlock",
		         "unavailable: add landlock to the lsm= boot parameter (mount namespace "
		         "stays the filesystem boundary)");
	else {
		snprintf(msg, sizeof(msg), "ABI %d%s", abi,
		         abi < 6 ? " (signal and abstract-socket scopes need ABI 6, Linux 6.12)"
		                 : "");
		r |= add(report, ok, abi < 6 ? "warn" : "ok", "landlock", msg);
	}

	if (access("/bin/bash", X_OK) != 0)
		r |= add(report, ok, "fail", "tools",
		         "/bin/bash is missing (the bash tool needs it)");
	else
		r |= add(report, ok, "ok", "tools", "/bin/bash present");
	return r ? AL_E_TOOBIG : 0;
}
