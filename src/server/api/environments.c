/* /v1/environments: create, list, retrieve, update, archive, delete. Only
 * self-hosted environments exist here (config.type "self_hosted"); cloud configs are
 * refused like Anthropic's self-hosted server does. See docs/server/resources.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "audit.h"
#include "egress_policy.h"
#include "environment_store.h"
#include "err.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "session_store.h"
#include "util.h"
#include "validate.h"
#include "xalloc.h"

static void
reply_load_error(struct api_call *c, int err, const char *id)
{
	if (err == AL_E_NOTFOUND)
		api_reply_error(c, 404, "not_found_error", "environment_not_found",
		                "environment %s not found", id);
	else
		api_reply_err(c, err, "cannot load environment");
}

/* config: {type:"self_hosted"} with an optional `networking` (an airlock extension on
 * self-hosted environments: issue 14, docs/worker/egress.md), checked as strictly as the
 * worker reads it. Replies 400 itself. */
static int
check_config(struct api_call *c, const json_t *cfg, const char *current_type)
{
	json_t *t = json_is_object(cfg) ? json_object_get(cfg, "type") : NULL;
	if (!json_is_object(cfg)) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "config: must be an object");
		return AL_E_INVAL;
	}
	if (!json_is_string(t)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "config.type: Field required (\"self_hosted\")");
		return AL_E_INVAL;
	}
	const char *type = json_string_value(t);
	if (current_type && strcmp(type, current_type) != 0) {
		api_reply_error(c, 400, "invalid_request_error", "invalid_config_type_change",
		                "config.type: cannot change an environment's config type from %s "
		                "to %.64s",
		                current_type, type);
		return AL_E_INVAL;
	}
	if (strcmp(type, "cloud") == 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "config.type: cloud environments are not available on a "
		                "self-hosted server; use {\"type\": \"self_hosted\"}");
		return AL_E_INVAL;
	}
	if (strcmp(type, "self_hosted") != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "config.type: must be 'self_hosted'");
		return AL_E_INVAL;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)cfg, k, v)
	{
		if (strcmp(k, "type") != 0 && strcmp(k, "networking") != 0) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "config.%.64s: Extra inputs are not permitted", k);
			return AL_E_INVAL;
		}
	}
	return 0;
}

/* The stored config after a create (cur NULL) or an update: on update, an omitted
 * `networking` keeps its value, `null` removes it, and fields omitted from a `limited`
 * one that stays `limited` keep theirs (the reference's update rule). The result is
 * checked whole. Replies 400 itself and returns NULL. */
static json_t *
merge_config(struct api_call *c, const json_t *cfg, const json_t *cur)
{
	json_t *out = json_pack("{s:s}", "type", "self_hosted");
	json_t *nw = json_object_get(cfg, "networking");
	json_t *old = cur ? json_object_get(cur, "networking") : NULL;
	struct egress_env env;
	char err[300];
	if (nw == NULL) {
		if (old)
			json_object_set(out, "networking", old);
		return out;
	}
	if (json_is_null(nw))
		return out;
	if (json_is_object(nw) && json_is_object(old) &&
	    json_equal(json_object_get(nw, "type"), json_object_get(old, "type"))) {
		json_t *m = json_deep_copy(old);
		json_object_update(m, nw);
		json_object_set_new(out, "networking", m);
	} else {
		json_object_set(out, "networking", nw);
	}
	if (egress_env_parse(json_object_get(out, "networking"), "config.networking", &env, err,
	                     sizeof(err)) != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "%s", err);
		json_decref(out);
		return NULL;
	}
	egress_env_free(&env);
	return out;
}

/* name, description, scope, metadata of body applied over doc. */
static int
apply_fields(struct api_call *c, json_t *doc, bool update)
{
	json_t *v, *m = NULL;
	if ((v = json_object_get(c->body, "name")) != NULL && !(update && json_is_null(v))) {
		if (!json_is_string(v) || json_string_length(v) < 1 ||
		    json_string_length(v) > VALIDATE_MAX_NAME) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "name: must be a string of 1 to %d characters",
			                VALIDATE_MAX_NAME);
			return AL_E_INVAL;
		}
		json_object_set(doc, "name", v);
	}
	if ((v = json_object_get(c->body, "description")) != NULL) {
		if (!json_is_null(v) &&
		    (!json_is_string(v) || json_string_length(v) > VALIDATE_MAX_DESCRIPTION)) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "description: must be null or a string of at most %d "
			                "characters",
			                VALIDATE_MAX_DESCRIPTION);
			return AL_E_INVAL;
		}
		json_object_set(doc, "description", v);
	}
	if ((v = json_object_get(c->body, "scope")) != NULL && !json_is_null(v)) {
		if (!json_is_string(v) || (strcmp(json_string_value(v), "organization") != 0 &&
		                           strcmp(json_string_value(v), "account") != 0)) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "scope: must be 'organization' or 'account'");
			return AL_E_INVAL;
		}
		json_object_set(doc, "scope", v);
	}
	if ((v = json_object_get(c->body, "metadata")) != NULL && !(update && json_is_null(v))) {
		if (api_metadata(c, v, json_object_get(doc, "metadata"), update, &m) != 0)
			return AL_E_INVAL;
		json_object_set_new(doc, "metadata", m);
	}
	return 0;
}

