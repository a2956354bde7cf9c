/* Unit tests for the MCP connector's pure half (src/server/loop/mcp_tools.c) and its place
 * in the agent view: model-facing names, the catalog built from tools/list, permission
 * policies, CallToolResult conversion, MCP calls in the event log, URL splitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "server/loop/agent_stream.h"
#include "server/loop/agent_view.h"
#include "server/loop/mcp_client.h"
#include "server/loop/mcp_tools.h"

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

static bool
api_name_ok(const char *n)
{
	size_t l = strlen(n);
	if (l == 0 || l > 128)
		return false;
	for (size_t i = 0; i < l; i++) {
		char c = n[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

static void
test_model_names(void **state)
{
	(void)state;
	char *a = mcp_tool_model_name("docs", "search");
	assert_string_equal(a, "mcp__docs__search");
	free(a);
	a = mcp_tool_model_name("everything", "trigger-long-running-operation");
	assert_string_equal(a, "mcp__everything__trigger-long-running-operation");
	free(a);

	/* Characters the Messages API refuses: sanitized plus a digest, so "a.b" and
	 * "a_b" (which is clean and kept as is) never collide. */
	char *dot = mcp_tool_model_name("docs", "a.b");
	char *under = mcp_tool_model_name("docs", "a_b");
	assert_true(api_name_ok(dot));
	assert_string_equal(under, "mcp__docs__a_b");
	assert_string_not_equal(dot, under);
	assert_int_equal(strncmp(dot, "mcp__docs__a_b_", 15), 0);
	assert_int_equal(strlen(dot), 15 + 8);
	char *again = mcp_tool_model_name("docs", "a.b");
	assert_string_equal(dot, again); /* deterministic: the log replays the same name */
	free(dot);
	free(under);
	free(again);

	/* Too long: cut to fit, still unique per tool. */
	char longname[201], other[201];
	memset(longname, 'x', 200);
	longname[200] = '\0';
	memcpy(other, longname, sizeof(other));
	other[199] = 'y';
	char *l1 = mcp_tool_model_name("srv", longname);
	char *l2 = mcp_tool_model_name("srv", other);
	assert_true(api_name_ok(l1));
	assert_true(api_name_ok(l2));
	assert_int_equal(strlen(l1), 128);
	assert_string_not_equal(l1, l2);
	free(l1);
	free(l2);
	char *uni = mcp_tool_model_name("srv", "héllo wörld");
	assert_true(api_name_ok(uni));
	free(uni);
}

static const char *agent_doc =
    "{\"model\":{\"id\":\"m\"},\"mcp_servers\":[{\"type\":\"url\",\"name\":\"docs\",\"url\":"
    "\"http://127.0.0.1:1/mcp\"},{\"type\":\"url\",\"name\":\"ops\",\"url\":\"http://x/mcp\"}],"
    "\"tools\":[{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"docs\",\"default_config\":{"
    "\"enabled\":true,\"permission_policy\":{\"type\":\"always_ask\"}},\"configs\":["
    "{\"name\":\"secret\",\"enabled\":false,\"permission_policy\":{\"type\":\"always_ask\"}},"
    "{\"name\":\"search\",\"enabled\":true,\"permission_policy\":{\"type\":\"always_allow\"}}]},"
    "{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"ops\",\"default_config\":{\"enabled\":true,"
    "\"permission_policy\":{\"type\":\"auto\"}},\"configs\":[]}]}";

