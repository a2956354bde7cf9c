/* The sessions table. The only place with SQL on sessions, as the sessions routes and
 * the agent loop move their queries here (docs/server/storage.md). */
#ifndef AL_SERVER_SESSION_STORE_H
#define AL_SERVER_SESSION_STORE_H

#include <stdbool.h>
#include <stdint.h>

struct db;

/* What the event routes need of a session. */
struct session_state {
	char environment_id[80];
	char status[32];
	bool archived;
};
/* 0, AL_E_NOTFOUND or AL_E_IO. */
int session_store_state(struct db *db, const char *session_id, struct session_state *out);
/* How many sessions use the environment (they keep it from being deleted); -1 on error. */
int64_t session_store_count_for_environment(struct db *db, const char *environment_id);

#endif
