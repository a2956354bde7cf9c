/* The tool executor: tool_run() blocks (bash can run for minutes), so calls run on one
 * executor thread while the loop thread keeps heartbeats and the event stream alive.
 * Completion comes back through an eventfd watched by the loop; cancellation uses the
 * toolset's thread-safe tool_cancel(). Only deep-copied JSON crosses threads (jansson
 * reference counts are not atomic). Each session's bash and rg run in that session's
 * sandbox, created through the privileged monitor (docs/worker/monitor.md). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "egress.h"
#include "egress_tls.h"
#include "err.h"
#include "hostprobe.h"
#include "log.h"
#include "monitor.h"
#include "sandbox.h"
#include "tools/tools.h"
#include "util.h"
#include "worker.h"
#include "xalloc.h"

struct wexec {
	struct loop *loop;
	pthread_t th;
	bool th_started;
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t done_cv; /* broadcast when the thread finished a call */
	bool quit;
	struct tool_ctx *ctx;
	/* the one job; fields below are handed over under mu */
	bool has_job;  /* queued for the thread */
	bool busy;     /* from wexec_run until done is delivered */
	bool finished; /* the thread produced a result */
	char *name;
	json_t *input;
	json_t *content;
	bool is_error;
	bool close_pending; /* session closed while a call ran: free ctx when it ends */
	wexec_done_fn *done;
	void *arg;
	char *ws; /* the session's workspace (host path) while its tools are open */
	/* the session's sandbox (when sandboxed) */
	bool sb_open;
	uint32_t sb_id;
	unsigned sb_live; /* processes spawned in it and not yet reaped */
	bool net;         /* its egress listener exists: processes get the proxy variables */
	char **extra_env; /* the session's secret placeholders (wexec_set_env) */
};

/* ---- the session sandbox: process-wide state set up before any thread ---- */

#define SB_STRS (2 * SANDBOX_MAX_BINDS + 8)

static struct {
	bool on; /* tools run in sandboxes */
	struct monitor *mon;
	/* One monitor caller at a time: sessions open and close on the loop thread, bash and
	 * rg start and die on the executor thread. */
	pthread_mutex_t mu;
	struct sandbox_profile prof;
	struct monitor_config mcfg;
	char *strs[SB_STRS]; /* strings the profile borrows */
	size_t nstrs;
	char *user; /* the unprivileged user (root start) */
	char *ws;   /* realpath of the workdir; sessions' workspaces are <ws>/sessions/<id> */
	char *rg;   /* rg as the sandbox sees it, "" = built-in grep */
	uint64_t workspace_mb; /* each session's workspace its own fs of this size; 0 none */
} sbx = {.mu = PTHREAD_MUTEX_INITIALIZER, .workspace_mb = 4096};

static const char *
sb_keep(char *s)
{
	if (sbx.nstrs == SB_STRS) {
		free(s);
		return NULL;
	}
	sbx.strs[sbx.nstrs++] = s;
	return s;
}

/* A YAML list of strings (sandbox.ro_binds and friends); absent = empty. */
static int
get_list(struct cfg *f, const json_t *obj, const char *key, const char **out, size_t max, size_t *n)
{
	const json_t *a = json_object_get(obj, key), *v;
	size_t i;
	*n = 0;
	if (a == NULL)
		return 0;
	if (!json_is_array(a))
		return cfg_error(f, a, "sandbox.%s: a list of strings", key);
	if (json_array_size(a) > max)
		return cfg_error(f, a, "sandbox.%s: at most %zu entries", key, max);
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v) || (out[i] = sb_keep(xstrdup(json_string_value(v)))) == NULL)
			return cfg_error(f, v, "sandbox.%s: a list of strings", key);
		*n = i + 1;
	}
	return 0;
}

/* A path key of the sandbox: section (a string or a list), checked where its line is known;
 * sandbox_profile_check says the same later without one. */
static int
check_paths(struct cfg *f, const json_t *sb, const char *key)
{
	const json_t *v = json_object_get(sb, key);
	json_t *e;
	size_t i;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_string(v) && !sandbox_path_valid(json_string_value(v)))
		return cfg_error(f, v, "sandbox.%s: %s: not an absolute normalized path", key,
		                 json_string_value(v));
	json_array_foreach((json_t *)v, i, e)
	{
		const char *s = json_string_value(e);
		if (s != NULL && (!sandbox_path_valid(s) || strcmp(s, "/") == 0))
			return cfg_error(f, e,
			                 "sandbox.%s: %s: not an absolute normalized path (nor /)",
			                 key, s);
	}
	return 0;
}

