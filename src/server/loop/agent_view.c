/* Event log → Messages API request, and what the loop is waiting for; see
 * agent_view.h and docs/server/agent-loop.md. Pure functions over JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_view.h"
#include "mcp_tools.h"
#include "xalloc.h"

const char *const agent_worker_tools[] = {"bash", "read", "write", "edit", "glob", "grep", NULL};

/* Names, descriptions and input schemas exactly as the official SDK's agent toolset
 * declares them (@anthropic-ai/sdk 1.14.0 src/tools/agent-toolset/node.ts), so a
 * model sees the same tools whichever runner executes them. */
static const struct {
	const char *name;
	const char *description;
	const char *schema;
} tool_schemas[] = {
    {"bash",
     "Run a bash command in a persistent shell. State (cwd, env vars) persists across calls.",
     "{\"type\":\"object\",\"properties\":{"
     "\"command\":{\"type\":\"string\",\"description\":\"The command to run\"},"
     "\"restart\":{\"type\":\"boolean\",\"description\":\"Restart the persistent shell "
     "before running\"},"
     "\"timeout_ms\":{\"type\":\"integer\",\"description\":\"Per-call timeout in "
     "milliseconds\"}}}"},
    {"read", "Read a UTF-8 text file relative to the workdir.",
     "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
     "\"view_range\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},"
     "\"description\":\"[start_line, end_line] 1-indexed inclusive\"}},"
     "\"required\":[\"file_path\"]}"},
    {"write",
     "Write a UTF-8 text file relative to the workdir, creating parent directories as "
     "needed.",
     "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
     "\"content\":{\"type\":\"string\"}},\"required\":[\"file_path\",\"content\"]}"},
    {"edit",
     "Replace old_string with new_string in a file. old_string must be unique unless "
     "replace_all.",
     "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},"
     "\"old_string\":{\"type\":\"string\"},\"new_string\":{\"type\":\"string\"},"
     "\"replace_all\":{\"type\":\"boolean\"}},"
     "\"required\":[\"file_path\",\"old_string\",\"new_string\"]}"},
    {"glob",
     "Match files under the workdir against a glob pattern. Results are mtime-sorted, "
     "newest first.",
     "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},"
     "\"path\":{\"type\":\"string\",\"description\":\"Directory to search in. Defaults to "
     "the workdir.\"}},\"required\":[\"pattern\"]}"},
    {"grep",
     "Search file contents for a regex. Uses ripgrep if available, otherwise a built-in "
     "walker.",
     "{\"type\":\"object\",\"properties\":{\"pattern\":{\"type\":\"string\"},"
     "\"path\":{\"type\":\"string\"}},\"required\":[\"pattern\"]}"},
};

static bool
streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static const char *
str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static const json_t *
find_toolset(const json_t *agent)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(agent, "tools"), i, t)
	{
		if (streq(str_of(t, "type"), "agent_toolset_20260401"))
			return t;
	}
	return NULL;
}

static const json_t *
find_custom(const json_t *agent, const char *name)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(agent, "tools"), i, t)
	{
		if (streq(str_of(t, "type"), "custom") && streq(str_of(t, "name"), name))
			return t;
	}
	return NULL;
}

/* enabled and permission_policy for one built-in tool: its config, else the default
 * config, else the documented defaults (enabled, always_allow). Snapshots are stored
 * resolved; the fallbacks only guard older or hand-written documents. */
static void
toolset_config(const json_t *toolset, const char *name, bool *enabled, const char **policy)
{
	const json_t *dc = json_object_get(toolset, "default_config");
	const json_t *cfg = NULL, *v;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(toolset, "configs"), i, c)
	{
		if (streq(str_of(c, "name"), name))
			cfg = c;
	}
	*enabled = true;
	*policy = "always_allow";
	if ((v = json_object_get(dc, "enabled")) && json_is_boolean(v))
		*enabled = json_is_true(v);
	if ((v = json_object_get(json_object_get(dc, "permission_policy"), "type")) &&
	    json_is_string(v))
		*policy = json_string_value(v);
	if ((v = json_object_get(cfg, "enabled")) && json_is_boolean(v))
		*enabled = json_is_true(v);
	if ((v = json_object_get(json_object_get(cfg, "permission_policy"), "type")) &&
	    json_is_string(v))
		*policy = json_string_value(v);
}

