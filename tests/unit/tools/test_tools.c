/* Unit tests for the agent toolset: table-driven cases per tool against a real temporary
 * workspace, plus the parts the SDK differential test cannot reach (framing that output cannot
 * spoof, cancel, symlink swaps, openat2 fallback, built-in grep, input validation). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "tools.h"
#include "tools_int.h"
#include "util.h"
#include "xalloc.h"

static char ws[64], outside[64];

static void
put(const char *rel, const char *data)
{
	char *p = xasprintf("%s/%s", ws, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(data, f);
	fclose(f);
	free(p);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(ws, sizeof(ws), "/tmp/al-tools-XXXXXX");
	snprintf(outside, sizeof(outside), "/tmp/al-tools-out-XXXXXX");
	assert_non_null(mkdtemp(ws));
	assert_non_null(mkdtemp(outside));
	char *p = xasprintf("%s/sub", ws);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	put("f.txt", "one\ntwo\nthree\n");
	put("sub/a.c", "int main(void) { return 0; }\n");
	put("crlf.txt", "alpha\r\nbeta\rgamma\n");
	p = xasprintf("%s/secret.txt", outside);
	FILE *f = fopen(p, "w");
	fputs("secret\n", f);
	fclose(f);
	free(p);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	char *cmd = xasprintf("rm -rf '%s' '%s'", ws, outside);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	return 0;
}

/* Runs one call; returns the text (heap) and sets *is_error. */
static char *
call(struct tool_ctx *ctx, const char *tool, const char *input_json, bool *is_error)
{
	json_error_t e;
	json_t *in = json_loads(input_json, JSON_ALLOW_NUL, &e), *content = NULL;
	assert_non_null(in);
	assert_int_equal(tool_run(ctx, tool, in, &content, is_error), 0);
	assert_int_equal(json_array_size(content), 1);
	json_t *b = json_array_get(content, 0);
	assert_string_equal(json_string_value(json_object_get(b, "type")), "text");
	char *t = xstrdup(json_string_value(json_object_get(b, "text")));
	json_decref(content);
	json_decref(in);
	return t;
}

/* $W in expected text stands for the workspace path, $O for the outside directory. */
static char *
expand(const char *s)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	for (; *s != '\0'; s++) {
		if (s[0] == '$' && s[1] == 'W') {
			buf_add_str(&b, ws);
			s++;
		} else if (s[0] == '$' && s[1] == 'O') {
			buf_add_str(&b, outside);
			s++;
		} else {
			buf_add(&b, s, 1);
		}
	}
	return buf_steal(&b);
}

struct tcase {
	const char *tool;
	const char *input;
	bool is_error;
	const char *text; /* exact, after expand() */
};

static void
run_table(struct tool_ctx *ctx, const struct tcase *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool err;
		char *in = expand(t[i].input);
		char *want = expand(t[i].text);
		char *got = call(ctx, t[i].tool, in, &err);
		if (strcmp(got, want) != 0 || err != t[i].is_error)
			fail_msg("case %zu %s %s: got [%s] err=%d, want [%s] err=%d", i, t[i].tool,
			         t[i].input, got, err, want, t[i].is_error);
		free(in);
		free(want);
		free(got);
	}
}

static struct tool_ctx *
new_ctx(void)
{
	struct tool_ctx *ctx;
	assert_int_equal(tool_ctx_new(ws, NULL, &ctx), 0);
	return ctx;
}