/* The sandbox: section (keys in docs/lib/sandbox.md, plus `user`). file:line errors. */
static int
profile_parse(struct worker_config *c, bool *unsandboxed)
{
	static const char *const keys[] = {
	    "memory_mb",    "pids_max",  "cpu_quota_percent", "wall_clock_s", "tmp_size_mb",
	    "fsize_mb",     "nofile",    "root_dir",          "ro_binds",     "rw_binds",
	    "uid_base",     "uid_count", "state_dir",         "degraded",     "user",
	    "workspace_mb", NULL};
	struct sandbox_profile *p = &sbx.prof;
	const json_t *sb = c->sandbox;
	struct cfg *f = &c->file;
	const char *deg[4];
	char *root_dir = NULL, *state_dir = NULL;
	uint64_t v32[5];
	size_t n, i;
	struct buf err;
	int r;

	sandbox_profile_defaults(p);
	*unsandboxed = c->unsandboxed;
	if (sb == NULL)
		goto env;
	v32[0] = p->cpu_quota_percent, v32[1] = p->wall_clock_s, v32[2] = p->nofile;
	v32[3] = p->uid_base, v32[4] = p->uid_count;
	if ((r = cfg_only_keys(f, sb, keys)) ||
	    (r = cfg_get_uint(f, sb, "memory_mb", 0, 1u << 30, &p->memory_mb)) ||
	    (r = cfg_get_uint(f, sb, "pids_max", 0, 4194304, &p->pids_max)) ||
	    (r = cfg_get_uint(f, sb, "cpu_quota_percent", 0, 100000, &v32[0])) ||
	    (r = cfg_get_uint(f, sb, "wall_clock_s", 0, 30 * 86400, &v32[1])) ||
	    (r = cfg_get_uint(f, sb, "tmp_size_mb", 1, 1u << 30, &p->tmp_size_mb)) ||
	    (r = cfg_get_uint(f, sb, "fsize_mb", 1, 1ull << 40, &p->fsize_mb)) ||
	    (r = cfg_get_uint(f, sb, "nofile", 64, 1048576, &v32[2])) ||
	    (r = cfg_get_uint(f, sb, "uid_base", 1000, 0xfffffffeu, &v32[3])) ||
	    (r = cfg_get_uint(f, sb, "uid_count", 1, 0xfffffffeu, &v32[4])) ||
	    (r = cfg_get_str(f, sb, "root_dir", &root_dir)) ||
	    (r = cfg_get_str(f, sb, "state_dir", &state_dir)) ||
	    (r = cfg_get_str(f, sb, "user", &sbx.user)) ||
	    (r = cfg_get_uint(f, sb, "workspace_mb", 0, 1ull << 30, &sbx.workspace_mb)) ||
	    (r = get_list(f, sb, "ro_binds", p->ro_binds, SANDBOX_MAX_BINDS, &p->n_ro_binds)) ||
	    (r = get_list(f, sb, "rw_binds", p->rw_binds, SANDBOX_MAX_BINDS, &p->n_rw_binds)) ||
	    (r = get_list(f, sb, "degraded", deg, ARRAY_LEN(deg), &n)) ||
	    (r = check_paths(f, sb, "root_dir")) || (r = check_paths(f, sb, "state_dir")) ||
	    (r = check_paths(f, sb, "ro_binds")) || (r = check_paths(f, sb, "rw_binds")))
		goto out;
	if (sbx.workspace_mb > 0 && sbx.workspace_mb < 16) {
		r = cfg_error(f, json_object_get(sb, "workspace_mb"),
		              "sandbox.workspace_mb: 0 (no cap) or at least 16");
		goto out;
	}
	p->cpu_quota_percent = (uint32_t)v32[0], p->wall_clock_s = (uint32_t)v32[1];
	p->nofile = (uint32_t)v32[2], p->uid_base = (uint32_t)v32[3],
	p->uid_count = (uint32_t)v32[4];
	if (root_dir != NULL)
		p->root_dir = sb_keep(root_dir), root_dir = NULL;
	if (state_dir != NULL)
		p->state_dir = sb_keep(state_dir), state_dir = NULL;
	for (i = 0; i < n; i++) {
		if (strcmp(deg[i], "no-cgroups") == 0)
			p->degraded |= SANDBOX_DEGRADED_NO_CGROUPS;
		else if (strcmp(deg[i], "unsandboxed") == 0)
			*unsandboxed = true;
		else {
			r = cfg_error(f, json_array_get(json_object_get(sb, "degraded"), i),
			              "sandbox.degraded: no-cgroups or unsandboxed");
			goto out;
		}
	}
env:
	/* Between the file and flags, like every other setting (docs/worker/config.md). */
	if (getenv("AIRLOCK_SANDBOX_STATE_DIR") != NULL && getenv("AIRLOCK_SANDBOX_STATE_DIR")[0])
		p->state_dir = sb_keep(xstrdup(getenv("AIRLOCK_SANDBOX_STATE_DIR")));
	if (getenv("AIRLOCK_SANDBOX_WORKSPACE_MB") != NULL) {
		uint64_t v;
		if (parse_uint_cstr(getenv("AIRLOCK_SANDBOX_WORKSPACE_MB"), 1ull << 30, &v) != 0) {
			fprintf(stderr, "airlock worker: AIRLOCK_SANDBOX_WORKSPACE_MB: a number of "
			                "MiB (0: no cap)\n");
			return AL_E_INVAL;
		}
		sbx.workspace_mb = v;
	}
	buf_init(&err, 4096);
	r = sandbox_profile_check(p, &err);
	if (r != 0)
		fprintf(stderr, "airlock worker: %s: %.*s", c->has_file ? c->file.name : "sandbox",
		        (int)err.len, err.data ? err.data : "");
	buf_free(&err);
	return r;
out:
	free(root_dir);
	free(state_dir);
	fprintf(stderr, "airlock worker: %s\n", f->err);
	return r;
}

/* mkdir -p with mode for the dirs it creates. */
static int
mkdirs(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t i, n = strlen(path);
	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -errno;
		tmp[i] = i == n ? '\0' : '/';
	}
	return 0;
}

