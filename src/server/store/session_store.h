/* The sessions table. The only place with SQL on sessions, as the sessions routes move
 * their queries here (docs/server/storage.md); the agent loop reads and updates
 * sessions through it. */
#ifndef AL_SERVER_SESSION_STORE_H
#define AL_SERVER_SESSION_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct db;

/* What the event routes need of a session. */
struct session_state {
	char environment_id[80];
	char status[32];
	bool archived;
};
/* 0, AL_E_NOTFOUND or AL_E_IO. */
int session_store_state(struct db *db, const char *session_id, struct session_state *out);
/* A new session row. Owner: a user session records issuer, subject, groups (JSON text)
 * and a verified email; an API-key session records only sub "apikey:<key id>". */
struct session_new {
	const char *id;
	const char *environment_id;
	const char *agent_id;
	int64_t agent_version;
	int64_t created_at;
	const json_t *doc;
	const char *owner_iss, *owner_sub, *owner_groups, *owner_email; /* each may be NULL */
};
/* Inside the caller's transaction: adds an idle session at the next list position. */
int session_store_insert(struct db *db, const struct session_new *n);
/* Inside the caller's transaction: the new document and the archived_at column. */
int session_store_archive(struct db *db, const char *id, const json_t *doc, int64_t now);
/* Inside the caller's transaction: deletes the session row (its events are
 * event_store_delete_session's). */
int session_store_delete(struct db *db, const char *id);

/* One page of GET /v1/sessions: every filter optional (NULL or 0). The cursor bound
 * is exclusive; walk_desc is the order rows are read in (the page order, or its
 * reverse when walking back from a prev cursor). */
struct session_list_query {
	bool include_archived;
	int64_t created_lo, created_hi;
	const char *agent_id;
	int64_t agent_version;
	const char *memory_store_id;
	const char *deployment_id;
	const char *environment_id; /* airlock's own filter (the console's environment page) */
	const char *statuses_json;  /* JSON array of statuses, or NULL */
	bool has_cursor;
	int64_t bound;
	bool walk_desc;
	unsigned limit; /* rows read: the caller asks for one more than it shows */
	const char *owner_iss, *owner_sub; /* only this user's sessions when set */
};
/* Calls fn(arg, seq, doc) per row in walk order; a non-zero return stops. */
int session_store_list(struct db *db, const struct session_list_query *q,
                       int (*fn)(void *arg, int64_t seq, json_t *doc), void *arg);
/* Whether the session still wants work: it exists, is not terminated and not archived. */
bool session_store_open(struct db *db, const char *session_id);
/* How many sessions use the environment (they keep it from being deleted); -1 on error. */
int64_t session_store_count_for_environment(struct db *db, const char *environment_id);

/* The stored session object (new reference); *err: 0, AL_E_NOTFOUND or AL_E_IO. */
json_t *session_store_get(struct db *db, const char *id, int *err);
/* Replaces the document (and the status column from its "status"); AL_E_NOTFOUND when
 * the session is gone. */
int session_store_put(struct db *db, const char *id, const json_t *doc);
/* Who a session acts for, as recorded when it was created: a user (subject, email, the
 * groups their token carried) or a server API key ("apikey:<key id>"). */
struct session_owner {
	char *sub; /* NULL for sessions older than ownership */
	char *iss; /* users: the IdP; NULL for API keys */
	char *email;
	char **groups;
	size_t ngroups;
	bool apikey;
};
int session_store_owner(struct db *db, const char *session_id, struct session_owner *o);
void session_owner_free(struct session_owner *o);

/* Whether the session was created by this user (same issuer and subject). */
bool session_store_owned_by(struct db *db, const char *session_id, const char *iss,
                            const char *sub);
/* Inside a transaction: sets status ("idle", "running", "rescheduling", "terminated")
 * in the column and the document, bumps updated_at. */
int session_store_set_status(struct db *db, const char *session_id, const char *status);
/* Inside a transaction: adds model usage (input/output/cache tokens) to session.usage. */
int session_store_add_usage(struct db *db, const char *session_id, const json_t *usage);
/* The agent loop's persisted state (opaque JSON text owned by agent.c); NULL if none. */
int session_store_loop_state_get(struct db *db, const char *session_id, json_t **state);
int session_store_loop_state_set(struct db *db, const char *session_id, const json_t *state);
/* Ids of sessions whose status is running or rescheduling (restart recovery). */
int session_store_list_active(struct db *db, char ***ids, size_t *n);

/* The agent loop's lease on a session, so one replica at a time runs its steps
 * (docs/server/agent-loop.md). Times are wall-clock µs. On SQLite (one server) the lease is
 * always ours and nothing is written: shared() is false, take/release answer 1.
 * take: 1 ours now (until `until`), 0 another replica holds a live lease, AL_E_IO.
 * renew: every lease owner holds, to `until`, in one statement.
 * release: 1 released, 0 not (not ours, or the log no longer holds seen_events events).
 * expire_all: owner's leases lapse now (drain), for another replica to take over.
 * orphans: running sessions nobody holds a live lease on (at most max). */
bool session_store_lease_shared(struct db *db);
int session_store_lease_take(struct db *db, const char *session_id, const char *owner, int64_t now,
                             int64_t until);
int session_store_lease_renew(struct db *db, const char *owner, int64_t until);
int session_store_lease_release(struct db *db, const char *session_id, const char *owner,
                                int64_t seen_events);
int session_store_lease_expire_all(struct db *db, const char *owner);
int session_store_lease_orphans(struct db *db, int64_t now, unsigned max, char ***ids, size_t *n);

#endif
