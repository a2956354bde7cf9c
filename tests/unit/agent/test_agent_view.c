/* Unit tests for the agent loop's pure half (src/server/loop/agent_view.c): event log →
 * Messages history, open tool calls, and the decision to call the model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "err.h"
#include "server/loop/agent_stream.h"
#include "server/loop/agent_view.h"

static json_t *
J(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, 0, &e);
	if (v == NULL)
		fail_msg("bad test JSON at %d: %s", e.position, e.text);
	return v;
}

static void
assert_json_eq(const json_t *got, const char *want_text)
{
	json_t *want = J(want_text);
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
		char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
		print_error("got  %s\nwant %s\n", g, w);
		free(g);
		free(w);
		json_decref(want);
		fail();
	}
	json_decref(want);
}

#define UMSG(id, text, processed)                                                                  \
	"{\"type\":\"user.message\",\"id\":\"" id "\",\"processed_at\":" processed                 \
	",\"content\":[{\"type\":\"text\",\"text\":\"" text "\"}]}"
#define SPAN_START(id)                                                                             \
	"{\"type\":\"span.model_request_start\",\"id\":\"" id "\",\"processed_at\":\"t\"}"
#define SPAN_END(err)                                                                              \
	"{\"type\":\"span.model_request_end\",\"id\":\"e\",\"is_error\":" err                      \
	",\"processed_at\":\"t\"}"
#define AMSG(text)                                                                                 \
	"{\"type\":\"agent.message\",\"id\":\"am\",\"processed_at\":\"t\",\"content\":[{\"type\":" \
	"\"text\",\"text\":\"" text "\"}]}"
#define TOOL(id, name, perm)                                                                       \
	"{\"type\":\"agent.tool_use\",\"id\":\"" id "\",\"name\":\"" name                          \
	"\",\"input\":{\"command\":\"ls\"},\"evaluated_permission\":\"" perm                       \
	"\",\"processed_at\":\"t\"}"
#define RESULT(id, text)                                                                           \
	"{\"type\":\"user.tool_result\",\"id\":\"r" id "\",\"tool_use_id\":\"" id                  \
	"\",\"content\":[{\"type\":\"text\",\"text\":\"" text "\"}],\"is_error\":false,"           \
	"\"processed_at\":\"t\"}"

struct view_case {
	const char *name;
	const char *events;
	bool needs_model;
	size_t waiting;
	const char *blocked;
	const char *messages; /* NULL: not checked */
	const char *unprocessed;
	bool interrupt_pending;
	bool open_span;
};

