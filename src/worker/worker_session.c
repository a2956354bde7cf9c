/* One claimed work item (work-protocol.md §5 steps 3–9, §6–§8): the lease (heartbeats
 * with fencing), the session's event stream and history with de-duplication, serial tool
 * execution with permission holds, result posting with retries, idle and stop rules,
 * and teardown. Everything is a callback on the worker's loop; nothing blocks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "egress.h"
#include "err.h"
#include "log.h"
#include "memsync.h"
#include "sse.h"
#include "util.h"
#include "skill_unpack.h"
#include "worker.h"
#include "xalloc.h"

#define HB_DEFAULT_INTERVAL_MS 30000
#define HB_DEFAULT_TTL_MS 90000
#define CALL_TIMEOUT_MS 120000
#define DRAIN_MS 30000
#define STREAM_IDLE_S 120
#define SSE_MAX_LINE (16u * 1024 * 1024)
#define SSE_MAX_EVENT (32u * 1024 * 1024)

struct wsess {
	struct worker *w;
	char *work_id, *env_id, *session_id;
	char *work_esc, *env_esc, *sess_esc;
	char *cred; /* sessions token or the environment key: secret */
	wsess_end_fn *end_cb;
	enum wsess_end why;
	bool ending, drain_expired, finished, stop_failed;

	/* lease */
	struct httpc_xfer *hb_x;
	struct loop_timer *hb_timer;
	char *last_hb;
	uint64_t ttl_ms, interval_ms, last_ok_ms;
	bool hb_stopped, started;

	/* session and events */
	struct httpc_xfer *get_x, *stream_x, *hist_x, *post_x, *stop_x;
	struct loop_timer *retry_timer, *reconnect_timer, *idle_timer, *drain_timer, *call_timer,
	    *post_timer, *end_timer;
	uint64_t get_backoff_ms, reconnect_ms, post_backoff_ms, post_deadline_ms;
	struct sse_parser sse;
	bool sse_ready, history_done, stream_had_event;
	/* The lookup found the session idle, and no event that moves the idle clock has
	 * been seen since: a session created without a message has no history at all,
	 * so no session.status_idle would ever start the countdown. */
	bool idle_at_claim, turn_seen;
	json_t *live;      /* stream events that arrived before history was merged */
	json_t *processed; /* event ids already handled */
	json_t *answered;  /* tool-use ids with a result */
	json_t *confirm;   /* tool-use id -> "allow" | "deny" */
	json_t *held;      /* tool-use id -> event waiting for a confirmation */
	json_t *queue;     /* tool-use events to run, in order */
	json_t *running;   /* the call being executed or whose result is being posted */
	json_t *result;    /* the user.tool_result event to post */
	/* result stands in for one the server refused */
	bool result_is_stand_in;
	bool tools_open;
	/* the environment's networking (from the secret) and, when the effective policy
	 * lets anything out, the sandbox's proxy (docs/worker/egress.md) */
	struct egress_env net;
	struct egress_proxy *egress;
	/* reports of its decisions (POST …/work/{id}/egress) */
	struct httpc_xfer *egress_x;
	struct loop_timer *egress_timer;
	json_t *egress_batch; /* in flight */
	bool egress_off;      /* the server does not take them: not asked again */
	bool gone;            /* the session ended for good: its workspace goes with the item */
	/* the agent's skills, unpacked into <workspace>/skills/<name>/ before the event
	 * stream opens (docs/worker/skills.md) */
	json_t *skills;   /* the agent's skills[] still to fetch */
	size_t skill_i;   /* the one being fetched */
	char *skill_ver;  /* its resolved version id */
	char *skill_name; /* and name */
	struct buf skill_tar;
	bool skill_tar_over; /* larger than SKILL_UNPACK_MAX_BYTES */
	struct httpc_xfer *skill_x;
	json_t *skill_dirs; /* unpacked directories, removed at teardown */
	/* the session's memory stores, copied into <workspace>/memory/<name>/ after the
	 * skills and synced back (docs/worker/memory.md) */
	struct memsync *mem;
	json_t *mem_res; /* the session's resources[], until the download starts */
	bool mem_final;
	struct httpc_xfer *secrets_x; /* GET …/egress_secrets, before the stream */
	json_t *sess_doc;             /* the session object, kept while the secrets come */
};

static void finish(struct wsess *s, enum wsess_end why);
static void pump(struct wsess *s);
static void open_stream(struct wsess *s);
static void teardown_continue(struct wsess *s);
static void egress_report(struct wsess *s);
static void beat(struct wsess *s);
static void post_result(struct wsess *s);
static void get_session(struct wsess *s);
static void get_secrets(struct wsess *s);
static int session_tools_open(struct wsess *s);
static void skills_start(struct wsess *s, json_t *session);
static void skills_cleanup(struct wsess *s);
static void memory_start(struct wsess *s);

static const char *
end_name(enum wsess_end why)
{
	switch (why) {
	case WSESS_CLEAN:
		return "done";
	case WSESS_STOPPED:
		return "stopped by server";
	case WSESS_LEASE_LOST:
		return "lease lost";
	case WSESS_REJECTED:
		return "rejected";
	case WSESS_SIGNAL:
		return "signal";
	default:
		return "failed";
	}
}

static char *
path_of(struct wsess *s, const char *fmt_tail)
{
	return xasprintf("/v1/environments/%s/work/%s/%s", s->env_esc, s->work_esc, fmt_tail);
}

/* ---- lease ---- */

static void
on_hb_timer(struct loop *l, void *arg)
{
	struct wsess *s = arg;
	s->hb_timer = NULL;
	beat(s);
}

