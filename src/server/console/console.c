/* The web console: static assets under /console/, sign-in and sign-out, and the
 * console's sessions, kept in the database (console_session_store.c) so a restart or
 * another replica keeps a browser signed in; see console.h and docs/server/console.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "auth.h"
#include "console.h"
#include "console_assets.h"
#include "console_session_store.h"
#include "err.h"
#include "key_store.h"
#include "oidc.h"
#include "log.h"
#include "server.h"
#include "util.h"
#include "xalloc.h"

/* The last-seen time is written at most this often: a page that polls every 5 s would
 * otherwise commit a write per request. The idle limit is thus met up to a minute early. */
#define CONSOLE_TOUCH_US (60LL * 1000000)

/* A signed-in browser as read from its row for one request. Only the SHA-256 of the key
 * is kept, to check at every request that the key is still good; never the key. */
struct console_session {
	char id_hash[65]; /* the row's key: SHA-256 of the cookie's value */
	struct console_session_row row;
	/* signed in through the OpenID provider (console_oidc.c): the user as their access
	 * token named them; the session ends when that token expires */
	bool has_user;
	struct oidc_user user;
};

struct console {
	struct console_oidc *oidc; /* pending single sign-ons (console_oidc.c) */
};

static void
session_reset(struct console_session *s)
{
	console_session_row_reset(&s->row);
	if (s->has_user)
		oidc_user_reset(&s->user);
	explicit_bzero(s, sizeof(*s));
}

/* The user of a single sign-on as its row keeps it, and back. */
static json_t *
user_to_json(const struct oidc_user *u)
{
	json_t *groups = json_array();
	for (size_t i = 0; i < u->ngroups; i++)
		json_array_append_new(groups, json_string(u->groups[i]));
	return json_pack("{s:s, s:s, s:s, s:b, s:o, s:b, s:I}", "sub", u->sub, "iss", u->iss,
	                 "email", u->email, "email_verified", u->email_verified, "groups", groups,
	                 "groups_from_file", u->groups_from_file, "exp", (json_int_t)u->exp);
}

static int
user_from_json(const json_t *j, struct oidc_user *u)
{
	const char *sub = json_string_value(json_object_get(j, "sub"));
	const char *iss = json_string_value(json_object_get(j, "iss"));
	const char *email = json_string_value(json_object_get(j, "email"));
	const json_t *groups = json_object_get(j, "groups");
	memset(u, 0, sizeof(*u));
	if (sub == NULL || iss == NULL || email == NULL || !json_is_array(groups) ||
	    !json_is_integer(json_object_get(j, "exp")))
		return AL_E_INVAL;
	snprintf(u->sub, sizeof(u->sub), "%s", sub);
	snprintf(u->iss, sizeof(u->iss), "%s", iss);
	snprintf(u->email, sizeof(u->email), "%s", email);
	u->email_verified = json_is_true(json_object_get(j, "email_verified"));
	u->groups_from_file = json_is_true(json_object_get(j, "groups_from_file"));
	u->exp = json_integer_value(json_object_get(j, "exp"));
	u->groups = xcalloc(json_array_size(groups) + 1, sizeof(char *));
	for (size_t i = 0; i < json_array_size(groups); i++) {
		const char *g = json_string_value(json_array_get(groups, i));
		if (g != NULL)
			u->groups[u->ngroups++] = xstrdup(g);
	}
	return 0;
}

/* Every console answer: the page may load only what this server sends, run no inline
 * script, be framed by nobody, and send nothing back but to this origin. */
#define CONSOLE_CSP                                                                                \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "          \
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                \
	"form-action 'self'; frame-ancestors 'none'"

static struct console *
console_of(struct server *srv)
{
	if (srv->console == NULL)
		srv->console = xcalloc(1, sizeof(struct console));
	return srv->console;
}

void
console_free(struct server *srv)
{
	if (srv->console == NULL)
		return;
	console_oidc_free(srv->console->oidc);
	explicit_bzero(srv->console, sizeof(struct console));
	free(srv->console);
	srv->console = NULL;
}