static const struct view_case view_cases[] = {
    {"first message", "[" UMSG("u1", "hi", "null") "]", true, 0, "[]",
     "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}]", "[\"u1\"]", false,
     false},
    {"answered turn",
     "[" UMSG("u1", "hi", "\"t\"") "," SPAN_START("s1") "," AMSG("hello") "," SPAN_END("false") "]",
     false, 0, "[]",
     "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
     "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"hello\"}]}]",
     "[]", false, false},
    {"failed request is retried on wake",
     "[" UMSG("u1", "hi", "\"t\"") "," SPAN_START("s1") "," SPAN_END("true") "]", true, 0, "[]",
     NULL, "[]", false, false},
    {"retries exhausted: the input is spent",
     "[" UMSG("u1", "hi", "\"t\"") "," SPAN_START("s1") "," SPAN_END(
         "true") ",{\"type\":\"session.error\",\"error\":{\"type\":\"model_request_failed_"
                 "error\",\"retry_status\":{\"type\":\"exhausted\"}}}]",
     false, 0, "[]", NULL, "[]", false, false},
    {"request in flight at restart", "[" UMSG("u1", "hi", "\"t\"") "," SPAN_START("s1") "]", true,
     0, "[]", NULL, "[]", false, true},
    {"worker tool pending",
     "[" UMSG("u1", "ls", "\"t\"") "," SPAN_START("s1") "," AMSG("running") "," TOOL(
         "t1", "bash", "allow") "," SPAN_END("false") "]",
     false, 1, "[]", NULL, "[]", false, false},
    {"worker tool answered",
     "[" UMSG("u1", "ls", "\"t\"") "," SPAN_START("s1") "," AMSG("running") "," TOOL(
         "t1", "bash", "allow") "," SPAN_END("false") "," RESULT("t1", "a b c") "]",
     true, 0, "[]",
     "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"ls\"}]},"
     "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"running\"},"
     "{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"bash\",\"input\":{\"command\":\"ls\"}}]},"
     "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
     "\"content\":[{\"type\":\"text\",\"text\":\"a b c\"}]}]}]",
     "[]", false, false},
    {"duplicate result counts once",
     "[" UMSG("u1", "ls", "\"t\"") "," SPAN_START("s1") "," TOOL(
         "t1", "bash", "allow") "," SPAN_END("false") "," RESULT("t1", "one") "," RESULT("t1",
                                                                                         "two") "]",
     true, 0, "[]",
     "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"ls\"}]},"
     "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"bash\","
     "\"input\":{\"command\":\"ls\"}}]},"
     "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
     "\"content\":[{\"type\":\"text\",\"text\":\"one\"}]}]}]",
     "[]", false, false},
    {"ask blocks until confirmed",
     "[" UMSG("u1", "ls", "\"t\"") "," SPAN_START("s1") "," TOOL("t1", "bash",
                                                                 "ask") "," SPAN_END("false") "]",
     false, 0, "[\"t1\"]", NULL, "[]", false, false},
    {"allow confirmation waits for the worker",
     "[" UMSG("u1", "ls", "\"t\"") "," SPAN_START("s1") "," TOOL("t1", "bash", "ask") "," SPAN_END(
         "false") ","
                  "{\"type\":\"user.tool_confirmation\",\"id\":\"c1\",\"tool_use_id\":\"t1\","
                  "\"result\":\"allow\",\"processed_at\":null}]",
     false, 1, "[]", NULL, "[]", false, false},
    {"custom tool blocks until its result",
     "[" UMSG("u1", "q", "\"t\"") "," SPAN_START(
         "s1") ","
               "{\"type\":\"agent.custom_tool_use\",\"id\":\"k1\",\"name\":\"lookup\",\"input\":{},"
               "\"processed_at\":\"t\"}," SPAN_END("false") "]",
     false, 0, "[\"k1\"]", NULL, "[]", false, false},
    {"custom tool answered",
     "[" UMSG("u1", "q", "\"t\"") "," SPAN_START(
         "s1") ","
               "{\"type\":\"agent.custom_tool_use\",\"id\":\"k1\",\"name\":\"lookup\",\"input\":{},"
               "\"processed_at\":\"t\"}," SPAN_END(
                   "false") ","
                            "{\"type\":\"user.custom_tool_result\",\"id\":\"x\",\"custom_tool_use_"
                            "id\":\"k1\",\"content\":[],\"processed_at\":\"t\"}]",
     true, 0, "[]",
     "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\"}]},"
     "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"k1\",\"name\":"
     "\"lookup\",\"input\":{}}]},"
     "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"k1\",\"content\":"
     "\"(no output)\"}]}]",
     "[]", false, false},
    {"message during a request goes after its answer",
     "[" UMSG("u1", "one", "\"t\"") "," SPAN_START("s1") "," UMSG("u2", "two", "null") "," AMSG(
         "first") "," SPAN_END("false") "]",
     true, 0, "[]",
     "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"one\"}]},"
     "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"first\"}]},"
     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"two\"}]}]",
     "[\"u2\"]", false, false},
    {"interrupt pending mid-request",
     "[" UMSG("u1", "one", "\"t\"") "," SPAN_START(
         "s1") ",{\"type\":\"user.interrupt\",\"id\":\"i1\",\"processed_at\":null}]",
     false, 0, "[]", NULL, "[]", true, true},
    {"interrupt ends the turn and closes open calls",
     "[" UMSG("u1", "q", "\"t\"") "," SPAN_START(
         "s1") ","
               "{\"type\":\"agent.custom_tool_use\",\"id\":\"k1\",\"name\":\"lookup\",\"input\":{},"
               "\"processed_at\":\"t\"}," SPAN_END(
                   "false") ","
                            "{\"type\":\"user.interrupt\",\"id\":\"i1\",\"processed_at\":\"t\"}]",
     false, 0, "[]", NULL, "[]", false, false},
    {"results lead the user turn",
     "[" UMSG("u1", "ls", "\"t\"") "," SPAN_START("s1") "," TOOL(
         "t1", "bash", "allow") "," SPAN_END("false") "," UMSG("u2", "also",
                                                               "null") "," RESULT("t1", "out") "]",
     true, 0, "[]",
     "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"ls\"}]},"
     "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"bash\","
     "\"input\":{\"command\":\"ls\"}}]},"
     "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
     "\"content\":[{\"type\":\"text\",\"text\":\"out\"}]},{\"type\":\"text\",\"text\":\"also\"}]}]",
     "[\"u2\"]", false, false},
};