static void
on_hb_done(void *arg, int status, int err, json_t *body)
{
	struct wsess *s = arg;
	s->hb_x = NULL;
	if (s->hb_stopped)
		return;
	uint64_t now = now_mono_ms();
	if (status >= 200 && status < 300 && json_is_object(body)) {
		const char *last = json_string_value(json_object_get(body, "last_heartbeat"));
		json_int_t ttl = json_integer_value(json_object_get(body, "ttl_seconds"));
		const char *state = json_string_value(json_object_get(body, "state"));
		json_t *ext = json_object_get(body, "lease_extended");
		s->last_ok_ms = now;
		if (last != NULL) {
			free(s->last_hb);
			s->last_hb = xstrdup(last);
		}
		if (ttl > 0 && ttl < 86400) {
			s->ttl_ms = (uint64_t)ttl * 1000;
			uint64_t half = s->ttl_ms / 2;
			s->interval_ms =
			    half < HB_DEFAULT_INTERVAL_MS ? half : HB_DEFAULT_INTERVAL_MS;
			if (s->interval_ms < 1000)
				s->interval_ms = 1000;
		}
		if (state != NULL &&
		    (strcmp(state, "stopping") == 0 || strcmp(state, "stopped") == 0)) {
			log_info("heartbeat signals shutdown", "work_id", s->work_id, "state",
			         state);
			finish(s, WSESS_STOPPED);
		} else if (json_is_false(ext)) {
			log_warn("lease not extended, shutting down", "work_id", s->work_id);
			finish(s, WSESS_STOPPED);
		} else if (!s->started) {
			s->started = true;
			log_info("lease held", "work_id", s->work_id, "session_id", s->session_id);
			if (session_tools_open(s) != 0) {
				log_error("cannot open the workdir for tools", "workdir",
				          s->w->cfg.workdir);
				finish(s, WSESS_FAILED);
			} else {
				s->tools_open = true;
				get_session(s);
			}
		}
	} else if (status == 412) {
		const char *cs = json_string_value(json_object_get(
		    json_object_get(json_object_get(json_object_get(body, "error"), "details"),
		                    "current_state"),
		    "state"));
		log_error("lease lost: heartbeat precondition failed", "work_id", s->work_id,
		          "server_state", cs);
		s->hb_stopped = true;
		finish(s, WSESS_LEASE_LOST);
		return;
	} else if (wapi_fatal(status, err)) {
		char st[24];
		wapi_status_str(status, st, sizeof(st));
		log_error("permanent heartbeat failure", "work_id", s->work_id, "status", st,
		          "error", wapi_error_message(body));
		s->hb_stopped = true;
		finish(s, WSESS_REJECTED);
		return;
	} else if (now - s->last_ok_ms > s->ttl_ms) {
		log_error("lease assumed lost: no successful heartbeat in ttl", "work_id",
		          s->work_id);
		s->hb_stopped = true;
		finish(s, WSESS_LEASE_LOST);
		return;
	} else {
		log_warn("transient heartbeat failure", "work_id", s->work_id, "error",
		         wapi_error_text(err, body));
	}
	if (!s->hb_stopped && s->hb_timer == NULL)
		s->hb_timer = loop_timer_add(s->w->loop, s->interval_ms, on_hb_timer, s);
}

static void
beat(struct wsess *s)
{
	char *esc = httpc_escape(s->last_hb ? s->last_hb : "NO_HEARTBEAT");
	char *tail = xasprintf("heartbeat?expected_last_heartbeat=%s", esc);
	char *path = path_of(s, tail);
	struct wapi_req r = {
	    .cred = s->cred,
	    .method = "POST",
	    .path = path,
	    .timeout_ms = (unsigned)s->interval_ms,
	    .done = on_hb_done,
	    .arg = s,
	};
	if (wapi_call(s->w, &r, &s->hb_x) != 0) {
		s->hb_x = NULL;
		s->hb_timer = loop_timer_add(s->w->loop, s->interval_ms, on_hb_timer, s);
	}
	free(esc);
	free(tail);
	free(path);
}

static void
stop_heartbeats(struct wsess *s)
{
	s->hb_stopped = true;
	loop_timer_cancel(s->w->loop, s->hb_timer);
	s->hb_timer = NULL;
	httpc_cancel(s->hb_x);
	s->hb_x = NULL;
}

/* ---- idle ---- */

static void
on_idle(struct loop *l, void *arg)
{
	struct wsess *s = arg;
	s->idle_timer = NULL;
	log_info("session idle, releasing the item", "session_id", s->session_id);
	finish(s, WSESS_CLEAN);
}

static void
idle_disarm(struct wsess *s)
{
	loop_timer_cancel(s->w->loop, s->idle_timer);
	s->idle_timer = NULL;
}

static void
idle_arm(struct wsess *s)
{
	idle_disarm(s);
	/* held calls wait for a person: the session is not idle in the worker's sense */
	if (s->w->cfg.max_idle_ms == 0 || json_object_size(s->held) > 0 ||
	    json_array_size(s->queue) > 0 || s->running != NULL)
		return;
	s->idle_timer = loop_timer_add(s->w->loop, s->w->cfg.max_idle_ms, on_idle, s);
}

/* ---- events ---- */

static void
drop_thread_calls(struct wsess *s, const char *thread)
{
	for (size_t i = json_array_size(s->queue); i-- > 0;) {
		const char *t = json_string_value(
		    json_object_get(json_array_get(s->queue, i), "session_thread_id"));
		if (t != NULL && strcmp(t, thread) == 0)
			json_array_remove(s->queue, i);
	}
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(s->held, tmp, k, v)
	{
		const char *t = json_string_value(json_object_get(v, "session_thread_id"));
		if (t != NULL && strcmp(t, thread) == 0)
			json_object_del(s->held, k);
	}
}

static void
handle_tool_use(struct wsess *s, json_t *ev, const char *id, bool custom)
{
	const char *name = json_string_value(json_object_get(ev, "name"));
	if (json_object_get(s->answered, id) != NULL || name == NULL)
		return;
	/* custom tools are the app's; unknown names belong to another client (split client) */
	if (custom || !wexec_known(name)) {
		log_debug("leaving a tool call for another client", "tool_use_id", id, "name",
		          name);
		return;
	}
	const char *perm = json_string_value(json_object_get(ev, "evaluated_permission"));
	if (json_object_get(ev, "evaluated_permission") == NULL ||
	    json_is_null(json_object_get(ev, "evaluated_permission")) ||
	    (perm != NULL && strcmp(perm, "allow") == 0)) {
		json_array_append(s->queue, ev);
		return;
	}
	if (perm != NULL && strcmp(perm, "deny") == 0)
		return; /* the control plane records the denial */
	const char *c = json_string_value(json_object_get(s->confirm, id));
	if (c != NULL) {
		if (strcmp(c, "allow") == 0)
			json_array_append(s->queue, ev);
		return;
	}
	json_object_set(s->held, id, ev);
}

static void
handle_event(struct wsess *s, json_t *ev)
{
	const char *id = json_string_value(json_object_get(ev, "id"));
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (type == NULL)
		return;
	if (id != NULL) {
		if (json_object_get(s->processed, id) != NULL)
			return;
		json_object_set_new(s->processed, id, json_true());
	}
	/* the two events that leave the idle clock alone (work-protocol.md §8) */
	if (strcmp(type, "user.tool_confirmation") != 0 &&
	    strcmp(type, "session.thread_status_terminated") != 0)
		s->turn_seen = true;
	if (strcmp(type, "agent.tool_use") == 0 || strcmp(type, "agent.custom_tool_use") == 0) {
		idle_disarm(s);
		if (id != NULL)
			handle_tool_use(s, ev, id, type[6] == 'c');
	} else if (strcmp(type, "user.tool_confirmation") == 0) {
		const char *tid = json_string_value(json_object_get(ev, "tool_use_id"));
		const char *res = json_string_value(json_object_get(ev, "result"));
		if (tid == NULL || res == NULL)
			return;
		json_object_set_new(s->confirm, tid, json_string(res));
		json_t *held = json_object_get(s->held, tid);
		if (held != NULL) {
			if (strcmp(res, "allow") == 0)
				json_array_append(s->queue, held);
			json_object_del(s->held, tid);
		}
	} else if (strcmp(type, "user.tool_result") == 0 ||
	           strcmp(type, "user.custom_tool_result") == 0) {
		idle_disarm(s);
		const char *tid = json_string_value(
		    json_object_get(ev, type[5] == 't' ? "tool_use_id" : "custom_tool_use_id"));
		if (tid != NULL) {
			json_object_set_new(s->answered, tid, json_true());
			json_object_del(s->held, tid);
		}
	} else if (strcmp(type, "session.status_idle") == 0) {
		const char *why =
		    json_string_value(json_object_get(json_object_get(ev, "stop_reason"), "type"));
		if (why != NULL && strcmp(why, "requires_action") == 0)
			idle_disarm(s);
		else
			idle_arm(s);
	} else if (strcmp(type, "session.status_terminated") == 0 ||
	           strcmp(type, "session.deleted") == 0) {
		log_info("session ended", "session_id", s->session_id, "event", type);
		s->gone = true;
		finish(s, WSESS_CLEAN);
	} else if (strcmp(type, "session.thread_status_terminated") == 0) {
		const char *t = json_string_value(json_object_get(ev, "session_thread_id"));
		if (t != NULL)
			drop_thread_calls(s, t);
	} else {
		idle_disarm(s);
	}
}

