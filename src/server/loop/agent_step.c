/* The agent loop's decision; see agent_step.h. The order of the checks is the loop's
 * priority: an interrupt first, then nothing while a call runs, then repairs (a span cut
 * off by a restart, denied calls without a result), then work (MCP calls, the model),
 * then telling the client what the turn waits for. */
#include <string.h>

#include "agent_step.h"

static bool
same_ids(const json_t *a, const json_t *b)
{
	return json_is_array(a) && json_is_array(b) && json_equal(a, b);
}

void
agent_step_decide(const struct agent_step_in *in, struct agent_decision *out)
{
	const struct agent_view *v = in->view;
	bool idle = in->status != NULL && strcmp(in->status, "idle") == 0;
	bool acks = json_array_size(v->acks) > 0;

	memset(out, 0, sizeof(*out));
	out->action = AGENT_ACT_SETTLE;
	if (v->interrupt_pending) {
		/* user.interrupt jumps the queue; the turn ends even with nothing running
		 * when the client was told to act or the status says otherwise. */
		out->action = AGENT_ACT_INTERRUPT;
		out->write = true;
		out->close_span = v->open_span != NULL;
		out->mark_acks = true;
		if (in->busy || !idle || json_array_size(in->prev_requires_action))
			out->emit = AGENT_EMIT_IDLE_END_TURN;
		out->requires_action = AGENT_REQUIRES_NONE;
		return;
	}
	if (in->busy) {
		out->action = AGENT_ACT_WAIT;
		return;
	}
	if (v->open_span) {
		out->action = AGENT_ACT_CLOSE_SPAN;
		return;
	}
	if (json_array_size(v->to_deny)) {
		out->action = AGENT_ACT_DENY;
		return;
	}
	if (json_array_size(v->mcp_run)) {
		out->action = AGENT_ACT_RUN_MCP;
		return;
	}
	if (v->needs_model) {
		out->action = AGENT_ACT_CALL_MODEL;
		return;
	}
	if (json_array_size(v->blocked)) {
		/* The client must act; say so again whenever the set changed (some
		 * confirmations arrived, others are still missing). */
		bool same = same_ids(in->prev_requires_action, v->blocked);
		if (idle && same && !acks)
			return;
		out->write = true;
		out->mark_acks = true;
		if (!idle || !same)
			out->emit = AGENT_EMIT_IDLE_REQUIRES_ACTION;
		out->requires_action = AGENT_REQUIRES_BLOCKED;
		return;
	}
	if (v->waiting) {
		/* Allowed calls run on the worker; the session is busy until their results
		 * arrive. */
		out->write = true;
		out->mark_acks = true;
		if (in->status == NULL || strcmp(in->status, "running") != 0)
			out->emit = AGENT_EMIT_RUNNING;
		out->requires_action = AGENT_REQUIRES_NONE;
		return;
	}
	/* Nothing open and nothing new: the turn is over. */
	if (!idle || acks) {
		out->write = true;
		out->mark_acks = true;
		if (!idle)
			out->emit = AGENT_EMIT_IDLE_LAST_STOP;
		out->requires_action = AGENT_REQUIRES_NONE;
	}
}
