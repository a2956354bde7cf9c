/* /v1/agents: create, list, retrieve (any version), update (a new version per real
 * change, optimistic `version`), archive, versions list. Storage is agent_store.c.
 * See docs/server/resources.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_store.h"
#include "api.h"
#include "err.h"
#include "log.h"
#include "routes.h"
#include "skills.h"
#include "server.h"
#include "util.h"
#include "validate.h"
#include "xalloc.h"

static void
reply_not_found(struct api_call *c, const char *id)
{
	api_reply_error(c, 404, "not_found_error", NULL, "agent %s not found", id);
}

/* Validates the agent fields of body over base (NULL on create) and builds the
 * complete document in *out (without id/version/timestamps when base is NULL).
 * Replies 400 itself on failure. */
static int
agent_fields(struct api_call *c, const json_t *body, const json_t *base, json_t **out)
{
	struct verr e;
	const char *k;
	json_t *v, *doc = base ? json_deep_copy(base) : json_object();
	json_t *servers = NULL, *tools = NULL, *x = NULL;
	int r = AL_E_INVAL;

	if (base == NULL) {
		if (json_object_get(body, "name") == NULL) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "name: Field required");
			goto out;
		}
		if (json_object_get(body, "model") == NULL) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "model: Field required");
			goto out;
		}
		json_object_set_new(doc, "description", json_null());
		json_object_set_new(doc, "system", json_null());
		json_object_set_new(doc, "metadata", json_object());
	}
	json_object_foreach((json_t *)body, k, v)
	{
		if (strcmp(k, "name") == 0) {
			if (!json_is_string(v) || json_string_length(v) < 1 ||
			    json_string_length(v) > VALIDATE_MAX_NAME) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "name: must be a string of 1 to %d characters",
				                VALIDATE_MAX_NAME);
				goto out;
			}
			json_object_set(doc, "name", v);
		} else if (strcmp(k, "description") == 0 || strcmp(k, "system") == 0) {
			size_t max = k[0] == 'd' ? VALIDATE_MAX_DESCRIPTION : VALIDATE_MAX_SYSTEM;
			if (!json_is_null(v) &&
			    (!json_is_string(v) || json_string_length(v) > max)) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "%s: must be null or a string of at most %zu "
				                "characters",
				                k, max);
				goto out;
			}
			json_object_set(doc, k, v);
		} else if (strcmp(k, "model") == 0) {
			if (validate_model(v, "model", &x, &e) != 0)
				goto bad;
			json_object_set_new(doc, "model", x);
			x = NULL;
		} else if (strcmp(k, "execution_identity") == 0) {
			if (validate_execution_identity(v, "execution_identity", &x, &e) != 0)
				goto bad;
			json_object_set_new(doc, "execution_identity", x);
			x = NULL;
		} else if (strcmp(k, "skills") == 0) {
			if (validate_skills(v, "skills", &x, &e) != 0)
				goto bad;
			if (skills_check_refs(c, x, "skills") != 0)
				goto out; /* replied */
			json_object_set_new(doc, "skills", x);
			x = NULL;
		} else if (strcmp(k, "multiagent") == 0) {
			if (!json_is_null(v)) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "multiagent: multi-agent configurations are not "
				                "supported by this server; use null");
				goto out;
			}
		} else if (strcmp(k, "metadata") == 0) {
			/* On update a null metadata leaves the map unchanged. */
			if (base && json_is_null(v))
				continue;
			if (api_metadata(c, v, json_object_get(doc, "metadata"), base != NULL, &x))
				goto out; /* replied */
			json_object_set_new(doc, "metadata", x);
			x = NULL;
		}
	}
	if (validate_mcp_servers(json_object_get(body, "mcp_servers")
	                             ? json_object_get(body, "mcp_servers")
	                             : json_object_get(doc, "mcp_servers"),
	                         "mcp_servers", &servers, &e) != 0)
		goto bad;
	if (validate_tools(json_object_get(body, "tools") ? json_object_get(body, "tools")
	                                                  : json_object_get(doc, "tools"),
	                   servers, "tools", &tools, &e) != 0)
		goto bad;
	json_object_set(doc, "mcp_servers", servers);
	json_object_set(doc, "tools", tools);
	if (json_object_get(doc, "skills") == NULL)
		json_object_set_new(doc, "skills", json_array());
	json_object_set_new(doc, "multiagent", json_null());
	if (json_object_get(doc, "execution_identity") == NULL)
		json_object_set_new(doc, "execution_identity",
		                    json_pack("{s:s}", "type", "service_account"));
	*out = doc;
	doc = NULL;
	r = 0;
	goto out;
