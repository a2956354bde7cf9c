/* Prometheus metrics of the API server (text exposition format 0.0.4, written here):
 * requests and their latency by route family and status class, sessions by status,
 * work per environment, open streams, tunnel connections, the database. Served as
 * GET /metrics to a server API key, and without a credential on metrics.listen when
 * configured; see docs/server/metrics.md. */
#ifndef AL_SERVER_METRICS_H
#define AL_SERVER_METRICS_H

#include <time.h>

#include "buf.h"

struct server;

/* Allocates the counters and opens metrics.listen when set. 0 or an error (logged). */
int metrics_init(struct server *s);
void metrics_shutdown(struct server *s);

/* One finished request: its route pattern (NULL when none matched), the status it got
 * (0: the client left before an answer) and when it arrived (CLOCK_MONOTONIC). */
void metrics_observe(struct server *s, const char *pattern, int status, const struct timespec *t0);

/* A model call ended: outcome is "ok", "retryable_error", "error" or "cancelled"; t0
 * when it went out (CLOCK_MONOTONIC). */
void metrics_model_call(struct server *s, const char *outcome, const struct timespec *t0);
/* An MCP tools/call ended: "ok", "tool_error", "rpc_error", "connection", "auth" or
 * "cancelled". */
void metrics_mcp_call(struct server *s, const char *outcome, const struct timespec *t0);

/* The route family a pattern counts under ("sessions", "work", "event_stream", ...):
 * a fixed, small set, so label values never come from what a client sent. */
const char *metrics_route_family(const char *pattern);

/* Appends the whole exposition to out. AL_E_TOOBIG when out's bound is reached. */
int metrics_render(struct server *s, struct buf *out);

#endif
