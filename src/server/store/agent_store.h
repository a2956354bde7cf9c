/* The agents and agent_versions tables: versioned agent configurations. The only place
 * with SQL on them (docs/server/storage.md). agents.doc is the latest version's wire
 * JSON; agent_versions keeps every version's. */
#ifndef AL_SERVER_AGENT_STORE_H
#define AL_SERVER_AGENT_STORE_H

#include <stdint.h>

#include <jansson.h>

#include "doc_store.h"

struct db;

/* The agent document at version (0 = latest), with archived_at of the agent as it is
 * now. Returns 0, AL_E_NOTFOUND (no such agent or version) or AL_E_IO. */
int agent_store_get(struct db *db, const char *agent_id, int64_t version, json_t **doc);
/* Adds an agent at version 1 (doc is its wire JSON), in one transaction. */
int agent_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at);
/* Makes doc version `version` + 1 of the agent, provided the agent is still at `version`
 * (AL_E_CONFLICT otherwise: a concurrent writer such as the admin CLI loses cleanly). */
int agent_store_update(struct db *db, const char *id, int64_t version, const json_t *doc);
/* Marks the agent archived with its new document. */
int agent_store_archive(struct db *db, const char *id, const json_t *doc, int64_t archived_at);
/* A page of agents (scope_id unused). */
int agent_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                     struct doc_page *out);
/* A page of one agent's versions, ordered by version (the cursor counts versions; q's
 * archive and time filters do not apply). */
int agent_store_list_versions(struct db *db, const char *agent_id, const struct doc_list *q,
                              struct doc_page *out);

#endif