/* ---- execution and results ---- */

static void
on_call_timeout(struct loop *l, void *arg)
{
	struct wsess *s = arg;
	s->call_timer = NULL;
	log_warn("tool call over the runner timeout, cancelling", "tool_use_id",
	         json_string_value(json_object_get(s->running, "id")));
	wexec_cancel(s->w->exec);
}

static void
on_exec_done(void *arg, json_t *content, bool is_error)
{
	struct wsess *s = arg;
	loop_timer_cancel(s->w->loop, s->call_timer);
	s->call_timer = NULL;
	memsync_kick(s->mem); /* what the call wrote goes back to the stores */
	if (!json_is_array(content)) {
		json_decref(content);
		content = json_pack("[{s:s,s:s}]", "type", "text", "text", "(no output)");
	}
	/* an empty text block would be rejected by the API: the SDK sends "(no output)" */
	size_t i;
	json_t *blk;
	json_array_foreach(content, i, blk)
	{
		const char *t = json_string_value(json_object_get(blk, "text"));
		if (t != NULL && t[0] == '\0')
			json_object_set_new(blk, "text", json_string("(no output)"));
	}
	if (json_array_size(content) == 0)
		json_array_append_new(
		    content, json_pack("{s:s,s:s}", "type", "text", "text", "(no output)"));
	const char *id = json_string_value(json_object_get(s->running, "id"));
	s->result = json_pack("{s:s,s:s,s:b,s:o}", "type", "user.tool_result", "tool_use_id", id,
	                      "is_error", is_error, "content", content);
	s->result_is_stand_in = false;
	if (s->why == WSESS_LEASE_LOST && s->ending) {
		/* another worker owns the session now: our result must not land */
		json_decref(s->result);
		s->result = NULL;
		json_decref(s->running);
		s->running = NULL;
		teardown_continue(s);
		return;
	}
	s->post_backoff_ms = 1000;
	s->post_deadline_ms = now_mono_ms() + s->ttl_ms;
	post_result(s);
}

static void
on_post_timer(struct loop *l, void *arg)
{
	struct wsess *s = arg;
	s->post_timer = NULL;
	post_result(s);
}

static void
on_post_done(void *arg, int status, int err, json_t *body)
{
	struct wsess *s = arg;
	s->post_x = NULL;
	const char *id = json_string_value(json_object_get(s->running, "id"));
	if (status >= 200 && status < 300) {
		log_info("tool result posted", "session_id", s->session_id, "tool_use_id", id);
		json_object_set_new(s->answered, id, json_true());
		json_decref(s->result);
		s->result = NULL;
		json_decref(s->running);
		s->running = NULL;
		if (s->ending)
			teardown_continue(s);
		else
			pump(s);
		return;
	}
	char st[24];
	wapi_status_str(status, st, sizeof(st));
	bool give_up = s->drain_expired || (s->ending && s->why == WSESS_LEASE_LOST);
	if (!give_up && wapi_retryable(status, err) && now_mono_ms() < s->post_deadline_ms) {
		uint64_t d = s->post_backoff_ms;
		s->post_backoff_ms = d * 2 > 30000 ? 30000 : d * 2;
		log_warn("posting tool result failed, retrying", "tool_use_id", id, "status", st,
		         "error", wapi_error_text(err, body));
		s->post_timer = loop_timer_add(s->w->loop, wapi_jitter(d / 2, d), on_post_timer, s);
		return;
	}
	if (!give_up && !s->result_is_stand_in &&
	    (status == 400 || status == 413 || status == 422)) {
		/* The server will never take this result, but the call ran: answer it with an
		 * error instead, or the next work item for the session would run it again
		 * (its side effects with it). */
		log_warn("tool result refused, answering the call with an error", "tool_use_id", id,
		         "status", st, "error", wapi_error_text(err, body));
		char text[200];
		/* the server's message goes to the log only: cut short it could end inside a
		 * UTF-8 sequence, which JSON cannot carry */
		snprintf(text, sizeof(text),
		         "The tool ran, but the server rejected its result (HTTP %d); the output "
		         "is lost. The call is not run again.",
		         status);
		json_decref(s->result);
		s->result = json_pack("{s:s,s:s,s:b,s:[{s:s,s:s}]}", "type", "user.tool_result",
		                      "tool_use_id", id, "is_error", 1, "content", "type", "text",
		                      "text", text);
		s->result_is_stand_in = true;
		s->post_backoff_ms = 1000;
		post_result(s);
		return;
	}
	log_error("posting tool result failed", "tool_use_id", id, "status", st, "error",
	          wapi_error_text(err, body));
	json_decref(s->result);
	s->result = NULL;
	json_decref(s->running);
	s->running = NULL;
	finish(s, wapi_fatal(status, err) ? WSESS_REJECTED : WSESS_FAILED);
	teardown_continue(s);
}

static void
post_result(struct wsess *s)
{
	json_t *body = json_pack("{s:[O]}", "events", s->result);
	char *path = xasprintf("/v1/sessions/%s/events", s->sess_esc);
	struct wapi_req r = {
	    .cred = s->cred,
	    .method = "POST",
	    .path = path,
	    .body = body,
	    .timeout_ms = 30000,
	    .done = on_post_done,
	    .arg = s,
	};
	if (wapi_call(s->w, &r, &s->post_x) != 0) {
		s->post_x = NULL;
		s->post_timer = loop_timer_add(s->w->loop, 1000, on_post_timer, s);
	}
	json_decref(body);
	free(path);
}

static void
pump(struct wsess *s)
{
	if (!s->history_done || s->ending || s->running != NULL || !s->tools_open)
		return;
	while (json_array_size(s->queue) > 0) {
		json_t *ev = json_incref(json_array_get(s->queue, 0));
		json_array_remove(s->queue, 0);
		const char *id = json_string_value(json_object_get(ev, "id"));
		if (json_object_get(s->answered, id) != NULL) {
			json_decref(ev);
			continue;
		}
		const char *name = json_string_value(json_object_get(ev, "name"));
		s->running = ev;
		idle_disarm(s);
		log_info("running tool", "session_id", s->session_id, "tool_use_id", id, "name",
		         name);
		if (wexec_run(s->w->exec, name, json_object_get(ev, "input"), on_exec_done, s) !=
		    0) {
			log_error("tool executor busy", "tool_use_id", id);
			s->running = NULL;
			json_decref(ev);
			finish(s, WSESS_FAILED);
			return;
		}
		s->call_timer = loop_timer_add(s->w->loop, CALL_TIMEOUT_MS, on_call_timeout, s);
		return;
	}
}

