/* OpenID Connect users: discovery and JWKS on the loop, bearer JWTs to users (oidc.h).
 *
 * The key set is one immutable lib/jose set swapped by pointer, so a verification never
 * sees half a rotation. Verified tokens are remembered (by SHA-256, until they expire, in
 * a small direct-mapped table) because every API call of a signed-in user carries the same
 * token: a hit costs a hash instead of a signature check. The table is emptied whenever
 * the key set changes, so a key the IdP withdrew stops working at the next refresh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "err.h"
#include "httpc.h"
#include "jose.h"
#include "log.h"
#include "oidc.h"
#include "sha256.h"
#include "util.h"
#include "xalloc.h"

#define CACHE_SLOTS 256
#define MAX_DOC (256 * 1024)
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000

struct waiter {
	void (*cb)(void *arg, int r);
	void *arg;
	struct waiter *next;
};

struct cache_slot {
	unsigned char hash[32];
	bool used;
	struct oidc_user user;
};

struct oidc {
	struct loop *loop;
	struct httpc *http;
	char *issuer, *audience, *groups_claim, *groups_file;
	json_t *groups_map; /* the mapping file's `users` object, or NULL */
	struct cfg map_cfg;
	unsigned skew_s, refetch_min_ms, refresh_ms;

	char *jwks_uri;
	char *authorization_endpoint, *token_endpoint; /* for the console's sign-in */
	struct jose_keyset *keys;
	uint64_t last_refetch_ms; /* when an unknown kid last sent us to the IdP; 0: never */
	struct httpc_xfer *xfer;
	bool fetching_discovery;
	struct loop_timer *timer; /* retry after a failure, or the periodic refresh */
	unsigned backoff_ms;
	struct waiter *waiters;

	struct cache_slot cache[CACHE_SLOTS];
	struct oidc_stats st;
};

static void fetch_discovery(struct oidc *o);
static void fetch_jwks(struct oidc *o);

/* ---- users ---- */

void
oidc_user_reset(struct oidc_user *u)
{
	for (size_t i = 0; i < u->ngroups; i++)
		free(u->groups[i]);
	free(u->groups);
	memset(u, 0, sizeof *u);
}

void
oidc_user_copy(struct oidc_user *dst, const struct oidc_user *src)
{
	*dst = *src;
	dst->groups = xcalloc(src->ngroups ? src->ngroups : 1, sizeof *dst->groups);
	for (size_t i = 0; i < src->ngroups; i++)
		dst->groups[i] = xstrdup(src->groups[i]);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the strings of v (an array of strings, or one string) to the list. */
static int
add_groups(const json_t *v, const char *claim, char ***list, size_t *n, char *err, size_t errlen)
{
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		v = json_pack("[O]", v);
	} else if (json_is_array(v)) {
		json_incref((json_t *)v);
	} else {
		snprintf(err, errlen, "token claim \"%s\" is not a list of strings", claim);
		return AL_E_AUTH;
	}
	int r = 0;
	if (*n + json_array_size(v) > OIDC_MAX_GROUPS) {
		snprintf(err, errlen, "token names more than %d groups", OIDC_MAX_GROUPS);
		r = AL_E_TOOBIG;
		goto out;
	}
	size_t i;
	const json_t *g;
	json_array_foreach(v, i, g)
	{
		const char *s = json_string_value(g);
		if (s == NULL || s[0] == '\0' || strlen(s) > OIDC_MAX_CLAIM) {
			snprintf(err, errlen,
			         "token claim \"%s\" has an element that is not a group name",
			         claim);
			r = AL_E_AUTH;
			goto out;
		}
		*list = xrealloc(*list, (*n + 1) * sizeof **list);
		(*list)[(*n)++] = xstrdup(s);
	}
out:
	json_decref((json_t *)v);
	return r;
}

