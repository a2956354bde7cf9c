/* The environment worker (work-protocol.md §5–§9): shared state and the interfaces
 * between its parts — worker.c (CLI, poller, --on-work), worker_api.c (authenticated
 * calls to the API), worker_session.c (one work item: lease, events, results) and
 * worker_exec.c (the tool executor). Design: docs/worker/protocol.md. */
#ifndef AL_WORKER_H
#define AL_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cfg.h"
#include "egress_policy.h"
#include "httpc.h"
#include "log.h"
#include "loop.h"

struct worker_config {
	char *environment_id;
	char *environment_key; /* secret */
	char *base_url;        /* no trailing slash */
	char *workdir;
	char *on_work;
	char *worker_id;
	char *ca_file;
	uint64_t max_idle_ms;      /* 0 disables */
	uint64_t on_work_grace_ms; /* SIGTERM to a script, then SIGKILL after this */
	enum log_format log_format;
	enum log_level log_level;
	/* --config FILE, kept loaded so the sandbox section's validator can report
	 * file:line errors; sandbox points into it (NULL: no file or no section). The
	 * section's keys are defined in docs/lib/sandbox.md. */
	struct cfg file;
	bool has_file;
	const json_t *sandbox;
	bool unsandboxed; /* --unsandboxed: tools run on the host (docs/worker/monitor.md) */
	/* --egress-policy FILE: the most any session's sandbox may reach (NULL: no
	 * network at all, as before; docs/worker/egress.md) */
	char *egress_policy;
	struct egress_operator *egress_op;
	/* run mode */
	char *session_id;
	char *work_id;
	char *work_secret; /* secret: raw base64url secret from --work-secret-file */
};

struct wsess;
struct wexec;

struct worker {
	struct worker_config cfg;
	struct loop *loop;
	struct httpc *http;
	struct wexec *exec;
	int exit_code;
	bool stopping; /* a signal arrived: finish the current item, poll no more */
	unsigned signals;
	struct loop_timer *hard_deadline;
	/* poller */
	struct httpc_xfer *poll_x;
	struct loop_timer *poll_timer;
	uint64_t poll_backoff_ms;
	unsigned poll_failures;     /* in a row, for the "recovered" line */
	uint64_t poll_failed_since; /* now_mono_ms() of the first of them */
	uint64_t last_empty_log_ms;
	bool empty_logged;
	struct httpc_xfer *aux_x; /* ack or healthcheck stop in flight */
	/* the in-process session (items run one at a time) */
	struct wsess *sess;
	/* --on-work children */
	size_t nchildren;
};

/* ---- worker_api.c ---- */

/* Called with the HTTP status (0 on transport failure), the transport error and the
 * parsed JSON body (NULL when empty or not JSON; borrowed). */
typedef void wapi_done_fn(void *arg, int status, int err, json_t *body);

struct wapi_req {
	const char *cred; /* bearer credential (secret) */
	const char *method;
	const char *path; /* "/v1/..." with ids already escaped; query included */
	json_t *body;     /* borrowed; NULL = none */
	unsigned timeout_ms;
	unsigned idle_timeout_s; /* streams: reconnect when silent this long */
	const char *worker_id;   /* poll only */
	httpc_head_fn *on_head;  /* streams: called with arg */
	httpc_data_fn *on_data;  /* streams: 2xx body bytes, called with arg */
	wapi_done_fn *done;
	void *arg;
};

int wapi_call(struct worker *w, const struct wapi_req *r, struct httpc_xfer **out);
/* 408, 409, 429, 5xx and transport errors are worth retrying. */
bool wapi_retryable(int status, int err);
/* Any other 4xx: the request will never succeed. */
bool wapi_fatal(int status, int err);
/* Decodes a work secret (base64url JSON, padding optional) to its non-empty
 * sessions_token (heap, caller secret_free()s), or NULL. Never logs. */
char *wapi_sessions_token(const char *secret, size_t len);
/* The environment's `networking` the server put in the secret (an airlock extension;
 * absent: EGRESS_ENV_NONE). AL_E_INVAL with err set when it is there but malformed. */
int wapi_secret_networking(const char *secret, size_t len, struct egress_env *out, char *err,
                           size_t errlen);
/* Uniform random in [lo, hi]. */
uint64_t wapi_jitter(uint64_t lo, uint64_t hi);
/* error.message of an API error envelope, or "" (for logs; never carries secrets). */
const char *wapi_error_message(json_t *body);
/* For logs, inside a done callback: the transport's reason when err is set ("TLS
 * certificate verification failed: ...", "connect: Connection refused"), else the API
 * error's message. */