static bool
is_worker_tool(const char *name)
{
	for (size_t i = 0; agent_worker_tools[i]; i++)
		if (strcmp(agent_worker_tools[i], name) == 0)
			return true;
	return false;
}

static void
evaluate_agent(const json_t *agent, const json_t *mcp_catalog, const char *name,
               struct agent_tool_eval *out)
{
	const json_t *ts = find_toolset(agent);
	bool enabled = false;
	const char *policy = NULL;

	memset(out, 0, sizeof(*out));
	if (name && ts && is_worker_tool(name))
		toolset_config(ts, name, &enabled, &policy);
	if (enabled) {
		out->kind = AGENT_TOOL_BUILTIN;
		if (streq(policy, "always_ask")) {
			out->permission = "ask";
			out->evaluation = json_pack("{s:s}", "type", "always_ask");
		} else if (streq(policy, "auto")) {
			/* tools.md §14.3: a fixed rule set until a judge is specified. Tools
			 * that only look are allowed; tools that change things ask. */
			bool ro = streq(name, "read") || streq(name, "glob") || streq(name, "grep");
			out->permission = ro ? "allow" : "ask";
			out->evaluation =
			    json_pack("{s:s, s:s, s:s}", "type", "auto", "evaluated_permission",
			              out->permission, "reason_code",
			              ro ? "airlock_read_only_tool" : "airlock_mutating_tool");
		} else {
			out->permission = "allow";
			out->evaluation = json_pack("{s:s}", "type", "always_allow");
		}
		return;
	}
	if (name && find_custom(agent, name)) {
		out->kind = AGENT_TOOL_CUSTOM;
		return;
	}
	const json_t *m = name ? mcp_catalog_find(mcp_catalog, name) : NULL;
	if (m) {
		out->kind = AGENT_TOOL_MCP;
		out->mcp_server = str_of(m, "server");
		out->mcp_tool = str_of(m, "tool");
		mcp_tool_permission(agent, out->mcp_server, out->mcp_tool,
		                    json_is_true(json_object_get(m, "read_only")), &out->permission,
		                    &out->evaluation);
		return;
	}
	out->kind = AGENT_TOOL_UNKNOWN;
	out->permission = "deny";
}

void
agent_tool_evaluate(const json_t *agent, const json_t *mcp_catalog, const struct agent_policy *pol,
                    const char *name, struct agent_tool_eval *out)
{
	evaluate_agent(agent, mcp_catalog, name, out);
	if (pol == NULL || pol->p == NULL || name == NULL)
		return;
	struct policy_decision d;
	policy_decide(pol->p, &pol->who, &pol->agent, name, &d);
	/* a tool the session does not have stays unavailable whatever the policy allows;
	 * a policy that denies it is still the reason worth recording */
	if (out->kind == AGENT_TOOL_UNKNOWN && d.effect != POLICY_DENY)
		return;
	const char *was = out->permission; /* NULL for custom tools: the client decides */
	if (d.effect == POLICY_DENY) {
		/* never handed to a client, a worker or an MCP server: answered at once */
		out->kind = AGENT_TOOL_POLICY_DENIED;
		out->permission = "deny";
	} else if (d.effect == POLICY_ASK && (was == NULL || streq(was, "allow"))) {
		out->permission = "ask";
	}
	json_t *ev = out->evaluation ? out->evaluation : json_object();
	if (out->evaluation == NULL || d.effect != POLICY_ALLOW) {
		json_object_set_new(ev, "type", json_string("policy"));
		if (out->permission)
			json_object_set_new(ev, "evaluated_permission",
			                    json_string(out->permission));
	}
	json_object_set_new(ev, "policy_rule", json_string(d.rule));
	json_object_set_new(ev, "policy_effect", json_string(policy_effect_name(d.effect)));
	out->evaluation = ev;
}

