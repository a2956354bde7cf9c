/* /v1/sessions: create (resolved agent snapshot, resources, initial events and the
 * work item in one transaction), list with the bidirectional cursor, retrieve,
 * update (emits session.updated), archive and delete. The status, usage and loop-state
 * helpers the agent loop uses are store/session_store.c. See docs/server/resources.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "agent_store.h"
#include "api.h"
#include "audit.h"
#include "auth.h"
#include "environment_store.h"
#include "err.h"
#include "event_store.h"
#include "events.h"
#include "log.h"
#include "memory_store.h"
#include "routes.h"
#include "server.h"
#include "session_store.h"
#include "skills.h"
#include "util.h"
#include "validate.h"
#include "vault_store.h"
#include "work.h"
#include "xalloc.h"

#define MAX_RESOURCES 8
#define MAX_VAULTS 20
#define MAX_INITIAL_EVENTS 50
#define MAX_TITLE 1024

/* ---- create ---- */

static void
reply_verr(struct api_call *c, const struct verr *e)
{
	validate_reply(c, e);
}

/* /mnt/memory/<slug>: lower-case letters, digits and '-' from the store name. */
static char *
memory_mount_path(const char *name, const char *id)
{
	char slug[65];
	size_t n = 0;
	bool dash = false;
	for (const char *p = name ? name : ""; *p && n < sizeof(slug) - 1; p++) {
		char ch = *p;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) {
			slug[n++] = ch;
			dash = false;
		} else if (n > 0 && !dash) {
			slug[n++] = '-';
			dash = true;
		}
	}
	while (n > 0 && slug[n - 1] == '-')
		n--;
	slug[n] = '\0';
	return xasprintf("/mnt/memory/%s", n ? slug : id);
}

static int
check_resources(struct api_call *c, const json_t *in, const char *env_id, json_t **out)
{
	static const char *const keys[] = {"type", "memory_store_id", "access", "instructions",
	                                   NULL};
	struct verr e;
	json_t *res = json_array();
	if (in == NULL || json_is_null(in))
		goto done;
	if (!json_is_array(in)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "resources: must be an array");
		goto fail;
	}
	if (json_array_size(in) > MAX_RESOURCES) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "resources: at most %d resources per session", MAX_RESOURCES);
		goto fail;
	}
	for (size_t i = 0; i < json_array_size(in); i++) {
		const json_t *r = json_array_get(in, i);
		const json_t *t = json_is_object(r) ? json_object_get(r, "type") : NULL;
		char path[32];
		snprintf(path, sizeof(path), "resources[%zu]", i);
		if (!json_is_string(t)) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "%s.type: Field required", path);
			goto fail;
		}
		if (strcmp(json_string_value(t), "memory_store") != 0) {
			api_reply_error(
			    c, 400, "invalid_request_error", NULL,
			    "Environment %s is a self-hosted environment. `resources` are "
			    "not supported with self-hosted environments.",
			    env_id);
			goto fail;
		}
		if (validate_only_keys(r, path, keys, &e) != 0) {
			reply_verr(c, &e);
			goto fail;
		}
		const json_t *ms = json_object_get(r, "memory_store_id");
		const json_t *acc = json_object_get(r, "access");
		const json_t *ins = json_object_get(r, "instructions");
		if (!json_is_string(ms) || id_valid(json_string_value(ms), "memstore_") != 0) {
			api_reply_error(
			    c, 400, "invalid_request_error", NULL,
			    "%s.memory_store_id: must be a memory store id (memstore_...)", path);
			goto fail;
		}
		const char *access = "read_write";
		if (acc && !json_is_null(acc)) {
			if (!json_is_string(acc) ||
			    (strcmp(json_string_value(acc), "read_write") != 0 &&
			     strcmp(json_string_value(acc), "read_only") != 0)) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "%s.access: must be 'read_write' or 'read_only'",
				                path);
				goto fail;
			}
			access = json_string_value(acc);
		}
		if (ins && !json_is_null(ins) &&
		    (!json_is_string(ins) || json_string_length(ins) > VALIDATE_MAX_DESCRIPTION)) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "%s.instructions: must be null or a string of at most %d "
			                "characters",
			                path, VALIDATE_MAX_DESCRIPTION);
			goto fail;
		}
		for (size_t j = 0; j < json_array_size(res); j++)
			if (strcmp(json_string_value(
			               json_object_get(json_array_get(res, j), "memory_store_id")),
			           json_string_value(ms)) == 0) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "%s.memory_store_id: memory store attached twice",
				                path);
				goto fail;
			}
		int err;
		json_t *store = memory_store_get(c->srv->db, json_string_value(ms), &err);
		if (store == NULL) {
			if (err == AL_E_NOTFOUND)
				api_reply_error(c, 404, "not_found_error", NULL,
				                "%s.memory_store_id: memory store %s not found",
				                path, json_string_value(ms));
			else
				api_reply_err(c, err, "cannot load memory store");
			goto fail;
		}
		if (!json_is_null(json_object_get(store, "archived_at"))) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "%s.memory_store_id: memory store %s is archived", path,
			                json_string_value(ms));
			json_decref(store);
			goto fail;
		}
		const char *name = json_string_value(json_object_get(store, "name"));
		json_t *desc = json_object_get(store, "description");
		char *mount = memory_mount_path(name, json_string_value(ms));
		/* an id and timestamps, as every returned resource has in the reference, so
		 * /v1/sessions/{id}/resources/{rid} can name it */
		char *rid = id_new("sesrsc_");
		json_t *now = api_time(now_real_us());
		json_array_append_new(
		    res, json_pack("{s:s, s:s, s:O, s:s, s:O, s:o, s:o, s:s, s:O, s:O}", "type",
		                   "memory_store", "id", rid, "memory_store_id", ms, "access",
		                   access, "instructions", ins ? ins : json_null(), "name",
		                   name ? json_string(name) : json_null(), "description",
		                   json_is_string(desc) ? json_incref(desc) : json_string(""),
		                   "mount_path", mount, "created_at", now, "updated_at", now));
		json_decref(now);
		free(rid);
		free(mount);
		json_decref(store);
	}
