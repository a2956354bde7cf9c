/* A line-oriented driver for the toolset, used by the interop differential test: one JSON
 * request per input line ({"tool":...,"input":{...}}), one JSON result per output line
 * ({"is_error":bool,"text":...}, or {"notfound":true}). One session context for the run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "tools.h"

static int
usage(void)
{
	fprintf(stderr, "usage: tool_driver [--allow DIR] [--ro DIR] [--no-rg] WORKDIR\n");
	return 2;
}

int
main(int argc, char **argv)
{
	struct tool_ctx *ctx = NULL;
	const char *workdir = NULL;
	int r;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--allow") != 0 && strcmp(argv[i], "--ro") != 0 &&
		    strcmp(argv[i], "--no-rg") != 0) {
			workdir = argv[i];
			continue;
		}
		if (strcmp(argv[i], "--no-rg") == 0)
			continue;
		if (++i == argc)
			return usage();
	}
	if (workdir == NULL)
		return usage();
	if ((r = tool_ctx_new(workdir, NULL, &ctx)) != 0) {
		fprintf(stderr, "tool_driver: %s: %s\n", workdir, al_strerror(r));
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-rg") == 0)
			tool_ctx_set_rg(ctx, "");
		else if (strcmp(argv[i], "--allow") == 0 || strcmp(argv[i], "--ro") == 0) {
			if ((r = tool_ctx_allow_root(ctx, argv[i + 1], argv[i][2] == 'r')) != 0) {
				fprintf(stderr, "tool_driver: %s: %s\n", argv[i + 1],
				        al_strerror(r));
				return 1;
			}
			i++;
		}
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		json_error_t jerr;
		json_t *req = json_loadb(line, (size_t)n, 0, &jerr), *content = NULL, *reply;
		bool is_error = false;
		if (req == NULL) {
			fprintf(stderr, "tool_driver: bad request: %s\n", jerr.text);
			r = 1;
			break;
		}
		r = tool_run(ctx, json_string_value(json_object_get(req, "tool")),
		             json_object_get(req, "input"), &content, &is_error);
		if (r == AL_E_NOTFOUND)
			reply = json_pack("{s:b}", "notfound", 1);
		else if (r != 0)
			reply = json_pack("{s:s}", "fail", al_strerror(r));
		else
			reply = json_pack("{s:b, s:O}", "is_error", is_error, "text",
			                  json_object_get(json_array_get(content, 0), "text"));
		char *s = json_dumps(reply, JSON_COMPACT | JSON_ENSURE_ASCII);
		printf("%s\n", s);
		fflush(stdout);
		free(s);
		json_decref(reply);
		json_decref(content);
		json_decref(req);
		r = 0;
	}
	free(line);
	tool_ctx_free(ctx);
	return r;
}
