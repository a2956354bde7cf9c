/* `airlock worker poll|run|check`: options, the poller (long-poll, backoff, ack,
 * healthcheck skip), in-process items one at a time, the --on-work launcher, and signal
 * handling (first signal drains within 30 s, a second exits at once). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"
#include "worker.h"
#include "xalloc.h"

#define POLL_BLOCK_MS 999
#define POLL_BACKOFF_MAX_MS 60000
#define EMPTY_LOG_EVERY_MS 300000
#define SHUTDOWN_GRACE_MS 30000
#define MAX_CHILDREN 64

extern char **environ;
int worker_main(int argc, char **argv);

struct child {
	pid_t pid;
	struct loop_timer *kill_timer;
	struct worker *w;
	char work_id[80], session_id[80]; /* for the exit line */
	char secret_dir[256];             /* holds the item's secret file; "" when none */
};
static struct child children[MAX_CHILDREN];

static void poll_now(struct worker *w);
static void maybe_exit(struct worker *w);

/* Which modes an option applies to, for each mode's own --help. */
#define M_POLL 1u
#define M_RUN 2u
#define M_CHECK 4u
#define M_ALL (M_POLL | M_RUN | M_CHECK)

static const struct wopt {
	const char *name; /* "--x VALUE" as shown */
	unsigned modes;
	const char *help;
} wopts[] = {
    {"--environment-id ID", M_ALL, "[ANTHROPIC_ENVIRONMENT_ID]"},
    {"--environment-key KEY", M_ALL, "[ANTHROPIC_ENVIRONMENT_KEY] prefer the variable"},
    {"--base-url URL", M_ALL, "[ANTHROPIC_BASE_URL] default https://api.anthropic.com"},
    {"--workdir DIR", M_ALL, "[AIRLOCK_WORKDIR] tool working directory (default .)"},
    {"--on-work SCRIPT", M_POLL | M_CHECK, "launch SCRIPT per item instead of running it"},
    {"--max-idle DURATION", M_POLL | M_RUN, "[AIRLOCK_MAX_IDLE] release an idle session (60s)"},
    {"--worker-id ID", M_POLL, "[ANTHROPIC_WORKER_ID] default $HOSTNAME-<uuid>"},
    {"--on-work-grace DURATION", M_POLL, "after SIGTERM, kill a script after this (30s)"},
    {"--session-id ID", M_RUN, "[ANTHROPIC_SESSION_ID]"},
    {"--work-id ID", M_RUN, "[ANTHROPIC_WORK_ID]"},
    {"--work-secret-file FILE", M_RUN, "[ANTHROPIC_WORK_SECRET_FILE] not world-accessible"},
    {"--config FILE", M_ALL, "YAML (docs/worker/config.md); environment and flags win"},
    {"--ca-file FILE", M_ALL, "[AIRLOCK_CA_FILE] PEM bundle to verify the API"},
    {"--unsandboxed", M_ALL, "run tools on the host, without a sandbox (logged)"},
    {"--egress-policy FILE", M_ALL, "[AIRLOCK_EGRESS_POLICY] YAML: hosts sandboxes may reach"},
    {"--log-format text|json", M_ALL, "[AIRLOCK_LOG_FORMAT] (text)"},
    {"--log-level LEVEL", M_ALL, "[AIRLOCK_LOG_LEVEL] debug|info|warn|error (info)"},
    {"-h, --help", M_ALL, "this text"},
};

static unsigned
mode_bit(const char *mode)
{
	if (mode == NULL)
		return 0;
	if (strcmp(mode, "poll") == 0)
		return M_POLL;
	if (strcmp(mode, "run") == 0)
		return M_RUN;
	if (strcmp(mode, "check") == 0)
		return M_CHECK;
	return 0;
}

/* mode NULL: the overview; else that mode's own text and options. */
static void
usage(FILE *f, const char *mode)
{
	static const char *const what[] = {
	    "poll   claim work items from the environment's queue and run their tools",
	    "run    handle one item given by --work-id/--session-id (inside --on-work)",
	    "check  validate options, workdir, sandbox and credentials, then exit",
	};
	unsigned m = mode_bit(mode);
	if (m == 0) {
		fprintf(f, "usage: airlock worker poll|run|check [options]\n\n");
		for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++)
			fprintf(f, "  %s\n", what[i]);
		fprintf(f, "\nRun 'airlock worker MODE --help' for a mode's options.\n");
		return;
	}
	fprintf(f, "usage: airlock worker %s [options]\n\n  %s\n\noptions [environment]:\n", mode,
	        what[m == M_POLL  ? 0
	             : m == M_RUN ? 1
	                          : 2]);
	for (size_t i = 0; i < sizeof(wopts) / sizeof(wopts[0]); i++)
		if (wopts[i].modes & m)
			fprintf(f, "  %-26s %s\n", wopts[i].name, wopts[i].help);
	fprintf(f,
	        "\nenvironment also read: AIRLOCK_SANDBOX_STATE_DIR (sandbox.state_dir, default\n"
	        "  " SANDBOX_DEFAULT_STATE_DIR "; one per worker on a host),\n"
	        "  AIRLOCK_SANDBOX_WORKSPACE_MB (per-session workspace cap), HTTPS_PROXY and\n"
	        "  NO_PROXY (through curl)%s\n",
	        m == M_RUN
	            ? ",\n  ANTHROPIC_WORK_SECRET (the secret itself, as the SDK's handle_item)"
	            : "");
	fprintf(f, "\nexit status: 0 ok, 1 failure, 2 usage or configuration error\n");
}

static char *
default_worker_id(void)
{
	char host[256] = "worker";
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "worker");
	unsigned char u[16];
	random_bytes(u, sizeof(u));
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	return xasprintf("%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	                 host, u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
	                 u[11], u[12], u[13], u[14], u[15]);
}

