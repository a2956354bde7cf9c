/* `airlock server`: configuration, startup, signals and shutdown of the control
 * plane. Everything runs on one event loop; see docs/server/overview.md. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "api.h"
#include "err.h"
#include "log.h"
#include "server.h"
#include "server_hooks.h"
#include "tls.h"
#include "xalloc.h"

static void
server_usage(FILE *f)
{
	fprintf(f,
		"usage: airlock server [options]\n"
		"\n"
		"  --listen ADDR:PORT     listen address (default 127.0.0.1:8400; plain HTTP only\n"
		"                         on loopback, any other address needs --tls-cert/--tls-key)\n"
		"  --data-dir DIR         SQLite database directory (AIRLOCK_DATA_DIR, default\n"
		"                         .airlock-data)\n"
		"  --tls-cert FILE        PEM certificate chain\n"
		"  --tls-key FILE         PEM private key\n"
		"  --log-format text|json (default text)\n"
		"  --log-level debug|info|warn|error\n"
		"\n"
		"environment:\n"
		"  AIRLOCK_API_KEY        a server API key accepted in addition to issued keys\n"
		"  AIRLOCK_MODEL_BASE_URL Messages API base URL (default https://api.anthropic.com)\n"
		"  AIRLOCK_MODEL_API_KEY  key for the model provider (default ANTHROPIC_API_KEY)\n"
		"  AIRLOCK_LEASE_TTL      work lease TTL in seconds (default 90)\n");
}

static char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	if (v && *v)
		return xstrdup(v);
	return dflt ? xstrdup(dflt) : NULL;
}

static bool
is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]:", 6) == 0 ||
	       strncmp(addr, "localhost:", 10) == 0;
}

static void
on_signal(struct loop *l, int signo, void *arg)
{
	struct server *s = arg;
	log_info("shutting down", "signal", signo == SIGTERM ? "TERM" : "INT");
	http_server_shutdown(s->http);
	loop_stop(l);
}

static void
config_free(struct server_config *c)
{
	free(c->listen);
	free(c->data_dir);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	secret_free(c->api_key);
	free(c->model_base_url);
	secret_free(c->model_api_key);
}

int
server_open(struct server *srv)
{
	int r;
	if ((r = db_open(srv->cfg.data_dir, &srv->db)) != 0)
		return r;
	srv->loop = loop_new();
	srv->http = http_server_new(srv->loop, NULL, api_dispatch, srv);
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
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};

	memset(&srv, 0, sizeof(srv));
	srv.cfg.listen = xstrdup("127.0.0.1:8400");
	srv.cfg.data_dir = env_or("AIRLOCK_DATA_DIR", ".airlock-data");
	srv.cfg.api_key = env_or("AIRLOCK_API_KEY", NULL);
	srv.cfg.model_base_url = env_or("AIRLOCK_MODEL_BASE_URL", "https://api.anthropic.com");
	srv.cfg.model_api_key = env_or("AIRLOCK_MODEL_API_KEY", getenv("ANTHROPIC_API_KEY"));
	srv.cfg.lease_ttl_s = 90;
	srv.cfg.sse_ping_ms = 15000;
	srv.cfg.model_max_retries = 5;
	const char *ttl = getenv("AIRLOCK_LEASE_TTL");
	if (ttl) {
		uint64_t v;
		if (parse_uint_cstr(ttl, 600, &v) != 0 || v < 1) {
			fprintf(stderr, "airlock server: AIRLOCK_LEASE_TTL must be 1..600\n");
			goto out;
		}
		srv.cfg.lease_ttl_s = (unsigned)v;
	}

	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': free(srv.cfg.listen); srv.cfg.listen = xstrdup(optarg); break;
		case 'd': free(srv.cfg.data_dir); srv.cfg.data_dir = xstrdup(optarg); break;
		case 'c': srv.cfg.tls_cert_file = xstrdup(optarg); break;
		case 'k': srv.cfg.tls_key_file = xstrdup(optarg); break;
		case 'f':
			if (log_parse_format(optarg, &fmt) != 0) {
				fprintf(stderr, "airlock server: --log-format: text or json\n");
				goto out;
			}
			break;
		case 'v':
			if (log_parse_level(optarg, &lvl) != 0) {
				fprintf(stderr, "airlock server: --log-level: debug|info|warn|error\n");
				goto out;
			}
			break;
		case 'h': server_usage(stdout); rc = 0; goto out;
		default: server_usage(stderr); rc = 2; goto out;
		}
	}
	log_setup(fmt, lvl, "server");
	if ((srv.cfg.tls_cert_file == NULL) != (srv.cfg.tls_key_file == NULL)) {
		fprintf(stderr, "airlock server: --tls-cert and --tls-key go together\n");
		goto out;
	}
	if (srv.cfg.tls_cert_file == NULL && !is_loopback(srv.cfg.listen)) {
		fprintf(stderr, "airlock server: refusing plain HTTP on %s: API keys would cross "
				"the network in clear; give --tls-cert and --tls-key\n",
			srv.cfg.listen);
		goto out;
	}
	if (srv.cfg.tls_cert_file) {
		char err[512];
		tls = tls_server_ctx_new(srv.cfg.tls_cert_file, srv.cfg.tls_key_file, NULL, err,
					 sizeof(err));
		if (tls == NULL) {
			fprintf(stderr, "airlock server: %s\n", err);
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
	char port[16];
	snprintf(port, sizeof(port), "%d", srv.port);
	log_info("listening", "addr", srv.cfg.listen, "port", port, "tls",
		 tls ? "on" : "off", "data_dir", srv.cfg.data_dir);
	loop_run(srv.loop);
	rc = 0;
out:
	server_close(&srv);
	tls_server_ctx_free(tls);
	config_free(&srv.cfg);
	return rc;
}