/* ---- stream and history ---- */

static void list_page(struct wsess *s, const char *cursor);

static void
on_list_retry(struct loop *l, void *arg)
{
	struct wsess *s = arg;
	s->retry_timer = NULL;
	list_page(s, NULL);
}

static void
history_merged(struct wsess *s)
{
	s->history_done = true;
	json_t *live = s->live;
	s->live = json_array();
	size_t i;
	json_t *ev;
	json_array_foreach(live, i, ev)
	{
		if (s->ending)
			break;
		handle_event(s, ev);
	}
	json_decref(live);
	/* Idle when claimed and nothing since (no history, or only neutral events): the
	 * countdown starts now, as it would have on the idle event. A message that
	 * arrived after the lookup is in the history or on the stream and disarms it. */
	if (!s->ending && s->idle_at_claim && !s->turn_seen && s->idle_timer == NULL &&
	    s->w->cfg.max_idle_ms > 0) {
		log_info("session idle when claimed, releasing it after --max-idle", "session_id",
		         s->session_id);
		idle_arm(s);
	}
	pump(s);
}

static void
on_list_done(void *arg, int status, int err, json_t *body)
{
	struct wsess *s = arg;
	s->hist_x = NULL;
	if (s->ending)
		return;
	if (status >= 200 && status < 300 && json_is_array(json_object_get(body, "data"))) {
		size_t i;
		json_t *ev;
		json_array_foreach(json_object_get(body, "data"), i, ev)
		{
			if (s->ending)
				return;
			if (json_is_object(ev))
				handle_event(s, ev);
		}
		const char *next = json_string_value(json_object_get(body, "next_page"));
		if (next != NULL && next[0] != '\0')
			list_page(s, next);
		else
			history_merged(s);
		return;
	}
	if (wapi_fatal(status, err)) {
		log_error("reading session history failed", "session_id", s->session_id, "error",
		          wapi_error_message(body));
		finish(s, WSESS_REJECTED);
		return;
	}
	/* restart the whole history read: the ids seen so far make it idempotent */
	s->retry_timer = loop_timer_add(s->w->loop, 1000, on_list_retry, s);
}

static void
list_page(struct wsess *s, const char *cursor)
{
	char *esc = cursor ? httpc_escape(cursor) : NULL;
	char *path = xasprintf("/v1/sessions/%s/events?limit=1000%s%s", s->sess_esc,
	                       esc ? "&page=" : "", esc ? esc : "");
	struct wapi_req r = {
	    .cred = s->cred,
	    .method = "GET",
	    .path = path,
	    .timeout_ms = 30000,
	    .done = on_list_done,
	    .arg = s,
	};
	if (wapi_call(s->w, &r, &s->hist_x) != 0) {
		s->hist_x = NULL;
		s->retry_timer = loop_timer_add(s->w->loop, 1000, on_list_retry, s);
	}
	free(esc);
	free(path);
}

static int
on_sse_event(const struct sse_event *e, void *arg)
{
	struct wsess *s = arg;
	if (e->event.len == 0 || str_eq(e->event, "ping"))
		return 0; /* the SDK skips frames without an event name */
	if (str_eq(e->event, "error")) {
		json_t *j = json_loadb(e->data.p, e->data.len, 0, NULL);
		log_error("event stream error", "session_id", s->session_id, "error",
		          wapi_error_message(j));
		json_decref(j);
		return AL_E_PROTO;
	}
	json_t *ev = json_loadb(e->data.p, e->data.len, 0, NULL);
	if (!json_is_object(ev)) {
		log_warn("ignoring a stream frame that is not a JSON object", "session_id",
		         s->session_id);
		json_decref(ev);
		return 0;
	}
	s->stream_had_event = true;
	if (s->history_done) {
		handle_event(s, ev);
		pump(s);
	} else {
		json_array_append(s->live, ev);
	}
	json_decref(ev);
	return 0;
}

static int
on_stream_head(struct httpc_xfer *x, int status, void *arg)
{
	struct wsess *s = arg;
	if (status >= 200 && status < 300 && !s->ending)
		list_page(s, NULL); /* stream first, then history (api.md §5) */
	return 0;
}

static int
on_stream_data(struct httpc_xfer *x, const char *p, size_t n, void *arg)
{
	struct wsess *s = arg;
	if (s->ending)
		return AL_E_CLOSED;
	return sse_parser_feed(&s->sse, p, n);
}

static void
on_reconnect(struct loop *l, void *arg)
{
	struct wsess *s = arg;
	s->reconnect_timer = NULL;
	open_stream(s);
}

static void
on_stream_done(void *arg, int status, int err, json_t *body)
{
	struct wsess *s = arg;
	s->stream_x = NULL;
	if (s->ending)
		return;
	httpc_cancel(s->hist_x);
	s->hist_x = NULL;
	loop_timer_cancel(s->w->loop, s->retry_timer);
	s->retry_timer = NULL;
	if (err == AL_E_PROTO) {
		finish(s, WSESS_FAILED);
		return;
	}
	if (wapi_fatal(status, err)) {
		char st[24];
		wapi_status_str(status, st, sizeof(st));
		log_error("event stream refused", "session_id", s->session_id, "status", st,
		          "error", wapi_error_message(body));
		finish(s, WSESS_REJECTED);
		return;
	}
	if (s->stream_had_event)
		s->reconnect_ms = 500;
	uint64_t d = s->reconnect_ms;
	s->reconnect_ms = d * 2 > 10000 ? 10000 : d * 2;
	log_info("event stream ended, reconnecting", "session_id", s->session_id, "error",
	         err ? wapi_error_text(err, NULL) : "");
	s->reconnect_timer = loop_timer_add(s->w->loop, d, on_reconnect, s);
}

/* The session's tools, and its network when the environment's networking and the
 * operator's --egress-policy let anything out; otherwise none, as before. */
static int
session_tools_open(struct wsess *s)
{
	const struct egress_operator *op = s->w->cfg.egress_op;
	bool want = egress_wanted(op, &s->net);
	int lfd = -1, r;
	if (s->net.type != EGRESS_ENV_NONE && op == NULL)
		log_info("the environment asks for networking; this worker has no --egress-policy, "
		         "so the sandbox has no network",
		         "session_id", s->session_id);
	if ((r = wexec_session_open(s->w->exec, s->w->cfg.workdir, s->session_id,
	                            want ? &lfd : NULL)) != 0)
		return r;
	if (!want)
		return 0;
	if (lfd < 0) {
		log_warn("networking is not enforced without a sandbox (--unsandboxed)",
		         "session_id", s->session_id);
		return 0;
	}
	if ((r = egress_proxy_new(s->w->loop, lfd, op, &s->net, s->session_id, &s->egress)) != 0)
		return r;
	egress_proxy_set_ca(s->egress, wexec_egress_ca());
	log_info("egress proxy ready", "session_id", s->session_id, "policy", op->file);
	egress_report(s);
	return 0;
}

