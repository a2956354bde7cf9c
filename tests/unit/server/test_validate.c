/* Shared resource validators (src/server/api/validate.c): table-driven accept/reject
 * cases with the field path each error must name, resolved outputs, and the
 * round-trip rule (a resolved value validates to itself). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "err.h"
#include "validate.h"

static json_t *
J(const char *s)
{
	json_error_t je;
	json_t *v = json_loads(s, JSON_DECODE_ANY, &je);
	if (v == NULL)
		fail_msg("bad test JSON %s: %s", s, je.text);
	return v;
}

static void
assert_json(const json_t *got, const char *want)
{
	json_t *w = J(want);
	if (!json_equal(got, w)) {
		char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		fail_msg("got %s\nwant %s", g, want);
	}
	json_decref(w);
}

enum which { V_MODEL, V_SKILLS, V_SERVERS, V_TOOLS, V_IDENTITY, V_EVENT, V_CONTENT };

struct vcase {
	enum which fn;
	const char *in;
	const char *servers; /* V_TOOLS: the mcp_servers list */
	const char *err;     /* NULL: must pass; else substring of the message */
};

static int
run(const struct vcase *c, json_t **out, struct verr *e)
{
	json_t *in = J(c->in);
	json_t *servers = J(c->servers ? c->servers : "[]");
	int r = AL_E_INTERNAL;
	*out = NULL;
	switch (c->fn) {
	case V_MODEL:
		r = validate_model(in, "model", out, e);
		break;
	case V_SKILLS:
		r = validate_skills(in, "skills", out, e);
		break;
	case V_SERVERS:
		r = validate_mcp_servers(in, "mcp_servers", out, e);
		break;
	case V_TOOLS:
		r = validate_tools(in, servers, "tools", out, e);
		break;
	case V_IDENTITY:
		r = validate_execution_identity(in, "execution_identity", out, e);
		break;
	case V_EVENT:
		r = validate_initial_event(in, "initial_events[0]", out, e);
		break;
	case V_CONTENT:
		r = validate_content_blocks(in, "content", false, e);
		break;
	}
	json_decref(in);
	json_decref(servers);
	return r;
}

