/* `airlock server`: configuration, startup, signals and shutdown of the control
 * plane. Everything runs on one event loop; see docs/server/overview.md. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "api.h"
#include "cfg.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "notify.h"
#include "server.h"
#include "file_store.h"
#include "skill_store.h"
#include "key_store.h"
#include "server_hooks.h"
#include "tls.h"
#include "console.h"
#include "tunnel.h"
#include "util.h"
#include "xalloc.h"

static void
server_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: airlock server [options]\n"
	    "\n"
	    "  --listen ADDR:PORT     listen address (default 127.0.0.1:8400; plain HTTP only\n"
	    "                         on loopback, any other address needs --tls-cert/--tls-key)\n"
	    "  --data-dir DIR         SQLite database directory (AIRLOCK_DATA_DIR, default\n"
	    "                         .airlock-data)\n"
	    "  --database-url URL     PostgreSQL instead of SQLite (AIRLOCK_DATABASE_URL;\n"
	    "                         a libpq URI, PG* variables honoured; keep the password\n"
	    "                         in PGPASSWORD or a passfile, not in argv)\n"
	    "  --tls-cert FILE        PEM certificate chain\n"
	    "  --tls-key FILE         PEM private key\n"
	    "  --log-format text|json (default text)\n"
	    "  --log-level debug|info|warn|error\n"
	    "  --config FILE          YAML configuration (docs/server/config.md); the\n"
	    "                         environment overrides it, flags override both\n"
	    "  --tunnel-listen ADDR:PORT  MCP tunnel edge for gateways (TLS 1.3;\n"
	    "                         AIRLOCK_TUNNEL_LISTEN); needs --tunnel-tls-cert/-key\n"
	    "  --tunnel-tls-cert FILE  tunnel edge certificate (AIRLOCK_TUNNEL_TLS_CERT)\n"
	    "  --tunnel-tls-key FILE   tunnel edge key (AIRLOCK_TUNNEL_TLS_KEY)\n"
	    "  --tunnel-domain NAME    tunnel host name suffix (AIRLOCK_TUNNEL_DOMAIN,\n"
	    "                         default tunnel.localhost)\n"
	    "  --tunnel-ingress-listen ADDR:PORT  host-routed MCP ingress\n"
	    "                         (AIRLOCK_TUNNEL_INGRESS_LISTEN; docs/server/tunnels.md)\n"
	    "  --tunnel-metrics-listen ADDR:PORT  Prometheus /metrics of the tunnel edge,\n"
	    "                         loopback only (AIRLOCK_TUNNEL_METRICS_LISTEN)\n"
	    "  --metrics-listen ADDR:PORT  GET /metrics without a credential, plain HTTP\n"
	    "                         (AIRLOCK_METRICS_LISTEN; on the API listener /metrics\n"
	    "                         takes a server API key; docs/server/metrics.md)\n"
	    "  --drain-timeout DURATION  how long TERM waits for requests and agent calls in\n"
	    "                         flight (AIRLOCK_DRAIN_TIMEOUT, default 30s, 1s-3600s)\n"
	    "\n"
	    "environment:\n"
	    "  AIRLOCK_API_KEY        a server API key accepted in addition to issued keys\n"
	    "  AIRLOCK_DATABASE_RETRY seconds start-up retries an unreachable PostgreSQL\n"
	    "                         (default 60)\n"
	    "  AIRLOCK_MODEL_BASE_URL Messages API base URL (default https://api.anthropic.com)\n"
	    "  AIRLOCK_MODEL_API_KEY  key for the model provider (default ANTHROPIC_API_KEY)\n"
	    "  ANTHROPIC_API_KEY      the model provider's key when AIRLOCK_MODEL_API_KEY is "
	    "unset\n"
	    "  AIRLOCK_LEASE_TTL      work lease TTL, 1s-600s (default 90)\n"
	    "  AIRLOCK_MASTER_KEY_FILE vault master key (default DATA_DIR/master.key, "
	    "generated)\n"
	    "  AIRLOCK_MODEL_MAX_TOKENS max_tokens of each model request (8192)\n"
	    "  AIRLOCK_MODEL_RETRY_BASE_MS first model retry backoff (1000)\n"
	    "  AIRLOCK_LOOP_LEASE_MS  a session's agent-loop lease on PostgreSQL (15000)\n"
	    "  AIRLOCK_NOTIFY_SWEEP_MS safety drain of other replicas' notifications on\n"
	    "                         PostgreSQL (1000; they are read when they arrive)\n"
	    "  AIRLOCK_MCP_TIMEOUT_MS, AIRLOCK_MCP_CALL_TIMEOUT_MS  MCP deadlines (30000, 120000)\n"
	    "  AIRLOCK_POLICY_FILE    tool policy and roles (docs/server/policy.md)\n"
	    "  AIRLOCK_AUDIT_FILE     audit log (default DATA_DIR/audit.jsonl)\n"
	    "  AIRLOCK_FILES_MAX_BYTES largest upload to /v1/files (default 100 MiB;\n"
	    "                         docs/server/files.md)\n"
	    "  AIRLOCK_OIDC_ISSUER, AIRLOCK_OIDC_AUDIENCE, AIRLOCK_OIDC_CA_FILE,\n"
	    "  AIRLOCK_OIDC_GROUPS_CLAIM, AIRLOCK_OIDC_GROUPS_FILE  signed-in users\n"
	    "                         (docs/server/identity.md)\n"
	    "  AIRLOCK_OIDC_CLIENT_ID, AIRLOCK_OIDC_CLIENT_SECRET, AIRLOCK_OIDC_REDIRECT_URI,\n"
	    "  AIRLOCK_OIDC_SCOPE     sign-in through the provider (docs/server/identity.md)\n"
	    "  AIRLOCK_AGENT_IDENTITY_ISSUER, AIRLOCK_AGENT_IDENTITY_KEY_FILE,\n"
	    "  AIRLOCK_AGENT_IDENTITY_PREVIOUS_KEY_FILE  agent identity tokens\n"
	    "  (each YAML key's variable: docs/server/config.md)\n"
	    "  AIRLOCK_TEST_EDGE_CAPTURE FILE  tests only: the tunnel edge appends every DATA\n"
	    "                         payload it relays to FILE (logged at start)\n"
	    "\n"
	    "signals: HUP reloads certificates and the policy file; TERM/INT drain (new\n"
	    "connections refused, /readyz 503, in-flight work finishes) and exit 0; a second\n"
	    "TERM/INT exits at once.\n"
	    "exit status: 0 ok, 1 failure, 2 usage or configuration error\n");
}

/* Reads a secret from a file: first line, trailing newline stripped. The file must
 * not be readable by others (a key in a world-readable file is not a secret). */