static int
read_secret_file(const char *path, char **out)
{
	int r = 0, fd = -1;
	struct stat st;
	char buf[65536];
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		fprintf(stderr, "airlock worker: %s: %s\n", path, al_strerror(r));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r = AL_E_INVAL;
		fprintf(stderr, "airlock worker: %s: not a regular file\n", path);
		goto out;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		r = AL_E_PERM;
		fprintf(stderr,
		        "airlock worker: %s: must not be world-readable or -writable (chmod 600)\n",
		        path);
		goto out;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0 || (size_t)n >= sizeof(buf) - 1) {
		r = n < 0 ? -errno : AL_E_TOOBIG;
		fprintf(stderr, "airlock worker: %s: %s\n", path, al_strerror(r));
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	*out = xstrndup(buf, (size_t)n);
out:
	explicit_wipe(buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	return r;
}

static void
config_free(struct worker_config *c)
{
	free(c->environment_id);
	secret_free(c->environment_key);
	free(c->base_url);
	free(c->workdir);
	free(c->on_work);
	free(c->worker_id);
	free(c->ca_file);
	free(c->egress_policy);
	egress_operator_free(c->egress_op);
	c->egress_op = NULL;
	free(c->session_id);
	free(c->work_id);
	secret_free(c->work_secret);
	if (c->has_file)
		cfg_free(&c->file);
	c->has_file = false;
	c->sandbox = NULL;
}

static void
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v ? xstrdup(v) : NULL;
}

static const char *
env_or_null(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? v : NULL;
}

/* --config FILE (docs/worker/config.md): the lowest layer above the defaults. Unknown
 * keys are errors; the environment key comes only from a file (never inline). */
static int
config_file_load(struct worker_config *c, const char *path)
{
	static const char *const top[] = {"environment_id",
	                                  "environment_key_file",
	                                  "base_url",
	                                  "workdir",
	                                  "on_work",
	                                  "on_work_grace_seconds",
	                                  "max_idle_seconds",
	                                  "worker_id",
	                                  "ca_file",
	                                  "log",
	                                  "sandbox",
	                                  "egress_policy",
	                                  NULL};
	static const char *const log_keys[] = {"format", "level", NULL};
	struct cfg *f = &c->file;
	const json_t *logm = NULL, *sb = NULL;
	char *key_file = NULL, *fmt = NULL, *lvl = NULL;
	uint64_t idle_s = c->max_idle_ms / 1000, grace_s = c->on_work_grace_ms / 1000;
	int r;

	if (c->has_file) {
		fprintf(stderr, "airlock worker: --config given twice\n");
		return AL_E_INVAL;
	}
	r = cfg_load(f, path);
	c->has_file = true; /* cfg_load leaves f freeable even on failure */
	if (r != 0)
		goto out;
	if (json_object_get(f->root, "environment_key") != NULL) {
		r = cfg_error(f, json_object_get(f->root, "environment_key"),
		              "environment_key: keys never go inline; use environment_key_file "
		              "or ANTHROPIC_ENVIRONMENT_KEY");
		goto out;
	}
	if ((r = cfg_only_keys(f, f->root, top)) ||
	    (r = cfg_get_str(f, f->root, "environment_id", &c->environment_id)) ||
	    (r = cfg_get_str(f, f->root, "environment_key_file", &key_file)) ||
	    (r = cfg_get_str(f, f->root, "base_url", &c->base_url)) ||
	    (r = cfg_get_str(f, f->root, "workdir", &c->workdir)) ||
	    (r = cfg_get_str(f, f->root, "on_work", &c->on_work)) ||
	    (r = cfg_get_seconds(f, f->root, "on_work_grace_seconds", 0, 3600, &grace_s)) ||
	    (r = cfg_get_seconds(f, f->root, "max_idle_seconds", 0, 7 * 86400, &idle_s)) ||
	    (r = cfg_get_str(f, f->root, "worker_id", &c->worker_id)) ||
	    (r = cfg_get_str(f, f->root, "ca_file", &c->ca_file)) ||
	    (r = cfg_get_str(f, f->root, "egress_policy", &c->egress_policy)) ||
	    (r = cfg_get_map(f, f->root, "log", &logm)) ||
	    (r = cfg_get_map(f, f->root, "sandbox", &sb)))
		goto out;
	/* A scheme the HTTP client cannot speak would only show as a failed poll later. */
	if (c->base_url && strncmp(c->base_url, "http://", 7) != 0 &&
	    strncmp(c->base_url, "https://", 8) != 0) {
		r = cfg_error(f, json_object_get(f->root, "base_url"),
		              "base_url: must be an http:// or https:// URL");
		goto out;
	}
	if (logm &&
	    ((r = cfg_only_keys(f, logm, log_keys)) || (r = cfg_get_str(f, logm, "format", &fmt)) ||
	     (r = cfg_get_str(f, logm, "level", &lvl))))
		goto out;
	if (fmt && log_parse_format(fmt, &c->log_format) != 0) {
		r = cfg_error(f, json_object_get(logm, "format"), "log.format: text or json");
		goto out;
	}
	if (lvl && log_parse_level(lvl, &c->log_level) != 0) {
		r = cfg_error(f, json_object_get(logm, "level"),
		              "log.level: debug, info, warn or error");
		goto out;
	}
	c->max_idle_ms = idle_s * 1000;
	c->on_work_grace_ms = grace_s * 1000;
	c->sandbox = sb;
	if (key_file != NULL) {
		secret_free(c->environment_key);
		c->environment_key = NULL;
		if ((r = read_secret_file(key_file, &c->environment_key)) != 0)
			goto out_quiet; /* read_secret_file printed why */
		if (c->environment_key[0] == '\0') {
			r = cfg_error(f, json_object_get(f->root, "environment_key_file"),
			              "environment_key_file: %s is empty", key_file);
			goto out;
		}
	}
	r = 0;
out:
	if (r != 0)
		fprintf(stderr, "airlock worker: %s\n", f->err[0] ? f->err : path);
out_quiet:
	free(key_file);
	free(fmt);
	free(lvl);
	return r;
}

