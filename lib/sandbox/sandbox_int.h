/* Internals of lib/sandbox shared between its files (and its unit tests): the setup
 * operation list, the message codec of the pid-1 and monitor protocols, cgroups, filters. */
#ifndef AL_SANDBOX_INT_H
#define AL_SANDBOX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "sandbox.h"

/* ---- setup operations (built in the parent, executed in the child) ---- */

enum sandbox_op_type {
	SB_OP_BIND,    /* src (host) -> dst; ro unless SB_OPF_RW */
	SB_OP_SYSDIR,  /* like BIND ro, but a symlink at src is recreated as a symlink */
	SB_OP_TMPFS,   /* fresh tmpfs at dst, size bytes, mode */
	SB_OP_PROC,    /* fresh procfs at dst with masks */
	SB_OP_DEV,     /* minimal /dev at dst */
	SB_OP_FILE,    /* regular file at dst with data, mode */
	SB_OP_DIR,     /* directory at dst, mode */
	SB_OP_SYMLINK, /* symlink at dst pointing to data */
};

enum sandbox_op_flags {
	SB_OPF_RW = 1u << 0,       /* writable (and a Landlock read-write rule) */
	SB_OPF_OPTIONAL = 1u << 1, /* missing src is skipped, not an error */
};

struct sandbox_op {
	enum sandbox_op_type type;
	unsigned flags;
	char *src;  /* host path (BIND, SYSDIR) */
	char *dst;  /* path inside the sandbox, absolute */
	char *data; /* FILE contents, SYMLINK target */
	uint64_t size;
	mode_t mode;
	int fd; /* BIND/SYSDIR: O_PATH fd of src opened by the parent (-1 until resolved) */
};

struct sandbox_ops {
	struct sandbox_op *v;
	size_t n, cap;
};

/* Builds the whole filesystem plan for one sandbox; workspace must be an absolute real
 * path, or NULL for a spare's plan (everything but the workspace binds, which the claim
 * adds last). Returns 0 or AL_E_INVAL (with ops left empty). */
int sandbox_ops_build(const struct sandbox_profile *p, const char *workspace,
                      struct sandbox_ops *ops);
void sandbox_ops_free(struct sandbox_ops *ops); /* closes resolved fds */
/* In the parent, with its full view of the host: opens every bind source as an O_PATH fd
 * (numbered >= 64, so the child's own fd shuffling never hits them), turns symlinked
 * system dirs into SYMLINK ops, drops missing optional sources. The child then binds from
 * /proc/self/fd/N and needs no search permission on host paths. */
int sandbox_ops_resolve(struct sandbox_ops *ops);
/* The op whose dst is exactly dst, or NULL (tests). */
const struct sandbox_op *sandbox_ops_find(const struct sandbox_ops *ops, const char *dst);

/* Session ids become cgroup and file names: [A-Za-z0-9_-]{1,64}. */
bool sandbox_id_valid(const char *s);

/* The environment of a spawned process: the fixed minimal env with envp applied on top;
 * ANTHROPIC_* and malformed entries dropped. Returns a NULL-terminated heap vector. */
char **sandbox_env_build(const char *const *envp);
void sandbox_strv_free(char **v);

/* ---- message codec (SOCK_SEQPACKET, one message per request/reply) ---- */

#define SANDBOX_MSG_MAX (128 * 1024)
#define SANDBOX_MSG_MAX_STRV 4096
#define SANDBOX_MSG_MAX_FDS SANDBOX_MAX_CHILD_FDS

struct sandbox_msg {
	struct buf b;
	int fds[SANDBOX_MSG_MAX_FDS];
	size_t nfds;
	size_t off; /* read cursor */
};

void sandbox_msg_init(struct sandbox_msg *m);
void sandbox_msg_reset(struct sandbox_msg *m); /* closes received fds, empties */
int sandbox_msg_put_u32(struct sandbox_msg *m, uint32_t v);
int sandbox_msg_put_str(struct sandbox_msg *m, const char *s);
int sandbox_msg_put_strv(struct sandbox_msg *m, const char *const *v);
/* Readers advance only on success; strings point into the message (NUL-terminated). */
int sandbox_msg_get_u32(struct sandbox_msg *m, uint32_t *v);
int sandbox_msg_get_i32(struct sandbox_msg *m, int32_t *v);
int sandbox_msg_get_str(struct sandbox_msg *m, const char **s);
/* Fills v (NULL-terminated, max entries incl. the NULL) with pointers into the message. */
int sandbox_msg_get_strv(struct sandbox_msg *m, const char **v, size_t max);
bool sandbox_msg_done(const struct sandbox_msg *m); /* everything consumed */
/* Sends the message with fds (SCM_RIGHTS); fds are not closed. */
int sandbox_msg_send(int sock, const struct sandbox_msg *m, const int *fds, size_t nfds);
/* Receives one message (resets m first). AL_E_CLOSED on EOF; AL_E_PROTO on truncation or
 * more fds than SANDBOX_MSG_MAX_FDS (all received fds are closed then). */
int sandbox_msg_recv(int sock, struct sandbox_msg *m);
/* Takes the i-th received fd (the message forgets it); -1 if absent. */
int sandbox_msg_take_fd(struct sandbox_msg *m, size_t i);

