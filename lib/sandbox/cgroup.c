/* Sandbox cgroups (v2 when delegated, v1 memory/pids/cpu otherwise), the journal of host
 * artefacts (<state_dir>/sandboxes/<sid>.rec while a session holds a sandbox,
 * <state_dir>/cgroups/<name>.rec for a spare's or a destroyed sandbox's groups), and the
 * crash sweep at worker start. Cgroups of
 * one state dir live under "airlock-<12 hex of sha256(state_dir)>" so two workers (or two
 * test runs) on one host never sweep each other's sandboxes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "sandbox_int.h"
#include "util.h"
#include "xalloc.h"

#define CG_ROOT "/sys/fs/cgroup"
/* where a v2 worker moves its own processes (see v2_prepare) */
#define V2_LEAF "airlock-worker"

static const char *const v1_ctrl[] = {"memory", "pids", "cpu"};

/* Detected once: the directory under which this process's sandbox groups go. */
static struct {
	bool done;
	enum sandbox_cg_mode mode;
	const char *why;
	char *parent[3]; /* v2: [0]; v1: per v1_ctrl, NULL when that controller is missing */
} det;

static int lock_fd = -1;

void
sandbox_instance_name(const char *state_dir, char out[24])
{
	char hex[65];
	sha256_hex(state_dir, strlen(state_dir), hex);
	snprintf(out, 24, "airlock-%.12s", hex);
}

static int
write_file(const char *dir, const char *name, const char *val)
{
	char path[PATH_MAX];
	int fd, r = 0;
	size_t n = strlen(val);
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return AL_E_TOOBIG;
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (write(fd, val, n) != (ssize_t)n)
		r = -errno;
	close(fd);
	return r;
}

static int
read_small(const char *path, char *out, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	if (fd < 0)
		return -errno;
	n = read(fd, out, cap - 1);
	close(fd);
	if (n < 0)
		return -errno;
	out[n] = '\0';
	return (int)n;
}

/* Splits *cur at the next sep (which becomes NUL); NULL at the end. Empty fields skipped. */
static char *
next_field(char **cur, char sep)
{
	char *s = *cur, *e;
	while (s != NULL && *s == sep)
		s++;
	if (s == NULL || *s == '\0')
		return NULL;
	e = strchr(s, sep);
	if (e != NULL)
		*e++ = '\0';
	*cur = e;
	return s;
}

/* The cgroup path of this process in the hierarchy whose /proc/self/cgroup line has
 * controller list ctrl ("" for the v2 line "0::"). Heap string or NULL. */
static char *
own_path(const char *ctrl)
{
	char buf[4096];
	char *cur = buf, *l;
	if (read_small("/proc/self/cgroup", buf, sizeof(buf)) < 0)
		return NULL;
	while ((l = next_field(&cur, '\n')) != NULL) {
		char *c1 = strchr(l, ':'), *c2;
		if (c1 == NULL || (c2 = strchr(c1 + 1, ':')) == NULL)
			continue;
		*c2 = '\0';
		if (ctrl[0] == '\0') {
			if (c1[1] == '\0' && strncmp(l, "0:", 2) == 0)
				return xstrdup(c2 + 1);
			continue;
		}
		/* controller lists look like "cpu,cpuacct" */
		for (char *c = c1 + 1, *t; (t = next_field(&c, ',')) != NULL;)
			if (strcmp(t, ctrl) == 0)
				return xstrdup(c2 + 1);
	}
	return NULL;
}

