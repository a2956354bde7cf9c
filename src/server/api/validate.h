/* Shared validators for resource bodies: agent model, tools and toolsets (built-in,
 * MCP, custom), permission policies, MCP servers, skills, execution identity, and
 * the content blocks and user events that sessions accept. Each one checks a JSON
 * value from a client and returns its resolved wire form, or an error naming the
 * field path ("tools[0].name: ..."). Nothing here touches storage or replies. */
#ifndef AL_SERVER_VALIDATE_H
#define AL_SERVER_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "doc_store.h"

struct api_call;

/* Message of the first problem found; the caller turns it into a 400. */
struct verr {
	char msg[512];
};

#define VALIDATE_MAX_MCP_SERVERS 20
#define VALIDATE_MAX_TOOLS 256
#define VALIDATE_MAX_SKILLS 64
#define VALIDATE_MAX_CONTENT_BLOCKS 1000
#define VALIDATE_MAX_NAME 256
#define VALIDATE_MAX_DESCRIPTION 4096
#define VALIDATE_MAX_SYSTEM (1024 * 1024)

/* Sets e->msg from a printf format; always returns AL_E_INVAL. */
int verr_set(struct verr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "claude-x" or {id, effort?, speed?, inference_geo?} → {id, effort:{type}, speed[,
 * inference_geo]}. Effort defaults to high, speed to standard. */
int validate_model(const json_t *in, const char *path, json_t **out, struct verr *e);
/* {type:"always_allow"|"always_ask"|"auto"} → a fresh copy. */
int validate_permission_policy(const json_t *in, const char *path, json_t **out, struct verr *e);
/* [{type:"url", name, url}] ≤20 with unique names → a fresh copy. NULL or null → []. */
int validate_mcp_servers(const json_t *in, const char *path, json_t **out, struct verr *e);
/* Tools array resolved: the built-in toolset lists all eight tools with enabled and
 * permission_policy; MCP toolsets get their defaults (always_ask); custom tools are
 * checked (api.md §7). mcp_servers is the already validated server list: every
 * server must be referenced by exactly one mcp_toolset and every toolset must name
 * a declared server. Accepts its own output unchanged. NULL or null → []. */
int validate_tools(const json_t *in, const json_t *mcp_servers, const char *path, json_t **out,
                   struct verr *e);
/* [{type:"anthropic"|"custom", skill_id, version?}] ≤64 → version resolved ("latest"). */
int validate_skills(const json_t *in, const char *path, json_t **out, struct verr *e);
/* {type:"service_account"} | {type:"aws_role", role_arn}; NULL or null → service_account. */
int validate_execution_identity(const json_t *in, const char *path, json_t **out, struct verr *e);
/* Content blocks of user messages (text, image, document, redacted); with
 * tool_result also search_result. Non-empty, ≤1000 blocks. */
int validate_content_blocks(const json_t *in, const char *path, bool tool_result, struct verr *e);
/* One user.message or user.define_outcome for session initial_events → the event to
 * store (define_outcome gains outcome_id and a resolved max_iterations). */
int validate_initial_event(const json_t *in, const char *path, json_t **out, struct verr *e);
/* Rejects keys of obj outside the NULL-terminated list, naming path.key. */
int validate_only_keys(const json_t *obj, const char *path, const char *const *allowed,
                       struct verr *e);

/* --- list queries (these reply 400 themselves and return AL_E_INVAL) --- */

/* Replies 400 invalid_request_error with e->msg. */
void validate_reply(struct api_call *c, const struct verr *e);
/* ?key=true|false (also 1|0); absent leaves *out unchanged. */
int validate_query_bool(struct api_call *c, const char *key, bool *out);
/* created_at[gt|gte|lt|lte] (RFC 3339) folded into an inclusive µs range. */
struct time_range {
	int64_t lo, hi;
};
int validate_query_created(struct api_call *c, struct time_range *out);
/* {"data":[...],"next_page":cursor|null} of a page from a store; frees pg's data. */
json_t *validate_page_json(struct doc_page *pg, bool desc);
/* A store's list of an archivable resource: scope_id narrows it to one parent (NULL
 * where the resource has none). 0 or AL_E_IO. */
typedef int validate_list_fn(struct db *db, const char *scope_id, const struct doc_list *q,
                             struct doc_page *out);
/* The whole list route of an archivable resource: limit/page/order, include_archived,
 * created_at[*] validated, then list called. Replies. */
void validate_list_docs(struct api_call *c, validate_list_fn *list, const char *scope_id);
/* The same, with has_more next to next_page (GET /v1/skills has it: api.md 1.6). */
void validate_list_docs_ext(struct api_call *c, validate_list_fn *list, const char *scope_id,
                            bool has_more);

#endif
