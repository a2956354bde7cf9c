/* The session event log's write side (event_hub.c): durable append through
 * event_store.c and fan-out to open SSE streams. An event is committed before any
 * stream sees it, so a client that opens the stream first and then reads history never
 * misses one (api.md §5). The routes are api/events.c; the agent loop calls this. */
#ifndef AL_SERVER_EVENTS_H
#define AL_SERVER_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct server;

/* Inside the caller's transaction (db_begin/db_commit): assigns ev.id (unless ev
 * already has one, e.g. pre-allocated for streamed deltas), the per-session sequence
 * and processed_at (now when processed, else null), stores it and queues it for
 * fan-out. ev is borrowed and updated in place. */
int events_append_tx(struct server *s, const char *session_id, json_t *ev, bool processed);
/* The same with the event's audit record (audit_tool_use_tx) stored in its row, so the
 * record commits with it at no cost of its own; audit may be NULL. */
int events_append_audited_tx(struct server *s, const char *session_id, json_t *ev, bool processed,
                             const char *audit);
/* ev's id, assigned first when it has none (what events_append_tx does). */
const char *events_ensure_id(json_t *ev);
/* After db_commit: sends the queued events to streams. After db_rollback: drops them. */
void events_publish(struct server *s);
void events_discard(struct server *s);
/* begin + append_tx + commit + publish. */
int events_append(struct server *s, const char *session_id, json_t *ev, bool processed);

/* Inside a transaction: sets processed_at of a queued user event (the agent loop
 * consumed it). */
int events_mark_processed_tx(struct server *s, const char *event_id);

/* Non-persisted previews for streams that asked for event_deltas[] (api.md §5). */
void events_delta_start(struct server *s, const char *session_id, const char *event_id,
                        const char *event_type);
void events_delta_text(struct server *s, const char *session_id, const char *event_id,
                       unsigned index, const char *text);

/* Loads one persisted event (new reference) or NULL. */
json_t *events_get(struct server *s, const char *session_id, const char *event_id);
/* The persisted event answering tool_use_id (user.tool_result, user.custom_tool_result,
 * user.tool_confirmation, agent.tool_result for denials), or NULL. */
json_t *events_find_answer(struct server *s, const char *session_id, const char *tool_use_id,
                           const char *answer_type);

/* The call id an answering event refers to (tool_use_id, custom_tool_use_id,
 * mcp_tool_use_id by type), or NULL for events that answer nothing. */
const char *events_answer_key(const json_t *ev, const char *type);

/* An open event stream: the hub writes SSE frames through write; end tells the owner
 * the hub dropped the subscription (events_close_streams, shutdown) and freed it. */
struct events_sub_ops {
	void (*write)(void *arg, const char *frame, size_t len);
	void (*end)(void *arg);
};
struct events_sub;
/* Subscribes arg to a session's events (and to the deltas it asked for). */
struct events_sub *events_subscribe(struct server *s, const char *session_id, bool delta_message,
                                    bool delta_thinking, const struct events_sub_ops *ops,
                                    void *arg);
/* The owner closed its stream: unlinks and frees sub. */
void events_unsubscribe(struct server *s, struct events_sub *sub);
/* Ends every open stream of a session (deleted sessions). */
void events_close_streams(struct server *s, const char *session_id);
/* Open streams, all sessions (GET /metrics). */
size_t events_stream_count(struct server *s);
/* Ends every open stream cleanly (the drain: clients resume with Last-Event-ID). */
void events_close_all_streams(struct server *s);

/* The work queue hears of items another replica queued through the hub's notification
 * channel (it drains the one LISTEN connection): fn(s, environment_id) after each such
 * commit, and fn(s, NULL) after a reconnect (notifications may have been lost: recheck
 * every held poll). Payload "work:<environment id>", beside the events' session ids
 * (which never hold ':'). Nothing is called on SQLite. */
#define EVENTS_NOTE_WORK "work:"
void events_on_work_queued(struct server *s, void (*fn)(struct server *s, const char *env_id));

int events_init(struct server *s);
void events_shutdown(struct server *s);
/* Several replicas: fn(s, session_id) is called for each session another replica
 * appended to, after this replica's streams were caught up (the agent loop wakes the
 * sessions whose lease it holds); sid NULL after a reconnect, when notifications may
 * have been lost. Never called on SQLite. */
void events_on_remote_append(struct server *s, void (*fn)(struct server *s, const char *sid));

#endif