static bool
has_word(const char *list, const char *w)
{
	size_t n = strlen(w);
	const char *p = list;
	while ((p = strstr(p, w)) != NULL) {
		if ((p == list || p[-1] == ' ' || p[-1] == '+') &&
		    (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
			return true;
		p += n;
	}
	return false;
}

/* A cgroup with enabled controllers may hold no processes: ours (all of the group's)
 * move to the leaf <dir>/airlock-worker. */
static int
v2_move_to_leaf(const char *dir)
{
	char leaf[PATH_MAX], procs[PATH_MAX], pbuf[65536];
	char *cur = pbuf, *l;
	if (snprintf(leaf, sizeof(leaf), "%s/" V2_LEAF, dir) >= (int)sizeof(leaf))
		return AL_E_TOOBIG;
	if (mkdir(leaf, 0755) != 0 && errno != EEXIST)
		return -errno;
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	if (read_small(procs, pbuf, sizeof(pbuf)) < 0)
		return -errno;
	while ((l = next_field(&cur, '\n')) != NULL)
		(void)write_file(leaf, "cgroup.procs", l);
	return 0;
}

/* v2: sandboxes need memory and pids (and cpu when our parent gave it: systemd's
 * Delegate=memory pids does not) enabled in the subtree_control of dir, the group they go
 * under. A worker restarted inside the airlock-worker leaf of an earlier run uses the
 * group above it again (dir is cut back), instead of nesting one level per restart. */
static int
v2_prepare(char *dir)
{
	static const char *const wants[] = {"+memory +pids +cpu", "+memory +pids"};
	char path[PATH_MAX], buf[512];
	size_t n = strlen(dir), i;
	int r = 0;
	/* sizeof(V2_LEAF) = strlen("/" V2_LEAF) */
	if (n > sizeof(V2_LEAF) && strcmp(dir + n - sizeof(V2_LEAF), "/" V2_LEAF) == 0) {
		snprintf(path, sizeof(path), "%.*s/cgroup.subtree_control",
		         (int)(n - sizeof(V2_LEAF)), dir);
		if (read_small(path, buf, sizeof(buf)) >= 0 && has_word(buf, "memory") &&
		    has_word(buf, "pids")) {
			dir[n - sizeof(V2_LEAF)] = '\0';
			return 0;
		}
	}
	if (snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir) >= (int)sizeof(path))
		return AL_E_TOOBIG;
	if (read_small(path, buf, sizeof(buf)) >= 0 && has_word(buf, "memory") &&
	    has_word(buf, "pids"))
		return 0;
	snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
	i = read_small(path, buf, sizeof(buf)) >= 0 && has_word(buf, "cpu") ? 0 : 1;
	for (; i < ARRAY_LEN(wants); i++) {
		r = write_file(dir, "cgroup.subtree_control", wants[i]);
		if (r == -EBUSY && (r = v2_move_to_leaf(dir)) == 0)
			r = write_file(dir, "cgroup.subtree_control", wants[i]);
		if (r != -EINVAL && r != -ENOENT) /* those: cpu refused, go on without it */
			break;
	}
	return r;
}

/* v2: our own group (dir), if its parent gave it memory and pids and we may write it.
 * Changes nothing. */
static bool
v2_inspect(char *dir, size_t cap, const char **why)
{
	char buf[PATH_MAX + 32], ctl[512];
	char *own = own_path("");
	if (own == NULL) {
		*why = "cgroup v2: no 0:: line in /proc/self/cgroup";
		return false;
	}
	snprintf(dir, cap, CG_ROOT "%s", strcmp(own, "/") == 0 ? "" : own);
	free(own);
	snprintf(buf, sizeof(buf), "%s/cgroup.controllers", dir);
	if (read_small(buf, ctl, sizeof(ctl)) < 0 || !has_word(ctl, "memory") ||
	    !has_word(ctl, "pids")) {
		*why = "cgroup v2: memory and pids controllers not delegated to this cgroup";
		return false;
	}
	if (access(dir, W_OK) != 0) {
		*why = "cgroup v2: cannot enable controllers in our subtree (not delegated)";
		return false;
	}
	return true;
}

/* systemd marks the groups it delegates (Delegate=yes) with this xattr (v251+); in any
 * other unit it owns the group's controllers and may take them back at a reload. */
static bool
systemd_unit_undelegated(const char *dir)
{
	const char *base = strrchr(dir, '/');
	size_t n;
	char v[8];
	if (base == NULL)
		return false;
	n = strlen(++base);
	if (!((n > 8 && strcmp(base + n - 8, ".service") == 0) ||
	      (n > 6 && strcmp(base + n - 6, ".scope") == 0)))
		return false;
	return getxattr(dir, "trusted.delegate", v, sizeof(v)) < 0 &&
	       getxattr(dir, "user.delegate", v, sizeof(v)) < 0;
}

static void
detect(void)
{
	struct statfs sf;
	char dir[PATH_MAX];
	size_t i;
	det.done = true;
	det.mode = SB_CG_NONE;
	if (statfs(CG_ROOT, &sf) != 0) {
		det.why = "no /sys/fs/cgroup";
		return;
	}
	if ((unsigned long)sf.f_type == CGROUP2_SUPER_MAGIC) {
		if (!v2_inspect(dir, sizeof(dir), &det.why))
			return;
		if (systemd_unit_undelegated(dir))
			log_warn(
			    "sandbox cgroups: systemd unit without Delegate=yes, systemd may take "
			    "the controllers back",
			    "cgroup", dir);
		if (v2_prepare(dir) != 0) {
			det.why = "cgroup v2: cannot enable controllers in our subtree (not "
			          "delegated)";
			return;
		}
		det.parent[0] = xstrdup(dir);
		det.mode = SB_CG_V2;
		return;
	}
	/* v1 or hybrid: per-controller hierarchies. */
	for (i = 0; i < ARRAY_LEN(v1_ctrl); i++) {
		char *own;
		snprintf(dir, sizeof(dir), CG_ROOT "/%s", v1_ctrl[i]);
		if (statfs(dir, &sf) != 0 || (unsigned long)sf.f_type != CGROUP_SUPER_MAGIC)
			continue;
		if ((own = own_path(v1_ctrl[i])) == NULL)
			continue;
		snprintf(dir, sizeof(dir), CG_ROOT "/%s%s", v1_ctrl[i],
		         strcmp(own, "/") == 0 ? "" : own);
		free(own);
		if (access(dir, W_OK) != 0)
			continue;
		det.parent[i] = xstrdup(dir);
	}
	if (det.parent[0] == NULL || det.parent[1] == NULL) {
		det.why = "cgroup v1: memory and pids hierarchies missing or not writable";
		free(det.parent[0]);
		free(det.parent[1]);
		free(det.parent[2]);
		det.parent[0] = det.parent[1] = det.parent[2] = NULL;
		return;
	}
	det.mode = SB_CG_V1;
}

enum sandbox_cg_mode
sandbox_cg_detect(const char **detail)
{
	if (!det.done)
		detect();
	if (detail != NULL)
		*detail = det.mode == SB_CG_NONE ? det.why
		          : det.mode == SB_CG_V2 ? "cgroup v2 (delegated)"
		                                 : "cgroup v1 fallback (memory, pids, cpu)";
	return det.mode;
}

enum sandbox_cg_mode
sandbox_cg_probe(const char **detail, bool *warn)
{
	struct statfs sf;
	char dir[PATH_MAX];
	*warn = false;
	/* v1 detection only looks; v2's moves this process into a leaf: not for a check. */
	if (det.done || statfs(CG_ROOT, &sf) != 0 ||
	    (unsigned long)sf.f_type != CGROUP2_SUPER_MAGIC)
		return sandbox_cg_detect(detail);
	if (!v2_inspect(dir, sizeof(dir), detail))
		return SB_CG_NONE;
	if (systemd_unit_undelegated(dir)) {
		*warn = true;
		*detail = "cgroup v2 in a systemd unit without Delegate=yes: systemd may take "
		          "the controllers back (set Delegate=yes in the worker's unit)";
	} else {
		*detail = "cgroup v2 (delegated)";
	}
	return SB_CG_V2;
}

/* Looks only: whether sandboxes here would get the cpu controller (v1: a writable cpu
 * hierarchy of our own; v2: offered to our group). */
bool
sandbox_cg_has_cpu(void)
{
	struct statfs sf;
	char dir[PATH_MAX], ctl[512];
	char *own;
	int n;
	bool v2 = statfs(CG_ROOT, &sf) == 0 && (unsigned long)sf.f_type == CGROUP2_SUPER_MAGIC;
	if ((own = own_path(v2 ? "" : "cpu")) == NULL)
		return false;
	n = snprintf(dir, sizeof(dir), CG_ROOT "%s%s%s", v2 ? "" : "/cpu",
	             strcmp(own, "/") == 0 ? "" : own, v2 ? "/cgroup.controllers" : "");
	free(own);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return false;
	if (!v2)
		return statfs(dir, &sf) == 0 && (unsigned long)sf.f_type == CGROUP_SUPER_MAGIC &&
		       access(dir, W_OK) == 0;
	return read_small(dir, ctl, sizeof(ctl)) >= 0 && has_word(ctl, "cpu");
}

static int
mkdir_ok(const char *p)
{
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int
write_u64(const char *dir, const char *name, uint64_t v)
{
	char s[32];
	snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	return write_file(dir, name, s);
}

static int
limits_v1(const struct sandbox_profile *p, const struct sandbox_cg *cg)
{
	int r;
	if (p->memory_mb) {
		uint64_t b = p->memory_mb * 1024 * 1024;
		if ((r = write_u64(cg->paths[0], "memory.limit_in_bytes", b)) != 0)
			return r;
		r = write_u64(cg->paths[0], "memory.memsw.limit_in_bytes", b);
		if (r != 0 && r != -ENOENT) /* no swap accounting: nothing to cap */
			return r;
	}
	if (p->pids_max && (r = write_u64(cg->paths[1], "pids.max", p->pids_max)) != 0)
		return r;
	if (p->cpu_quota_percent && cg->paths[2] != NULL) {
		if ((r = write_u64(cg->paths[2], "cpu.cfs_period_us", 100000)) != 0)
			return r;
		if ((r = write_u64(cg->paths[2], "cpu.cfs_quota_us",
		                   (uint64_t)p->cpu_quota_percent * 1000)) != 0)
			return r;
	}
	return 0;
}

static int
limits_v2(const struct sandbox_profile *p, const struct sandbox_cg *cg)
{
	const char *d = cg->paths[0];
	int r;
	if (p->memory_mb) {
		uint64_t b = p->memory_mb * 1024 * 1024;
		if ((r = write_u64(d, "memory.max", b)) != 0)
			return r;
		(void)write_u64(d, "memory.high", b / 10 * 9);
		(void)write_file(d, "memory.swap.max", "0");
	}
	if (p->pids_max && (r = write_u64(d, "pids.max", p->pids_max)) != 0)
		return r;
	if (p->cpu_quota_percent) {
		char s[48];
		snprintf(s, sizeof(s), "%llu 100000",
		         (unsigned long long)p->cpu_quota_percent * 1000);
		(void)write_file(d, "cpu.max", s); /* no cpu controller: memory + pids only */
	}
	return 0;
}

int
sandbox_cg_create(const struct sandbox_profile *p, const char *sid, struct sandbox_cg *cg)
{
	char inst[24], dir[PATH_MAX];
	size_t i;
	int r = 0;
	memset(cg, 0, sizeof(*cg));
	cg->mode = sandbox_cg_detect(NULL);
	if (cg->mode == SB_CG_NONE)
		return 0;
	sandbox_instance_name(p->state_dir, inst);
	for (i = 0; i < 3; i++) {
		const char *parent = det.parent[i];
		if (parent == NULL || (cg->mode == SB_CG_V2 && i > 0))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", parent, inst);
		if ((r = mkdir_ok(dir)) != 0)
			goto out;
		if (cg->mode == SB_CG_V2 &&
		    write_file(dir, "cgroup.subtree_control", "+memory +pids +cpu") != 0 &&
		    (r = write_file(dir, "cgroup.subtree_control", "+memory +pids")) != 0)
			goto out;
		if (snprintf(dir, sizeof(dir), "%s/%s/%s", parent, inst, sid) >= (int)sizeof(dir)) {
			r = AL_E_TOOBIG;
			goto out;
		}
		if (mkdir(dir, 0755) != 0) {
			r = errno == EEXIST ? AL_E_CONFLICT : -errno;
			goto out;
		}
		cg->paths[i] = xstrdup(dir);
		cg->n = i + 1;
	}
	r = cg->mode == SB_CG_V2 ? limits_v2(p, cg) : limits_v1(p, cg);
out:
	if (r != 0) {
		(void)sandbox_cg_remove(cg);
		sandbox_cg_free(cg);
	}
	return r;
}

/* SIGKILLs every process listed; returns how many were listed. */
static int
kill_listed(const char *dir)
{
	char path[PATH_MAX], buf[65536];
	char *cur = buf, *l;
	int n = 0;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return 0;
	while ((l = next_field(&cur, '\n')) != NULL) {
		uint64_t pid;
		if (parse_uint_cstr(l, INT32_MAX, &pid) == 0 && pid > 1) {
			kill((pid_t)pid, SIGKILL);
			n++;
		}
	}
	return n;
}

static int
remove_dir(const char *dir)
{
	int tries;
	(void)write_file(dir, "cgroup.kill", "1"); /* v2 >= 5.14; v1 lacks the file */
	for (tries = 0; tries < 2000; tries++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		/* Processes still exiting, or a fork racing the kill: kill again, back off. */
		kill_listed(dir);
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	return -EBUSY;
}

/* The per-state-dir group goes with its last sandbox (EBUSY while others live). */
static void
remove_parent(const char *leaf)
{
	char parent[PATH_MAX], *slash;
	snprintf(parent, sizeof(parent), "%s", leaf);
	if ((slash = strrchr(parent, '/')) != NULL) {
		*slash = '\0';
		(void)rmdir(parent);
	}
}

int
sandbox_cg_remove(struct sandbox_cg *cg)
{
	size_t i;
	int r = 0, r2;
	for (i = 0; i < cg->n; i++) {
		if (cg->paths[i] == NULL)
			continue;
		if ((r2 = remove_dir(cg->paths[i])) != 0) {
			log_warn("sandbox cgroup not removed", "path", cg->paths[i], "error",
			         al_strerror(r2));
			r = r2;
			continue;
		}
		remove_parent(cg->paths[i]);
	}
	return r;
}

int
sandbox_cg_try_remove(struct sandbox_cg *cg)
{
	size_t i;
	int r = 0;
	for (i = 0; i < cg->n; i++) {
		if (cg->paths[i] == NULL)
			continue;
		if (rmdir(cg->paths[i]) != 0 && errno != ENOENT) {
			if (errno == EBUSY) {
				kill_listed(cg->paths[i]); /* a fork that raced the pid-ns kill */
				r = -EBUSY;
				continue;
			}
			r = -errno;
			log_warn("sandbox cgroup not removed", "path", cg->paths[i], "error",
			         al_strerror(r));
			return r;
		}
		remove_parent(cg->paths[i]);
		free(cg->paths[i]);
		cg->paths[i] = NULL;
	}
	return r;
}

void
sandbox_cg_free(struct sandbox_cg *cg)
{
	size_t i;
	for (i = 0; i < 3; i++)
		free(cg->paths[i]);
	memset(cg, 0, sizeof(*cg));
}

/* ---- journal ---- */

static int
journal_path(const char *state_dir, bool session, const char *name, char *out, size_t cap)
{
	if (snprintf(out, cap, "%s/%s/%s.rec", state_dir, session ? "sandboxes" : "cgroups",
	             name) >= (int)cap)
		return AL_E_TOOBIG;
	return 0;
}

int
sandbox_journal_write(const char *state_dir, bool session, const char *sid,
                      const struct sandbox_cg *cg, bool create)
{
	char path[PATH_MAX];
	struct buf b;
	int fd = -1, r;
	size_t i;
	buf_init(&b, 16384);
	if ((r = journal_path(state_dir, session, sid, path, sizeof(path))) != 0)
		goto out;
	for (i = 0; i < cg->n; i++)
		if (cg->paths[i] != NULL && (r = buf_addf(&b, "cg %s\n", cg->paths[i])) != 0)
			goto out;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (create ? O_EXCL : 0),
	               0600)) < 0) {
		r = errno == EEXIST ? AL_E_CONFLICT : -errno;
		goto out;
	}
	/* No fsync: what a record names (cgroups, processes) does not survive the power loss
	 * fsync guards against, and a crashed process loses no page cache. */
	if (write(fd, b.data ? b.data : "", b.len) != (ssize_t)b.len) {
		r = -errno;
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	return r;
}

void
sandbox_journal_remove(const char *state_dir, bool session, const char *sid)
{
	char path[PATH_MAX];
	if (journal_path(state_dir, session, sid, path, sizeof(path)) == 0)
		(void)unlink(path);
}

int
sandbox_journal_release(const char *state_dir, const char *sid, const char *name)
{
	char from[PATH_MAX], to[PATH_MAX];
	if (journal_path(state_dir, true, sid, from, sizeof(from)) != 0 ||
	    journal_path(state_dir, false, name, to, sizeof(to)) != 0)
		return AL_E_TOOBIG;
	return rename(from, to) == 0 ? 0 : -errno;
}

/* A record is data from disk: only ever act on our own cgroup names. */
static bool
record_path_ok(const char *p)
{
	return strncmp(p, CG_ROOT "/", sizeof(CG_ROOT)) == 0 && strstr(p, "/airlock-") != NULL &&
	       strstr(p, "/..") == NULL && strlen(p) < PATH_MAX;
}

static void
sweep_record(const char *dir, const char *name)
{
	char path[PATH_MAX], buf[16384];
	char *cur = buf, *l;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return;
	if (read_small(path, buf, sizeof(buf)) >= 0) {
		while ((l = next_field(&cur, '\n')) != NULL) {
			if (strncmp(l, "cg ", 3) != 0 || !record_path_ok(l + 3)) {
				log_warn("sandbox sweep: ignoring bad journal line", "file", path);
				continue;
			}
			if (remove_dir(l + 3) == 0)
				remove_parent(l + 3);
		}
	}
	log_info("sandbox sweep: removed leftovers of a crashed worker", "record", name);
	(void)unlink(path);
}

static void
sweep_orphans(const char *parent, const char *inst)
{
	char dir[PATH_MAX], sub[PATH_MAX];
	DIR *d;
	struct dirent *e;
	if (parent == NULL || snprintf(dir, sizeof(dir), "%s/%s", parent, inst) >= (int)sizeof(dir))
		return;
	if ((d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_type != DT_DIR || !sandbox_id_valid(e->d_name))
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= (int)sizeof(sub))
			continue;
		log_info("sandbox sweep: removing orphan cgroup", "path", sub);
		(void)remove_dir(sub);
	}
	closedir(d);
	(void)rmdir(dir);
}

int
sandbox_sweep(const char *state_dir)
{
	char path[PATH_MAX], inst[24];
	DIR *d = NULL;
	struct dirent *e;
	size_t i;
	int r;

	if (!sandbox_path_valid(state_dir))
		return AL_E_INVAL;
	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", state_dir, i ? "cgroups" : "sandboxes");
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -errno;
	}
	if (lock_fd < 0) {
		int fd;
		snprintf(path, sizeof(path), "%s/worker.lock", state_dir);
		if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			r = errno == EWOULDBLOCK ? AL_E_CONFLICT : -errno;
			close(fd);
			return r;
		}
		lock_fd = fd;
	}
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", state_dir, i ? "cgroups" : "sandboxes");
		if ((d = opendir(path)) == NULL)
			continue;
		while ((e = readdir(d)) != NULL) {
			size_t n = strlen(e->d_name);
			if (n > 4 && strcmp(e->d_name + n - 4, ".rec") == 0)
				sweep_record(path, e->d_name);
		}
		closedir(d);
	}
	sandbox_instance_name(state_dir, inst);
	if (sandbox_cg_detect(NULL) != SB_CG_NONE)
		for (i = 0; i < 3; i++)
			sweep_orphans(det.parent[i], inst);
	return 0;
}