done:
	*out = res;
	return 0;
fail:
	json_decref(res);
	return AL_E_INVAL;
}

static int
check_vaults(struct api_call *c, const json_t *in, json_t **out)
{
	if (in == NULL || json_is_null(in)) {
		*out = json_array();
		return 0;
	}
	if (!json_is_array(in) || json_array_size(in) > MAX_VAULTS) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "vault_ids: must be an array of at most %d vault ids", MAX_VAULTS);
		return AL_E_INVAL;
	}
	for (size_t i = 0; i < json_array_size(in); i++) {
		const json_t *v = json_array_get(in, i);
		if (!json_is_string(v) || id_valid(json_string_value(v), "vlt_") != 0) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "vault_ids[%zu]: must be a vault id (vlt_...)", i);
			return AL_E_INVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (json_equal(v, json_array_get(in, j))) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "vault_ids[%zu]: duplicate vault id", i);
				return AL_E_INVAL;
			}
		if (!vault_store_live(c->srv->db, json_string_value(v))) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "vault_ids[%zu]: vault %s not found or archived", i,
			                json_string_value(v));
			return AL_E_INVAL;
		}
	}
	*out = json_deep_copy(in);
	return 0;
}

/* {type:"limit", max_list_cost:{amount:"2500", currency:"USD"}}; null → null. */
static int
check_budget(struct api_call *c, const json_t *in, json_t **out)
{
	static const char *const keys[] = {"type", "max_list_cost", NULL};
	static const char *const mkeys[] = {"amount", "currency", NULL};
	struct verr e;
	if (in == NULL || json_is_null(in)) {
		*out = json_null();
		return 0;
	}
	const json_t *t = json_is_object(in) ? json_object_get(in, "type") : NULL;
	if (!json_is_string(t) || strcmp(json_string_value(t), "limit") != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "budget.type: must be 'limit'");
		return AL_E_INVAL;
	}
	if (validate_only_keys(in, "budget", keys, &e) != 0) {
		reply_verr(c, &e);
		return AL_E_INVAL;
	}
	const json_t *m = json_object_get(in, "max_list_cost");
	if (!json_is_object(m)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "budget.max_list_cost: Field required");
		return AL_E_INVAL;
	}
	if (validate_only_keys(m, "budget.max_list_cost", mkeys, &e) != 0) {
		reply_verr(c, &e);
		return AL_E_INVAL;
	}
	const json_t *a = json_object_get(m, "amount"), *cur = json_object_get(m, "currency");
	uint64_t v;
	if (!json_is_string(a) || json_string_length(a) > 18 ||
	    parse_uint_cstr(json_string_value(a), UINT64_MAX, &v) != 0 ||
	    (json_string_value(a)[0] == '0' && json_string_length(a) > 1)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "budget.max_list_cost.amount: must be an integer string in minor "
		                "units without leading zeros");
		return AL_E_INVAL;
	}
	if (!json_is_string(cur) || strcmp(json_string_value(cur), "USD") != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "budget.max_list_cost.currency: must be 'USD'");
		return AL_E_INVAL;
	}
	*out = json_pack("{s:s, s:{s:O, s:s}}", "type", "limit", "max_list_cost", "amount", a,
	                 "currency", "USD");
	return 0;
}

static int
check_title(struct api_call *c, const json_t *in)
{
	if (in && !json_is_null(in) &&
	    (!json_is_string(in) || json_string_length(in) > MAX_TITLE)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "title: must be null or a string of at most %d characters",
		                MAX_TITLE);
		return AL_E_INVAL;
	}
	return 0;
}

