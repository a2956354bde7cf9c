/* Key administration: `airlock keys create|revoke|list` on the database directly,
 * and POST /v1/environments/{id}/keys for API-key holders. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "audit.h"
#include "db.h"
#include "environment_store.h"
#include "auth.h"
#include "cli.h"
#include "err.h"
#include "key_store.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "util.h"
#include "xalloc.h"

int keys_main(int argc, char **argv);

static void
create_environment_key(struct api_call *c)
{
	const char *env_id = c->params[0];
	static const char *const allowed[] = {"name", NULL};
	char *id = NULL, *key = NULL;
	const char *name = NULL;
	if (api_body_only(c, allowed))
		return;
	if (c->body) {
		json_t *n = json_object_get(c->body, "name");
		if (n && !json_is_string(n)) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "name: must be a string");
			return;
		}
		name = n ? json_string_value(n) : NULL;
	}
	int r = environment_store_live(c->srv->db, env_id);
	if (r == AL_E_NOTFOUND) {
		api_reply_error(c, 404, "not_found_error", "environment_not_found",
		                "environment %s not found", env_id);
		return;
	}
	if (r == AL_E_CONFLICT) {
		api_reply_error(c, 400, "invalid_request_error", "environment_archived",
		                "environment %s is archived", env_id);
		return;
	}
	if (r != 0 ||
	    (r = auth_key_create(c->srv->db, "environment", env_id, name, &id, &key)) != 0) {
		api_reply_err(c, r, "cannot create key");
		return;
	}
	log_info("environment key issued", "key_id", id, "environment_id", env_id);
	audit_api(c, "key.create", NULL, "ok",
	          json_pack("{s:s, s:s, s:s}", "key_id", id, "kind", "environment",
	                    "environment_id", env_id));
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "type", "environment_key", "id", id,
	                      "environment_id", env_id, "key", key);
	free(id);
	secret_free(key);
	api_reply_json(c, 200, o);
}

const struct api_route keys_routes[] = {
    {"POST", "/v1/environments/{}/keys", CREDS_API, create_environment_key},
    {NULL, NULL, 0, NULL},
};

static int
print_key(void *arg, const struct key_row *k)
{
	char created[32], revoked[32] = "-";
	(void)arg;
	time_fmt_rfc3339(k->created_at, created);
	if (k->revoked)
		time_fmt_rfc3339(k->revoked_at, revoked);
	printf("%-32s %-11s %-32s %-24s %-20s %s\n", k->id, k->kind,
	       k->environment_id[0] ? k->environment_id : "-", k->name[0] ? k->name : "-", created,
	       k->revoked ? revoked : "live");
	return 0;
}

/* verb NULL: every verb; else that verb's own usage line. */
static void
keys_usage(FILE *f, const char *verb)
{
	static const char *const lines[][2] = {
	    {"create", "create (--server | --environment ENV_ID) [--name NAME]  print a new key"},
	    {"revoke", "revoke KEY_ID                                          revoke a key"},
	    {"list", "list                                                   list every key"},
	};
	bool one = false;
	for (size_t i = 0; verb != NULL && i < sizeof(lines) / sizeof(lines[0]); i++)
		one |= strcmp(verb, lines[i][0]) == 0;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!one || strcmp(verb, lines[i][0]) == 0)
			fprintf(f, "%s airlock keys %s\n", i == 0 || one ? "usage:" : "      ",
			        lines[i][1]);
	fprintf(f, "\n"
	           "Works on the server's database directly: run it where the server runs, with\n"
	           "the server's configuration. A key is printed once on stdout; only its hash\n"
	           "is stored.\n"
	           "\n"
	           "options:\n"
	           "  --config FILE    the server's YAML configuration (its data_dir is used)\n"
	           "  --data-dir DIR   the data directory; overrides the file and\n"
	           "                   AIRLOCK_DATA_DIR (default .airlock-data)\n"
	           "  --create         create the database when there is none (a new server);\n"
	           "                   without it a missing database is an error\n"
	           "  -h, --help       this text\n"
	           "\n"
	           "environment: AIRLOCK_DATA_DIR, AIRLOCK_DATABASE_URL (PostgreSQL instead),\n"
	           "and every variable `airlock server` reads\n"
	           "(docs/server/config.md).\n"
	           "exit status: 0 ok, 1 failure, 2 usage or configuration error\n");
}

/* The data directory the server would use: defaults < --config files < environment <
 * --data-dir, exactly as `airlock server` resolves it; and its PostgreSQL URL, if any
 * (AIRLOCK_DATABASE_URL), which then holds the keys instead. */
static int
keys_data_dir(int argc, char **argv, const char *flag_dir, char **out, char **url)
{
	struct server_config cfg = {0};
	enum log_format fmt = LOG_FMT_TEXT;
	enum log_level lvl = LOG_LVL_INFO;
	int r = server_config_load(&cfg, argc, argv, &fmt, &lvl);
	if (r == 0) {
		*out = xstrdup(flag_dir ? flag_dir : cfg.data_dir);
		if (cfg.database_url && cfg.database_url[0])
			*url = xstrdup(cfg.database_url);
	}
	server_config_free(&cfg);
	return r;
}