static const struct vcase cases[] = {
    /* model */
    {V_MODEL, "\"claude-opus-4-8\"", NULL, NULL},
    {V_MODEL, "{\"id\":\"m\",\"effort\":{\"type\":\"max\"},\"speed\":\"fast\"}", NULL, NULL},
    {V_MODEL, "\"\"", NULL, "model: length"},
    {V_MODEL, "5", NULL, "model: must be a string or an object"},
    {V_MODEL, "{\"effort\":\"low\"}", NULL, "model.id: Field required"},
    {V_MODEL, "{\"id\":\"m\",\"effort\":\"extreme\"}", NULL, "model.effort"},
    {V_MODEL, "{\"id\":\"m\",\"speed\":\"warp\"}", NULL, "model.speed"},
    {V_MODEL, "{\"id\":\"m\",\"temperature\":1}", NULL, "model.temperature: Extra inputs"},
    /* skills */
    {V_SKILLS, "[{\"type\":\"custom\",\"skill_id\":\"skill_1\",\"version\":\"3\"}]", NULL, NULL},
    {V_SKILLS, "[{\"type\":\"anthropic\",\"skill_id\":\"docx\"}]", NULL, "skills[0].skill_id"},
    {V_SKILLS,
     "[{\"type\":\"custom\",\"skill_id\":\"a\"},{\"type\":\"custom\",\"skill_id\":\"a\"}]", NULL,
     "skills[1].skill_id: duplicate"},
    {V_SKILLS, "[{\"type\":\"builtin\",\"skill_id\":\"a\"}]", NULL, "skills[0].type"},
    {V_SKILLS, "{}", NULL, "skills: must be an array"},
    /* MCP servers */
    {V_SERVERS, "[{\"type\":\"url\",\"name\":\"docs\",\"url\":\"https://d.test/mcp\"}]", NULL,
     NULL},
    {V_SERVERS, "[{\"type\":\"url\",\"name\":\"docs\",\"url\":\"ftp://d\"}]", NULL,
     "mcp_servers[0].url"},
    {V_SERVERS,
     "[{\"type\":\"url\",\"name\":\"a\",\"url\":\"https://a\"},{\"type\":\"url\",\"name\":\"a\","
     "\"url\":\"https://b\"}]",
     NULL, "mcp_servers[1].name: duplicate"},
    {V_SERVERS, "[{\"type\":\"url\",\"name\":\"a\",\"url\":\"https://a\",\"token\":\"x\"}]", NULL,
     "mcp_servers[0].token: Extra inputs"},
    {V_SERVERS, "[{\"type\":\"stdio\",\"name\":\"a\",\"url\":\"https://a\"}]", NULL,
     "mcp_servers[0].type"},
    /* tools */
    {V_TOOLS, "[{\"type\":\"agent_toolset_20260401\"}]", NULL, NULL},
    {V_TOOLS, "[{\"type\":\"agent_toolset_20260401\"},{\"type\":\"agent_toolset_20260401\"}]", NULL,
     "tools[1]: at most one"},
    {V_TOOLS,
     "[{\"type\":\"agent_toolset_20260401\",\"configs\":[{\"name\":\"bash\"},{\"name\":\"bash\"}]}"
     "]",
     NULL, "tools[0].configs[1].name: duplicate"},
    {V_TOOLS,
     "[{\"type\":\"agent_toolset_20260401\",\"configs\":[{\"name\":\"web_fetch\",\"allowed_"
     "domains\":"
     "[\"a\"],\"blocked_domains\":[\"b\"]}]}]",
     NULL, "mutually exclusive"},
    {V_TOOLS,
     "[{\"type\":\"agent_toolset_20260401\",\"configs\":[{\"name\":\"bash\",\"allowed_domains\":[]}"
     "]}]",
     NULL, "tools[0].configs[0].allowed_domains: Extra inputs"},
    {V_TOOLS,
     "[{\"type\":\"agent_toolset_20260401\",\"configs\":[{\"name\":\"read\",\"type\":\"write\"}]}]",
     NULL, "tools[0].configs[0].type"},
    {V_TOOLS, "[{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"docs\"}]",
     "[{\"type\":\"url\",\"name\":\"docs\",\"url\":\"https://d\"}]", NULL},
    {V_TOOLS, "[]", "[{\"type\":\"url\",\"name\":\"docs\",\"url\":\"https://d\"}]",
     "mcp_servers[0]: MCP server 'docs' must be referenced"},
    {V_TOOLS,
     "[{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"docs\"},{\"type\":\"mcp_toolset\","
     "\"mcp_server_name\":\"docs\"}]",
     "[{\"type\":\"url\",\"name\":\"docs\",\"url\":\"https://d\"}]", "tools[1].mcp_server_name"},
    {V_TOOLS, "[{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"ghost\"}]", NULL,
     "tools[0].mcp_server_name: no MCP server named 'ghost'"},
    {V_TOOLS,
     "[{\"type\":\"custom\",\"name\":\"ok_name-1\",\"description\":\"d\",\"input_schema\":{"
     "\"type\":"
     "\"object\",\"properties\":{\"q\":{\"type\":\"string\"}},\"required\":[\"q\"]}}]",
     NULL, NULL},
    {V_TOOLS,
     "[{\"type\":\"custom\",\"name\":\"has "
     "space\",\"description\":\"d\",\"input_schema\":{\"type\":\"object\"}}]",
     NULL, "tools[0].name: must match"},
    {V_TOOLS,
     "[{\"type\":\"custom\",\"name\":\"grep\",\"description\":\"d\",\"input_schema\":{\"type\":"
     "\"object\"}}]",
     NULL, "built-in"},
    {V_TOOLS,
     "[{\"type\":\"custom\",\"name\":\"mcp__x\",\"description\":\"d\",\"input_schema\":{\"type\":"
     "\"object\"}}]",
     NULL, "mcp__"},
    {V_TOOLS,
     "[{\"type\":\"custom\",\"name\":\"t\",\"description\":\"d\",\"input_schema\":{\"type\":"
     "\"array\"}}]",
     NULL, "tools[0].input_schema.type"},
    {V_TOOLS,
     "[{\"type\":\"custom\",\"name\":\"t\",\"description\":\"d\",\"input_schema\":{\"type\":"
     "\"object\","
     "\"anyOf\":[]}}]",
     NULL, "anyOf"},
    {V_TOOLS,
     "[{\"type\":\"custom\",\"name\":\"t\",\"description\":\"d\",\"input_schema\":{\"type\":"
     "\"object\","
     "\"properties\":{\"a\":{\"items\":{\"$ref\":\"#/x\"}}}}}]",
     NULL, "$ref"},
    {V_TOOLS,
     "[{\"type\":\"custom\",\"name\":\"t\",\"description\":\"d\",\"input_schema\":{\"type\":"
     "\"object\","
     "\"properties\":{\"bad key\":{}}}}]",
     NULL, "property name"},
    {V_TOOLS,
     "[{\"type\":\"custom\",\"name\":\"t\",\"description\":\"d\",\"input_schema\":{\"type\":"
     "\"object\"}},"
     "{\"type\":\"custom\",\"name\":\"t\",\"description\":\"d\",\"input_schema\":{\"type\":"
     "\"object\"}}]",
     NULL, "tools[1].name: duplicate"},
    {V_TOOLS, "[{\"type\":\"custom\",\"name\":\"t\",\"input_schema\":{\"type\":\"object\"}}]", NULL,
     "tools[0].description: Field required"},
    {V_TOOLS, "[{\"type\":\"computer\"}]", NULL, "tools[0].type"},
    {V_TOOLS, "[5]", NULL, "tools[0]: must be an object"},
    /* execution identity */
    {V_IDENTITY, "null", NULL, NULL},
    {V_IDENTITY, "{\"type\":\"aws_role\",\"role_arn\":\"arn:aws:iam::1:role/x\"}", NULL, NULL},
    {V_IDENTITY, "{\"type\":\"aws_role\"}", NULL, "execution_identity.role_arn: Field required"},
    {V_IDENTITY, "{\"type\":\"root\"}", NULL, "execution_identity.type"},
    /* initial events */
    {V_EVENT, "{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}", NULL,
     NULL},
    {V_EVENT, "{\"type\":\"user.message\",\"content\":[]}", NULL,
     "initial_events[0].content: must not be empty"},
    {V_EVENT, "{\"type\":\"user.message\"}", NULL, "initial_events[0].content: Field required"},
    {V_EVENT, "{\"type\":\"user.interrupt\"}", NULL, "initial_events[0].type"},
    {V_EVENT,
     "{\"type\":\"user.define_outcome\",\"description\":\"d\",\"rubric\":{\"type\":\"text\","
     "\"content\":\"c\"},\"max_iterations\":21}",
     NULL, "max_iterations"},
    {V_EVENT,
     "{\"type\":\"user.define_outcome\",\"description\":\"d\",\"rubric\":{\"type\":\"pdf\"}}", NULL,
     "initial_events[0].rubric.type"},
    /* content blocks */
    {V_CONTENT,
     "[{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://x/y.png\"}},{\"type\":"
     "\"document\",\"source\":{\"type\":\"text\",\"media_type\":\"text/"
     "plain\",\"data\":\"x\"},\"title\":"
     "null},{\"type\":\"redacted\"}]",
     NULL, NULL},
    {V_CONTENT, "[{\"type\":\"image\",\"source\":{\"type\":\"text\",\"data\":\"x\"}}]", NULL,
     "content[0].source.type"},
    {V_CONTENT, "[{\"type\":\"search_result\",\"source\":\"s\",\"title\":\"t\",\"content\":[]}]",
     NULL, "content[0].type"},
    {V_CONTENT, "[{\"type\":\"text\"}]", NULL, "content[0].text: Field required"},
    {V_CONTENT, "[{\"type\":\"text\",\"text\":1}]", NULL, "content[0].text: must be a string"},
};

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct verr e = {{0}};
		json_t *out = NULL;
		int r = run(&cases[i], &out, &e);
		if (cases[i].err == NULL) {
			if (r != 0)
				fail_msg("case %zu (%s): unexpected error: %s", i, cases[i].in,
				         e.msg);
		} else {
			if (r != AL_E_INVAL)
				fail_msg("case %zu (%s): accepted, want error '%s'", i, cases[i].in,
				         cases[i].err);
			if (strstr(e.msg, cases[i].err) == NULL)
				fail_msg("case %zu: message '%s' lacks '%s'", i, e.msg,
				         cases[i].err);
			assert_null(out);
		}
		json_decref(out);
	}
}