/* The user a root worker drops to. */
struct ids {
	bool set;
	uint32_t uid, gid;
	char name[64];
};

/* sandbox.user, or by default uid/gid uid_base - 1: a uid of its own, just below the
 * sandboxes' range, never nobody's (shared with other daemons: per-user kernel limits,
 * files, signals). The default must not be a named user's. */
static int
worker_ids(struct ids *w)
{
	struct passwd *pw;
	if (sbx.user != NULL) {
		if ((pw = getpwnam(sbx.user)) == NULL || pw->pw_uid == 0 || pw->pw_gid == 0) {
			fprintf(stderr,
			        "airlock worker: sandbox.user %s: no such unprivileged user\n",
			        sbx.user);
			return AL_E_INVAL;
		}
		w->uid = pw->pw_uid;
		w->gid = pw->pw_gid;
		snprintf(w->name, sizeof(w->name), "%s", pw->pw_name);
		if (w->uid == 65534)
			log_warn("sandbox.user is nobody: its uid is shared with other daemons "
			         "(files, signals, per-user kernel limits)");
	} else {
		w->uid = w->gid = sbx.prof.uid_base - 1;
		snprintf(w->name, sizeof(w->name), "uid %u", w->uid);
		if (w->uid < 1000 || (pw = getpwuid(w->uid)) != NULL) {
			fprintf(
			    stderr,
			    "airlock worker: the default worker uid %u (sandbox.uid_base - 1) %s; "
			    "set sandbox.user or another sandbox.uid_base\n",
			    w->uid, w->uid < 1000 ? "is a system uid" : "belongs to a named user");
			return AL_E_INVAL;
		}
	}
	w->set = true;
	return 0;
}

/* How the worker's file tools and the sandboxes share a workspace: with idmapped mounts
 * (the workdir's filesystem supports them) each sandbox runs as its own host uid and sees
 * the worker's files as its own; otherwise every sandbox runs as the worker's uid (logged:
 * they share its per-user kernel limits). */
static int
ws_share(const char *workdir, const struct ids *w)
{
	int fd = open(workdir, O_PATH | O_DIRECTORY | O_CLOEXEC), r;
	if (fd < 0) {
		r = -errno;
		fprintf(stderr, "airlock worker: workdir %s: %s\n", workdir, strerror(errno));
		return r;
	}
	r = sandbox_idmap_probe(fd);
	close(fd);
	if (r == 0) {
		sbx.prof.ws_owner_set = true;
		sbx.prof.ws_owner_uid = w->uid;
		sbx.prof.ws_owner_gid = w->gid;
		return 0;
	}
	log_warn("the workdir's filesystem has no idmapped mounts: every sandbox runs as the "
	         "worker's uid and shares its per-user kernel limits",
	         "workdir", workdir, "error", al_strerror(r));
	sbx.prof.run_as_set = true;
	sbx.prof.run_as_uid = w->uid;
	sbx.prof.run_as_gid = w->gid;
	return 0;
}

/* The sandbox's and the worker's user must reach the workdir: it and every ancestor
 * searchable (the monitor makes its sessions/ dir 0711 and each session's dir theirs). */
static int
check_reachable(const char *workdir, const struct ids *pw)
{
	char real[PATH_MAX], *slash;
	struct stat st;
	if (realpath(workdir, real) == NULL) {
		fprintf(stderr, "airlock worker: workdir %s: %s\n", workdir, strerror(errno));
		return -errno;
	}
	if (strcmp(real, "/") == 0) {
		fprintf(stderr, "airlock worker: workdir / cannot be a sandbox workspace\n");
		return AL_E_INVAL;
	}
	for (slash = real + strlen(real);; slash = strrchr(real, '/')) {
		if (slash == NULL)
			break;
		*slash = '\0';
		const char *d = real[0] ? real : "/";
		if (stat(d, &st) != 0)
			return -errno;
		if (!((st.st_mode & S_IXOTH) || (st.st_uid == pw->uid && (st.st_mode & S_IXUSR)) ||
		      (st.st_gid == pw->gid && (st.st_mode & S_IXGRP)))) {
			fprintf(
			    stderr,
			    "airlock worker: workdir %s: %s is not searchable by user %s, which "
			    "the worker runs as (chmod o+x it, or set sandbox.user)\n",
			    workdir, d, pw->name);
			return AL_E_PERM;
		}
		if (real[0] == '\0')
			break;
	}
	return 0;
}

/* rg as the sandbox will see it: the first on PATH that resolves into the system dirs
 * bound inside (a cargo-installed rg under /root is not there); else the built-in grep. */
static char *
find_rg(void)
{
	static const char *const sys[] = {"/usr/", "/bin/", "/sbin/", "/lib/"};
	const char *path = getenv("PATH");
	char *copy, *dir, *next, *found = NULL;
	if (path == NULL || sbx.prof.root_dir != NULL)
		return xstrdup("");
	copy = xstrdup(path);
	for (dir = copy; dir != NULL && found == NULL; dir = next) {
		char cand[PATH_MAX], real[PATH_MAX];
		char *colon = strchr(dir, ':');
		next = colon ? colon + 1 : NULL;
		if (colon)
			*colon = '\0';
		if (dir[0] != '/' ||
		    snprintf(cand, sizeof(cand), "%s/rg", dir) >= (int)sizeof(cand) ||
		    access(cand, X_OK) != 0 || realpath(cand, real) == NULL)
			continue;
		for (size_t i = 0; i < ARRAY_LEN(sys) && found == NULL; i++)
			if (strncmp(real, sys[i], strlen(sys[i])) == 0)
				found = xstrdup(real);
	}
	free(copy);
	return found ? found : xstrdup("");
}

