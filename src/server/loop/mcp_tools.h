/* The pure half of the MCP connector: what the model is offered for an agent's MCP
 * toolsets (names, schemas, enabled tools), the permission policy of each MCP tool,
 * and the conversion of a tools/call result into session event content. No I/O, so
 * the agent view and the unit tests use it directly. See docs/server/mcp.md. */
#ifndef AL_SERVER_MCP_TOOLS_H
#define AL_SERVER_MCP_TOOLS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define MCP_MODEL_NAME_MAX 128 /* Messages API tool names: ^[A-Za-z0-9_-]{1,128}$ */
#define MCP_OFFERED_MAX 256    /* MCP tools offered to the model across all servers */

/* The name the model sees for an MCP tool: "mcp__<server>__<tool>"; a tool name with
 * characters the Messages API refuses, or one that would not fit, is sanitized and
 * suffixed with 8 hex digits of its SHA-256 so different tools never share a name.
 * Deterministic, so the history rebuilt from the log uses the same names. Heap. */
char *mcp_tool_model_name(const char *server, const char *tool);

/* Appends to catalog the tools one server listed (tools/list "tools" array) that the
 * agent's mcp_toolset for server enables: {name (model-facing), server, tool,
 * description, input_schema, read_only}. Skips malformed entries, names already in
 * the catalog and anything past MCP_OFFERED_MAX. Returns how many were added. */
size_t mcp_catalog_add(json_t *catalog, const json_t *agent, const char *server,
                       const json_t *tools);
/* The catalog entry with this model-facing name, or NULL. */
const json_t *mcp_catalog_find(const json_t *catalog, const char *model_name);
/* Messages API tool definitions for the catalog (name, description, input_schema). */
json_t *mcp_catalog_request_tools(const json_t *catalog);

/* The mcp_toolset entry for server in the agent snapshot, or NULL. */
const json_t *mcp_toolset_for(const json_t *agent, const char *server);
/* enabled and policy type for one tool of a toolset: its config, else default_config,
 * else enabled + always_ask (airlock's MCP default, tools.md §14.3). */
void mcp_tool_config(const json_t *toolset, const char *tool, bool *enabled, const char **policy);
/* Permission for one call (tools.md §14.3): always_allow → allow, always_ask → ask,
 * auto → allow when the server annotated the tool readOnlyHint, else ask.
 * *evaluation is a new reference. */
void mcp_tool_permission(const json_t *agent, const char *server, const char *tool, bool read_only,
                         const char **permission, json_t **evaluation);

/* A CallToolResult as session event content blocks (text, image; other kinds become
 * text notes) and its isError flag. New reference, never NULL. */
json_t *mcp_result_content(const json_t *result, bool *is_error);

#endif