static int
claim_str(const json_t *payload, const char *name, bool required, char *out, size_t outlen,
          char *err, size_t errlen)
{
	const json_t *v = json_object_get(payload, name);
	out[0] = '\0';
	if (v == NULL && !required)
		return 0;
	const char *s = json_string_value(v);
	if (s == NULL || s[0] == '\0' || strlen(s) >= outlen) {
		snprintf(err, errlen, "token claim \"%s\" is missing or not a short string", name);
		return AL_E_AUTH;
	}
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

int
oidc_user_from_claims(struct oidc *o, const json_t *payload, struct oidc_user *u, char *err,
                      size_t errlen)
{
	int r;
	memset(u, 0, sizeof *u);
	if ((r = claim_str(payload, "sub", true, u->sub, sizeof u->sub, err, errlen)) != 0 ||
	    (r = claim_str(payload, "iss", true, u->iss, sizeof u->iss, err, errlen)) != 0)
		goto out;
	/* email is informational (policy may name users by it); a malformed one is dropped */
	if (claim_str(payload, "email", false, u->email, sizeof u->email, err, errlen) != 0)
		u->email[0] = '\0';
	/* an unverified address is whatever the user typed at the IdP: never an identity */
	u->email_verified =
	    u->email[0] != '\0' && json_is_true(json_object_get(payload, "email_verified"));
	const json_t *exp = json_object_get(payload, "exp");
	u->exp = json_is_number(exp) ? (int64_t)json_number_value(exp) : 0;

	const json_t *groups = json_object_get(payload, o->groups_claim);
	const json_t *names = json_object_get(payload, "_claim_names");
	bool overage = groups == NULL && json_object_get(names, o->groups_claim) != NULL;
	if ((r = add_groups(groups, o->groups_claim, &u->groups, &u->ngroups, err, errlen)) != 0)
		goto out;
	if (strcmp(o->groups_claim, "roles") != 0 &&
	    (r = add_groups(json_object_get(payload, "roles"), "roles", &u->groups, &u->ngroups,
	                    err, errlen)) != 0)
		goto out;
	if (groups == NULL) {
		/* Entra ID past 200 groups sends a pointer to Graph instead; Google Workspace
		 * sends no groups at all: both come from the mapping file, and say so */
		const json_t *mapped = json_object_get(o->groups_map, u->sub);
		if (mapped == NULL && u->email_verified)
			mapped = json_object_get(o->groups_map, u->email);
		if (mapped != NULL) {
			if ((r = add_groups(mapped, "groups_file", &u->groups, &u->ngroups, err,
			                    errlen)) != 0)
				goto out;
			u->groups_from_file = true;
		} else {
			log_warn(
			    "signed-in user has no groups: the token has no groups claim and the "
			    "groups file does not list the user",
			    "sub", u->sub, "claim", o->groups_claim, "overage",
			    overage ? "true" : "false", "groups_file",
			    o->groups_file ? o->groups_file : "(none)");
		}
	}
	if (u->ngroups > 1) {
		qsort(u->groups, u->ngroups, sizeof *u->groups, cmp_str);
		size_t w = 1;
		for (size_t i = 1; i < u->ngroups; i++) {
			if (strcmp(u->groups[i], u->groups[w - 1]) == 0)
				free(u->groups[i]);
			else
				u->groups[w++] = u->groups[i];
		}
		u->ngroups = w;
	}
	r = 0;
out:
	if (r != 0)
		oidc_user_reset(u);
	return r;
}

/* ---- configuration ---- */

/* The host of an http(s) URL is a loopback address (where plain http is allowed). */
static bool
url_is_loopback_http(const char *url)
{
	if (strncmp(url, "http://", 7) != 0)
		return false;
	const char *h = url + 7, *end = h + strcspn(h, "/?#");
	size_t n = (size_t)(end - h);
	const char *colon = h[0] == '[' ? memchr(h, ']', n) : memchr(h, ':', n);
	size_t hostlen = colon ? (size_t)(colon - h) + (h[0] == '[') : n;
	if (hostlen == 9 && strncmp(h, "localhost", 9) == 0)
		return true;
	if (hostlen == 5 && strncmp(h, "[::1]", 5) == 0)
		return true;
	if (hostlen >= 9 && strncmp(h, "127.", 4) == 0) {
		for (size_t i = 4; i < hostlen; i++)
			if (!(h[i] == '.' || (h[i] >= '0' && h[i] <= '9')))
				return false;
		return true;
	}
	return false;
}

static bool
url_allowed(const char *url)
{
	return strncmp(url, "https://", 8) == 0 ? url[8] != '\0' && url[8] != '/'
	                                        : url_is_loopback_http(url);
}

static int
load_groups_file(struct oidc *o, char *err, size_t errlen)
{
	static const char *const top[] = {"users", NULL};
	struct cfg *c = &o->map_cfg;
	int r;
	const json_t *users = NULL;
	if ((r = cfg_load(c, o->groups_file)) != 0 || (r = cfg_only_keys(c, c->root, top)) != 0 ||
	    (r = cfg_get_map(c, c->root, "users", &users)) != 0)
		goto out;
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)users, k, v)
	{
		size_t i;
		const json_t *g;
		if (!json_is_array(v)) {
			r = cfg_error(c, v, "users.%s: a list of group names", k);
			goto out;
		}
		json_array_foreach(v, i, g)
		{
			if (!json_is_string(g) || json_string_length(g) == 0 ||
			    json_string_length(g) > OIDC_MAX_CLAIM) {
				r = cfg_error(c, g, "users.%s: group names are non-empty strings",
				              k);
				goto out;
			}
		}
	}
	o->groups_map = (json_t *)users;
	return 0;