static void
test_catalog(void **state)
{
	(void)state;
	json_t *agent = J(agent_doc);
	json_t *cat = json_array();
	json_t *docs = J("[{\"name\":\"search\",\"description\":\"Find pages\",\"inputSchema\":{"
	                 "\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}},"
	                 "\"annotations\":{\"readOnlyHint\":true}},"
	                 "{\"name\":\"secret\",\"inputSchema\":{\"type\":\"object\"}},"
	                 "{\"name\":5,\"inputSchema\":{}},"
	                 "{\"name\":\"noschema\"},"
	                 "{\"name\":\"\",\"inputSchema\":{}},"
	                 "{\"name\":\"search\",\"inputSchema\":{\"type\":\"object\"}},"
	                 "{\"name\":\"fetch\",\"title\":\"Fetch it\",\"inputSchema\":{}}]");
	assert_int_equal(mcp_catalog_add(cat, agent, "docs", docs), 2);
	assert_json_eq(cat, "[{\"name\":\"mcp__docs__search\",\"server\":\"docs\",\"tool\":"
	                    "\"search\",\"description\":\"Find pages\",\"input_schema\":{\"type\":"
	                    "\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}},"
	                    "\"read_only\":true},"
	                    "{\"name\":\"mcp__docs__fetch\",\"server\":\"docs\",\"tool\":\"fetch\","
	                    "\"description\":\"Fetch it\",\"input_schema\":{\"type\":\"object\"},"
	                    "\"read_only\":false}]");
	/* A server without a toolset in the agent offers nothing; garbage is ignored. */
	assert_int_equal(mcp_catalog_add(cat, agent, "nope", docs), 0);
	json_t *junk = J("{\"tools\":1}");
	assert_int_equal(mcp_catalog_add(cat, agent, "ops", junk), 0);
	json_decref(junk);
	assert_non_null(mcp_catalog_find(cat, "mcp__docs__fetch"));
	assert_null(mcp_catalog_find(cat, "fetch"));

	json_t *req = mcp_catalog_request_tools(cat);
	assert_json_eq(json_array_get(req, 1), "{\"name\":\"mcp__docs__fetch\",\"description\":"
	                                       "\"Fetch it\",\"input_schema\":{\"type\":"
	                                       "\"object\"}}");
	json_decref(req);

	/* The request body offers them after the built-in and custom tools. */
	json_t *msgs = J("[]");
	json_t *body = agent_request_body(agent, cat, NULL, msgs, 10);
	json_t *tools = json_object_get(body, "tools");
	assert_int_equal(json_array_size(tools), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
	                    "mcp__docs__search");
	json_decref(body);
	json_decref(msgs);

	/* The offer is bounded however much servers list. */
	json_t *many = json_array();
	for (int i = 0; i < 400; i++) {
		char n[16];
		snprintf(n, sizeof(n), "t%d", i);
		json_array_append_new(many, json_pack("{s:s, s:{}}", "name", n, "inputSchema"));
	}
	mcp_catalog_add(cat, agent, "ops", many);
	assert_int_equal(json_array_size(cat), MCP_OFFERED_MAX);
	json_decref(many);
	json_decref(docs);
	json_decref(cat);
	json_decref(agent);
}