int
console_cookie_get(const char *header, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);
	const char *p = header;
	if (header == NULL)
		return AL_E_NOTFOUND;
	/* cookie-string = cookie-pair *( ";" SP cookie-pair ) (RFC 6265 §4.2.1); browsers
	 * and proxies are lax about the spaces, so skip any */
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			const char *v = p + nlen + 1;
			size_t vlen = len - nlen - 1;
			while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
				vlen--;
			if (vlen + 1 > outlen)
				return AL_E_TOOBIG;
			memcpy(out, v, vlen);
			out[vlen] = '\0';
			return 0;
		}
		p += len;
	}
	return AL_E_NOTFOUND;
}

bool
console_request(const struct http_request *req)
{
	char v[64];
	if (http_request_header(req, "x-api-key") || http_request_header(req, "authorization"))
		return false;
	return console_cookie_get(http_request_header(req, "cookie"), CONSOLE_COOKIE, v,
	                          sizeof v) != AL_E_NOTFOUND;
}

static bool
same_secret(const char *a, const char *b)
{
	size_t n = strlen(a);
	return n > 0 && n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

/* The live session named by the request's cookie into out: 0, AL_E_NOTFOUND (no cookie,
 * no such session, or it expired: its row is deleted then) or AL_E_IO. The cookie's value
 * is looked up by its hash: a row read from the database never opens a session. */
static int
session_of(struct server *srv, const struct http_request *req, struct console_session *out)
{
	char id[64];
	int64_t now = now_real_us();
	int r;
	memset(out, 0, sizeof(*out));
	if (console_cookie_get(http_request_header(req, "cookie"), CONSOLE_COOKIE, id, sizeof id) !=
	        0 ||
	    id[0] == '\0')
		return AL_E_NOTFOUND;
	sha256_hex(id, strlen(id), out->id_hash);
	explicit_bzero(id, sizeof id);
	if ((r = console_session_store_find(srv->db, out->id_hash, &out->row)) != 0)
		goto fail;
	if (now - out->row.last_seen_at > CONSOLE_IDLE_US ||
	    now - out->row.created_at > CONSOLE_MAX_AGE_US) {
		if ((r = console_session_store_delete(srv->db, out->id_hash)) == 0)
			r = AL_E_NOTFOUND;
		goto fail;
	}
	if (strcmp(out->row.kind, CONSOLE_SESSION_USER) == 0) {
		if ((r = user_from_json(out->row.user, &out->user)) != 0) {
			log_warn("console session with an unreadable user; ended", "key_id",
			         out->row.key_id);
			if ((r = console_session_store_delete(srv->db, out->id_hash)) == 0)
				r = AL_E_NOTFOUND;
			goto fail;
		}
		out->has_user = true;
	}
	return 0;
fail:
	session_reset(out);
	return r;
}

/* Records that the session was used now (at most one write a minute). A failure is the
 * database's, logged there; the request it came with goes on, as its read succeeded. */
static void
session_touch(struct server *srv, const struct console_session *s)
{
	int64_t now = now_real_us();
	if (now - s->row.last_seen_at < CONSOLE_TOUCH_US)
		return; /* no statement at all: most requests */
	(void)console_session_store_touch(srv->db, s->id_hash, now, CONSOLE_TOUCH_US);
}

/* Ends a session for good: its row goes, so no replica knows it any more. */
static int
session_end(struct server *srv, struct console_session *s)
{
	int r = console_session_store_delete(srv->db, s->id_hash);
	session_reset(s);
	return r;
}

/* Whether the key a session signed in with still opens the API: AIRLOCK_API_KEY may
 * have changed (it is read at start only, so not today), an issued key be revoked. */
static int
key_still_good(struct server *srv, const struct console_session *s)
{
	char hash[65];
	if (strcmp(s->row.kind, CONSOLE_SESSION_ENV_KEY) == 0) {
		const char *k = srv->cfg.api_key;
		if (k == NULL || *k == '\0')
			return AL_E_AUTH;
		sha256_hex(k, strlen(k), hash);
		return same_secret(hash, s->row.key_hash) ? 0 : AL_E_AUTH;
	}
	struct key_row row;
	int r = key_store_find(srv->db, s->row.key_hash, &row);
	if (r == AL_E_NOTFOUND)
		return AL_E_AUTH;
	if (r != 0)
		return r;
	return !row.revoked && strcmp(row.kind, "server") == 0 ? 0 : AL_E_AUTH;
}

int
console_auth(struct server *srv, const struct http_request *req, struct principal *who, char *why,
             size_t whylen)
{
	struct console_session s;
	int r;
	memset(who, 0, sizeof(*who));
	who->cred = "console session";
	who->fail = "no such console session, or it expired";
	snprintf(why, whylen, "%s", who->fail);
	if ((r = session_of(srv, req, &s)) != 0) {
		if (r == AL_E_IO) {
			who->fail = "cannot read the console session";
			snprintf(why, whylen, "%s", who->fail);
		}
		return r == AL_E_NOTFOUND ? AL_E_AUTH : r;
	}
	snprintf(who->key_id, sizeof(who->key_id), "%s", s.row.key_id);
	/* the cookie goes with every request the browser makes to us, whoever asked for
	 * it; only our own script can read the token and set the header */
	const char *h = http_request_header(req, CONSOLE_HEADER);
	if (h == NULL || !same_secret(s.row.csrf, h)) {
		who->fail = "console request without its CSRF token in x-airlock-console";
		snprintf(why, whylen, "%s", who->fail);
		r = AL_E_PERM;
		goto out;
	}
	if (s.has_user) {
		/* a user's session lasts as long as the access token it began with */
		if (now_real_us() / 1000000 >= s.user.exp) {
			who->fail = "your single sign-on expired: sign in again";
			snprintf(why, whylen, "%s", who->fail);
			r = session_end(srv, &s) == 0 ? AL_E_AUTH : AL_E_IO;
			goto out;
		}
		session_touch(srv, &s);
		oidc_user_copy(&who->user, &s.user);
		who->kind = PRINCIPAL_USER;
		who->role = auth_user_role(srv, &who->user); /* the policy in force now */
		who->fail = "";
		why[0] = '\0';
		r = 0;
		goto out;
	}
	r = key_still_good(srv, &s);
	if (r != 0) {
		who->fail = "the key this console session signed in with is revoked";
		snprintf(why, whylen, "%s", who->fail);
		if (r == AL_E_AUTH && session_end(srv, &s) != 0)
			r = AL_E_IO;
		goto out;
	}
	session_touch(srv, &s);
	who->kind = PRINCIPAL_API_KEY;
	who->fail = "";
	why[0] = '\0';
out:
	session_reset(&s);
	return r;
}

/* ---- answers ---- */

static void
reply(struct api_call *c, int status, const char *ctype, const char *cookie, const char *location,
      const char *body, size_t len)
{
	struct http_header h[16];
	size_t n = 0;
	h[n++] = (struct http_header){"content-type", ctype};
	h[n++] = (struct http_header){"content-security-policy", CONSOLE_CSP};
	h[n++] = (struct http_header){"x-content-type-options", "nosniff"};
	h[n++] = (struct http_header){"x-frame-options", "DENY"};
	h[n++] = (struct http_header){"referrer-policy", "no-referrer"};
	h[n++] = (struct http_header){"cross-origin-opener-policy", "same-origin"};
	h[n++] = (struct http_header){"cross-origin-resource-policy", "same-origin"};
	/* assets change with the binary; answers about the session with every request */
	h[n++] = (struct http_header){"cache-control", "no-cache"};
	if (cookie)
		h[n++] = (struct http_header){"set-cookie", cookie};
	if (location)
		h[n++] = (struct http_header){"location", location};
	n = api_common_headers(c, h, n);
	c->status = status;
	http_respond(c->http, status, h, n, body, len);
	api_call_free(c);
}

static void
reply_json(struct api_call *c, int status, const char *cookie, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	reply(c, status, "application/json", cookie, NULL, s ? s : "{}", s ? strlen(s) : 2);
	free(s);
}

static void
reply_error(struct api_call *c, int status, const char *type, const char *cookie,
            const char *message)
{
	json_t *o = json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "error", "type", type,
	                      "message", message, "request_id", c->request_id);
	reply_json(c, status, cookie, o);
}