static void
test_input_validation(void **state)
{
	static const struct {
		const char *tool, *input, *msg; /* msg NULL: accepted */
	} t[] = {
	    {"read", "{\"file_path\":\"a\"}", NULL},
	    {"read", "{\"file_path\":\"a\",\"extra\":1}", NULL},
	    {"read", "{}", "read: file_path is required"},
	    {"read", "{\"file_path\":null}", "read: file_path is required"},
	    {"read", "{\"file_path\":\"\"}", "read: file_path is required"},
	    {"read", "{\"file_path\":7}", "read: invalid input: file_path"},
	    {"read", "{\"file_path\":\"a\",\"view_range\":\"1-2\"}",
	     "read: invalid input: view_range"},
	    {"read", "{\"file_path\":\"a\",\"view_range\":[1,\"2\"]}",
	     "read: invalid input: view_range"},
	    {"read", "{\"file_path\":\"a\",\"view_range\":[1.5,2]}",
	     "read: invalid input: view_range"},
	    {"read", "{\"file_path\":\"a\",\"view_range\":[1.0,2]}", NULL},
	    {"read", "[]", "read: invalid input: input"},
	    {"write", "{\"file_path\":\"a\"}", "write: invalid input: content"},
	    {"write", "{\"file_path\":\"a\",\"content\":1}", "write: invalid input: content"},
	    {"write", "{\"content\":\"x\"}", "write: file_path is required"},
	    {"edit", "{\"file_path\":\"a\",\"new_string\":\"b\"}", "edit: old_string is required"},
	    {"edit", "{\"file_path\":\"a\",\"old_string\":\"a\"}",
	     "edit: invalid input: new_string"},
	    {"edit",
	     "{\"file_path\":\"a\",\"old_string\":\"a\",\"new_string\":\"\",\"replace_all\":1}",
	     "edit: invalid input: replace_all"},
	    {"bash", "{}", NULL},
	    {"bash", "{\"command\":\"x\",\"timeout_ms\":-1}", "bash: invalid input: timeout_ms"},
	    {"bash", "{\"command\":\"x\",\"timeout_ms\":\"5\"}", "bash: invalid input: timeout_ms"},
	    {"bash", "{\"restart\":\"yes\"}", "bash: invalid input: restart"},
	    {"glob", "{\"pattern\":\"\"}", "glob: pattern is required"},
	    {"glob", "{\"pattern\":\"*\",\"path\":[]}", "glob: invalid input: path"},
	    {"grep", "{\"pattern\":false}", "grep: invalid input: pattern"},
	    {"read", "{\"file_path\":\"a\\u0000b\"}", "read: invalid input: file_path"},
	    {"write", "{\"file_path\":\"a\",\"content\":\"\\u0000\"}", NULL},
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		json_t *in = json_loads(t[i].input, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		char *msg = NULL;
		int r = tool_input_check(t[i].tool, in, &msg);
		if (t[i].msg == NULL) {
			if (r != 0)
				fail_msg("case %zu: rejected: %s", i, msg);
		} else if (r != AL_E_INVAL || msg == NULL || strcmp(msg, t[i].msg) != 0) {
			fail_msg("case %zu: got %d [%s], want [%s]", i, r, msg ? msg : "",
			         t[i].msg);
		}
		free(msg);
		json_decref(in);
	}
	char *msg = NULL;
	assert_int_equal(tool_input_check("web_fetch", NULL, &msg), AL_E_NOTFOUND);
	assert_false(tool_known("mcp__x"));
	assert_true(tool_known("grep"));
}

static void
test_unknown_tool(void **state)
{
	(void)state;
	struct tool_ctx *ctx = new_ctx();
	json_t *in = json_object(), *content = NULL;
	bool err;
	assert_int_equal(tool_run(ctx, "web_search", in, &content, &err), AL_E_NOTFOUND);
	assert_null(content);
	json_decref(in);
	tool_ctx_free(ctx);
}

static void
test_utf8_clean(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} t[] = {
	    {"abc", 3, "abc"},
	    {"\xc3\xa9", 2, "\xc3\xa9"},
	    {"\xff", 1, "\xef\xbf\xbd"},
	    {"a\xe2\x82z", 4, "a\xef\xbf\xbdz"}, /* truncated 3-byte: one U+FFFD */
	    {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
	    {"\xf0\x9f\x98", 3, "\xef\xbf\xbd"},
	    {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"},
	    {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong */
	    {"\xf4\x90\x80\x80", 4,
	     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* above U+10FFFF */
	    {"a\0b", 3,
	     "a\xef\xbf\xbd"
	     "b"}, /* NUL: U+FFFD, as the server does */
	    {"\0\0", 2, "\xef\xbf\xbd\xef\xbf\xbd"},
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct buf b;
		buf_init(&b, 1024);
		assert_int_equal(tool_utf8_clean(&b, t[i].in, t[i].len), 0);
		size_t want = strlen(t[i].out);
		if (b.len != want || memcmp(b.data, t[i].out, want) != 0)
			fail_msg("case %zu", i);
		buf_free(&b);
	}
}

static void
test_glob_match(void **state)
{
	static const struct {
		const char *pat, *path;
		int want;
	} t[] = {
	    {"*.c", "a.c", 1},         {"*.c", "sub/a.c", 0},    {"**/*.c", "a.c", 1},
	    {"**/*.c", "x/y/a.c", 1},  {"*", ".hidden", 0},      {".*", ".hidden", 1},
	    {"**/*.c", ".d/a.c", 0},   {"sub/**", "sub/a/b", 1}, {"{a,b}.c", "b.c", 1},
	    {"{a,{b,c}}.c", "c.c", 1}, {"[!a]*.c", "a.c", 0},    {"[!a]*.c", "b.c", 1},
	    {"?.c", "ab.c", 0},        {"a\\b", "a/b", 1},       {"./a.c", "a.c", 1},
	    {"a//b", "a/b", 1},        {"{x}", "x", 0},          {"{x}", "{x}", 1},
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(t); i++)
		if (tool_glob_match(t[i].pat, t[i].path) != t[i].want)
			fail_msg("case %zu: %s vs %s", i, t[i].pat, t[i].path);
}

static void
test_lexical(void **state)
{
	static const char *t[][3] = {
	    {"/w", "a/b", "/w/a/b"},   {"/w", "../x", "/x"}, {"/w", "/abs/./y", "/abs/y"},
	    {"/w", "a/../../..", "/"}, {"/w", "", "/w"},     {"/w/", "a//b/", "/w/a/b"},
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		char *got = tool_path_lexical(t[i][0], t[i][1]);
		assert_string_equal(got, t[i][2]);
		free(got);
	}
}

static void
test_file_tools(void **state)
{
	(void)state;
	char *lnk = xasprintf("%s/out_link", ws), *tgt = xasprintf("%s/secret.txt", outside);
	assert_int_equal(symlink(tgt, lnk), 0);
	free(lnk);
	free(tgt);
	static const struct tcase t[] = {
	    {"read", "{\"file_path\":\"f.txt\"}", false, "one\ntwo\nthree\n"},
	    {"read", "{\"file_path\":\"$W/f.txt\",\"view_range\":[2,2]}", false, "two"},
	    {"read", "{\"file_path\":\"f.txt\",\"view_range\":[3,-1]}", false, "three\n"},
	    {"read", "{\"file_path\":\"f.txt\",\"view_range\":[9,10]}", false, "(no output)"},
	    {"read", "{\"file_path\":\"out_link\"}", true,
	     "path \"out_link\" is outside the session's working directory"},
	    {"read", "{\"file_path\":\"$O/secret.txt\"}", true,
	     "path \"$O/secret.txt\" is outside the session's working directory"},
	    {"read", "{\"file_path\":\"sub\"}", true, "read: sub is not a regular file"},
	    {"write", "{\"file_path\":\"n/m/x.txt\",\"content\":\"\\u00e9\\u0000z\"}", false,
	     "wrote 4 bytes to n/m/x.txt"},
	    {"read", "{\"file_path\":\"n/m/x.txt\"}", false,
	     "\xc3\xa9\xef\xbf\xbd"
	     "z"},
	    {"write", "{\"file_path\":\"out_link\",\"content\":\"x\"}", true,
	     "path \"out_link\" is outside the session's working directory"},
	    {"edit", "{\"file_path\":\"f.txt\",\"old_string\":\"o\",\"new_string\":\"0\"}", true,
	     "edit: old_string appears 2 times in f.txt (must be unique)"},
	    {"edit",
	     "{\"file_path\":\"f.txt\",\"old_string\":\"o\",\"new_string\":\"0\",\"replace_all\":"
	     "true}",
	     false, "edited f.txt (2 replacement(s))"},
	    {"read", "{\"file_path\":\"f.txt\"}", false, "0ne\ntw0\nthree\n"},
	    {"edit",
	     "{\"file_path\":\"crlf.txt\",\"old_string\":\"alpha\\n\",\"new_string\":\"x\"}", true,
	     "edit: old_string not found in crlf.txt"},
	};
	struct tool_ctx *ctx = new_ctx();
	run_table(ctx, t, ARRAY_LEN(t));
	/* The mode of a replaced file survives; a new file is 0600; no temp files remain. */
	char *p = xasprintf("%s/f.txt", ws);
	assert_int_equal(chmod(p, 0751), 0);
	bool err;
	free(call(ctx, "write", "{\"file_path\":\"f.txt\",\"content\":\"one\\ntwo\\nthree\\n\"}",
	          &err));
	assert_false(err);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0751);
	free(p);
	p = xasprintf("%s/n/m/x.txt", ws);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600 & ~0);
	free(p);
	char *ls = call(ctx, "bash", "{\"command\":\"ls -A n/m; stat -c %a n n/m\"}", &err);
	assert_string_equal(ls, "x.txt\n700\n700");
	free(ls);
	tool_ctx_free(ctx);
}

static void
test_roots(void **state)
{
	(void)state;
	struct tool_ctx *ctx = new_ctx();
	assert_int_equal(tool_ctx_allow_root(ctx, outside, true), 0);
	assert_int_equal(tool_ctx_allow_root(ctx, "relative", false), AL_E_INVAL);
	static const struct tcase t[] = {
	    {"read", "{\"file_path\":\"$O/secret.txt\"}", false, "secret\n"},
	    {"write", "{\"file_path\":\"$O/new.txt\",\"content\":\"x\"}", true,
	     "write: $O/new.txt is inside read-only directory $O"},
	    {"edit", "{\"file_path\":\"$O/secret.txt\",\"old_string\":\"s\",\"new_string\":\"t\"}",
	     true, "edit: $O/secret.txt is inside read-only directory $O"},
	    {"read", "{\"file_path\":\"/etc/hostname\"}", true,
	     "path \"/etc/hostname\" is outside the session's working directory and its other "
	     "permitted directories"},
	    {"grep", "{\"pattern\":\"secr\",\"path\":\"$O\"}", false, "$O/secret.txt:1:secret\n"},
	};
	run_table(ctx, t, ARRAY_LEN(t));
	tool_ctx_free(ctx);
}

/* A directory swapped for a symlink after the path was checked must not be followed:
 * openat2 (and the per-component fallback) refuse, the check itself never sees it. */
static void
test_symlink_swap(void **state)
{
	(void)state;
	struct tool_ctx *ctx = new_ctx();
	char *dir = xasprintf("%s/swap", ws), *canon = xasprintf("%s/swap/secret.txt", ws);
	for (int pass = 0; pass < 2; pass++) {
		tool_path_force_walk = pass == 1;
		assert_int_equal(mkdir(dir, 0755), 0);
		put("swap/secret.txt", "inside\n");
		int fd = tool_path_open(ctx, canon, O_RDONLY, 0);
		assert_true(fd >= 0);
		close(fd);
		/* The swap: */
		char *cmd = xasprintf("rm -rf '%s' && ln -s '%s' '%s'", dir, outside, dir);
		assert_int_equal(system(cmd), 0);
		free(cmd);
		fd = tool_path_open(ctx, canon, O_RDONLY, 0);
		assert_true(fd == -ELOOP || fd == -ENOTDIR || fd == -EXDEV);
		const char *leaf;
		fd = tool_path_open_parent(ctx, canon, true, &leaf);
		assert_true(fd < 0);
		assert_int_equal(unlink(dir), 0);
	}
	tool_path_force_walk = false;
	free(dir);
	free(canon);
	tool_ctx_free(ctx);
}

static void
test_bash(void **state)
{
	(void)state;
	setenv("ANTHROPIC_API_KEY", "sk-test-not-for-tools", 1);
	struct tool_ctx *ctx = new_ctx();
	static const struct tcase t[] = {
	    {"bash", "{\"command\":\"echo $ANTHROPIC_API_KEY; echo \\\"$TERM\\\"\"}", false,
	     "\ndumb"},
	    {"bash", "{\"command\":\"X=1; cd sub\"}", false, "(no output)"},
	    {"bash", "{\"command\":\"echo $X; basename $PWD\"}", false, "1\nsub"},
	    /* fd 3 (the status pipe) is closed for commands. */
	    {"bash", "{\"command\":\"{ echo 123 >&3; } 2>/dev/null || echo closed\"}", false,
	     "closed"},
	    /* Fake status lines, old-style sentinels and xtrace cannot end a call early. */
	    {"bash",
	     "{\"command\":\"echo __AL_CMD_0011_DONE__ 0; printf '__ANT_CMD_x_DONE__0\\\\n'; echo "
	     "end\"}",
	     false, "__AL_CMD_0011_DONE__ 0\n__ANT_CMD_x_DONE__0\nend"},
	    {"bash", "{\"command\":\"function printf { :; }; echo p\"}", false, "p"},
	    {"bash", "{\"command\":\"unset -f printf; echo q\"}", false, "q"},
	    {"bash", "{\"command\":\"sleep 30 & echo $! > bg.pid; sleep 30\",\"timeout_ms\":300}",
	     true, "bash: bash command timed out after 300ms"},
	    {"bash", "{\"command\":\"echo $X\"}", false, "(no output)"},
	    {"bash", "{\"restart\":true,\"command\":\"echo fresh\"}", false, "fresh"},
	    {"bash", "{\"command\":\"exit 7\"}", true, "bash: bash session terminated"},
	    {"bash", "{\"command\":\"echo back; (exit 9)\"}", true, "back"},
	    {"bash", "{\"command\":\"(exit 9)\"}", true, "exit 9"},
	};
	bool err;
	/* set -v echoes the framing itself; the token shows only split, so it cannot end the
	 * call early, and set -x traces of the status printf go to output, not the status fd. */
	free(call(ctx, "bash", "{\"command\":\"set -vx\"}", &err));
	char *vo = call(ctx, "bash", "{\"command\":\"echo v\"}", &err);
	assert_false(err);
	assert_non_null(strstr(vo, "'__AL_CMD''_"));
	/* the command's output has its own pipe: its place among the shell's traces varies */
	size_t vl = strlen(vo);
	if (strstr(vo, "\nv\n") == NULL && !(vl >= 2 && strcmp(vo + vl - 2, "\nv") == 0))
		fail_msg("set -vx output: [%s]", vo);
	free(vo);
	free(call(ctx, "bash", "{\"command\":\"set +vx\"}", &err));
	run_table(ctx, t, ARRAY_LEN(t));
	/* The timed-out call's background job died with its process group. */
	char *pid = call(ctx, "bash", "{\"command\":\"cat sub/bg.pid\"}", &err);
	uint64_t v;
	assert_int_equal(parse_uint_cstr(pid, 1u << 22, &v), 0);
	int alive = 1;
	for (int i = 0; i < 500 && alive; i++) {
		char *st = xasprintf("/proc/%llu/stat", (unsigned long long)v);
		FILE *f = fopen(st, "r");
		char line[256] = "";
		if (f != NULL) {
			if (fgets(line, sizeof(line), f) == NULL)
				line[0] = '\0';
			fclose(f);
		}
		/* Gone, or a zombie waiting for its new parent. */
		alive = f != NULL && strstr(line, ") Z ") == NULL;
		free(st);
		if (alive)
			usleep(10000);
	}
	assert_false(alive);
	free(pid);
	tool_ctx_free(ctx);
	unsetenv("ANTHROPIC_API_KEY");
}

/* Issue 11: a background job's output never lands in a later call's result, and its
 * writes after its call ended still succeed (the job is not killed by SIGPIPE). */
static void
test_bash_background_output(void **state)
{
	(void)state;
	struct tool_ctx *ctx = new_ctx();
	static const struct tcase t[] = {
	    {"bash",
	     "{\"command\":\"(sleep 0.3; echo LEAK; touch bg-alive) & "
	     "(sleep 0.3; while :; do echo TICK; sleep 0.05; done) & echo started\"}",
	     false, "started"},
	    {"bash", "{\"command\":\"sleep 0.8; echo second\"}", false, "second"},
	    {"bash", "{\"command\":\"test -e bg-alive && echo alive\"}", false, "alive"},
	    {"bash", "{\"command\":\"sleep 0.2; kill $(jobs -p) 2>/dev/null; echo third\"}", false,
	     "third"},
	    {"bash", "{\"command\":\"(echo own; sleep 0.1; echo job) & wait; echo done\"}", false,
	     "own\njob\ndone"},
	};
	run_table(ctx, t, ARRAY_LEN(t));
	tool_ctx_free(ctx);
}

static void *
cancel_later(void *arg)
{
	struct tool_ctx *ctx = arg;
	char *p = xasprintf("%s/started", ws);
	/* Cancel once the command is surely running: it creates this file first. */
	for (int i = 0; i < 3000 && access(p, F_OK) != 0; i++)
		usleep(10000);
	free(p);
	tool_cancel(ctx);
	return NULL;
}

static void
test_cancel(void **state)
{
	(void)state;
	struct tool_ctx *ctx = new_ctx();
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, cancel_later, ctx), 0);
	bool err;
	char *t = call(ctx, "bash", "{\"command\":\"touch started; sleep 60\"}", &err);
	pthread_join(th, NULL);
	assert_true(err);
	assert_string_equal(t, "bash: This operation was aborted");
	free(t);
	t = call(ctx, "bash", "{\"command\":\"rm started; echo next\"}", &err);
	assert_false(err);
	assert_string_equal(t, "next");
	free(t);
	/* A cancel that lands before the call starts (SIGTERM while the job is on its way
	 * to the executor thread) stops that call; the one after runs normally. */
	tool_cancel(ctx);
	t = call(ctx, "bash", "{\"command\":\"sleep 60; echo late\"}", &err);
	assert_true(err);
	assert_null(strstr(t, "late"));
	free(t);
	t = call(ctx, "bash", "{\"command\":\"echo after\"}", &err);
	assert_false(err);
	assert_string_equal(t, "after");
	free(t);
	tool_ctx_free(ctx);
}