/* The value of --config, found before anything else so the file is the lowest layer.
 * Every other option takes a value, so the scan skips values the same way the parser
 * below consumes them. */
static const char *
find_config_arg(int argc, char **argv)
{
	const char *path = NULL;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--config=", 9) == 0)
			path = a + 9;
		else if (strcmp(a, "--config") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strncmp(a, "--", 2) == 0 && strchr(a, '=') == NULL &&
		         strcmp(a, "--help") != 0 && strcmp(a, "--unsandboxed") != 0)
			i++;
	}
	return path;
}

/* Returns 0, 1 (help printed) or an error after printing it. Precedence: defaults <
 * --config file < environment < flags. */
static int
parse_args(int argc, char **argv, struct worker_config *c)
{
	char *secret_file = NULL;
	const char *v;
	int r = AL_E_INVAL;
	c->max_idle_ms = 60000;
	c->on_work_grace_ms = SHUTDOWN_GRACE_MS;
	c->log_format = LOG_FMT_TEXT;
	c->log_level = LOG_LVL_INFO;
	const char *cfg_path = find_config_arg(argc, argv);
	if (cfg_path != NULL && (r = config_file_load(c, cfg_path)) != 0)
		goto out;
	r = AL_E_INVAL;
	if ((v = env_or_null("ANTHROPIC_ENVIRONMENT_ID")))
		set_str(&c->environment_id, v);
	if ((v = env_or_null("ANTHROPIC_ENVIRONMENT_KEY"))) {
		secret_free(c->environment_key);
		c->environment_key = xstrdup(v);
	}
	if ((v = env_or_null("ANTHROPIC_BASE_URL")))
		set_str(&c->base_url, v);
	if ((v = env_or_null("ANTHROPIC_WORKER_ID")))
		set_str(&c->worker_id, v);
	if ((v = env_or_null("AIRLOCK_CA_FILE")))
		set_str(&c->ca_file, v);
	if ((v = env_or_null("AIRLOCK_EGRESS_POLICY")))
		set_str(&c->egress_policy, v);
	if ((v = env_or_null("AIRLOCK_WORKDIR")))
		set_str(&c->workdir, v);
	if ((v = env_or_null("AIRLOCK_MAX_IDLE")) &&
	    parse_duration_ms(v, 7 * 86400000ull, &c->max_idle_ms) != 0) {
		fprintf(stderr, "airlock worker: AIRLOCK_MAX_IDLE: a duration (60s, 2m)\n");
		goto out;
	}
	if ((v = env_or_null("AIRLOCK_LOG_FORMAT")) && log_parse_format(v, &c->log_format) != 0) {
		fprintf(stderr, "airlock worker: AIRLOCK_LOG_FORMAT: text or json\n");
		goto out;
	}
	if ((v = env_or_null("AIRLOCK_LOG_LEVEL")) && log_parse_level(v, &c->log_level) != 0) {
		fprintf(stderr, "airlock worker: AIRLOCK_LOG_LEVEL: debug, info, warn or error\n");
		goto out;
	}
	set_str(&c->session_id, env_or_null("ANTHROPIC_SESSION_ID"));
	set_str(&c->work_id, env_or_null("ANTHROPIC_WORK_ID"));
	set_str(&secret_file, env_or_null("ANTHROPIC_WORK_SECRET_FILE"));
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout, argv[1]);
			r = 1;
			goto out;
		}
		if (strncmp(a, "--", 2) != 0) {
			fprintf(stderr, "airlock worker: unexpected argument '%s'\n", a);
			goto out;
		}
		if (strcmp(a, "--unsandboxed") == 0) { /* the one flag without a value */
			c->unsandboxed = true;
			continue;
		}
		const char *eq = strchr(a, '=');
		size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
		/* a name nobody defined is that, not a flag missing its value */
		bool known = false;
		for (size_t k = 0; k < sizeof(wopts) / sizeof(wopts[0]) && !known; k++)
			known = strncmp(wopts[k].name, a, nlen) == 0 &&
			        (wopts[k].name[nlen] == ' ' || wopts[k].name[nlen] == '\0');
		if (!known) {
			fprintf(stderr, "airlock worker %s: unknown option '%.*s'\n", argv[1],
			        (int)nlen, a);
			fprintf(stderr, "Run 'airlock worker %s --help' for the options.\n",
			        argv[1]);
			goto out;
		}
		v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (v == NULL) {
			fprintf(stderr, "airlock worker %s: option %s needs a value\n", argv[1], a);
			goto out;
		}
#define OPT(name) (nlen == strlen(name) && strncmp(a, name, nlen) == 0)
		if (OPT("--config"))
			; /* loaded first */
		else if (OPT("--environment-id"))
			set_str(&c->environment_id, v);
		else if (OPT("--environment-key")) {
			secret_free(c->environment_key);
			c->environment_key = xstrdup(v);
		} else if (OPT("--base-url"))
			set_str(&c->base_url, v);
		else if (OPT("--workdir"))
			set_str(&c->workdir, v);
		else if (OPT("--on-work"))
			set_str(&c->on_work, v);
		else if (OPT("--worker-id"))
			set_str(&c->worker_id, v);
		else if (OPT("--ca-file"))
			set_str(&c->ca_file, v);
		else if (OPT("--egress-policy"))
			set_str(&c->egress_policy, v);
		else if (OPT("--session-id"))
			set_str(&c->session_id, v);
		else if (OPT("--work-id"))
			set_str(&c->work_id, v);
		else if (OPT("--work-secret-file"))
			set_str(&secret_file, v);
		else if (OPT("--max-idle")) {
			if (parse_duration_ms(v, 7 * 86400000ull, &c->max_idle_ms) != 0) {
				fprintf(stderr, "airlock worker: bad --max-idle '%s'\n", v);
				goto out;
			}
		} else if (OPT("--on-work-grace")) {
			if (parse_duration_ms(v, 3600000ull, &c->on_work_grace_ms) != 0) {
				fprintf(stderr, "airlock worker: bad --on-work-grace '%s'\n", v);
				goto out;
			}
		} else if (OPT("--log-format")) {
			if (log_parse_format(v, &c->log_format) != 0) {
				fprintf(stderr, "airlock worker: --log-format is text or json\n");
				goto out;
			}
		} else if (OPT("--log-level")) {
			if (log_parse_level(v, &c->log_level) != 0) {
				fprintf(
				    stderr,
				    "airlock worker: --log-level is debug, info, warn or error\n");
				goto out;
			}
		} else {
			fprintf(stderr, "airlock worker: unknown option '%.*s'\n", (int)nlen, a);
			goto out;
		}
