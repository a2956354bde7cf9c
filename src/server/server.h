/* The control plane process: one event loop owning the HTTP listener, the database,
 * the SSE hubs, the work queue waiters and the agent loops. */
#ifndef AL_SERVER_H
#define AL_SERVER_H

#include <stdbool.h>

#include "db.h"
#include "http.h"
#include "loop.h"

struct server_config {
	char *listen;   /* "127.0.0.1:8400" */
	char *data_dir; /* AIRLOCK_DATA_DIR */
	char *tls_cert_file;
	char *tls_key_file;
	char *api_key;        /* AIRLOCK_API_KEY: accepted as a server API key, never stored */
	char *model_base_url; /* AIRLOCK_MODEL_BASE_URL, default https://api.anthropic.com */
	char *model_api_key;  /* AIRLOCK_MODEL_API_KEY, default ANTHROPIC_API_KEY */
	unsigned lease_ttl_s; /* default work lease, 90 */
	unsigned sse_ping_ms; /* 15000 */
	unsigned model_max_retries; /* 5 */
};

struct sse_hub;
struct work_waiters;
struct agent_runtime;
struct vaults_key;

struct server {
	struct server_config cfg;
	struct loop *loop;
	struct http_server *http;
	struct db *db;
	struct sse_hub *hub;          /* open event streams by session */
	struct work_waiters *waiters; /* held long-polls by environment */
	struct agent_runtime *agents; /* agent loops by session */
	struct vaults_key *vault_key; /* credential master key (vaults.c) */
	int port;                     /* bound port */
	bool started;
};

int server_main(int argc, char **argv);
/* Opens the database, creates the loop and HTTP server (not listening) and starts the
 * modules. cfg must be filled. server_close undoes it (safe on a partial open). */
int server_open(struct server *srv);
void server_close(struct server *srv);

#endif
