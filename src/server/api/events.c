/* Session events: the send/list/stream routes. The log is written through
 * store/event_hub.c (append, fan-out to streams) and read through store/event_store.c.
 * See docs/server/events.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "api.h"
#include "audit.h"
#include "auth.h"
#include "err.h"
#include "event_store.h"
#include "events.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "session_store.h"
#include "sse.h"
#include "util.h"
#include "validate.h"
#include "work.h"
#include "xalloc.h"

#define MAX_EVENTS_PER_SEND 100

/* The stored answer to a call: one of answer_type, or for a tool result the error the
 * server gave in the worker's place (answer_rejected_result), which ends the call too. */
static json_t *
find_answer(struct server *s, const char *sid, const char *ref, const char *answer_type)
{
	json_t *ev = events_find_answer(s, sid, ref, answer_type);
	if (ev == NULL && strcmp(answer_type, "user.tool_result") == 0)
		ev = events_find_answer(s, sid, ref, "agent.tool_result");
	return ev;
}

/* ---- session lookup shared by the routes ---- */

/* 404 unless the session exists and the principal may see it. */
static int
load_session(struct api_call *c, const char *sid, struct session_state *row)
{
	int r = AL_E_NOTFOUND;
	if (id_valid(sid, "sesn_") == 0)
		r = session_store_state(c->srv->db, sid, row);
	if (r == 0 && !auth_can_session(c->srv, &c->who, sid, row->environment_id))
		r = AL_E_NOTFOUND;
	if (r != 0)
		api_reply_error(c, 404, "not_found_error", NULL, "session %s not found", sid);
	return r;
}

/* ---- POST /v1/sessions/{id}/events ---- */

static bool
is_content_array(const json_t *v, bool required)
{
	if (v == NULL)
		return !required;
	if (!json_is_array(v))
		return false;
	size_t i;
	json_t *b;
	json_array_foreach(v, i, b)
	{
		if (!json_is_object(b) || !json_is_string(json_object_get(b, "type")))
			return false;
		const char *t = json_string_value(json_object_get(b, "type"));
		if (strcmp(t, "text") == 0 && !json_is_string(json_object_get(b, "text")))
			return false;
	}
	return true;
}

/* Validates one client event; on failure writes a message and returns AL_E_INVAL. The
 * referenced tool-use event must exist in this session and be of the right kind. */