#undef OPT
	}
	if (c->base_url == NULL)
		set_str(&c->base_url, "https://api.anthropic.com");
	size_t bl = strlen(c->base_url);
	while (bl > 0 && c->base_url[bl - 1] == '/')
		c->base_url[--bl] = '\0';
	if (c->workdir == NULL)
		set_str(&c->workdir, ".");
	if (c->worker_id == NULL)
		c->worker_id = default_worker_id();
	if (secret_file != NULL && (r = read_secret_file(secret_file, &c->work_secret)) != 0)
		goto out;
	if (c->egress_policy != NULL) {
		char err[600];
		if ((r = egress_operator_load(c->egress_policy, &c->egress_op, err, sizeof(err))) !=
		    0) {
			fprintf(stderr, "airlock worker: --egress-policy: %s\n", err);
			goto out;
		}
	}
	if (c->work_secret == NULL && env_or_null("ANTHROPIC_WORK_SECRET") != NULL)
		c->work_secret = xstrdup(getenv("ANTHROPIC_WORK_SECRET")); /* SDK handle_item */
	r = 0;
out:
	free(secret_file);
	return r;
}

/* ---- --on-work children ---- */

/* Each script leads its own process group, so a signal takes what it started too (a
 * script killed alone would leave its children running). */
static void
kill_group(pid_t pid, int sig)
{
	if (kill(-pid, sig) != 0)
		(void)kill(pid, sig);
}

static void
on_child_kill(struct loop *l, void *arg)
{
	struct child *c = arg;
	c->kill_timer = NULL;
	if (c->pid > 0)
		kill_group(c->pid, SIGKILL);
}

/* The item's secret goes to the script as a file of its own (0600 in a fresh 0700
 * directory under $TMPDIR), named by ANTHROPIC_WORK_SECRET_FILE — what `worker run`
 * reads — and is removed when the script ends, so a script needs neither jq nor its own
 * cleanup, and no secret outlives its item on disk. */
static int
secret_dir_write(const char *secret, char *dir, size_t dirlen)
{
	const char *tmp = getenv("TMPDIR");
	char file[320];
	int fd, r = 0;
	if (tmp == NULL || tmp[0] != '/')
		tmp = "/tmp";
	if ((size_t)snprintf(dir, dirlen, "%s/airlock-work-XXXXXX", tmp) >= dirlen)
		return AL_E_TOOBIG;
	if (mkdtemp(dir) == NULL) {
		r = -errno;
		dir[0] = '\0';
		return r;
	}
	snprintf(file, sizeof(file), "%s/secret", dir);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, secret, strlen(secret)) != (ssize_t)strlen(secret))
		r = fd < 0 ? -errno : AL_E_IO;
	if (fd >= 0)
		close(fd);
	return r;
}

static void
secret_dir_remove(char *dir)
{
	char file[320];
	if (dir[0] == '\0')
		return;
	snprintf(file, sizeof(file), "%s/secret", dir);
	if ((unlink(file) != 0 && errno != ENOENT) || rmdir(dir) != 0)
		log_warn("cannot remove an on-work secret file", "dir", dir, "error",
		         strerror(errno));
	dir[0] = '\0';
}

static void
on_child_exit(struct loop *l, pid_t pid, int wstatus, void *arg)
{
	struct worker *w = arg;
	char code[16], wid[80] = "", sid[80] = "";
	for (size_t i = 0; i < MAX_CHILDREN; i++) {
		if (children[i].pid != pid)
			continue;
		secret_dir_remove(children[i].secret_dir);
		snprintf(wid, sizeof(wid), "%s", children[i].work_id);
		snprintf(sid, sizeof(sid), "%s", children[i].session_id);
		loop_timer_cancel(l, children[i].kill_timer);
		children[i] = (struct child){0};
	}
	w->nchildren--;
	snprintf(code, sizeof(code), "%d",
	         WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus));
	log_info("on-work script exited", "status", code, "work_id", wid, "session_id", sid,
	         "signal", WIFSIGNALED(wstatus) ? strsignal(WTERMSIG(wstatus)) : "none");
	if (w->stopping)
		maybe_exit(w);
	else if (w->nchildren == MAX_CHILDREN - 1 && w->poll_x == NULL && w->poll_timer == NULL)
		poll_now(w);
}

