/* Single sign-on for the console: the OAuth 2.0 authorization code flow with PKCE
 * (RFC 7636, S256) against the OpenID provider the API already trusts (identity/oidc.c).
 * The browser goes to the IdP with a one-time state; the IdP sends it back with a code;
 * the server exchanges the code (with the verifier only it knows) for an access token,
 * verifies that token exactly as the API verifies a bearer (oidc_authenticate: issuer,
 * audience, signature, expiry, groups), and starts a console session of that user. The
 * tokens never reach the browser. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api.h"
#include "audit.h"
#include "auth.h"
#include "console.h"
#include "console_session_store.h"
#include "err.h"
#include "httpc.h"
#include "log.h"
#include "oidc.h"
#include "server.h"
#include "sha256.h"
#include "util.h"
#include "xalloc.h"

/* Sign-ins in progress are rows (console_sign_ons), so the identity provider may send the
 * browser back to any replica, or to this server after a restart. */
#define PENDING_MAX 256
#define PENDING_TTL_US (10LL * 60 * 1000000) /* a sign-in must come back within this */
#define TOKEN_BODY_MAX (64 * 1024)

struct console_oidc {
	struct httpc *http;
};

/* One exchange of a code for a token, holding the browser's request meanwhile. */
struct exchange {
	struct api_call *c;
	struct httpc_xfer *xfer;
};

bool
console_oidc_enabled(struct server *srv)
{
	const struct server_identity_config *ic = &srv->cfg.identity;
	return srv->oidc != NULL && ic->oidc_client_id && ic->oidc_client_id[0] &&
	       ic->oidc_redirect_uri && ic->oidc_redirect_uri[0];
}

static struct console_oidc *
state_of(struct server *srv)
{
	struct console_oidc **slot = console_oidc_slot(srv);
	if (*slot == NULL)
		*slot = xcalloc(1, sizeof(**slot));
	return *slot;
}

void
console_oidc_free(struct console_oidc *co)
{
	if (co == NULL)
		return;
	httpc_free(co->http);
	explicit_bzero(co, sizeof(*co));
	free(co);
}

/* Percent-encoded form and query values (RFC 3986 unreserved kept). */
static void
add_param(struct buf *b, const char *name, const char *value)
{
	char *v = httpc_escape(value);
	buf_addf(b, "%s%s=%s", b->len ? "&" : "", name, v);
	free(v);
}

void
console_oidc_login(struct api_call *c)
{
	struct server *srv = c->srv;
	const struct server_identity_config *ic = &srv->cfg.identity;
	if (!console_oidc_enabled(srv)) {
		console_reply_text(c, 404, "single sign-on is not configured on this server\n");
		return;
	}
	const char *authz = oidc_authorization_endpoint(srv->oidc);
	if (authz == NULL || oidc_token_endpoint(srv->oidc) == NULL) {
		console_reply_text(c, 503,
		                   "the identity provider's endpoints are not known yet (its "
		                   "discovery document has not loaded); try again shortly\n");
		return;
	}
	int64_t now = now_real_us();
	char *state = token_new(""), *verifier = token_new("");
	char state_hash[65];
	/* the state goes to the browser: only its hash is kept; the oldest sign-in in
	 * progress gives way past PENDING_MAX */
	sha256_hex(state, strlen(state), state_hash);
	if (console_session_store_sign_on_add(srv->db, state_hash, verifier, now,
	                                      now + PENDING_TTL_US, PENDING_MAX) != 0) {
		secret_free(state);
		secret_free(verifier);
		console_reply_text(c, 500, "cannot start the sign-in: the database failed\n");
		return;
	}
	/* RFC 7636 §4.2: S256 challenge of the 43-character base64url verifier */
	uint8_t h[SHA256_LEN];
	sha256(verifier, strlen(verifier), h);
	char *challenge = base64url_encode(h, sizeof h);
	struct buf q;
	buf_init(&q, 8192);
	add_param(&q, "response_type", "code");
	add_param(&q, "client_id", ic->oidc_client_id);
	add_param(&q, "redirect_uri", ic->oidc_redirect_uri);
	add_param(&q, "scope",
	          ic->oidc_scope && ic->oidc_scope[0] ? ic->oidc_scope : "openid email profile");
	add_param(&q, "state", state);
	add_param(&q, "code_challenge", challenge);
	add_param(&q, "code_challenge_method", "S256");
	char *location = xasprintf("%s%c%s", authz, strchr(authz, '?') ? '&' : '?', q.data);
	console_redirect(c, location);
	free(location);
	buf_free(&q);
	free(challenge);
	secret_free(state);
	secret_free(verifier);
}