static void
test_bash_truncation(void **state)
{
	(void)state;
	struct tool_ctx *ctx = new_ctx();
	bool err;
	char *t = call(ctx, "bash", "{\"command\":\"seq 1 100000\"}", &err);
	assert_false(err);
	assert_true(strncmp(t, "[output truncated]\n", 19) == 0);
	assert_true(strlen(t) <= 19 + TOOL_BASH_OUTPUT_LIMIT);
	size_t n = strlen(t);
	assert_string_equal(t + n - 7, "\n100000");
	free(t);
	tool_ctx_free(ctx);
}

static void
test_grep_builtin(void **state)
{
	(void)state;
	struct tool_ctx *ctx = new_ctx();
	tool_ctx_set_rg(ctx, "");
	put("bin.dat", "needle\n");
	char *p = xasprintf("%s/bin.dat", ws);
	FILE *f = fopen(p, "a");
	fputc(0, f);
	fputs("needle\n", f);
	fclose(f);
	free(p);
	static const struct tcase t[] = {
	    {"grep", "{\"pattern\":\"in(t|k) main\"}", false,
	     "$W/sub/a.c:1:int main(void) { return 0; }"},
	    {"grep", "{\"pattern\":\"^(beta|gamma)$\",\"path\":\"crlf.txt\"}", false,
	     "$W/crlf.txt:2:beta\n$W/crlf.txt:3:gamma"},
	    {"grep", "{\"pattern\":\"needle\",\"path\":\"bin.dat\"}", false, "no matches"},
	    {"grep", "{\"pattern\":\"zzz\"}", false, "no matches"},
	    {"grep", "{\"pattern\":\"(\"}", true, "grep: invalid regex: Unmatched ( or \\("},
	    {"grep", "{\"pattern\":\"x\",\"path\":\"../\"}", true,
	     "path \"../\" is outside the session's working directory"},
	};
	run_table(ctx, t, ARRAY_LEN(t));
	tool_ctx_free(ctx);
}