out:
	snprintf(err, errlen, "%s", c->err);
	return r;
}

int
oidc_new(struct loop *l, const struct oidc_config *cfg, struct oidc **out, char *err, size_t errlen)
{
	int r = AL_E_INVAL;
	struct oidc *o = xcalloc(1, sizeof *o);
	o->loop = l;
	if (cfg->issuer == NULL || !url_allowed(cfg->issuer)) {
		snprintf(
		    err, errlen,
		    "identity.oidc.issuer: must be an https:// URL (http:// only on a loopback "
		    "address, for tests): %s",
		    cfg->issuer ? cfg->issuer : "(unset)");
		goto out;
	}
	if (cfg->audience == NULL || cfg->audience[0] == '\0') {
		snprintf(err, errlen,
		         "identity.oidc.audience: required with an issuer (the \"aud\" of tokens "
		         "meant for this server)");
		goto out;
	}
	o->issuer = xstrdup(cfg->issuer);
	o->audience = xstrdup(cfg->audience);
	o->groups_claim =
	    xstrdup(cfg->groups_claim && cfg->groups_claim[0] ? cfg->groups_claim : "groups");
	o->skew_s = cfg->skew_s ? cfg->skew_s : 60;
	o->refetch_min_ms = cfg->refetch_min_ms ? cfg->refetch_min_ms : 30000;
	o->refresh_ms = cfg->refresh_ms ? cfg->refresh_ms : 900000;
	o->backoff_ms = BACKOFF_MIN_MS;
	if (cfg->groups_file != NULL && cfg->groups_file[0] != '\0') {
		o->groups_file = xstrdup(cfg->groups_file);
		if ((r = load_groups_file(o, err, errlen)) != 0)
			goto out;
	}
	struct httpc_opts ho = {.ca_file = cfg->ca_file, .transport = HTTPC_CURL};
	if ((o->http = httpc_new(l, &ho)) == NULL) {
		snprintf(err, errlen, "identity.oidc: cannot start an HTTP client");
		r = AL_E_IO;
		goto out;
	}
	*out = o;
	o = NULL;
	r = 0;
out:
	oidc_free(o);
	return r;
}

void
oidc_free(struct oidc *o)
{
	if (o == NULL)
		return;
	httpc_free(o->http); /* cancels a fetch in flight without callbacks */
	loop_timer_cancel(o->loop, o->timer);
	while (o->waiters != NULL) {
		struct waiter *w = o->waiters;
		o->waiters = w->next;
		free(w);
	}
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		oidc_user_reset(&o->cache[i].user);
	jose_keyset_free(o->keys);
	cfg_free(&o->map_cfg);
	free(o->issuer);
	free(o->audience);
	free(o->groups_claim);
	free(o->groups_file);
	free(o->jwks_uri);
	free(o->authorization_endpoint);
	free(o->token_endpoint);
	free(o);
}

bool
oidc_ready(const struct oidc *o)
{
	return o != NULL && o->keys != NULL;
}

const char *
oidc_authorization_endpoint(const struct oidc *o)
{
	return o->authorization_endpoint;
}

const char *
oidc_token_endpoint(const struct oidc *o)
{
	return o->token_endpoint;
}

const char *
oidc_issuer(const struct oidc *o)
{
	return o->issuer;
}

void
oidc_get_stats(const struct oidc *o, struct oidc_stats *st)
{
	*st = o->st;
}

/* ---- fetching ---- */

static void
notify(struct oidc *o, int r)
{
	struct waiter *w = o->waiters;
	o->waiters = NULL;
	while (w != NULL) {
		struct waiter *next = w->next;
		w->cb(w->arg, r);
		free(w);
		w = next;
	}
}

static void
on_timer(struct loop *l, void *arg)
{
	struct oidc *o = arg;
	(void)l;
	o->timer = NULL;
	if (o->xfer != NULL)
		return;
	if (o->jwks_uri == NULL)
		fetch_discovery(o);
	else
		fetch_jwks(o);
}

static void
schedule(struct oidc *o, unsigned ms)
{
	loop_timer_cancel(o->loop, o->timer);
	o->timer = loop_timer_add(o->loop, ms, on_timer, o);
}