/* The agent snapshot a session runs with: the agent version's configuration plus
 * any overrides, in the SDK's BetaManagedAgentsSessionAgent shape. */
static json_t *
snapshot_of(const json_t *agent)
{
	static const char *const keys[] = {
	    "id",      "name",        "description", "system",     "model",
	    "tools",   "mcp_servers", "skills",      "multiagent", "execution_identity",
	    "version", NULL};
	json_t *o = json_pack("{s:s}", "type", "agent");
	for (size_t i = 0; keys[i]; i++) {
		json_t *v = json_object_get(agent, keys[i]);
		json_object_set(o, keys[i], v ? v : json_null());
	}
	return o;
}

/* Resolves the `agent` parameter. Replies itself on failure. */
static int
resolve_agent(struct api_call *c, const json_t *in, json_t **out)
{
	static const char *const ref_keys[] = {"type", "id", "version", NULL};
	static const char *const ovr_keys[] = {"type",  "id",          "version", "model", "system",
	                                       "tools", "mcp_servers", "skills",  NULL};
	struct verr e;
	const char *id = NULL;
	int64_t version = 0;
	bool overrides = false;
	json_t *agent = NULL, *x = NULL, *servers = NULL, *tools = NULL;
	int r = AL_E_INVAL;
	if (in == NULL) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "agent: Field required");
		return AL_E_INVAL;
	}
	if (json_is_string(in)) {
		id = json_string_value(in);
	} else if (json_is_object(in)) {
		const json_t *t = json_object_get(in, "type");
		const json_t *jid = json_object_get(in, "id");
		const json_t *jv = json_object_get(in, "version");
		if (!json_is_string(t) ||
		    (strcmp(json_string_value(t), "agent") != 0 &&
		     strcmp(json_string_value(t), "agent_with_overrides") != 0)) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "agent.type: must be 'agent' or 'agent_with_overrides'");
			return AL_E_INVAL;
		}
		overrides = strcmp(json_string_value(t), "agent_with_overrides") == 0;
		if (validate_only_keys(in, "agent", overrides ? ovr_keys : ref_keys, &e) != 0) {
			reply_verr(c, &e);
			return AL_E_INVAL;
		}
		if (!json_is_string(jid)) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "agent.id: Field required");
			return AL_E_INVAL;
		}
		id = json_string_value(jid);
		if (jv && !json_is_null(jv)) {
			if (!json_is_integer(jv) || json_integer_value(jv) < 1) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "agent.version: must be a positive integer");
				return AL_E_INVAL;
			}
			version = json_integer_value(jv);
		}
	} else {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "agent: must be an agent id or an object");
		return AL_E_INVAL;
	}
	if (id_valid(id, "agent_") != 0 ||
	    (r = agent_store_get(c->srv->db, id, version, &agent)) == AL_E_NOTFOUND) {
		if (version)
			api_reply_error(c, 404, "not_found_error", NULL,
			                "agent %.100s version %lld not found", id,
			                (long long)version);
		else
			api_reply_error(c, 404, "not_found_error", NULL, "agent %.100s not found",
			                id);
		return AL_E_NOTFOUND;
	}
	if (r != 0) {
		api_reply_err(c, r, "cannot load agent");
		return r;
	}
	r = AL_E_INVAL;
	if (!json_is_null(json_object_get(agent, "archived_at"))) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "agent %s is archived; new sessions cannot use it", id);
		goto out;
	}
	if (overrides) {
		json_t *v;
		if ((v = json_object_get(in, "model")) != NULL) {
			if (validate_model(v, "agent.model", &x, &e) != 0)
				goto bad;
			json_object_set_new(agent, "model", x);
			x = NULL;
		}
		if ((v = json_object_get(in, "system")) != NULL) {
			if (!json_is_null(v) &&
			    (!json_is_string(v) || json_string_length(v) > VALIDATE_MAX_SYSTEM)) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "agent.system: must be null or a string");
				goto out;
			}
			json_object_set(agent, "system", v);
		}
		if ((v = json_object_get(in, "skills")) != NULL) {
			if (validate_skills(v, "agent.skills", &x, &e) != 0)
				goto bad;
			if (skills_check_refs(c, x, "agent.skills") != 0)
				goto out; /* replied */
			json_object_set_new(agent, "skills", x);
			x = NULL;
		}
		v = json_object_get(in, "mcp_servers");
		if (validate_mcp_servers(v ? v : json_object_get(agent, "mcp_servers"),
		                         "agent.mcp_servers", &servers, &e) != 0)
			goto bad;
		v = json_object_get(in, "tools");
		if (validate_tools(v ? v : json_object_get(agent, "tools"), servers, "agent.tools",
		                   &tools, &e) != 0)
			goto bad;
		json_object_set(agent, "mcp_servers", servers);
		json_object_set(agent, "tools", tools);
	}
	*out = snapshot_of(agent);
	r = 0;
	goto out;
