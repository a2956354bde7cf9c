/* Agents: versioned configurations (create, update with optimistic version, list,
 * versions, archive). Sessions resolve their agent snapshot through here. */
#ifndef AL_SERVER_AGENTS_H
#define AL_SERVER_AGENTS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct server;

/* The agent document at version (0 = latest), with archived_at of the agent as it is
 * now. Returns 0, AL_E_NOTFOUND (no such agent or version) or AL_E_IO. */
int agents_load(struct server *s, const char *agent_id, int64_t version, json_t **doc);

#endif