/* ---- the egress CA's trust in the sandbox (docs/worker/egress.md "TLS termination") ---- */

#define TRUST_VARS                                                                                 \
	X(SSL_CERT_FILE)                                                                           \
	X(CURL_CA_BUNDLE)                                                                          \
	X(REQUESTS_CA_BUNDLE) X(NODE_EXTRA_CA_CERTS) X(GIT_SSL_CAINFO) X(PIP_CERT)                 \
	    X(CARGO_HTTP_CAINFO)
static struct {
	const char *env[8]; /* NAME=<bundle> for the variables above */
	struct egress_ca *ca;
	const char *ca_dir, *bundle;
} etrust;

/* Before the monitor starts (its spares are made with the profile's binds):
 * <workdir>/egress-trust/ (the worker's, 0755) is bound read-only at the same path in
 * every sandbox; the worker writes ca-bundle.pem there once it runs (egress_trust_load).
 * The CA's key is never touched here: the monitor, and the sandboxes' pid 1 it clones,
 * never hold it; only the worker, after the fork and the drop to its own uid, does. */
static int
egress_trust_prepare(const struct worker_config *c, const struct ids *wid)
{
	char *dir = xasprintf("%s/egress-trust", sbx.ws);
	char *cadir = xasprintf("%s/egress-ca", sbx.ws);
	int r = AL_E_IO;
	if (mkdirs(dir, 0755) != 0 || chmod(dir, 0755) != 0 || mkdirs(cadir, 0700) != 0 ||
	    chmod(cadir, 0700) != 0 ||
	    (wid->set &&
	     (chown(dir, wid->uid, wid->gid) != 0 || chown(cadir, wid->uid, wid->gid) != 0))) {
		fprintf(stderr, "airlock worker: egress CA directories %s, %s: %s\n", dir, cadir,
		        strerror(errno));
		free(dir);
		free(cadir);
		return r;
	}
	if (sbx.prof.n_ro_binds >= SANDBOX_MAX_BINDS) {
		fprintf(stderr, "airlock worker: sandbox.ro_binds is full: no room for the egress "
		                "trust bundle\n");
		free(dir);
		free(cadir);
		return AL_E_INVAL;
	}
	sbx.prof.ro_binds[sbx.prof.n_ro_binds++] = sb_keep(dir);
	etrust.ca_dir = sb_keep(cadir);
	etrust.bundle = sb_keep(xasprintf("%s/ca-bundle.pem", dir));
	size_t n = 0;
#define X(v) etrust.env[n++] = sb_keep(xasprintf(#v "=%s", etrust.bundle));
	TRUST_VARS
#undef X
	etrust.env[n] = NULL;
	return 0;
}

/* In the worker: the CA (made in <workdir>/egress-ca/ when the operator gave none) and
 * the sandboxes' bundle. */
static int
egress_trust_load(const struct worker_config *c)
{
	const struct egress_operator *op = c->egress_op;
	char err[512];
	int r;
	if ((r = egress_ca_open(op->ca_cert_file, op->ca_key_file, etrust.ca_dir,
	                        op->origin_ca_file, &etrust.ca, err, sizeof(err))) != 0 ||
	    (r = egress_ca_write_bundle(etrust.ca, NULL, etrust.bundle, err, sizeof(err))) != 0) {
		fprintf(stderr, "airlock worker: %s: %s\n", op->file, err);
		egress_ca_free(etrust.ca);
		etrust.ca = NULL;
		return r;
	}
	return 0;
}

struct egress_ca *
wexec_egress_ca(void)
{
	return etrust.ca;
}

