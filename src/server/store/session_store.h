/* The sessions table. The only place with SQL on sessions, as the sessions routes and
 * the agent loop move their queries here (docs/server/storage.md). */
#ifndef AL_SERVER_SESSION_STORE_H
#define AL_SERVER_SESSION_STORE_H

#include <stdint.h>

struct db;

/* How many sessions use the environment (they keep it from being deleted); -1 on error. */
int64_t session_store_count_for_environment(struct db *db, const char *environment_id);

#endif