static void
create_environment(struct api_call *c)
{
	static const char *const allowed[] = {"name",     "config", "description",
	                                      "metadata", "scope",  NULL};
	struct db *db = c->srv->db;
	char *id = NULL;
	json_t *doc = NULL, *cfg;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if (json_object_get(c->body, "name") == NULL) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "name: Field required");
		return;
	}
	cfg = json_object_get(c->body, "config");
	if (cfg && !json_is_null(cfg) && check_config(c, cfg, NULL) != 0)
		return;
	id = id_new("env_");
	int64_t now = now_real_us();
	doc = json_pack("{s:s, s:s, s:s, s:n, s:{s:s}, s:{}}", "type", "environment", "id", id,
	                "name", "", "description", "config", "type", "self_hosted", "metadata");
	if (apply_fields(c, doc, false) != 0)
		goto out;
	if (cfg && !json_is_null(cfg)) {
		json_t *merged = merge_config(c, cfg, NULL);
		if (merged == NULL)
			goto out;
		json_object_set_new(doc, "config", merged);
	}
	json_object_set_new(doc, "created_at", api_time(now));
	json_object_set_new(doc, "updated_at", api_time(now));
	json_object_set_new(doc, "archived_at", json_null());
	if ((r = environment_store_insert(db, id, doc, now)) != 0)
		goto fail;
	log_info("environment created", "environment_id", id);
	api_reply_json(c, 200, doc);
	doc = NULL;
	goto out;
fail:
	api_reply_err(c, r, "cannot store environment");
out:
	json_decref(doc);
	free(id);
}

static void
get_environment(struct api_call *c)
{
	int err;
	json_t *doc = environment_store_get(c->srv->db, c->params[0], &err);
	if (doc == NULL) {
		reply_load_error(c, err, c->params[0]);
		return;
	}
	api_reply_json(c, 200, doc);
}

static void
update_environment(struct api_call *c)
{
	static const char *const allowed[] = {"name",     "config", "description",
	                                      "metadata", "scope",  NULL};
	const char *id = c->params[0];
	json_t *cur = NULL, *doc = NULL, *cfg;
	int err;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if ((cur = environment_store_get(c->srv->db, id, &err)) == NULL) {
		reply_load_error(c, err, id);
		return;
	}
	if (!json_is_null(json_object_get(cur, "archived_at"))) {
		api_reply_error(c, 400, "invalid_request_error", "environment_archived",
		                "environment %s is archived and cannot be modified", id);
		goto out;
	}
	cfg = json_object_get(c->body, "config");
	if (cfg && !json_is_null(cfg) &&
	    check_config(
	        c, cfg,
	        json_string_value(json_object_get(json_object_get(cur, "config"), "type"))) != 0)
		goto out;
	doc = json_deep_copy(cur);
	if (apply_fields(c, doc, true) != 0)
		goto out;
	if (cfg && !json_is_null(cfg)) {
		json_t *merged = merge_config(c, cfg, json_object_get(cur, "config"));
		if (merged == NULL)
			goto out;
		json_object_set_new(doc, "config", merged);
	}
	if (json_equal(doc, cur)) {
		api_reply_json(c, 200, cur);
		cur = NULL;
		goto out;
	}
	json_object_set_new(doc, "updated_at", api_time(now_real_us()));
	if ((err = environment_store_update(c->srv->db, id, doc, 0)) != 0) {
		api_reply_err(c, err, "cannot store environment");
		goto out;
	}
	api_reply_json(c, 200, doc);
	doc = NULL;
out:
	json_decref(cur);
	json_decref(doc);
}

static void
archive_environment(struct api_call *c)
{
	const char *id = c->params[0];
	json_t *doc;
	int err;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((doc = environment_store_get(c->srv->db, id, &err)) == NULL) {
		reply_load_error(c, err, id);
		return;
	}
	if (json_is_null(json_object_get(doc, "archived_at"))) {
		int64_t now = now_real_us();
		json_object_set_new(doc, "archived_at", api_time(now));
		json_object_set_new(doc, "updated_at", api_time(now));
		if ((err = environment_store_update(c->srv->db, id, doc, now)) != 0) {
			json_decref(doc);
			api_reply_err(c, err, "cannot archive environment");
			return;
		}
		log_info("environment archived", "environment_id", id);
	}
	api_reply_json(c, 200, doc);
}

static void
delete_environment(struct api_call *c)
{
	const char *id = c->params[0];
	struct db *db = c->srv->db;
	json_t *doc;
	int err;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((doc = environment_store_get(db, id, &err)) == NULL) {
		reply_load_error(c, err, id);
		return;
	}
	json_decref(doc);
	/* Sessions keep a reference to their environment; deleting it under them would
	 * orphan their work. Delete (or let the client archive) them first. */
	int64_t n = session_store_count_for_environment(db, id);
	if (n < 0) {
		api_reply_err(c, AL_E_IO, "cannot delete environment");
		return;
	}
	if (n > 0) {
		api_reply_error(c, 409, "invalid_request_error", NULL,
		                "environment %s still has %d session(s); delete them first", id,
		                (int)n);
		return;
	}
	if ((err = environment_store_delete(db, id, now_real_us())) != 0) {
		api_reply_err(c, err, "cannot delete environment");
		return;
	}
	log_info("environment deleted", "environment_id", id);
	/* its keys were revoked with it */
	audit_api(c, "environment.delete", NULL, "ok", json_pack("{s:s}", "environment_id", id));
	api_reply_json(c, 200, json_pack("{s:s, s:s}", "id", id, "type", "environment_deleted"));
}

static void
list_environments(struct api_call *c)
{
	validate_list_docs(c, environment_store_list, NULL);
}

const struct api_route environments_routes[] = {
    {"POST", "/v1/environments", CREDS_API, create_environment},
    {"GET", "/v1/environments", CREDS_API, list_environments},
    {"GET", "/v1/environments/{}", CREDS_API, get_environment},
    {"POST", "/v1/environments/{}", CREDS_API, update_environment},
    {"DELETE", "/v1/environments/{}", CREDS_API, delete_environment},
    {"POST", "/v1/environments/{}/archive", CREDS_API, archive_environment},
    {NULL, NULL, 0, NULL},
};