/* The name a tool is offered under, for the policy: built-in and custom tools by name,
 * MCP tools by their namespaced name (mcp__<server>__<tool>). */
static bool
offered(const struct agent_policy *pol, const json_t *tool)
{
	if (pol == NULL || pol->p == NULL)
		return true;
	const char *name = str_of(tool, "name");
	if (name == NULL)
		return true;
	struct policy_decision d;
	policy_decide(pol->p, &pol->who, &pol->agent, name, &d);
	return d.effect != POLICY_DENY;
}

json_t *
agent_request_tools(const json_t *agent, const json_t *mcp_catalog, const struct agent_policy *pol)
{
	json_t *tools = json_array();
	const json_t *ts = find_toolset(agent);
	size_t i;
	json_t *t;

	for (i = 0; ts && i < sizeof(tool_schemas) / sizeof(tool_schemas[0]); i++) {
		bool enabled;
		const char *policy;
		toolset_config(ts, tool_schemas[i].name, &enabled, &policy);
		if (!enabled)
			continue;
		json_t *schema = json_loads(tool_schemas[i].schema, 0, NULL);
		json_array_append_new(
		    tools, json_pack("{s:s, s:s, s:o}", "name", tool_schemas[i].name, "description",
		                     tool_schemas[i].description, "input_schema", schema));
	}
	json_array_foreach(json_object_get(agent, "tools"), i, t)
	{
		if (!streq(str_of(t, "type"), "custom"))
			continue;
		/* As declared; only the agent-level "type" marker is not a Messages field
		 * every provider accepts. */
		json_t *c = json_deep_copy(t);
		json_object_del(c, "type");
		json_array_append_new(tools, c);
	}
	json_t *mcp = mcp_catalog_request_tools(mcp_catalog);
	json_array_extend(tools, mcp);
	json_decref(mcp);
	if (pol != NULL && pol->p != NULL) {
		json_t *kept = json_array();
		json_array_foreach(tools, i, t)
		{
			if (offered(pol, t))
				json_array_append(kept, t);
		}
		json_decref(tools);
		tools = kept;
	}
	return tools;
}

void
agent_request_add_system(json_t *body, const char *text)
{
	const char *cur = json_string_value(json_object_get(body, "system"));
	if (text == NULL || *text == '\0')
		return;
	if (cur && *cur) {
		char *s = xasprintf("%s\n\n%s", cur, text);
		json_object_set_new(body, "system", json_string(s));
		free(s);
	} else {
		json_object_set_new(body, "system", json_string(text));
	}
}

json_t *
agent_request_body(const json_t *agent, const json_t *mcp_catalog, const struct agent_policy *pol,
                   const json_t *messages, unsigned max_tokens)
{
	const json_t *model = json_object_get(agent, "model");
	const char *model_id =
	    json_is_string(model) ? json_string_value(model) : str_of(model, "id");
	json_t *body =
	    json_pack("{s:s, s:I, s:b, s:O}", "model", model_id ? model_id : "", "max_tokens",
	              (json_int_t)max_tokens, "stream", 1, "messages", messages);
	const char *system = str_of(agent, "system");
	if (system && *system)
		json_object_set_new(body, "system", json_string(system));
	json_t *tools = agent_request_tools(agent, mcp_catalog, pol);
	if (json_array_size(tools))
		json_object_set_new(body, "tools", tools);
	else
		json_decref(tools);
	return body;
}

/* ---- the view ---- */

struct open_call {
	const char *id;
	const char *name;
	bool custom;
	bool mcp;
	const char *server; /* mcp: server and tool name; input for running it */
	const json_t *input;
	const char *permission; /* allow | ask | deny */
	const char *confirmed;  /* NULL | allow | deny */
	const char *deny_message;
	const char *policy_rule; /* the tool policy's deciding rule when it denied the call */
	bool answered;
};

struct walk {
	json_t *messages;
	json_t *deferred; /* user blocks that arrived while a model request ran */
	struct open_call *calls;
	size_t ncalls;
	bool in_request;
	long request_start; /* index of the open span start */
	long consumed;      /* start index of the last successful model request */
	long last_input;
	long last_interrupt;
	const char *open_span;
};