int
wexec_sandbox_start(const struct worker_config *cc, bool run_mode)
{
	struct worker_config *c = (struct worker_config *)cc; /* cfg_error writes c->file.err */
	struct ids wid = {0};
	bool unsandboxed;
	int r;

	if ((r = profile_parse(c, &unsandboxed)) != 0)
		return r;
	if (unsandboxed) {
		log_warn("UNSANDBOXED: tools run directly on the host as the worker's user, with "
		         "its files, network and privileges (--unsandboxed or sandbox.degraded: "
		         "[unsandboxed])",
		         "uid", geteuid() == 0 ? "0 (root)" : "non-root");
		return 0;
	}
	if (run_mode && c->session_id != NULL) {
		/* Concurrent `worker run`s (one per --on-work item) each own a state dir; a
		 * re-run of the same session sweeps what a crashed one left. */
		char *sd = xasprintf("%s/run/%s", sbx.prof.state_dir, c->session_id);
		if (strchr(c->session_id, '/') != NULL || strstr(c->session_id, "..") != NULL) {
			free(sd);
			fprintf(stderr, "airlock worker: bad session id\n");
			return AL_E_INVAL;
		}
		sbx.prof.state_dir = sb_keep(sd);
	}
	if (sbx.prof.state_dir == NULL || (r = mkdirs(sbx.prof.state_dir, 0700)) != 0) {
		fprintf(stderr, "airlock worker: sandbox state_dir %s: %s\n",
		        sbx.prof.state_dir ? sbx.prof.state_dir : "(too many strings)",
		        al_strerror(r ? r : AL_E_INVAL));
		return r ? r : AL_E_INVAL;
	}
	if (geteuid() == 0) {
		if ((r = worker_ids(&wid)) != 0)
			return r;
		if ((r = check_reachable(c->workdir, &wid)) != 0)
			return r;
		r = ws_share(c->workdir, &wid);
		if (r != 0)
			return r;
	}
	if ((sbx.ws = realpath(c->workdir, NULL)) == NULL) {
		r = -errno;
		fprintf(stderr, "airlock worker: workdir %s: %s\n", c->workdir, strerror(errno));
		return r;
	}
	sbx.rg = find_rg();
	sbx.mcfg = (struct monitor_config){.profile = &sbx.prof,
	                                   .workspace_root = c->workdir,
	                                   .drop_ids = wid.set,
	                                   .drop_uid = wid.uid,
	                                   .drop_gid = wid.gid,
	                                   .session_dirs = true,
	                                   .workspace_mb = sbx.workspace_mb};
	if (c->egress_op && (r = egress_trust_prepare(c, &wid)) != 0)
		return r;
	/* Returns only in the worker (the child); this process stays as the monitor. */
	if ((r = monitor_start(&sbx.mcfg, &sbx.mon)) != 0) {
		/* The only conflict at start is the state dir's lock (sandbox_sweep): say which
		 * file and which setting, since the usual cause is a second worker on the host. */
		if (r == AL_E_CONFLICT)
			fprintf(stderr,
			        "airlock worker: cannot start the sandbox monitor: another worker "
			        "holds %s/worker.lock; give each worker on this host its own "
			        "sandbox.state_dir (or AIRLOCK_SANDBOX_STATE_DIR; default %s)\n",
			        sbx.prof.state_dir, SANDBOX_DEFAULT_STATE_DIR);
		else
			fprintf(stderr, "airlock worker: cannot start the sandbox monitor: %s\n",
			        al_strerror(r));
		return r;
	}
	sbx.on = true;
	if (etrust.ca_dir && (r = egress_trust_load(c)) != 0)
		return r;
	log_info("tools run in per-session sandboxes", "user", wid.set ? wid.name : "(unchanged)",
	         "sandbox_uids", sbx.prof.run_as_set ? "the worker's" : "one each", "state_dir",
	         sbx.prof.state_dir, "grep", sbx.rg[0] ? sbx.rg : "built-in");
	return 0;
}

/* The test suite's host probes (lib/sandbox/hostprobe.h): what `tests/run.sh` would skip
 * on this host, and why. Information only: nothing here fails the check. */
static void
print_host_probes(void)
{
	struct hostprobe hp;
	struct buf rep;
	hostprobe_run(&hp);
	buf_init(&rep, 16384);
	(void)hostprobe_report(&hp, &rep);
	printf("%.*s", (int)rep.len, rep.data ? rep.data : "");
	buf_free(&rep);
}

/* Whether another live worker holds <state_dir>/worker.lock (sandbox_sweep would refuse
 * this one): tried, never taken, and nothing is created. */
static bool
state_dir_held(const char *state_dir)
{
	char path[PATH_MAX];
	bool held = false;
	int fd;
	if (snprintf(path, sizeof(path), "%s/worker.lock", state_dir) >= (int)sizeof(path))
		return false;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false; /* no lock file: no worker ever ran there */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
		held = errno == EWOULDBLOCK;
	else
		flock(fd, LOCK_UN);
	close(fd);
	return held;
}

int
wexec_sandbox_check(const struct worker_config *cc)
{
	struct worker_config *c = (struct worker_config *)cc;
	struct buf rep;
	bool unsandboxed, ok = false;
	int bad = 0;
	if (profile_parse(c, &unsandboxed) != 0)
		return 1;
	if (unsandboxed) {
		printf("check: sandbox: UNSANDBOXED, tools run on the host\n");
		print_host_probes();
		return 0;
	}
	/* the same workdir checks `poll` and `run` make before they start (sandbox_start) */
	if (geteuid() == 0) {
		struct ids wid = {0};
		if (worker_ids(&wid) != 0 || check_reachable(c->workdir, &wid) != 0)
			bad = 1;
		else
			printf("check: workdir %s reachable by user %s, which the worker runs as\n",
			       c->workdir, wid.name);
	}
	/* the lock poll would stop at (a second worker on one host) */
	if (state_dir_held(sbx.prof.state_dir)) {
		fprintf(stderr,
		        "check: another worker holds %s/worker.lock: give each worker on this host "
		        "its own sandbox.state_dir (or AIRLOCK_SANDBOX_STATE_DIR)\n",
		        sbx.prof.state_dir);
		bad = 1;
	} else
		printf("check: sandbox.state_dir %s is this worker's (no other worker holds it)\n",
		       sbx.prof.state_dir);
	buf_init(&rep, 16384);
	if (sandbox_preflight(&rep, &ok) != 0)
		ok = false;
	printf("%.*s", (int)rep.len, rep.data ? rep.data : "");
	print_host_probes();
	if (!ok) {
		fprintf(stderr, "check: sandboxes cannot be created on this host (see the fail "
		                "lines; --unsandboxed runs tools without one)\n");
		bad = 1;
	}
	buf_free(&rep);
	return bad;
}