bad:
	reply_verr(c, &e);
out:
	json_decref(agent);
	json_decref(servers);
	json_decref(tools);
	json_decref(x);
	return r;
}

static int
check_initial_events(struct api_call *c, const json_t *in, json_t **out)
{
	struct verr e;
	json_t *res = json_array();
	if (in == NULL || json_is_null(in))
		goto done;
	if (!json_is_array(in) || json_array_size(in) > MAX_INITIAL_EVENTS) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "initial_events: must be an array of at most %d events",
		                MAX_INITIAL_EVENTS);
		json_decref(res);
		return AL_E_INVAL;
	}
	for (size_t i = 0; i < json_array_size(in); i++) {
		char path[40];
		json_t *ev = NULL;
		snprintf(path, sizeof(path), "initial_events[%zu]", i);
		if (validate_initial_event(json_array_get(in, i), path, &ev, &e) != 0) {
			reply_verr(c, &e);
			json_decref(res);
			return AL_E_INVAL;
		}
		json_array_append_new(res, ev);
	}
done:
	*out = res;
	return 0;
}

/* environment_id → 0, or replies 404 environment_not_found / 400 environment_archived. */
static int
check_environment(struct api_call *c, const json_t *in)
{
	int r = AL_E_NOTFOUND;
	if (in == NULL) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "environment_id: Field required");
		return AL_E_INVAL;
	}
	if (!json_is_string(in)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "environment_id: must be a string");
		return AL_E_INVAL;
	}
	const char *id = json_string_value(in);
	if (id_valid(id, "env_") == 0) {
		r = environment_store_live(c->srv->db, id);
		if (r == AL_E_IO)
			r = AL_E_NOTFOUND; /* as before the stores: a failed lookup finds nothing */
	}
	if (r == AL_E_NOTFOUND)
		api_reply_error(c, 404, "not_found_error", "environment_not_found",
		                "environment %.100s not found", id);
	else if (r == AL_E_CONFLICT)
		api_reply_error(c, 400, "invalid_request_error", "environment_archived",
		                "environment %s is archived; new sessions cannot use it", id);
	return r;
}

