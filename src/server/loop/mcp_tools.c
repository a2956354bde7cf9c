/* MCP tools as the model and the session events see them; see mcp_tools.h. Everything
 * here reads peer data (tools/list, tools/call results) and is bounded and total. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_tools.h"
#include "util.h"
#include "xalloc.h"

#define MAX_DESCRIPTION (16u << 10)
#define MAX_NOTE 512

static bool
streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static bool
name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-';
}

char *
mcp_tool_model_name(const char *server, const char *tool)
{
	size_t sl = strlen(server), tl = strlen(tool);
	bool clean = tl > 0;
	for (size_t i = 0; i < tl && clean; i++)
		clean = name_char(tool[i]);
	if (clean && 5 + sl + 2 + tl <= MCP_MODEL_NAME_MAX)
		return xasprintf("mcp__%s__%s", server, tool);
	/* Sanitize, keep as much as fits, and add a digest of the real name. */
	char hex[65];
	sha256_hex(tool, tl, hex);
	size_t room =
	    MCP_MODEL_NAME_MAX > 5 + sl + 2 + 9 ? MCP_MODEL_NAME_MAX - (5 + sl + 2 + 9) : 0;
	size_t keep = tl < room ? tl : room;
	char *part = xmalloc(keep + 1);
	for (size_t i = 0; i < keep; i++)
		part[i] = name_char(tool[i]) ? tool[i] : '_';
	part[keep] = '\0';
	char *out = xasprintf("mcp__%s__%s_%.8s", server, part, hex);
	free(part);
	return out;
}

const json_t *
mcp_toolset_for(const json_t *agent, const char *server)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(agent, "tools"), i, t)
	{
		if (streq(json_string_value(json_object_get(t, "type")), "mcp_toolset") &&
		    streq(json_string_value(json_object_get(t, "mcp_server_name")), server))
			return t;
	}
	return NULL;
}

void
mcp_tool_config(const json_t *toolset, const char *tool, bool *enabled, const char **policy)
{
	const json_t *dc = json_object_get(toolset, "default_config");
	const json_t *cfg = NULL, *v;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(toolset, "configs"), i, c)
	{
		if (streq(json_string_value(json_object_get(c, "name")), tool))
			cfg = c;
	}
	*enabled = true;
	*policy = "always_ask";
	if ((v = json_object_get(dc, "enabled")) && json_is_boolean(v))
		*enabled = json_is_true(v);
	if ((v = json_object_get(json_object_get(dc, "permission_policy"), "type")) &&
	    json_is_string(v))
		*policy = json_string_value(v);
	if ((v = json_object_get(cfg, "enabled")) && json_is_boolean(v))
		*enabled = json_is_true(v);
	if ((v = json_object_get(json_object_get(cfg, "permission_policy"), "type")) &&
	    json_is_string(v))
		*policy = json_string_value(v);
}

void
mcp_tool_permission(const json_t *agent, const char *server, const char *tool, bool read_only,
                    const char **permission, json_t **evaluation)
{
	bool enabled;
	const char *policy;
	mcp_tool_config(mcp_toolset_for(agent, server), tool, &enabled, &policy);
	if (streq(policy, "always_allow")) {
		*permission = "allow";
		*evaluation = json_pack("{s:s}", "type", "always_allow");
	} else if (streq(policy, "auto")) {
		/* tools.md §14.3: a fixed rule until a judge is specified. The hint is the
		 * server's claim; it only ever turns a question into an allow for a tool
		 * the agent's owner chose `auto` for. */
		*permission = read_only ? "allow" : "ask";
		*evaluation = json_pack("{s:s, s:s, s:s}", "type", "auto", "evaluated_permission",
		                        *permission, "reason_code",
		                        read_only ? "airlock_mcp_read_only_hint"
		                                  : "airlock_mcp_not_read_only");
	} else {
		/* always_ask, and any policy we do not know: ask. */
		*permission = "ask";
		*evaluation = json_pack("{s:s}", "type", "always_ask");
	}
}

const json_t *
mcp_catalog_find(const json_t *catalog, const char *model_name)
{
	size_t i;
	json_t *e;
	json_array_foreach(catalog, i, e)
	{
		if (streq(json_string_value(json_object_get(e, "name")), model_name))
			return e;
	}
	return NULL;
}

