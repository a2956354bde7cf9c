/* Validators for agent, session and event bodies, shared by agents.c, sessions.c and
 * the event routes; see validate.h and docs/server/resources.md. Every function
 * builds a fresh resolved value and leaves its input untouched. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "db.h"
#include "err.h"
#include "util.h"
#include "server.h"
#include "validate.h"

#define PATH_MAX_LEN 256

static const char *const builtin_tools[] = {"bash", "edit",      "read",       "write", "glob",
                                            "grep", "web_fetch", "web_search", NULL};

int
verr_set(struct verr *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return AL_E_INVAL;
}

int
validate_only_keys(const json_t *obj, const char *path, const char *const *allowed, struct verr *e)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			if (strcmp(k, allowed[i]) == 0)
				ok = true;
		if (!ok)
			return verr_set(e, "%s%s%s: Extra inputs are not permitted", path,
			                *path ? "." : "", k);
	}
	return 0;
}

static void
subpath(char *out, const char *path, const char *key)
{
	snprintf(out, PATH_MAX_LEN, "%s%s%s", path, *path ? "." : "", key);
}

static void
subindex(char *out, const char *path, size_t i)
{
	snprintf(out, PATH_MAX_LEN, "%s[%zu]", path, i);
}

/* A string member: absent (and not required) leaves *out NULL; JSON null counts as
 * absent only when nullable. */
static int
get_string(const json_t *o, const char *key, const char *path, bool required, bool nullable,
           size_t min, size_t max, const char **out, struct verr *e)
{
	char p[PATH_MAX_LEN];
	json_t *v = json_object_get(o, key);
	subpath(p, path, key);
	*out = NULL;
	if (v == NULL || (nullable && json_is_null(v))) {
		if (required)
			return verr_set(e, "%s: Field required", p);
		return 0;
	}
	if (!json_is_string(v))
		return verr_set(e, "%s: must be a string", p);
	size_t n = json_string_length(v);
	if (n < min || n > max)
		return verr_set(e, "%s: length must be between %zu and %zu", p, min, max);
	if (strlen(json_string_value(v)) != n)
		return verr_set(e, "%s: must not contain NUL characters", p);
	*out = json_string_value(v);
	return 0;
}

static int
get_type(const json_t *o, const char *path, const char **out, struct verr *e)
{
	if (!json_is_object(o))
		return verr_set(e, "%s: must be an object", *path ? path : "body");
	return get_string(o, "type", path, true, false, 1, 64, out, e);
}

