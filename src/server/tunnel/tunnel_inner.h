/* Inner TLS, the client side of one tunnel stream (tunnel_inner.c): the edge hands it
 * ciphertext and takes ciphertext; the request goes in and the answer comes out as
 * plaintext here, never in the edge's relaying. See docs/server/tunnels.md "Inner TLS". */
#ifndef AL_SERVER_TUNNEL_INNER_H
#define AL_SERVER_TUNNEL_INNER_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

struct server;
struct tunnel_request;
struct tunnel_inner;

/* Starts the session for one request to <authority> on the tunnel: 0 with *out set (its
 * first flight waits in tunnel_inner_take), 0 with *out NULL when the tunnel never had a
 * certificate (a plain stream), AL_E_PERM when it had some and none is live (the
 * tunnel refuses traffic until one is added), AL_E_INVAL (a header that cannot go into
 * an HTTP/1.1 head), AL_E_IO. */
int tunnel_inner_open(struct server *s, const char *tunnel_id, const char *authority,
                      const struct tunnel_request *rq, struct tunnel_inner **out);
/* Ciphertext to send to the gateway: copies up to len bytes, returns how many. */
size_t tunnel_inner_take(struct tunnel_inner *in, void *p, size_t len);
/* Ciphertext from the gateway. 0, or AL_E_PROTO (TLS failed: verification, a bad
 * answer; tunnel_inner_error says why), AL_E_IO. */
int tunnel_inner_rx(struct tunnel_inner *in, const char *p, size_t n);
/* Once the answer's head is in: true, with status and fields (owned by in). */
bool tunnel_inner_head(struct tunnel_inner *in, int *status, const struct http_header **h,
                       size_t *nh);
/* Body bytes decrypted and not yet handed on; tunnel_inner_body_taken marks them gone. */
void tunnel_inner_body(struct tunnel_inner *in, const char **p, size_t *n);
void tunnel_inner_body_taken(struct tunnel_inner *in);
/* The whole answer is in (its content-length, its last chunk, or no body after HEAD,
 * 204, 304). */
bool tunnel_inner_complete(const struct tunnel_inner *in);
/* Whether a complete session may carry the next exchange (HTTP/1.1 keep-alive inside):
 * not closed or failed, and its tunnel's trusted CAs unchanged since it began. */
bool tunnel_inner_reusable(struct server *s, struct tunnel_inner *in);
/* The next exchange on a reusable session: its request goes into TLS at once. 0,
 * AL_E_INVAL (a header that cannot go into a head). */
int tunnel_inner_next(struct tunnel_inner *in, const char *authority,
                      const struct tunnel_request *rq);
const char *tunnel_inner_error(const struct tunnel_inner *in);
/* Keeps a cleanly ended session for resumption, then frees. NULL is fine. */
void tunnel_inner_free(struct tunnel_inner *in);
/* Drops every cached trust set (server shutdown). */
void tunnel_inner_cleanup(void);

#endif