/* ---- egress reports ---- */

#define EGRESS_REPORT_MS 1000
#define EGRESS_REPORT_BATCH 256

static void egress_report(struct wsess *s);

static void
on_egress_timer(struct loop *l, void *arg)
{
	struct wsess *s = arg;
	s->egress_timer = NULL;
	egress_report(s);
}

static void
on_egress_done(void *arg, int status, int err, json_t *body)
{
	struct wsess *s = arg;
	s->egress_x = NULL;
	if (status >= 200 && status < 300) {
		json_decref(s->egress_batch);
	} else if (wapi_fatal(status, err)) {
		/* a server without the route (Anthropic's API) or a batch it refuses: the
		 * decisions stay in the worker's own log */
		char st[24];
		wapi_status_str(status, st, sizeof(st));
		log_warn("the server does not take egress reports; they stay in this log only",
		         "work_id", s->work_id, "status", st, "error", wapi_error_message(body));
		json_decref(s->egress_batch);
		s->egress_off = true;
	} else if (s->ending) {
		/* one try at teardown: a server that is away must not hold the release */
		log_warn("egress decisions not reported at teardown; they stay in this log only",
		         "work_id", s->work_id, "error", wapi_error_text(err, body));
		json_decref(s->egress_batch);
		s->egress_off = true;
	} else {
		egress_proxy_untake(s->egress, s->egress_batch);
		json_decref(s->egress_batch);
	}
	s->egress_batch = NULL;
	if (s->ending)
		teardown_continue(s);
	else
		egress_report(s);
}

/* Sends what the proxy decided since the last report (one batch in flight), then every
 * EGRESS_REPORT_MS while the session has a proxy. */
static void
egress_report(struct wsess *s)
{
	if (s->egress == NULL || s->egress_x != NULL)
		return;
	json_t *batch = s->egress_off ? NULL : egress_proxy_take(s->egress, EGRESS_REPORT_BATCH);
	if (batch != NULL) {
		json_t *body = json_pack("{s:O}", "decisions", batch);
		char *path = path_of(s, "egress");
		struct wapi_req r = {
		    .cred = s->cred,
		    .method = "POST",
		    .path = path,
		    .body = body,
		    .timeout_ms = 10000,
		    .done = on_egress_done,
		    .arg = s,
		};
		s->egress_batch = batch;
		if (wapi_call(s->w, &r, &s->egress_x) != 0) {
			s->egress_x = NULL;
			egress_proxy_untake(s->egress, batch);
			json_decref(batch);
			s->egress_batch = NULL;
		}
		json_decref(body);
		free(path);
		if (s->egress_x != NULL)
			return;
	}
	if (!s->ending && s->egress_timer == NULL)
		s->egress_timer = loop_timer_add(s->w->loop, EGRESS_REPORT_MS, on_egress_timer, s);
}

static void
open_stream(struct wsess *s)
{
	if (s->sse_ready)
		sse_parser_free(&s->sse);
	sse_parser_init(&s->sse, SSE_MAX_LINE, SSE_MAX_EVENT, on_sse_event, s);
	s->sse_ready = true;
	s->history_done = false;
	s->stream_had_event = false;
	json_array_clear(s->live);
	char *path = xasprintf("/v1/sessions/%s/events/stream", s->sess_esc);
	struct wapi_req r = {
	    .cred = s->cred,
	    .method = "GET",
	    .path = path,
	    .idle_timeout_s = STREAM_IDLE_S,
	    .on_head = on_stream_head,
	    .on_data = on_stream_data,
	    .done = on_stream_done,
	    .arg = s,
	};
	if (wapi_call(s->w, &r, &s->stream_x) != 0) {
		s->stream_x = NULL;
		s->reconnect_timer = loop_timer_add(s->w->loop, 1000, on_reconnect, s);
	}
	free(path);
}

/* ---- skills (before the stream) ---- */

/* Each skill of the session's agent: GET …/versions/{v} for its id and name, then its
 * content, unpacked into <workspace>/skills/<name>/ as the SDK's worker does (one that
 * fails is logged and skipped). The stream opens when the last one is done, so no tool
 * call runs before the skills are there. */
static void skill_next(struct wsess *s);

static void
skill_skip(struct wsess *s, const char *why, const char *detail)
{
	const char *id =
	    json_string_value(json_object_get(json_array_get(s->skills, s->skill_i), "skill_id"));
	log_warn("failed to download skill", "session_id", s->session_id, "skill_id", id ? id : "-",
	         "error", why, "detail", detail ? detail : "");
	s->skill_i++;
	skill_next(s);
}

static int
on_skill_data(struct httpc_xfer *x, const char *p, size_t n, void *arg)
{
	struct wsess *s = arg;
	if (buf_add(&s->skill_tar, p, n) != 0) {
		s->skill_tar_over = true;
		return AL_E_TOOBIG;
	}
	return 0;
}

static void
on_skill_content(void *arg, int status, int err, json_t *body)
{
	struct wsess *s = arg;
	const char *why = NULL;
	s->skill_x = NULL;
	if (s->ending)
		return;
	if (status < 200 || status >= 300) {
		skill_skip(
		    s, s->skill_tar_over ? "skill archive too large" : wapi_error_text(err, body),
		    NULL);
		return;
	}
	/* basename of the version's name, as the SDK: empty, "." or ".." fall back to the id */
	const char *id =
	    json_string_value(json_object_get(json_array_get(s->skills, s->skill_i), "skill_id"));
	const char *base = strrchr(s->skill_name, '/');
	base = base ? base + 1 : s->skill_name;
	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		base = id;
	char *root = xasprintf("%s/skills", wexec_workspace(s->w->exec));
	char *dest = xasprintf("%s/%s", root, base);
	if (mkdir(root, 0755) != 0 && errno != EEXIST) {
		free(root);
		free(dest);
		skill_skip(s, "cannot create the skills directory", strerror(errno));
		return;
	}
	skill_remove_tree(dest); /* what an earlier item of this session left */
	int r =
	    skill_unpack(s->skill_tar.data ? s->skill_tar.data : "", s->skill_tar.len, dest, &why);
	if (r != 0) {
		skill_remove_tree(dest);
		free(root);
		free(dest);
		skill_skip(s, why ? why : al_strerror(r), NULL);
		return;
	}
	log_info("downloaded skill", "session_id", s->session_id, "skill_id", id, "version",
	         s->skill_ver, "dest", dest);
	json_array_append_new(s->skill_dirs, json_string(dest));
	free(root);
	free(dest);
	s->skill_i++;
	skill_next(s);
}