static char **
child_env(struct worker *w, const char *work_id, const char *session_id, const char *secret_dir)
{
	static const char *const ours[] = {"ANTHROPIC_WORK_ID=",    "ANTHROPIC_ENVIRONMENT_ID=",
	                                   "ANTHROPIC_SESSION_ID=", "ANTHROPIC_ENVIRONMENT_KEY=",
	                                   "ANTHROPIC_BASE_URL=",   "ANTHROPIC_WORK_SECRET=",
	                                   "AIRLOCK_CA_FILE=",      "AIRLOCK_WORKDIR=",
	                                   "AIRLOCK_MAX_IDLE=",     "AIRLOCK_LOG_FORMAT=",
	                                   "AIRLOCK_LOG_LEVEL=",    "ANTHROPIC_WORK_SECRET_FILE=",
	                                   "AIRLOCK_EGRESS_POLICY="};
	static const char *const lvls[] = {"debug", "info", "warn", "error"};
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = xcalloc(n + 16, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool skip = false;
		for (size_t j = 0; j < ARRAY_LEN(ours); j++)
			if (strncmp(environ[i], ours[j], strlen(ours[j])) == 0)
				skip = true;
		if (!skip)
			env[k++] = xstrdup(environ[i]);
	}
	env[k++] = xasprintf("ANTHROPIC_WORK_ID=%s", work_id);
	env[k++] = xasprintf("ANTHROPIC_ENVIRONMENT_ID=%s", w->cfg.environment_id);
	env[k++] = xasprintf("ANTHROPIC_SESSION_ID=%s", session_id);
	env[k++] = xasprintf("ANTHROPIC_ENVIRONMENT_KEY=%s", w->cfg.environment_key);
	env[k++] = xasprintf("ANTHROPIC_BASE_URL=%s", w->cfg.base_url);
	/* the poller's settings, for the `airlock worker run` the script starts: it reads
	 * them below its flags, so a script need not forward them */
	if (w->cfg.ca_file != NULL)
		env[k++] = xasprintf("AIRLOCK_CA_FILE=%s", w->cfg.ca_file);
	env[k++] = xasprintf("AIRLOCK_WORKDIR=%s", w->cfg.workdir);
	if (w->cfg.egress_policy != NULL)
		env[k++] = xasprintf("AIRLOCK_EGRESS_POLICY=%s", w->cfg.egress_policy);
	env[k++] = xasprintf("AIRLOCK_MAX_IDLE=%llums", (unsigned long long)w->cfg.max_idle_ms);
	env[k++] =
	    xasprintf("AIRLOCK_LOG_FORMAT=%s", w->cfg.log_format == LOG_FMT_JSON ? "json" : "text");
	env[k++] = xasprintf("AIRLOCK_LOG_LEVEL=%s", lvls[w->cfg.log_level]);
	if (secret_dir[0] != '\0')
		env[k++] = xasprintf("ANTHROPIC_WORK_SECRET_FILE=%s/secret", secret_dir);
	env[k] = NULL;
	return env;
}

static void
env_free(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		secret_free(env[i]);
	free(env);
}

/* Launches the script with the work JSON (secret included) on stdin. An exec failure is
 * returned: a script that cannot start is fatal to the poller (work-protocol.md §9). */
static int
spawn_on_work(struct worker *w, json_t *work, const char *work_id, const char *session_id)
{
	int r = 0, in[2] = {-1, -1}, ep[2] = {-1, -1};
	char **env = NULL, sdir[256] = "";
	char *json = json_dumps(work, JSON_COMPACT);
	const char *secret = json_string_value(json_object_get(work, "secret"));
	size_t slot = MAX_CHILDREN;
	for (size_t i = 0; i < MAX_CHILDREN; i++)
		if (children[i].pid == 0) {
			slot = i;
			break;
		}
	if (slot == MAX_CHILDREN) {
		r = AL_E_AGAIN;
		goto out;
	}
	if (secret != NULL && secret[0] != '\0' &&
	    (r = secret_dir_write(secret, sdir, sizeof(sdir))) != 0) {
		log_error("cannot write the item's secret file for the on-work script", "work_id",
		          work_id, "error", al_strerror(r));
		goto out;
	}
	env = child_env(w, work_id, session_id, sdir);
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(ep, O_CLOEXEC) != 0) {
		r = -errno;
		goto out;
	}
	char *const argv[] = {w->cfg.on_work, NULL};
	pid_t pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0) {
		/* only async-signal-safe calls here: the executor thread exists */
		if (setpgid(0, 0) != 0 || dup2(in[0], 0) < 0 || dup2(2, 1) < 0)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execve(w->cfg.on_work, argv, env);
		int e = errno;
		if (write(ep[1], &e, sizeof(e)) < 0)
			_exit(126);
		_exit(127);
	}
	(void)setpgid(pid, pid); /* also here: no signal may reach it before the child's call */
	close(in[0]);
	in[0] = -1;
	close(ep[1]);
	ep[1] = -1;
	int e = 0;
	ssize_t n;
	do
		n = read(ep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		r = -e;
		goto out;
	}
	/* the script may not read stdin at all: EPIPE is fine (SIGPIPE is ignored) */
	size_t len = strlen(json), off = 0;
	while (off < len) {
		ssize_t m = write(in[1], json + off, len - off);
		if (m <= 0)
			break;
		off += (size_t)m;
	}
	children[slot] = (struct child){.pid = pid, .w = w};
	snprintf(children[slot].secret_dir, sizeof(children[slot].secret_dir), "%s", sdir);
	sdir[0] = '\0'; /* the child's now: removed when it exits */
	snprintf(children[slot].work_id, sizeof(children[slot].work_id), "%s", work_id);
	snprintf(children[slot].session_id, sizeof(children[slot].session_id), "%s", session_id);
	w->nchildren++;
	if ((r = loop_child_add(w->loop, pid, on_child_exit, w)) != 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		secret_dir_remove(children[slot].secret_dir);
		children[slot] = (struct child){0};
		w->nchildren--;
		goto out;
	}
	char pidbuf[16];
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	log_info("on-work script started", "work_id", work_id, "session_id", session_id, "pid",
	         pidbuf);
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	secret_dir_remove(sdir); /* not handed to a child: an exec or setup failure */
	secret_free(json);
	env_free(env);
	return r;
}

/* ---- poller ---- */

static void
on_poll_timer(struct loop *l, void *arg)
{
	struct worker *w = arg;
	w->poll_timer = NULL;
	poll_now(w);
}