/* Issue 11, finding 4: a pattern whose compiled form is huge ((x{1,1000}){1,1000} took 19 s
 * and 3.9 GB in the worker) gets a clear error within bounded time, and neither the time
 * nor the memory are the worker's: its peak RSS does not grow, and grep works after. */
static void
test_grep_hostile_regex(void **state)
{
	(void)state;
	struct tool_ctx *ctx = new_ctx();
	struct rusage ru0, ru1;
	bool err;
	tool_ctx_set_rg(ctx, "");
	assert_int_equal(getrusage(RUSAGE_SELF, &ru0), 0);
	uint64_t t0 = now_mono_ms();
	char *got = call(ctx, "grep", "{\"pattern\":\"(x{1,1000}){1,1000}\"}", &err);
	uint64_t ms = now_mono_ms() - t0;
	assert_int_equal(getrusage(RUSAGE_SELF, &ru1), 0);
	print_message("hostile regex: %llu ms, peak RSS %ld -> %ld KiB: %s\n",
	              (unsigned long long)ms, ru0.ru_maxrss, ru1.ru_maxrss, got);
	assert_true(err);
	assert_true(strncmp(got, "grep: ", 6) == 0);
	assert_null(strstr(got, "invalid regex"));
	assert_true(ms < 15000);
	assert_true(ru1.ru_maxrss - ru0.ru_maxrss < 64 * 1024);
	free(got);
	got = call(ctx, "grep", "{\"pattern\":\"in(t|k) main\"}", &err);
	assert_false(err);
	assert_non_null(strstr(got, "sub/a.c:1:int main"));
	free(got);
	tool_ctx_free(ctx);
}

