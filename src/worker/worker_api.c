/* Authenticated calls from the worker to the API (work-protocol.md §2.3): bearer
 * credential, beta header, JSON bodies in and out; status classification for retries;
 * the work-secret decoder. Credentials appear only in the Authorization header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"
#include "worker.h"
#include "xalloc.h"

#define WAPI_MAX_RESPONSE (16u * 1024 * 1024) /* event history pages of 1000 events */

struct wapi_ctx {
	wapi_done_fn *done;
	httpc_head_fn *on_head;
	httpc_data_fn *on_data;
	void *arg;
};

static int
on_head(struct httpc_xfer *x, int status, void *arg)
{
	struct wapi_ctx *c = arg;
	return c->on_head ? c->on_head(x, status, c->arg) : 0;
}

static int
on_data(struct httpc_xfer *x, const char *p, size_t n, void *arg)
{
	struct wapi_ctx *c = arg;
	return c->on_data(x, p, n, c->arg);
}

/* The transport's reason for the transfer whose done callback is running (one loop
 * thread; set just before and cleared right after the callback). */
static char transfer_error[320];

static void
on_done(struct httpc_xfer *x, const struct httpc_response *resp, void *arg)
{
	struct wapi_ctx *c = arg;
	json_t *body = NULL;
	if (resp->err == 0 && resp->body.len > 0)
		body = json_loadb(resp->body.data, resp->body.len, 0, NULL);
	wapi_done_fn *done = c->done;
	void *darg = c->arg;
	free(c);
	if (resp->err != 0)
		(void)snprintf(transfer_error, sizeof(transfer_error), "%s%s%s",
		               al_strerror(resp->err), resp->errmsg[0] ? ": " : "", resp->errmsg);
	done(darg, resp->err == 0 ? resp->status : 0, resp->err, body);
	transfer_error[0] = '\0';
	json_decref(body);
}

/* A cancelled transfer (a session closing, shutdown) never sees on_done. */
static void
on_release(void *arg)
{
	free(arg);
}

int
wapi_call(struct worker *w, const struct wapi_req *r, struct httpc_xfer **out)
{
	int rc = AL_E_INTERNAL;
	char *url = xasprintf("%s%s", w->cfg.base_url, r->path);
	char *auth = xasprintf("Authorization: Bearer %s", r->cred ? r->cred : "");
	char *wid = r->worker_id ? xasprintf("Anthropic-Worker-ID: %s", r->worker_id) : NULL;
	char *body = r->body ? json_dumps(r->body, JSON_COMPACT) : NULL;
	const char *hdrs[6];
	size_t n = 0;
	hdrs[n++] = auth;
	hdrs[n++] = "anthropic-version: 2023-06-01";
	hdrs[n++] = "anthropic-beta: managed-agents-2026-04-01";
	hdrs[n++] = "Accept: application/json";
	if (body)
		hdrs[n++] = "Content-Type: application/json";
	if (wid)
		hdrs[n++] = wid;
	struct wapi_ctx *c = xcalloc(1, sizeof(*c));
	c->done = r->done;
	c->on_head = r->on_head;
	c->on_data = r->on_data;
	c->arg = r->arg;
	struct httpc_request hr = {
	    .method = r->method,
	    .url = url,
	    .headers = hdrs,
	    .nheaders = n,
	    .body = body,
	    .body_len = body ? strlen(body) : 0,
	    .timeout_ms = r->timeout_ms,
	    .idle_timeout_s = r->idle_timeout_s,
	    .max_body = WAPI_MAX_RESPONSE,
	    .on_head = r->on_head ? on_head : NULL,
	    .on_data = r->on_data ? on_data : NULL,
	    .on_done = on_done,
	    .on_release = on_release,
	    .arg = c,
	};
	rc = httpc_start(w->http, &hr, out);
	if (rc != 0)
		free(c);
	free(url);
	secret_free(auth);
	free(wid);
	secret_free(body); /* may hold tool output */
	return rc;
}

bool
wapi_retryable(int status, int err)
{
	if (status == 0 || err != 0)
		return true;
	return status == 408 || status == 409 || status == 429 || status >= 500;
}

bool
wapi_fatal(int status, int err)
{
	return err == 0 && status >= 400 && status < 500 && !wapi_retryable(status, err);
}

char *
wapi_sessions_token(const char *secret, size_t len)
{
	unsigned char *raw = NULL;
	size_t rlen = 0;
	char *tok = NULL;
	json_t *j = NULL;
	if (secret == NULL || len == 0 || len > 64 * 1024)
		return NULL;
	/* base64_decode_any takes both alphabets and optional padding */
	if (base64_decode_any(secret, len, &raw, &rlen) != 0)
		return NULL;
	j = json_loadb((const char *)raw, rlen, JSON_REJECT_DUPLICATES, NULL);
	explicit_wipe(raw, rlen);
	free(raw);
	if (json_is_object(j)) {
		json_t *t = json_object_get(j, "sessions_token");
		if (json_is_string(t) && json_string_length(t) > 0 &&
		    strlen(json_string_value(t)) == json_string_length(t))
			tok = xstrdup(json_string_value(t));
		if (json_is_string(t))
			explicit_wipe((void *)json_string_value(t), json_string_length(t));
	}
	json_decref(j);
	return tok;
}

int
wapi_secret_networking(const char *secret, size_t len, struct egress_env *out, char *err,
                       size_t errlen)
{
	unsigned char *raw = NULL;
	size_t rlen = 0;
	json_t *j = NULL;
	int r = 0;
	memset(out, 0, sizeof(*out));
	if (secret == NULL || len == 0 || len > 64 * 1024 ||
	    base64_decode_any(secret, len, &raw, &rlen) != 0)
		return 0;
	j = json_loadb((const char *)raw, rlen, JSON_REJECT_DUPLICATES, NULL);
	explicit_wipe(raw, rlen);
	free(raw);
	if (json_is_object(j))
		r = egress_env_parse(json_object_get(j, "networking"), "networking", out, err,
		                     errlen);
	json_t *t = json_object_get(j, "sessions_token");
	if (json_is_string(t))
		explicit_wipe((void *)json_string_value(t), json_string_length(t));
	json_decref(j);
	return r;
}

uint64_t
wapi_jitter(uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	uint64_t r;
	random_bytes(&r, sizeof(r));
	return lo + r % (hi - lo + 1);
}

const char *
wapi_error_text(int err, json_t *body)
{
	if (err == 0)
		return wapi_error_message(body);
	return transfer_error[0] ? transfer_error : al_strerror(err);
}

void
wapi_status_str(int status, char *buf, size_t len)
{
	if (status == 0)
		snprintf(buf, len, "none (no answer)");
	else
		snprintf(buf, len, "%d", status);
}

const char *
wapi_error_hint(int err)
{
	if (err == 0)
		return "";
	if (strstr(transfer_error, "certificate") != NULL || strstr(transfer_error, "TLS") != NULL)
		return "give --ca-file FILE (or AIRLOCK_CA_FILE) with the CA that signed the "
		       "server's certificate";
	if (strstr(transfer_error, "refused") != NULL)
		return "nothing listens there: is the server running, and is --base-url right?";
	return "";
}

const char *
wapi_error_message(json_t *body)
{
	const char *m =
	    json_string_value(json_object_get(json_object_get(body, "error"), "message"));
	return m ? m : "";
}