static void
poll_later(struct worker *w, uint64_t ms)
{
	if (w->stopping)
		return maybe_exit(w);
	loop_timer_cancel(w->loop, w->poll_timer);
	w->poll_timer = loop_timer_add(w->loop, ms, on_poll_timer, w);
}

static void
on_session_end(struct worker *w, enum wsess_end why)
{
	wsess_free(w->sess);
	w->sess = NULL;
	if (w->cfg.work_id != NULL && w->cfg.on_work == NULL && w->poll_x == NULL &&
	    w->poll_timer == NULL && !w->exit_code) {
		/* run mode: one item, then exit */
		w->exit_code =
		    (why == WSESS_CLEAN || why == WSESS_STOPPED || why == WSESS_SIGNAL) ? 0 : 1;
		w->stopping = true;
	}
	if (w->stopping)
		maybe_exit(w);
	else
		poll_now(w);
}

struct claim {
	struct worker *w;
	json_t *work;
};

static void
on_aux_done(void *arg, int status, int err, json_t *body)
{
	struct worker *w = arg;
	w->aux_x = NULL;
	poll_now(w);
}

static void
on_ack_done(void *arg, int status, int err, json_t *body)
{
	struct claim *c = arg;
	struct worker *w = c->w;
	json_t *work = c->work;
	free(c);
	w->aux_x = NULL;
	const char *wid = json_string_value(json_object_get(work, "id"));
	const char *sid = json_string_value(json_object_get(json_object_get(work, "data"), "id"));
	if (!(status >= 200 && status < 300)) {
		char st[24];
		wapi_status_str(status, st, sizeof(st));
		log_error("ack failed", "work_id", wid, "status", st, "error",
		          wapi_error_text(err, body));
		json_decref(work);
		poll_later(w, 1000);
		return;
	}
	if (w->stopping) {
		json_decref(work);
		return maybe_exit(w);
	}
	if (w->cfg.on_work != NULL) {
		int r = spawn_on_work(w, work, wid, sid);
		json_decref(work);
		if (r != 0 && r != AL_E_AGAIN) {
			log_error("on-work script cannot start, stopping", "script", w->cfg.on_work,
			          "error", al_strerror(r));
			w->exit_code = 1;
			w->stopping = true;
			return maybe_exit(w);
		}
		if (w->nchildren < MAX_CHILDREN)
			poll_now(w);
		return;
	}
	const char *secret = json_string_value(json_object_get(work, "secret"));
	struct wsess_params p = {
	    .work_id = wid,
	    .environment_id = w->cfg.environment_id,
	    .session_id = sid,
	    .secret = secret,
	    .secret_len = secret ? strlen(secret) : 0,
	};
	int r = wsess_start(w, &p, on_session_end, &w->sess);
	json_decref(work);
	if (r != 0)
		poll_later(w, 1000);
}

static void
on_poll_done(void *arg, int status, int err, json_t *body)
{
	struct worker *w = arg;
	w->poll_x = NULL;
	if (w->stopping)
		return maybe_exit(w);
	if (status == 0 || status >= 300) {
		char st[24];
		wapi_status_str(status, st, sizeof(st));
		if (wapi_fatal(status, err)) {
			log_error("poll failed permanently, stopping poller", "status", st, "error",
			          wapi_error_message(body));
			w->exit_code = 1;
			w->stopping = true;
			return maybe_exit(w);
		}
		uint64_t d = w->poll_backoff_ms ? w->poll_backoff_ms : 1000;
		w->poll_backoff_ms = d * 2 > POLL_BACKOFF_MAX_MS ? POLL_BACKOFF_MAX_MS : d * 2;
		uint64_t wait = d + wapi_jitter(0, d / 4);
		char ms[24];
		snprintf(ms, sizeof(ms), "%llu", (unsigned long long)wait);
		if (w->poll_failures++ == 0)
			w->poll_failed_since = now_mono_ms();
		/* no answer at all is not "status 0": say what failed, and what to try */
		if (status == 0)
			log_warn("poll failed: cannot reach the server, backing off", "base_url",
			         w->cfg.base_url, "error", wapi_error_text(err, body), "hint",
			         wapi_error_hint(err), "backoff_ms", ms);
		else
			log_warn("poll failed, backing off", "status", st, "error",
			         wapi_error_text(err, body), "backoff_ms", ms);
		return poll_later(w, wait);
	}
	if (w->poll_failures > 0) {
		char n[16], secs[24];
		snprintf(n, sizeof(n), "%u", w->poll_failures);
		snprintf(secs, sizeof(secs), "%llu",
		         (unsigned long long)((now_mono_ms() - w->poll_failed_since) / 1000));
		log_info("poll recovered", "failed_polls", n, "outage_s", secs);
		w->poll_failures = 0;
	}
	w->poll_backoff_ms = 0;
	const char *wid = json_string_value(json_object_get(body, "id"));
	if (!json_is_object(body) || wid == NULL || wid[0] == '\0') {
		uint64_t now = now_mono_ms();
		if (!w->empty_logged || now - w->last_empty_log_ms >= EMPTY_LOG_EVERY_MS) {
			log_info("no work; polling", "environment_id", w->cfg.environment_id);
			w->empty_logged = true;
			w->last_empty_log_ms = now;
		}
		return poll_later(w, wapi_jitter(1000, 3000));
	}
	json_t *data = json_object_get(body, "data");
	const char *type = json_string_value(json_object_get(data, "type"));
	const char *sid = json_string_value(json_object_get(data, "id"));
	char *wesc = httpc_escape(wid);
	char *eesc = httpc_escape(w->cfg.environment_id);
	if (type == NULL || strcmp(type, "session") != 0 || sid == NULL) {
		log_info("stopping a non-session work item", "work_id", wid, "type", type);
		char *path = xasprintf("/v1/environments/%s/work/%s/stop", eesc, wesc);
		json_t *b = json_pack("{s:b}", "force", 1);
		struct wapi_req r = {.cred = w->cfg.environment_key,
		                     .method = "POST",
		                     .path = path,
		                     .body = b,
		                     .timeout_ms = 10000,
		                     .done = on_aux_done,
		                     .arg = w};
		if (wapi_call(w, &r, &w->aux_x) != 0)
			poll_later(w, 1000);
		json_decref(b);
		free(path);
	} else {
		log_info("work claimed", "work_id", wid, "session_id", sid);
		struct claim *c = xcalloc(1, sizeof(*c));
		c->w = w;
		c->work = json_incref(body);
		char *path = xasprintf("/v1/environments/%s/work/%s/ack", eesc, wesc);
		struct wapi_req r = {.cred = w->cfg.environment_key,
		                     .method = "POST",
		                     .path = path,
		                     .timeout_ms = 30000,
		                     .done = on_ack_done,
		                     .arg = c};
		if (wapi_call(w, &r, &w->aux_x) != 0) {
			json_decref(c->work);
			free(c);
			poll_later(w, 1000);
		}
		free(path);
	}
	free(wesc);
	free(eesc);
}