static void
exchange_abandoned(struct api_call *c)
{
	struct exchange *x = c->owner;
	httpc_cancel(x->xfer); /* on_release frees x */
}

static void
exchange_release(void *arg)
{
	free(arg);
}

/* The page that ends a sign-in: a same-site navigation, so the SameSite=Strict cookie
 * just set goes with the console's first request (a redirect chain the IdP started
 * would count as cross-site and leave it behind). No script: the CSP forbids inline. */
static const char done_page[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta http-equiv=\"refresh\" content=\"0;url=/console/\"><title>airlock</title></head>"
    "<body><p><a href=\"/console/\">Continue to the console</a></p></body></html>\n";

static void
on_token(struct httpc_xfer *xfer, const struct httpc_response *resp, void *arg)
{
	struct exchange *x = arg;
	struct api_call *c = x->c;
	struct server *srv = c->srv;
	(void)xfer;
	free(x);
	/* the call is ours again: not held any more */
	http_request_on_close(c->http, NULL, NULL);
	c->held = false;
	c->on_close = NULL;
	c->owner = NULL;
	char why[300] = "";
	json_t *body = NULL;
	if (resp->err != 0 || resp->status != 200) {
		snprintf(why, sizeof why, "the identity provider refused the code (%s%d)",
		         resp->err ? "transport error, status " : "HTTP ", resp->status);
		goto fail;
	}
	json_error_t je;
	body = json_loadb(resp->body.data, resp->body.len, JSON_REJECT_DUPLICATES, &je);
	const char *at = json_string_value(json_object_get(body, "access_token"));
	if (at == NULL) {
		snprintf(why, sizeof why, "the identity provider sent no access token");
		goto fail;
	}
	struct oidc_user u;
	char err[256] = "";
	int r = oidc_authenticate(srv->oidc, at, &u, err, sizeof err);
	if (r != 0) {
		snprintf(why, sizeof why, "the access token does not open this API: %s", err);
		goto fail;
	}
	if (auth_user_role(srv, &u) == ROLE_NONE) {
		oidc_user_reset(&u);
		snprintf(why, sizeof why, "your groups have no role on this server");
		goto fail;
	}
	json_decref(body);
	console_user_signed_in_page(c, &u, done_page);
	oidc_user_reset(&u);
	return;
fail:
	json_decref(body);
	log_warn("console single sign-on failed", "request_id", c->request_id, "reason", why);
	auth_principal_reset(&c->who);
	c->who.cred = "console single sign-on";
	audit_api(c, "auth.fail", "deny", "401",
	          json_pack("{s:s, s:s, s:s}", "route", "/console/oidc/callback", "credential",
	                    "console single sign-on", "reason", why));
	char text[400];
	snprintf(text, sizeof text, "sign-in failed: %s\n", why);
	console_reply_text(c, 401, text);
}

void
console_oidc_callback(struct api_call *c)
{
	struct server *srv = c->srv;
	const struct server_identity_config *ic = &srv->cfg.identity;
	if (!console_oidc_enabled(srv)) {
		console_reply_text(c, 404, "single sign-on is not configured on this server\n");
		return;
	}
	/* the console is dispatched before the API parses queries */
	if (query_parse(c->http->query, &c->query) != 0) {
		console_reply_text(c, 400, "sign-in failed: malformed query string\n");
		return;
	}
	const char *state = query_get(&c->query, "state");
	const char *code = query_get(&c->query, "code");
	const char *error = query_get(&c->query, "error");
	struct console_oidc *co = state_of(srv);
	char verifier[64], state_hash[65];
	int r = AL_E_NOTFOUND;
	if (state != NULL && state[0] != '\0') {
		sha256_hex(state, strlen(state), state_hash);
		/* one use: the row is gone whatever comes next, on every replica */
		r = console_session_store_sign_on_take(srv->db, state_hash, now_real_us(), verifier,
		                                       sizeof verifier);
	}
	if (r == AL_E_IO) {
		console_reply_text(c, 500, "sign-in failed: the database failed; start again\n");
		return;
	}
	if (r != 0) {
		console_reply_text(c, 400,
		                   "sign-in failed: unknown or expired sign-in (state); start "
		                   "again from the console\n");
		return;
	}
	if (error != NULL || code == NULL || code[0] == '\0' || strlen(code) > 4096) {
		char text[300];
		char e[120];
		size_t j = 0;
		for (size_t i = 0; error && error[i] && j + 1 < sizeof e; i++)
			e[j++] = (error[i] >= 0x20 && error[i] < 0x7f) ? error[i] : '?';
		e[j] = '\0';
		snprintf(text, sizeof text, "sign-in failed: the identity provider answered %s\n",
		         error ? e : "without a code");
		explicit_bzero(verifier, sizeof verifier);
		console_reply_text(c, 401, text);
		return;
	}
	if (co->http == NULL) {
		struct httpc_opts ho = {.ca_file = ic->oidc_ca_file, .transport = HTTPC_CURL};
		co->http = httpc_new(srv->loop, &ho);
	}
	struct buf form;
	buf_init(&form, 16384);
	add_param(&form, "grant_type", "authorization_code");
	add_param(&form, "code", code);
	add_param(&form, "redirect_uri", ic->oidc_redirect_uri);
	add_param(&form, "code_verifier", verifier);
	add_param(&form, "client_id", ic->oidc_client_id);
	explicit_bzero(verifier, sizeof verifier);
	/* client_secret_basic (RFC 6749 §2.3.1): both halves form-encoded, then base64 */
	char *basic = NULL;
	if (ic->oidc_client_secret && ic->oidc_client_secret[0]) {
		char *id = httpc_escape(ic->oidc_client_id),
		     *sec = httpc_escape(ic->oidc_client_secret);
		char *pair = xasprintf("%s:%s", id, sec);
		char *b64 = base64_encode_std(pair, strlen(pair));
		basic = xasprintf("Authorization: Basic %s", b64);
		secret_free(pair);
		secret_free(b64);
		secret_free(sec);
		free(id);
	}
	const char *hdrs[3] = {"Content-Type: application/x-www-form-urlencoded",
	                       "Accept: application/json", basic};
	struct exchange *x = xcalloc(1, sizeof(*x));
	x->c = c;
	struct httpc_request req = {.method = "POST",
	                            .url = oidc_token_endpoint(srv->oidc),
	                            .headers = hdrs,
	                            .nheaders = basic ? 3 : 2,
	                            .body = form.data,
	                            .body_len = form.len,
	                            .timeout_ms = 15000,
	                            .max_body = TOKEN_BODY_MAX,
	                            .on_done = on_token,
	                            .on_release = exchange_release,
	                            .arg = x};
	r = co->http ? httpc_start(co->http, &req, &x->xfer) : AL_E_IO;
	buf_wipe_free(&form);
	secret_free(basic);
	if (r != 0) {
		free(x);
		console_reply_text(c, 502, "sign-in failed: cannot reach the identity provider\n");
		return;
	}
	api_hold(c, x, exchange_abandoned);
}
