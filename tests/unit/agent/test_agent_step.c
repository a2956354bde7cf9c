/* Unit tests for the agent loop's decision (src/server/loop/agent_step.c): one row per
 * branch of the step, from the session's status, its view and whether a call is in
 * flight to the action and what the step records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/loop/agent_step.h"

struct row {
	const char *name;
	/* input */
	const char *status;
	bool busy;
	const char *prev_ra; /* JSON or NULL */
	bool interrupt;
	bool open_span;
	bool deny;
	bool mcp;
	bool needs_model;
	const char *blocked; /* JSON array or NULL */
	size_t waiting;
	const char *acks; /* JSON array or NULL */
	/* expected */
	enum agent_action action;
	bool write;
	bool close_span;
	bool mark_acks;
	enum agent_emit emit;
	enum agent_requires requires_action;
};

static const struct row rows[] = {
    /* an interrupt wins over everything, and ends the turn when something ran */
    {"interrupt while busy", "running", true, NULL, true, false, true, true, true, NULL, 1,
     "[\"i\"]", AGENT_ACT_INTERRUPT, true, false, true, AGENT_EMIT_IDLE_END_TURN,
     AGENT_REQUIRES_NONE},
    {"interrupt of a call in flight on an idle session", "idle", true, NULL, true, false, false,
     false, false, NULL, 0, "[\"i\"]", AGENT_ACT_INTERRUPT, true, false, true,
     AGENT_EMIT_IDLE_END_TURN, AGENT_REQUIRES_NONE},
    {"interrupt closes the open span", "running", false, NULL, true, true, false, false, false,
     NULL, 0, "[\"i\"]", AGENT_ACT_INTERRUPT, true, true, true, AGENT_EMIT_IDLE_END_TURN,
     AGENT_REQUIRES_NONE},
    {"interrupt on an idle session with nothing asked: no idle event", "idle", false, "[]", true,
     false, false, false, false, NULL, 0, "[\"i\"]", AGENT_ACT_INTERRUPT, true, false, true,
     AGENT_EMIT_NONE, AGENT_REQUIRES_NONE},
    {"interrupt of an idle session that required action", "idle", false, "[\"t1\"]", true, false,
     false, false, false, NULL, 0, "[\"i\"]", AGENT_ACT_INTERRUPT, true, false, true,
     AGENT_EMIT_IDLE_END_TURN, AGENT_REQUIRES_NONE},
    /* a call in flight picks the new input up itself */
    {"busy waits", "running", true, NULL, false, true, true, true, true, "[\"b\"]", 1, NULL,
     AGENT_ACT_WAIT, false, false, false, AGENT_EMIT_NONE, AGENT_REQUIRES_KEEP},
    /* repairs before work */
    {"a span cut off by a restart is closed first", "running", false, NULL, false, true, true, true,
     true, NULL, 0, NULL, AGENT_ACT_CLOSE_SPAN, false, false, false, AGENT_EMIT_NONE,
     AGENT_REQUIRES_KEEP},
    {"denied calls get their error results", "running", false, NULL, false, false, true, true, true,
     NULL, 0, NULL, AGENT_ACT_DENY, false, false, false, AGENT_EMIT_NONE, AGENT_REQUIRES_KEEP},
    {"allowed MCP calls run before the model", "running", false, NULL, false, false, false, true,
     true, NULL, 0, NULL, AGENT_ACT_RUN_MCP, false, false, false, AGENT_EMIT_NONE,
     AGENT_REQUIRES_KEEP},
    {"new input calls the model", "idle", false, NULL, false, false, false, false, true, "[\"b\"]",
     1, NULL, AGENT_ACT_CALL_MODEL, false, false, false, AGENT_EMIT_NONE, AGENT_REQUIRES_KEEP},
    /* the client must act */
    {"blocked calls: idle, requires_action, loop state keeps them", "running", false, NULL, false,
     false, false, false, false, "[\"t1\",\"t2\"]", 0, NULL, AGENT_ACT_SETTLE, true, false, true,
     AGENT_EMIT_IDLE_REQUIRES_ACTION, AGENT_REQUIRES_BLOCKED},
    {"same blocked set, already idle, nothing to ack: nothing written", "idle", false,
     "[\"t1\",\"t2\"]", false, false, false, false, false, "[\"t1\",\"t2\"]", 0, "[]",
     AGENT_ACT_SETTLE, false, false, false, AGENT_EMIT_NONE, AGENT_REQUIRES_KEEP},
    {"same blocked set with a confirmation to ack: ack only, no new event", "idle", false,
     "[\"t1\",\"t2\"]", false, false, false, false, false, "[\"t1\",\"t2\"]", 0, "[\"c\"]",
     AGENT_ACT_SETTLE, true, false, true, AGENT_EMIT_NONE, AGENT_REQUIRES_BLOCKED},
    {"the blocked set changed: said again", "idle", false, "[\"t1\",\"t2\"]", false, false, false,
     false, false, "[\"t2\"]", 0, "[\"c\"]", AGENT_ACT_SETTLE, true, false, true,
     AGENT_EMIT_IDLE_REQUIRES_ACTION, AGENT_REQUIRES_BLOCKED},
    /* the worker runs allowed calls */
    {"waiting on the worker: running", "idle", false, NULL, false, false, false, false, false, NULL,
     2, NULL, AGENT_ACT_SETTLE, true, false, true, AGENT_EMIT_RUNNING, AGENT_REQUIRES_NONE},
    {"waiting and already running: no second running event", "running", false, NULL, false, false,
     false, false, false, NULL, 1, NULL, AGENT_ACT_SETTLE, true, false, true, AGENT_EMIT_NONE,
     AGENT_REQUIRES_NONE},
    /* nothing open */
    {"turn over: idle with the last stop reason", "running", false, NULL, false, false, false,
     false, false, NULL, 0, NULL, AGENT_ACT_SETTLE, true, false, true, AGENT_EMIT_IDLE_LAST_STOP,
     AGENT_REQUIRES_NONE},
    {"idle with acks left: marked, no event", "idle", false, NULL, false, false, false, false,
     false, NULL, 0, "[\"c\"]", AGENT_ACT_SETTLE, true, false, true, AGENT_EMIT_NONE,
     AGENT_REQUIRES_NONE},
    {"idle and nothing new: nothing at all", "idle", false, NULL, false, false, false, false, false,
     NULL, 0, NULL, AGENT_ACT_SETTLE, false, false, false, AGENT_EMIT_NONE, AGENT_REQUIRES_KEEP},
};