static void
test_view_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(view_cases) / sizeof(view_cases[0]); i++) {
		const struct view_case *c = &view_cases[i];
		json_t *events = J(c->events);
		struct agent_view v;
		print_message("case: %s\n", c->name);
		agent_view_build(events, &v);
		assert_int_equal(v.needs_model, c->needs_model);
		assert_int_equal(v.waiting, c->waiting);
		assert_json_eq(v.blocked, c->blocked);
		if (c->messages)
			assert_json_eq(v.messages, c->messages);
		assert_json_eq(v.unprocessed, c->unprocessed);
		assert_int_equal(v.interrupt_pending, c->interrupt_pending);
		assert_int_equal(v.open_span != NULL, c->open_span);
		agent_view_free(&v);
		json_decref(events);
	}
}

static void
test_deny_messages(void **state)
{
	(void)state;
	json_t *events = J("[" UMSG("u1", "x", "\"t\"") "," SPAN_START("s1") "," TOOL(
	    "t1", "bash",
	    "ask") "," TOOL("t2", "write",
	                    "ask") "," TOOL("t3", "web_search",
	                                    "deny") "," SPAN_END("false") ","
	                                                                  "{\"type\":\"user.tool_"
	                                                                  "confirmation\",\"id\":"
	                                                                  "\"c1\",\"tool_use_id\":"
	                                                                  "\"t1\","
	                                                                  "\"result\":\"deny\","
	                                                                  "\"deny_message\":\"not "
	                                                                  "today\",\"processed_"
	                                                                  "at\":null},"
	                                                                  "{\"type\":\"user.tool_"
	                                                                  "confirmation\",\"id\":"
	                                                                  "\"c2\",\"tool_use_id\":"
	                                                                  "\"t2\","
	                                                                  "\"result\":\"deny\","
	                                                                  "\"processed_at\":null}"
	                                                                  "]");
	struct agent_view v;
	agent_view_build(events, &v);
	assert_json_eq(v.to_deny,
	               "[{\"id\":\"t1\",\"name\":\"bash\",\"message\":\"The user denied permission "
	               "to use bash: not today\"},"
	               "{\"id\":\"t2\",\"name\":\"write\",\"message\":\"The user denied permission "
	               "to use write.\"},"
	               "{\"id\":\"t3\",\"name\":\"web_search\",\"message\":\"Tool 'web_search' is "
	               "not available in this session.\"}]");
	assert_false(v.needs_model);
	assert_json_eq(v.acks, "[\"c1\", \"c2\"]");
	agent_view_free(&v);
	json_decref(events);
}

static const char *agent_doc;

struct feed {
	const char *name;
	const char *data;
};

