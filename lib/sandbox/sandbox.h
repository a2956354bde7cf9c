/* The per-session kernel sandbox: user/mount/pid/net/ipc/uts/cgroup namespaces on a fresh
 * tmpfs root, cgroup limits, rlimits, Landlock and seccomp, and a tiny pid 1 that runs
 * commands on request. Design: docs/lib/sandbox.md. */
#ifndef AL_SANDBOX_H
#define AL_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#define SANDBOX_MAX_BINDS 32
#define SANDBOX_INNER_UID 1000  /* the one uid (and gid) that exists inside */
#define SANDBOX_MAX_CHILD_FDS 8 /* fds a spawned process can be given (0..7) */
/* Host-wide leases of slot uids (root monitor): one flock'ed file per uid in use. */
#define SANDBOX_UID_LEASE_DIR "/run/airlock/uids"

/* Degraded modes: only when asked for, logged at every sandbox start. */
enum sandbox_degraded {
	SANDBOX_DEGRADED_NO_CGROUPS = 1u << 0, /* no usable cgroups: rlimits + pid ns only */
};

/* Limits and mounts of every sandbox the worker creates (YAML keys in docs/lib/sandbox.md).
 * Strings are borrowed: they must outlive every sandbox created from the profile. */
struct sandbox_profile {
	uint64_t memory_mb;         /* cgroup memory limit; 0 = none */
	uint64_t pids_max;          /* cgroup pids limit (and RLIMIT_NPROC backstop); 0 = none */
	uint32_t cpu_quota_percent; /* 100 = one full CPU; 0 = none */
	uint32_t wall_clock_s;      /* the sandbox dies this long after creation; 0 = none */
	uint64_t tmp_size_mb;       /* size of the /tmp and /dev/shm tmpfs */
	uint64_t fsize_mb;          /* RLIMIT_FSIZE: largest file a process may write */
	uint32_t nofile;            /* RLIMIT_NOFILE */
	const char *root_dir;       /* system dirs and /etc come from here; NULL = host "/" */
	const char *ro_binds[SANDBOX_MAX_BINDS]; /* extra host paths, same path inside, ro */
	size_t n_ro_binds;
	const char *rw_binds[SANDBOX_MAX_BINDS]; /* extra host paths, same path inside, rw */
	size_t n_rw_binds;
	uint32_t uid_base;  /* root monitor: sandbox N runs as host uid/gid uid_base + N */
	uint32_t uid_count; /* how many such uids (also the most live sandboxes) */
	/* Root monitor: run every sandbox as this one host uid/gid instead of a slot (the
	 * worker's own user, so bash and the worker's host-side file tools share files). */
	bool run_as_set;
	uint32_t run_as_uid, run_as_gid;
	/* Root monitor, slot uids: the workspace's files belong on disk to this uid/gid (the
	 * worker's user, whose host-side file tools share them). The workspace is bound
	 * through an idmapped mount that shows them as the sandbox's own, and files the
	 * sandbox makes are the owner's on disk; the sandbox still runs as its own uid. The
	 * workspace's filesystem must support idmapped mounts (sandbox_idmap_probe). */
	bool ws_owner_set;
	uint32_t ws_owner_uid, ws_owner_gid;
	const char *state_dir; /* journal records and the worker lock live here (required) */
	unsigned degraded;     /* enum sandbox_degraded bits */
};

struct sandbox;
struct sandbox_proc;
struct sandbox_spare;

void sandbox_profile_defaults(struct sandbox_profile *p);
/* Checks limits and paths; writes one line per problem into err (may be NULL). */
int sandbox_profile_check(const struct sandbox_profile *p, struct buf *err);
/* Absolute, no "." or ".." components, no "//", <= PATH_MAX: what the profile's paths
 * must be (a config reader checks them where it knows the line). */
bool sandbox_path_valid(const char *s);

/* Creates a live sandbox for session_id with workspace_dir bound read-write at /workspace
 * and at its own (real) host path. Blocks until pid 1 inside is ready (a few ms). The
 * caller must have run sandbox_sweep() on the profile's state_dir first. */
int sandbox_create(const struct sandbox_profile *p, const char *session_id,
                   const char *workspace_dir, struct sandbox **out);