static void
create_session(struct api_call *c)
{
	static const char *const allowed[] = {"agent",    "environment_id", "title",
	                                      "metadata", "resources",      "vault_ids",
	                                      "budget",   "initial_events", NULL};
	struct db *db = c->srv->db;
	json_t *agent = NULL, *resources = NULL, *vaults = NULL, *budget = NULL, *meta = NULL;
	json_t *events = NULL, *doc = NULL, *title;
	char *id = NULL, *groups = NULL;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	json_t *env = json_object_get(c->body, "environment_id");
	title = json_object_get(c->body, "title");
	if (check_environment(c, env) != 0 ||
	    resolve_agent(c, json_object_get(c->body, "agent"), &agent) != 0)
		goto out;
	const char *env_id = json_string_value(env);
	if (check_title(c, title) != 0 ||
	    check_resources(c, json_object_get(c->body, "resources"), env_id, &resources) != 0 ||
	    check_vaults(c, json_object_get(c->body, "vault_ids"), &vaults) != 0 ||
	    check_budget(c, json_object_get(c->body, "budget"), &budget) != 0 ||
	    check_initial_events(c, json_object_get(c->body, "initial_events"), &events) != 0)
		goto out;
	json_t *m = json_object_get(c->body, "metadata");
	if (m && !json_is_null(m)) {
		if (api_metadata(c, m, NULL, false, &meta) != 0)
			goto out;
	} else {
		meta = json_object();
	}
	id = id_new("sesn_");
	int64_t now = now_real_us();
	json_t *ts = api_time(now);
	doc = json_pack("{s:s, s:s, s:O, s:s, s:O, s:s, s:O, s:O, s:O, s:O, s:[], s:{}, s:{}, "
	                "s:n, s:O, s:O, s:n}",
	                "type", "session", "id", id, "title", title ? title : json_null(),
	                "environment_id", env_id, "agent", agent, "status", "idle", "resources",
	                resources, "vault_ids", vaults, "budget", budget, "metadata", meta,
	                "outcome_evaluations", "stats", "usage", "deployment_id", "created_at", ts,
	                "updated_at", ts, "archived_at");
	json_decref(ts);
	struct session_new n = {.id = id,
	                        .environment_id = env_id,
	                        .agent_id = json_string_value(json_object_get(agent, "id")),
	                        .agent_version =
	                            json_integer_value(json_object_get(agent, "version")),
	                        .created_at = now,
	                        .doc = doc};
	char apikey_sub[112];
	if (c->who.kind == PRINCIPAL_USER) {
		json_t *g = json_array();
		for (size_t i = 0; i < c->who.user.ngroups; i++)
			json_array_append_new(g, json_string(c->who.user.groups[i]));
		groups = json_dumps(g, JSON_COMPACT);
		json_decref(g);
		n.owner_iss = c->who.user.iss;
		n.owner_sub = c->who.user.sub;
		n.owner_groups = groups;
		n.owner_email = c->who.user.email_verified ? c->who.user.email : NULL;
	} else if (c->who.kind == PRINCIPAL_API_KEY) {
		/* the tool policy evaluates API-key sessions as "apikey:<key id>" */
		const char *kid = c->who.key_id;
		snprintf(apikey_sub, sizeof(apikey_sub), "apikey:%s",
		         strcmp(kid, "env:AIRLOCK_API_KEY") == 0 ? "AIRLOCK_API_KEY" : kid);
		n.owner_sub = apikey_sub;
	}
	if ((r = db_begin(db)) != 0)
		goto fail;
	if ((r = session_store_insert(db, &n)) != 0)
		goto rollback;
	/* which sessions mount a store, and for whom: a user may read the stores of their
	 * own sessions (docs/server/memory.md) */
	for (size_t i = 0; i < json_array_size(resources); i++) {
		const char *ms = json_string_value(
		    json_object_get(json_array_get(resources, i), "memory_store_id"));
		bool user = c->who.kind == PRINCIPAL_USER;
		if (ms && (r = memory_store_attach(db, id, ms, user ? c->who.user.iss : NULL,
		                                   user ? c->who.user.sub : NULL)) != 0)
			goto rollback;
	}
	if ((r = work_enqueue_tx(c->srv, env_id, id)) != 0)
		goto rollback;
	for (size_t i = 0; i < json_array_size(events); i++) {
		json_t *ev = json_array_get(events, i);
		/* define_outcome is processed on receipt; messages wait for the loop. */
		bool processed = strcmp(json_string_value(json_object_get(ev, "type")),
		                        "user.define_outcome") == 0;
		if ((r = events_append_tx(c->srv, id, ev, processed)) != 0)
			goto rollback;
	}
	if ((r = db_commit(db)) != 0)
		goto rollback;
	events_publish(c->srv);
	work_kick(c->srv, env_id);
	if (json_array_size(events) > 0)
		agent_session_wake(c->srv, id);
	log_info("session created", "session_id", id, "environment_id", env_id);
	audit_api(c, "session.create", NULL, "ok",
	          json_pack("{s:s, s:s, s:O?}", "session_id", id, "environment_id", env_id,
	                    "agent_id", json_object_get(agent, "id")));
	api_reply_json(c, 200, doc);
	doc = NULL;
	goto out;
rollback:
	db_rollback(db);
	events_discard(c->srv);
fail:
	api_reply_err(c, r, "cannot store session");
out:
	json_decref(agent);
	json_decref(resources);
	json_decref(vaults);
	json_decref(budget);
	json_decref(meta);
	json_decref(events);
	json_decref(doc);
	free(groups);
	free(id);
}

/* ---- get / update / archive / delete ---- */

/* Loads the session if the principal may see it; replies 404 otherwise. */
json_t *
sessions_for_call(struct api_call *c)
{
	const char *id = c->params[0];
	int err = AL_E_NOTFOUND;
	json_t *doc = NULL;
	if (id_valid(id, "sesn_") == 0)
		doc = session_store_get(c->srv->db, id, &err);
	if (doc && !auth_can_session(c->srv, &c->who, id,
	                             json_string_value(json_object_get(doc, "environment_id")))) {
		json_decref(doc);
		doc = NULL;
		err = AL_E_NOTFOUND;
	}
	if (doc == NULL) {
		if (err == AL_E_NOTFOUND)
			api_reply_error(c, 404, "not_found_error", NULL, "session %.100s not found",
			                id);
		else
			api_reply_err(c, err, "cannot load session");
	}
	return doc;
}

static void
get_session(struct api_call *c)
{
	json_t *doc = sessions_for_call(c);
	if (doc)
		api_reply_json(c, 200, doc);
}