static void
test_permissions(void **state)
{
	(void)state;
	json_t *agent = J(agent_doc);
	static const struct {
		const char *server, *tool;
		bool ro;
		const char *perm, *eval;
	} cases[] = {
	    {"docs", "search", false, "allow", "{\"type\":\"always_allow\"}"},
	    {"docs", "other", true, "ask", "{\"type\":\"always_ask\"}"},
	    {"ops", "restart", false, "ask",
	     "{\"type\":\"auto\",\"evaluated_permission\":\"ask\",\"reason_code\":"
	     "\"airlock_mcp_not_read_only\"}"},
	    {"ops", "status", true, "allow",
	     "{\"type\":\"auto\",\"evaluated_permission\":\"allow\",\"reason_code\":"
	     "\"airlock_mcp_read_only_hint\"}"},
	    /* no toolset at all: the MCP default, ask */
	    {"ghost", "x", true, "ask", "{\"type\":\"always_ask\"}"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *perm;
		json_t *ev;
		mcp_tool_permission(agent, cases[i].server, cases[i].tool, cases[i].ro, &perm, &ev);
		assert_string_equal(perm, cases[i].perm);
		assert_json_eq(ev, cases[i].eval);
		json_decref(ev);
	}
	json_decref(agent);
}

static void
test_result_content(void **state)
{
	(void)state;
	bool err;
	json_t *r = J("{\"content\":["
	              "{\"type\":\"text\",\"text\":\"hi\"},"
	              "{\"type\":\"image\",\"mimeType\":\"image/png\",\"data\":\"AAAA\"},"
	              "{\"type\":\"image\",\"mimeType\":\"image/bmp\",\"data\":\"AAAA\"},"
	              "{\"type\":\"resource\",\"resource\":{\"uri\":\"f://a\",\"text\":\"body\"}},"
	              "{\"type\":\"resource\",\"resource\":{\"uri\":\"f://b\",\"blob\":\"AA\"}},"
	              "{\"type\":\"resource_link\",\"uri\":\"f://c\",\"name\":\"c\"},"
	              "{\"type\":\"audio\",\"mimeType\":\"audio/wav\",\"data\":\"AA\"},"
	              "{\"type\":\"hologram\"},7,{\"type\":\"text\",\"text\":3}],"
	              "\"isError\":true}");
	json_t *c = mcp_result_content(r, &err);
	assert_true(err);
	assert_json_eq(c, "[{\"type\":\"text\",\"text\":\"hi\"},"
	                  "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
	                  "\"image/png\",\"data\":\"AAAA\"}},"
	                  "{\"type\":\"text\",\"text\":\"[image of type image/bmp omitted]\"},"
	                  "{\"type\":\"text\",\"text\":\"body\"},"
	                  "{\"type\":\"text\",\"text\":\"[binary resource f://b omitted]\"},"
	                  "{\"type\":\"text\",\"text\":\"Resource link: f://c\"},"
	                  "{\"type\":\"text\",\"text\":\"[audio of type audio/wav omitted]\"}]");
	json_decref(c);
	json_decref(r);

	r = J("{\"content\":[],\"structuredContent\":{\"sum\":3}}");
	c = mcp_result_content(r, &err);
	assert_false(err);
	assert_json_eq(c, "[{\"type\":\"text\",\"text\":\"{\\\"sum\\\":3}\"}]");
	json_decref(c);
	json_decref(r);

	r = J("[1]");
	c = mcp_result_content(r, &err);
	assert_false(err);
	assert_json_eq(c, "[]");
	json_decref(c);
	json_decref(r);
}

#define UMSG(id, text)                                                                             \
	"{\"type\":\"user.message\",\"id\":\"" id "\",\"processed_at\":\"t\",\"content\":[{"       \
	"\"type\":\"text\",\"text\":\"" text "\"}]}"
#define SPAN                                                                                       \
	"{\"type\":\"span.model_request_start\",\"id\":\"s1\",\"processed_at\":\"t\"},"            \
	"{\"type\":\"span.model_request_end\",\"id\":\"s2\",\"is_error\":false,"                   \
	"\"processed_at\":\"t\"}"
#define MCPUSE(id, perm)                                                                           \
	"{\"type\":\"agent.mcp_tool_use\",\"id\":\"" id "\",\"name\":\"search\",\"mcp_server_"     \
	"name\":\"docs\",\"input\":{\"q\":\"x\"},\"evaluated_permission\":\"" perm                 \
	"\",\"processed_at\":\"t\"}"
#define MCPRES(id)                                                                                 \
	"{\"type\":\"agent.mcp_tool_result\",\"id\":\"r" id "\",\"mcp_tool_use_id\":\"" id         \
	"\",\"content\":[{\"type\":\"text\",\"text\":\"found\"}],\"is_error\":false,"              \
	"\"processed_at\":\"t\"}"
#define CONFIRM(id, res)                                                                           \
	"{\"type\":\"user.tool_confirmation\",\"id\":\"c" id "\",\"tool_use_id\":\"" id            \
	"\",\"result\":\"" res "\",\"deny_message\":\"no\",\"processed_at\":null}"

static void
test_view(void **state)
{
	(void)state;
	struct agent_view v;
	json_t *log;

	/* Allowed and unanswered: the control plane runs it; the model waits. */
	log = J("[" UMSG("u1", "find x") "," SPAN "," MCPUSE("m1", "allow") "]");
	agent_view_build(log, &v);
	assert_json_eq(v.mcp_run, "[{\"id\":\"m1\",\"server\":\"docs\",\"tool\":\"search\","
	                          "\"input\":{\"q\":\"x\"}}]");
	assert_int_equal(v.waiting, 0);
	assert_false(v.needs_model);
	assert_json_eq(json_array_get(v.messages, 1),
	               "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"m1\","
	               "\"name\":\"mcp__docs__search\",\"input\":{\"q\":\"x\"}}]}");
	agent_view_free(&v);
	json_decref(log);

	/* Ask: blocked until confirmed; allow → run; deny → an mcp error result. */
	log = J("[" UMSG("u1", "find x") "," SPAN "," MCPUSE("m1", "ask") "]");
	agent_view_build(log, &v);
	assert_json_eq(v.blocked, "[\"m1\"]");
	assert_int_equal(json_array_size(v.mcp_run), 0);
	agent_view_free(&v);
	json_decref(log);
	log = J("[" UMSG("u1", "find x") "," SPAN
	                                 "," MCPUSE("m1", "ask") "," CONFIRM("m1", "allow") "]");
	agent_view_build(log, &v);
	assert_int_equal(json_array_size(v.blocked), 0);
	assert_int_equal(json_array_size(v.mcp_run), 1);
	assert_json_eq(v.acks, "[\"cm1\"]");
	agent_view_free(&v);
	json_decref(log);
	log = J("[" UMSG("u1", "find x") "," SPAN
	                                 "," MCPUSE("m1", "ask") "," CONFIRM("m1", "deny") "]");
	agent_view_build(log, &v);
	assert_json_eq(v.to_deny, "[{\"id\":\"m1\",\"name\":\"search\",\"mcp\":true,\"message\":"
	                          "\"The user denied permission to use search: no\"}]");
	agent_view_free(&v);
	json_decref(log);

	/* Answered: the result pairs with the call and the model is due. */
	log = J("[" UMSG("u1", "find x") "," SPAN "," MCPUSE("m1", "allow") "," MCPRES("m1") "]");
	agent_view_build(log, &v);
	assert_int_equal(json_array_size(v.mcp_run), 0);
	assert_true(v.needs_model);
	assert_json_eq(json_array_get(v.messages, 2),
	               "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
	               "\"m1\",\"content\":[{\"type\":\"text\",\"text\":\"found\"}]}]}");
	agent_view_free(&v);
	json_decref(log);

	/* No evaluated_permission recorded: an MCP call is never run unasked. */
	log = J("[" UMSG("u1", "find x") "," SPAN ",{\"type\":\"agent.mcp_tool_use\",\"id\":\"m9\","
	                                 "\"name\":\"t\",\"mcp_server_name\":\"docs\",\"input\":{},"
	                                 "\"processed_at\":\"t\"}]");
	agent_view_build(log, &v);
	assert_json_eq(v.blocked, "[\"m9\"]");
	agent_view_free(&v);
	json_decref(log);
}

static int
feed(struct agent_stream *st, const char *name, const char *data)
{
	return agent_stream_event(st, name, strlen(name), data, strlen(data));
}

static void
test_stream_events(void **state)
{
	(void)state;
	json_t *agent = J(agent_doc);
	json_t *cat = J("[{\"name\":\"mcp__docs__search\",\"server\":\"docs\",\"tool\":\"search\","
	                "\"read_only\":false},{\"name\":\"mcp__ops__status\",\"server\":\"ops\","
	                "\"tool\":\"status\",\"read_only\":true}]");
	struct agent_stream st;
	json_t *events = NULL;
	agent_stream_init(&st, NULL);
	assert_int_equal(
	    feed(&st, "message_start", "{\"type\":\"message_start\",\"message\":{\"usage\":{}}}"),
	    0);
	assert_int_equal(
	    feed(&st, "content_block_start",
	         "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
	         "\"tool_use\",\"id\":\"a\",\"name\":\"mcp__docs__search\",\"input\":{}}}"),
	    0);
	assert_int_equal(feed(&st, "content_block_delta",
	                      "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
	                      "\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":1}\"}}"),
	                 0);
	assert_int_equal(
	    feed(&st, "content_block_start",
	         "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
	         "\"tool_use\",\"id\":\"b\",\"name\":\"mcp__ops__status\",\"input\":{}}}"),
	    0);
	assert_int_equal(
	    feed(&st, "content_block_start",
	         "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":"
	         "\"tool_use\",\"id\":\"c\",\"name\":\"mcp__docs__nope\",\"input\":{}}}"),
	    0);
	assert_int_equal(feed(&st, "message_stop", "{\"type\":\"message_stop\"}"), 0);
	assert_int_equal(agent_stream_to_events(&st, agent, cat, NULL, &events), 0);
	assert_json_eq(events,
	               "[{\"type\":\"agent.mcp_tool_use\",\"name\":\"search\",\"mcp_server_name\":"
	               "\"docs\",\"input\":{\"q\":1},\"evaluated_permission\":\"allow\","
	               "\"evaluation\":{\"type\":\"always_allow\"}},"
	               "{\"type\":\"agent.mcp_tool_use\",\"name\":\"status\",\"mcp_server_name\":"
	               "\"ops\",\"input\":{},\"evaluated_permission\":\"allow\",\"evaluation\":{"
	               "\"type\":\"auto\",\"evaluated_permission\":\"allow\",\"reason_code\":"
	               "\"airlock_mcp_read_only_hint\"}},"
	               /* not in the catalog: refused like any tool that was not offered */
	               "{\"type\":\"agent.tool_use\",\"name\":\"mcp__docs__nope\",\"input\":{},"
	               "\"evaluated_permission\":\"deny\"}]");
	json_decref(events);
	agent_stream_free(&st);
	json_decref(cat);
	json_decref(agent);
}