static int
validate_user_event(struct api_call *c, const char *sid, json_t *ev, size_t i, char *msg,
                    size_t msglen, json_t **duplicate)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	*duplicate = NULL;
	if (!json_is_object(ev) || type == NULL) {
		snprintf(msg, msglen, "events[%zu].type: required string", i);
		return AL_E_INVAL;
	}
	if (strcmp(type, "user.message") == 0) {
		json_t *content = json_object_get(ev, "content");
		if (!is_content_array(content, true) || json_array_size(content) == 0) {
			snprintf(msg, msglen,
			         "events[%zu].content: non-empty array of content "
			         "blocks required",
			         i);
			return AL_E_INVAL;
		}
		return 0;
	}
	if (strcmp(type, "user.interrupt") == 0) {
		json_t *t = json_object_get(ev, "session_thread_id");
		if (t && !json_is_string(t) && !json_is_null(t)) {
			snprintf(msg, msglen, "events[%zu].session_thread_id: must be a string", i);
			return AL_E_INVAL;
		}
		return 0;
	}
	if (strcmp(type, "system.message") == 0) {
		if (!is_content_array(json_object_get(ev, "content"), true)) {
			snprintf(msg, msglen, "events[%zu].content: array required", i);
			return AL_E_INVAL;
		}
		return 0;
	}
	if (strcmp(type, "user.define_outcome") == 0) {
		if (!json_is_string(json_object_get(ev, "description"))) {
			snprintf(msg, msglen, "events[%zu].description: required string", i);
			return AL_E_INVAL;
		}
		return 0;
	}
	const char *ref_field, *want_type, *answer_type = type;
	if (strcmp(type, "user.tool_result") == 0 || strcmp(type, "user.tool_confirmation") == 0) {
		ref_field = "tool_use_id";
		want_type = "agent.tool_use";
	} else if (strcmp(type, "user.custom_tool_result") == 0) {
		ref_field = "custom_tool_use_id";
		want_type = "agent.custom_tool_use";
	} else {
		snprintf(msg, msglen, "events[%zu].type: unknown event type '%s'", i, type);
		return AL_E_INVAL;
	}
	const char *ref = json_string_value(json_object_get(ev, ref_field));
	if (ref == NULL) {
		snprintf(msg, msglen, "events[%zu].%s: required string", i, ref_field);
		return AL_E_INVAL;
	}
	if (strcmp(type, "user.tool_confirmation") == 0) {
		const char *res = json_string_value(json_object_get(ev, "result"));
		if (res == NULL || (strcmp(res, "allow") != 0 && strcmp(res, "deny") != 0)) {
			snprintf(msg, msglen, "events[%zu].result: must be 'allow' or 'deny'", i);
			return AL_E_INVAL;
		}
		json_t *dm = json_object_get(ev, "deny_message");
		if (dm && !json_is_string(dm) && !json_is_null(dm)) {
			snprintf(msg, msglen, "events[%zu].deny_message: must be a string", i);
			return AL_E_INVAL;
		}
	} else {
		if (!is_content_array(json_object_get(ev, "content"), false)) {
			snprintf(msg, msglen,
			         "events[%zu].content: must be an array of content "
			         "blocks",
			         i);
			return AL_E_INVAL;
		}
		json_t *ie = json_object_get(ev, "is_error");
		if (ie && !json_is_boolean(ie) && !json_is_null(ie)) {
			snprintf(msg, msglen, "events[%zu].is_error: must be a boolean", i);
			return AL_E_INVAL;
		}
	}
	json_t *use = events_get(c->srv, sid, ref);
	const char *use_type = use ? json_string_value(json_object_get(use, "type")) : NULL;
	bool ok = use_type && (strcmp(use_type, want_type) == 0 ||
	                       (strcmp(want_type, "agent.tool_use") == 0 &&
	                        strcmp(use_type, "agent.mcp_tool_use") == 0 &&
	                        strcmp(type, "user.tool_confirmation") == 0));
	json_decref(use);
	if (!ok) {
		snprintf(msg, msglen, "events[%zu].%s: no %s event %s in this session", i,
		         ref_field, want_type, ref);
		return AL_E_INVAL;
	}
	/* A second answer for the same call is answered with the first, stored once. */
	*duplicate = find_answer(c->srv, sid, ref, answer_type);
	return 0;
}

/* A worker's result the server refuses can never be accepted as sent, but the call ran:
 * the server answers it with an error in the worker's place, so the call ends and no
 * later work item runs it again (its side effects would repeat). Only for a result that
 * names an unanswered agent.tool_use of this session. Returns true when it answered. */
static bool
answer_rejected_result(struct api_call *c, const char *sid, const json_t *ev, const char *why)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *ref = json_string_value(json_object_get(ev, "tool_use_id"));
	bool done = false;
	json_t *use = NULL, *prev = NULL;
	if ((c->who.kind != PRINCIPAL_ENV_KEY && c->who.kind != PRINCIPAL_SESSION_TOKEN) ||
	    type == NULL || strcmp(type, "user.tool_result") != 0 || ref == NULL)
		return false;
	use = events_get(c->srv, sid, ref);
	const char *use_type = use ? json_string_value(json_object_get(use, "type")) : NULL;
	if (use_type == NULL || strcmp(use_type, "agent.tool_use") != 0)
		goto out;
	if ((prev = find_answer(c->srv, sid, ref, "user.tool_result")) != NULL)
		goto out;
	char text[768];
	snprintf(text, sizeof(text),
	         "The tool ran, but the server rejected its result (%s); the output is lost. "
	         "The call is not run again.",
	         why);
	json_t *ans =
	    json_pack("{s:s, s:s, s:[{s:s, s:s}], s:b}", "type", "agent.tool_result", "tool_use_id",
	              ref, "content", "type", "text", "text", text, "is_error", 1);
	if (ans != NULL && events_append(c->srv, sid, ans, true) == 0) {
		log_warn("worker result rejected; the call was answered with an error",
		         "session_id", sid, "tool_use_id", ref, "error", why);
		agent_session_wake(c->srv, sid);
		done = true;
	}
	json_decref(ans);
out:
	json_decref(use);
	json_decref(prev);
	return done;
}

static bool
run_starting(const char *type)
{
	return strcmp(type, "user.message") == 0 || strcmp(type, "user.define_outcome") == 0 ||
	       strcmp(type, "user.tool_confirmation") == 0 || strcmp(type, "user.interrupt") == 0;
}

static bool
processed_on_receipt(const char *type)
{
	return strcmp(type, "user.tool_result") == 0 ||
	       strcmp(type, "user.custom_tool_result") == 0 ||
	       strcmp(type, "user.define_outcome") == 0;
}

