/* Sessions: create (agent snapshot, initial events, work enqueue), list with the
 * bidirectional cursor, get, update, archive, delete; and the status/usage helpers
 * the agent loop uses. */
#ifndef AL_SERVER_SESSIONS_H
#define AL_SERVER_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct server;

/* The stored session object (new reference) and its environment id, or
 * AL_E_NOTFOUND. */
int sessions_get(struct server *s, const char *session_id, json_t **doc);
/* Who a session acts for, as recorded when it was created: a user (subject, email, the
 * groups their token carried) or a server API key ("apikey:<key id>"). */
struct session_owner {
	char *sub; /* NULL for sessions older than ownership */
	char *email;
	char **groups;
	size_t ngroups;
	bool apikey;
};
int sessions_owner(struct server *s, const char *session_id, struct session_owner *o);
void session_owner_free(struct session_owner *o);

/* Whether the session was created by this user (same issuer and subject). */
bool sessions_owned_by(struct server *s, const char *session_id, const char *iss, const char *sub);
/* Inside a transaction: sets status ("idle", "running", "rescheduling", "terminated")
 * in the column and the document, bumps updated_at. */
int sessions_set_status_tx(struct server *s, const char *session_id, const char *status);
/* Inside a transaction: adds model usage (input/output/cache tokens) to session.usage. */
int sessions_add_usage_tx(struct server *s, const char *session_id, const json_t *usage);
/* The agent loop's persisted state (opaque JSON text owned by agent.c); NULL if none. */
int sessions_loop_state_get(struct server *s, const char *session_id, json_t **state);
int sessions_loop_state_set_tx(struct server *s, const char *session_id, const json_t *state);
/* Ids of sessions whose status is running or rescheduling (restart recovery). */
int sessions_list_active(struct server *s, char ***ids, size_t *n);

#endif
