/* Accumulates one streamed model answer and maps it to session events; see
 * agent_stream.h and docs/server/agent-loop.md. */
#include <stdlib.h>
#include <string.h>

#include "agent_stream.h"
#include "agent_view.h"
#include "err.h"
#include "util.h"
#include "xalloc.h"

void
agent_stream_init(struct agent_stream *st, const struct agent_stream_hooks *hooks)
{
	memset(st, 0, sizeof(*st));
	st->blocks = json_array();
	if (hooks)
		st->hooks = *hooks;
}

void
agent_stream_free(struct agent_stream *st)
{
	json_decref(st->blocks);
	json_decref(st->usage);
	json_decref(st->error);
	free(st->stop_reason);
	memset(st, 0, sizeof(*st));
}

static json_t *
block_at(struct agent_stream *st, const json_t *data, bool create)
{
	json_t *idx = json_object_get(data, "index");
	if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
	    json_integer_value(idx) >= AGENT_STREAM_MAX_BLOCKS)
		return NULL;
	size_t i = (size_t)json_integer_value(idx);
	if (create && i == json_array_size(st->blocks))
		json_array_append_new(st->blocks, json_object());
	return json_array_get(st->blocks, i);
}

static int
append_str(struct agent_stream *st, json_t *blk, const char *key, const char *piece)
{
	if (piece == NULL)
		return AL_E_PROTO;
	size_t n = strlen(piece);
	if (st->out_bytes + n > AGENT_STREAM_MAX_OUTPUT)
		return AL_E_TOOBIG;
	st->out_bytes += n;
	const char *cur = json_string_value(json_object_get(blk, key));
	char *joined = xasprintf("%s%s", cur ? cur : "", piece);
	json_object_set_new(blk, key, json_string(joined));
	free(joined);
	return 0;
}

static bool
is(const char *a, const char *b)
{
	return a && strcmp(a, b) == 0;
}

static int
block_start(struct agent_stream *st, const json_t *d)
{
	json_t *blk = block_at(st, d, true);
	json_t *cb = json_object_get(d, "content_block");
	const char *bt = json_string_value(json_object_get(cb, "type"));
	if (blk == NULL || bt == NULL || json_object_size(blk) != 0)
		return AL_E_PROTO;
	json_object_set_new(blk, "type", json_string(bt));
	if (is(bt, "text") || is(bt, "thinking")) {
		char *eid = id_new("sevt_");
		json_object_set_new(blk, "event_id", json_string(eid));
		if (st->hooks.block_start)
			st->hooks.block_start(st->hooks.arg, eid, bt);
		free(eid);
		const char *init = json_string_value(json_object_get(cb, bt));
		if (init && *init)
			return append_str(st, blk, bt, init);
	} else if (is(bt, "tool_use")) {
		const char *name = json_string_value(json_object_get(cb, "name"));
		if (name == NULL)
			return AL_E_PROTO;
		json_object_set_new(blk, "name", json_string(name));
		json_object_set_new(blk, "json", json_string(""));
	}
	return 0;
}

static int
block_delta(struct agent_stream *st, const json_t *d)
{
	json_t *blk = block_at(st, d, false);
	json_t *delta = json_object_get(d, "delta");
	const char *dt = json_string_value(json_object_get(delta, "type"));
	const char *bt = json_string_value(json_object_get(blk, "type"));
	int r = 0;
	if (blk == NULL || dt == NULL)
		return AL_E_PROTO;
	/* A delta must fit its block: text into text, JSON into tool_use, and so on. */
	if (is(dt, "text_delta")) {
		const char *piece = json_string_value(json_object_get(delta, "text"));
		if (!is(bt, "text"))
			return AL_E_PROTO;
		if ((r = append_str(st, blk, "text", piece)) == 0 && st->hooks.text)
			st->hooks.text(st->hooks.arg,
			               json_string_value(json_object_get(blk, "event_id")), piece);
	} else if (is(dt, "thinking_delta")) {
		if (!is(bt, "thinking"))
			return AL_E_PROTO;
		r = append_str(st, blk, "thinking",
		               json_string_value(json_object_get(delta, "thinking")));
	} else if (is(dt, "input_json_delta")) {
		if (!is(bt, "tool_use"))
			return AL_E_PROTO;
		r = append_str(st, blk, "json",
		               json_string_value(json_object_get(delta, "partial_json")));
	}
	/* signature_delta, citations_delta: nothing the session events carry */
	return r;
}