static void
add_block(json_t *messages, const char *role, json_t *block)
{
	size_t n = json_array_size(messages);
	json_t *last = n ? json_array_get(messages, n - 1) : NULL;
	if (last && streq(str_of(last, "role"), role)) {
		json_array_append_new(json_object_get(last, "content"), block);
		return;
	}
	json_array_append_new(messages, json_pack("{s:s, s:[o]}", "role", role, "content", block));
}

static struct open_call *
find_call(struct walk *w, const char *id)
{
	for (size_t i = 0; id && i < w->ncalls; i++)
		if (strcmp(w->calls[i].id, id) == 0)
			return &w->calls[i];
	return NULL;
}

static json_t *
tool_result_block(const char *id, const json_t *content, bool is_error)
{
	json_t *b = json_pack("{s:s, s:s}", "type", "tool_result", "tool_use_id", id);
	/* The Messages API wants a non-empty result; an empty one reads as "no output". */
	if (json_is_array(content) && json_array_size(content) > 0)
		json_object_set_new(b, "content", json_deep_copy(content));
	else
		json_object_set_new(b, "content", json_string("(no output)"));
	if (is_error)
		json_object_set_new(b, "is_error", json_true());
	return b;
}

static void
answer_call(struct walk *w, const json_t *ev, const char *ref, long i)
{
	struct open_call *c = find_call(w, ref);
	if (c == NULL || c->answered)
		return; /* late or duplicate: the first answer is the record */
	c->answered = true;
	add_block(w->messages, "user",
	          tool_result_block(ref, json_object_get(ev, "content"),
	                            json_is_true(json_object_get(ev, "is_error"))));
	w->last_input = i;
}

static void
flush_deferred(struct walk *w)
{
	size_t i;
	json_t *b;
	json_array_foreach(w->deferred, i, b) add_block(w->messages, "user", json_incref(b));
	json_array_clear(w->deferred);
}

/* Tool results must open the user turn that follows an assistant tool_use turn. */
static void
results_first(json_t *messages)
{
	size_t i;
	json_t *m;
	json_array_foreach(messages, i, m)
	{
		if (!streq(str_of(m, "role"), "user"))
			continue;
		json_t *content = json_object_get(m, "content");
		json_t *sorted = json_array();
		size_t j;
		json_t *b;
		json_array_foreach(content, j, b)
		{
			if (streq(str_of(b, "type"), "tool_result"))
				json_array_append(sorted, b);
		}
		json_array_foreach(content, j, b)
		{
			if (!streq(str_of(b, "type"), "tool_result"))
				json_array_append(sorted, b);
		}
		json_object_set_new(m, "content", sorted);
	}
}