static int
read_secret_file(const char *path, char **out)
{
	char buf[1024];
	struct stat st;
	FILE *f = fopen(path, "r");
	if (f == NULL || fstat(fileno(f), &st) != 0) {
		fprintf(stderr, "airlock server: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return AL_E_IO;
	}
	if (st.st_mode & 0007) {
		fclose(f);
		fprintf(stderr, "airlock server: %s: readable or writable by others; chmod o-rwx\n",
		        path);
		return AL_E_PERM;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0') {
		fprintf(stderr, "airlock server: %s: empty\n", path);
		return AL_E_INVAL;
	}
	secret_free(*out);
	*out = xstrdup(buf);
	explicit_wipe(buf, sizeof(buf));
	return 0;
}

static int
config_file_load(struct server_config *cfg, const char *path, enum log_format *fmt,
                 enum log_level *lvl)
{
	struct cfg c;
	const json_t *tls = NULL, *model = NULL, *logm = NULL;
	uint64_t ttl = cfg->lease_ttl_s, ping = cfg->sse_ping_ms / 1000;
	uint64_t drain = cfg->drain_timeout_s;
	char *api_key_file = NULL, *model_key_file = NULL, *f = NULL, *l = NULL;
	int r;
	static const char *const top[] = {"listen",
	                                  "data_dir",
	                                  "tls",
	                                  "api_key_file",
	                                  "model",
	                                  "lease_ttl_seconds",
	                                  "sse_ping_seconds",
	                                  "log",
	                                  "tunnel",
	                                  "master_key_file",
	                                  "identity",
	                                  "policy_file",
	                                  "audit",
	                                  "metrics",
	                                  "drain_timeout_seconds",
	                                  "files",
	                                  NULL};
	static const char *const tunnel_keys[] = {
	    "listen", "tls", "domain", "ingress_listen", "metrics_listen", NULL};
	const json_t *tun = NULL, *tun_tls = NULL;
	static const char *const tls_keys[] = {"cert_file", "key_file", NULL};
	static const char *const model_keys[] = {"base_url", "api_key_file", NULL};
	static const char *const log_keys[] = {"format", "level", NULL};
	static const char *const identity_keys[] = {"oidc", "agent_identity", NULL};
	static const char *const agent_id_keys[] = {"issuer", "key_file", "previous_key_file",
	                                            NULL};
	const json_t *agent_id = NULL;
	static const char *const oidc_keys[] = {
	    "issuer",    "audience",           "groups_claim", "ca_file", "groups_file",
	    "client_id", "client_secret_file", "redirect_uri", "scope",   NULL};
	char *oidc_secret_file = NULL;
	const json_t *idm = NULL, *oidc = NULL, *audit = NULL;
	static const char *const audit_keys[] = {"file", NULL};
	static const char *const metrics_keys[] = {"listen", NULL};
	const json_t *metrics = NULL;
	static const char *const files_keys[] = {"max_bytes", NULL};
	const json_t *filesm = NULL;

	if ((r = cfg_load(&c, path)) != 0)
		goto out;
	if ((r = cfg_only_keys(&c, c.root, top)) ||
	    (r = cfg_get_listen(&c, c.root, "listen", &cfg->listen)) ||
	    (r = cfg_get_str(&c, c.root, "data_dir", &cfg->data_dir)) ||
	    (r = cfg_get_str(&c, c.root, "api_key_file", &api_key_file)) ||
	    (r = cfg_get_seconds(&c, c.root, "lease_ttl_seconds", 1, 600, &ttl)) ||
	    (r = cfg_get_seconds(&c, c.root, "sse_ping_seconds", 1, 300, &ping)) ||
	    (r = cfg_get_seconds(&c, c.root, "drain_timeout_seconds", 1, 3600, &drain)) ||
	    (r = cfg_get_map(&c, c.root, "tls", &tls)) ||
	    (r = cfg_get_map(&c, c.root, "model", &model)) ||
	    (r = cfg_get_map(&c, c.root, "log", &logm)) ||
	    (r = cfg_get_map(&c, c.root, "files", &filesm)))
		goto out;
	if (filesm && ((r = cfg_only_keys(&c, filesm, files_keys)) ||
	               (r = cfg_get_uint(&c, filesm, "max_bytes", 1, FILES_MAX_BYTES_CAP,
	                                 &cfg->files_max_bytes))))
		goto out;
	if (tls && ((r = cfg_only_keys(&c, tls, tls_keys)) ||
	            (r = cfg_get_str(&c, tls, "cert_file", &cfg->tls_cert_file)) ||
	            (r = cfg_get_str(&c, tls, "key_file", &cfg->tls_key_file))))
		goto out;
	if (model && ((r = cfg_only_keys(&c, model, model_keys)) ||
	              (r = cfg_get_str(&c, model, "base_url", &cfg->model_base_url)) ||
	              (r = cfg_get_str(&c, model, "api_key_file", &model_key_file))))
		goto out;
	/* Caught here, with its line, rather than as a failed model call mid-session. */
	if (model && cfg->model_base_url && strncmp(cfg->model_base_url, "http://", 7) != 0 &&
	    strncmp(cfg->model_base_url, "https://", 8) != 0) {
		r = cfg_error(&c, json_object_get(model, "base_url"),
		              "model.base_url: must be an http:// or https:// URL");
		goto out;
	}
	/* A value from the file is overridden by the environment and flags read after it. */
	if ((r = cfg_get_map(&c, c.root, "tunnel", &tun)) ||
	    (r = cfg_get_str(&c, c.root, "master_key_file", &cfg->master_key_file)))
		goto out;
	if (tun && ((r = cfg_only_keys(&c, tun, tunnel_keys)) ||
	            (r = cfg_get_listen(&c, tun, "listen", &cfg->tunnel.listen)) ||
	            (r = cfg_get_str(&c, tun, "domain", &cfg->tunnel.domain)) ||
	            (r = cfg_get_listen(&c, tun, "ingress_listen", &cfg->tunnel.ingress_listen)) ||
	            (r = cfg_get_listen(&c, tun, "metrics_listen", &cfg->tunnel.metrics_listen)) ||
	            (r = cfg_get_map(&c, tun, "tls", &tun_tls))))
		goto out;
	if ((r = cfg_get_str(&c, c.root, "policy_file", &cfg->identity.policy_file)) != 0 ||
	    (r = cfg_get_map(&c, c.root, "identity", &idm)) != 0 ||
	    (idm && ((r = cfg_only_keys(&c, idm, identity_keys)) ||
	             (r = cfg_get_map(&c, idm, "oidc", &oidc)) ||
	             (r = cfg_get_map(&c, idm, "agent_identity", &agent_id)))))
		goto out;
	if (agent_id &&
	    ((r = cfg_only_keys(&c, agent_id, agent_id_keys)) ||
	     (r = cfg_get_str(&c, agent_id, "issuer", &cfg->identity.agent_issuer)) ||
	     (r = cfg_get_str(&c, agent_id, "key_file", &cfg->identity.agent_key_file)) ||
	     (r = cfg_get_str(&c, agent_id, "previous_key_file",
	                      &cfg->identity.agent_prev_key_file))))
		goto out;
	if (oidc &&
	    ((r = cfg_only_keys(&c, oidc, oidc_keys)) ||
	     (r = cfg_get_str(&c, oidc, "issuer", &cfg->identity.oidc_issuer)) ||
	     (r = cfg_get_str(&c, oidc, "audience", &cfg->identity.oidc_audience)) ||
	     (r = cfg_get_str(&c, oidc, "groups_claim", &cfg->identity.oidc_groups_claim)) ||
	     (r = cfg_get_str(&c, oidc, "ca_file", &cfg->identity.oidc_ca_file)) ||
	     (r = cfg_get_str(&c, oidc, "groups_file", &cfg->identity.oidc_groups_file)) ||
	     (r = cfg_get_str(&c, oidc, "client_id", &cfg->identity.oidc_client_id)) ||
	     (r = cfg_get_str(&c, oidc, "client_secret_file", &oidc_secret_file)) ||
	     (r = cfg_get_str(&c, oidc, "redirect_uri", &cfg->identity.oidc_redirect_uri)) ||
	     (r = cfg_get_str(&c, oidc, "scope", &cfg->identity.oidc_scope))))
		goto out;
	if ((r = cfg_get_map(&c, c.root, "audit", &audit)) ||
	    (audit && ((r = cfg_only_keys(&c, audit, audit_keys)) ||
	               (r = cfg_get_str(&c, audit, "file", &cfg->audit_file)))))
		goto out;
	if ((r = cfg_get_map(&c, c.root, "metrics", &metrics)) ||
	    (metrics && ((r = cfg_only_keys(&c, metrics, metrics_keys)) ||
	                 (r = cfg_get_listen(&c, metrics, "listen", &cfg->metrics_listen)))))
		goto out;
	if (tun_tls && ((r = cfg_only_keys(&c, tun_tls, tls_keys)) ||
	                (r = cfg_get_str(&c, tun_tls, "cert_file", &cfg->tunnel.tls_cert_file)) ||
	                (r = cfg_get_str(&c, tun_tls, "key_file", &cfg->tunnel.tls_key_file))))
		goto out;
	if (logm &&
	    ((r = cfg_only_keys(&c, logm, log_keys)) || (r = cfg_get_str(&c, logm, "format", &f)) ||
	     (r = cfg_get_str(&c, logm, "level", &l))))
		goto out;
	if (f && log_parse_format(f, fmt) != 0) {
		r = cfg_error(&c, json_object_get(logm, "format"), "log.format: text or json");
		goto out;
	}
	if (l && log_parse_level(l, lvl) != 0) {
		r = cfg_error(&c, json_object_get(logm, "level"),
		              "log.level: debug, info, warn or error");
		goto out;
	}
	cfg->lease_ttl_s = (unsigned)ttl;
	cfg->sse_ping_ms = (unsigned)ping * 1000;
	cfg->drain_timeout_s = (unsigned)drain;
	if (api_key_file && (r = read_secret_file(api_key_file, &cfg->api_key)) != 0)
		goto out_quiet;
	if (oidc_secret_file &&
	    (r = read_secret_file(oidc_secret_file, &cfg->identity.oidc_client_secret)) != 0)
		goto out_quiet;
	if (model_key_file && (r = read_secret_file(model_key_file, &cfg->model_api_key)) != 0)
		goto out_quiet;
	r = 0;
out:
	if (r != 0)
		fprintf(stderr, "airlock server: %s\n", c.err[0] ? c.err : path);
out_quiet:
	cfg_free(&c);
	free(api_key_file);
	free(model_key_file);
	free(oidc_secret_file);
	free(f);
	free(l);
	return r;
}

/* Replaces *dst with the variable's value when it is set. Set but empty overrides the
 * file too: the modules read "" as unset (AIRLOCK_TUNNEL_LISTEN= turns the edge off). */
static void
env_str(const char *name, char **dst)
{
	const char *v = getenv(name);
	if (v) {
		free(*dst);
		*dst = xstrdup(v);
	}
}

/* Tuning knobs: an out-of-range value is ignored with a warning (the default stays). */
static void
env_uint(const char *name, unsigned lo, unsigned hi, unsigned *dst)
{
	const char *v = getenv(name);
	uint64_t n;
	if (v == NULL || *v == '\0')
		return;
	if (parse_uint_cstr(v, hi, &n) != 0 || n < lo) {
		fprintf(stderr, "airlock server: ignoring out-of-range %s=%s\n", name, v);
		return;
	}
	*dst = (unsigned)n;
}

/* A drain timeout from the environment or a flag: 1 s to 1 h, in the duration forms
 * the lease TTL takes (30, 30s, 2m). */
static int
parse_drain_timeout(const char *v, const char *what, unsigned *out)
{
	uint64_t t;
	if (parse_duration_ms(v, 3600000, &t) != 0 || t % 1000 != 0 || t < 1000) {
		fprintf(stderr,
		        "airlock server: %s: must be a duration from 1s to 3600s (30, 30s, 2m)\n",
		        what);
		return AL_E_INVAL;
	}
	*out = (unsigned)(t / 1000);
	return 0;
}

static int
config_from_env(struct server_config *cfg)
{
	const char *v;
	env_str("AIRLOCK_MASTER_KEY_FILE", &cfg->master_key_file);
	env_str("AIRLOCK_TUNNEL_LISTEN", &cfg->tunnel.listen);
	env_str("AIRLOCK_TUNNEL_TLS_CERT", &cfg->tunnel.tls_cert_file);
	env_str("AIRLOCK_TUNNEL_TLS_KEY", &cfg->tunnel.tls_key_file);
	env_str("AIRLOCK_TUNNEL_DOMAIN", &cfg->tunnel.domain);
	env_str("AIRLOCK_TUNNEL_INGRESS_LISTEN", &cfg->tunnel.ingress_listen);
	env_str("AIRLOCK_TUNNEL_METRICS_LISTEN", &cfg->tunnel.metrics_listen);
	env_str("AIRLOCK_OIDC_ISSUER", &cfg->identity.oidc_issuer);
	env_str("AIRLOCK_OIDC_AUDIENCE", &cfg->identity.oidc_audience);
	env_str("AIRLOCK_OIDC_GROUPS_CLAIM", &cfg->identity.oidc_groups_claim);
	env_str("AIRLOCK_OIDC_CA_FILE", &cfg->identity.oidc_ca_file);
	env_str("AIRLOCK_OIDC_GROUPS_FILE", &cfg->identity.oidc_groups_file);
	env_str("AIRLOCK_OIDC_CLIENT_ID", &cfg->identity.oidc_client_id);
	env_str("AIRLOCK_OIDC_REDIRECT_URI", &cfg->identity.oidc_redirect_uri);
	env_str("AIRLOCK_OIDC_SCOPE", &cfg->identity.oidc_scope);
	if ((v = getenv("AIRLOCK_OIDC_CLIENT_SECRET")) && *v) {
		secret_free(cfg->identity.oidc_client_secret);
		cfg->identity.oidc_client_secret = xstrdup(v);
	}
	env_str("AIRLOCK_POLICY_FILE", &cfg->identity.policy_file);
	env_str("AIRLOCK_AGENT_IDENTITY_ISSUER", &cfg->identity.agent_issuer);
	env_str("AIRLOCK_AGENT_IDENTITY_KEY_FILE", &cfg->identity.agent_key_file);
	env_str("AIRLOCK_AGENT_IDENTITY_PREVIOUS_KEY_FILE", &cfg->identity.agent_prev_key_file);
	env_str("AIRLOCK_AUDIT_FILE", &cfg->audit_file);
	env_str("AIRLOCK_METRICS_LISTEN", &cfg->metrics_listen);
	env_uint("AIRLOCK_MODEL_RETRY_BASE_MS", 1, 60000, &cfg->model_retry_base_ms);
	env_uint("AIRLOCK_LOOP_LEASE_MS", 1000, 600000, &cfg->loop_lease_ms);
	env_uint("AIRLOCK_NOTIFY_SWEEP_MS", 100, 600000, &cfg->notify_sweep_ms);
	env_uint("AIRLOCK_MODEL_MAX_TOKENS", 1, 1000000, &cfg->model_max_tokens);
	env_uint("AIRLOCK_MCP_TIMEOUT_MS", 100, 600000, &cfg->mcp_timeout_ms);
	env_uint("AIRLOCK_MCP_CALL_TIMEOUT_MS", 100, 3600000, &cfg->mcp_call_timeout_ms);
	if ((v = getenv("AIRLOCK_DATABASE_URL")) && *v) {
		secret_free(cfg->database_url);
		cfg->database_url = xstrdup(v);
	}
	env_uint("AIRLOCK_DATABASE_RETRY", 0, 86400, &cfg->database_retry_s);
	if ((v = getenv("AIRLOCK_DATA_DIR")) && *v) {
		free(cfg->data_dir);
		cfg->data_dir = xstrdup(v);
	}
	if ((v = getenv("AIRLOCK_API_KEY")) && *v) {
		secret_free(cfg->api_key);
		cfg->api_key = xstrdup(v);
	}
	if ((v = getenv("AIRLOCK_MODEL_BASE_URL")) && *v) {
		free(cfg->model_base_url);
		cfg->model_base_url = xstrdup(v);
	}
	if (((v = getenv("AIRLOCK_MODEL_API_KEY")) && *v) ||
	    (cfg->model_api_key == NULL && (v = getenv("ANTHROPIC_API_KEY")) && *v)) {
		secret_free(cfg->model_api_key);
		cfg->model_api_key = xstrdup(v);
	}
	if ((v = getenv("AIRLOCK_DRAIN_TIMEOUT")) && *v &&
	    parse_drain_timeout(v, "AIRLOCK_DRAIN_TIMEOUT", &cfg->drain_timeout_s) != 0)
		return AL_E_INVAL;
	if ((v = getenv("AIRLOCK_FILES_MAX_BYTES")) && *v) {
		uint64_t n;
		if (parse_uint_cstr(v, FILES_MAX_BYTES_CAP, &n) != 0 || n == 0) {
			fprintf(stderr, "airlock server: AIRLOCK_FILES_MAX_BYTES: must be a byte "
			                "count from 1 to 1099511627776 (1 TiB)\n");
			return AL_E_INVAL;
		}
		cfg->files_max_bytes = n;
	}
	if ((v = getenv("AIRLOCK_LEASE_TTL")) && *v) {
		uint64_t t;
		if (parse_duration_ms(v, 600000, &t) != 0 || t % 1000 != 0 || t < 1000) {
			fprintf(stderr,
			        "airlock server: AIRLOCK_LEASE_TTL: must be a duration from "
			        "1s to 600s (90, 90s, 5m)\n");
			return AL_E_INVAL;
		}
		cfg->lease_ttl_s = (unsigned)(t / 1000);
	}
	return 0;
}

static void
flag_str(char **dst)
{
	free(*dst);
	*dst = xstrdup(optarg);
}

/* The first TERM/INT drains (server_drain.c); a second one is an operator who will not
 * wait: the loop stops now. */
static void
on_signal(struct loop *l, int signo, void *arg)
{
	struct server *s = arg;
	const char *name = signo == SIGTERM ? "TERM" : "INT";
	if (!s->draining) {
		server_drain(s, name);
		return;
	}
	log_warn("second signal: exiting without waiting for the drain", "signal", name);
	loop_stop(l);
}

/* SIGHUP: what can change without a restart is reloaded from the same paths — the
 * certificates (rotation) and the policy file — and the log says what; everything
 * else is read at start only. A file that does not load keeps the running one. */
static void
on_hup(struct loop *l, int signo, void *arg)
{
	struct server *s = arg;
	char what[256] = "", err[512];
	int bad = 0;
	if (s->api_tls != NULL) {
		if (tls_server_ctx_reload(s->api_tls, s->cfg.tls_cert_file, s->cfg.tls_key_file,
		                          err, sizeof(err)) != 0) {
			log_error("API certificate not reloaded; keeping the running one", "error",
			          err);
			bad = 1;
		} else {
			snprintf(what, sizeof(what), "API certificate");
		}
	}
	if (tunnel_reload_tls(s, what, sizeof(what)) != 0)
		bad = 1;
	if (tunnel_ingress_reload_tls(s, what, sizeof(what)) != 0)
		bad = 1;
	if (s->policy_watch != NULL) {
		server_policy_reload(s, "SIGHUP"); /* logs its own outcome */
		size_t n = strlen(what);
		snprintf(what + n, sizeof(what) - n, "%spolicy file", n ? ", " : "");
	}
	if (what[0] == '\0' && !bad)
		log_info("SIGHUP: nothing to reload (certificates and the policy file are "
		         "reloaded when configured; other settings need a restart)");
	else
		log_info("SIGHUP: reloaded", "what", what[0] ? what : "nothing", "failed",
		         bad ? "yes (see above)" : "no");
}

int
server_config_load(struct server_config *cfg, int argc, char **argv, enum log_format *fmt,
                   enum log_level *lvl)
{
	cfg->listen = xstrdup("127.0.0.1:8400");
	cfg->data_dir = xstrdup(".airlock-data");
	cfg->database_retry_s = 60;
	cfg->model_base_url = xstrdup("https://api.anthropic.com");
	cfg->lease_ttl_s = 90;
	cfg->sse_ping_ms = 15000;
	cfg->drain_timeout_s = 30;
	cfg->model_max_retries = 5;
	cfg->model_retry_base_ms = 1000;
	cfg->loop_lease_ms = 15000;
	cfg->notify_sweep_ms = 1000;
	cfg->model_max_tokens = 8192;
	cfg->mcp_timeout_ms = 30000;
	cfg->mcp_call_timeout_ms = 120000;
	cfg->files_max_bytes = 100u << 20;
	for (int i = 1; i < argc; i++) {
		const char *path = NULL;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		if (path && config_file_load(cfg, path, fmt, lvl) != 0)
			return AL_E_INVAL;
	}
	return config_from_env(cfg);
}

void
server_config_free(struct server_config *c)
{
	free(c->listen);
	free(c->data_dir);
	secret_free(c->database_url);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	secret_free(c->api_key);
	free(c->model_base_url);
	secret_free(c->model_api_key);
	free(c->master_key_file);
	free(c->audit_file);
	free(c->metrics_listen);
	free(c->tunnel.listen);
	free(c->tunnel.tls_cert_file);
	free(c->tunnel.tls_key_file);
	free(c->tunnel.domain);
	free(c->tunnel.ingress_listen);
	free(c->tunnel.metrics_listen);
	free(c->identity.oidc_issuer);
	free(c->identity.oidc_audience);
	free(c->identity.oidc_groups_claim);
	free(c->identity.oidc_ca_file);
	free(c->identity.oidc_groups_file);
	free(c->identity.oidc_client_id);
	secret_free(c->identity.oidc_client_secret);
	free(c->identity.oidc_redirect_uri);
	free(c->identity.oidc_scope);
	free(c->identity.policy_file);
	free(c->identity.agent_issuer);
	free(c->identity.agent_key_file);
	free(c->identity.agent_prev_key_file);
}

/* PostgreSQL may come up after us (a pod and its database start together): a connection
 * that fails is retried with backoff for database_retry_s, each failure logged with its
 * reason (never the URL). Only a failed connection is retried: a refused password or a
 * failed migration is not. */
static int
open_database(struct server *srv)
{
	if (srv->cfg.database_url == NULL || srv->cfg.database_url[0] == '\0')
		return db_open(srv->cfg.data_dir, &srv->db);
	/* the data directory still holds the master key and the audit log */
	if (mkdir(srv->cfg.data_dir, 0700) < 0 && errno != EEXIST) {
		log_error("cannot create data directory", "dir", srv->cfg.data_dir);
		return AL_E_IO;
	}
	uint64_t deadline = now_mono_ms() + (uint64_t)srv->cfg.database_retry_s * 1000;
	unsigned delay_ms = 250;
	for (;;) {
		int r = db_open_url(srv->cfg.database_url, &srv->db);
		if (r != AL_E_AGAIN || now_mono_ms() + delay_ms > deadline)
			return r;
		char ms[16];
		snprintf(ms, sizeof(ms), "%u", delay_ms);
		log_warn("database not ready; retrying", "retry_ms", ms);
		struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
		delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
	}
}

int
server_open(struct server *srv)
{
	int r;
	/* every JSON value the server frees is zeroed first: request bodies carry vault
	 * tokens and keys, and jansson copies them into its own allocations */
	json_set_alloc_funcs(malloc, wipe_free);
	if ((r = open_database(srv)) != 0) {
		log_error("cannot open the database", "engine",
		          srv->cfg.database_url && srv->cfg.database_url[0] ? "postgresql"
		                                                            : "sqlite",
		          "error", al_strerror(r));
		return r;
	}
	srv->loop = loop_new();
	srv->http = http_server_new(srv->loop, NULL, api_dispatch, srv);
	http_server_set_body_hook(srv->http, api_body_hook, srv);
	if ((r = file_store_init(srv->db, srv->cfg.data_dir)) != 0 ||
	    (r = skill_store_init(srv->db, srv->cfg.data_dir)) != 0)
		return r;
	if ((r = server_hooks_start(srv)) != 0) {
		log_error("cannot start server modules", "error", al_strerror(r));
		return r;
	}
	srv->started = true;
	return 0;
}

void
server_close(struct server *srv)
{
	server_drain_cancel(srv);
	if (srv->started)
		server_hooks_stop(srv);
	srv->started = false;
	if (srv->http)
		http_server_free(srv->http);
	srv->http = NULL;
	loop_free(srv->loop);
	srv->loop = NULL;
	db_close(srv->db);
	srv->db = NULL;
	console_free(srv);
}

int
server_main(int argc, char **argv)
{
	struct server srv;
	struct tls_server_ctx *tls = NULL;
	enum log_format fmt = LOG_FMT_TEXT;
	enum log_level lvl = LOG_LVL_INFO;
	int rc = 1, r;
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"data-dir", required_argument, NULL, 'd'},
	    {"tls-cert", required_argument, NULL, 'c'},
	    {"tls-key", required_argument, NULL, 'k'},
	    {"log-format", required_argument, NULL, 'f'},
	    {"log-level", required_argument, NULL, 'v'},
	    {"config", required_argument, NULL, 'C'},
	    {"tunnel-listen", required_argument, NULL, 1001},
	    {"tunnel-tls-cert", required_argument, NULL, 1002},
	    {"tunnel-tls-key", required_argument, NULL, 1003},
	    {"tunnel-domain", required_argument, NULL, 1004},
	    {"tunnel-ingress-listen", required_argument, NULL, 1005},
	    {"tunnel-metrics-listen", required_argument, NULL, 1006},
	    {"metrics-listen", required_argument, NULL, 1007},
	    {"drain-timeout", required_argument, NULL, 1008},
	    {"database-url", required_argument, NULL, 1009},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};

	memset(&srv, 0, sizeof(srv));
	/* Precedence: defaults < config file < environment < flags. */
	if (server_config_load(&srv.cfg, argc, argv, &fmt, &lvl) != 0) {
		rc = 2;
		goto out;
	}

	optind = 1;
	int ch;
	opterr = 0; /* cli_option_error words it */
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			free(srv.cfg.listen);
			srv.cfg.listen = xstrdup(optarg);
			break;
		case 'd':
			free(srv.cfg.data_dir);
			srv.cfg.data_dir = xstrdup(optarg);
			break;
		case 1009:
			secret_free(srv.cfg.database_url);
			srv.cfg.database_url = xstrdup(optarg);
			break;
		case 'c':
			free(srv.cfg.tls_cert_file);
			srv.cfg.tls_cert_file = xstrdup(optarg);
			break;
		case 'k':
			free(srv.cfg.tls_key_file);
			srv.cfg.tls_key_file = xstrdup(optarg);
			break;
		case 'f':
			if (log_parse_format(optarg, &fmt) != 0) {
				fprintf(stderr, "airlock server: --log-format: text or json\n");
				rc = 2;
				goto out;
			}
			break;
		case 'v':
			if (log_parse_level(optarg, &lvl) != 0) {
				fprintf(stderr,
				        "airlock server: --log-level: debug|info|warn|error\n");
				rc = 2;
				goto out;
			}
			break;
		case 'C':
			break; /* loaded above */
		case 1001:
			flag_str(&srv.cfg.tunnel.listen);
			break;
		case 1002:
			flag_str(&srv.cfg.tunnel.tls_cert_file);
			break;
		case 1003:
			flag_str(&srv.cfg.tunnel.tls_key_file);
			break;
		case 1004:
			flag_str(&srv.cfg.tunnel.domain);
			break;
		case 1005:
			flag_str(&srv.cfg.tunnel.ingress_listen);
			break;
		case 1006:
			flag_str(&srv.cfg.tunnel.metrics_listen);
			break;
		case 1007:
			flag_str(&srv.cfg.metrics_listen);
			break;
		case 1008:
			if (parse_drain_timeout(optarg, "--drain-timeout",
			                        &srv.cfg.drain_timeout_s) != 0) {
				rc = 2;
				goto out;
			}
			break;
		case 'h':
			server_usage(stdout);
			rc = 0;
			goto out;
		default:
			rc = cli_option_error("server", ch, argc, argv);
			goto out;
		}
	}
	log_setup(fmt, lvl, "server");
	/* side listeners of an edge that is off would be dropped without a word */
	const struct server_tunnel_config *tc = &srv.cfg.tunnel;
	if ((tc->listen == NULL || tc->listen[0] == '\0') &&
	    ((tc->metrics_listen && tc->metrics_listen[0]) ||
	     (tc->ingress_listen && tc->ingress_listen[0]))) {
		fprintf(stderr,
		        "airlock server: %s needs tunnel.listen (--tunnel-listen, "
		        "AIRLOCK_TUNNEL_LISTEN): the tunnel edge is off\n",
		        tc->metrics_listen && tc->metrics_listen[0]
		            ? "tunnel.metrics_listen (--tunnel-metrics-listen)"
		            : "tunnel.ingress_listen (--tunnel-ingress-listen)");
		rc = 2;
		goto out;
	}
	if ((srv.cfg.tls_cert_file == NULL) != (srv.cfg.tls_key_file == NULL)) {
		fprintf(stderr, "airlock server: tls.cert_file and tls.key_file (--tls-cert, "
		                "--tls-key) go together\n");
		rc = 2; /* configuration */
		goto out;
	}
	if (srv.cfg.tls_cert_file == NULL && !net_addr_is_loopback(srv.cfg.listen)) {
		fprintf(stderr,
		        "airlock server: refusing plain HTTP on %s: API keys would cross "
		        "the network in clear; give tls.cert_file and tls.key_file (--tls-cert, "
		        "--tls-key)\n",
		        srv.cfg.listen);
		rc = 2; /* configuration */
		goto out;
	}
	if (srv.cfg.tls_cert_file) {
		char err[512];
		tls = tls_server_ctx_new(srv.cfg.tls_cert_file, srv.cfg.tls_key_file, NULL, err,
		                         sizeof(err));
		if (tls == NULL) {
			fprintf(stderr, "airlock server: %s\n", err);
			rc = 2; /* configuration */
			goto out;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	/* Every open SSE stream is a descriptor; the default soft limit of 1024 would cap
	 * a server at about a thousand watchers. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (server_open(&srv) != 0)
		goto out;
	if ((r = http_server_listen(srv.http, srv.cfg.listen, tls, &srv.port)) != 0) {
		log_error("cannot listen", "addr", srv.cfg.listen, "error", al_strerror(r));
		goto out;
	}
	loop_signal_add(srv.loop, SIGTERM, on_signal, &srv);
	loop_signal_add(srv.loop, SIGINT, on_signal, &srv);
	loop_signal_add(srv.loop, SIGHUP, on_hup, &srv);
	srv.api_tls = tls;
	char port[16];
	snprintf(port, sizeof(port), "%d", srv.port);
	const char *config_path = NULL; /* the last --config, as server_config_load read them */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config_path = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			config_path = argv[i] + 9;
	}
	log_info("listening", "addr", srv.cfg.listen, "port", port, "tls", tls ? "on" : "off",
	         "data_dir", srv.cfg.data_dir, "config", config_path ? config_path : "-",
	         "model_base_url", srv.cfg.model_base_url, "database", db_engine(srv.db));
	/* systemd Type=notify: started once the database is open and the port bound */
	if ((r = notify_send("READY=1\nSTATUS=listening")) != 0)
		log_warn("cannot tell the service manager we are ready (NOTIFY_SOCKET)", "error",
		         al_strerror(r));
	/* A server nobody can call is a setup step missed, not a state to discover by 401s. */
	int64_t nkeys = 0;
	if ((srv.cfg.api_key == NULL || srv.cfg.api_key[0] == '\0') &&
	    (srv.cfg.identity.oidc_issuer == NULL || srv.cfg.identity.oidc_issuer[0] == '\0') &&
	    key_store_count_live(srv.db, "server", &nkeys) == 0 && nkeys == 0)
		log_warn("no server API key exists: every API call will get 401; issue one with "
		         "'airlock keys create --server' and this server's --config, or set "
		         "AIRLOCK_API_KEY / api_key_file",
		         "data_dir", srv.cfg.data_dir);
	loop_run(srv.loop);
	rc = 0;
out:
	server_close(&srv);
	tls_server_ctx_free(tls);
	server_config_free(&srv.cfg);
	return rc;
}
