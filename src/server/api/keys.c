/* Key administration: `airlock keys create|revoke|list` on the database directly,
 * and POST /v1/environments/{id}/keys for API-key holders. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "environment_store.h"
#include "auth.h"
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
	(void)arg;
	printf("%s\t%s\t%s\t%s\t%s\n", k->id, k->kind,
	       k->environment_id[0] ? k->environment_id : "-", k->name[0] ? k->name : "-",
	       k->revoked ? "revoked" : "live");
	return 0;
}

static void
keys_usage(FILE *f)
{
	fprintf(f, "usage: airlock keys create [--server | --environment ENV_ID] [--name NAME]\n"
	           "       airlock keys revoke KEY_ID\n"
	           "       airlock keys list\n"
	           "\n"
	           "Works on the database in AIRLOCK_DATA_DIR (or --data-dir). The key is printed\n"
	           "once on stdout; only its hash is stored.\n");
}

int
keys_main(int argc, char **argv)
{
	const char *data_dir = getenv("AIRLOCK_DATA_DIR");
	const char *env_id = NULL, *name = NULL;
	bool server = false;
	struct db *db = NULL;
	int rc = 2;
	static const struct option opts[] = {
	    {"environment", required_argument, NULL, 'e'},
	    {"server", no_argument, NULL, 's'},
	    {"name", required_argument, NULL, 'n'},
	    {"data-dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	if (argc < 2) {
		keys_usage(stderr);
		return 2;
	}
	const char *verb = argv[1];
	optind = 2;
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
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
			data_dir = optarg;
			break;
		case 'h':
			keys_usage(stdout);
			return 0;
		default:
			keys_usage(stderr);
			return 2;
		}
	}
	if (strcmp(verb, "--help") == 0) {
		keys_usage(stdout);
		return 0;
	}
	if (data_dir == NULL)
		data_dir = ".airlock-data";
	if (db_open(data_dir, &db) != 0) {
		fprintf(stderr, "airlock keys: cannot open database in %s\n", data_dir);
		return 1;
	}
	if (strcmp(verb, "create") == 0) {
		char *id = NULL, *key = NULL;
		if (server == (env_id != NULL)) {
			fprintf(stderr, "airlock keys create: give exactly one of --server or "
			                "--environment ENV_ID\n");
			goto out;
		}
		if (env_id) {
			int r = environment_store_live(db, env_id);
			if (r != 0) {
				fprintf(stderr, "airlock keys create: environment %s %s\n", env_id,
				        r == AL_E_CONFLICT ? "is archived" : "not found");
				rc = 1;
				goto out;
			}
		}
		if (auth_key_create(db, server ? "server" : "environment", env_id, name, &id,
		                    &key) != 0) {
			fprintf(stderr, "airlock keys create: database error\n");
			rc = 1;
			goto out;
		}
		fprintf(stderr, "created %s\n", id);
		printf("%s\n", key);
		free(id);
		secret_free(key);
		rc = 0;
	} else if (strcmp(verb, "revoke") == 0) {
		if (optind >= argc) {
			keys_usage(stderr);
			goto out;
		}
		int r = auth_key_revoke(db, argv[optind]);
		if (r != 0) {
			fprintf(stderr, "airlock keys revoke: %s: %s\n", argv[optind],
			        r == AL_E_NOTFOUND ? "no such live key" : "database error");
			rc = 1;
			goto out;
		}
		rc = 0;
	} else if (strcmp(verb, "list") == 0) {
		if (key_store_list(db, print_key, NULL) != 0) {
			rc = 1;
			goto out;
		}
		rc = 0;
	} else {
		keys_usage(stderr);
	}
out:
	db_close(db);
	return rc;
}
