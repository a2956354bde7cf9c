/* The agent loop's decision, as a pure function: from a session's status, its view
 * (agent_view_build) and whether a call is in flight, what the next step does. agent.c
 * carries the decision out (transactions, model and MCP calls); no I/O here, so every
 * branch is unit-tested (tests/unit/agent/test_agent_step.c). docs/server/agent-loop.md. */
#ifndef AL_SERVER_AGENT_STEP_H
#define AL_SERVER_AGENT_STEP_H

#include <stdbool.h>

#include <jansson.h>

#include "agent_view.h"

enum agent_action {
	AGENT_ACT_INTERRUPT,  /* cancel what runs and end the turn; then decide again */
	AGENT_ACT_WAIT,       /* a call in flight picks up new input when it ends */
	AGENT_ACT_CLOSE_SPAN, /* end the span of a call cut off by a restart; decide again */
	AGENT_ACT_DENY,       /* record error results for the denied calls; decide again */
	AGENT_ACT_RUN_MCP,    /* run the first allowed MCP call (view->mcp_run[0]) */
	AGENT_ACT_CALL_MODEL, /* list MCP tools when needed, then call the model */
	AGENT_ACT_SETTLE,     /* record where the turn stands (below), or nothing at all */
};

/* The status change and event a step records. */
enum agent_emit {
	AGENT_EMIT_NONE,
	AGENT_EMIT_IDLE_END_TURN,        /* status idle + session.status_idle end_turn */
	AGENT_EMIT_IDLE_REQUIRES_ACTION, /* status idle + status_idle requires_action (blocked) */
	AGENT_EMIT_IDLE_LAST_STOP,       /* status idle + status_idle with the last stop reason */
	AGENT_EMIT_RUNNING,              /* status running + session.status_running */
};

/* What the loop state's requires_action becomes. */
enum agent_requires {
	AGENT_REQUIRES_KEEP,    /* unchanged */
	AGENT_REQUIRES_NONE,    /* [] */
	AGENT_REQUIRES_BLOCKED, /* view->blocked */
};

struct agent_step_in {
	const char *status;                 /* the session's status */
	bool busy;                          /* a model call, retry or MCP call is in flight */
	const json_t *prev_requires_action; /* the loop state's, or NULL */
	const struct agent_view *view;
};

struct agent_decision {
	enum agent_action action;
	/* INTERRUPT and SETTLE: one transaction with, in order, the open span's end (an
	 * error), the acknowledgements marked processed, the emit, the requires_action. */
	bool write;
	bool close_span;
	bool mark_acks;
	enum agent_emit emit;
	enum agent_requires requires_action;
};

void agent_step_decide(const struct agent_step_in *in, struct agent_decision *out);

#endif