/* Pid-1 protocol types (docs/lib/sandbox.md). */
enum {
	SB_INIT_READY = 1, /* init -> parent: i32 err, str step */
	SB_INIT_SPAWN,     /* parent -> init: u32 fdmask, str path, strv argv, strv env, str cwd;
	                    * fds */
	SB_INIT_SPAWNED,   /* init -> parent: i32 err, i32 pid; fd status (err == 0) */
	SB_INIT_KILL,      /* parent -> init: i32 pid (-1: every process but pid 1), i32 sig */
	SB_INIT_KILLED,    /* init -> parent: i32 err */
	SB_INIT_SPARE,     /* child -> parent: i32 err, str step, u32 0 (set up but the
	                    * workspace; same fields as READY) */
	SB_INIT_CLAIM,     /* parent -> child: str workspace; fds: its tree at /workspace and
	                    * (when it differs) at its host path; none in path mode */
};

/* ---- cgroups and the journal ---- */

enum sandbox_cg_mode { SB_CG_NONE, SB_CG_V1, SB_CG_V2 };

struct sandbox_cg {
	enum sandbox_cg_mode mode;
	char *paths[3]; /* v2: paths[0]; v1: memory, pids, cpu (NULL when absent) */
	size_t n;
};

/* Finds what this host offers; *detail says why not when SB_CG_NONE. */
enum sandbox_cg_mode sandbox_cg_detect(const char **detail);
/* The same answer without changing anything (preflight); *warn: usable but fragile. */
enum sandbox_cg_mode sandbox_cg_probe(const char **detail, bool *warn);
/* Looks only: whether sandboxes here would get the cpu controller. */
bool sandbox_cg_has_cpu(void);
/* Creates the sandbox cgroup(s) for state_dir/sid and writes the limits. */
int sandbox_cg_create(const struct sandbox_profile *p, const char *sid, struct sandbox_cg *cg);
/* Kills every process in the cgroup(s), waits until empty, removes them. Idempotent. */
int sandbox_cg_remove(struct sandbox_cg *cg);
/* One rmdir attempt per group, no waiting: 0 when all are gone (their paths freed),
 * -EBUSY while some still hold (exiting) processes, or the first other error. */
int sandbox_cg_try_remove(struct sandbox_cg *cg);
void sandbox_cg_free(struct sandbox_cg *cg);
/* Records name the cgroups a crash would leave: session (<state_dir>/sandboxes/<sid>.rec,
 * while the session holds the sandbox) or not (<state_dir>/cgroups/<name>.rec: a spare's,
 * or a destroyed sandbox's awaiting removal). Written before the cgroups exist.
 * create: the record must not exist yet (AL_E_CONFLICT: that session has a sandbox). */
int sandbox_journal_write(const char *state_dir, bool session, const char *name,
                          const struct sandbox_cg *cg, bool create);
void sandbox_journal_remove(const char *state_dir, bool session, const char *name);
/* The session's record becomes cgroups/<name>.rec (destroy: the session id is free again
 * at once, the groups stay journaled until removed). */
int sandbox_journal_release(const char *state_dir, const char *sid, const char *name);
/* Per-state-dir name component: "airlock-" + 12 hex of sha256(state_dir). out >= 24. */
void sandbox_instance_name(const char *state_dir, char out[24]);

/* ---- filters ---- */

/* The workload seccomp program, built once per process (libseccomp, exported as BPF). */
int sandbox_seccomp_prog(const void **prog, size_t *len);
int sandbox_seccomp_load(const void *prog, size_t len);
/* Landlock ABI of the running kernel, 0 when absent. */
int sandbox_landlock_abi(void);
/* Restricts the calling process: read/exec everywhere, write where ops say rw and in the
 * n_extra extra_rw paths (the workspace). Returns 0, or AL_E_UNSUPPORTED when the kernel
 * has no Landlock (caller logs). */
int sandbox_landlock_apply(const struct sandbox_ops *ops, const char *const *extra_rw,
                           size_t n_extra);

/* ---- the child side ---- */

struct sandbox_child_args {
	const struct sandbox_profile *profile;
	const struct sandbox_ops *ops; /* the spare's plan: no workspace */
	const void *seccomp_prog;
	size_t seccomp_len;
	int ctl;                     /* SOCK_SEQPACKET to the parent */
	int sync;                    /* read end: one byte when the uid maps are in place */
	const struct sandbox_cg *cg; /* the child joins it itself, first thing */
	bool path_mode; /* binds by path from /oldroot (no open_tree clones: unprivileged) */
};

/* Pid 1 after setup: serves SB_INIT_* requests on ctl (fd 3), reaps, and exits (taking
 * the whole pid namespace with it) on EOF or when deadline_ms (monotonic; 0 = none) passes. */
void sandbox_init_loop(int ctl, uint64_t deadline_ms) __attribute__((noreturn));

/* Runs in the freshly cloned child: setup of everything but the workspace, SB_INIT_SPARE,
 * then waits for SB_INIT_CLAIM (workspace), locks itself down, READY, pid-1 loop. Never
 * returns. */
void sandbox_child_main(const struct sandbox_child_args *a) __attribute__((noreturn));

#endif