static bool
name_chars_ok(const char *s)
{
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool
is_builtin(const char *name)
{
	for (size_t i = 0; builtin_tools[i]; i++)
		if (strcmp(name, builtin_tools[i]) == 0)
			return true;
	return false;
}

int
validate_model(const json_t *in, const char *path, json_t **out, struct verr *e)
{
	static const char *const keys[] = {"id", "effort", "speed", "inference_geo", NULL};
	static const char *const efforts[] = {"low", "medium", "high", "xhigh", "max", NULL};
	const char *id = NULL, *speed = NULL, *geo = NULL, *effort = "high";
	char p[PATH_MAX_LEN];
	int r;
	if (json_is_string(in)) {
		id = json_string_value(in);
		if (json_string_length(in) < 1 || json_string_length(in) > 256 ||
		    strlen(id) != json_string_length(in))
			return verr_set(e, "%s: length must be between 1 and 256", path);
		*out = json_pack("{s:s, s:{s:s}, s:s}", "id", id, "effort", "type", "high", "speed",
		                 "standard");
		return 0;
	}
	if (!json_is_object(in))
		return verr_set(e, "%s: must be a string or an object", path);
	if ((r = validate_only_keys(in, path, keys, e)) != 0 ||
	    (r = get_string(in, "id", path, true, false, 1, 256, &id, e)) != 0 ||
	    (r = get_string(in, "speed", path, false, true, 1, 32, &speed, e)) != 0 ||
	    (r = get_string(in, "inference_geo", path, false, true, 1, 64, &geo, e)) != 0)
		return r;
	if (speed && strcmp(speed, "standard") != 0 && strcmp(speed, "fast") != 0)
		return verr_set(e, "%s.speed: must be 'standard' or 'fast'", path);
	json_t *ev = json_object_get(in, "effort");
	subpath(p, path, "effort");
	if (ev && !json_is_null(ev)) {
		if (json_is_object(ev)) {
			static const char *const ekeys[] = {"type", NULL};
			if ((r = validate_only_keys(ev, p, ekeys, e)) != 0)
				return r;
			ev = json_object_get(ev, "type");
		}
		if (!json_is_string(ev))
			return verr_set(e, "%s: must be a level string or {\"type\": level}", p);
		effort = NULL;
		for (size_t i = 0; efforts[i]; i++)
			if (strcmp(json_string_value(ev), efforts[i]) == 0)
				effort = efforts[i];
		if (effort == NULL)
			return verr_set(e, "%s: must be one of low, medium, high, xhigh, max", p);
	}
	*out = json_pack("{s:s, s:{s:s}, s:s}", "id", id, "effort", "type", effort, "speed",
	                 speed ? speed : "standard");
	if (geo)
		json_object_set_new(*out, "inference_geo", json_string(geo));
	return 0;
}

int
validate_permission_policy(const json_t *in, const char *path, json_t **out, struct verr *e)
{
	static const char *const keys[] = {"type", NULL};
	const char *type;
	int r;
	if ((r = get_type(in, path, &type, e)) != 0 ||
	    (r = validate_only_keys(in, path, keys, e)) != 0)
		return r;
	if (strcmp(type, "always_allow") != 0 && strcmp(type, "always_ask") != 0 &&
	    strcmp(type, "auto") != 0)
		return verr_set(e, "%s.type: must be one of always_allow, always_ask, auto", path);
	*out = json_pack("{s:s}", "type", type);
	return 0;
}

/* Reads {enabled?, permission_policy?} members of a config; absent or null keep the
 * given defaults (borrowed), which are copied into *enabled / *policy. */
static int
enabled_policy(const json_t *o, const char *path, bool dflt_enabled, const json_t *dflt_policy,
               bool *enabled, json_t **policy, struct verr *e)
{
	char p[PATH_MAX_LEN];
	json_t *v = json_object_get(o, "enabled");
	*enabled = dflt_enabled;
	*policy = NULL;
	if (v && !json_is_null(v)) {
		if (!json_is_boolean(v)) {
			subpath(p, path, "enabled");
			return verr_set(e, "%s: must be a boolean", p);
		}
		*enabled = json_is_true(v);
	}
	v = json_object_get(o, "permission_policy");
	if (v && !json_is_null(v)) {
		subpath(p, path, "permission_policy");
		return validate_permission_policy(v, p, policy, e);
	}
	*policy = json_deep_copy(dflt_policy);
	return 0;
}

/* A toolset's default_config: its keys, enabled and permission_policy, the policy
 * defaulting to fallback when the object or the field is absent. */
static int
toolset_default_config(const json_t *t, const char *path, const char *const *dkeys,
                       const json_t *fallback, bool *enabled, json_t **policy, struct verr *e)
{
	char p[PATH_MAX_LEN];
	json_t *dc = json_object_get(t, "default_config");
	subpath(p, path, "default_config");
	if (dc == NULL || json_is_null(dc)) {
		*policy = json_deep_copy(fallback);
		return 0;
	}
	if (!json_is_object(dc))
		return verr_set(e, "%s: must be an object", p);
	int r = validate_only_keys(dc, p, dkeys, e);
	return r != 0 ? r : enabled_policy(dc, p, true, fallback, enabled, policy, e);
}

int
validate_mcp_servers(const json_t *in, const char *path, json_t **out, struct verr *e)
{
	static const char *const keys[] = {"type", "name", "url", NULL};
	char p[PATH_MAX_LEN];
	json_t *res = json_array();
	int r = 0;
	if (in == NULL || json_is_null(in))
		goto done;
	if (!json_is_array(in)) {
		r = verr_set(e, "%s: must be an array", path);
		goto done;
	}
	if (json_array_size(in) > VALIDATE_MAX_MCP_SERVERS) {
		r = verr_set(e, "%s: at most %d MCP servers", path, VALIDATE_MAX_MCP_SERVERS);
		goto done;
	}
	for (size_t i = 0; i < json_array_size(in); i++) {
		const json_t *s = json_array_get(in, i);
		const char *type, *name, *url;
		subindex(p, path, i);
		if ((r = get_type(s, p, &type, e)) != 0 ||
		    (r = validate_only_keys(s, p, keys, e)) != 0)
			goto done;
		if (strcmp(type, "url") != 0) {
			r = verr_set(e, "%s.type: must be 'url'", p);
			goto done;
		}
		if ((r = get_string(s, "name", p, true, false, 1, 128, &name, e)) != 0 ||
		    (r = get_string(s, "url", p, true, false, 1, 2048, &url, e)) != 0)
			goto done;
		if (!name_chars_ok(name)) {
			r = verr_set(e, "%s.name: may contain only letters, digits, '_' and '-'",
			             p);
			goto done;
		}
		if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
			r = verr_set(e, "%s.url: must be an http or https URL", p);
			goto done;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(name, json_string_value(json_object_get(json_array_get(res, j),
			                                                   "name"))) == 0) {
				r = verr_set(e, "%s.name: duplicate MCP server name '%s'", p, name);
				goto done;
			}
		json_array_append_new(
		    res, json_pack("{s:s, s:s, s:s}", "type", "url", "name", name, "url", url));
	}
done:
	if (r != 0) {
		json_decref(res);
		return r;
	}
	*out = res;
	return 0;
}

/* web_fetch url_sources filters: "all" | "none" | {type:all|none} |
 * {type:only|except, tools:[{type:"tool_reference", name}]}. user_input allows only
 * all/none. Output is always the object form. */
static int
url_source(const json_t *in, const char *path, bool user_input, json_t **out, struct verr *e)
{
	static const char *const keys[] = {"type", "tools", NULL};
	static const char *const rkeys[] = {"type", "name", NULL};
	const char *type;
	char p[PATH_MAX_LEN];
	int r;
	*out = NULL;
	if (in == NULL || json_is_null(in)) {
		*out = json_null();
		return 0;
	}
	if (json_is_string(in)) {
		type = json_string_value(in);
		if (strcmp(type, "all") != 0 && strcmp(type, "none") != 0)
			return verr_set(e, "%s: must be 'all' or 'none'", path);
		*out = json_pack("{s:s}", "type", type);
		return 0;
	}
	if ((r = get_type(in, path, &type, e)) != 0 ||
	    (r = validate_only_keys(in, path, keys, e)) != 0)
		return r;
	if (strcmp(type, "all") == 0 || strcmp(type, "none") == 0) {
		if (json_object_get(in, "tools"))
			return verr_set(e, "%s.tools: only allowed with 'only' or 'except'", path);
		*out = json_pack("{s:s}", "type", type);
		return 0;
	}
	if (user_input || (strcmp(type, "only") != 0 && strcmp(type, "except") != 0))
		return verr_set(e, "%s.type: must be one of %s", path,
		                user_input ? "all, none" : "all, none, only, except");
	json_t *tools = json_object_get(in, "tools");
	subpath(p, path, "tools");
	if (!json_is_array(tools))
		return verr_set(e, "%s: must be an array", p);
	if (json_array_size(tools) > VALIDATE_MAX_TOOLS)
		return verr_set(e, "%s: at most %d entries", p, VALIDATE_MAX_TOOLS);
	json_t *list = json_array();
	for (size_t i = 0; i < json_array_size(tools); i++) {
		char q[PATH_MAX_LEN];
		const char *rt, *name;
		const json_t *t = json_array_get(tools, i);
		subindex(q, p, i);
		if ((r = get_type(t, q, &rt, e)) != 0 ||
		    (r = validate_only_keys(t, q, rkeys, e)) != 0 ||
		    (r = get_string(t, "name", q, true, false, 1, 256, &name, e)) != 0) {
			json_decref(list);
			return r;
		}
		if (strcmp(rt, "tool_reference") != 0) {
			json_decref(list);
			return verr_set(e, "%s.type: must be 'tool_reference'", q);
		}
		json_array_append_new(list, json_pack("{s:s, s:s}", "type", rt, "name", name));
	}
	*out = json_pack("{s:s, s:o}", "type", type, "tools", list);
	return 0;
}

