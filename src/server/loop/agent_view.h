/* The agent loop's pure half: from a session's agent snapshot and event log to the
 * next Messages API request and to what the loop waits for (tool results,
 * confirmations, custom results). No I/O, so it is unit-tested table by table and a
 * restarted server derives the same state from the same log. */
#ifndef AL_SERVER_AGENT_VIEW_H
#define AL_SERVER_AGENT_VIEW_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "policy.h"

/* The agent toolset's built-in tools that the worker runs; web_fetch and web_search
 * run in the control plane and are not offered to the model yet. */
extern const char *const agent_worker_tools[];

enum agent_tool_kind {
	AGENT_TOOL_BUILTIN,       /* enabled agent toolset tool: agent.tool_use */
	AGENT_TOOL_CUSTOM,        /* custom tool: agent.custom_tool_use */
	AGENT_TOOL_UNKNOWN,       /* not offered to the model: agent.tool_use denied at once */
	AGENT_TOOL_MCP,           /* an MCP tool from the session's catalog: agent.mcp_tool_use */
	AGENT_TOOL_POLICY_DENIED, /* any tool the tool policy denies: agent.tool_use, denied */
};

struct agent_tool_eval {
	enum agent_tool_kind kind;
	const char *permission; /* "allow" | "ask" | "deny" (built-in and unknown) */
	json_t *evaluation;     /* {type:always_allow|always_ask|auto,...}; NULL for others */
	const char *mcp_server; /* AGENT_TOOL_MCP: server and tool name (borrowed from the */
	const char *mcp_tool;   /* catalog) */
};

/* The operator's tool policy as it applies to one session (docs/server/policy.md): who
 * the session acts for and which agent it runs. NULL, or p NULL: no policy file. */
struct agent_policy {
	const struct policy *p;
	struct policy_principal who;
	struct policy_agent agent;
};

/* Classifies a tool call the model made, per the snapshot's permission policies
 * (tools.md §14.3; `auto` is a fixed rule set) and then the tool policy, decided again
 * for every call (a prompt-injected model can name tools it was never offered): deny
 * makes any call a denied agent.tool_use (custom and MCP calls too, so neither a client
 * nor an MCP server ever sees it), ask turns allow into ask. mcp_catalog is the session's
 * MCP tool catalog (mcp_tools.h; NULL: none). Free out->evaluation with json_decref. */
void agent_tool_evaluate(const json_t *agent, const json_t *mcp_catalog,
                         const struct agent_policy *pol, const char *name,
                         struct agent_tool_eval *out);

/* The Messages API `tools` list for the snapshot: enabled worker tools with the
 * official SDK's input schemas, then custom tools as declared, then the MCP catalog's
 * tools; those the tool policy denies are not offered. New reference. */
json_t *agent_request_tools(const json_t *agent, const json_t *mcp_catalog,
                            const struct agent_policy *pol);

/* The whole streaming request body (model, max_tokens, system, tools, messages).
 * New reference; messages is borrowed. */
/* Appends text to the request's system prompt (after a blank line), or makes it the
 * prompt when there is none. */
void agent_request_add_system(json_t *body, const char *text);
json_t *agent_request_body(const json_t *agent, const json_t *mcp_catalog,
                           const struct agent_policy *pol, const json_t *messages,
                           unsigned max_tokens);

struct agent_view {
	json_t *messages;       /* Messages API history rebuilt from the log */
	json_t *blocked;        /* event ids waiting on the client: ask without a confirmation,
	                         * custom calls without a result */
	json_t *to_deny;        /* [{id, name, message}]: denied calls with no result recorded */
	size_t waiting;         /* allowed calls waiting for a worker's user.tool_result */
	json_t *mcp_run;        /* [{id, server, tool, input}]: allowed MCP calls without a
	                         * result, in log order; the control plane runs them */
	bool needs_model;       /* input the model has not answered and nothing is open */
	bool interrupt_pending; /* a user.interrupt not yet processed */
	json_t *unprocessed;    /* ids of queued user.message events (processed_at null) */
	json_t *acks;           /* ids of queued confirmations and interrupts */
	char *open_span;        /* id of a span.model_request_start without its end, or NULL */
};

/* Walks the event docs (in log order) into v. events is borrowed. */
void agent_view_build(const json_t *events, struct agent_view *v);
void agent_view_free(struct agent_view *v);

#endif
