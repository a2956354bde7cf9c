/* Fuzzes the agent loop's handling of a model's streamed answer: bytes go through the
 * SSE parser into agent_stream (src/server/loop/agent_stream.c), the result is mapped to
 * session events against a fixed agent snapshot and MCP catalog, and those events are
 * walked by
 * agent_view_build as the next step would. Model output is untrusted input. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "server/loop/agent_stream.h"
#include "server/loop/agent_view.h"
#include "sse.h"

static json_t *agent;
static json_t *catalog; /* MCP tools offered to the model (mcp_tools.h) */

static int
on_event(const struct sse_event *ev, void *arg)
{
	return agent_stream_event(arg, ev->event.p, ev->event.len, ev->data.p, ev->data.len);
}

static void
hook_start(void *arg, const char *event_id, const char *type)
{
	(void)arg;
	if (event_id == NULL || type == NULL)
		abort();
}

static void
hook_text(void *arg, const char *event_id, const char *piece)
{
	(void)arg;
	if (event_id == NULL || piece == NULL)
		abort(); /* the server would frame these into an event_delta */
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	agent = json_loads(
	    "{\"model\":{\"id\":\"m\"},\"tools\":[{\"type\":\"agent_toolset_20260401\","
	    "\"configs\":[{\"name\":\"bash\",\"permission_policy\":{\"type\":\"always_ask\"}},"
	    "{\"name\":\"read\",\"permission_policy\":{\"type\":\"auto\"}}]},"
	    "{\"type\":\"custom\",\"name\":\"lookup\",\"input_schema\":{\"type\":\"object\"}},"
	    "{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"docs\",\"configs\":[{\"name\":"
	    "\"search\",\"permission_policy\":{\"type\":\"always_allow\"}}]}],"
	    "\"mcp_servers\":[{\"type\":\"url\",\"name\":\"docs\",\"url\":\"http://x/mcp\"}]}",
	    0, NULL);
	catalog = json_loads("[{\"name\":\"mcp__docs__search\",\"server\":\"docs\",\"tool\":"
	                     "\"search\",\"read_only\":false},{\"name\":\"mcp__docs__get\","
	                     "\"server\":\"docs\",\"tool\":\"get\",\"read_only\":true}]",
	                     0, NULL);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_stream st;
	struct agent_stream_hooks hooks = {hook_start, hook_text, NULL};
	struct sse_parser p;
	json_t *events = NULL;

	if (agent == NULL)
		LLVMFuzzerInitialize(NULL, NULL);
	agent_stream_init(&st, &hooks);
	sse_parser_init(&p, 0, 1 << 20, on_event, &st);
	sse_parser_feed(&p, (const char *)data, size);
	sse_parser_free(&p);
	if (agent_stream_to_events(&st, agent, catalog, NULL, &events) == 0) {
		/* A user turn, the span, the answer: what the next step reads back. */
		json_t *log = json_pack("[{s:s, s:s, s:[{s:s, s:s}], s:s}, {s:s, s:s, s:s}]",
		                        "type", "user.message", "id", "u", "content", "type",
		                        "text", "text", "hi", "processed_at", "t", "type",
		                        "span.model_request_start", "id", "s", "processed_at", "t");
		size_t i;
		json_t *ev;
		json_array_foreach(events, i, ev)
		{
			if (!json_is_string(json_object_get(ev, "type")))
				abort();
			json_t *copy = json_deep_copy(ev);
			if (!json_object_get(copy, "id")) {
				char id[32];
				snprintf(id, sizeof(id), "e%zu", i);
				json_object_set_new(copy, "id", json_string(id));
			}
			json_array_append_new(log, copy);
		}
		json_array_append_new(log,
		                      json_pack("{s:s, s:s, s:b}", "type", "span.model_request_end",
		                                "id", "se", "is_error", 0));
		struct agent_view v;
		agent_view_build(log, &v);
		char *body = json_dumps(v.messages, JSON_COMPACT);
		free(body);
		agent_view_free(&v);
		json_decref(log);
		json_decref(events);
	}
	agent_stream_free(&st);
	return 0;
}
