/* The events table: each session's durable event log. The only place with SQL on
 * events (docs/server/storage.md). Appends go through event_hub.c (events_append*),
 * which stores here and then fans the event out to open streams. */
#ifndef AL_SERVER_EVENT_STORE_H
#define AL_SERVER_EVENT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "doc_store.h"

struct db;

/* One row: doc is the event's wire JSON; answers the call id it answers (NULL if
 * none); processed_at 0 while unprocessed; audit its tool.call audit record (NULL if
 * none; see event_store_set_audit). Takes the next log position. */
struct event_row {
	const char *id;
	const char *session_id;
	const char *type;
	int64_t created_at;
	int64_t processed_at;
	const char *answers;
	const json_t *doc;
	const char *audit;
};
/* *seq: the event's place in the log (ordered across sessions and replicas). On
 * PostgreSQL the insert also notifies the other replicas (channel airlock_events,
 * payload the session id) when the transaction commits. */
int event_store_insert(struct db *db, const struct event_row *ev, int64_t *seq);
/* The session's events after seq, in order, at most max: fn(arg, seq, doc) per row
 * (doc borrowed). 0 or AL_E_IO. */
int event_store_after(struct db *db, const char *session_id, int64_t after_seq, unsigned max,
                      void (*fn)(void *arg, int64_t seq, json_t *doc), void *arg);
/* The seq of the session's last event (0: none). */
int event_store_last_seq(struct db *db, const char *session_id, int64_t *seq);
/* Sets processed_at (column and document) of an event not yet processed. */
int event_store_mark_processed(struct db *db, const char *event_id, int64_t now);
/* Whether the session holds an event the agent loop has not taken in yet (a user
 * message, interrupt or confirmation): the session still needs to run. */
int event_store_has_unprocessed(struct db *db, const char *session_id, bool *pending);
/* One event of a session (new reference) or NULL. */
json_t *event_store_get(struct db *db, const char *session_id, const char *event_id);
/* The first event of answer_type that answers call_id in the session, or NULL. */
json_t *event_store_find_answer(struct db *db, const char *session_id, const char *call_id,
                                const char *answer_type);
/* A page of a session's events: q's cursor, created_at range, limit and order;
 * types_json, when not NULL, a JSON array of the types to keep. */
int event_store_list(struct db *db, const char *session_id, const struct doc_list *q,
                     const char *types_json, struct doc_page *out);
/* Inside the caller's transaction: deletes a session's log (the session is deleted). */
int event_store_delete_session(struct db *db, const char *session_id);
/* The tool.call audit record of an event, kept in its row until the audit log has it
 * synced (audit.c): stored with the event (event_row.audit), cleared with text NULL
 * (AL_E_NOTFOUND when there is no such event); read back (heap copy; AL_E_NOTFOUND when
 * none); and every row that still holds one, in log order (fn's non-zero return stops
 * and is returned; the strings are borrowed for the call). */
int event_store_set_audit(struct db *db, const char *event_id, const char *text);
int event_store_get_audit(struct db *db, const char *event_id, char **text);
int event_store_audit_pending(struct db *db,
                              int (*fn)(void *arg, const char *event_id, const char *text),
                              void *arg);
/* The whole log of a session in order, as a JSON array (new reference); AL_E_TOOBIG
 * past max events. */
int event_store_log(struct db *db, const char *session_id, size_t max, json_t **out);

#endif
