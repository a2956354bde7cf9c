/* Internals shared by the toolset's files: the session context, the result being built,
 * path confinement and the process helpers. Not for use outside src/worker/tools/. */
#ifndef AL_TOOLS_INT_H
#define AL_TOOLS_INT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "tools.h"

struct tool_root {
	char *cfg;   /* as configured: read-only refusals name it this way (SDK) */
	char *canon; /* canonical, resolved when added */
	bool read_only;
};

struct tool_bash;

struct tool_ctx {
	char *workdir; /* path.resolve(workdir as given): bash cwd, glob/grep output prefix */
	char *root;    /* canonical workdir: confinement root */
	int root_fd;   /* O_PATH dirfd of root; every workspace access starts here */
	struct tool_root *roots;
	size_t nroots;
	struct tool_spawner sp;
	char *rg;          /* explicit rg, or NULL */
	bool rg_disabled;  /* built-in grep only */
	uint64_t max_file; /* read/edit cap */
	struct tool_bash *bash;
	int cancel_fd; /* eventfd written by tool_cancel, polled by blocking waits */
	volatile sig_atomic_t cancelled;
};

/* The result being built: one text, and whether it is an error. */
struct tool_res {
	struct buf text;
	bool is_error;
};

/* Replaces the text with a formatted error message and marks the result as an error. */
void tool_fail(struct tool_res *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Input accessors after tool_input_check passed: NULL / false / def when absent or null. */
const char *tool_in_str(const json_t *input, const char *key);
bool tool_in_bool(const json_t *input, const char *key);
int64_t tool_in_int(const json_t *input, const char *key, int64_t def);

/* ---- paths (tools_path.c) ---- */
/* path.resolve(base, p): absolute, lexically normalized ("." and ".." collapsed). */
char *tool_path_lexical(const char *base, const char *p);
/* The SDK's canonicalize(): realpath of the longest existing prefix, every symlink (also a
 * dangling leaf) followed, missing components re-appended. 0 or -errno. */
int tool_path_canon(const char *abs, char **out);
/* confineToRoot(): resolves p against the workdir and requires it inside the workdir or an
 * allowed root. On refusal returns -1 with the SDK's message (no tool prefix) in res. */
int tool_path_resolve(struct tool_ctx *ctx, const char *p, char **canon, struct tool_res *res);
/* The read-only root containing canon, or NULL. */
const struct tool_root *tool_path_ro_root(struct tool_ctx *ctx, const char *canon);
/* Opens a canonical path beneath its root with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
 * RESOLVE_NO_MAGICLINKS) (per-component O_NOFOLLOW walk without openat2). fd or -errno. */
int tool_path_open(struct tool_ctx *ctx, const char *canon, int flags, mode_t mode);
/* Opens the parent directory of canon beneath its root, creating missing directories (0700)
 * when mkdirs is set (the SDK's mkdir -p, with its EEXIST/ENOTDIR results). Returns the dir
 * fd or -errno; *leaf points into canon. */
int tool_path_open_parent(struct tool_ctx *ctx, const char *canon, bool mkdirs, const char **leaf);
/* Temp file in dirfd, write, fsync, keep the old file's mode (new: 0600), rename over leaf. */
int tool_path_write_atomic(int dirfd, const char *leaf, const char *data, size_t len);
/* The SDK's fsErrorMessage(): "<file>: no such file or directory", ... */
void tool_path_errtext(struct buf *out, int err, const char *file);
/* Appends JSON.stringify(s). */
void tool_json_quote(struct buf *out, const char *s);
/* Test hook: use the per-component walk even where openat2 exists. */
extern bool tool_path_force_walk;

/* ---- processes (tools_proc.c) ---- */
extern const struct tool_spawner tool_default_spawner;
/* The environment for programs the toolset starts: ours minus ANTHROPIC_* (any case), plus
 * extra (NULL-terminated "K=V" list, replacing same-named entries). Free with
 * tool_env_free. */
char **tool_env_build(const char *const *extra);
void tool_env_free(char **env);
/* Deadline helpers: remaining ms (0 when passed) of a CLOCK_MONOTONIC deadline. */
int tool_ms_left(uint64_t deadline_ms);
/* Drains the cancel eventfd. */
void tool_cancel_reset(struct tool_ctx *ctx);

/* ---- text ---- */
/* Copies src to out replacing ill-formed UTF-8 the way WHATWG/Node decoders do (one U+FFFD
 * per maximal subpart), and each NUL byte with U+FFFD as the server does. */
int tool_utf8_clean(struct buf *out, const char *src, size_t len);

/* ---- the tools ---- */
void tool_bash_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res);
void tool_bash_close(struct tool_ctx *ctx);
void tool_read_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res);
void tool_write_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res);
void tool_edit_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res);
void tool_glob_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res);
void tool_grep_run(struct tool_ctx *ctx, const json_t *in, struct tool_res *res);
/* glob pattern matching, exposed for unit tests: 1 match, 0 no match. */
int tool_glob_match(const char *pattern, const char *relpath);

#endif