static const char *
content_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
	    {".html", "text/html; charset=utf-8"},
	    {".js", "text/javascript; charset=utf-8"},
	    {".css", "text/css; charset=utf-8"},
	    {".svg", "image/svg+xml"},
	    {".png", "image/png"},
	};
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < ARRAY_LEN(types); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

static void
serve_asset(struct api_call *c, const char *name)
{
	if (*name == '\0')
		name = "index.html";
	for (size_t i = 0; i < console_assets_count; i++) {
		if (strcmp(console_assets[i].name, name) != 0)
			continue;
		const char *body = (const char *)console_assets[i].data;
		size_t len = console_assets[i].len;
		if (strcmp(c->http->method, "HEAD") == 0)
			len = 0;
		reply(c, 200, content_type(name), NULL, NULL, body, len);
		return;
	}
	reply_error(c, 404, "not_found_error", NULL, "no such console page");
}

/* The Set-Cookie value: HttpOnly so no script reads it, SameSite=Strict so no other
 * site's page sends it, Secure whenever the listener is TLS. Path=/ because /v1 is
 * where the console's requests go. */
static void
cookie_line(struct server *srv, const char *value, int64_t max_age_s, char *out, size_t len)
{
	snprintf(out, len, "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict%s",
	         CONSOLE_COOKIE, value, (long long)max_age_s, srv->api_tls ? "; Secure" : "");
}