bad:
	validate_reply(c, &e);
out:
	json_decref(doc);
	json_decref(servers);
	json_decref(tools);
	json_decref(x);
	return r;
}

/* The canonical key order of the wire object. */
static json_t *
agent_render(json_t *fields, const char *id, int64_t version, json_t *created_at,
             json_t *updated_at, json_t *archived_at)
{
	static const char *const order[] = {"name",     "description", "system",
	                                    "model",    "tools",       "mcp_servers",
	                                    "skills",   "multiagent",  "execution_identity",
	                                    "metadata", NULL};
	json_t *o = json_pack("{s:s, s:s}", "type", "agent", "id", id);
	for (size_t i = 0; order[i]; i++)
		json_object_set(o, order[i], json_object_get(fields, order[i]));
	json_object_set_new(o, "version", json_integer(version));
	json_object_set(o, "created_at", created_at);
	json_object_set(o, "updated_at", updated_at);
	json_object_set(o, "archived_at", archived_at);
	return o;
}

static void
create_agent(struct api_call *c)
{
	static const char *const allowed[] = {
	    "name",        "model",  "description", "system",     "tools",
	    "mcp_servers", "skills", "metadata",    "multiagent", "execution_identity",
	    NULL};
	json_t *fields = NULL, *doc = NULL;
	char *id = NULL;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if (agent_fields(c, c->body, NULL, &fields) != 0)
		return;
	id = id_new("agent_");
	int64_t now = now_real_us();
	json_t *ts = api_time(now);
	doc = agent_render(fields, id, 1, ts, ts, json_null());
	json_decref(ts);
	if ((r = agent_store_insert(c->srv->db, id, doc, now)) != 0) {
		api_reply_err(c, r, "cannot store agent");
		goto out;
	}
	log_info("agent created", "agent_id", id);
	api_reply_json(c, 200, doc);
	doc = NULL;
out:
	json_decref(fields);
	json_decref(doc);
	free(id);
}

static void
get_agent(struct api_call *c)
{
	const char *vs = query_get(&c->query, "version");
	uint64_t v = 0;
	json_t *doc = NULL;
	if (vs && (parse_uint_cstr(vs, INT32_MAX, &v) != 0 || v < 1)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "version: must be a positive integer");
		return;
	}
	int r = agent_store_get(c->srv->db, c->params[0], (int64_t)v, &doc);
	if (r == AL_E_NOTFOUND) {
		if (v)
			api_reply_error(c, 404, "not_found_error", NULL,
			                "agent %s has no version %llu", c->params[0],
			                (unsigned long long)v);
		else
			reply_not_found(c, c->params[0]);
		return;
	}
	if (r != 0) {
		api_reply_err(c, r, "cannot load agent");
		return;
	}
	api_reply_json(c, 200, doc);
}

/* Equal apart from the fields that every write changes. */
static bool
same_config(const json_t *a, const json_t *b)
{
	json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
	static const char *const skip[] = {"version", "updated_at", "created_at", "archived_at"};
	for (size_t i = 0; i < ARRAY_LEN(skip); i++) {
		json_object_del(x, skip[i]);
		json_object_del(y, skip[i]);
	}
	bool eq = json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return eq;
}