int
keys_main(int argc, char **argv)
{
	const char *env_id = NULL, *name = NULL, *flag_dir = NULL;
	char *data_dir = NULL, *url = NULL;
	bool server = false, create = false;
	struct db *db = NULL;
	int rc = 2, r;
	static const struct option opts[] = {
	    {"environment", required_argument, NULL, 'e'},
	    {"server", no_argument, NULL, 's'},
	    {"name", required_argument, NULL, 'n'},
	    {"data-dir", required_argument, NULL, 'd'},
	    {"config", required_argument, NULL, 'C'},
	    {"create", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	if (argc < 2) {
		keys_usage(stderr, NULL);
		return 2;
	}
	const char *verb = argv[1];
	if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "help") == 0) {
		keys_usage(stdout, NULL);
		return 0;
	}
	if (strcmp(verb, "create") != 0 && strcmp(verb, "revoke") != 0 &&
	    strcmp(verb, "list") != 0) {
		fprintf(stderr, "airlock keys: unknown command '%s'\n", verb);
		keys_usage(stderr, NULL);
		return 2;
	}
	optind = 2;
	opterr = 0; /* our own messages below: "unknown option", not getopt's */
	int ch;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'e':
			env_id = optarg;
			break;
		case 's':
			server = true;
			break;
		case 'n':
			name = optarg;
			break;
		case 'd':
			flag_dir = optarg;
			break;
		case 'C':
			break; /* read by server_config_load */
		case 'c':
			create = true;
			break;
		case 'h':
			keys_usage(stdout, verb);
			return 0;
		default: {
			char cmd[32];
			snprintf(cmd, sizeof(cmd), "keys %s", verb);
			return cli_option_error(cmd, ch, argc, argv);
		}
		}
	}
	if (strcmp(verb, "create") == 0 && server == (env_id != NULL)) {
		fprintf(
		    stderr,
		    "airlock keys create: give exactly one of --server or --environment ENV_ID\n");
		return 2;
	}
	if (strcmp(verb, "revoke") == 0 && optind + 1 != argc) {
		fprintf(stderr, "airlock keys revoke: give exactly one KEY_ID\n");
		return 2;
	}
	if (strcmp(verb, "revoke") != 0 && optind != argc) {
		fprintf(stderr, "airlock keys %s: unexpected argument '%s'\n", verb, argv[optind]);
		return 2;
	}
	if (keys_data_dir(argc, argv, flag_dir, &data_dir, &url) != 0)
		return 2;
	r = url      ? db_open_url(url, &db)
	    : create ? db_open(data_dir, &db)
	             : db_open_existing(data_dir, &db);
	if (r == AL_E_NOTFOUND) {
		/* A key in a database the server does not read is a key that gets 401. */
		fprintf(stderr,
		        "airlock keys: no database at %s/airlock.db; give the server's --config "
		        "FILE, --data-dir or AIRLOCK_DATA_DIR (--create makes a new one)\n",
		        data_dir);
		rc = 2;
		goto out;
	}
	if (r != 0) {
		fprintf(stderr, "airlock keys: cannot open the database in %s: %s\n",
		        url ? "AIRLOCK_DATABASE_URL" : data_dir, al_strerror(r));
		rc = 1;
		goto out;
	}
	rc = 1;
	if (strcmp(verb, "create") == 0) {
		char *id = NULL, *key = NULL;
		if (env_id) {
			r = environment_store_live(db, env_id);
			if (r != 0) {
				fprintf(stderr, "airlock keys create: environment %s %s\n", env_id,
				        r == AL_E_CONFLICT ? "is archived" : "not found");
				goto out;
			}
		}
		/* the key and its audit record (for the server's log) in one transaction */
		const char *kind = server ? "server" : "environment";
		if (db_begin(db) != 0 || auth_key_create(db, kind, env_id, name, &id, &key) != 0 ||
		    audit_outbox_add(db, "key.create",
		                     json_pack("{s:s, s:s, s:s?}", "key_id", id, "kind", kind,
		                               "environment_id", env_id)) != 0 ||
		    db_commit(db) != 0) {
			db_rollback(db);
			free(id);
			secret_free(key);
			fprintf(stderr, "airlock keys create: database error\n");
			goto out;
		}
		fprintf(stderr, "created %s key %s in %s/airlock.db\n",
		        server ? "server" : "environment", id, data_dir);
		printf("%s\n", key);
		free(id);
		secret_free(key);
		rc = 0;
	} else if (strcmp(verb, "revoke") == 0) {
		if ((r = db_begin(db)) == 0 && (r = auth_key_revoke(db, argv[optind])) == 0 &&
		    (r = audit_outbox_add(db, "key.revoke",
		                          json_pack("{s:s}", "key_id", argv[optind]))) == 0)
			r = db_commit(db);
		if (r != 0) {
			db_rollback(db);
			fprintf(stderr, "airlock keys revoke: %s: %s\n", argv[optind],
			        r == AL_E_NOTFOUND ? "no such live key" : "database error");
			goto out;
		}
		printf("revoked %s\n", argv[optind]);
		rc = 0;
	} else {
		printf("%-32s %-11s %-32s %-24s %-20s %s\n", "ID", "KIND", "ENVIRONMENT", "NAME",
		       "CREATED", "REVOKED");
		if (key_store_list(db, print_key, NULL) != 0) {
			fprintf(stderr, "airlock keys list: database error\n");
			goto out;
		}
		rc = 0;
	}
out:
	db_close(db);
	free(data_dir);
	secret_free(url);
	return rc;
}
