/* The worker's privileged monitor (OpenSSH privsep): the process that started the worker
 * stays behind as the monitor, owns sandbox create/spawn/kill/destroy, and serves only
 * typed requests from a fixed table; the network-facing worker is its child, drops
 * privileges, and talks to it through monitor_client_*. Design: docs/worker/monitor.md. */
#ifndef AL_MONITOR_H
#define AL_MONITOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox.h"

/* Exit status of the monitor when its client sent a malformed request (the client was
 * killed and every sandbox destroyed). */
#define MONITOR_EXIT_PROTO 3

struct monitor_config {
	const struct sandbox_profile *profile; /* copied into the monitor by fork */
	const char *workspace_root; /* every workspace must be a real directory inside it */
	const char *drop_user;      /* run as root: the worker becomes this user (NULL: nobody) */
	bool drop_ids;              /* instead of drop_user: these ids (need no passwd entry) */
	uint32_t drop_uid, drop_gid;
	bool keep_root;        /* do not drop privileges (tests, or an unprivileged worker) */
	bool session_dirs;     /* each session's workspace is <root>/sessions/<session id>, made
	                        * by the monitor at its first create, removed by
	                        * monitor_client_remove; otherwise any real dir strictly
	                        * inside the root, named by the client */
	uint64_t workspace_mb; /* session_dirs: each workspace its own filesystem of this size
	                        * (an ext4 image on a loop device), 0 = none */
	int spares;            /* warm sandboxes kept set up ahead of demand: 0 = 1 (default), < 0 =
	                        * none (every create cold), at most 8 */
};

struct monitor;

/* Forks. The child returns 0 with *out set: it is the worker, now unprivileged. The
 * calling process becomes the monitor and never returns: it serves the child, forwards
 * SIGTERM/SIGINT/SIGHUP/SIGQUIT to it, and when the child ends destroys every sandbox
 * and exits with the child's status (128 + signal if killed; MONITOR_EXIT_PROTO after a
 * malformed request). Returns an error (in the original process) only if the fork or
 * the setup failed; in the child, if the monitor's start (sweep) failed. */
int monitor_start(const struct monitor_config *cfg, struct monitor **out);

/* Blocking request/reply calls (each a few ms at most; create is the slowest). Errors:
 * -errno or AL_E_* from the monitor; AL_E_CLOSED once the monitor is gone. */
int monitor_client_create(struct monitor *m, const char *session_id, const char *workspace,
                          uint32_t *sandbox_id);
/* The sandbox's pid-1 pidfd (readable when the sandbox died); owned by the client
 * handle, valid until monitor_client_destroy. -1 if unknown. */
int monitor_client_sandbox_fd(struct monitor *m, uint32_t sandbox_id);
/* Same contract as sandbox_spawn(); the proc's kill goes through the monitor. Free the
 * procs before monitor_free. */
int monitor_client_spawn(struct monitor *m, uint32_t sandbox_id, const char *const *argv,
                         const char *const *envp, const char *cwd, int stdin_fd, int stdout_fd,
                         int stderr_fd, struct sandbox_proc **out);
/* Same contract as sandbox_spawn_fds(): path NULL = argv[0] searched; up to
 * SANDBOX_MAX_CHILD_FDS child fds. */
int monitor_client_spawn_fds(struct monitor *m, uint32_t sandbox_id, const char *path,
                             const char *const *argv, const char *const *envp, const char *cwd,
                             const int *fds, size_t nfds, struct sandbox_proc **out);
/* pid -1: every process in the sandbox but its pid 1. */
int monitor_client_kill(struct monitor *m, uint32_t sandbox_id, pid_t pid, int sig);
int monitor_client_destroy(struct monitor *m, uint32_t sandbox_id);
/* session_dirs: the session's workspace is renamed aside at once (its id names a fresh,
 * empty one from now on) and removed in the background, as the drop user. AL_E_CONFLICT
 * while the session has a sandbox; 0 when it has no workspace. */
int monitor_client_remove(struct monitor *m, const char *session_id);
/* The egress proxy's listening socket, made by the monitor inside the sandbox's network
 * namespace on 127.0.0.1:MONITOR_EGRESS_PORT (non-blocking; the caller owns it). */
#define MONITOR_EGRESS_PORT 3128
int monitor_client_egress(struct monitor *m, uint32_t sandbox_id, int *fd);
/* Whether the monitor is gone (its end of the socket closed). Only between calls (the
 * caller serializes them): a reply in flight would read as gone. */
bool monitor_client_gone(struct monitor *m);
/* Closes the connection: the monitor destroys every sandbox and waits for this process
 * to exit. Accepts NULL. */
void monitor_free(struct monitor *m);
/* Sends raw bytes as one request (fault tests: a malformed message must end the client). */
int monitor_client_send_raw(struct monitor *m, const void *p, size_t n);

/* The monitor's request parser (tests and the fuzzer): every field of a request from the
 * fixed table, checked as the monitor checks it before acting. Strings, argv/env and fds
 * are borrowed from rq (argv/env: static storage, valid until the next call); fds[i] is
 * the child's fd i for SPAWN, -1 when absent. AL_E_PROTO: malformed, the monitor then
 * ends its client. Not thread-safe. */
struct sandbox_msg;
struct monitor_request {
	uint32_t type;       /* 101 CREATE, 103 SPAWN, 105 KILL, 106 DESTROY, 108 REMOVE,
	                      * 109 EGRESS */
	uint32_t sandbox_id; /* SPAWN, KILL, DESTROY, EGRESS */
	const char *session_id, *workspace; /* CREATE, REMOVE (validated by the handler) */
	uint32_t fdmask;                    /* SPAWN */
	const char *path, *cwd;             /* SPAWN: "" = PATH search / /workspace */
	const char *const *argv, *const *env;
	int fds[SANDBOX_MAX_CHILD_FDS];
	int32_t pid, sig; /* KILL */
};
int monitor_request_parse(struct sandbox_msg *rq, struct monitor_request *out);

#endif