static void
test_url_split(void **state)
{
	(void)state;
	static const struct {
		const char *url;
		int r;
		const char *host, *path;
		bool https;
	} cases[] = {
	    {"https://Echo.T1.Tunnel.Example/mcp", 0, "echo.t1.tunnel.example", "/mcp", true},
	    {"http://127.0.0.1:8080/mcp?x=1#frag", 0, "127.0.0.1", "/mcp?x=1", false},
	    {"https://h", 0, "h", "/", true},
	    {"https://h?q", 0, "h", "/?q", true},
	    {"http://[::1]:9/m", 0, "[::1]", "/m", false},
	    {"https://user:pw@h/mcp", -1, NULL, NULL, false},
	    {"ftp://h/x", -1, NULL, NULL, false},
	    {"https:///x", -1, NULL, NULL, false},
	    {"http://[::1/x", -1, NULL, NULL, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char host[256];
		char *path = NULL;
		bool https = false;
		int r = mcp_url_split(cases[i].url, host, sizeof(host), &path, &https);
		if (cases[i].r != 0) {
			assert_int_not_equal(r, 0);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(host, cases[i].host);
		assert_string_equal(path, cases[i].path);
		assert_int_equal(https, cases[i].https);
		free(path);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_model_names), cmocka_unit_test(test_catalog),
	    cmocka_unit_test(test_permissions), cmocka_unit_test(test_result_content),
	    cmocka_unit_test(test_view),        cmocka_unit_test(test_stream_events),
	    cmocka_unit_test(test_url_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