static void
failed(struct oidc *o, const char *what, const char *why)
{
	o->st.jwks_failures++;
	char next[24];
	snprintf(next, sizeof next, "%u", o->backoff_ms);
	log_warn(o->keys
	             ? "identity provider unreachable: keeping the keys already loaded"
	             : "identity provider unreachable: user tokens are refused until its keys load",
	         "fetch", what, "issuer", o->issuer, "error", why, "retry_ms", next);
	schedule(o, o->backoff_ms);
	o->backoff_ms = o->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : o->backoff_ms * 2;
	notify(o, AL_E_IO);
}

static int
start_get(struct oidc *o, const char *url, httpc_done_fn *done)
{
	static const char *const hdrs[] = {"Accept: application/json"};
	struct httpc_request req = {.url = url,
	                            .headers = hdrs,
	                            .nheaders = 1,
	                            .timeout_ms = 10000,
	                            .max_body = MAX_DOC,
	                            .on_done = done,
	                            .arg = o};
	return httpc_start(o->http, &req, &o->xfer);
}

static const char *
response_problem(const struct httpc_response *resp, char *buf, size_t len)
{
	if (resp->err != 0)
		snprintf(buf, len, "%s%s%s", al_strerror(resp->err), resp->errmsg[0] ? ": " : "",
		         resp->errmsg);
	else if (resp->status != 200)
		snprintf(buf, len, "HTTP status %d", resp->status);
	else
		return NULL;
	return buf;
}

static void
on_jwks(struct httpc_xfer *x, const struct httpc_response *resp, void *arg)
{
	struct oidc *o = arg;
	(void)x;
	o->xfer = NULL;
	char why[300];
	if (response_problem(resp, why, sizeof why) != NULL) {
		failed(o, "jwks", why);
		return;
	}
	struct jose_keyset *ks = NULL;
	if (jose_jwks_parse(resp->body.data, resp->body.len, &ks, why, sizeof why) != 0) {
		failed(o, "jwks", why);
		return;
	}
	jose_keyset_free(o->keys);
	o->keys = ks;
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		oidc_user_reset(&o->cache[i].user);
		o->cache[i].used = false;
	}
	o->backoff_ms = BACKOFF_MIN_MS;
	char n[16];
	snprintf(n, sizeof n, "%zu", jose_keyset_count(ks));
	log_info("identity provider keys loaded", "issuer", o->issuer, "keys", n);
	schedule(o, o->refresh_ms);
	notify(o, 0);
}

static void
fetch_jwks(struct oidc *o)
{
	o->st.jwks_fetches++;
	if (start_get(o, o->jwks_uri, on_jwks) != 0)
		failed(o, "jwks", "cannot start the request");
}

static void
on_discovery(struct httpc_xfer *x, const struct httpc_response *resp, void *arg)
{
	struct oidc *o = arg;
	(void)x;
	o->xfer = NULL;
	o->fetching_discovery = false;
	char why[300];
	if (response_problem(resp, why, sizeof why) != NULL) {
		failed(o, "discovery", why);
		return;
	}
	json_error_t je;
	json_t *doc = json_loadb(resp->body.data, resp->body.len, JSON_REJECT_DUPLICATES, &je);
	const char *iss = json_string_value(json_object_get(doc, "issuer"));
	const char *uri = json_string_value(json_object_get(doc, "jwks_uri"));
	if (iss == NULL || strcmp(iss, o->issuer) != 0) {
		/* OpenID Connect Discovery §4.3: the document must name exactly this issuer */
		snprintf(why, sizeof why, "discovery document names issuer \"%.200s\", not ours",
		         iss ? iss : "");
		json_decref(doc);
		failed(o, "discovery", why);
		return;
	}
	if (uri == NULL || !url_allowed(uri)) {
		snprintf(why, sizeof why,
		         "jwks_uri \"%.200s\" is not https:// (or loopback http://)",
		         uri ? uri : "");
		json_decref(doc);
		failed(o, "discovery", why);
		return;
	}
	free(o->jwks_uri);
	o->jwks_uri = xstrdup(uri);
	/* the endpoints a browser sign-in uses; held to the same scheme rule as the keys */
	const char *ae = json_string_value(json_object_get(doc, "authorization_endpoint"));
	const char *te = json_string_value(json_object_get(doc, "token_endpoint"));
	free(o->authorization_endpoint);
	free(o->token_endpoint);
	o->authorization_endpoint = ae && url_allowed(ae) ? xstrdup(ae) : NULL;
	o->token_endpoint = te && url_allowed(te) ? xstrdup(te) : NULL;
	json_decref(doc);
	fetch_jwks(o);
}