static int
feed_all(struct agent_stream *st, const struct feed *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = agent_stream_event(st, f[i].name, strlen(f[i].name), f[i].data,
		                           strlen(f[i].data));
		if (r != 0)
			return r;
	}
	return 0;
}

static void
test_stream(void **state)
{
	(void)state;
	static const struct feed ok[] = {
	    {"message_start",
	     "{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}"},
	    {"ping", "{\"type\":\"ping\"}"},
	    {"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_"
	                            "block\":{\"type\":\"text\",\"text\":\"\"}}"},
	    {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
	                            "\"type\":\"text_delta\",\"text\":\"Hel\"}}"},
	    {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
	                            "\"type\":\"text_delta\",\"text\":\"lo\"}}"},
	    {"content_block_start",
	     "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_"
	     "use\",\"id\":\"toolu_1\",\"name\":\"lookup\",\"input\":{}}}"},
	    {"content_block_delta",
	     "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_"
	     "delta\",\"partial_json\":\"{\\\"q\\\":\"}}"},
	    {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{"
	                            "\"type\":\"input_json_delta\",\"partial_json\":\" 1}\"}}"},
	    {"content_block_start",
	     "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_"
	     "use\",\"id\":\"toolu_2\",\"name\":\"bash\",\"input\":{}}}"},
	    {"message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}"
	                      ",\"usage\":{\"output_tokens\":9}}"},
	    {"message_stop", "{\"type\":\"message_stop\"}"},
	};
	struct agent_stream st;
	json_t *agent = J(agent_doc), *events = NULL;
	agent_stream_init(&st, NULL);
	assert_int_equal(feed_all(&st, ok, sizeof(ok) / sizeof(ok[0])), 0);
	assert_true(st.got_stop);
	assert_string_equal(st.stop_reason, "tool_use");
	assert_json_eq(st.usage, "{\"input_tokens\":5,\"output_tokens\":9}");
	assert_int_equal(agent_stream_to_events(&st, agent, NULL, NULL, &events), 0);
	assert_int_equal(json_array_size(events), 3);
	json_t *m = json_array_get(events, 0);
	assert_string_equal(json_string_value(json_object_get(m, "type")), "agent.message");
	assert_json_eq(json_object_get(m, "content"), "[{\"type\":\"text\",\"text\":\"Hello\"}]");
	assert_json_eq(
	    json_array_get(events, 1),
	    "{\"type\":\"agent.custom_tool_use\",\"name\":\"lookup\",\"input\":{\"q\":1}}");
	assert_json_eq(
	    json_array_get(events, 2),
	    "{\"type\":\"agent.tool_use\",\"name\":\"bash\",\"input\":{},"
	    "\"evaluated_permission\":\"ask\",\"evaluation\":{\"type\":\"always_ask\"}}");
	json_decref(events);
	agent_stream_free(&st);

	/* Malformed streams are protocol errors, never crashes. */
	static const struct feed bad[][2] = {
	    {{"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_"
	                             "block\":{\"type\":\"text\",\"text\":\"\"}}"},
	     {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
	                             "\"type\":\"input_json_delta\",\"partial_json\":\"x\"}}"}},
	    {{"content_block_start", "{\"type\":\"content_block_start\",\"index\":3,\"content_"
	                             "block\":{\"type\":\"text\"}}"},
	     {"ping", "{}"}},
	    {{"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_"
	                             "block\":{\"type\":\"text\",\"text\":\"\"}}"},
	     {"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_"
	                             "block\":{\"type\":\"text\",\"text\":\"\"}}"}},
	    {{"message_start", "not json"}, {"ping", "{}"}},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		agent_stream_init(&st, NULL);
		assert_int_equal(feed_all(&st, bad[i], 2), AL_E_PROTO);
		agent_stream_free(&st);
	}

	/* Tool input that is not an object fails the whole answer. */
	static const struct feed notobj[] = {
	    {"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_"
	                            "block\":{\"type\":\"tool_use\",\"name\":\"bash\"}}"},
	    {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{"
	                            "\"type\":\"input_json_delta\",\"partial_json\":\"[1,2\"}}"},
	};
	agent_stream_init(&st, NULL);
	assert_int_equal(feed_all(&st, notobj, 2), 0);
	assert_int_equal(agent_stream_to_events(&st, agent, NULL, NULL, &events), AL_E_PROTO);
	agent_stream_free(&st);
	json_decref(agent);
}

static const char *agent_doc =
    "{\"model\":{\"id\":\"claude-opus-4-8\",\"effort\":{\"type\":\"high\"}},\"system\":\"be kind\","
    "\"tools\":[{\"type\":\"agent_toolset_20260401\","
    "\"default_config\":{\"enabled\":true,\"permission_policy\":{\"type\":\"always_allow\"}},"
    "\"configs\":[{\"name\":\"bash\",\"enabled\":true,\"permission_policy\":{\"type\":\"always_"
    "ask\"}},"
    "{\"name\":\"read\",\"enabled\":true,\"permission_policy\":{\"type\":\"auto\"}},"
    "{\"name\":\"write\",\"enabled\":true,\"permission_policy\":{\"type\":\"auto\"}},"
    "{\"name\":\"grep\",\"enabled\":false,\"permission_policy\":{\"type\":\"always_allow\"}}]},"
    "{\"type\":\"custom\",\"name\":\"lookup\",\"description\":\"d\",\"input_schema\":{\"type\":"
    "\"object\"}}]}";

static void
test_tool_evaluate(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		enum agent_tool_kind kind;
		const char *permission;
		const char *evaluation;
	} cases[] = {
	    {"bash", AGENT_TOOL_BUILTIN, "ask", "{\"type\":\"always_ask\"}"},
	    {"edit", AGENT_TOOL_BUILTIN, "allow", "{\"type\":\"always_allow\"}"},
	    {"read", AGENT_TOOL_BUILTIN, "allow",
	     "{\"type\":\"auto\",\"evaluated_permission\":\"allow\",\"reason_code\":\"airlock_read_"
	     "only_tool\"}"},
	    {"write", AGENT_TOOL_BUILTIN, "ask",
	     "{\"type\":\"auto\",\"evaluated_permission\":\"ask\",\"reason_code\":\"airlock_"
	     "mutating_tool\"}"},
	    {"grep", AGENT_TOOL_UNKNOWN, "deny", NULL},
	    {"web_fetch", AGENT_TOOL_UNKNOWN, "deny", NULL},
	    {"nope", AGENT_TOOL_UNKNOWN, "deny", NULL},
	    {"lookup", AGENT_TOOL_CUSTOM, NULL, NULL},
	};
	json_t *agent = J(agent_doc);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct agent_tool_eval e;
		agent_tool_evaluate(agent, NULL, NULL, cases[i].name, &e);
		assert_int_equal(e.kind, cases[i].kind);
		if (cases[i].permission)
			assert_string_equal(e.permission, cases[i].permission);
		if (cases[i].evaluation)
			assert_json_eq(e.evaluation, cases[i].evaluation);
		else
			assert_null(e.evaluation);
		json_decref(e.evaluation);
	}
	json_decref(agent);
}

