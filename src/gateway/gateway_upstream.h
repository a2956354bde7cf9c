/* Upstream side of the gateway: lib/httpc's native HTTP/1.1 transport on our event loop,
 * one transfer per tunnel stream, the SSRF check on every address about to be dialled. */
#ifndef AL_GATEWAY_UPSTREAM_H
#define AL_GATEWAY_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway_config.h"
#include "loop.h"

struct upstream;
struct upstream_ctx;

/* Events of one exchange; called from inside the loop, never re-entrantly from
 * upstream_* calls. head: status + headers as "name\0value\0" pairs (lower-case names,
 * hop-by-hop removed). done: 0 on success, else an error status to answer (403 SSRF,
 * 502 connect/protocol, 504 timeout) with msg, or -1 when failed after the head. */
struct upstream_cb {
	void (*head)(void *arg, int status, const char *hdrs, size_t hlen);
	/* Returns false to pause the transfer (resume with upstream_resume). */
	bool (*data)(void *arg, const char *p, size_t n);
	void (*done)(void *arg, int status, const char *msg);
};

struct upstream_ctx *upstream_ctx_new(struct loop *l);
void upstream_ctx_free(struct upstream_ctx *u);
/* Config used for new transfers (SSRF list, CA options); the caller keeps it alive. */
void upstream_ctx_set_config(struct upstream_ctx *u, const struct gateway_config *cfg);
size_t upstream_ctx_active(const struct upstream_ctx *u);
/* Called after upstream callbacks ran, so the caller can flush what they queued. */
void upstream_ctx_set_after(struct upstream_ctx *u, void (*after)(void *), void *arg);

/* Starts method url with headers ("name: value" lines, NUL-separated list ending in an
 * empty string) and body (copied). */
int upstream_start(struct upstream_ctx *u, const char *method, const char *url,
                   const char *const *headers, size_t nheaders, const char *body, size_t blen,
                   const struct upstream_cb *cb, void *arg, struct upstream **out);
void upstream_resume(struct upstream *t);
/* From inside the data callback, for a chunk it took: read no more until upstream_resume
 * (the edge is full, and unread bytes cost nothing in the kernel's socket buffer). */
void upstream_pause(struct upstream *t);
/* Aborts; no callbacks after. Safe from any callback of another transfer. */
void upstream_cancel(struct upstream *t);

#endif