static void
test_glob(void **state)
{
	(void)state;
	struct tool_ctx *ctx = new_ctx();
	bool err;
	free(call(ctx, "bash",
	          "{\"command\":\"mkdir -p g/.git g/node_modules g/d && touch -d @100 g/old.txt && "
	          "touch -d @300 g/d/new.txt && touch -d @200 g/mid.txt g/.git/x.txt "
	          "g/node_modules/y.txt && ln -s mid.txt g/link.txt\"}",
	          &err));
	static const struct tcase t[] = {
	    {"glob", "{\"pattern\":\"g/**/*.txt\"}", false,
	     "$W/g/d/new.txt\n$W/g/mid.txt\n$W/g/old.txt"},
	    {"glob", "{\"pattern\":\"*.txt\",\"path\":\"g\"}", false, "$W/g/mid.txt\n$W/g/old.txt"},
	    {"glob", "{\"pattern\":\"/etc/*\"}", true,
	     "glob: absolute pattern not permitted; pass a relative pattern (and optionally path)"},
	    {"glob", "{\"pattern\":\"a/{b,..}\"}", true,
	     "glob: \"..\" is not permitted in the pattern"},
	};
	run_table(ctx, t, ARRAY_LEN(t));
	tool_ctx_free(ctx);
}

/* A spawner that wraps the default one: the toolset must start every process through it. */
static int spawns;