static int
domain_list(const json_t *cfg, const char *key, const char *path, json_t *dst, struct verr *e)
{
	char p[PATH_MAX_LEN];
	json_t *v = json_object_get(cfg, key);
	if (v == NULL)
		return 0;
	subpath(p, path, key);
	if (!json_is_array(v))
		return verr_set(e, "%s: must be an array of strings", p);
	if (json_array_size(v) > 64)
		return verr_set(e, "%s: at most 64 domains", p);
	for (size_t i = 0; i < json_array_size(v); i++) {
		const json_t *d = json_array_get(v, i);
		if (!json_is_string(d) || json_string_length(d) < 1 ||
		    json_string_length(d) > 253 ||
		    strlen(json_string_value(d)) != json_string_length(d))
			return verr_set(e, "%s[%zu]: must be a domain of 1 to 253 characters", p,
			                i);
	}
	json_object_set_new(dst, key, json_deep_copy(v));
	return 0;
}

/* The extras of the two control-plane web tools. */
static int
web_tool_extras(const json_t *cfg, const char *name, const char *path, json_t *dst, struct verr *e)
{
	char p[PATH_MAX_LEN];
	int r;
	if ((r = domain_list(cfg, "allowed_domains", path, dst, e)) != 0 ||
	    (r = domain_list(cfg, "blocked_domains", path, dst, e)) != 0)
		return r;
	if (json_object_get(dst, "allowed_domains") && json_object_get(dst, "blocked_domains"))
		return verr_set(e, "%s: allowed_domains and blocked_domains are mutually exclusive",
		                path);
	if (strcmp(name, "web_fetch") == 0) {
		static const char *const ukeys[] = {"user_input", "client_tool_results",
		                                    "server_tool_results", NULL};
		json_t *mct = json_object_get(cfg, "max_content_tokens");
		if (mct && !json_is_null(mct)) {
			if (!json_is_integer(mct) || json_integer_value(mct) < 1 ||
			    json_integer_value(mct) > 10000000) {
				subpath(p, path, "max_content_tokens");
				return verr_set(e, "%s: must be a positive integer", p);
			}
			json_object_set(dst, "max_content_tokens", mct);
		}
		json_t *us = json_object_get(cfg, "url_sources");
		subpath(p, path, "url_sources");
		if (us == NULL || json_is_null(us)) {
			json_object_set_new(dst, "url_sources", json_null());
			return 0;
		}
		if (!json_is_object(us))
			return verr_set(e, "%s: must be an object", p);
		if ((r = validate_only_keys(us, p, ukeys, e)) != 0)
			return r;
		json_t *res = json_object();
		for (size_t i = 0; ukeys[i]; i++) {
			char q[PATH_MAX_LEN];
			json_t *o = NULL;
			subpath(q, p, ukeys[i]);
			if ((r = url_source(json_object_get(us, ukeys[i]), q, i == 0, &o, e)) !=
			    0) {
				json_decref(res);
				return r;
			}
			json_object_set_new(res, ukeys[i], o);
		}
		json_object_set_new(dst, "url_sources", res);
		return 0;
	}
	json_t *loc = json_object_get(cfg, "user_location");
	if (loc && !json_is_null(loc)) {
		static const char *const lkeys[] = {"type",   "city",     "country",
		                                    "region", "timezone", NULL};
		const char *type, *s;
		subpath(p, path, "user_location");
		if ((r = get_type(loc, p, &type, e)) != 0 ||
		    (r = validate_only_keys(loc, p, lkeys, e)) != 0)
			return r;
		if (strcmp(type, "approximate") != 0)
			return verr_set(e, "%s.type: must be 'approximate'", p);
		json_t *o = json_pack("{s:s}", "type", type);
		for (size_t i = 1; lkeys[i]; i++) {
			if ((r = get_string(loc, lkeys[i], p, false, true, 1, 256, &s, e)) != 0) {
				json_decref(o);
				return r;
			}
			json_object_set_new(o, lkeys[i], s ? json_string(s) : json_null());
		}
		json_object_set_new(dst, "user_location", o);
	}
	return 0;
}