static void
on_event(struct walk *w, const json_t *ev, long i, struct agent_view *v)
{
	const char *type = str_of(ev, "type");
	const char *id = str_of(ev, "id");
	bool queued = json_is_null(json_object_get(ev, "processed_at"));

	if (type == NULL)
		return;
	if (streq(type, "user.message")) {
		if (queued && id)
			json_array_append_new(v->unprocessed, json_string(id));
		json_t *content = json_object_get(ev, "content");
		size_t j;
		json_t *b;
		json_array_foreach(content, j, b)
		{
			if (!json_is_object(b))
				continue;
			if (w->in_request)
				json_array_append(w->deferred, b);
			else
				add_block(w->messages, "user", json_deep_copy(b));
		}
		w->last_input = i;
	} else if (streq(type, "agent.message")) {
		size_t j;
		json_t *b;
		json_array_foreach(json_object_get(ev, "content"), j, b)
		{
			if (streq(str_of(b, "type"), "text"))
				add_block(w->messages, "assistant", json_deep_copy(b));
		}
	} else if ((streq(type, "agent.tool_use") || streq(type, "agent.custom_tool_use")) && id) {
		const json_t *input = json_object_get(ev, "input");
		add_block(w->messages, "assistant",
		          json_pack("{s:s, s:s, s:s, s:O}", "type", "tool_use", "id", id, "name",
		                    str_of(ev, "name") ? str_of(ev, "name") : "", "input",
		                    json_is_object(input) ? input : json_object()));
		w->calls = xreallocarray(w->calls, w->ncalls + 1, sizeof(*w->calls));
		struct open_call *c = &w->calls[w->ncalls++];
		memset(c, 0, sizeof(*c));
		c->id = id;
		c->name = str_of(ev, "name");
		c->custom = streq(type, "agent.custom_tool_use");
		c->permission = str_of(ev, "evaluated_permission");
		const json_t *evl = json_object_get(ev, "evaluation");
		if (streq(str_of(evl, "policy_effect"), "deny"))
			c->policy_rule = str_of(evl, "policy_rule");
		if (c->permission == NULL)
			c->permission = "allow";
	} else if (streq(type, "agent.mcp_tool_use") && id) {
		/* Toward the model an MCP tool carries its namespaced name (mcp_tools.h). */
		const json_t *input = json_object_get(ev, "input");
		const char *server = str_of(ev, "mcp_server_name");
		const char *tool = str_of(ev, "name");
		char *mname = mcp_tool_model_name(server ? server : "", tool ? tool : "");
		add_block(w->messages, "assistant",
		          json_pack("{s:s, s:s, s:s, s:O}", "type", "tool_use", "id", id, "name",
		                    mname, "input", json_is_object(input) ? input : json_object()));
		free(mname);
		w->calls = xreallocarray(w->calls, w->ncalls + 1, sizeof(*w->calls));
		struct open_call *c = &w->calls[w->ncalls++];
		memset(c, 0, sizeof(*c));
		c->id = id;
		c->name = tool;
		c->mcp = true;
		c->server = server;
		c->input = input;
		c->permission = str_of(ev, "evaluated_permission");
		if (c->permission == NULL)
			c->permission = "ask"; /* an MCP call never runs unasked by default */
	} else if (streq(type, "agent.mcp_tool_result")) {
		answer_call(w, ev, str_of(ev, "mcp_tool_use_id"), i);
	} else if (streq(type, "user.tool_result") || streq(type, "agent.tool_result")) {
		answer_call(w, ev, str_of(ev, "tool_use_id"), i);
	} else if (streq(type, "user.custom_tool_result")) {
		answer_call(w, ev, str_of(ev, "custom_tool_use_id"), i);
	} else if (streq(type, "user.tool_confirmation")) {
		struct open_call *c = find_call(w, str_of(ev, "tool_use_id"));
		if (queued && id)
			json_array_append_new(v->acks, json_string(id));
		if (c && c->confirmed == NULL) {
			c->confirmed = str_of(ev, "result");
			c->deny_message = str_of(ev, "deny_message");
		}
	} else if (streq(type, "user.interrupt")) {
		if (queued && id) {
			json_array_append_new(v->acks, json_string(id));
			v->interrupt_pending = true;
		}
		/* Calls left open by an interrupted turn are closed, so the history stays a
		 * valid tool_use/tool_result sequence and nothing waits on them. */
		for (size_t j = 0; j < w->ncalls; j++) {
			struct open_call *c = &w->calls[j];
			if (c->answered)
				continue;
			c->answered = true;
			json_t *t =
			    json_pack("[{s:s, s:s}]", "type", "text", "text",
			              "The user interrupted before this tool call finished.");
			add_block(w->messages, "user", tool_result_block(c->id, t, true));
			json_decref(t);
		}
		w->last_interrupt = i;
	} else if (streq(type, "span.model_request_start")) {
		w->in_request = true;
		w->request_start = i;
		w->open_span = id;
	} else if (streq(type, "span.model_request_end")) {
		if (w->in_request && !json_is_true(json_object_get(ev, "is_error")))
			w->consumed = w->request_start;
		w->in_request = false;
		w->open_span = NULL;
		flush_deferred(w);
	} else if (streq(type, "session.error") && w->request_start > w->consumed) {
		/* The loop gave up on the model call (retries exhausted, or refused): the
		 * turn ended, so the input it carried is spent. A later wake with nothing new
		 * (another replica's notification, a step after the lease) must not call
		 * again; new input does. MCP errors are not about the model call. */
		const json_t *err = json_object_get(ev, "error");
		const char *kind = str_of(err, "type");
		const char *rs = str_of(json_object_get(err, "retry_status"), "type");
		if (kind && strncmp(kind, "mcp_", 4) != 0 &&
		    (streq(rs, "exhausted") || streq(rs, "terminal")))
			w->consumed = w->request_start;
	}
}