/* Names that reach a sandboxed process from the toolset's env; nothing else of the
 * worker's environment (its PATH, HOME, credentials) enters. */
static bool
env_allowed(const char *e)
{
	static const char *const names[] = {"TERM=", "PS1=", "PS2=", "LANG=", "TZ=", "LC_"};
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (strncmp(e, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

static int
sb_spawn(void *arg, const struct tool_spawn_req *req, void **proc)
{
	struct wexec *e = arg;
	const char *env[96]; /* proxy variables, ≤ 32 secret placeholders, the toolset's */
	int fds[SANDBOX_MAX_CHILD_FDS], nul = -1, r;
	size_t n = 0;
	struct sandbox_proc *p = NULL;

	if (req->nfds < 0 || req->nfds > SANDBOX_MAX_CHILD_FDS)
		return AL_E_INVAL;
	/* the proxy's variables first: the toolset's env cannot name them (env_allowed) */
	for (size_t i = 0; e->net && egress_proxy_env[i] != NULL && n < ARRAY_LEN(env) - 1; i++)
		env[n++] = egress_proxy_env[i];
	/* the egress CA's bundle, for the clients that read one of these (TLS termination) */
	for (size_t i = 0; e->net && etrust.ca && etrust.env[i] != NULL && n < ARRAY_LEN(env) - 1;
	     i++)
		env[n++] = etrust.env[i];
	for (size_t i = 0; e->extra_env && e->extra_env[i] != NULL && n < ARRAY_LEN(env) - 1; i++)
		env[n++] = e->extra_env[i];
	for (size_t i = 0; req->envp != NULL && req->envp[i] != NULL && n < ARRAY_LEN(env) - 1; i++)
		if (env_allowed(req->envp[i]))
			env[n++] = req->envp[i];
	env[n] = NULL;
	for (int i = 0; i < req->nfds; i++) {
		fds[i] = req->fds[i];
		if (fds[i] < 0 && i > 2) { /* the toolset's contract: -1 is /dev/null */
			if (nul < 0 && (nul = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
				return -errno;
			fds[i] = nul;
		}
	}
	pthread_mutex_lock(&sbx.mu);
	r = monitor_client_spawn_fds(sbx.mon, e->sb_id, req->path, req->argv, env, req->cwd, fds,
	                             (size_t)req->nfds, &p);
	if (r == 0)
		e->sb_live++;
	pthread_mutex_unlock(&sbx.mu);
	if (nul >= 0)
		close(nul);
	if (r != 0)
		return r;
	*proc = p;
	return 0;
}

static void
sb_kill(void *arg, void *proc)
{
	struct wexec *e = arg;
	pthread_mutex_lock(&sbx.mu);
	/* The last live process (the shell): everything in the sandbox goes, setsid'd
	 * daemons included. Otherwise (rg while the shell lives) only its process group. */
	if (e->sb_live <= 1)
		(void)monitor_client_kill(sbx.mon, e->sb_id, -1, SIGKILL);
	else
		(void)sandbox_proc_kill(proc, SIGKILL);
	pthread_mutex_unlock(&sbx.mu);
}

static int
sb_reap(void *arg, void *proc, int *wstatus)
{
	struct wexec *e = arg;
	int st = 0, r = sandbox_proc_wait(proc, &st);
	pthread_mutex_lock(&sbx.mu);
	e->sb_live--;
	pthread_mutex_unlock(&sbx.mu);
	sandbox_proc_free(proc);
	if (wstatus != NULL)
		*wstatus = st;
	return r == AL_E_CLOSED ? 0 : r; /* died with its sandbox: status says SIGKILL */
}

/* The tool context and the sandbox go together. */
static void
ctx_free(struct wexec *e)
{
	tool_ctx_free(e->ctx);
	e->ctx = NULL;
	wexec_set_env(e, NULL); /* nothing of the session runs any more */
	if (e->sb_open) {
		pthread_mutex_lock(&sbx.mu);
		int r = monitor_client_destroy(sbx.mon, e->sb_id);
		pthread_mutex_unlock(&sbx.mu);
		if (r != 0 && r != AL_E_NOTFOUND)
			log_warn("sandbox destroy failed", "error", al_strerror(r));
		e->sb_open = false;
		e->sb_live = 0;
	}
	if (e->ws != NULL) {
		/* Nothing of the session runs now: no setuid/setgid file stays behind in the
		 * host workspace (tools_setid.c). */
		unsigned long n = 0;
		int r = tool_setid_strip(e->ws, 1000000, &n);
		if (n > 0) {
			char num[24];
			snprintf(num, sizeof(num), "%lu", n);
			log_warn("cleared setuid/setgid bits in the workspace", "workspace", e->ws,
			         "files", num);
		}
		if (r != 0 && r != -ENOENT)
			log_warn("cannot check the workspace for setuid/setgid files", "workspace",
			         e->ws, "error", al_strerror(r));
		free(e->ws);
		e->ws = NULL;
	}
}

static json_t *
text_content(const char *text)
{
	return json_pack("[{s:s, s:s}]", "type", "text", "text", text);
}

static void *
thread_main(void *arg)
{
	struct wexec *e = arg;
	/* signals belong to the loop thread's signalfd; a thread that left them unblocked
	 * would take SIGTERM's default action for the whole process */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&e->mu);
	for (;;) {
		while (!e->has_job && !e->quit)
			pthread_cond_wait(&e->cv, &e->mu);
		if (e->quit)
			break;
		e->has_job = false;
		char *name = e->name;
		json_t *input = e->input;
		struct tool_ctx *ctx = e->ctx;
		pthread_mutex_unlock(&e->mu);

		json_t *content = NULL;
		bool is_error = true;
		int r = ctx ? tool_run(ctx, name, input, &content, &is_error) : AL_E_INTERNAL;
		if (r != 0 || content == NULL) {
			json_decref(content);
			content = text_content(r == AL_E_NOTFOUND ? "unknown tool"
			                                          : "tool execution failed");
			is_error = true;
		}

		pthread_mutex_lock(&e->mu);
		e->content = content;
		e->is_error = is_error;
		e->finished = true;
		pthread_cond_broadcast(&e->done_cv);
		uint64_t one = 1;
		if (write(e->efd, &one, sizeof(one)) < 0) {
			/* eventfd counter cannot overflow with one job; nothing to do */
		}
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

static void
on_event(struct loop *l, int fd, int mask, void *arg)
{
	struct wexec *e = arg;
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&e->mu);
	if (!e->finished) {
		pthread_mutex_unlock(&e->mu);
		return;
	}
	e->finished = false;
	json_t *content = e->content;
	bool is_error = e->is_error;
	e->content = NULL;
	free(e->name);
	e->name = NULL;
	json_decref(e->input);
	e->input = NULL;
	wexec_done_fn *done = e->done;
	void *darg = e->arg;
	e->busy = false;
	pthread_mutex_unlock(&e->mu);
	/* A monitor that died (kill -9) closed its sandboxes' sockets before its death
	 * reached us (PDEATHSIG): the call then ends as "bash session terminated". That is
	 * not the call's result: leave it unanswered, so the next worker runs it, and go the
	 * way the kernel is sending us anyway. */
	if (sbx.on) {
		pthread_mutex_lock(&sbx.mu);
		bool gone = monitor_client_gone(sbx.mon);
		pthread_mutex_unlock(&sbx.mu);
		if (gone) {
			log_error(
			    "the sandbox monitor is gone; exiting without reporting the call");
			_exit(1);
		}
	}
	if (e->close_pending) {
		e->close_pending = false;
		ctx_free(e);
	}
	if (done != NULL)
		done(darg, content, is_error);
	else
		json_decref(content);
}

int
wexec_new(struct loop *l, struct wexec **out)
{
	int r = AL_E_INTERNAL;
	struct wexec *e = xcalloc(1, sizeof(*e));
	e->loop = l;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	pthread_cond_init(&e->done_cv, NULL);
	e->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->efd < 0) {
		r = -errno;
		goto out;
	}
	if ((r = loop_fd_set(l, e->efd, LOOP_READ, on_event, e)) != 0)
		goto out;
	if ((r = -pthread_create(&e->th, NULL, thread_main, e)) != 0)
		goto out;
	e->th_started = true;
	*out = e;
	e = NULL;
	r = 0;
out:
	wexec_free(e);
	return r;
}

void
wexec_free(struct wexec *e)
{
	if (e == NULL)
		return;
	if (e->th_started) {
		pthread_mutex_lock(&e->mu);
		e->quit = true;
		pthread_cond_signal(&e->cv);
		pthread_mutex_unlock(&e->mu);
		if (e->ctx)
			tool_cancel(e->ctx);
		pthread_join(e->th, NULL);
	}
	if (e->efd >= 0) {
		loop_fd_del(e->loop, e->efd);
		close(e->efd);
	}
	ctx_free(e);
	free(e->name);
	json_decref(e->input);
	json_decref(e->content);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cv);
	pthread_cond_destroy(&e->done_cv);
	free(e);
}

/* Session ids name cgroups and journal files: [A-Za-z0-9_-]{1,64}, else a fresh one. */
static void
sandbox_name(const char *session_id, char out[65])
{
	size_t n = session_id ? strlen(session_id) : 0, i;
	bool ok = n > 0 && n <= 64;
	for (i = 0; ok && i < n; i++) {
		char c = session_id[i];
		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		     c == '_' || c == '-';
	}
	if (ok) {
		memcpy(out, session_id, n + 1);
		return;
	}
	unsigned char b[8];
	random_bytes(b, sizeof(b));
	snprintf(out, 65, "s%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
	         b[6], b[7]);
}

/* Unsandboxed: the worker makes <workdir>/sessions/<name> itself, as the monitor would
 * (the same layout either way). */
static int
ws_local(const char *workdir, const char *name, bool create, int *dfd, int *sfd)
{
	int rootfd = open(workdir, O_PATH | O_DIRECTORY | O_CLOEXEC), r;
	*dfd = *sfd = -1;
	if (rootfd < 0)
		return -errno;
	r = *sfd = sandbox_ws_open(rootfd, "sessions", create ? SANDBOX_WS_CREATE : 0);
	close(rootfd);
	if (r < 0)
		return r;
	if ((r = sandbox_ws_open(*sfd, name, create ? SANDBOX_WS_CREATE : 0)) < 0) {
		close(*sfd);
		*sfd = -1;
		return r;
	}
	*dfd = r;
	return 0;
}

int
wexec_session_open(struct wexec *e, const char *workdir, const char *session_id, int *egress_fd)
{
	char name[65], *ws = NULL;
	int r, dfd, sfd;
	if (egress_fd)
		*egress_fd = -1;
	if (e->ctx != NULL)
		return AL_E_CONFLICT;
	e->net = false;
	sandbox_name(session_id, name);
	if (!sbx.on) {
		if ((r = ws_local(workdir, name, true, &dfd, &sfd)) != 0) {
			log_error("cannot make the session's workspace", "workdir", workdir,
			          "error", al_strerror(r));
			return r;
		}
		close(dfd);
		close(sfd);
		ws = xasprintf("%s/sessions/%s", workdir, name);
		r = tool_ctx_new(ws, NULL, &e->ctx);
		if (r == 0)
			e->ws = ws;
		else
			free(ws);
		return r;
	}
	ws = xasprintf("%s/sessions/%s", sbx.ws, name);
	pthread_mutex_lock(&sbx.mu);
	r = monitor_client_create(sbx.mon, name, ws, &e->sb_id);
	/* before anything runs in it: nothing inside can have taken the port first */
	if (r == 0 && egress_fd != NULL &&
	    (r = monitor_client_egress(sbx.mon, e->sb_id, egress_fd)) != 0)
		(void)monitor_client_destroy(sbx.mon, e->sb_id);
	pthread_mutex_unlock(&sbx.mu);
	if (r != 0) {
		log_error("cannot create the session's sandbox", "session_id", name, "error",
		          al_strerror(r));
		free(ws);
		return r;
	}
	e->net = egress_fd != NULL;
	e->sb_open = true;
	e->sb_live = 0;
	struct tool_spawner sp = {.spawn = sb_spawn, .kill = sb_kill, .reap = sb_reap, .arg = e};
	r = tool_ctx_new(ws, &sp, &e->ctx);
	e->ws = ws;
	if (r != 0) {
		ctx_free(e);
		return r;
	}
	tool_ctx_set_rg(e->ctx, sbx.rg);
	return 0;
}

int
wexec_workspace_remove(struct wexec *e, const char *workdir, const char *session_id)
{
	char name[65], aside[96];
	int r, dfd, sfd;
	if (e->ctx != NULL)
		return AL_E_CONFLICT; /* its session's tools are still open */
	sandbox_name(session_id, name);
	if (sbx.on) {
		pthread_mutex_lock(&sbx.mu);
		r = monitor_client_remove(sbx.mon, name);
		pthread_mutex_unlock(&sbx.mu);
		return r;
	}
	if ((r = ws_local(workdir, name, false, &dfd, &sfd)) != 0)
		return r == -ENOENT ? 0 : r;
	/* Aside first, like the monitor: the name is free at once. */
	snprintf(aside, sizeof(aside), ".rm-%s-%d", name, (int)getpid());
	if (renameat(sfd, name, sfd, aside) != 0)
		r = -errno;
	else if ((r = sandbox_ws_empty(dfd)) == 0 && unlinkat(sfd, aside, AT_REMOVEDIR) != 0)
		r = -errno;
	close(dfd);
	close(sfd);
	return r;
}

void
wexec_set_env(struct wexec *e, char **env)
{
	for (size_t i = 0; e->extra_env && e->extra_env[i]; i++)
		free(e->extra_env[i]);
	free(e->extra_env);
	e->extra_env = env;
}

void
wexec_session_close(struct wexec *e)
{
	if (e->busy) {
		e->close_pending = true; /* the thread still uses ctx */
		return;
	}
	ctx_free(e);
}

bool
wexec_known(const char *name)
{
	return tool_known(name);
}

int
wexec_run(struct wexec *e, const char *name, json_t *input, wexec_done_fn *done, void *arg)
{
	if (e->busy || e->ctx == NULL)
		return AL_E_CONFLICT;
	pthread_mutex_lock(&e->mu);
	e->name = xstrdup(name);
	e->input = input ? json_deep_copy(input) : json_object();
	e->done = done;
	e->arg = arg;
	e->busy = true;
	e->has_job = true;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	return 0;
}

void
wexec_cancel(struct wexec *e)
{
	if (e->busy && e->ctx)
		tool_cancel(e->ctx);
}

void
wexec_abort(struct wexec *e, unsigned ms)
{
	if (e == NULL || !e->busy || e->ctx == NULL)
		return;
	tool_cancel(e->ctx);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&e->mu);
	while (!e->finished && (e->has_job || e->busy))
		if (pthread_cond_timedwait(&e->done_cv, &e->mu, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&e->mu);
}

void
wexec_orphan(struct wexec *e)
{
	e->done = NULL;
	e->arg = NULL;
}

int
wexec_read_only_dir(struct wexec *e, const char *dir)
{
	if (e->ctx == NULL || e->busy)
		return AL_E_CONFLICT; /* the ctx is the executor's while a call runs */
	return tool_ctx_allow_root(e->ctx, dir, true);
}

bool
wexec_busy(const struct wexec *e)
{
	return e->busy;
}

const char *
wexec_workspace(const struct wexec *e)
{
	return e->ctx ? e->ws : NULL;
}