static int
agent_toolset(const json_t *t, const char *path, json_t **out, struct verr *e)
{
	static const char *const keys[] = {"type", "default_config", "configs", NULL};
	static const char *const dkeys[] = {"enabled", "permission_policy", NULL};
	static const char *const ckeys[] = {"name", "type", "enabled", "permission_policy", NULL};
	static const char *const wkeys[] = {"name",
	                                    "type",
	                                    "enabled",
	                                    "permission_policy",
	                                    "allowed_domains",
	                                    "blocked_domains",
	                                    "max_content_tokens",
	                                    "url_sources",
	                                    "user_location",
	                                    NULL};
	char p[PATH_MAX_LEN];
	json_t *allow = json_pack("{s:s}", "type", "always_allow");
	json_t *dpolicy = NULL, *configs_out = json_array(), *given[8] = {NULL};
	bool denabled = true;
	int r;
	if ((r = validate_only_keys(t, path, keys, e)) != 0)
		goto out;
	if ((r = toolset_default_config(t, path, dkeys, allow, &denabled, &dpolicy, e)) != 0)
		goto out;
	json_t *configs = json_object_get(t, "configs");
	subpath(p, path, "configs");
	if (configs && !json_is_null(configs)) {
		if (!json_is_array(configs)) {
			r = verr_set(e, "%s: must be an array", p);
			goto out;
		}
		for (size_t i = 0; i < json_array_size(configs); i++) {
			char q[PATH_MAX_LEN];
			const char *name, *type;
			const json_t *c = json_array_get(configs, i);
			size_t k;
			subindex(q, p, i);
			if (!json_is_object(c)) {
				r = verr_set(e, "%s: must be an object", q);
				goto out;
			}
			if ((r = get_string(c, "name", q, true, false, 1, 64, &name, e)) != 0)
				goto out;
			for (k = 0; builtin_tools[k]; k++)
				if (strcmp(builtin_tools[k], name) == 0)
					break;
			if (builtin_tools[k] == NULL) {
				r = verr_set(e,
				             "%s.name: unknown tool '%s' (expected one of bash, "
				             "edit, read, write, glob, grep, web_fetch, "
				             "web_search)",
				             q, name);
				goto out;
			}
			if ((r = validate_only_keys(c, q, k >= 6 ? wkeys : ckeys, e)) != 0 ||
			    (r = get_string(c, "type", q, false, true, 1, 64, &type, e)) != 0)
				goto out;
			if (type && strcmp(type, name) != 0) {
				r = verr_set(e, "%s.type: must equal name '%s'", q, name);
				goto out;
			}
			if (k == 6 && json_object_get(c, "user_location")) {
				r = verr_set(e, "%s.user_location: Extra inputs are not permitted",
				             q);
				goto out;
			}
			if (k == 7 && (json_object_get(c, "url_sources") ||
			               json_object_get(c, "max_content_tokens"))) {
				r = verr_set(e,
				             "%s: url_sources and max_content_tokens apply to "
				             "web_fetch only",
				             q);
				goto out;
			}
			if (given[k]) {
				r = verr_set(e, "%s.name: duplicate config for '%s'", q, name);
				goto out;
			}
			given[k] = (json_t *)c;
		}
	}
	for (size_t k = 0; builtin_tools[k]; k++) {
		char q[PATH_MAX_LEN];
		const char *name = builtin_tools[k];
		bool en = denabled;
		json_t *pol = NULL;
		json_t *cfg = json_object();
		snprintf(q, sizeof(q), "%s.configs[%s]", path, name);
		if (given[k] &&
		    (r = enabled_policy(given[k], q, denabled, dpolicy, &en, &pol, e)) != 0) {
			json_decref(cfg);
			goto out;
		}
		if (pol == NULL)
			pol = json_deep_copy(dpolicy);
		json_object_set_new(cfg, "name", json_string(name));
		json_object_set_new(cfg, "type", json_string(name));
		json_object_set_new(cfg, "enabled", json_boolean(en));
		json_object_set_new(cfg, "permission_policy", pol);
		if (k >= 6 &&
		    (r = web_tool_extras(given[k] ? given[k] : cfg, name, q, cfg, e)) != 0) {
			json_decref(cfg);
			goto out;
		}
		json_array_append_new(configs_out, cfg);
	}
	*out = json_pack("{s:s, s:{s:b, s:O}, s:O}", "type", "agent_toolset_20260401",
	                 "default_config", "enabled", denabled, "permission_policy", dpolicy,
	                 "configs", configs_out);
	r = 0;
out:
	json_decref(allow);
	json_decref(dpolicy);
	json_decref(configs_out);
	return r;
}

static int
mcp_toolset(const json_t *t, const char *path, json_t **out, size_t *ntools, struct verr *e)
{
	static const char *const keys[] = {"type", "mcp_server_name", "default_config", "configs",
	                                   NULL};
	static const char *const dkeys[] = {"enabled", "permission_policy", NULL};
	static const char *const ckeys[] = {"name", "enabled", "permission_policy", NULL};
	char p[PATH_MAX_LEN];
	const char *server;
	json_t *ask = json_pack("{s:s}", "type", "always_ask");
	json_t *dpolicy = NULL, *configs_out = json_array();
	bool denabled = true;
	int r;
	if ((r = validate_only_keys(t, path, keys, e)) != 0 ||
	    (r = get_string(t, "mcp_server_name", path, true, false, 1, 128, &server, e)) != 0)
		goto out;
	if ((r = toolset_default_config(t, path, dkeys, ask, &denabled, &dpolicy, e)) != 0)
		goto out;
	json_t *configs = json_object_get(t, "configs");
	subpath(p, path, "configs");
	if (configs && !json_is_null(configs)) {
		if (!json_is_array(configs)) {
			r = verr_set(e, "%s: must be an array", p);
			goto out;
		}
		if (json_array_size(configs) > VALIDATE_MAX_TOOLS) {
			r = verr_set(e, "%s: at most %d tools", p, VALIDATE_MAX_TOOLS);
			goto out;
		}
		for (size_t i = 0; i < json_array_size(configs); i++) {
			char q[PATH_MAX_LEN];
			const char *name;
			const json_t *c = json_array_get(configs, i);
			bool en;
			json_t *pol = NULL;
			subindex(q, p, i);
			if (!json_is_object(c)) {
				r = verr_set(e, "%s: must be an object", q);
				goto out;
			}
			if ((r = validate_only_keys(c, q, ckeys, e)) != 0 ||
			    (r = get_string(c, "name", q, true, false, 1, 256, &name, e)) != 0 ||
			    (r = enabled_policy(c, q, denabled, dpolicy, &en, &pol, e)) != 0)
				goto out;
			for (size_t j = 0; j < i; j++)
				if (strcmp(name, json_string_value(json_object_get(
				                     json_array_get(configs_out, j), "name"))) ==
				    0) {
					json_decref(pol);
					r = verr_set(e, "%s.name: duplicate config for '%s'", q,
					             name);
					goto out;
				}
			json_array_append_new(configs_out,
			                      json_pack("{s:s, s:b, s:o}", "name", name, "enabled",
			                                en, "permission_policy", pol));
		}
	}
	*ntools += json_array_size(configs_out);
	*out = json_pack("{s:s, s:s, s:{s:b, s:O}, s:O}", "type", "mcp_toolset", "mcp_server_name",
	                 server, "default_config", "enabled", denabled, "permission_policy",
	                 dpolicy, "configs", configs_out);
	r = 0;
out:
	json_decref(ask);
	json_decref(dpolicy);
	json_decref(configs_out);
	return r;
}

