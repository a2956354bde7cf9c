/* The identity layer behind the tunnel: on routes that require it, a request passes only
 * with a valid agent identity token from the airlock server (docs/gateway/config.md
 * "agent_identity"), naming an allowed agent and principal. */
#ifndef AL_GATEWAY_IDENTITY_H
#define AL_GATEWAY_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "gateway_config.h"

/* The token a request carries: X-Agent-Identity, else an Authorization bearer. hdrs is
 * the request's "name: value\0" lines (names lower-case). NULL when none. */
const char *gateway_identity_token(const char *hdrs, size_t len);

/* 0 when the request may pass; else 401 (no token, or one that does not verify) or 403
 * (a valid token for an agent or principal the route does not allow), with why set for
 * the answer and the log. host is the request's :authority; now in seconds. */
int gateway_identity_check(const struct gateway_config *c, const struct gateway_identity_rule *r,
                           const char *host, const char *token, int64_t now, char *why,
                           size_t whylen);

#endif
