/* The toolset's front door: the per-session context, input validation against each tool's
 * schema, dispatch, and turning a tool's text into the content array the worker posts. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "tools_int.h"
#include "util.h"
#include "xalloc.h"

enum field_type { F_STR, F_BOOL, F_INT, F_INTARR };

/* Required fields come in two kinds: those the SDK checks itself ("<tool>: <field> is
 * required", also for "" and null), and those only its schema names, which get our
 * "<tool>: invalid input: <field>" (tools.md §3). */
enum field_need { OPTIONAL, REQUIRED, SDK_REQUIRED };

struct field {
	const char *name;
	enum field_type type;
	enum field_need need;
};

struct tool_def {
	const char *name;
	void (*run)(struct tool_ctx *ctx, const json_t *in, struct tool_res *res);
	struct field fields[4];
};

/* Bounds that keep integer inputs meaningful: a day for bash, lines that fit in int64. */
#define TIMEOUT_MS_MAX (24LL * 3600 * 1000)

static const struct tool_def tool_defs[] = {
    {"bash",
     tool_bash_run,
     {{"command", F_STR, OPTIONAL},
      {"restart", F_BOOL, OPTIONAL},
      {"timeout_ms", F_INT, OPTIONAL}}},
    {"read",
     tool_read_run,
     {{"file_path", F_STR, SDK_REQUIRED}, {"view_range", F_INTARR, OPTIONAL}}},
    {"write", tool_write_run, {{"file_path", F_STR, SDK_REQUIRED}, {"content", F_STR, REQUIRED}}},
    {"edit",
     tool_edit_run,
     {{"file_path", F_STR, SDK_REQUIRED},
      {"old_string", F_STR, SDK_REQUIRED},
      {"new_string", F_STR, REQUIRED},
      {"replace_all", F_BOOL, OPTIONAL}}},
    {"glob", tool_glob_run, {{"pattern", F_STR, SDK_REQUIRED}, {"path", F_STR, OPTIONAL}}},
    {"grep", tool_grep_run, {{"pattern", F_STR, SDK_REQUIRED}, {"path", F_STR, OPTIONAL}}},
};

static const struct tool_def *
find_def(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < ARRAY_LEN(tool_defs); i++)
		if (strcmp(tool_defs[i].name, name) == 0)
			return &tool_defs[i];
	return NULL;
}

bool
tool_known(const char *name)
{
	return find_def(name) != NULL;
}

/* An integer, or a real with an integral value (JSON does not tell 1 from 1.0). */
static bool
json_int_value(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= -9.0e18 && d <= 9.0e18 && (double)(int64_t)d == d) {
			*out = (int64_t)d;
			return true;
		}
	}
	return false;
}

static bool
field_type_ok(const struct field *f, const json_t *v)
{
	int64_t n;
	switch (f->type) {
	case F_STR:
		return json_is_string(v);
	case F_BOOL:
		return json_is_boolean(v);
	case F_INT:
		return json_int_value(v, &n) && n >= 0 && n <= TIMEOUT_MS_MAX;
	case F_INTARR: {
		size_t i;
		json_t *e;
		if (!json_is_array(v))
			return false;
		json_array_foreach(v, i, e)
		{
			if (!json_int_value(e, &n))
				return false;
		}
		return true;
	}
	}
	return false;
}

/* Returns NULL when the input passes, else the heap result text. */
static char *
check_input(const struct tool_def *d, const json_t *input)
{
	if (!json_is_object(input))
		return xasprintf("%s: invalid input: input", d->name);
	for (size_t i = 0; i < ARRAY_LEN(d->fields) && d->fields[i].name != NULL; i++) {
		const struct field *f = &d->fields[i];
		const json_t *v = json_object_get(input, f->name);
		bool absent = v == NULL || json_is_null(v);
		if (absent && f->need == SDK_REQUIRED)
			return xasprintf("%s: %s is required", d->name, f->name);
		if (absent && f->need == REQUIRED)
			return xasprintf("%s: invalid input: %s", d->name, f->name);
		if (absent)
			continue;
		if (!field_type_ok(f, v))
			return xasprintf("%s: invalid input: %s", d->name, f->name);
		/* Paths and patterns become C strings and argv: no NUL inside. Contents and
		 * commands keep theirs (they are used with their JSON length). */
		if (f->type == F_STR && f->need != REQUIRED && strcmp(f->name, "command") != 0 &&
		    strlen(json_string_value(v)) != json_string_length(v))
			return xasprintf("%s: invalid input: %s", d->name, f->name);
		if (f->need == SDK_REQUIRED && json_string_length(v) == 0)
			return xasprintf("%s: %s is required", d->name, f->name);
	}
	return NULL;
}

