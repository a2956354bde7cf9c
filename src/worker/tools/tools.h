/* The agent toolset (agent_toolset_20260401): bash, read, write, edit, glob and grep, run for
 * one session against its workspace, with result texts byte-compatible with the official SDK.
 * Design and the documented differences from the SDK: docs/worker/tools.md. */
#ifndef AL_TOOLS_H
#define AL_TOOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct tool_ctx;

/* A process the toolset wants started (the persistent bash, rg). */
struct tool_spawn_req {
	const char *path;        /* program to exec */
	const char *const *argv; /* NULL-terminated; argv[0] is the name it runs under */
	const char *const *envp; /* NULL-terminated, complete environment */
	const char *cwd;         /* working directory, or NULL */
	const int *fds;          /* the child's fd i becomes fds[i]; -1 means /dev/null */
	int nfds;                /* every other fd is closed in the child */
};

/* How processes are started. The default (NULL) forks and execs the program in a new
 * session; the worker plugs in the sandbox here. kill must take the whole process tree
 * (process group, or cgroup.kill in the sandbox) and be idempotent; reap waits for the
 * child, stores its wait status and releases the handle. */
struct tool_spawner {
	int (*spawn)(void *arg, const struct tool_spawn_req *req, void **proc);
	void (*kill)(void *arg, void *proc);
	int (*reap)(void *arg, void *proc, int *wstatus);
	void *arg;
};

/* Limits (tools.md §11). */
#define TOOL_BASH_OUTPUT_LIMIT (100 * 1024)
#define TOOL_BASH_DEFAULT_TIMEOUT_MS 120000
#define TOOL_MAX_FILE_BYTES (256 * 1024)
#define TOOL_GREP_OUTPUT_LIMIT (100 * 1024)
#define TOOL_GREP_TIMEOUT_MS 60000
#define TOOL_GLOB_RESULT_LIMIT 200
#define TOOL_WALK_MAX_ENTRIES 50000

/* workdir must be an existing directory; it is canonicalized and held open. sp may be NULL
 * (plain fork/exec); it is copied. */
int tool_ctx_new(const char *workdir, const struct tool_spawner *sp, struct tool_ctx **out);
/* Kills the bash (and its process tree) and frees everything. Accepts NULL. */
void tool_ctx_free(struct tool_ctx *ctx);
/* Adds a directory outside workdir that the file tools may reach (a memory store mount);
 * read_only also makes write and edit refuse it. dir must exist. */
int tool_ctx_allow_root(struct tool_ctx *ctx, const char *dir, bool read_only);
/* grep: NULL (default) finds the first rg on PATH outside the roots; "" forces the
 * built-in walker; any other value is the rg to run. */
void tool_ctx_set_rg(struct tool_ctx *ctx, const char *rg_path);
/* Size cap for read and edit (0 restores the 256 KiB default). */
void tool_ctx_set_max_file_bytes(struct tool_ctx *ctx, uint64_t max);

/* Validates input against the tool's schema and runs it, blocking until it ends. *content
 * is a new JSON array with one text block ([{"type":"text","text":...}]); *is_error says
 * whether it is an error result. Returns 0 whenever a result was produced (tool failures
 * are results), AL_E_NOTFOUND for a tool name this toolset does not implement (the caller
 * leaves that call for another client), AL_E_INVAL for bad arguments. */
int tool_run(struct tool_ctx *ctx, const char *name, const json_t *input, json_t **content,
             bool *is_error);
/* Cancels the in-flight call from another thread (async-signal-safe): bash is killed and
 * restarted on the next call, rg is killed, walkers stop. The call returns an error result. */
void tool_cancel(struct tool_ctx *ctx);

/* Clears the setuid and setgid bits of everything below dir (and of dir itself), never
 * following a symlink; at most max_entries entries are looked at. *cleared counts the
 * files changed. 0, or the first error met (the walk goes on past it; AL_E_TOOBIG when
 * the bound stopped it). Run when nothing of the session runs any more. */
int tool_setid_strip(const char *dir, unsigned long max_entries, unsigned long *cleared);

/* True for the six names this toolset implements. */
bool tool_known(const char *name);
/* Schema check only, no side effects: 0 when input is acceptable for name, else
 * AL_E_NOTFOUND or AL_E_INVAL with the result text the call would get in *msg (heap). */
int tool_input_check(const char *name, const json_t *input, char **msg);

#endif