static void
on_skill_version(void *arg, int status, int err, json_t *body)
{
	struct wsess *s = arg;
	s->skill_x = NULL;
	if (s->ending)
		return;
	const char *vid = json_string_value(json_object_get(body, "id"));
	const char *name = json_string_value(json_object_get(body, "name"));
	if (status < 200 || status >= 300 || vid == NULL || name == NULL) {
		skill_skip(s, wapi_error_text(err, body), wapi_error_message(body));
		return;
	}
	free(s->skill_ver);
	free(s->skill_name);
	s->skill_ver = xstrdup(vid);
	s->skill_name = xstrdup(name);
	const char *id =
	    json_string_value(json_object_get(json_array_get(s->skills, s->skill_i), "skill_id"));
	char *eid = httpc_escape(id), *ever = httpc_escape(vid);
	char *path = xasprintf("/v1/skills/%s/versions/%s/content", eid, ever);
	buf_free(&s->skill_tar);
	buf_init(&s->skill_tar, SKILL_UNPACK_MAX_BYTES);
	s->skill_tar_over = false;
	struct wapi_req r = {.cred = s->cred,
	                     .method = "GET",
	                     .path = path,
	                     .timeout_ms = 120000,
	                     .on_data = on_skill_data,
	                     .done = on_skill_content,
	                     .arg = s};
	if (wapi_call(s->w, &r, &s->skill_x) != 0) {
		s->skill_x = NULL;
		free(eid);
		free(ever);
		free(path);
		skill_skip(s, "cannot start the download", NULL);
		return;
	}
	free(eid);
	free(ever);
	free(path);
}

static void
skill_next(struct wsess *s)
{
	if (s->ending)
		return;
	if (s->skill_i >= json_array_size(s->skills) || wexec_workspace(s->w->exec) == NULL) {
		buf_free(&s->skill_tar);
		memory_start(s);
		return;
	}
	json_t *sk = json_array_get(s->skills, s->skill_i);
	const char *id = json_string_value(json_object_get(sk, "skill_id"));
	const char *ver = json_string_value(json_object_get(sk, "version"));
	if (id == NULL) {
		s->skill_i++;
		skill_next(s);
		return;
	}
	char *eid = httpc_escape(id), *ever = httpc_escape(ver ? ver : "latest");
	char *path = xasprintf("/v1/skills/%s/versions/%s", eid, ever);
	struct wapi_req r = {.cred = s->cred,
	                     .method = "GET",
	                     .path = path,
	                     .timeout_ms = 30000,
	                     .done = on_skill_version,
	                     .arg = s};
	int rc = wapi_call(s->w, &r, &s->skill_x);
	free(eid);
	free(ever);
	free(path);
	if (rc != 0) {
		s->skill_x = NULL;
		skill_skip(s, "cannot start the request", NULL);
	}
}

static void
skills_start(struct wsess *s, json_t *session)
{
	json_decref(s->skills);
	s->skills = json_incref(json_object_get(json_object_get(session, "agent"), "skills"));
	json_decref(s->mem_res);
	s->mem_res = json_incref(json_object_get(session, "resources"));
	if (!json_is_array(s->skills)) {
		json_decref(s->skills);
		s->skills = json_array();
	}
	if (s->skill_dirs == NULL)
		s->skill_dirs = json_array();
	s->skill_i = 0;
	skill_next(s);
}

/* The SDK's worker removes the skills it unpacked when the item ends. */
static void
skills_cleanup(struct wsess *s)
{
	for (size_t i = 0; i < json_array_size(s->skill_dirs); i++) {
		const char *d = json_string_value(json_array_get(s->skill_dirs, i));
		if (d && skill_remove_tree(d) != 0)
			log_warn("cannot remove a skill directory", "dir", d);
	}
	json_array_clear(s->skill_dirs);
}

/* ---- memory stores (after the skills, before the stream) ---- */

/* A store that cannot be copied fails the item, logged: the SDK's worker would leave the
 * session waiting with no word (work-protocol.md §11). */
static void
on_memory_ready(void *arg, int err)
{
	struct wsess *s = arg;
	if (s->ending)
		return;
	if (err != 0) {
		log_error("cannot download the session's memory stores; stopping the item",
		          "session_id", s->session_id, "error", al_strerror(err));
		finish(s, WSESS_FAILED);
		return;
	}
	/* write and edit refuse a read_only store's copy, as the SDK's tools do (the
	 * sandbox's own layer is the sealed copy: docs/worker/memory.md) */
	for (size_t i = 0; i < MEMSYNC_MAX_STORES; i++) {
		char *d = memsync_read_only_dir(s->mem, i);
		int r = d ? wexec_read_only_dir(s->w->exec, d) : 0;
		if (r != 0)
			log_warn(
			    "cannot make a read_only memory store's copy read-only for the tools",
			    "session_id", s->session_id, "dir", d, "error", al_strerror(r));
		free(d);
	}
	open_stream(s);
}

static void
memory_start(struct wsess *s)
{
	const char *ws = wexec_workspace(s->w->exec);
	int r;
	json_t *res = s->mem_res;
	s->mem_res = NULL;
	if (s->mem == NULL && ws != NULL && json_is_array(res) &&
	    (r = memsync_new(s->w, s->session_id, s->cred, ws, res, &s->mem)) != 0) {
		json_decref(res);
		log_error("the session's memory stores cannot be mounted; stopping the item",
		          "session_id", s->session_id, "error", al_strerror(r));
		finish(s, WSESS_FAILED);
		return;
	}
	json_decref(res);
	if (s->mem == NULL) {
		open_stream(s);
		return;
	}
	memsync_download(s->mem, on_memory_ready, s);
}

static void
on_memory_final(void *arg, int err)
{
	struct wsess *s = arg;
	(void)err;
	teardown_continue(s);
}

/* ---- session lookup (before the stream) ---- */

static void
on_get_retry(struct loop *l, void *arg)
{
	struct wsess *s = arg;
	s->retry_timer = NULL;
	get_session(s);
}

static void
on_get_done(void *arg, int status, int err, json_t *body)
{
	struct wsess *s = arg;
	s->get_x = NULL;
	if (s->ending)
		return;
	if (status >= 200 && status < 300 && json_is_object(body)) {
		const char *st = json_string_value(json_object_get(body, "status"));
		if (st != NULL && strcmp(st, "terminated") == 0) {
			log_info("skipping the work item of a terminated session", "session_id",
			         s->session_id, "work_id", s->work_id);
			s->gone = true;
			finish(s, WSESS_CLEAN);
			return;
		}
		s->idle_at_claim = st != NULL && strcmp(st, "idle") == 0;
		egress_proxy_set_session(s->egress, body);
		s->reconnect_ms = 500;
		/* secrets before any tool can run (the stream brings the calls), then skills,
		 * then the stream */
		if (s->egress != NULL && json_array_size(json_object_get(body, "vault_ids")) > 0) {
			json_decref(s->sess_doc);
			s->sess_doc = json_incref(body);
			get_secrets(s);
		} else {
			skills_start(s, body); /* then open_stream */
		}
		return;
	}
	if (wapi_fatal(status, err)) {
		log_error("session lookup failed", "session_id", s->session_id, "error",
		          wapi_error_message(body));
		finish(s, WSESS_REJECTED);
		return;
	}
	uint64_t d = s->get_backoff_ms;
	s->get_backoff_ms = d * 2 > 30000 ? 30000 : d * 2;
	s->retry_timer = loop_timer_add(s->w->loop, wapi_jitter(d / 2, d), on_get_retry, s);
}