int
tool_input_check(const char *name, const json_t *input, char **msg)
{
	const struct tool_def *d = find_def(name);
	*msg = NULL;
	if (d == NULL)
		return AL_E_NOTFOUND;
	*msg = check_input(d, input);
	return *msg == NULL ? 0 : AL_E_INVAL;
}

const char *
tool_in_str(const json_t *input, const char *key)
{
	const json_t *v = json_object_get(input, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

bool
tool_in_bool(const json_t *input, const char *key)
{
	return json_is_true(json_object_get(input, key));
}

int64_t
tool_in_int(const json_t *input, const char *key, int64_t def)
{
	int64_t n;
	const json_t *v = json_object_get(input, key);
	return v != NULL && json_int_value(v, &n) ? n : def;
}

void
tool_fail(struct tool_res *res, const char *fmt, ...)
{
	va_list ap;
	buf_reset(&res->text);
	va_start(ap, fmt);
	/* Error texts are short and bounded by their inputs; a failed format leaves a
	 * truncated message, which is still an error result. */
	(void)buf_vaddf(&res->text, fmt, ap);
	va_end(ap);
	res->is_error = true;
}

int
tool_utf8_clean(struct buf *out, const char *src, size_t len)
{
	static const char fffd[] = "\xef\xbf\xbd";
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0;
	int r;

	while (i < len) {
		size_t start = i, need;
		unsigned lo = 0x80, hi = 0xbf;
		unsigned char b = s[i];
		if (b == 0) {
			/* U+0000 is valid UTF-8, but the control plane replaces it too (JSON
			 * parsers and C strings stop at it): docs/decisions.md */
			if ((r = buf_add(out, fffd, 3)) != 0)
				return r;
			i++;
			continue;
		}
		if (b < 0x80) {
			size_t j = i;
			while (j < len && s[j] != 0 && s[j] < 0x80)
				j++;
			if ((r = buf_add(out, src + i, j - i)) != 0)
				return r;
			i = j;
			continue;
		}
		if (b >= 0xc2 && b <= 0xdf)
			need = 1;
		else if (b >= 0xe0 && b <= 0xef)
			need = 2;
		else if (b >= 0xf0 && b <= 0xf4)
			need = 3;
		else
			need = 0;
		if (b == 0xe0)
			lo = 0xa0;
		else if (b == 0xed)
			hi = 0x9f;
		else if (b == 0xf0)
			lo = 0x90;
		else if (b == 0xf4)
			hi = 0x8f;
		i++;
		size_t got = 0;
		while (got < need && i < len && s[i] >= lo && s[i] <= hi) {
			lo = 0x80;
			hi = 0xbf;
			i++;
			got++;
		}
		/* An ill-formed sequence yields one U+FFFD for its maximal subpart; the byte
		 * that broke it is examined again as a possible lead byte. */
		if (need > 0 && got == need)
			r = buf_add(out, src + start, i - start);
		else
			r = buf_add(out, fffd, 3);
		if (r != 0)
			return r;
	}
	return 0;
}

int
tool_ctx_new(const char *workdir, const struct tool_spawner *sp, struct tool_ctx **out)
{
	int r = AL_E_INTERNAL;
	struct tool_ctx *ctx = NULL;
	char *cwd = NULL;
	struct stat st;

	*out = NULL;
	if (workdir == NULL || workdir[0] == '\0')
		return AL_E_INVAL;
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->root_fd = -1;
	ctx->cancel_fd = -1;
	ctx->max_file = TOOL_MAX_FILE_BYTES;
	ctx->sp = sp != NULL ? *sp : tool_default_spawner;
	if (workdir[0] != '/') {
		if ((cwd = getcwd(NULL, 0)) == NULL) {
			r = -errno;
			goto out;
		}
	}
	ctx->workdir = tool_path_lexical(cwd != NULL ? cwd : "/", workdir);
	if ((r = tool_path_canon(ctx->workdir, &ctx->root)) != 0)
		goto out;
	ctx->root_fd = open(ctx->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ctx->root_fd < 0 || fstat(ctx->root_fd, &st) != 0) {
		r = -errno;
		goto out;
	}
	ctx->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctx->cancel_fd < 0) {
		r = -errno;
		goto out;
	}
	*out = ctx;
	ctx = NULL;
	r = 0;
out:
	free(cwd);
	tool_ctx_free(ctx);
	return r;
}

void
tool_ctx_free(struct tool_ctx *ctx)
{
	if (ctx == NULL)
		return;
	tool_bash_close(ctx);
	if (ctx->root_fd >= 0)
		close(ctx->root_fd);
	if (ctx->cancel_fd >= 0)
		close(ctx->cancel_fd);
	for (size_t i = 0; i < ctx->nroots; i++) {
		free(ctx->roots[i].cfg);
		free(ctx->roots[i].canon);
	}
	free(ctx->roots);
	free(ctx->workdir);
	free(ctx->root);
	free(ctx->rg);
	free(ctx);
}

int
tool_ctx_allow_root(struct tool_ctx *ctx, const char *dir, bool read_only)
{
	int r;
	char *abs = NULL, *canon = NULL;
	struct stat st;

	if (dir == NULL || dir[0] != '/')
		return AL_E_INVAL;
	abs = tool_path_lexical("/", dir);
	if ((r = tool_path_canon(abs, &canon)) != 0)
		goto out;
	if (stat(canon, &st) != 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		r = -ENOTDIR;
		goto out;
	}
	ctx->roots = xreallocarray(ctx->roots, ctx->nroots + 1, sizeof(*ctx->roots));
	ctx->roots[ctx->nroots].cfg = xstrdup(dir);
	ctx->roots[ctx->nroots].canon = canon;
	ctx->roots[ctx->nroots].read_only = read_only;
	ctx->nroots++;
	canon = NULL;
	r = 0;
out:
	free(abs);
	free(canon);
	return r;
}

void
tool_ctx_set_rg(struct tool_ctx *ctx, const char *rg_path)
{
	free(ctx->rg);
	ctx->rg = NULL;
	ctx->rg_disabled = rg_path != NULL && rg_path[0] == '\0';
	if (rg_path != NULL && rg_path[0] != '\0')
		ctx->rg = xstrdup(rg_path);
}

void
tool_ctx_set_max_file_bytes(struct tool_ctx *ctx, uint64_t max)
{
	ctx->max_file = max == 0 ? TOOL_MAX_FILE_BYTES : max;
}

void
tool_cancel(struct tool_ctx *ctx)
{
	uint64_t one = 1;
	ctx->cancelled = 1;
	/* eventfd write is async-signal-safe; a full counter already means "cancelled". */
	ssize_t n = write(ctx->cancel_fd, &one, sizeof(one));
	(void)n;
}

void
tool_cancel_reset(struct tool_ctx *ctx)
{
	uint64_t v;
	ssize_t n = read(ctx->cancel_fd, &v, sizeof(v));
	(void)n;
	ctx->cancelled = 0;
}

int
tool_run(struct tool_ctx *ctx, const char *name, const json_t *input, json_t **content,
         bool *is_error)
{
	int r = AL_E_INTERNAL;
	const struct tool_def *d;
	struct tool_res res = {0};
	struct buf clean = {0};
	char *msg = NULL;
	json_t *arr = NULL;

	if (ctx == NULL || content == NULL || is_error == NULL)
		return AL_E_INVAL;
	*content = NULL;
	*is_error = false;
	if ((d = find_def(name)) == NULL)
		return AL_E_NOTFOUND;
	/* Room for the largest result (a whole capped file) plus its error wrapping. */
	size_t cap = (ctx->max_file > (1u << 20) ? ctx->max_file : (1u << 20)) + 65536;
	buf_init(&res.text, cap);
	buf_init(&clean, cap * 3 + 16);
	/* A cancel is cleared when its call ends, not when the next one starts: one that
	 * arrives while the job is still on its way to this thread (SIGTERM right after a
	 * dispatch) must stop the call instead of being forgotten. */
	if ((msg = check_input(d, input)) != NULL)
		tool_fail(&res, "%s", msg);
	else
		d->run(ctx, input, &res);
	if ((r = tool_utf8_clean(&clean, res.text.data != NULL ? res.text.data : "",
	                         res.text.len)) != 0)
		goto out;
	if (clean.len == 0 && (r = buf_add_str(&clean, "(no output)")) != 0)
		goto out;
	arr = json_array();
	json_array_append_new(
	    arr, json_pack("{s:s, s:s%}", "type", "text", "text", clean.data, clean.len));
	if (json_array_size(arr) != 1) {
		r = AL_E_INTERNAL;
		goto out;
	}
	*content = arr;
	*is_error = res.is_error;
	arr = NULL;
	r = 0;
out:
	tool_cancel_reset(ctx);
	json_decref(arr);
	free(msg);
	buf_free(&res.text);
	buf_free(&clean);
	return r;
}