static void
send_events(struct api_call *c)
{
	const char *sid = c->params[0];
	struct session_state row;
	char msg[512];
	json_t *out = NULL, *dups = NULL;
	bool any_new = false, starts_run = false;
	static const char *const allowed[] = {"events", NULL};

	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if (load_session(c, sid, &row) != 0)
		return;
	json_t *events = json_object_get(c->body, "events");
	if (!json_is_array(events) || json_array_size(events) == 0 ||
	    json_array_size(events) > MAX_EVENTS_PER_SEND) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "events: array of 1 to %d events required", MAX_EVENTS_PER_SEND);
		return;
	}
	if (row.archived || strcmp(row.status, "terminated") == 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "session %s is %s and accepts no events", sid,
		                row.archived ? "archived" : "terminated");
		return;
	}
	/* Workers may only answer tool calls; they never speak for the user. */
	bool worker = c->who.kind == PRINCIPAL_ENV_KEY || c->who.kind == PRINCIPAL_SESSION_TOKEN;
	dups = json_array();
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev)
	{
		json_t *dup = NULL;
		if (validate_user_event(c, sid, ev, i, msg, sizeof(msg), &dup) != 0) {
			json_decref(dups);
			if (answer_rejected_result(c, sid, ev, msg))
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "%s (the call was answered with an error result)",
				                msg);
			else
				api_reply_error(c, 400, "invalid_request_error", NULL, "%s", msg);
			return;
		}
		const char *type = json_string_value(json_object_get(ev, "type"));
		if (worker && strcmp(type, "user.tool_result") != 0 &&
		    strcmp(type, "user.custom_tool_result") != 0) {
			json_decref(dup);
			json_decref(dups);
			api_reply_error(c, 403, "permission_error", NULL,
			                "events[%zu].type: workers may only send tool results", i);
			return;
		}
		json_array_append_new(dups, dup ? dup : json_null());
	}
	/* Events inside one request must not answer the same call twice either. */
	out = json_array();
	if (db_begin(c->srv->db) != 0)
		goto fail;
	json_array_foreach(events, i, ev)
	{
		json_t *dup = json_array_get(dups, i);
		if (!json_is_null(dup)) {
			json_array_append(out, dup);
			continue;
		}
		const char *type = json_string_value(json_object_get(ev, "type"));
		const char *key = events_answer_key(ev, type);
		if (key) {
			json_t *again = find_answer(c->srv, sid, key, type);
			if (again) {
				json_array_append_new(out, again);
				continue;
			}
		}
		json_t *copy = json_deep_copy(ev);
		/* Ids are the server's: a client-chosen one could collide or carry bytes an
		 * SSE id: line cannot (CR/LF). */
		json_object_del(copy, "id");
		if (events_append_tx(c->srv, sid, copy, processed_on_receipt(type)) != 0) {
			json_decref(copy);
			goto fail;
		}
		json_array_append_new(out, copy);
		any_new = true;
		if (run_starting(type))
			starts_run = true;
	}
	if (starts_run && work_enqueue_tx(c->srv, row.environment_id, sid) != 0)
		goto fail;
	if (db_commit(c->srv->db) != 0)
		goto fail;
	events_publish(c->srv);
	if (starts_run)
		work_kick(c->srv, row.environment_id);
	if (any_new)
		agent_session_wake(c->srv, sid);
	json_decref(dups);
	audit_answers(c, sid, out);
	api_reply_json(c, 200, json_pack("{s:o}", "data", out));
	return;
fail:
	db_rollback(c->srv->db);
	events_discard(c->srv);
	json_decref(dups);
	json_decref(out);
	api_reply_err(c, AL_E_IO, "cannot store events");
}

/* ---- GET /v1/sessions/{id}/events ---- */

/* types[] (repeated keys, or a comma list in one value) as a JSON array for json_each;
 * NULL when absent. Replies 400 itself on a malformed type. */