static void
update_session(struct api_call *c)
{
	static const char *const allowed[] = {"title", "metadata",  "budget",
	                                      "agent", "vault_ids", NULL};
	static const char *const agent_keys[] = {"tools", "mcp_servers", NULL};
	struct db *db = c->srv->db;
	struct verr e;
	json_t *doc = NULL, *ev = NULL, *x = NULL, *servers = NULL, *tools = NULL, *v;
	const char *id = c->params[0];
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if (json_object_get(c->body, "vault_ids")) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "vault_ids: cannot be changed after the session is created");
		return;
	}
	if ((doc = sessions_for_call(c)) == NULL)
		return;
	if (!json_is_null(json_object_get(doc, "archived_at"))) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "session %s is archived and cannot be modified", id);
		goto out;
	}
	ev = json_pack("{s:s}", "type", "session.updated");
	if ((v = json_object_get(c->body, "title")) != NULL) {
		if (check_title(c, v) != 0)
			goto out;
		if (!json_equal(v, json_object_get(doc, "title"))) {
			json_object_set(doc, "title", v);
			json_object_set(ev, "title", v);
		}
	}
	if ((v = json_object_get(c->body, "metadata")) != NULL && !json_is_null(v)) {
		if (api_metadata(c, v, json_object_get(doc, "metadata"), true, &x) != 0)
			goto out;
		if (!json_equal(x, json_object_get(doc, "metadata"))) {
			json_object_set(doc, "metadata", x);
			json_object_set(ev, "metadata", x);
		}
		json_decref(x);
		x = NULL;
	}
	if ((v = json_object_get(c->body, "budget")) != NULL) {
		if (check_budget(c, v, &x) != 0)
			goto out;
		if (!json_equal(x, json_object_get(doc, "budget"))) {
			json_object_set(doc, "budget", x);
			json_object_set(ev, "budget", x);
		}
		json_decref(x);
		x = NULL;
	}
	if ((v = json_object_get(c->body, "agent")) != NULL) {
		json_t *snap = json_object_get(doc, "agent");
		if (!json_is_object(v)) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "agent: must be an object");
			goto out;
		}
		if (validate_only_keys(v, "agent", agent_keys, &e) != 0)
			goto bad;
		if (strcmp(json_string_value(json_object_get(doc, "status")), "idle") != 0) {
			api_reply_error(
			    c, 400, "invalid_request_error", NULL,
			    "agent: tools and mcp_servers can only be changed while the "
			    "session is idle");
			goto out;
		}
		json_t *ms = json_object_get(v, "mcp_servers"), *tl = json_object_get(v, "tools");
		if (validate_mcp_servers(ms ? ms : json_object_get(snap, "mcp_servers"),
		                         "agent.mcp_servers", &servers, &e) != 0 ||
		    validate_tools(tl ? tl : json_object_get(snap, "tools"), servers, "agent.tools",
		                   &tools, &e) != 0)
			goto bad;
		if (!json_equal(servers, json_object_get(snap, "mcp_servers")) ||
		    !json_equal(tools, json_object_get(snap, "tools"))) {
			json_object_set(snap, "mcp_servers", servers);
			json_object_set(snap, "tools", tools);
			json_object_set(ev, "agent", snap);
		}
	}
	if (json_object_size(ev) == 1) {
		api_reply_json(c, 200, doc); /* nothing changed: no write, no event */
		doc = NULL;
		goto out;
	}
	json_object_set_new(doc, "updated_at", api_time(now_real_us()));
	if ((r = db_begin(db)) != 0)
		goto fail;
	if ((r = session_store_put(db, id, doc)) != 0 ||
	    (r = events_append_tx(c->srv, id, ev, true)) != 0 || (r = db_commit(db)) != 0) {
		db_rollback(db);
		events_discard(c->srv);
		goto fail;
	}
	events_publish(c->srv);
	api_reply_json(c, 200, doc);
	doc = NULL;
	goto out;
bad:
	reply_verr(c, &e);
	goto out;
fail:
	api_reply_err(c, r, "cannot update session");
out:
	json_decref(doc);
	json_decref(ev);
	json_decref(x);
	json_decref(servers);
	json_decref(tools);
}

static void
archive_session(struct api_call *c)
{
	struct db *db = c->srv->db;
	const char *id = c->params[0];
	json_t *doc, *term = NULL;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}) || (doc = sessions_for_call(c)) == NULL)
		return;
	if (!json_is_null(json_object_get(doc, "archived_at"))) {
		api_reply_json(c, 200, doc);
		return;
	}
	int64_t now = now_real_us();
	const char *status = json_string_value(json_object_get(doc, "status"));
	/* An archived session is read-only: its loop and work stop, and a run that was
	 * in flight ends as terminated so no one waits for it. */
	if (strcmp(status, "running") == 0 || strcmp(status, "rescheduling") == 0) {
		json_object_set_new(doc, "status", json_string("terminated"));
		term = json_pack("{s:s}", "type", "session.status_terminated");
	}
	json_object_set_new(doc, "archived_at", api_time(now));
	json_object_set_new(doc, "updated_at", api_time(now));
	if ((r = db_begin(db)) != 0)
		goto fail;
	if ((r = session_store_archive(db, id, doc, now)) != 0)
		goto rollback;
	if ((r = work_session_ended_tx(c->srv, id)) != 0 ||
	    (term && (r = events_append_tx(c->srv, id, term, true)) != 0) ||
	    (r = db_commit(db)) != 0)
		goto rollback;
	json_decref(term);
	events_publish(c->srv);
	agent_session_drop(c->srv, id);
	log_info("session archived", "session_id", id);
	api_reply_json(c, 200, doc);
	return;
rollback:
	db_rollback(db);
	events_discard(c->srv);
fail:
	json_decref(term);
	json_decref(doc);
	api_reply_err(c, r, "cannot archive session");
}

