/* The control plane process: one event loop owning the HTTP listener, the database,
 * the SSE hubs, the work queue waiters and the agent loops. */
#ifndef AL_SERVER_H
#define AL_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "http.h"
#include "log.h"
#include "loop.h"

/* The MCP tunnel edge and its side listeners (docs/server/tunnels.md); listen NULL: off. */
struct server_tunnel_config {
	char *listen;         /* AIRLOCK_TUNNEL_LISTEN, --tunnel-listen: the edge gateways dial */
	char *tls_cert_file;  /* AIRLOCK_TUNNEL_TLS_CERT, --tunnel-tls-cert */
	char *tls_key_file;   /* AIRLOCK_TUNNEL_TLS_KEY, --tunnel-tls-key */
	char *domain;         /* AIRLOCK_TUNNEL_DOMAIN; NULL: "tunnel.localhost" */
	char *ingress_listen; /* AIRLOCK_TUNNEL_INGRESS_LISTEN */
	char *metrics_listen; /* AIRLOCK_TUNNEL_METRICS_LISTEN (loopback only) */
};

/* Users from an OpenID Connect provider (docs/server/identity.md); issuer NULL: off. */
struct server_identity_config {
	char *oidc_issuer;       /* AIRLOCK_OIDC_ISSUER, identity.oidc.issuer */
	char *oidc_audience;     /* AIRLOCK_OIDC_AUDIENCE */
	char *oidc_groups_claim; /* AIRLOCK_OIDC_GROUPS_CLAIM; NULL: "groups" */
	char *oidc_ca_file;      /* AIRLOCK_OIDC_CA_FILE; NULL: system trust store */
	char *oidc_groups_file;  /* AIRLOCK_OIDC_GROUPS_FILE: user → groups mapping */
	/* the console's browser sign-in (authorization code + PKCE; console/console_oidc.c) */
	char *oidc_client_id;      /* AIRLOCK_OIDC_CLIENT_ID */
	char *oidc_client_secret;  /* AIRLOCK_OIDC_CLIENT_SECRET, or client_secret_file */
	char *oidc_redirect_uri;   /* AIRLOCK_OIDC_REDIRECT_URI: <console URL>/oidc/callback */
	char *oidc_scope;          /* AIRLOCK_OIDC_SCOPE; NULL: "openid email profile" */
	char *policy_file;         /* AIRLOCK_POLICY_FILE, policy_file: tool policy and roles */
	char *agent_issuer;        /* AIRLOCK_AGENT_IDENTITY_ISSUER: agent identity on MCP calls */
	char *agent_key_file;      /* AIRLOCK_AGENT_IDENTITY_KEY_FILE; NULL: <data_dir>/… */
	char *agent_prev_key_file; /* AIRLOCK_AGENT_IDENTITY_PREVIOUS_KEY_FILE */
};

/* Filled by server.c (defaults < config file < environment < flags) and read by the
 * modules; nothing reads its settings from the environment itself. A zero number or a
 * NULL string means the built-in default, so a test can fill only what it needs. */
struct server_config {
	char *listen;   /* "127.0.0.1:8400" */
	char *data_dir; /* AIRLOCK_DATA_DIR */
	/* AIRLOCK_DATABASE_URL, --database-url: PostgreSQL (a libpq URI); NULL: SQLite in
	 * data_dir. May hold a password: wiped on free, never logged. */
	char *database_url;
	unsigned database_retry_s; /* AIRLOCK_DATABASE_RETRY: how long start-up retries */
	char *tls_cert_file;
	char *tls_key_file;
	char *api_key;        /* AIRLOCK_API_KEY: accepted as a server API key, never stored */
	char *model_base_url; /* AIRLOCK_MODEL_BASE_URL, default https://api.anthropic.com */
	char *model_api_key;  /* AIRLOCK_MODEL_API_KEY, default ANTHROPIC_API_KEY */
	unsigned lease_ttl_s; /* default work lease, 90 */
	unsigned sse_ping_ms; /* 15000 */
	unsigned model_max_retries;   /* 5 */
	unsigned model_retry_base_ms; /* AIRLOCK_MODEL_RETRY_BASE_MS, 1000 */
	unsigned
	    loop_lease_ms; /* AIRLOCK_LOOP_LEASE_MS, 15000: a session's loop lease (PostgreSQL) */
	unsigned model_max_tokens; /* AIRLOCK_MODEL_MAX_TOKENS, 8192 */
	/* AIRLOCK_NOTIFY_SWEEP_MS, 1000: the hub's safety drain of notifications (PostgreSQL);
	 * tests set it long to prove that the socket watch alone delivers them */
	unsigned notify_sweep_ms;
	unsigned mcp_timeout_ms;      /* AIRLOCK_MCP_TIMEOUT_MS, 30000 */
	unsigned mcp_call_timeout_ms; /* AIRLOCK_MCP_CALL_TIMEOUT_MS, 120000 */
	char *master_key_file;        /* AIRLOCK_MASTER_KEY_FILE; NULL: <data_dir>/master.key */
	char *audit_file;     /* AIRLOCK_AUDIT_FILE, audit.file; NULL: <data_dir>/audit.jsonl */
	char *metrics_listen; /* AIRLOCK_METRICS_LISTEN, metrics.listen: /metrics without a key */
	unsigned drain_timeout_s; /* AIRLOCK_DRAIN_TIMEOUT, drain_timeout_seconds: 30 (1-3600) */
	uint64_t files_max_bytes; /* AIRLOCK_FILES_MAX_BYTES, files.max_bytes; 100 MiB */
#define FILES_MAX_BYTES_CAP (1ull << 40)
	struct server_tunnel_config tunnel;
	struct server_identity_config identity;
};