/* Rejects $ref anywhere in a schema (we cannot resolve references safely). */
static int
schema_no_ref(const json_t *v, const char *path, unsigned depth, struct verr *e)
{
	const char *k;
	json_t *x;
	if (depth > 32)
		return verr_set(e, "%s: schema nested too deeply", path);
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x)
		{
			if (strcmp(k, "$ref") == 0)
				return verr_set(e, "%s: $ref is not supported", path);
			if (schema_no_ref(x, path, depth + 1, e) != 0)
				return AL_E_INVAL;
		}
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			if (schema_no_ref(json_array_get(v, i), path, depth + 1, e) != 0)
				return AL_E_INVAL;
	}
	return 0;
}

static int
custom_tool(const json_t *t, const char *path, json_t **out, struct verr *e)
{
	static const char *const keys[] = {"type", "name", "description", "input_schema", NULL};
	const char *name, *desc, *k, *stype;
	char p[PATH_MAX_LEN];
	json_t *v;
	int r;
	if ((r = validate_only_keys(t, path, keys, e)) != 0 ||
	    (r = get_string(t, "name", path, true, false, 1, 128, &name, e)) != 0 ||
	    (r = get_string(t, "description", path, true, false, 0, VALIDATE_MAX_DESCRIPTION, &desc,
	                    e)) != 0)
		return r;
	if (!name_chars_ok(name))
		return verr_set(e, "%s.name: must match ^[A-Za-z0-9_-]{1,128}$", path);
	if (is_builtin(name))
		return verr_set(e, "%s.name: '%s' is the name of a built-in tool", path, name);
	if (strncmp(name, "mcp__", 5) == 0)
		return verr_set(e, "%s.name: must not start with 'mcp__'", path);
	json_t *s = json_object_get(t, "input_schema");
	subpath(p, path, "input_schema");
	if (s == NULL)
		return verr_set(e, "%s: Field required", p);
	if ((r = get_type(s, p, &stype, e)) != 0)
		return r;
	if (strcmp(stype, "object") != 0)
		return verr_set(e, "%s.type: must be 'object'", p);
	if (json_object_get(s, "oneOf") || json_object_get(s, "anyOf") ||
	    json_object_get(s, "allOf"))
		return verr_set(e, "%s: top-level oneOf, anyOf and allOf are not supported", p);
	if ((r = schema_no_ref(s, p, 0, e)) != 0)
		return r;
	json_t *props = json_object_get(s, "properties");
	if (props && !json_is_null(props)) {
		if (!json_is_object(props))
			return verr_set(e, "%s.properties: must be an object", p);
		json_object_foreach(props, k, v)
		{
			if (strlen(k) < 1 || strlen(k) > 64 || !name_chars_ok(k))
				return verr_set(e,
				                "%s.properties: property name '%.64s' must match "
				                "^[A-Za-z0-9_-]{1,64}$",
				                p, k);
			if (!json_is_object(v) && !json_is_boolean(v))
				return verr_set(e, "%s.properties.%s: must be a schema object", p,
				                k);
		}
	}
	json_t *req = json_object_get(s, "required");
	if (req && !json_is_null(req)) {
		if (!json_is_array(req))
			return verr_set(e, "%s.required: must be an array of strings", p);
		for (size_t i = 0; i < json_array_size(req); i++)
			if (!json_is_string(json_array_get(req, i)))
				return verr_set(e, "%s.required[%zu]: must be a string", p, i);
	}
	*out = json_pack("{s:s, s:s, s:s, s:O}", "type", "custom", "name", name, "description",
	                 desc, "input_schema", s);
	return 0;
}

int
validate_tools(const json_t *in, const json_t *mcp_servers, const char *path, json_t **out,
               struct verr *e)
{
	char p[PATH_MAX_LEN];
	json_t *res = json_array();
	size_t nservers = json_array_size(mcp_servers), ntools = 0;
	bool toolset_seen = false;
	int r = 0;
	if (in != NULL && !json_is_null(in)) {
		if (!json_is_array(in)) {
			r = verr_set(e, "%s: must be an array", path);
			goto done;
		}
		if (json_array_size(in) > VALIDATE_MAX_TOOLS) {
			r = verr_set(e, "%s: at most %d tools", path, VALIDATE_MAX_TOOLS);
			goto done;
		}
		for (size_t i = 0; i < json_array_size(in); i++) {
			const json_t *t = json_array_get(in, i);
			const char *type;
			json_t *o = NULL;
			subindex(p, path, i);
			if ((r = get_type(t, p, &type, e)) != 0)
				goto done;
			if (strcmp(type, "agent_toolset_20260401") == 0) {
				if (toolset_seen) {
					r = verr_set(e, "%s: at most one agent_toolset_20260401",
					             p);
					goto done;
				}
				toolset_seen = true;
				ntools += 8;
				r = agent_toolset(t, p, &o, e);
			} else if (strcmp(type, "mcp_toolset") == 0) {
				r = mcp_toolset(t, p, &o, &ntools, e);
			} else if (strcmp(type, "custom") == 0) {
				ntools++;
				r = custom_tool(t, p, &o, e);
			} else {
				r = verr_set(e,
				             "%s.type: must be one of agent_toolset_20260401, "
				             "mcp_toolset, custom",
				             p);
			}
			if (r != 0)
				goto done;
			json_array_append_new(res, o);
		}
	}
	if (ntools > VALIDATE_MAX_TOOLS) {
		r = verr_set(e, "%s: at most %d tools in total across toolsets", path,
		             VALIDATE_MAX_TOOLS);
		goto done;
	}
	/* Pairing: custom names unique; every mcp_toolset names a declared server, and
	 * every declared server has exactly one toolset. */
	for (size_t i = 0; i < json_array_size(res); i++) {
		json_t *t = json_array_get(res, i);
		const char *type = json_string_value(json_object_get(t, "type"));
		subindex(p, path, i);
		if (strcmp(type, "custom") == 0) {
			const char *name = json_string_value(json_object_get(t, "name"));
			for (size_t j = 0; j < i; j++) {
				json_t *u = json_array_get(res, j);
				if (strcmp(json_string_value(json_object_get(u, "type")),
				           "custom") == 0 &&
				    strcmp(json_string_value(json_object_get(u, "name")), name) ==
				        0) {
					r = verr_set(e, "%s.name: duplicate custom tool name '%s'",
					             p, name);
					goto done;
				}
			}
			continue;
		}
		if (strcmp(type, "mcp_toolset") != 0)
			continue;
		const char *sv = json_string_value(json_object_get(t, "mcp_server_name"));
		bool found = false;
		for (size_t j = 0; j < nservers; j++)
			if (strcmp(json_string_value(
			               json_object_get(json_array_get(mcp_servers, j), "name")),
			           sv) == 0)
				found = true;
		if (!found) {
			r = verr_set(e,
			             "%s.mcp_server_name: no MCP server named '%s' in mcp_servers",
			             p, sv);
			goto done;
		}
		for (size_t j = 0; j < i; j++) {
			json_t *u = json_array_get(res, j);
			const char *uv = json_string_value(json_object_get(u, "mcp_server_name"));
			if (uv && strcmp(uv, sv) == 0) {
				r = verr_set(
				    e,
				    "%s.mcp_server_name: MCP server '%s' is already referenced "
				    "by tools[%zu]",
				    p, sv, j);
				goto done;
			}
		}
	}
	for (size_t j = 0; j < nservers; j++) {
		const char *sv =
		    json_string_value(json_object_get(json_array_get(mcp_servers, j), "name"));
		bool found = false;
		for (size_t i = 0; i < json_array_size(res); i++) {
			const char *tv = json_string_value(
			    json_object_get(json_array_get(res, i), "mcp_server_name"));
			if (tv && strcmp(tv, sv) == 0)
				found = true;
		}
		if (!found) {
			r = verr_set(
			    e,
			    "mcp_servers[%zu]: MCP server '%s' must be referenced by exactly "
			    "one mcp_toolset in tools",
			    j, sv);
			goto done;
		}
	}
done:
	if (r != 0) {
		json_decref(res);
		return r;
	}
	*out = res;
	return 0;
}