static json_t *
J(const char *text)
{
	json_error_t e;
	if (text == NULL)
		return NULL;
	json_t *v = json_loads(text, 0, &e);
	if (v == NULL)
		fail_msg("bad test JSON: %s", e.text);
	return v;
}

static void
test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		char span[] = "sevt_span";
		struct agent_view v;
		memset(&v, 0, sizeof(v));
		v.interrupt_pending = r->interrupt;
		v.open_span = r->open_span ? span : NULL;
		v.to_deny = r->deny ? J("[{\"id\":\"d\",\"message\":\"no\"}]") : json_array();
		v.mcp_run = r->mcp ? J("[{\"id\":\"m\"}]") : json_array();
		v.needs_model = r->needs_model;
		v.blocked = r->blocked ? J(r->blocked) : json_array();
		v.waiting = r->waiting;
		v.acks = r->acks ? J(r->acks) : json_array();
		json_t *prev = J(r->prev_ra);
		struct agent_step_in in = {
		    .status = r->status, .busy = r->busy, .prev_requires_action = prev, .view = &v};
		struct agent_decision d;
		memset(&d, 0xa5, sizeof(d)); /* every field must be set */
		agent_step_decide(&in, &d);
		if (d.action != r->action || d.write != r->write || d.close_span != r->close_span ||
		    d.mark_acks != r->mark_acks || d.emit != r->emit ||
		    d.requires_action != r->requires_action)
			fail_msg("%s: got action %d write %d close_span %d mark_acks %d emit %d "
			         "requires %d",
			         r->name, d.action, d.write, d.close_span, d.mark_acks, d.emit,
			         d.requires_action);
		json_decref(v.to_deny);
		json_decref(v.mcp_run);
		json_decref(v.blocked);
		json_decref(v.acks);
		json_decref(prev);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