static void
test_model_resolution(void **state)
{
	(void)state;
	struct verr e;
	json_t *out = NULL, *in = J("\"claude-opus-4-8\"");
	assert_int_equal(validate_model(in, "model", &out, &e), 0);
	assert_json(
	    out,
	    "{\"id\":\"claude-opus-4-8\",\"effort\":{\"type\":\"high\"},\"speed\":\"standard\"}");
	json_decref(in);
	json_decref(out);
	in = J("{\"id\":\"m\",\"effort\":\"xhigh\",\"inference_geo\":\"us\"}");
	assert_int_equal(validate_model(in, "model", &out, &e), 0);
	assert_json(out, "{\"id\":\"m\",\"effort\":{\"type\":\"xhigh\"},\"speed\":\"standard\","
	                 "\"inference_geo\":\"us\"}");
	json_decref(in);
	json_decref(out);
}

static void
test_toolset_resolution(void **state)
{
	(void)state;
	struct verr e;
	json_t *servers = J("[{\"type\":\"url\",\"name\":\"docs\",\"url\":\"https://d\"}]");
	json_t *in =
	    J("[{\"type\":\"agent_toolset_20260401\",\"default_config\":{\"permission_policy\":"
	      "{\"type\":\"always_ask\"}},\"configs\":[{\"name\":\"read\",\"permission_policy\":"
	      "{\"type\":\"always_allow\"}},{\"name\":\"web_fetch\",\"enabled\":false,"
	      "\"url_sources\":{\"user_input\":\"all\"}}]},"
	      "{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"docs\",\"configs\":[{\"name\":"
	      "\"search\",\"enabled\":false}]}]");
	json_t *out = NULL, *again = NULL;
	assert_int_equal(validate_tools(in, servers, "tools", &out, &e), 0);
	json_t *ts = json_array_get(out, 0);
	assert_json(json_object_get(ts, "default_config"),
	            "{\"enabled\":true,\"permission_policy\":{\"type\":\"always_ask\"}}");
	json_t *cfgs = json_object_get(ts, "configs");
	assert_int_equal(json_array_size(cfgs), 8);
	assert_json(json_array_get(cfgs, 0),
	            "{\"name\":\"bash\",\"type\":\"bash\",\"enabled\":true,"
	            "\"permission_policy\":{\"type\":\"always_ask\"}}");
	assert_json(json_array_get(cfgs, 2),
	            "{\"name\":\"read\",\"type\":\"read\",\"enabled\":true,"
	            "\"permission_policy\":{\"type\":\"always_allow\"}}");
	assert_json(
	    json_array_get(cfgs, 6),
	    "{\"name\":\"web_fetch\",\"type\":\"web_fetch\",\"enabled\":false,"
	    "\"permission_policy\":{\"type\":\"always_ask\"},\"url_sources\":{\"user_input\":"
	    "{\"type\":\"all\"},\"client_tool_results\":null,\"server_tool_results\":null}}");
	assert_json(
	    json_array_get(out, 1),
	    "{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"docs\",\"default_config\":{"
	    "\"enabled\":true,\"permission_policy\":{\"type\":\"always_ask\"}},\"configs\":[{"
	    "\"name\":\"search\",\"enabled\":false,\"permission_policy\":{\"type\":"
	    "\"always_ask\"}}]}");
	/* Updates re-validate stored (resolved) tools: they must come back unchanged. */
	assert_int_equal(validate_tools(out, servers, "tools", &again, &e), 0);
	assert_true(json_equal(out, again));
	json_decref(in);
	json_decref(out);
	json_decref(again);
	json_decref(servers);
}

