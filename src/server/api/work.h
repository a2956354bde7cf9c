/* The self-hosted work queue (work-protocol.md): items, leases, long-poll waiters. */
#ifndef AL_SERVER_WORK_H
#define AL_SERVER_WORK_H

struct server;

/* Inside the caller's transaction: enqueues one item for the session unless it
 * already has a live one (state != stopped). Waiters are woken after commit by
 * work_kick(). */
int work_enqueue_tx(struct server *s, const char *environment_id, const char *session_id);
/* Session deleted or terminated: live items go to stopping (acked) or stopped. */
int work_session_ended_tx(struct server *s, const char *session_id);
/* Whether the session has a live (not stopped) item. */
int work_session_live(struct server *s, const char *session_id, bool *live);
/* Wakes long-polls of an environment after a commit that enqueued work. */
void work_kick(struct server *s, const char *environment_id);

/* Long-polls held open now (GET /metrics). */
size_t work_poller_count(struct server *s);
/* Answers every held poll with no work at once (the drain). */
void work_release_pollers(struct server *s);
int work_init(struct server *s);
void work_shutdown(struct server *s);

#endif
