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

#endif