/* Requests that change the console's state come from its own script: the header
 * forces a cross-origin caller into a preflight we never grant, and an Origin, when a
 * browser sends one, must be ours. */
static bool
from_console(struct api_call *c, const char **why)
{
	const char *origin = http_request_header(c->http, "origin");
	const char *host = http_request_header(c->http, "host");
	if (http_request_header(c->http, CONSOLE_HEADER) == NULL) {
		*why = "console requests need the " CONSOLE_HEADER " header";
		return false;
	}
	if (origin != NULL && strcmp(origin, "null") != 0) {
		const char *h = strstr(origin, "://");
		if (host == NULL || h == NULL || strcmp(h + 3, host) != 0) {
			*why = "cross-origin console request";
			return false;
		}
	}
	return true;
}

static void
json_session(struct api_call *c, const struct console_session_row *s, const char *cookie,
             int status)
{
	char ts[32];
	time_fmt_rfc3339(s->created_at + CONSOLE_MAX_AGE_US, ts);
	reply_json(c, status, cookie,
	           json_pack("{s:s, s:s, s:s, s:s}", "type", "console_session", "key_id", s->key_id,
	                     "csrf_token", s->csrf, "expires_at", ts));
}

/* Starts a session: the browser's old one, if its request named one, ends (a new id at
 * every sign-in: no fixation); expired rows are swept. row holds who signs in (kind,
 * key_id, key_hash, user); this fills in the CSRF token and the times and commits the row
 * before the cookie is answered. id gets the cookie's value: the only copy of it. */
static int
session_new(struct server *srv, const struct http_request *req, struct console_session_row *row,
            int64_t expires_at, char id[64])
{
	struct console_session old;
	int64_t now = now_real_us();
	char hash[65];
	int r = session_of(srv, req, &old);
	if (r == 0)
		r = session_end(srv, &old);
	if (r != 0 && r != AL_E_NOTFOUND)
		return r;
	if (console_session_store_sweep(srv->db, now, now - CONSOLE_IDLE_US,
	                                CONSOLE_MAX_SESSIONS) != 0)
		return AL_E_IO;
	char *tok = token_new("");
	char *csrf = token_new("");
	snprintf(id, 64, "%s", tok);
	snprintf(row->csrf, sizeof(row->csrf), "%s", csrf);
	secret_free(tok);
	secret_free(csrf);
	row->created_at = row->last_seen_at = now;
	row->expires_at =
	    expires_at < now + CONSOLE_MAX_AGE_US ? expires_at : now + CONSOLE_MAX_AGE_US;
	sha256_hex(id, strlen(id), hash);
	r = console_session_store_insert(srv->db, hash, row);
	if (r != 0)
		explicit_bzero(id, 64);
	return r;
}