static void
delete_session(struct api_call *c)
{
	struct db *db = c->srv->db;
	const char *id = c->params[0];
	json_t *doc, *ev;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}) || (doc = sessions_for_call(c)) == NULL)
		return;
	json_decref(doc);
	/* tool.call records wait in their event rows until the audit log is synced */
	if (audit_settle(c->srv) != 0) {
		api_reply_error(c, 503, "api_error", NULL,
		                "the audit log cannot be written; refusing to act unaudited");
		return;
	}
	/* The session.deleted event reaches open streams (queued in memory by the
	 * append) even though the log rows go with the session. */
	ev = json_pack("{s:s}", "type", "session.deleted");
	if ((r = db_begin(db)) != 0 || (r = events_append_tx(c->srv, id, ev, true)) != 0 ||
	    (r = work_session_ended_tx(c->srv, id)) != 0 ||
	    (r = event_store_delete_session(db, id)) != 0 ||
	    (r = session_store_delete(db, id)) != 0 ||
	    (r = memory_store_detach_session(db, id)) != 0 || (r = db_commit(db)) != 0) {
		db_rollback(db);
		events_discard(c->srv);
		json_decref(ev);
		api_reply_err(c, r, "cannot delete session");
		return;
	}
	json_decref(ev);
	events_publish(c->srv);
	events_close_streams(c->srv, id);
	agent_session_drop(c->srv, id);
	log_info("session deleted", "session_id", id);
	api_reply_json(c, 200, json_pack("{s:s, s:s}", "id", id, "type", "session_deleted"));
}

/* ---- list (BidirectionalPageCursor) ---- */

/* Cursor: base64url of "s" + order ('a'|'d') + direction ('n' next | 'p' prev) +
 * the exclusive bound seq. A PageCursor cursor ("d123") is read as a next cursor. */
struct sess_cursor {
	bool present;
	bool desc;
	bool prev;
	int64_t bound;
};

static char *
sess_cursor_new(bool desc, bool prev, int64_t bound)
{
	char raw[40];
	int n = snprintf(raw, sizeof(raw), "s%c%c%lld", desc ? 'd' : 'a', prev ? 'p' : 'n',
	                 (long long)bound);
	return base64url_encode(raw, (size_t)n);
}

static int
sess_cursor_parse(struct api_call *c, const char *page, struct sess_cursor *out)
{
	unsigned char *raw = NULL;
	size_t rl = 0, off;
	uint64_t v;
	int r = AL_E_INVAL;
	if (strlen(page) > 64 || base64_decode_any(page, strlen(page), &raw, &rl) != 0 || rl < 2)
		goto out;
	if (raw[0] == 's') {
		if (rl < 4 || (raw[1] != 'a' && raw[1] != 'd') || (raw[2] != 'n' && raw[2] != 'p'))
			goto out;
		out->desc = raw[1] == 'd';
		out->prev = raw[2] == 'p';
		off = 3;
	} else if (raw[0] == 'a' || raw[0] == 'd') {
		out->desc = raw[0] == 'd';
		out->prev = false;
		off = 1;
	} else {
		goto out;
	}
	if (parse_uint((const char *)raw + off, rl - off, INT64_MAX, &v) != 0)
		goto out;
	out->bound = (int64_t)v;
	out->present = true;
	r = 0;
out:
	free(raw);
	if (r != 0)
		api_reply_error(c, 400, "invalid_request_error", NULL, "page: invalid cursor");
	return r;
}

static int
parse_statuses(struct api_call *c, json_t *out)
{
	static const char *const ok[] = {"idle", "running", "rescheduling", "terminated", NULL};
	for (size_t i = 0; i < c->query.n; i++) {
		const char *k = c->query.params[i].key;
		if (strcmp(k, "statuses[]") != 0 && strcmp(k, "statuses") != 0)
			continue;
		const char *p = c->query.params[i].value;
		while (*p) {
			const char *end = strchr(p, ',');
			size_t n = end ? (size_t)(end - p) : strlen(p);
			bool valid = false;
			for (size_t j = 0; ok[j]; j++)
				if (strlen(ok[j]) == n && strncmp(ok[j], p, n) == 0) {
					json_array_append_new(out, json_string(ok[j]));
					valid = true;
				}
			if (!valid) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "statuses: each must be one of idle, running, "
				                "rescheduling, terminated");
				return AL_E_INVAL;
			}
			p += n;
			if (*p == ',')
				p++;
		}
	}
	return 0;
}

struct list_acc {
	json_t *data;
	uint64_t limit;
	bool prev; /* walking back: rows come newest-last and are put in front */
	bool more;
	int64_t first, last;
};

