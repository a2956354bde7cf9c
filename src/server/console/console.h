/* The web console (docs/server/console.md): its pages and scripts served under
 * /console/ from assets built into the binary, sign-in with a server API key into a
 * server-side session kept in the database (every replica knows it), and the cookie +
 * CSRF header that lets the console's own scripts call /v1 as the key that signed in. */
#ifndef AL_SERVER_CONSOLE_H
#define AL_SERVER_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"

struct server;
struct console;

/* The cookie and the header a console request carries. The header's value is the
 * session's CSRF token on /v1 and on sign-out; "1" on sign-in and on reading the
 * session (it only forces a cross-origin script into a CORS preflight, which we never
 * answer, so another site cannot send it). */
#define CONSOLE_COOKIE "airlock_console"
#define CONSOLE_HEADER "x-airlock-console"
/* Lifetimes: a session ends after this long without a request, or this long after
 * sign-in, whichever comes first; at most this many at once (the oldest goes). */
#define CONSOLE_IDLE_US (60LL * 60 * 1000000)
#define CONSOLE_MAX_AGE_US (12LL * 60 * 60 * 1000000)
#define CONSOLE_MAX_SESSIONS 1024

/* Handles c when its path is /console or under /console/ (answers it, frees it, returns
 * true); false for every other path. */
bool console_dispatch(struct api_call *c);

/* Whether the request carries a console cookie and neither x-api-key nor
 * Authorization: then console_auth, not auth_resolve, decides who it is. */
bool console_request(const struct http_request *req);
/* The principal of a /v1 request from the console: the server API key that signed in,
 * checked again (a revoked key's sessions end). Fills who->cred = "console session".
 * AL_E_AUTH: no such session, or it expired, or its key is gone (401); AL_E_PERM: the
 * CSRF header is missing or wrong (403); AL_E_IO: the database failed. why gets the
 * reason. */
int console_auth(struct server *srv, const struct http_request *req, struct principal *who,
                 char *why, size_t whylen);
void console_free(struct server *srv);

/* Single sign-on (console_oidc.c): authorization code + PKCE against the OpenID
 * provider the API trusts; the access token it returns becomes a console session of
 * that user (docs/server/console.md "Single sign-on"). */
struct console_oidc;
struct oidc_user;
bool console_oidc_enabled(struct server *srv);
void console_oidc_login(struct api_call *c);    /* GET /console/oidc/login */
void console_oidc_callback(struct api_call *c); /* GET /console/oidc/callback */
void console_oidc_free(struct console_oidc *co);
/* For console_oidc.c: its state's slot, the answers, and the session it ends with. */
struct console_oidc **console_oidc_slot(struct server *srv);
/* Starts a console session of u and answers with page (HTML) and its cookie. */
void console_user_signed_in_page(struct api_call *c, const struct oidc_user *u, const char *page);
void console_reply_text(struct api_call *c, int status, const char *text);
void console_redirect(struct api_call *c, const char *location);

/* Exposed for the unit test: the value of cookie `name` in a Cookie header into out
 * (NUL-terminated). AL_E_NOTFOUND when absent, AL_E_TOOBIG when longer than outlen-1. */
int console_cookie_get(const char *header, const char *name, char *out, size_t outlen);

#endif