static void
poll_now(struct worker *w)
{
	if (w->stopping)
		return maybe_exit(w);
	char *eesc = httpc_escape(w->cfg.environment_id);
	char *path = xasprintf("/v1/environments/%s/work/poll?block_ms=%d", eesc, POLL_BLOCK_MS);
	struct wapi_req r = {
	    .cred = w->cfg.environment_key,
	    .method = "GET",
	    .path = path,
	    .timeout_ms = POLL_BLOCK_MS + 10000,
	    .worker_id = w->cfg.worker_id,
	    .done = on_poll_done,
	    .arg = w,
	};
	if (wapi_call(w, &r, &w->poll_x) != 0) {
		w->poll_x = NULL;
		poll_later(w, 1000);
	}
	free(path);
	free(eesc);
}

/* ---- shutdown ---- */

static void
maybe_exit(struct worker *w)
{
	if (w->stopping && w->sess == NULL && w->nchildren == 0 && w->aux_x == NULL)
		loop_stop(w->loop);
}

static void
on_hard_deadline(struct loop *l, void *arg)
{
	struct worker *w = arg;
	w->hard_deadline = NULL;
	log_error("shutdown grace period over, exiting");
	if (w->exit_code == 0)
		w->exit_code = 1;
	loop_stop(l);
}

static void
on_signal(struct loop *l, int signo, void *arg)
{
	struct worker *w = arg;
	if (++w->signals > 1) {
		/* nothing may outlive us: scripts' groups and the in-flight tool's tree */
		log_warn("second signal, exiting now");
		for (size_t i = 0; i < MAX_CHILDREN; i++)
			if (children[i].pid > 0)
				kill_group(children[i].pid, SIGKILL);
		wexec_abort(w->exec, 2000);
		_exit(130);
	}
	log_info("signal received, draining", "signal", signo == SIGTERM ? "TERM" : "INT");
	w->stopping = true;
	loop_timer_cancel(l, w->poll_timer);
	w->poll_timer = NULL;
	httpc_cancel(w->poll_x);
	w->poll_x = NULL;
	if (w->sess != NULL)
		wsess_shutdown(w->sess);
	uint64_t grace = w->cfg.on_work_grace_ms;
	for (size_t i = 0; i < MAX_CHILDREN; i++) {
		if (children[i].pid == 0)
			continue;
		kill_group(children[i].pid, SIGTERM);
		children[i].kill_timer = loop_timer_add(l, grace, on_child_kill, &children[i]);
	}
	/* the in-process item drains within 30 s; scripts get their grace */
	uint64_t hard = (grace > SHUTDOWN_GRACE_MS ? grace : SHUTDOWN_GRACE_MS) + 5000;
	w->hard_deadline = loop_timer_add(l, hard, on_hard_deadline, w);
	maybe_exit(w);
}

/* HUP: the worker's settings come from flags, the environment and --config at start;
 * none is reloaded, and the log says so rather than the process dying (the default
 * action) or staying silent. */
static void
on_hup(struct loop *l, int signo, void *arg)
{
	log_info("SIGHUP: nothing to reload (the worker reads its configuration at start; "
	         "restart it to change it)");
}

/* ---- check ---- */

struct check_state {
	int status;
	int err;
	bool done;
	struct loop *l;
	char msg[256];
};

static void
on_check_done(void *arg, int status, int err, json_t *body)
{
	struct check_state *c = arg;
	c->status = status;
	c->err = err;
	c->done = true;
	snprintf(c->msg, sizeof(c->msg), "%s", wapi_error_text(err, body));
	loop_stop(c->l);
}

static int
run_check(struct worker *w)
{
	int bad = 0;
	if (access(w->cfg.workdir, W_OK | X_OK) != 0) {
		fprintf(stderr, "check: workdir %s is not a writable directory\n", w->cfg.workdir);
		bad = 1;
	}
	bad |= wexec_sandbox_check(&w->cfg);
	if (access("/bin/bash", X_OK) != 0) {
		fprintf(stderr, "check: /bin/bash is missing (the bash tool needs it)\n");
		bad = 1;
	}
	if (w->cfg.on_work != NULL && access(w->cfg.on_work, X_OK) != 0) {
		fprintf(stderr, "check: --on-work %s is not executable\n", w->cfg.on_work);
		bad = 1;
	}
	/* the file itself was checked at start (a bad one exits 2 before this) */
	const struct egress_operator *op = w->cfg.egress_op;
	if (op == NULL)
		printf("check: egress: no --egress-policy: sandboxes have no network\n");
	else
		printf("check: egress: policy %s: %zu allowed hosts%s, %zu denied, %zu address "
		       "ranges, %zu static names, %u connections per sandbox\n",
		       op->file, op->allow.n, op->unrestricted ? " (any host: unrestricted)" : "",
		       op->deny.n, op->n_addrs, op->n_resolve, op->max_connections);
	/* listing work has no side effects and accepts exactly the environment key */
	struct check_state c = {.l = w->loop};
	char *eesc = httpc_escape(w->cfg.environment_id);
	char *path = xasprintf("/v1/environments/%s/work?limit=1", eesc);
	struct wapi_req r = {.cred = w->cfg.environment_key,
	                     .method = "GET",
	                     .path = path,
	                     .timeout_ms = 15000,
	                     .done = on_check_done,
	                     .arg = &c};
	if (wapi_call(w, &r, NULL) == 0)
		loop_run(w->loop);
	free(path);
	free(eesc);
	if (c.status >= 200 && c.status < 300) {
		printf("check: %s reachable, environment key accepted for %s\n", w->cfg.base_url,
		       w->cfg.environment_id);
	} else {
		fprintf(stderr, "check: %s: status %d: %s\n", w->cfg.base_url, c.status, c.msg);
		bad = 1;
	}
	return bad;
}