int
validate_skills(const json_t *in, const char *path, json_t **out, struct verr *e)
{
	static const char *const keys[] = {"type", "skill_id", "version", NULL};
	static const char *const prebuilt[] = {"docx", "pdf", "pptx", "xlsx", NULL};
	char p[PATH_MAX_LEN];
	json_t *res = json_array();
	int r = 0;
	if (in == NULL || json_is_null(in))
		goto done;
	if (!json_is_array(in)) {
		r = verr_set(e, "%s: must be an array", path);
		goto done;
	}
	if (json_array_size(in) > VALIDATE_MAX_SKILLS) {
		r = verr_set(e, "%s: at most %d skills", path, VALIDATE_MAX_SKILLS);
		goto done;
	}
	for (size_t i = 0; i < json_array_size(in); i++) {
		const json_t *s = json_array_get(in, i);
		const char *type, *id, *version;
		subindex(p, path, i);
		if ((r = get_type(s, p, &type, e)) != 0 ||
		    (r = validate_only_keys(s, p, keys, e)) != 0 ||
		    (r = get_string(s, "skill_id", p, true, false, 1, 128, &id, e)) != 0 ||
		    (r = get_string(s, "version", p, false, true, 1, 64, &version, e)) != 0)
			goto done;
		if (strcmp(type, "anthropic") != 0 && strcmp(type, "custom") != 0) {
			r = verr_set(e, "%s.type: must be 'anthropic' or 'custom'", p);
			goto done;
		}
		if (strcmp(type, "anthropic") == 0)
			for (size_t k = 0; prebuilt[k]; k++)
				if (strcmp(id, prebuilt[k]) == 0) {
					r = verr_set(e,
					             "%s.skill_id: the prebuilt '%s' skill is not "
					             "available on a self-hosted server",
					             p, id);
					goto done;
				}
		for (size_t j = 0; j < i; j++)
			if (strcmp(json_string_value(
			               json_object_get(json_array_get(res, j), "skill_id")),
			           id) == 0) {
				r = verr_set(e, "%s.skill_id: duplicate skill '%s'", p, id);
				goto done;
			}
		json_array_append_new(res, json_pack("{s:s, s:s, s:s}", "type", type, "skill_id",
		                                     id, "version", version ? version : "latest"));
	}
done:
	if (r != 0) {
		json_decref(res);
		return r;
	}
	*out = res;
	return 0;
}

int
validate_execution_identity(const json_t *in, const char *path, json_t **out, struct verr *e)
{
	static const char *const keys[] = {"type", "role_arn", NULL};
	const char *type, *arn;
	int r;
	if (in == NULL || json_is_null(in)) {
		*out = json_pack("{s:s}", "type", "service_account");
		return 0;
	}
	if ((r = get_type(in, path, &type, e)) != 0 ||
	    (r = validate_only_keys(in, path, keys, e)) != 0)
		return r;
	if (strcmp(type, "service_account") == 0) {
		if (json_object_get(in, "role_arn"))
			return verr_set(e, "%s.role_arn: only allowed with type 'aws_role'", path);
		*out = json_pack("{s:s}", "type", type);
		return 0;
	}
	if (strcmp(type, "aws_role") != 0)
		return verr_set(e, "%s.type: must be 'service_account' or 'aws_role'", path);
	if ((r = get_string(in, "role_arn", path, true, false, 1, 2048, &arn, e)) != 0)
		return r;
	if (strncmp(arn, "arn:", 4) != 0)
		return verr_set(e, "%s.role_arn: must be an ARN", path);
	*out = json_pack("{s:s, s:s}", "type", type, "role_arn", arn);
	return 0;
}