static void
test_request_body(void **state)
{
	(void)state;
	json_t *agent = J(agent_doc);
	json_t *msgs = J("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}]");
	json_t *body = agent_request_body(agent, NULL, NULL, msgs, 4096);
	assert_string_equal(json_string_value(json_object_get(body, "model")), "claude-opus-4-8");
	assert_string_equal(json_string_value(json_object_get(body, "system")), "be kind");
	assert_int_equal(json_integer_value(json_object_get(body, "max_tokens")), 4096);
	assert_true(json_is_true(json_object_get(body, "stream")));
	json_t *tools = json_object_get(body, "tools");
	const char *names[] = {"bash", "read", "write", "edit", "glob", "lookup"};
	assert_int_equal(json_array_size(tools), 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(
		    json_string_value(json_object_get(json_array_get(tools, i), "name")), names[i]);
	assert_json_eq(json_object_get(json_array_get(tools, 0), "input_schema"),
	               "{\"type\":\"object\",\"properties\":{"
	               "\"command\":{\"type\":\"string\",\"description\":\"The command to run\"},"
	               "\"restart\":{\"type\":\"boolean\",\"description\":\"Restart the persistent "
	               "shell before running\"},"
	               "\"timeout_ms\":{\"type\":\"integer\",\"description\":\"Per-call timeout in "
	               "milliseconds\"}}}");
	assert_json_eq(
	    json_array_get(tools, 5),
	    "{\"name\":\"lookup\",\"description\":\"d\",\"input_schema\":{\"type\":\"object\"}}");
	assert_json_eq(json_object_get(body, "messages"),
	               "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}]");
	json_decref(body);
	json_decref(msgs);

	/* No toolset, no custom tools, no system: the keys are left out. */
	json_t *bare = J("{\"model\":\"claude-x\",\"system\":null,\"tools\":[]}");
	msgs = J("[]");
	body = agent_request_body(bare, NULL, NULL, msgs, 10);
	assert_null(json_object_get(body, "tools"));
	assert_null(json_object_get(body, "system"));
	assert_string_equal(json_string_value(json_object_get(body, "model")), "claude-x");
	/* skills' text: the prompt when there was none, after a blank line otherwise */
	agent_request_add_system(body, NULL);
	assert_null(json_object_get(body, "system"));
	agent_request_add_system(body, "<available_skills/>");
	assert_string_equal(json_string_value(json_object_get(body, "system")),
	                    "<available_skills/>");
	json_object_set_new(body, "system", json_string("Be brief."));
	agent_request_add_system(body, "<available_skills/>");
	assert_string_equal(json_string_value(json_object_get(body, "system")),
	                    "Be brief.\n\n<available_skills/>");
	json_decref(body);
	json_decref(msgs);
	json_decref(bare);
	json_decref(agent);
}

/* The tool policy over the same agent: what each principal is offered and how each call
 * is evaluated (deny > ask > allow; deny makes any call a denied agent.tool_use). */
static const char policy_text[] = "default: deny\n"
                                  "rules:\n"
                                  "  - id: staff-tools\n"
                                  "    effect: allow\n"
                                  "    groups: [auditors, interns]\n"
                                  "    tools: [bash, read, write, edit, lookup]\n"
                                  "  - id: no-intern-shell\n"
                                  "    effect: deny\n"
                                  "    groups: [interns]\n"
                                  "    tools: [bash, lookup]\n"
                                  "  - id: writes-need-a-yes\n"
                                  "    effect: ask\n"
                                  "    groups: [auditors]\n"
                                  "    tools: [edit]\n";

static void
test_policy(void **state)
{
	(void)state;
	struct policy *p = NULL;
	char err[300];
	assert_int_equal(
	    policy_parse("test.yaml", policy_text, strlen(policy_text), &p, err, sizeof err), 0);
	json_t *agent = J(agent_doc);
	const char *auditors[] = {"auditors"}, *interns[] = {"interns"};
	struct agent_policy aud = {.p = p,
	                           .who = {.sub = "alice", .groups = auditors, .n_groups = 1}};
	struct agent_policy intern = {.p = p,
	                              .who = {.sub = "bob", .groups = interns, .n_groups = 1}};

	/* offered: interns never see bash or the custom tool */
	json_t *tools = agent_request_tools(agent, NULL, &intern);
	size_t i;
	json_t *t;
	json_array_foreach(tools, i, t)
	{
		assert_string_not_equal(json_string_value(json_object_get(t, "name")), "bash");
		assert_string_not_equal(json_string_value(json_object_get(t, "name")), "lookup");
	}
	assert_int_equal(json_array_size(tools), 3); /* read, write, edit */
	json_decref(tools);
	/* glob is enabled on the agent but no rule allows it: default deny */
	tools = agent_request_tools(agent, NULL, &aud);
	assert_int_equal(json_array_size(tools), 5); /* bash, edit, read, write, lookup */
	json_decref(tools);
	/* without a policy file nothing changes */
	tools = agent_request_tools(agent, NULL, NULL);
	assert_int_equal(json_array_size(tools), 6);
	json_decref(tools);

	const struct {
		struct agent_policy *who;
		const char *name;
		enum agent_tool_kind kind;
		const char *permission;
		const char *rule;
	} cases[] = {
	    /* a model naming a tool it was never offered is denied by the rule */
	    {&intern, "bash", AGENT_TOOL_POLICY_DENIED, "deny", "no-intern-shell"},
	    {&intern, "lookup", AGENT_TOOL_POLICY_DENIED, "deny", "no-intern-shell"},
	    {&intern, "read", AGENT_TOOL_BUILTIN, "allow", "staff-tools"},
	    /* the agent's own always_ask stays ask under an allow */
	    {&aud, "bash", AGENT_TOOL_BUILTIN, "ask", "staff-tools"},
	    /* policy ask turns the agent's allow into ask */
	    {&aud, "edit", AGENT_TOOL_BUILTIN, "ask", "writes-need-a-yes"},
	    {&aud, "lookup", AGENT_TOOL_CUSTOM, NULL, "staff-tools"},
	    /* no rule matches: the default (deny) */
	    {&aud, "glob", AGENT_TOOL_POLICY_DENIED, "deny", "default"},
	    /* unknown to the agent and not denied by a rule: unavailable, as before */
	    {&aud, "nope", AGENT_TOOL_POLICY_DENIED, "deny", "default"},
	    {&intern, "grep", AGENT_TOOL_POLICY_DENIED, "deny", "default"},
	};
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct agent_tool_eval e;
		agent_tool_evaluate(agent, NULL, cases[i].who, cases[i].name, &e);
		assert_int_equal(e.kind, cases[i].kind);
		if (cases[i].permission)
			assert_string_equal(e.permission, cases[i].permission);
		if (cases[i].rule)
			assert_string_equal(
			    json_string_value(json_object_get(e.evaluation, "policy_rule")),
			    cases[i].rule);
		json_decref(e.evaluation);
	}

	/* the denied call reaches the log as agent.tool_use with the rule, and the view
	 * answers it with the rule's name */
	struct agent_tool_eval e;
	agent_tool_evaluate(agent, NULL, &intern, "bash", &e);
	assert_json_eq(e.evaluation, "{\"type\":\"policy\",\"evaluated_permission\":\"deny\","
	                             "\"policy_rule\":\"no-intern-shell\",\"policy_effect\":"
	                             "\"deny\"}");
	json_t *ev = json_pack("{s:s, s:s, s:s, s:{}, s:s, s:O}", "type", "agent.tool_use", "id",
	                       "t9", "name", "bash", "input", "evaluated_permission", "deny",
	                       "evaluation", e.evaluation);
	json_decref(e.evaluation);
	json_t *events = J("[" UMSG("u1", "x", "\"t\"") "," SPAN_START("s1") "]");
	json_array_append_new(events, ev);
	json_array_append_new(events, J(SPAN_END("false")));
	struct agent_view v;
	agent_view_build(events, &v);
	assert_json_eq(v.to_deny, "[{\"id\":\"t9\",\"name\":\"bash\",\"message\":\"Tool "
	                          "'bash' denied by policy rule no-intern-shell.\"}]");
	assert_int_equal(v.waiting, 0);
	agent_view_free(&v);
	json_decref(events);
	json_decref(agent);
	policy_unref(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_view_cases),    cmocka_unit_test(test_deny_messages),
	    cmocka_unit_test(test_tool_evaluate), cmocka_unit_test(test_request_body),
	    cmocka_unit_test(test_stream),        cmocka_unit_test(test_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