struct sse_hub;
struct work_waiters;
struct agent_runtime;
struct vaults_key;
struct tunnel_edge;
struct tunnel_ingress;
struct oidc;
struct tls_server_ctx;
struct agent_identity;
struct audit_log;
struct console;
struct server_metrics;

struct server {
	struct server_config cfg;
	struct loop *loop;
	struct http_server *http;
	struct db *db;
	struct sse_hub *hub;          /* open event streams by session */
	struct work_waiters *waiters; /* held long-polls by environment */
	struct agent_runtime *agents; /* agent loops by session */
	struct vaults_key *vault_key; /* credential master key (vaults.c) */
	struct tunnel_edge *tunnel;   /* the MCP tunnel edge, NULL when off (tunnel_edge.c) */
	struct tunnel_ingress *tunnel_ingress; /* its host-routed listener (tunnel_ingress.c) */
	struct oidc *oidc; /* OpenID Connect users, NULL when off (identity/oidc.c) */
	struct agent_identity *agent_identity; /* signs agent tokens, NULL when off */
	struct policy *policy;                 /* tool policy and roles in force, NULL when no file;
	                                        * borrowed from policy_watch (server_hooks.c) */
	struct policy_watch *policy_watch;
	struct tls_server_ctx *api_tls; /* the API listener's, NULL on plain HTTP (SIGHUP) */
	struct audit_log *audit;        /* the audit log (audit/audit.c) */
	struct console *console;        /* web console sessions (console/console.c), lazily */
	struct server_metrics *metrics; /* request counters, metrics.listen (api/metrics.c) */
	int port;                       /* bound port */
	bool started;
	/* server_drain.c: set by the first TERM/INT until the loop stops */
	bool draining;
	uint64_t drain_started_ms;
	struct loop_timer *drain_timer;
};

int server_main(int argc, char **argv);
/* Fills cfg with the defaults, then every --config FILE in argv (printing file:line on
 * an error), then the environment: the server's configuration short of its flags. The
 * admin commands (`airlock keys`) read it the same way, so they find the same data
 * directory. AL_E_INVAL on a bad file or variable (already printed). */
int server_config_load(struct server_config *cfg, int argc, char **argv, enum log_format *fmt,
                       enum log_level *lvl);
void server_config_free(struct server_config *cfg);
/* Loads the policy file again (SIGHUP, or the file changed): a good file replaces the
 * policy for every next decision; a bad one is logged with FILE:LINE and the last good
 * policy stays. why names the trigger for the log. */
void server_policy_reload(struct server *srv, const char *why);
/* Opens the database, creates the loop and HTTP server (not listening) and starts the
 * modules. cfg must be filled. server_close undoes it (safe on a partial open). */
int server_open(struct server *srv);
void server_close(struct server *srv);
/* The first TERM/INT (server_drain.c, docs/server/drain.md): /readyz says 503, the
 * listener closes, streams end, held polls are answered, the agent loop starts nothing
 * new; the loop stops once no connection and no agent call is left, or after
 * cfg.drain_timeout_s. */
void server_drain(struct server *srv, const char *signame);
void server_drain_cancel(struct server *srv);

#endif