static int
block_source(const json_t *src, const char *path, bool document, struct verr *e)
{
	const char *type, *s;
	int r;
	if ((r = get_type(src, path, &type, e)) != 0)
		return r;
	if (strcmp(type, "base64") == 0) {
		static const char *const keys[] = {"type", "media_type", "data", NULL};
		if ((r = validate_only_keys(src, path, keys, e)) != 0 ||
		    (r = get_string(src, "media_type", path, true, false, 1, 256, &s, e)) != 0 ||
		    (r = get_string(src, "data", path, true, false, 1, (size_t)-1, &s, e)) != 0)
			return r;
		return 0;
	}
	if (strcmp(type, "url") == 0) {
		static const char *const keys[] = {"type", "url", NULL};
		if ((r = validate_only_keys(src, path, keys, e)) != 0 ||
		    (r = get_string(src, "url", path, true, false, 1, 8192, &s, e)) != 0)
			return r;
		if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
			return verr_set(e, "%s.url: must be an http or https URL", path);
		return 0;
	}
	if (strcmp(type, "file") == 0) {
		static const char *const keys[] = {"type", "file_id", NULL};
		return validate_only_keys(src, path, keys, e) ||
		               get_string(src, "file_id", path, true, false, 1, 128, &s, e)
		           ? AL_E_INVAL
		           : 0;
	}
	if (document && strcmp(type, "text") == 0) {
		static const char *const keys[] = {"type", "media_type", "data", NULL};
		if ((r = validate_only_keys(src, path, keys, e)) != 0 ||
		    (r = get_string(src, "data", path, true, false, 0, (size_t)-1, &s, e)) != 0 ||
		    (r = get_string(src, "media_type", path, true, false, 1, 64, &s, e)) != 0)
			return r;
		if (strcmp(s, "text/plain") != 0)
			return verr_set(e, "%s.media_type: must be 'text/plain'", path);
		return 0;
	}
	return verr_set(e, "%s.type: must be one of base64, url, file%s", path,
	                document ? ", text" : "");
}

int
validate_content_blocks(const json_t *in, const char *path, bool tool_result, struct verr *e)
{
	char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
	int r;
	if (!json_is_array(in))
		return verr_set(e, "%s: must be an array", path);
	if (json_array_size(in) > VALIDATE_MAX_CONTENT_BLOCKS)
		return verr_set(e, "%s: at most %d content blocks", path,
		                VALIDATE_MAX_CONTENT_BLOCKS);
	for (size_t i = 0; i < json_array_size(in); i++) {
		const json_t *b = json_array_get(in, i);
		const char *type, *s;
		subindex(p, path, i);
		if ((r = get_type(b, p, &type, e)) != 0)
			return r;
		if (strcmp(type, "text") == 0) {
			static const char *const keys[] = {"type", "text", NULL};
			if ((r = validate_only_keys(b, p, keys, e)) != 0 ||
			    (r = get_string(b, "text", p, true, false, 0, (size_t)-1, &s, e)) != 0)
				return r;
		} else if (strcmp(type, "image") == 0) {
			static const char *const keys[] = {"type", "source", NULL};
			if ((r = validate_only_keys(b, p, keys, e)) != 0)
				return r;
			subpath(q, p, "source");
			if (json_object_get(b, "source") == NULL)
				return verr_set(e, "%s: Field required", q);
			if ((r = block_source(json_object_get(b, "source"), q, false, e)) != 0)
				return r;
		} else if (strcmp(type, "document") == 0) {
			static const char *const keys[] = {"type", "source", "title", "context",
			                                   NULL};
			if ((r = validate_only_keys(b, p, keys, e)) != 0 ||
			    (r = get_string(b, "title", p, false, true, 0, 4096, &s, e)) != 0 ||
			    (r = get_string(b, "context", p, false, true, 0, (size_t)-1, &s, e)) !=
			        0)
				return r;
			subpath(q, p, "source");
			if (json_object_get(b, "source") == NULL)
				return verr_set(e, "%s: Field required", q);
			if ((r = block_source(json_object_get(b, "source"), q, true, e)) != 0)
				return r;
		} else if (strcmp(type, "redacted") == 0) {
			static const char *const keys[] = {"type", NULL};
			if ((r = validate_only_keys(b, p, keys, e)) != 0)
				return r;
		} else if (tool_result && strcmp(type, "search_result") == 0) {
			static const char *const keys[] = {"type",    "source",    "title",
			                                   "content", "citations", NULL};
			if ((r = validate_only_keys(b, p, keys, e)) != 0 ||
			    (r = get_string(b, "source", p, true, false, 0, 8192, &s, e)) != 0 ||
			    (r = get_string(b, "title", p, true, false, 0, 4096, &s, e)) != 0)
				return r;
			subpath(q, p, "content");
			json_t *content = json_object_get(b, "content");
			if (!json_is_array(content))
				return verr_set(e, "%s: must be an array of text blocks", q);
			for (size_t j = 0; j < json_array_size(content); j++) {
				const json_t *tb = json_array_get(content, j);
				char t[PATH_MAX_LEN];
				const char *tt;
				static const char *const tkeys[] = {"type", "text", NULL};
				subindex(t, q, j);
				if ((r = get_type(tb, t, &tt, e)) != 0 ||
				    (r = validate_only_keys(tb, t, tkeys, e)) != 0 ||
				    (r = get_string(tb, "text", t, true, false, 0, (size_t)-1, &s,
				                    e)) != 0)
					return r;
				if (strcmp(tt, "text") != 0)
					return verr_set(e, "%s.type: must be 'text'", t);
			}
			json_t *cit = json_object_get(b, "citations");
			if (cit && !json_is_null(cit) && !json_is_object(cit))
				return verr_set(e, "%s.citations: must be an object", p);
		} else {
			return verr_set(e,
			                "%s.type: must be one of text, image, document, redacted%s",
			                p, tool_result ? ", search_result" : "");
		}
	}
	return 0;
}