static int
counting_spawn(void *arg, const struct tool_spawn_req *req, void **proc)
{
	spawns++;
	return tool_default_spawner.spawn(arg, req, proc);
}

static void
test_spawner(void **state)
{
	(void)state;
	struct tool_spawner sp = tool_default_spawner;
	sp.spawn = counting_spawn;
	struct tool_ctx *ctx;
	assert_int_equal(tool_ctx_new(ws, &sp, &ctx), 0);
	tool_ctx_set_rg(ctx, "/usr/bin/rg");
	bool err;
	free(call(ctx, "bash", "{\"command\":\"true\"}", &err));
	free(call(ctx, "bash", "{\"command\":\"true\"}", &err));
	/* one shell, and one helper per call lending it the call's output pipe */
	assert_int_equal(spawns, 3);
	if (access("/usr/bin/rg", X_OK) == 0) {
		free(call(ctx, "grep", "{\"pattern\":\"x\"}", &err));
		assert_int_equal(spawns, 4);
	}
	tool_ctx_free(ctx);
}

/* view_range at the ends of int64: start_line - 1 overflowed at INT64_MIN (undefined; in
 * practice INT64_MAX, which selected nothing). As the SDK (doubles): a start below 1 reads
 * from the first line, in memory and when streaming a file over the cap. */
