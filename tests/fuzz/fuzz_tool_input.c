/* Fuzzes tool-input validation and the side-effect-free tool paths: the schema check of all
 * six tools, then read and glob (confined path resolution, view_range, brace expansion and
 * matching) against a small fixed workspace, plus the UTF-8 cleaner on the raw bytes.
 * Input: a JSON object {"tool": name, "input": {...}}; anything else only exercises parsing. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fuzz.h"
#include "tools.h"
#include "tools_int.h"

static char ws[64];
static struct tool_ctx *ctx;

static void
cleanup(void)
{
	static const char *const files[] = {"a.txt", "d/b.c", "link"};
	char p[128];
	tool_ctx_free(ctx);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", ws, files[i]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/d", ws);
	rmdir(p);
	rmdir(ws);
}

static void
put(const char *rel, const char *data)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", ws, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		abort();
	if (write(fd, data, strlen(data)) < 0)
		abort();
	close(fd);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char p[128];
	(void)argc;
	(void)argv;
	snprintf(ws, sizeof(ws), "/tmp/al-fuzz-tools-XXXXXX");
	if (mkdtemp(ws) == NULL)
		abort();
	snprintf(p, sizeof(p), "%s/d", ws);
	mkdir(p, 0755);
	put("a.txt", "one\ntwo\r\nthree\n\xff\xfe\n");
	put("d/b.c", "int x;\n");
	snprintf(p, sizeof(p), "%s/link", ws);
	if (symlink("/etc", p) != 0)
		abort();
	if (tool_ctx_new(ws, NULL, &ctx) != 0)
		abort();
	tool_ctx_set_rg(ctx, "");
	atexit(cleanup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b;
	buf_init(&b, size * 3 + 16);
	(void)tool_utf8_clean(&b, (const char *)data, size);
	buf_free(&b);

	json_t *req = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
	if (req == NULL)
		return 0;
	const char *tool = json_string_value(json_object_get(req, "tool"));
	json_t *input = json_object_get(req, "input");
	char *msg = NULL;
	int r = tool_input_check(tool, input, &msg);
	free(msg);
	/* Only the tools without side effects actually run. */
	if (r == 0 && tool != NULL && (strcmp(tool, "read") == 0 || strcmp(tool, "glob") == 0)) {
		json_t *content = NULL;
		bool is_error;
		if (tool_run(ctx, tool, input, &content, &is_error) != 0 ||
		    json_array_size(content) != 1)
			abort();
		json_decref(content);
	}
	const char *pat = json_string_value(json_object_get(input, "pattern"));
	if (pat != NULL)
		(void)tool_glob_match(pat, "d/b.c");
	json_decref(req);
	return 0;
}