static int
types_filter(struct api_call *c, char **out)
{
	json_t *arr = json_array();
	*out = NULL;
	for (size_t i = 0; i < c->query.n; i++) {
		if (strcmp(c->query.params[i].key, "types[]") != 0 &&
		    strcmp(c->query.params[i].key, "types") != 0)
			continue;
		char *v = xstrdup(c->query.params[i].value), *save = v, *comma;
		while (v) {
			comma = strchr(v, ',');
			if (comma)
				*comma = '\0';
			for (const char *p = v; *p; p++) {
				if (!((*p >= 'a' && *p <= 'z') || *p == '.' || *p == '_')) {
					free(save);
					json_decref(arr);
					api_reply_error(c, 400, "invalid_request_error", NULL,
					                "types[]: invalid event type");
					return AL_E_INVAL;
				}
			}
			if (*v)
				json_array_append_new(arr, json_string(v));
			v = comma ? comma + 1 : NULL;
		}
		free(save);
	}
	if (json_array_size(arr) > 0)
		*out = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return 0;
}

static void
list_events(struct api_call *c)
{
	const char *sid = c->params[0];
	struct session_state row;
	struct page_req pg;
	struct time_range created;
	char *types = NULL;

	if (load_session(c, sid, &row) != 0 || api_page_parse(c, 1000, 1000, false, &pg) != 0 ||
	    validate_query_created(c, &created) != 0 || types_filter(c, &types) != 0)
		return;
	struct doc_list q = {.created_lo = created.lo,
	                     .created_hi = created.hi,
	                     .has_cursor = pg.has_cursor,
	                     .after_seq = pg.after_seq,
	                     .limit = pg.limit,
	                     .desc = pg.desc};
	struct doc_page events;
	if (event_store_list(c->srv->db, sid, &q, types, &events) != 0) {
		doc_page_free(&events);
		free(types);
		api_reply_err(c, AL_E_IO, "cannot list events");
		return;
	}
	json_t *page = validate_page_json(&events, pg.desc);
	free(types);
	api_reply_json(c, 200, page);
}

/* ---- GET /v1/sessions/{id}/events/stream ---- */

static void
stream_write(void *arg, const char *frame, size_t len)
{
	struct api_call *c = arg;
	http_stream_write(c->http, frame, len);
}

static void
stream_end(void *arg)
{
	api_stream_end(arg);
}

static const struct events_sub_ops stream_ops = {stream_write, stream_end};

static void
stream_closed(struct api_call *c)
{
	events_unsubscribe(c->srv, c->owner);
}

static void
open_stream(struct api_call *c)
{
	const char *sid = c->params[0];
	struct session_state row;
	bool dm = false, dt = false;
	size_t ndeltas = 0;

	if (load_session(c, sid, &row) != 0)
		return;
	/* A stream opened while the server drains would hold the exit until the timeout:
	 * the client is told to come back (to another replica, or after the restart). */
	if (c->srv->draining) {
		api_reply_error(c, 503, "api_error", NULL,
		                "the server is shutting down; reconnect to open the stream");
		return;
	}
	for (size_t i = 0; i < c->query.n; i++) {
		const char *k = c->query.params[i].key;
		if (strcmp(k, "event_deltas[]") != 0 && strcmp(k, "event_deltas") != 0)
			continue;
		char *v = xstrdup(c->query.params[i].value), *save = v, *comma;
		while (v) {
			comma = strchr(v, ',');
			if (comma)
				*comma = '\0';
			if (*v) {
				ndeltas++;
				if (strcmp(v, "agent.message") == 0)
					dm = true;
				else if (strcmp(v, "agent.thinking") == 0)
					dt = true;
				else {
					free(save);
					api_reply_error(c, 400, "invalid_request_error", NULL,
					                "event_deltas[]: '%s' is not one of "
					                "agent.message, agent.thinking",
					                c->query.params[i].value);
					return;
				}
			}
			v = comma ? comma + 1 : NULL;
		}
		free(save);
	}
	if (ndeltas > 100) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "event_deltas[]: at most 100 values");
		return;
	}
	api_hold(c, events_subscribe(c->srv, sid, dm, dt, &stream_ops, c), stream_closed);
	struct http_header h[8];
	size_t n = 0;
	h[n++] = (struct http_header){"content-type", "text/event-stream"};
	h[n++] = (struct http_header){"cache-control", "no-cache"};
	h[n++] = (struct http_header){"x-accel-buffering", "no"};
	n = api_common_headers(c, h, n);
	c->status = 200; /* for the access log */
	http_stream_start(c->http, 200, h, n);
}

const struct api_route events_routes[] = {
    {"POST", "/v1/sessions/{}/events", CREDS_ANY | API_NUL_TEXT, send_events},
    {"GET", "/v1/sessions/{}/events", CREDS_ANY, list_events},
    {"GET", "/v1/sessions/{}/events/stream", CREDS_ANY, open_stream},
    {NULL, NULL, 0, NULL},
};
