/* One streamed Messages API answer, accumulated from its SSE events (message_start,
 * content_block_*, message_delta, message_stop, error) and turned into session events.
 * Pure and bounded: model output is untrusted input (fuzzed in tests/fuzz). */
#ifndef AL_SERVER_AGENT_STREAM_H
#define AL_SERVER_AGENT_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "agent_view.h"

#define AGENT_STREAM_MAX_OUTPUT (16u << 20) /* text + thinking + tool JSON of one answer */
#define AGENT_STREAM_MAX_BLOCKS 4096

struct agent_stream_hooks {
	/* A text or thinking block began; event_id is its pre-allocated session event id. */
	void (*block_start)(void *arg, const char *event_id, const char *block_type);
	/* A piece of a text block, for event_delta previews. */
	void (*text)(void *arg, const char *event_id, const char *piece);
	void *arg;
};

struct agent_stream {
	json_t *blocks;    /* per content index: {type, text|thinking|json, event_id, name} */
	json_t *usage;     /* message_start usage updated by message_delta */
	char *stop_reason; /* from message_delta */
	json_t *error;     /* the object of an `event: error` frame */
	bool got_stop;     /* message_stop seen */
	size_t out_bytes;
	struct agent_stream_hooks hooks;
};

void agent_stream_init(struct agent_stream *st, const struct agent_stream_hooks *hooks);
void agent_stream_free(struct agent_stream *st);
/* One SSE event (name may be empty). 0, or AL_E_PROTO (malformed) / AL_E_TOOBIG. */
int agent_stream_event(struct agent_stream *st, const char *name, size_t name_len, const char *data,
                       size_t data_len);
/* The answer as session events in order (agent.thinking, agent.message per text block,
 * agent.tool_use / agent.custom_tool_use / agent.mcp_tool_use with permissions from
 * the agent snapshot and the session's MCP catalog, which may be NULL).
 * AL_E_PROTO when a tool input is not a JSON object. */
int agent_stream_to_events(const struct agent_stream *st, const json_t *agent,
                           const json_t *mcp_catalog, const struct agent_policy *pol,
                           json_t **events);

#endif