static void
test_view_range_extremes(void **state)
{
	(void)state;
	static const struct tcase t[] = {
	    {"read", "{\"file_path\":\"v.txt\",\"view_range\":[-9223372036854775808,2]}", false,
	     "a\nb"},
	    {"read",
	     "{\"file_path\":\"v.txt\",\"view_range\":[-9223372036854775808,"
	     "-9223372036854775808]}",
	     false, "a\nb\nc\n"},
	    {"read", "{\"file_path\":\"v.txt\",\"view_range\":[9223372036854775807,2]}", false,
	     "(no output)"},
	    {"read", "{\"file_path\":\"v.txt\",\"view_range\":[2,9223372036854775807]}", false,
	     "b\nc\n"},
	};
	put("v.txt", "a\nb\nc\n");
	struct tool_ctx *ctx = new_ctx();
	run_table(ctx, t, ARRAY_LEN(t));
	tool_ctx_set_max_file_bytes(ctx, 4); /* v.txt is 6 bytes: streamed */
	run_table(ctx, t, 1);
	run_table(ctx, t + 2, 1);
	tool_ctx_free(ctx);
}

static mode_t
mode_of(const char *rel)
{
	struct stat st;
	char *p = rel[0] == '/' ? xstrdup(rel) : xasprintf("%s/%s", ws, rel);
	assert_int_equal(lstat(p, &st), 0);
	free(p);
	return st.st_mode & 07777;
}