int
validate_initial_event(const json_t *in, const char *path, json_t **out, struct verr *e)
{
	const char *type;
	char p[PATH_MAX_LEN];
	int r;
	if ((r = get_type(in, path, &type, e)) != 0)
		return r;
	if (strcmp(type, "user.message") == 0) {
		static const char *const keys[] = {"type", "content", NULL};
		json_t *content = json_object_get(in, "content");
		subpath(p, path, "content");
		if ((r = validate_only_keys(in, path, keys, e)) != 0)
			return r;
		if (content == NULL)
			return verr_set(e, "%s: Field required", p);
		if ((r = validate_content_blocks(content, p, false, e)) != 0)
			return r;
		if (json_array_size(content) == 0)
			return verr_set(e, "%s: must not be empty", p);
		*out = json_pack("{s:s, s:O}", "type", type, "content", content);
		return 0;
	}
	if (strcmp(type, "user.define_outcome") == 0) {
		static const char *const keys[] = {"type", "description", "rubric",
		                                   "max_iterations", NULL};
		static const char *const rkeys_text[] = {"type", "content", NULL};
		static const char *const rkeys_file[] = {"type", "file_id", NULL};
		const char *desc, *rtype, *s;
		json_t *rubric = json_object_get(in, "rubric");
		json_t *mi = json_object_get(in, "max_iterations");
		json_int_t iters = 3;
		if ((r = validate_only_keys(in, path, keys, e)) != 0 ||
		    (r = get_string(in, "description", path, true, false, 1, 65536, &desc, e)) != 0)
			return r;
		subpath(p, path, "rubric");
		if (rubric == NULL)
			return verr_set(e, "%s: Field required", p);
		if ((r = get_type(rubric, p, &rtype, e)) != 0)
			return r;
		if (strcmp(rtype, "text") == 0) {
			if ((r = validate_only_keys(rubric, p, rkeys_text, e)) != 0 ||
			    (r = get_string(rubric, "content", p, true, false, 1, 262144, &s, e)) !=
			        0)
				return r;
		} else if (strcmp(rtype, "file") == 0) {
			if ((r = validate_only_keys(rubric, p, rkeys_file, e)) != 0 ||
			    (r = get_string(rubric, "file_id", p, true, false, 1, 128, &s, e)) != 0)
				return r;
		} else {
			return verr_set(e, "%s.type: must be 'text' or 'file'", p);
		}
		if (mi && !json_is_null(mi)) {
			if (!json_is_integer(mi) || json_integer_value(mi) < 1 ||
			    json_integer_value(mi) > 20)
				return verr_set(
				    e, "%s.max_iterations: must be an integer from 1 to 20", path);
			iters = json_integer_value(mi);
		}
		char *oid = id_new("outc_");
		*out = json_pack("{s:s, s:s, s:s, s:O, s:I}", "type", type, "outcome_id", oid,
		                 "description", desc, "rubric", rubric, "max_iterations", iters);
		free(oid);
		return 0;
	}
	return verr_set(e,
	                "%s.type: initial_events accept only user.message and "
	                "user.define_outcome",
	                path);
}

void
validate_reply(struct api_call *c, const struct verr *e)
{
	api_reply_error(c, 400, "invalid_request_error", NULL, "%s", e->msg);
}

int
validate_query_bool(struct api_call *c, const char *key, bool *out)
{
	const char *v = query_get(&c->query, key);
	if (v == NULL)
		return 0;
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*out = true;
	else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*out = false;
	else {
		api_reply_error(c, 400, "invalid_request_error", NULL, "%s: must be true or false",
		                key);
		return AL_E_INVAL;
	}
	return 0;
}

int
validate_query_created(struct api_call *c, struct time_range *out)
{
	static const char *const keys[] = {"created_at[gt]", "created_at[gte]", "created_at[lt]",
	                                   "created_at[lte]"};
	out->lo = INT64_MIN;
	out->hi = INT64_MAX;
	for (size_t i = 0; i < 4; i++) {
		const char *v = query_get(&c->query, keys[i]);
		int64_t t;
		if (v == NULL)
			continue;
		if (time_parse_rfc3339(v, &t) != 0 || t == INT64_MIN || t == INT64_MAX) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "%s: must be an RFC 3339 timestamp", keys[i]);
			return AL_E_INVAL;
		}
		switch (i) {
		case 0:
			t++; /* fall through */
		case 1:
			if (t > out->lo)
				out->lo = t;
			break;
		case 2:
			t--; /* fall through */
		default:
			if (t < out->hi)
				out->hi = t;
			break;
		}
	}
	return 0;
}

json_t *
validate_page_json(struct doc_page *pg, bool desc)
{
	json_t *page = json_pack("{s:O}", "data", pg->data);
	if (pg->more) {
		char *cur = api_page_cursor(pg->last_seq, desc);
		json_object_set_new(page, "next_page", json_string(cur));
		free(cur);
	} else {
		json_object_set_new(page, "next_page", json_null());
	}
	doc_page_free(pg);
	return page;
}

void
validate_list_docs(struct api_call *c, validate_list_fn *list, const char *scope_id)
{
	validate_list_docs_ext(c, list, scope_id, false);
}

void
validate_list_docs_ext(struct api_call *c, validate_list_fn *list, const char *scope_id,
                       bool has_more)
{
	struct page_req pg;
	struct time_range tr;
	struct doc_page page;
	bool archived = false;
	if (api_page_parse(c, 20, 1000, true, &pg) ||
	    validate_query_bool(c, "include_archived", &archived) || validate_query_created(c, &tr))
		return;
	struct doc_list q = {.include_archived = archived,
	                     .created_lo = tr.lo,
	                     .created_hi = tr.hi,
	                     .has_cursor = pg.has_cursor,
	                     .after_seq = pg.after_seq,
	                     .limit = pg.limit,
	                     .desc = pg.desc};
	if (list(c->srv->db, scope_id, &q, &page) != 0) {
		doc_page_free(&page);
		api_reply_err(c, AL_E_IO, "cannot list");
		return;
	}
	bool more = page.more;
	json_t *out = validate_page_json(&page, pg.desc);
	if (has_more)
		json_object_set_new(out, "has_more", json_boolean(more));
	api_reply_json(c, 200, out);
}
