/* The worker's egress proxy for one sandbox (issue 14): HTTP CONNECT and plain-HTTP
 * forwarding on the worker's event loop, accepting on the listener the monitor made in
 * the sandbox's network namespace, deciding each request with lib/egress_policy.
 * docs/worker/egress.md. */
#ifndef AL_WORKER_EGRESS_H
#define AL_WORKER_EGRESS_H

#include <stdint.h>

#include <jansson.h>

#include "egress_policy.h"

struct loop;
struct egress_proxy;

/* Takes listen_fd and env (its lists; env is zeroed); op must outlive the proxy. */
int egress_proxy_new(struct loop *l, int listen_fd, const struct egress_operator *op,
                     struct egress_env *env, const char *session_id, struct egress_proxy **out);
/* The agent's MCP server hosts from the session object (`agent.mcp_servers[].url`), for
 * allow_mcp_servers. */
void egress_proxy_set_session(struct egress_proxy *p, const json_t *session);
/* The worker's CA (not owned): CONNECTs to the session's credential hosts are
 * terminated with leaves it signs, their requests injected like plain HTTP. NULL (the
 * default): every tunnel passes through untouched. */
struct egress_ca;
void egress_proxy_set_ca(struct egress_proxy *p, struct egress_ca *ca);
/* The request head's deadline (10 s) and the resolve/dial deadline (10 s): tests. */
void egress_proxy_set_timeouts(struct egress_proxy *p, uint64_t head_ms, uint64_t dial_ms);
/* An environment_variable credential of the session: requests to hosts (a JSON array of
 * patterns, no ports) get value in place of placeholder in their headers when header
 * is set (body: not yet). AL_E_TOOBIG past 32, AL_E_INVAL for CR/LF in value. */
int egress_proxy_add_secret(struct egress_proxy *p, const char *id, const char *placeholder,
                            const char *value, const json_t *hosts, bool header, bool body);
/* Up to max decisions not yet reported (a new array, oldest first), or NULL; untake puts
 * a batch the server did not take back in front. dropped: lost to the queue's bound. */
json_t *egress_proxy_take(struct egress_proxy *p, size_t max);
void egress_proxy_untake(struct egress_proxy *p, json_t *batch);
uint64_t egress_proxy_dropped(const struct egress_proxy *p);
void egress_proxy_free(struct egress_proxy *p); /* closes every connection; NULL ok */

/* The session's effective networking would let anything out: the sandbox gets the
 * listener and the proxy variables only then. */
bool egress_wanted(const struct egress_operator *op, const struct egress_env *env);

/* Proxy variables for a sandboxed process (static strings, NULL-terminated). */
extern const char *const egress_proxy_env[];

#endif
