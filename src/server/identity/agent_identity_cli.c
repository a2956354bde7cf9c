/* `airlock agent-identity export-issuer --out DIR [--config FILE]`: writes the files a
 * static web host serves at the issuer URL, DIR/.well-known/jwks.json and
 * DIR/.well-known/openid-configuration, from the server's own configuration (so it reads
 * the same key files). Run it again after a key rotation. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_identity.h"
#include "err.h"
#include "log.h"
#include "server.h"
#include "xalloc.h"

int agent_identity_main(int argc, char **argv);

static void
usage(FILE *f)
{
	fprintf(f, "usage: airlock agent-identity export-issuer --out DIR [--config FILE]\n"
	           "  writes DIR/.well-known/jwks.json and DIR/.well-known/openid-configuration\n"
	           "  for the issuer URL (identity.agent_identity.issuer,\n"
	           "  AIRLOCK_AGENT_IDENTITY_ISSUER); serve DIR at that URL as application/json\n");
}

static int
write_doc(const char *dir, const char *name, json_t *doc)
{
	char *path = xasprintf("%s/.well-known/%s", dir, name);
	char *tmp = xasprintf("%s.tmp", path);
	int r =
	    json_dump_file(doc, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 && rename(tmp, path) == 0
	        ? 0
	        : -errno;
	if (r != 0)
		fprintf(stderr, "airlock agent-identity: %s: %s\n", path, strerror(-r));
	else
		printf("wrote %s\n", path);
	free(path);
	free(tmp);
	return r;
}

int
agent_identity_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"config", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *out = NULL;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "export-issuer") != 0) {
		fprintf(stderr, "airlock agent-identity: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	optind = 2;
	opterr = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 'C':
			break; /* read by server_config_load */
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "airlock agent-identity: %s needs a value\n",
			        argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "airlock agent-identity: unknown option '%s'\n",
			        argv[optind - 1]);
			return 2;
		}
	}
	if (out == NULL) {
		usage(stderr);
		return 2;
	}
	struct server_config cfg = {0};
	enum log_format fmt = LOG_FMT_TEXT;
	enum log_level lvl = LOG_LVL_INFO;
	if (server_config_load(&cfg, argc, argv, &fmt, &lvl) != 0)
		return 2;
	log_setup(fmt, lvl, "agent-identity");
	int rc = 2;
	struct agent_identity *ai = NULL;
	char err[600];
	if (cfg.identity.agent_issuer == NULL || cfg.identity.agent_issuer[0] == '\0') {
		fprintf(stderr,
		        "airlock agent-identity: no issuer: set identity.agent_identity.issuer "
		        "or AIRLOCK_AGENT_IDENTITY_ISSUER\n");
		goto out;
	}
	struct agent_identity_config ac = {.issuer = cfg.identity.agent_issuer,
	                                   .key_file = cfg.identity.agent_key_file,
	                                   .previous_key_file = cfg.identity.agent_prev_key_file,
	                                   .data_dir = cfg.data_dir};
	if (agent_identity_open(&ac, &ai, err, sizeof err) != 0) {
		fprintf(stderr, "airlock agent-identity: %s\n", err);
		goto out;
	}
	char *wk = xasprintf("%s/.well-known", out);
	if ((mkdir(out, 0755) != 0 && errno != EEXIST) ||
	    (mkdir(wk, 0755) != 0 && errno != EEXIST)) {
		fprintf(stderr, "airlock agent-identity: %s: %s\n", wk, strerror(errno));
		free(wk);
		rc = 1;
		goto out;
	}
	free(wk);
	json_t *jwks = agent_identity_jwks(ai), *disc = agent_identity_discovery(ai);
	rc = write_doc(out, "jwks.json", jwks) == 0 &&
	             write_doc(out, "openid-configuration", disc) == 0
	         ? 0
	         : 1;
	json_decref(jwks);
	json_decref(disc);
out:
	agent_identity_free(ai);
	server_config_free(&cfg);
	return rc;
}
