/* The agent loop: one state machine per running session that calls the model,
 * turns its output into events, and waits for tool results, confirmations and
 * interrupts. State that must survive a restart lives in sessions.loop_state. */
#ifndef AL_SERVER_AGENT_H
#define AL_SERVER_AGENT_H

#include <stddef.h>

struct server;

/* New user events were committed for the session (user.message, user.tool_result,
 * user.custom_tool_result, user.tool_confirmation, user.interrupt, ...). The loop
 * reads what it needs from the event log; this call never blocks. */
void agent_session_wake(struct server *s, const char *session_id);
/* The session is being deleted or archived: stop its loop now. */
void agent_session_drop(struct server *s, const char *session_id);

/* Starts the runtime and resumes sessions that were running before a restart. */
int agent_init(struct server *s);
void agent_shutdown(struct server *s);
/* Model and MCP calls in flight, all sessions (GET /metrics, the drain). */
size_t agent_calls_in_flight(struct server *s);
/* The server drains: calls in flight finish and are recorded, nothing new starts (a
 * model call, an MCP call, a retry); the sessions stay as the log leaves them, and the
 * next server to start (or another replica) resumes them from it. */
void agent_drain(struct server *s);

#endif