/* ---- the session's environment_variable secrets (docs/worker/egress.md) ---- */

/* On to the skills (then the stream) with the session object kept for them. */
static void
secrets_done(struct wsess *s)
{
	json_t *doc = s->sess_doc;
	s->sess_doc = NULL;
	skills_start(s, doc);
	json_decref(doc);
}

static void
on_secrets_done(void *arg, int status, int err, json_t *body)
{
	struct wsess *s = arg;
	json_t *data = json_object_get(body, "data"), *d;
	size_t i, n = 0;
	s->secrets_x = NULL;
	if (s->ending)
		goto wipe;
	if (status >= 200 && status < 300 && json_is_array(data) && s->egress != NULL) {
		char **env = xcalloc(json_array_size(data) + 1, sizeof(char *));
		json_array_foreach(data, i, d)
		{
			const char *id = json_string_value(json_object_get(d, "credential_id"));
			const char *name = json_string_value(json_object_get(d, "secret_name"));
			const char *val = json_string_value(json_object_get(d, "value"));
			unsigned char rnd[16];
			char ph[64];
			if (id == NULL || name == NULL || val == NULL)
				continue;
			/* per session and secret: nothing to guess, nothing shared with others */
			random_bytes(rnd, sizeof(rnd));
			int o = snprintf(ph, sizeof(ph), "airlock-secret-");
			for (size_t k = 0; k < sizeof(rnd); k++)
				o += snprintf(ph + o, sizeof(ph) - (size_t)o, "%02x", rnd[k]);
			if (egress_proxy_add_secret(
			        s->egress, id, ph, val, json_object_get(d, "allowed_hosts"),
			        json_is_true(json_object_get(d, "header")),
			        json_is_true(json_object_get(d, "body"))) != 0) {
				log_warn("a secret is not usable; its variable is not set",
				         "credential_id", id);
				continue;
			}
			env[n++] = xasprintf("%s=%s", name, ph);
		}
		wexec_set_env(s->w->exec, env);
		char num[16];
		snprintf(num, sizeof(num), "%zu", n);
		log_info("session secrets ready as placeholders", "session_id", s->session_id,
		         "secrets", num);
	} else if (status != 403 && status != 404) {
		char st[24];
		wapi_status_str(status, st, sizeof(st));
		log_warn("cannot read the session's secrets; its variables are not set",
		         "session_id", s->session_id, "status", st, "error",
		         wapi_error_text(err, body));
	}
	secrets_done(s);
wipe:
	json_array_foreach(data, i, d)
	{
		json_t *v = json_object_get(d, "value");
		if (json_is_string(v))
			explicit_wipe((void *)json_string_value(v), json_string_length(v));
	}
}

static void
get_secrets(struct wsess *s)
{
	char *path = path_of(s, "egress_secrets");
	struct wapi_req r = {
	    .cred = s->cred,
	    .method = "GET",
	    .path = path,
	    .timeout_ms = 30000,
	    .done = on_secrets_done,
	    .arg = s,
	};
	if (wapi_call(s->w, &r, &s->secrets_x) != 0) {
		s->secrets_x = NULL;
		log_warn("cannot ask for the session's secrets", "session_id", s->session_id);
		secrets_done(s);
	}
	free(path);
}

static void
get_session(struct wsess *s)
{
	char *path = xasprintf("/v1/sessions/%s", s->sess_esc);
	struct wapi_req r = {
	    .cred = s->cred,
	    .method = "GET",
	    .path = path,
	    .timeout_ms = 30000,
	    .done = on_get_done,
	    .arg = s,
	};
	if (wapi_call(s->w, &r, &s->get_x) != 0) {
		s->get_x = NULL;
		s->retry_timer = loop_timer_add(s->w->loop, 1000, on_get_retry, s);
	}
	free(path);
}

/* ---- teardown ---- */

static void
on_end_timer(struct loop *l, void *arg)
{
	struct wsess *s = arg;
	s->end_timer = NULL;
	s->end_cb(s->w, s->why); /* frees s */
}

static void
done_now(struct wsess *s)
{
	if (s->finished)
		return;
	s->finished = true;
	char st[8];
	snprintf(st, sizeof(st), "%d", (int)s->why);
	/* a failed force-stop is not "done": the item may stay live until its lease lapses */
	log_info("work item finished", "work_id", s->work_id, "session_id", s->session_id, "result",
	         s->stop_failed ? "stop failed" : end_name(s->why));
	/* from a timer: the caller frees s, and we may be inside one of s's callbacks */
	s->end_timer = loop_timer_add(s->w->loop, 0, on_end_timer, s);
}

static void
on_stop_done(void *arg, int status, int err, json_t *body)
{
	struct wsess *s = arg;
	s->stop_x = NULL;
	if (!(status >= 200 && status < 300) && status != 409) {
		char st[24];
		wapi_status_str(status, st, sizeof(st));
		log_error("force-stop on exit failed", "work_id", s->work_id, "status", st, "error",
		          wapi_error_text(err, body), "hint", wapi_error_hint(err));
		s->stop_failed = true;
	}
	done_now(s);
}

static void
on_drain_expired(struct loop *l, void *arg)
{
	struct wsess *s = arg;
	s->drain_timer = NULL;
	s->drain_expired = true;
	log_warn("drain deadline passed, releasing the item", "work_id", s->work_id);
	loop_timer_cancel(l, s->post_timer);
	s->post_timer = NULL;
	httpc_cancel(s->post_x);
	s->post_x = NULL;
	teardown_continue(s);
}

