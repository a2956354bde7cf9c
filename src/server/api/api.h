/* The REST layer between HTTP and the resource modules: credentials resolved to a
 * principal, a route table with path parameters, JSON bodies parsed and bounded,
 * and replies in the reference error envelope with request-id on every answer. */
#ifndef AL_SERVER_API_H
#define AL_SERVER_API_H

#include <stdbool.h>
#include <time.h>

#include <jansson.h>

#include "http.h"
#include "oidc.h"

struct server;

enum principal_kind {
	PRINCIPAL_NONE = 0,
	PRINCIPAL_API_KEY = 1,       /* server API key: everything */
	PRINCIPAL_ENV_KEY = 2,       /* one environment's queue */
	PRINCIPAL_SESSION_TOKEN = 4, /* one work item's session */
	PRINCIPAL_USER = 8,          /* a signed-in user (OIDC): a role, their own sessions */
};

/* A user's role (docs/server/identity.md): admins do what a server API key does;
 * developers all of it but credentials; users run sessions; none may not use the API
 * (the policy file's default_role: none). Ordered like lib/policy's roles. */
enum user_role { ROLE_NONE = 0, ROLE_USER, ROLE_DEVELOPER, ROLE_ADMIN };

struct principal {
	enum principal_kind kind;
	char key_id[80];         /* api_keys.id, or the work id for a sessions token */
	char environment_id[80]; /* env key and sessions token */
	char session_id[80];     /* sessions token */
	char work_id[80];        /* sessions token */
	enum user_role role;     /* users */
	struct oidc_user user;   /* users: sub, iss, email, groups (owned: auth_principal_reset) */
	/* For logs, filled even when resolution fails; never the secret. cred: what was
	 * presented ("none", "server key", "environment key", "sessions token", "user
	 * token", "AIRLOCK_API_KEY", "unknown form"); fail: why it was refused. */
	const char *cred;
	const char *fail;
};

struct api_call {
	struct server *srv;
	struct http_request *http;
	struct principal who;
	struct query query;
	char request_id[48];
	const char *params[3]; /* path parameters in order of appearance, e.g. {id}, {wid} */
	json_t *body;          /* parsed JSON body (object) or NULL when there was none */
	const struct api_route *route;
	/* access log (api_call_free): the answer's status, 0 while none went out (set by
	 * api_reply_json; code that answers on c->http itself sets it first), and when the
	 * request arrived */
	int status;
	struct timespec t0;
	char method[16];
	char peer[64];
	bool keys_refetched; /* a user token's unknown key sent us to the IdP once already */
	bool held;
	void (*on_close)(struct api_call *c);
	void *owner;      /* held calls: the module state that holds it */
	char capbuf[512]; /* storage behind params */
};

/* Route handlers run after authentication and the route's credential check. They
 * must reply exactly once, now or later (api_hold + a later reply). */
typedef void api_handler_fn(struct api_call *c);

struct api_route {
	const char *method;
	const char *pattern; /* "/v1/agents/{}/versions": {} matches one non-empty segment;
	                        a final "{*}" matches the non-empty rest, slashes included */
	unsigned creds;      /* mask of enum principal_kind allowed */
	api_handler_fn *fn;
};
/* Or'ed into a route's creds: the body is passed through unparsed (c->body stays NULL);
 * the tunnel ingress forwards any body, JSON-RPC batches and non-JSON included. */
#define API_RAW_BODY (1u << 31)
/* Or'ed into a route's creds: no credential is asked for (published public keys). */
#define API_PUBLIC (1u << 29)
/* Or'ed into a route's creds: U+0000 in the body's strings is accepted and replaced by
 * U+FFFD (tool output is text that may hold any byte; elsewhere \u0000 stays a 400).
 * docs/decisions.md, "NUL in tool output". */
#define API_NUL_TEXT (1u << 30)

/* The HTTP server's body hook: the upload routes take their bodies as streams
 * (files.c); every other request is buffered. */
bool api_body_hook(struct http_request *req, struct http_body_sink *sink, void *srv);
/* The session of the route ({id} first) as this caller may see it, or NULL after
 * replying 404 (unknown or not theirs) or 500 (sessions.c). */
json_t *sessions_for_call(struct api_call *c);
/* Whether the sessions token's session has file_id among its resources. */
bool session_resources_has_file(struct api_call *c, const char *file_id);
bool files_upload_hook(struct server *srv, struct http_request *req, struct http_body_sink *sink);

/* Entry point from the HTTP server. Every reply (api_reply_*) frees the call:
 * handlers must not touch c after replying. */
void api_dispatch(struct http_request *req, void *srv);

/* Replies. body is stolen (decref'd). */
void api_reply_json(struct api_call *c, int status, json_t *body);
/* Reference error envelope. error_code (details.error_code) may be NULL. Sets
 * x-should-retry: false on 400, 404, 409 and 412 (genuine, non-transient answers). */
void api_reply_error(struct api_call *c, int status, const char *type, const char *error_code,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Same with a prepared details object (stolen), for 412 current_state. */
void api_reply_error_details(struct api_call *c, int status, const char *type, json_t *details,
                             const char *message);
/* Maps an AL_E_* code to the matching envelope (NOTFOUND → 404 not_found_error, ...). */
void api_reply_err(struct api_call *c, int err, const char *message);

/* Keeps the call alive past the handler (long-poll, SSE). If the client leaves first,
 * on_close runs (drop every pointer to c) and the call is freed after it returns.
 * A held call answered with api_reply_* is freed by the reply; a stream (answered
 * with http_stream_* on c->http) ends with api_stream_end, which frees it. */
void api_hold(struct api_call *c, void *owner, void (*on_close)(struct api_call *c));
void api_stream_end(struct api_call *c);
void api_call_free(struct api_call *c);
/* Common response headers (content-type is the caller's): request-id and echoes.
 * h must have room for 4 more entries; returns the new count. */
size_t api_common_headers(struct api_call *c, struct http_header *h, size_t n);

/* Body helpers for validators: each returns 0 or replies 400 itself and returns
 * AL_E_INVAL, so handlers can `if (api_body_str(...)) return;`. */
int api_body_required(struct api_call *c);
/* Rejects keys of c->body that are not in the NULL-terminated list. */
int api_body_only(struct api_call *c, const char *const *allowed);

/* List paging (PageCursor): parses limit (1..max, default dflt) and page. The cursor
 * is an opaque base64url string that encodes the sort key and order. */
struct page_req {
	unsigned limit;
	bool has_cursor;
	int64_t after_seq; /* exclusive bound from the cursor */
	bool desc;         /* order asked for (or the route default) */
};
int api_page_parse(struct api_call *c, unsigned dflt, unsigned max, bool default_desc,
                   struct page_req *out);
char *api_page_cursor(int64_t seq, bool desc); /* heap string */

/* Metadata: ≤16 pairs, key ≤64 chars, value ≤512 chars, values strings. With patch
 * set, null values delete keys from base (which may be NULL). Replies 400
 * invalid_metadata itself on failure. out: new reference. */
int api_metadata(struct api_call *c, json_t *in, json_t *base, bool patch, json_t **out);

/* RFC 3339 of a stored µs timestamp, or JSON null for 0. */
json_t *api_time(int64_t real_us);

#endif
