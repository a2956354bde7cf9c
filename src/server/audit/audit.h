/* The server's audit log (issue 12 item 5): every decision and action worth an auditor's
 * question appended as one hash-chained record (lib/audit_chain) to an append-only file,
 * and read back for GET /v1/audit_events. Emit points, failure policy and limits:
 * docs/server/audit.md "In the server". */
#ifndef AL_SERVER_AUDIT_H
#define AL_SERVER_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "audit_chain.h"

struct server;
struct api_call;
struct principal;
struct session_owner;
struct db;

/* ---- the log file and its index (no server needed: unit-tested alone) ---- */

struct audit_log;

/* Opens (creating 0600) the file, resumes its chain and indexes every record's offset
 * (8 bytes a record in memory). err gets "path: why". */
int audit_log_open(const char *path, struct audit_log **out, char *err, size_t errlen);
void audit_log_free(struct audit_log *lg);
/* Seals rec and appends it durably (one write + fdatasync); 0 or the append's error. */
int audit_log_append(struct audit_log *lg, json_t *rec);
/* The same without the sync, for records whose durable copy is elsewhere until the
 * next sync (the outbox). */
int audit_log_append_lazy(struct audit_log *lg, json_t *rec);
uint64_t audit_log_count(const struct audit_log *lg);

/* A page of GET /v1/audit_events. Strings NULL: no filter. */
struct audit_query {
	int64_t time_lo, time_hi; /* µs, inclusive */
	const char *principal;    /* principal.sub ("apikey:…" for keys) */
	const char *session_id;   /* resources.session_id */
	const char *action;
	bool desc;          /* newest first */
	bool has_cursor;    /* after_seq is an exclusive bound */
	uint64_t after_seq; /* from the page cursor */
	unsigned limit;
	uint64_t max_scan; /* records read at most per page; 0: AUDIT_QUERY_MAX_SCAN */
};
#define AUDIT_QUERY_MAX_SCAN 200000

/* Whether one record passes the query's filters (not the paging). */
bool audit_query_match(const struct audit_query *q, const json_t *rec);
/* Up to q->limit matching records in seq order (q->desc: newest first) into *data (a new
 * array). *next_seq: the cursor of the next page, 0 when there is none; a page that read
 * max_scan records without filling up ends there with a cursor, so one request's work is
 * bounded however rare the matches are. AL_E_IO on a read error. */
int audit_log_query(struct audit_log *lg, const struct audit_query *q, json_t **data,
                    uint64_t *next_seq);

/* ---- the server's log ---- */

/* Opens cfg.audit_file (default <data_dir>/audit.jsonl); a file that cannot be opened or
 * whose last record does not verify stops the server. */
int audit_open(struct server *s);
void audit_close(struct server *s);
/* Fills the time (when 0) and appends one record. A failed write is logged at error
 * level and counted, and marks the log broken until a write succeeds again (see
 * audit_refusing). 0 or the error. */
int audit_emit(struct server *s, const struct audit_event *e);
/* n records, durable together: one sync after the last (a worker's batch of egress
 * decisions). 0 or the first append's error (the ones before it are in the log). */
int audit_emit_batch(struct server *s, const struct audit_event *evs, size_t n);
/* An API action by c->who: request id, principal and latency since the request came.
 * resources (an object, stolen) may be NULL. Requests without a valid credential write
 * at most AUDIT_UNAUTH_PER_SEC records a second; the rest are counted into one
 * "auth.fail" record with outcome "suppressed" (written each second and at close). */
#define AUDIT_UNAUTH_PER_SEC 50
int audit_api(struct api_call *c, const char *action, const char *decision, const char *outcome,
              json_t *resources);
/* Principal fields of an audit event from an API principal: users by sub, iss and
 * groups; keys and tokens as "apikey:<id>", "envkey:<id>", "session-token:<work id>".
 * buf holds the sub when it is built. */
void audit_principal(struct audit_event *e, const struct principal *p, char *buf, size_t len);
/* Inside the agent loop's transaction, before ev is stored: for an agent.tool_use,
 * agent.mcp_tool_use or agent.custom_tool_use (after the policy evaluated it) its
 * "tool.call" record (tool name, permission, rule, the input as its SHA-256 only) in *text
 * (NULL for other events), for events_append_audited_tx to store in the event's own row,
 * so it commits with it: one fsync, no page of its own. ev gets its id if it has none. o: the
 * session's owner (may be NULL). audit_outbox_move(s, committed) after the transaction appends them
 * to the log from memory (or forgets them if it rolled back); the next sync there lets their rows
 * go. 0 or AL_E_IO (the transaction fails with it). */
int audit_tool_use_tx(struct server *s, const char *session_id, const struct session_owner *o,
                      json_t *ev, const char **text);
void audit_outbox_move(struct server *s, bool committed);
/* Syncs the log and deletes the rows moved since the last flush (every second on the
 * loop's timer, and at close); exposed for the benchmark. */
void audit_outbox_flush(struct server *s);
/* Before event rows are deleted (a session's log): the records still held in them (the
 * agent loop's, since the last flush) are made durable in the log and cleared, so the
 * deletion cannot take one along. 0, or AL_E_IO when some could not be (the log cannot
 * be written: the deletion must wait). Never inside a transaction. */
int audit_settle(struct server *s);
/* The answers among events a client sent to a session (stored): user.tool_confirmation
 * as "tool.confirm" (decision: its result) and user.tool_result /
 * user.custom_tool_result as "tool.result" (outcome "ok" or "error"); never content. */
void audit_answers(struct api_call *c, const char *session_id, const json_t *events);
/* An MCP tools/call the control plane ran for a session, with its outcome ("ok", "error":
 * the tool said is_error, "failed": transport or protocol). */
void audit_mcp_call(struct server *s, const char *session_id, const struct session_owner *o,
                    const char *server, const char *tool, const char *call_id, const char *outcome,
                    int64_t latency_ms);
/* Whether API actions that change state must be refused (503): the last write failed and
 * a retry (at most once a second, an "audit.recovered" record naming the lost count)
 * failed too. */
bool audit_refusing(struct server *s);

/* For processes other than the server (`airlock keys`): a record for the server to append
 * to its log, stored in db's audit_outbox inside the caller's transaction, so it exists
 * exactly when what it records does. The principal is "cli:<unix user>". The server moves
 * outbox records into its log at start and every second (their time is when they were
 * made; resources.via says "outbox"). resources (an object) is stolen. 0 or AL_E_IO. */
int audit_outbox_add(struct db *db, const char *action, json_t *resources);

struct audit_stats {
	uint64_t written, failed;
};
void audit_get_stats(const struct server *s, struct audit_stats *st);

#endif