static void
fetch_discovery(struct oidc *o)
{
	char url[1024];
	size_t n = strlen(o->issuer);
	snprintf(url, sizeof url, "%.*s/.well-known/openid-configuration",
	         (int)(n > 0 && o->issuer[n - 1] == '/' ? n - 1 : n), o->issuer);
	o->fetching_discovery = true;
	if (start_get(o, url, on_discovery) != 0) {
		o->fetching_discovery = false;
		failed(o, "discovery", "cannot start the request");
	}
}

void
oidc_start(struct oidc *o)
{
	if (o->xfer == NULL)
		fetch_discovery(o);
}

int
oidc_refresh(struct oidc *o, void (*cb)(void *arg, int r), void *arg)
{
	if (o->xfer == NULL) {
		/* Only refetches that unknown kids cause are rate-limited, so the first token
		 * after a rotation is served at once, however recent the periodic fetch was. */
		uint64_t now = now_mono_ms();
		if (o->last_refetch_ms != 0 && now - o->last_refetch_ms < o->refetch_min_ms)
			return AL_E_AGAIN;
		o->last_refetch_ms = now;
		loop_timer_cancel(o->loop, o->timer);
		o->timer = NULL;
		if (o->jwks_uri == NULL)
			fetch_discovery(o);
		else
			fetch_jwks(o);
		if (o->xfer == NULL) /* failed at once; failed() rescheduled */
			return AL_E_IO;
	}
	struct waiter *w = xcalloc(1, sizeof *w);
	w->cb = cb;
	w->arg = arg;
	w->next = o->waiters;
	o->waiters = w;
	return 0;
}

void
oidc_forget(struct oidc *o, void *arg)
{
	for (struct waiter **p = &o->waiters; *p != NULL;) {
		if ((*p)->arg == arg) {
			struct waiter *w = *p;
			*p = w->next;
			free(w);
		} else {
			p = &(*p)->next;
		}
	}
}

/* ---- verification ---- */

bool
oidc_looks_like_jwt(const char *t)
{
	/* every JWS header is a JSON object, so its base64url starts with "eyJ" ('{"') */
	if (t == NULL || strncmp(t, "eyJ", 3) != 0)
		return false;
	const char *d1 = strchr(t, '.');
	return d1 != NULL && strchr(d1 + 1, '.') != NULL;
}

int
oidc_authenticate(struct oidc *o, const char *token, struct oidc_user *u, char *err, size_t errlen)
{
	int r;
	size_t len = strlen(token);
	json_t *payload = NULL;
	memset(u, 0, sizeof *u);
	if (o->keys == NULL) {
		snprintf(err, errlen, "the identity provider's keys are not loaded yet");
		return AL_E_AGAIN;
	}
	if (len > JOSE_MAX_TOKEN) {
		snprintf(err, errlen, "token is longer than %d bytes", JOSE_MAX_TOKEN);
		o->st.refused++;
		return AL_E_TOOBIG;
	}
	int64_t now = now_real_us() / 1000000;
	unsigned char h[32];
	sha256(token, len, h);
	struct cache_slot *slot = &o->cache[h[0]];
	if (slot->used && memcmp(slot->hash, h, sizeof h) == 0) {
		if (now < slot->user.exp + (int64_t)o->skew_s) {
			o->st.cache_hits++;
			oidc_user_copy(u, &slot->user);
			return 0;
		}
		snprintf(err, errlen, "token expired %lld s ago",
		         (long long)(now - slot->user.exp));
		o->st.refused++;
		return AL_E_AUTH;
	}

	if ((r = jose_verify(token, len, o->keys, JOSE_ALGS_ALL, &payload, err, errlen)) != 0)
		goto out;
	struct jose_claims_rules rules = {.iss = o->issuer,
	                                  .aud = o->audience,
	                                  .now = now,
	                                  .skew = o->skew_s,
	                                  .require_exp = true};
	if ((r = jose_check_claims(payload, &rules, err, errlen)) != 0 ||
	    (r = oidc_user_from_claims(o, payload, u, err, errlen)) != 0)
		goto out;
	o->st.verified++;
	oidc_user_reset(&slot->user);
	memcpy(slot->hash, h, sizeof h);
	oidc_user_copy(&slot->user, u);
	slot->used = true;
out:
	if (r != 0 && r != AL_E_NOTFOUND)
		o->st.refused++;
	json_decref(payload);
	return r;
}