int
agent_stream_event(struct agent_stream *st, const char *name, size_t name_len, const char *data,
                   size_t data_len)
{
	int r = 0;
	json_t *d = NULL;

	if (name_len == 4 && memcmp(name, "ping", 4) == 0)
		return 0;
	d = json_loadb(data, data_len, 0, NULL);
	const char *type = json_string_value(json_object_get(d, "type"));
	if (type == NULL) {
		r = AL_E_PROTO;
		goto out;
	}
	if (is(type, "message_start")) {
		json_t *u = json_object_get(json_object_get(d, "message"), "usage");
		json_decref(st->usage);
		st->usage = json_is_object(u) ? json_deep_copy(u) : json_object();
	} else if (is(type, "content_block_start")) {
		r = block_start(st, d);
	} else if (is(type, "content_block_delta")) {
		r = block_delta(st, d);
	} else if (is(type, "message_delta")) {
		const char *sr =
		    json_string_value(json_object_get(json_object_get(d, "delta"), "stop_reason"));
		if (sr) {
			free(st->stop_reason);
			st->stop_reason = xstrdup(sr);
		}
		json_t *u = json_object_get(d, "usage");
		if (json_is_object(u)) {
			if (st->usage == NULL)
				st->usage = json_object();
			json_object_update(st->usage, u);
		}
	} else if (is(type, "message_stop")) {
		st->got_stop = true;
	} else if (is(type, "error")) {
		json_t *e = json_object_get(d, "error");
		json_decref(st->error);
		st->error = json_is_object(e) ? json_incref(e) : json_object();
	}
	/* content_block_stop, ping and event types added later: nothing to do */
out:
	json_decref(d);
	return r;
}

int
agent_stream_to_events(const struct agent_stream *st, const json_t *agent,
                       const json_t *mcp_catalog, const struct agent_policy *pol, json_t **out)
{
	json_t *events = json_array();
	size_t i;
	json_t *blk;
	int r = AL_E_PROTO;

	json_array_foreach(st->blocks, i, blk)
	{
		const char *bt = json_string_value(json_object_get(blk, "type"));
		if (is(bt, "text")) {
			const char *text = json_string_value(json_object_get(blk, "text"));
			if (text == NULL || *text == '\0')
				continue;
			json_array_append_new(
			    events, json_pack("{s:s, s:O, s:[{s:s, s:s}]}", "type", "agent.message",
			                      "id", json_object_get(blk, "event_id"), "content",
			                      "type", "text", "text", text));
		} else if (is(bt, "thinking")) {
			json_array_append_new(events,
			                      json_pack("{s:s, s:O}", "type", "agent.thinking",
			                                "id", json_object_get(blk, "event_id")));
		} else if (is(bt, "tool_use")) {
			const char *js = json_string_value(json_object_get(blk, "json"));
			const char *name = json_string_value(json_object_get(blk, "name"));
			json_t *input = (js && *js) ? json_loads(js, 0, NULL) : json_object();
			if (!json_is_object(input) || name == NULL) {
				json_decref(input);
				goto out;
			}
			struct agent_tool_eval e;
			json_t *ev;
			agent_tool_evaluate(agent, mcp_catalog, pol, name, &e);
			if (e.kind == AGENT_TOOL_CUSTOM) {
				ev = json_pack("{s:s, s:s, s:o}", "type", "agent.custom_tool_use",
				               "name", name, "input", input);
			} else if (e.kind == AGENT_TOOL_MCP) {
				/* The event names the MCP tool as its server lists it. */
				ev = json_pack("{s:s, s:s, s:s, s:o, s:s}", "type",
				               "agent.mcp_tool_use", "name", e.mcp_tool,
				               "mcp_server_name", e.mcp_server, "input", input,
				               "evaluated_permission", e.permission);
				json_object_set(ev, "evaluation", e.evaluation);
			} else {
				ev = json_pack("{s:s, s:s, s:o, s:s}", "type", "agent.tool_use",
				               "name", name, "input", input, "evaluated_permission",
				               e.permission);
				if (e.evaluation)
					json_object_set(ev, "evaluation", e.evaluation);
			}
			json_decref(e.evaluation);
			json_array_append_new(events, ev);
		}
		/* redacted_thinking and unknown block types are not session events */
	}
	*out = events;
	events = NULL;
	r = 0;
out:
	json_decref(events);
	return r;
}