int
worker_main(int argc, char **argv)
{
	struct worker w = {0};
	int r;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout, NULL);
		return argc < 2 ? 2 : 0;
	}
	const char *mode = argv[1];
	if (strcmp(mode, "poll") != 0 && strcmp(mode, "run") != 0 && strcmp(mode, "check") != 0) {
		fprintf(stderr, "airlock worker: unknown mode '%s'\n", mode);
		usage(stderr, NULL);
		return 2;
	}
	r = parse_args(argc, argv, &w.cfg);
	if (r != 0) {
		config_free(&w.cfg);
		return r == 1 ? 0 : 2;
	}
	log_setup(w.cfg.log_format, w.cfg.log_level, "worker");
	bool run_mode = strcmp(mode, "run") == 0;
	if (w.cfg.environment_id == NULL ||
	    (w.cfg.environment_key == NULL && !(run_mode && w.cfg.work_secret != NULL))) {
		fprintf(stderr,
		        "airlock worker: --environment-id and --environment-key (or "
		        "ANTHROPIC_ENVIRONMENT_ID/ANTHROPIC_ENVIRONMENT_KEY) are required\n");
		config_free(&w.cfg);
		return 2;
	}
	if (run_mode && (w.cfg.work_id == NULL || w.cfg.session_id == NULL)) {
		fprintf(stderr, "airlock worker run: --work-id and --session-id are required\n");
		config_free(&w.cfg);
		return 2;
	}
	if (!run_mode) {
		free(w.cfg.work_id);
		w.cfg.work_id = NULL;
	}
	/* the privileged monitor forks here, before any thread; we go on unprivileged */
	if (strcmp(mode, "check") != 0 && (run_mode || w.cfg.on_work == NULL) &&
	    (r = wexec_sandbox_start(&w.cfg, run_mode)) != 0) {
		config_free(&w.cfg);
		return r == AL_E_INVAL ? 2
		                       : 1; /* a bad sandbox: section is a configuration error */
	}
	signal(SIGPIPE, SIG_IGN);
	/* as the server: the egress_secrets answer and work secrets are parsed by jansson,
	 * whose copies (lexer buffer, strings) are freed wiped (docs/worker/egress.md) */
	json_set_alloc_funcs(malloc, wipe_free);
	w.loop = loop_new();
	/* native HTTP/1.1 keeps libcurl (and, for http://, OpenSSL) out of the process;
	 * only curl speaks to proxies, so a proxy variable that applies selects it */
	const char *proxy_var = httpc_proxy_env(w.cfg.base_url);
	struct httpc_opts ho = {.ca_file = w.cfg.ca_file,
	                        .transport = proxy_var ? HTTPC_CURL : HTTPC_NATIVE};
	log_info("outbound http", "transport", proxy_var ? "curl" : "native", "proxy_variable",
	         proxy_var ? proxy_var : "none");
	w.http = httpc_new(w.loop, &ho);
	if (w.loop == NULL || w.http == NULL) {
		fprintf(stderr, "airlock worker: cannot set up the event loop\n");
		r = 1;
		goto out;
	}
	if (strcmp(mode, "check") == 0) {
		r = run_check(&w);
		goto out;
	}
	/* before the executor thread exists, so it inherits the blocked mask */
	loop_signal_add(w.loop, SIGTERM, on_signal, &w);
	loop_signal_add(w.loop, SIGINT, on_signal, &w);
	loop_signal_add(w.loop, SIGHUP, on_hup, &w);
	if ((r = wexec_new(w.loop, &w.exec)) != 0) {
		fprintf(stderr, "airlock worker: cannot start the tool executor: %s\n",
		        al_strerror(r));
		r = 1;
		goto out;
	}
	if (run_mode) {
		struct wsess_params p = {
		    .work_id = w.cfg.work_id,
		    .environment_id = w.cfg.environment_id,
		    .session_id = w.cfg.session_id,
		    .secret = w.cfg.work_secret,
		    .secret_len = w.cfg.work_secret ? strlen(w.cfg.work_secret) : 0,
		};
		if (wsess_start(&w, &p, on_session_end, &w.sess) != 0) {
			r = 1;
			goto out;
		}
	} else {
		log_info("worker polling", "environment_id", w.cfg.environment_id, "worker_id",
		         w.cfg.worker_id, "base_url", w.cfg.base_url);
		poll_now(&w);
	}
	loop_run(w.loop);
	r = w.exit_code;
	{
		char rc[8];
		snprintf(rc, sizeof(rc), "%d", r);
		log_info("worker exiting", "exit_status", rc, "mode", mode);
	}
out:
	wsess_free(w.sess);
	loop_timer_cancel(w.loop, w.poll_timer);
	loop_timer_cancel(w.loop, w.hard_deadline);
	httpc_free(w.http);
	wexec_free(w.exec);
	loop_free(w.loop);
	config_free(&w.cfg);
	return r;
}