static void
update_agent(struct api_call *c)
{
	static const char *const allowed[] = {
	    "name",        "model",  "description", "system",     "tools",
	    "mcp_servers", "skills", "metadata",    "multiagent", "execution_identity",
	    "version",     NULL};
	json_t *cur = NULL, *fields = NULL, *doc = NULL;
	const char *id = c->params[0];
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	json_t *want = json_object_get(c->body, "version");
	if (want && !json_is_integer(want)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "version: must be an integer");
		return;
	}
	if ((r = agent_store_get(c->srv->db, id, 0, &cur)) != 0) {
		if (r == AL_E_NOTFOUND)
			reply_not_found(c, id);
		else
			api_reply_err(c, r, "cannot load agent");
		return;
	}
	int64_t version = json_integer_value(json_object_get(cur, "version"));
	if (!json_is_null(json_object_get(cur, "archived_at"))) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "agent %s is archived and cannot be modified", id);
		goto out;
	}
	if (want && json_integer_value(want) != version) {
		api_reply_error(c, 409, "invalid_request_error", NULL,
		                "version: agent %s is at version %lld, not %lld", id,
		                (long long)version, (long long)json_integer_value(want));
		goto out;
	}
	if (agent_fields(c, c->body, cur, &fields) != 0)
		goto out;
	if (same_config(fields, cur)) {
		api_reply_json(c, 200, cur);
		cur = NULL;
		goto out;
	}
	json_t *ts = api_time(now_real_us());
	doc = agent_render(fields, id, version + 1, json_object_get(cur, "created_at"), ts,
	                   json_null());
	json_decref(ts);
	/* The version guard makes a concurrent writer (admin CLI) lose cleanly. */
	if ((r = agent_store_update(c->srv->db, id, version, doc)) != 0) {
		api_reply_err(c, r, "cannot store agent");
		goto out;
	}
	api_reply_json(c, 200, doc);
	doc = NULL;
out:
	json_decref(cur);
	json_decref(fields);
	json_decref(doc);
}

static void
archive_agent(struct api_call *c)
{
	json_t *cur = NULL;
	const char *id = c->params[0];
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((r = agent_store_get(c->srv->db, id, 0, &cur)) != 0) {
		if (r == AL_E_NOTFOUND)
			reply_not_found(c, id);
		else
			api_reply_err(c, r, "cannot load agent");
		return;
	}
	/* Archiving twice is harmless: answer with the archived agent. */
	if (!json_is_null(json_object_get(cur, "archived_at"))) {
		api_reply_json(c, 200, cur);
		return;
	}
	int64_t now = now_real_us();
	json_object_set_new(cur, "archived_at", api_time(now));
	json_object_set_new(cur, "updated_at", api_time(now));
	if ((r = agent_store_archive(c->srv->db, id, cur, now)) != 0) {
		json_decref(cur);
		api_reply_err(c, r, "cannot archive agent");
		return;
	}
	log_info("agent archived", "agent_id", id);
	api_reply_json(c, 200, cur);
}

static void
list_agents(struct api_call *c)
{
	validate_list_docs(c, agent_store_list, NULL);
}

static void
list_versions(struct api_call *c)
{
	struct page_req pg;
	struct doc_page versions;
	json_t *cur = NULL;
	int r;
	if (api_page_parse(c, 20, 1000, true, &pg))
		return;
	if ((r = agent_store_get(c->srv->db, c->params[0], 0, &cur)) != 0) {
		if (r == AL_E_NOTFOUND)
			reply_not_found(c, c->params[0]);
		else
			api_reply_err(c, r, "cannot load agent");
		return;
	}
	struct doc_list q = {.has_cursor = pg.has_cursor,
	                     .after_seq = pg.after_seq,
	                     .limit = pg.limit,
	                     .desc = pg.desc};
	if (agent_store_list_versions(c->srv->db, c->params[0], &q, &versions) != 0) {
		doc_page_free(&versions);
		json_decref(cur);
		api_reply_err(c, AL_E_IO, "cannot list agent versions");
		return;
	}
	json_t *page = validate_page_json(&versions, pg.desc);
	json_t *v;
	size_t i;
	json_array_foreach(json_object_get(page, "data"), i, v)
	    json_object_set(v, "archived_at", json_object_get(cur, "archived_at"));
	json_decref(cur);
	api_reply_json(c, 200, page);
}

const struct api_route agents_routes[] = {
    {"POST", "/v1/agents", CREDS_API, create_agent},
    {"GET", "/v1/agents", CREDS_API, list_agents},
    {"GET", "/v1/agents/{}", CREDS_API, get_agent},
    {"POST", "/v1/agents/{}", CREDS_API, update_agent},
    {"POST", "/v1/agents/{}/archive", CREDS_API, archive_agent},
    {"GET", "/v1/agents/{}/versions", CREDS_API, list_versions},
    {NULL, NULL, 0, NULL},
};