/* sandbox_create with the workspace as a directory fd (see sandbox_spare_claim_fd). */
int sandbox_create_fd(const struct sandbox_profile *p, const char *session_id, int wfd,
                      const char *ws, struct sandbox **out);
/* Warm spares: a sandbox set up ahead of demand (namespaces, uid maps, every mount but the
 * workspace, hostname, lo, rlimits), still privileged inside its user namespace and
 * running nothing; a claim gives it to one session. sandbox_create() is new + claim.
 * sandbox_spare_new returns while the child still sets itself up (a few ms, concurrently
 * with the caller). p must outlive the spare. */
int sandbox_spare_new(const struct sandbox_profile *p, struct sandbox_spare **out);
/* Readable once the spare is set up, failed, or died: then call sandbox_spare_wait. */
int sandbox_spare_fd(const struct sandbox_spare *sp);
/* 0 once set up; AL_E_TIMEOUT while still setting up (after timeout_ms, 0 = poll); any
 * other error: the spare is unusable (free it). */
int sandbox_spare_wait(struct sandbox_spare *sp, int timeout_ms);
/* Turns the spare into session_id's sandbox: binds workspace_dir, creates the session's
 * cgroup and journal record, then the child locks itself down exactly as a cold create
 * does (cgroup namespace, capabilities, no_new_privs, Landlock, seccomp). sp is consumed
 * in every case: a spare is never claimed twice. AL_E_CLOSED: the spare had died (a
 * cold sandbox_create is the fallback). */
int sandbox_spare_claim(struct sandbox_spare *sp, const char *session_id, const char *workspace_dir,
                        struct sandbox **out);
/* The same with the workspace as an open directory fd (borrowed): what is chowned and
 * bound is that inode, never a path resolved again; ws (absolute, normalized, not "/")
 * only names its second mount point inside, next to /workspace. A privileged caller that
 * takes workspaces from a less privileged party must use this form (docs/lib/sandbox.md). */
int sandbox_spare_claim_fd(struct sandbox_spare *sp, const char *session_id, int wfd,
                           const char *ws, struct sandbox **out);
void sandbox_spare_free(struct sandbox_spare *sp); /* kills it; accepts NULL */
/* Removes the cgroups and journal records of destroyed sandboxes: one non-blocking
 * attempt each, or until all are gone when wait. Returns how many are still pending.
 * Call it when idle and before exit (a leftover is the next start's sweep's). */
size_t sandbox_gc(bool wait);

/* Runs argv in the sandbox as one fork+exec of its pid 1. argv[0] without '/' is looked up
 * in the PATH of the final env. envp adds to (or overrides) the fixed minimal env (PATH,
 * HOME=/workspace, LANG, TERM=dumb); ANTHROPIC_* names are always dropped. cwd NULL =
 * /workspace. A stdio fd of -1 becomes /dev/null; the fds are duplicated, not taken.
 * The process leads its own session and process group. Fails with -errno if exec fails. */
int sandbox_spawn(struct sandbox *sb, const char *const *argv, const char *const *envp,
                  const char *cwd, int stdin_fd, int stdout_fd, int stderr_fd,
                  struct sandbox_proc **out);
/* The general form: path is the program to exec (NULL: argv[0], PATH-searched); the
 * child's fd i becomes fds[i] for i < nfds (<= SANDBOX_MAX_CHILD_FDS); -1 leaves fds 0..2
 * on /dev/null and closes higher ones. Every other fd is closed in the child. */
int sandbox_spawn_fds(struct sandbox *sb, const char *path, const char *const *argv,
                      const char *const *envp, const char *cwd, const int *fds, size_t nfds,
                      struct sandbox_proc **out);
/* Readable (POLLIN) once the process has exited or the sandbox died. */
int sandbox_proc_fd(const struct sandbox_proc *p);
/* The process id inside the sandbox's pid namespace. */
pid_t sandbox_proc_pid(const struct sandbox_proc *p);
/* Blocks until exit, then gives the wait status; a process that died with its sandbox
 * reports SIGKILL. Returns 0, or AL_E_CLOSED with *wstatus = SIGKILL status. */