void
agent_view_build(const json_t *events, struct agent_view *v)
{
	struct walk w;
	size_t i;
	json_t *ev;

	memset(v, 0, sizeof(*v));
	memset(&w, 0, sizeof(w));
	v->blocked = json_array();
	v->to_deny = json_array();
	v->mcp_run = json_array();
	v->unprocessed = json_array();
	v->acks = json_array();
	w.messages = json_array();
	w.deferred = json_array();
	w.consumed = w.last_input = w.last_interrupt = w.request_start = -1;
	json_array_foreach(events, i, ev) on_event(&w, ev, (long)i, v);
	if (w.open_span)
		v->open_span = xstrdup(w.open_span);
	flush_deferred(&w);

	size_t open = 0;
	for (i = 0; i < w.ncalls; i++) {
		struct open_call *c = &w.calls[i];
		if (c->answered)
			continue;
		open++;
		if (c->custom) {
			json_array_append_new(v->blocked, json_string(c->id));
		} else if (streq(c->permission, "deny") || streq(c->confirmed, "deny")) {
			char msg[1200];
			if (streq(c->permission, "deny") && c->policy_rule != NULL)
				snprintf(msg, sizeof(msg), "Tool '%s' denied by policy rule %s.",
				         c->name ? c->name : "", c->policy_rule);
			else if (streq(c->permission, "deny") && c->confirmed == NULL)
				snprintf(msg, sizeof(msg),
				         "Tool '%s' is not available in this session.",
				         c->name ? c->name : "");
			else if (c->deny_message && *c->deny_message)
				snprintf(msg, sizeof(msg),
				         "The user denied permission to use %s: %s",
				         c->name ? c->name : "this tool", c->deny_message);
			else
				snprintf(msg, sizeof(msg), "The user denied permission to use %s.",
				         c->name ? c->name : "this tool");
			json_t *d = json_pack("{s:s, s:s, s:s}", "id", c->id, "name",
			                      c->name ? c->name : "", "message", msg);
			if (c->mcp) /* answered with agent.mcp_tool_result */
				json_object_set_new(d, "mcp", json_true());
			json_array_append_new(v->to_deny, d);
		} else if (c->mcp &&
		           (streq(c->permission, "allow") || streq(c->confirmed, "allow"))) {
			json_array_append_new(
			    v->mcp_run,
			    json_pack("{s:s, s:s, s:s, s:O}", "id", c->id, "server",
			              c->server ? c->server : "", "tool", c->name ? c->name : "",
			              "input",
			              json_is_object(c->input) ? c->input : json_object()));
		} else if (streq(c->permission, "allow") || streq(c->confirmed, "allow")) {
			v->waiting++;
		} else {
			/* ask, or a value we do not know: hold like the worker does. */
			json_array_append_new(v->blocked, json_string(c->id));
		}
	}
	results_first(w.messages);
	size_t n = json_array_size(w.messages);
	const json_t *last = n ? json_array_get(w.messages, n - 1) : NULL;
	v->needs_model = open == 0 && w.last_input > w.consumed &&
	                 w.last_input > w.last_interrupt && last &&
	                 streq(str_of(last, "role"), "user");
	v->messages = w.messages;
	json_decref(w.deferred);
	free(w.calls);
}

void
agent_view_free(struct agent_view *v)
{
	json_decref(v->messages);
	json_decref(v->blocked);
	json_decref(v->to_deny);
	json_decref(v->mcp_run);
	json_decref(v->unprocessed);
	json_decref(v->acks);
	free(v->open_span);
	memset(v, 0, sizeof(*v));
}