static void
chmod_rel(const char *rel, mode_t m)
{
	char *p = rel[0] == '/' ? xstrdup(rel) : xasprintf("%s/%s", ws, rel);
	assert_int_equal(chmod(p, m), 0);
	free(p);
}

/* Issue 11, finding 8: no setuid/setgid file stays in the host workspace. The write tool
 * does not carry the bits of the file it replaces, and tool_setid_strip (run when a
 * session's tools close) clears them everywhere below the workspace, never through a
 * symlink. */
static void
test_setid(void **state)
{
	(void)state;
	struct tool_ctx *ctx;
	bool err;
	unsigned long n;
	assert_int_equal(tool_ctx_new(ws, NULL, &ctx), 0);
	put("suid.sh", "#!/bin/sh\n");
	chmod_rel("suid.sh", 04755);
	char *t = call(ctx, "write", "{\"file_path\":\"suid.sh\",\"content\":\"echo\\n\"}", &err);
	assert_false(err);
	free(t);
	assert_int_equal(mode_of("suid.sh"), 0755);
	tool_ctx_free(ctx);

	char *d = xasprintf("%s/setid", ws), *deep = xasprintf("%s/setid/a/b", ws);
	char *o = xasprintf("%s/outside-suid", outside), *l = xasprintf("%s/setid/link", ws);
	char *a = xasprintf("%s/setid/a", ws);
	assert_int_equal(mkdir(d, 0755), 0);
	assert_int_equal(mkdir(a, 0775), 0);
	chmod_rel("setid/a", 02775);
	assert_int_equal(mkdir(deep, 0700), 0);
	free(a);
	put("setid/u", "x");
	put("setid/a/g", "x");
	put("setid/a/b/ug", "x");
	put("setid/plain", "x");
	chmod_rel("setid/u", 04755);
	chmod_rel("setid/a/g", 02711);
	chmod_rel("setid/a/b/ug", 06555);
	chmod_rel("setid/plain", 0640);
	FILE *f = fopen(o, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(chmod(o, 04755), 0);
	assert_int_equal(symlink(o, l), 0);

	assert_int_equal(tool_setid_strip(d, 1000, &n), 0);
	assert_int_equal(n, 5); /* a/b inherited a's setgid bit */
	assert_int_equal(mode_of("setid/a/b"), 0700);
	assert_int_equal(mode_of("setid/u"), 0755);
	assert_int_equal(mode_of("setid/a"), 0775);
	assert_int_equal(mode_of("setid/a/g"), 0711);
	assert_int_equal(mode_of("setid/a/b/ug"), 0555);
	assert_int_equal(mode_of("setid/plain"), 0640);
	assert_int_equal(mode_of(o), 04755); /* the symlink's target is not the workspace's */
	assert_int_equal(tool_setid_strip(d, 1000, &n), 0);
	assert_int_equal(n, 0);
	/* the bound stops the walk and says so */
	chmod_rel("setid/u", 04755);
	assert_int_equal(tool_setid_strip(d, 1, &n), AL_E_TOOBIG);
	assert_int_equal(tool_setid_strip("/nonexistent-al", 10, &n), -ENOENT);
	free(d);
	free(deep);
	free(o);
	free(l);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_input_validation),
	    cmocka_unit_test(test_unknown_tool),
	    cmocka_unit_test(test_utf8_clean),
	    cmocka_unit_test(test_glob_match),
	    cmocka_unit_test(test_lexical),
	    cmocka_unit_test(test_file_tools),
	    cmocka_unit_test(test_roots),
	    cmocka_unit_test(test_symlink_swap),
	    cmocka_unit_test(test_bash),
	    cmocka_unit_test(test_bash_background_output),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_bash_truncation),
	    cmocka_unit_test(test_grep_builtin),
	    cmocka_unit_test(test_grep_hostile_regex),
	    cmocka_unit_test(test_glob),
	    cmocka_unit_test(test_spawner),
	    cmocka_unit_test(test_setid),
	    cmocka_unit_test(test_view_range_extremes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