const char *wapi_error_text(int err, json_t *body);
/* The HTTP status for a log line: "none (no answer)" when the transfer failed (0), never
 * a bare 0 that reads like a status. */
void wapi_status_str(int status, char *buf, size_t len);
/* What to try for a transport failure, or "" (a TLS verification failure: --ca-file). */
const char *wapi_error_hint(int err);

/* ---- worker_session.c ---- */

enum wsess_end {
	WSESS_CLEAN,      /* session over or idle: stop the item */
	WSESS_STOPPED,    /* the server asked us to stop */
	WSESS_LEASE_LOST, /* another worker owns it now: do not stop it */
	WSESS_REJECTED,   /* a fatal 4xx */
	WSESS_SIGNAL,     /* shutting down */
	WSESS_FAILED,     /* any other failure */
};

struct wsess_params {
	const char *work_id;
	const char *environment_id;
	const char *session_id;
	const char *secret; /* the item's secret or NULL */
	size_t secret_len;
};

typedef void wsess_end_fn(struct worker *w, enum wsess_end why);

/* Starts handling one claimed (acked) item; end is called once when it is over and the
 * item released. */
int wsess_start(struct worker *w, const struct wsess_params *p, wsess_end_fn *end,
                struct wsess **out);
/* A signal: cancel the in-flight tool, post its error result, release the item. */
void wsess_shutdown(struct wsess *s);
void wsess_free(struct wsess *s);

/* ---- worker_exec.c: tool calls on one executor thread ---- */

/* content: new JSON array of content blocks (owned by the callee after the call). */
typedef void wexec_done_fn(void *arg, json_t *content, bool is_error);

int wexec_new(struct loop *l, struct wexec **out);
void wexec_free(struct wexec *e);
/* Before any thread (poll without --on-work, run): parses the sandbox section, starts
 * the privileged monitor (the process continues as the unprivileged worker) or logs
 * loudly that tools run unsandboxed. 0, or an error already printed (AL_E_INVAL: the
 * configuration is wrong, exit 2). */
int wexec_sandbox_start(const struct worker_config *c, bool run_mode);
/* The egress proxy's CA (TLS termination), loaded after the monitor forked; NULL when
 * the worker has no --egress-policy or no sandbox. */
struct egress_ca *wexec_egress_ca(void);
/* `check`: prints the sandbox section's errors, sandbox_preflight()'s report and the host
 * probes (what the test suite would skip here); 1 when sandboxes cannot be created here
 * (and --unsandboxed was not given). */
int wexec_sandbox_check(const struct worker_config *c);
/* Opens the per-session tool context on the session's own workspace,
 * <workdir>/sessions/<session_id> (made if missing: the same session finds its files
 * again), in a new sandbox for session_id. */
/* egress_fd: NULL = no network; else it receives the proxy's listener made in the
 * session's sandbox (-1 when there is no sandbox to make it in). */
int wexec_session_open(struct wexec *e, const char *workdir, const char *session_id,
                       int *egress_fd);
void wexec_session_close(struct wexec *e);
/* Extra "NAME=value" strings for every process the session's sandbox starts (the
 * placeholders of its secrets); taken over (freed at session close). Call before the
 * session's first tool runs. */
void wexec_set_env(struct wexec *e, char **env);
/* dir (an existing directory of the open session, e.g. a read_only memory store's copy)
 * is refused by the write and edit tools from now on, as the SDK's worker does. Only
 * while no call runs (AL_E_CONFLICT otherwise). */
int wexec_read_only_dir(struct wexec *e, const char *dir);
/* The session's workspace (<workdir>/sessions/<id>) goes: when the session ended for good
 * (terminated, deleted). Not while its tools are open (AL_E_CONFLICT). */
int wexec_workspace_remove(struct wexec *e, const char *workdir, const char *session_id);
/* Whether this worker runs tools of that name (others are left for another client). */
bool wexec_known(const char *name);
/* Runs one call; done runs on the loop thread. One call at a time. */
int wexec_run(struct wexec *e, const char *name, json_t *input, wexec_done_fn *done, void *arg);
/* Asks the in-flight call to stop; its done still runs, with an error result. */
void wexec_cancel(struct wexec *e);
bool wexec_busy(const struct wexec *e);
/* The open session's workspace on this host (where the sandbox's /workspace is), or NULL. */
const char *wexec_workspace(const struct wexec *e);
/* Last resort before _exit (a second signal): cancels the in-flight call and waits up
 * to ms for the toolset to kill its process tree. Accepts NULL. */
void wexec_abort(struct wexec *e, unsigned ms);
/* The caller goes away: the in-flight call's result will be dropped. */
void wexec_orphan(struct wexec *e);

#endif