int sandbox_proc_wait(struct sandbox_proc *p, int *wstatus);
/* Sends sig to the process group the process leads (the command and its children). */
int sandbox_proc_kill(struct sandbox_proc *p, int sig);
void sandbox_proc_free(struct sandbox_proc *p); /* does not kill; accepts NULL */
/* A pidfd of the sandbox's pid 1: readable once the sandbox died (wall clock, destroy). */
int sandbox_pidfd(const struct sandbox *sb);
/* The host uid that the sandbox's processes run as. */
uid_t sandbox_host_uid(const struct sandbox *sb);
/* Kills everything inside and waits for it (pid 1 reaped: nothing of the session runs
 * any more); queues the cgroup and journal record for sandbox_gc(). Accepts NULL. */
void sandbox_destroy(struct sandbox *sb);

/* Worker start: takes (and keeps for the life of the process) an exclusive lock on
 * <state_dir>/worker.lock, then removes what a crashed worker left: processes and cgroups
 * named in journal records, orphan cgroups of this state dir. AL_E_CONFLICT if another
 * live worker holds the lock. */
int sandbox_sweep(const char *state_dir);
/* sandbox.state_dir when nothing sets it; one worker per state dir (its worker.lock). */
#define SANDBOX_DEFAULT_STATE_DIR "/var/lib/airlock"

/* Whether the filesystem of dirfd supports idmapped mounts (ws_owner_set); root only.
 * 0, or the error mount_setattr gave (-EINVAL: the filesystem cannot). */
int sandbox_idmap_probe(int dirfd);

/* Per-session workspaces (lib/sandbox/workspace.c). The directory name beneath parentfd,
 * opened (and made, mode 0700, when create) without following a symlink in any form or
 * leaving parentfd's mount: an fd, AL_E_PERM for a symlink or another mount, AL_E_INVAL
 * for a name that is not one component. */
#define SANDBOX_WS_CREATE 1u  /* mkdir it first (0700) when missing */
#define SANDBOX_WS_MOUNTED 2u /* the entry may be a mount root (a size-capped workspace) */
int sandbox_ws_open(int parentfd, const char *name, unsigned flags);
/* Size-capped workspaces: each one an ext4 image <parentfd>/.img-<name> (sparse, made with
 * mkfs.ext4 at its first use) on a loop device, mounted nosuid,nodev,discard over the
 * entry dirfd (beneath parentfd) by fd. *rootfd: the mounted fs's root (or, when dirfd
 * already is one of ours, a dup of it). Root only. The probe says whether the host can
 * (/dev/loop-control, mkfs.ext4, the ext4 filesystem). */
int sandbox_ws_quota_probe(void);
int sandbox_ws_quota_mount(int parentfd, const char *name, int dirfd, uint64_t size_mb,
                           int *rootfd);
/* Detaches (lazily) a mount on <parentfd>/<name>, if there is one. */
int sandbox_ws_unmount(int parentfd, const char *name);
int sandbox_ws_image_remove(int parentfd, const char *name);
/* Removes everything inside dirfd (borrowed), by fd, never following a symlink; at most
 * 512 levels deep. 0 when empty, else the first error (the rest is still removed). */
int sandbox_ws_empty(int dirfd);

/* Host checks, one line each: "ok|warn|fail <check>: <detail or fix>". *ok is false when
 * any check failed (sandboxes cannot be created). Returns 0 unless report overflowed. */
int sandbox_preflight(struct buf *report, bool *ok);

/* For the monitor client, which gets processes relayed: a proc whose kill goes through
 * kill_fn(ctx, tag, pid inside, sig). Takes status_fd. */
struct sandbox_proc *sandbox_proc_new_ext(int status_fd, pid_t pid,
                                          int (*kill_fn)(void *ctx, uint32_t tag, pid_t pid,
                                                         int sig),
                                          void *ctx, uint32_t tag);
/* Hands the proc's status fd to the caller (the proc keeps -1). */
int sandbox_proc_steal_fd(struct sandbox_proc *p);
/* Signals a process spawned in sb by its pid inside (monitor use); pid -1 signals every
 * process in the sandbox but its pid 1 (the tree kill of a whole session). */
int sandbox_kill_pid(struct sandbox *sb, pid_t pid, int sig);

#endif