size_t
mcp_catalog_add(json_t *catalog, const json_t *agent, const char *server, const json_t *tools)
{
	const json_t *ts = mcp_toolset_for(agent, server);
	size_t added = 0, i;
	json_t *t;
	if (ts == NULL || !json_is_array(tools))
		return 0;
	json_array_foreach(tools, i, t)
	{
		const char *tool = json_string_value(json_object_get(t, "name"));
		const json_t *schema = json_object_get(t, "inputSchema");
		bool enabled;
		const char *policy;
		if (json_array_size(catalog) >= MCP_OFFERED_MAX)
			break;
		if (tool == NULL || *tool == '\0' || strlen(tool) > 256 || !json_is_object(schema))
			continue;
		mcp_tool_config(ts, tool, &enabled, &policy);
		if (!enabled)
			continue;
		char *name = mcp_tool_model_name(server, tool);
		if (mcp_catalog_find(catalog, name)) {
			free(name);
			continue;
		}
		const char *desc = json_string_value(json_object_get(t, "description"));
		if (desc == NULL)
			desc = json_string_value(json_object_get(t, "title"));
		size_t dl = desc ? strlen(desc) : 0;
		if (dl > MAX_DESCRIPTION) {
			dl = MAX_DESCRIPTION; /* cut on a UTF-8 character boundary */
			while (dl > 0 && ((unsigned char)desc[dl] & 0xC0) == 0x80)
				dl--;
		}
		json_t *d = json_stringn(desc ? desc : "", dl);
		if (d == NULL)
			d = json_string("");
		/* The Messages API wants an object schema; MCP requires type "object" too,
		 * but a server may omit it. */
		json_t *sch = json_deep_copy(schema);
		if (json_object_get(sch, "type") == NULL)
			json_object_set_new(sch, "type", json_string("object"));
		bool ro = json_is_true(
		    json_object_get(json_object_get(t, "annotations"), "readOnlyHint"));
		json_array_append_new(catalog,
		                      json_pack("{s:s, s:s, s:s, s:o, s:o, s:b}", "name", name,
		                                "server", server, "tool", tool, "description", d,
		                                "input_schema", sch, "read_only", ro));
		free(name);
		added++;
	}
	return added;
}

json_t *
mcp_catalog_request_tools(const json_t *catalog)
{
	json_t *out = json_array();
	size_t i;
	json_t *e;
	json_array_foreach(catalog, i, e)
	{
		json_t *d = json_pack("{s:O, s:O}", "name", json_object_get(e, "name"),
		                      "input_schema", json_object_get(e, "input_schema"));
		const char *desc = json_string_value(json_object_get(e, "description"));
		if (desc && *desc)
			json_object_set_new(d, "description", json_string(desc));
		json_array_append_new(out, d);
	}
	return out;
}

/* "<before><peer value><after>" as a text block. */
static json_t *
note(const char *before, const char *a, const char *after)
{
	char t[MAX_NOTE];
	snprintf(t, sizeof(t), "%s%s%s", before, a ? a : "", after);
	return json_pack("{s:s, s:s}", "type", "text", "text", t);
}

static bool
image_type_ok(const char *mt)
{
	return streq(mt, "image/png") || streq(mt, "image/jpeg") || streq(mt, "image/gif") ||
	       streq(mt, "image/webp");
}

json_t *
mcp_result_content(const json_t *result, bool *is_error)
{
	json_t *out = json_array();
	size_t i;
	json_t *b;
	*is_error = json_is_true(json_object_get(result, "isError"));
	json_array_foreach(json_object_get(result, "content"), i, b)
	{
		const char *type = json_string_value(json_object_get(b, "type"));
		if (streq(type, "text")) {
			const json_t *text = json_object_get(b, "text");
			if (json_is_string(text))
				json_array_append_new(
				    out, json_pack("{s:s, s:O}", "type", "text", "text", text));
		} else if (streq(type, "image")) {
			const char *mt = json_string_value(json_object_get(b, "mimeType"));
			const json_t *data = json_object_get(b, "data");
			if (image_type_ok(mt) && json_is_string(data))
				json_array_append_new(out,
				                      json_pack("{s:s, s:{s:s, s:s, s:O}}", "type",
				                                "image", "source", "type", "base64",
				                                "media_type", mt, "data", data));
			else
				json_array_append_new(out,
				                      note("[image of type ", mt, " omitted]"));
		} else if (streq(type, "resource")) {
			const json_t *r = json_object_get(b, "resource");
			const json_t *text = json_object_get(r, "text");
			if (json_is_string(text))
				json_array_append_new(
				    out, json_pack("{s:s, s:O}", "type", "text", "text", text));
			else
				json_array_append_new(
				    out, note("[binary resource ",
				              json_string_value(json_object_get(r, "uri")),
				              " omitted]"));
		} else if (streq(type, "resource_link")) {
			json_array_append_new(
			    out, note("Resource link: ",
			              json_string_value(json_object_get(b, "uri")), ""));
		} else if (streq(type, "audio")) {
			json_array_append_new(
			    out,
			    note("[audio of type ",
			         json_string_value(json_object_get(b, "mimeType")), " omitted]"));
		}
		/* unknown block types: nothing the model could use */
	}
	const json_t *sc = json_object_get(result, "structuredContent");
	if (json_array_size(out) == 0 && sc && !json_is_null(sc)) {
		char *s = json_dumps(sc, JSON_COMPACT);
		if (s)
			json_array_append_new(out,
			                      json_pack("{s:s, s:s}", "type", "text", "text", s));
		free(s);
	}
	return out;
}