static void
sign_in(struct api_call *c)
{
	struct server *srv = c->srv;
	const char *why = NULL;
	char reason[256] = "";
	json_t *body = NULL;
	if (!from_console(c, &why)) {
		reply_error(c, 403, "permission_error", NULL, why);
		return;
	}
	json_error_t je;
	if (c->http->body.len > 4096 ||
	    (body = json_loadb(c->http->body.data, c->http->body.len, JSON_REJECT_DUPLICATES,
	                       &je)) == NULL ||
	    !json_is_string(json_object_get(body, "key"))) {
		json_decref(body);
		reply_error(c, 400, "invalid_request_error", NULL,
		            "body must be a JSON object with the server API key in \"key\"");
		return;
	}
	/* checked exactly as the API checks x-api-key (auth_resolve) */
	struct http_header h = {"x-api-key", json_string_value(json_object_get(body, "key"))};
	struct http_request probe = {.headers = &h, .nheaders = 1};
	auth_principal_reset(&c->who);
	int r = auth_resolve(srv, &probe, &c->who, reason, sizeof reason);
	if (r == 0 && c->who.kind != PRINCIPAL_API_KEY) {
		c->who.fail = "only a server API key signs in to the console";
		r = AL_E_PERM;
	}
	if (r == AL_E_IO) {
		json_decref(body);
		api_reply_err(c, r, "cannot check the key");
		return;
	}
	if (r != 0) {
		log_warn("console sign-in refused", "request_id", c->request_id, "peer",
		         c->http->peer, "credential", c->who.cred, "reason",
		         reason[0] ? reason : c->who.fail);
		audit_api(c, "auth.fail", "deny", "401",
		          json_pack("{s:s, s:s, s:s?, s:s?}", "method", "POST", "route",
		                    "/console/login", "credential", c->who.cred, "reason",
		                    reason[0] ? reason : c->who.fail));
		json_decref(body);
		reply_error(c, 401, "authentication_error", NULL,
		            r == AL_E_PERM ? "only a server API key signs in to the console"
		                           : "invalid API key");
		return;
	}
	struct console_session_row row = {0};
	char id[64];
	const char *key = json_string_value(json_object_get(body, "key"));
	sha256_hex(key, strlen(key), row.key_hash);
	snprintf(row.kind, sizeof(row.kind), "%s",
	         strcmp(c->who.key_id, "env:AIRLOCK_API_KEY") == 0 ? CONSOLE_SESSION_ENV_KEY
	                                                           : CONSOLE_SESSION_KEY);
	snprintf(row.key_id, sizeof(row.key_id), "%s", c->who.key_id);
	json_decref(body); /* wiped: json_wipe_free */
	if ((r = session_new(srv, c->http, &row, INT64_MAX, id)) != 0) {
		api_reply_err(c, r, "cannot start the console session");
		return;
	}
	c->who.cred = "console session";
	audit_api(c, "console.sign_in", "allow", "200", NULL);
	log_info("console sign-in", "request_id", c->request_id, "key_id", row.key_id, "peer",
	         c->http->peer);
	char cookie[256];
	cookie_line(srv, id, CONSOLE_MAX_AGE_US / 1000000, cookie, sizeof cookie);
	explicit_bzero(id, sizeof id);
	json_session(c, &row, cookie, 200);
	explicit_bzero(cookie, sizeof cookie);
}

void
console_user_signed_in_page(struct api_call *c, const struct oidc_user *u, const char *page)
{
	struct server *srv = c->srv;
	struct console_session_row row = {0};
	char id[64];
	snprintf(row.kind, sizeof(row.kind), "%s", CONSOLE_SESSION_USER);
	snprintf(row.key_id, sizeof(row.key_id), "user:%s", u->sub);
	row.user = user_to_json(u);
	/* the row goes when the token expires, whatever the idle and age limits say */
	int r = session_new(srv, c->http, &row, u->exp * 1000000, id);
	console_session_row_reset(&row);
	if (r != 0) {
		api_reply_err(c, r, "cannot start the console session");
		return;
	}
	auth_principal_reset(&c->who);
	oidc_user_copy(&c->who.user, u);
	c->who.kind = PRINCIPAL_USER;
	c->who.role = auth_user_role(srv, u);
	c->who.cred = "console session";
	snprintf(c->who.key_id, sizeof(c->who.key_id), "user:%s", u->sub);
	audit_api(c, "console.sign_in", "allow", "200", json_pack("{s:s}", "method", "oidc"));
	log_info("console sign-in", "request_id", c->request_id, "user", u->sub, "peer",
	         c->http->peer, "method", "oidc");
	char cookie[256];
	int64_t left = u->exp - now_real_us() / 1000000;
	cookie_line(srv, id, left > 0 ? left : 1, cookie, sizeof cookie);
	explicit_bzero(id, sizeof id);
	reply(c, 200, "text/html; charset=utf-8", cookie, NULL, page, strlen(page));
	explicit_bzero(cookie, sizeof cookie);
}