static int
list_add(void *arg, int64_t seq, json_t *doc)
{
	struct list_acc *a = arg;
	if (json_array_size(a->data) == a->limit) {
		json_decref(doc);
		a->more = true;
		return 1;
	}
	if (a->prev) {
		json_array_insert_new(a->data, 0, doc);
		if (json_array_size(a->data) == 1)
			a->last = seq;
		a->first = seq;
	} else {
		json_array_append_new(a->data, doc);
		if (json_array_size(a->data) == 1)
			a->first = seq;
		a->last = seq;
	}
	return 0;
}

static void
list_sessions(struct api_call *c)
{
	struct sess_cursor cur = {0};
	struct time_range tr;
	bool archived = false, desc = true;
	uint64_t limit = 20, aver = 0;
	const char *v;
	json_t *statuses = json_array(), *data = json_array();
	char *stext = NULL;

	if ((v = query_get(&c->query, "limit")) != NULL &&
	    (parse_uint_cstr(v, 1000, &limit) != 0 || limit < 1)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "limit: must be an integer between 1 and 1000");
		goto out;
	}
	if ((v = query_get(&c->query, "order")) != NULL) {
		if (strcmp(v, "asc") != 0 && strcmp(v, "desc") != 0) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "order: must be 'asc' or 'desc'");
			goto out;
		}
		desc = strcmp(v, "desc") == 0;
	}
	if ((v = query_get(&c->query, "page")) != NULL && *v) {
		if (sess_cursor_parse(c, v, &cur) != 0)
			goto out;
		if (query_get(&c->query, "order") && cur.desc != desc) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "page: cursor was issued for a different order");
			goto out;
		}
		desc = cur.desc;
	}
	if ((v = query_get(&c->query, "agent_version")) != NULL &&
	    (parse_uint_cstr(v, INT32_MAX, &aver) != 0 || aver < 1)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "agent_version: must be a positive integer");
		goto out;
	}
	if (validate_query_bool(c, "include_archived", &archived) ||
	    validate_query_created(c, &tr) || parse_statuses(c, statuses))
		goto out;
	/* Walking backwards reads the rows just before the bound in reverse order. */
	bool walk_desc = desc != cur.prev;
	stext = json_dumps(statuses, JSON_COMPACT);
	struct session_list_query q = {
	    .include_archived = archived,
	    .created_lo = tr.lo,
	    .created_hi = tr.hi,
	    .agent_id = query_get(&c->query, "agent_id"),
	    .agent_version = (int64_t)aver,
	    .memory_store_id = query_get(&c->query, "memory_store_id"),
	    .deployment_id = query_get(&c->query, "deployment_id"),
	    .environment_id = query_get(&c->query, "environment_id"),
	    .statuses_json = json_array_size(statuses) > 0 ? stext : NULL,
	    .has_cursor = cur.present,
	    .bound = cur.bound,
	    .walk_desc = walk_desc,
	    .limit = (unsigned)limit + 1,
	};
	/* users other than admins list their own sessions only */
	if (c->who.kind == PRINCIPAL_USER && c->who.role != ROLE_ADMIN) {
		q.owner_iss = c->who.user.iss;
		q.owner_sub = c->who.user.sub;
	}
	struct list_acc acc = {.data = data, .limit = limit, .prev = cur.prev};
	if (session_store_list(c->srv->db, &q, list_add, &acc) < 0) { /* 1: page full */
		api_reply_err(c, AL_E_IO, "cannot list sessions");
		goto out;
	}
	bool more = acc.more;
	int64_t first = acc.first, last = acc.last;
	bool empty = json_array_size(data) == 0;
	/* Bounds that include the cursor's own row when the page came back empty:
	 * "after X" is seq < X in desc order, "before X" is seq > X. */
	int64_t step = desc ? 1 : -1;
	char *next = NULL, *prev = NULL;
	if (!cur.prev) {
		if (more)
			next = sess_cursor_new(desc, false, last);
		if (cur.present)
			prev = sess_cursor_new(desc, true, empty ? cur.bound - step : first);
	} else {
		if (more)
			prev = sess_cursor_new(desc, true, first);
		next = sess_cursor_new(desc, false, empty ? cur.bound + step : last);
	}
	json_t *page = json_pack("{s:O, s:o, s:o}", "data", data, "next_page",
	                         next ? json_string(next) : json_null(), "prev_page",
	                         prev ? json_string(prev) : json_null());
	free(next);
	free(prev);
	api_reply_json(c, 200, page);
out:
	free(stext);
	json_decref(statuses);
	json_decref(data);
}

const struct api_route sessions_routes[] = {
    {"POST", "/v1/sessions", CREDS_API, create_session},
    {"GET", "/v1/sessions", CREDS_API, list_sessions},
    {"GET", "/v1/sessions/{}", CREDS_ANY, get_session},
    {"POST", "/v1/sessions/{}", CREDS_API, update_session},
    {"DELETE", "/v1/sessions/{}", CREDS_API, delete_session},
    {"POST", "/v1/sessions/{}/archive", CREDS_API, archive_session},
    {NULL, NULL, 0, NULL},
};