static void
teardown_continue(struct wsess *s)
{
	if (s->finished || s->stop_x != NULL)
		return;
	bool busy = wexec_busy(s->w->exec) || s->post_x != NULL || s->post_timer != NULL;
	if (busy && !s->drain_expired)
		return; /* the in-flight call's result comes first */
	loop_timer_cancel(s->w->loop, s->drain_timer);
	s->drain_timer = NULL;
	if (s->tools_open && !wexec_busy(s->w->exec)) {
		skills_cleanup(s);
		wexec_session_close(s->w->exec);
		s->tools_open = false;
	}
	/* with the sandbox gone nothing changes the copies any more: the last sync */
	if (s->mem != NULL && !s->tools_open) {
		if (!s->mem_final) {
			s->mem_final = true;
			memsync_final(s->mem, on_memory_final, s);
		}
		if (memsync_busy(s->mem) && !s->drain_expired)
			return; /* on_memory_final continues */
	}
	/* the sandbox is gone: its last decisions go to the server before the stop (the
	 * sessions token may die with it) */
	if (s->egress != NULL && !s->tools_open) {
		loop_timer_cancel(s->w->loop, s->egress_timer);
		s->egress_timer = NULL;
		egress_report(s);
		if (s->egress_x != NULL)
			return; /* on_egress_done continues */
		if (egress_proxy_dropped(s->egress) > 0) {
			char n[24];
			snprintf(n, sizeof(n), "%llu",
			         (unsigned long long)egress_proxy_dropped(s->egress));
			log_warn("egress decisions not reported (the queue was full)", "work_id",
			         s->work_id, "dropped", n);
		}
		egress_proxy_free(s->egress);
		s->egress = NULL;
	}
	if (s->gone && !s->tools_open) {
		/* Its files must never reach another session; while it lives, every work
		 * item of it finds them again. */
		int r = wexec_workspace_remove(s->w->exec, s->w->cfg.workdir, s->session_id);
		s->gone = false;
		if (r != 0)
			log_warn("cannot remove the ended session's workspace", "session_id",
			         s->session_id, "error", al_strerror(r));
		else
			log_info("the ended session's workspace is removed", "session_id",
			         s->session_id);
	}
	stop_heartbeats(s);
	if (s->why == WSESS_LEASE_LOST) {
		log_info("lease lost; released without stopping it", "work_id", s->work_id);
		done_now(s);
		return;
	}
	json_t *body = json_pack("{s:b}", "force", 1);
	char *path = path_of(s, "stop");
	struct wapi_req r = {
	    .cred = s->cred,
	    .method = "POST",
	    .path = path,
	    .body = body,
	    .timeout_ms = 10000,
	    .done = on_stop_done,
	    .arg = s,
	};
	if (wapi_call(s->w, &r, &s->stop_x) != 0) {
		s->stop_x = NULL;
		done_now(s);
	}
	json_decref(body);
	free(path);
}

static void
finish(struct wsess *s, enum wsess_end why)
{
	if (s->ending) {
		if (why == WSESS_LEASE_LOST)
			s->why = why; /* never stop an item someone else now holds */
		return;
	}
	s->ending = true;
	s->why = why;
	struct loop *l = s->w->loop;
	idle_disarm(s);
	loop_timer_cancel(l, s->retry_timer);
	loop_timer_cancel(l, s->reconnect_timer);
	s->retry_timer = s->reconnect_timer = NULL;
	httpc_cancel(s->stream_x);
	httpc_cancel(s->hist_x);
	httpc_cancel(s->get_x);
	httpc_cancel(s->secrets_x);
	s->secrets_x = NULL;
	s->stream_x = s->hist_x = s->get_x = NULL;
	json_array_clear(s->queue);
	json_object_clear(s->held);
	if (wexec_busy(s->w->exec)) {
		log_info("cancelling the in-flight tool", "work_id", s->work_id);
		wexec_cancel(s->w->exec);
	}
	if (why == WSESS_LEASE_LOST) {
		loop_timer_cancel(l, s->post_timer);
		s->post_timer = NULL;
		httpc_cancel(s->post_x);
		s->post_x = NULL;
	}
	s->drain_timer = loop_timer_add(l, DRAIN_MS, on_drain_expired, s);
	teardown_continue(s);
}

void
wsess_shutdown(struct wsess *s)
{
	finish(s, WSESS_SIGNAL);
}

int
wsess_start(struct worker *w, const struct wsess_params *p, wsess_end_fn *end, struct wsess **out)
{
	struct wsess *s = xcalloc(1, sizeof(*s));
	s->w = w;
	s->end_cb = end;
	s->work_id = xstrdup(p->work_id);
	s->env_id = xstrdup(p->environment_id);
	s->session_id = xstrdup(p->session_id);
	s->work_esc = httpc_escape(p->work_id);
	s->env_esc = httpc_escape(p->environment_id);
	s->sess_esc = httpc_escape(p->session_id);
	s->cred = wapi_sessions_token(p->secret, p->secret_len);
	char nerr[300];
	if (wapi_secret_networking(p->secret, p->secret_len, &s->net, nerr, sizeof(nerr)) != 0) {
		/* the server checks it; a bad one runs the session without network */
		log_warn("the work item's networking is malformed; no network", "work_id",
		         p->work_id, "error", nerr);
		memset(&s->net, 0, sizeof(s->net));
	}
	if (s->cred == NULL) {
		if (p->secret != NULL && p->secret_len > 0)
			log_warn("work item carried a secret but no sessions token could be "
			         "extracted; falling back to the environment key",
			         "work_id", p->work_id);
		if (w->cfg.environment_key == NULL) {
			log_error("no sessions token and no environment key for the item",
			          "work_id", p->work_id);
			wsess_free(s);
			return AL_E_AUTH;
		}
		s->cred = xstrdup(w->cfg.environment_key);
	}
	s->ttl_ms = HB_DEFAULT_TTL_MS;
	s->interval_ms = HB_DEFAULT_INTERVAL_MS;
	s->last_ok_ms = now_mono_ms();
	s->get_backoff_ms = 1000;
	s->reconnect_ms = 500;
	s->live = json_array();
	s->processed = json_object();
	s->answered = json_object();
	s->confirm = json_object();
	s->held = json_object();
	s->queue = json_array();
	*out = s;
	/* the lease first: downloads and history reads can outlast the TTL */
	beat(s);
	return 0;
}

void
wsess_free(struct wsess *s)
{
	if (s == NULL)
		return;
	struct loop *l = s->w->loop;
	struct loop_timer *timers[] = {s->hb_timer,   s->retry_timer, s->reconnect_timer,
	                               s->idle_timer, s->drain_timer, s->call_timer,
	                               s->post_timer, s->end_timer,   s->egress_timer};
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
		loop_timer_cancel(l, timers[i]);
	struct httpc_xfer *xs[] = {s->hb_x,   s->get_x,  s->stream_x, s->hist_x,
	                           s->post_x, s->stop_x, s->egress_x, s->secrets_x};
	for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]); i++)
		httpc_cancel(xs[i]);
	if (s->sse_ready)
		sse_parser_free(&s->sse);
	json_decref(s->egress_batch);
	json_decref(s->sess_doc);
	egress_proxy_free(s->egress);
	egress_env_free(&s->net);
	if (wexec_busy(s->w->exec) && s->running != NULL)
		wexec_orphan(s->w->exec); /* its result must not reach freed memory */
	if (s->tools_open) {
		skills_cleanup(s);
		wexec_session_close(s->w->exec);
	}
	memsync_free(s->mem);
	json_decref(s->mem_res);
	httpc_cancel(s->skill_x);
	json_decref(s->skills);
	json_decref(s->skill_dirs);
	free(s->skill_ver);
	free(s->skill_name);
	buf_free(&s->skill_tar);
	json_decref(s->live);
	json_decref(s->processed);
	json_decref(s->answered);
	json_decref(s->confirm);
	json_decref(s->held);
	json_decref(s->queue);
	json_decref(s->running);
	json_decref(s->result);
	free(s->work_id);
	free(s->env_id);
	free(s->session_id);
	free(s->work_esc);
	free(s->env_esc);
	free(s->sess_esc);
	free(s->last_hb);
	secret_free(s->cred);
	free(s);
}