static void
test_outcome_event(void **state)
{
	(void)state;
	struct verr e;
	json_t *out = NULL;
	json_t *in =
	    J("{\"type\":\"user.define_outcome\",\"description\":\"d\",\"rubric\":{\"type\":"
	      "\"text\",\"content\":\"c\"}}");
	assert_int_equal(validate_initial_event(in, "e", &out, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(out, "max_iterations")), 3);
	assert_non_null(strstr(json_string_value(json_object_get(out, "outcome_id")), "outc_"));
	json_decref(in);
	json_decref(out);
}

static void
test_limits(void **state)
{
	(void)state;
	struct verr e;
	json_t *out = NULL;
	json_t *many = json_array();
	for (int i = 0; i < VALIDATE_MAX_MCP_SERVERS + 1; i++) {
		char name[16];
		snprintf(name, sizeof(name), "s%d", i);
		json_array_append_new(many, json_pack("{s:s, s:s, s:s}", "type", "url", "name",
		                                      name, "url", "https://x"));
	}
	assert_int_equal(validate_mcp_servers(many, "mcp_servers", &out, &e), AL_E_INVAL);
	assert_non_null(strstr(e.msg, "at most 20"));
	json_decref(many);
	/* 249 custom tools + the 8 built-ins exceed the 256 tool cap. */
	json_t *tools = json_array();
	json_array_append_new(tools, json_pack("{s:s}", "type", "agent_toolset_20260401"));
	for (int i = 0; i < 249; i++) {
		char name[16];
		snprintf(name, sizeof(name), "t%d", i);
		json_array_append_new(tools, json_pack("{s:s, s:s, s:s, s:{s:s}}", "type", "custom",
		                                       "name", name, "description", "d",
		                                       "input_schema", "type", "object"));
	}
	json_t *none = json_array();
	assert_int_equal(validate_tools(tools, none, "tools", &out, &e), AL_E_INVAL);
	assert_non_null(strstr(e.msg, "at most 256"));
	json_array_remove(tools, 1);
	assert_int_equal(validate_tools(tools, none, "tools", &out, &e), 0);
	json_decref(out);
	json_decref(tools);
	json_decref(none);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_model_resolution),
	    cmocka_unit_test(test_toolset_resolution),
	    cmocka_unit_test(test_outcome_event),
	    cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