struct console_oidc **
console_oidc_slot(struct server *srv)
{
	return &console_of(srv)->oidc;
}

void
console_reply_text(struct api_call *c, int status, const char *text)
{
	reply(c, status, "text/plain; charset=utf-8", NULL, NULL, text, strlen(text));
}

void
console_redirect(struct api_call *c, const char *location)
{
	reply(c, 302, "text/plain; charset=utf-8", NULL, location, "", 0);
}

static void
sign_out(struct api_call *c)
{
	char cookie[256], why[128];
	const char *w = NULL;
	cookie_line(c->srv, "", 0, cookie, sizeof cookie);
	if (!from_console(c, &w)) {
		reply_error(c, 403, "permission_error", NULL, w);
		return;
	}
	int r = console_auth(c->srv, c->http, &c->who, why, sizeof why);
	if (r == AL_E_PERM) {
		reply_error(c, 403, "permission_error", NULL, why);
		return;
	}
	/* the row goes: no replica, and no restarted server, knows the cookie any more */
	struct console_session s;
	r = session_of(c->srv, c->http, &s);
	if (r == 0)
		r = session_end(c->srv, &s);
	if (r != 0 && r != AL_E_NOTFOUND) {
		api_reply_err(c, r, "cannot end the console session");
		return;
	}
	reply_json(c, 200, cookie, json_pack("{s:s}", "type", "console_signed_out"));
}

/* The signed-in session's CSRF token for the console's script, or 401. */
static void
whoami(struct api_call *c)
{
	const char *why = NULL;
	if (!from_console(c, &why)) {
		reply_error(c, 403, "permission_error", NULL, why);
		return;
	}
	struct console_session s;
	int r = session_of(c->srv, c->http, &s);
	if (r == AL_E_NOTFOUND) {
		reply_error(c, 401, "authentication_error", NULL, "not signed in");
		return;
	}
	if (r != 0) {
		api_reply_err(c, r, "cannot read the console session");
		return;
	}
	session_touch(c->srv, &s);
	json_session(c, &s.row, NULL, 200);
	session_reset(&s);
}

bool
console_dispatch(struct api_call *c)
{
	static const struct api_route routes[] = {
	    {"GET", "/console/{*}", 0, NULL},        {"POST", "/console/login", 0, NULL},
	    {"POST", "/console/logout", 0, NULL},    {"GET", "/console/session", 0, NULL},
	    {"GET", "/console/oidc/login", 0, NULL}, {"GET", "/console/oidc/callback", 0, NULL},
	    {"GET", "/console/config", 0, NULL},
	};
	const char *p = c->http->path;
	const char *m = c->http->method;
	bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
	if (strncmp(p, "/console", 8) != 0 || (p[8] != '\0' && p[8] != '/'))
		return false;
	c->route = &routes[0]; /* for the access log */
	if (strcmp(p, "/console") == 0) {
		if (!get) {
			reply_error(c, 405, "invalid_request_error", NULL, "method not allowed");
			return true;
		}
		reply(c, 301, "text/plain; charset=utf-8", NULL, "/console/", "", 0);
		return true;
	}
	const char *name = p + 9;
	if (strcmp(name, "login") == 0 || strcmp(name, "logout") == 0) {
		c->route = &routes[name[3] == 'i' ? 1 : 2];
		if (strcmp(m, "POST") != 0) {
			reply_error(c, 405, "invalid_request_error", NULL, "method not allowed");
			return true;
		}
		if (name[3] == 'i')
			sign_in(c);
		else
			sign_out(c);
		return true;
	}
	if (!get) {
		reply_error(c, 405, "invalid_request_error", NULL, "method not allowed");
		return true;
	}
	if (strcmp(name, "session") == 0) {
		c->route = &routes[3];
		whoami(c);
		return true;
	}
	if (strcmp(name, "oidc/login") == 0) {
		c->route = &routes[4];
		console_oidc_login(c);
		return true;
	}
	if (strcmp(name, "oidc/callback") == 0) {
		c->route = &routes[5];
		console_oidc_callback(c);
		return true;
	}
	if (strcmp(name, "config") == 0) {
		c->route = &routes[6];
		reply_json(c, 200, NULL,
		           json_pack("{s:b}", "single_sign_on", console_oidc_enabled(c->srv)));
		return true;
	}
	serve_asset(c, name);
	return true;
}
