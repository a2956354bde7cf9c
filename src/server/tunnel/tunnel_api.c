/* The /v1/tunnels resources (beta mcp-tunnels-2026-06-22): create, list, get, archive,
 * reveal and rotate the connector token, plus the path-routed MCP ingress
 * /v1/tunnels/{id}/routes/{route}/<any path>. Shapes follow the SDK's BetaTunnel and
 * BetaTunnelToken; see docs/server/tunnels.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api.h"
#include "audit.h"
#include "err.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "tunnel.h"
#include "tunnel_cert.h"
#include "tunnel_proto.h"
#include "tunnel_store.h"
#include "util.h"
#include "validate.h"
#include "xalloc.h"

static json_t *
render(const struct tunnel_row *t)
{
	return json_pack(
	    "{s:s, s:s, s:o, s:s, s:o, s:o}", "type", "tunnel", "id", t->id, "display_name",
	    t->has_display_name ? json_string(t->display_name) : json_null(), "domain", t->domain,
	    "created_at", api_time(t->created_at), "archived_at", api_time(t->archived_at));
}

/* Loads one tunnel rendered; AL_E_NOTFOUND when absent. */
static int
load(struct db *db, const char *id, json_t **out, bool *archived)
{
	struct tunnel_row t;
	int r = tunnel_store_get(db, id, &t);
	if (r != 0)
		return r;
	*out = render(&t);
	if (archived)
		*archived = t.archived_at != 0;
	return 0;
}

static void
reply_not_found(struct api_call *c, const char *id)
{
	api_reply_error(c, 404, "not_found_error", NULL, "tunnel %s not found", id);
}

/* A random lower-case DNS label: tunnel ids are case-sensitive base58 and hostnames
 * are not, so the hostname carries its own label. */
static void
label_new(char out[17])
{
	unsigned char r[8];
	random_bytes(r, sizeof(r));
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static json_t *
token_json(const char *token_id, const char *token)
{
	return json_pack("{s:s, s:s, s:s}", "type", "tunnel_token", "id", token_id, "tunnel_token",
	                 token);
}

static void
create_tunnel(struct api_call *c)
{
	static const char *const allowed[] = {"display_name", NULL};
	const char *dn = NULL;
	char label[17], hash[65];
	char *id = NULL, *tok = NULL, *tok_id = NULL, *domain = NULL;
	json_t *o = NULL;
	int r;
	if (api_body_only(c, allowed))
		return;
	if (c->body) {
		json_t *v = json_object_get(c->body, "display_name");
		if (v && !json_is_null(v)) {
			if (!json_is_string(v) || json_string_length(v) < 1 ||
			    json_string_length(v) > 255) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "display_name: must be a string of 1 to 255 "
				                "characters");
				return;
			}
			dn = json_string_value(v);
		}
	}
	id = id_new("tnl_");
	tok = token_new(TUNNEL_TOKEN_PREFIX);
	tok_id = id_new("tntok_");
	label_new(label);
	domain = xasprintf("%s.%s", label, tunnel_domain(c->srv));
	sha256_hex(tok, strlen(tok), hash);
	struct db *db = c->srv->db;
	struct tunnel_new t = {.id = id,
	                       .display_name = dn,
	                       .domain = domain,
	                       .created_at = now_real_us(),
	                       .token_id = tok_id,
	                       .token = tok,
	                       .token_hash = hash};
	if ((r = tunnel_store_insert(db, &t)) != 0)
		goto out;
	if ((r = load(db, id, &o, NULL)) != 0)
		goto out;
	log_info("tunnel created", "tunnel_id", id, "domain", domain);
	audit_api(c, "tunnel.token.create", NULL, "ok",
	          json_pack("{s:s, s:s}", "tunnel_id", id, "token_id", tok_id));
out:
	if (r == 0)
		api_reply_json(c, 200, o);
	else
		api_reply_err(c, r, "cannot create tunnel");
	free(id);
	secret_free(tok);
	free(tok_id);
	free(domain);
}

static void
get_tunnel(struct api_call *c)
{
	json_t *o = NULL;
	int r = load(c->srv->db, c->params[0], &o, NULL);
	if (r == AL_E_NOTFOUND)
		reply_not_found(c, c->params[0]);
	else if (r != 0)
		api_reply_err(c, r, "cannot load tunnel");
	else
		api_reply_json(c, 200, o);
}

/* Collects a store's rows into a page (validate_page_json renders it). */
static int
list_add(void *arg, const struct tunnel_row *t)
{
	struct doc_page *page = arg;
	json_array_append_new(page->data, render(t));
	page->last_seq = t->seq;
	return 0;
}

/* The page a list route asks for: limit, cursor, order and ?include_archived=true|false
 * (default false). Answers 400 itself and returns -1. */
static int
list_query(struct api_call *c, struct page_req *pg, struct doc_list *q)
{
	if (api_page_parse(c, 20, 1000, true, pg) != 0)
		return -1;
	const char *ia = query_get(&c->query, "include_archived");
	bool yes = ia != NULL && strcmp(ia, "true") == 0;
	if (ia && !yes && strcmp(ia, "false") != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "include_archived: must be true or false");
		return -1;
	}
	*q = (struct doc_list){.include_archived = yes,
	                       .has_cursor = pg->has_cursor,
	                       .after_seq = pg->after_seq,
	                       .limit = pg->limit,
	                       .desc = pg->desc};
	return 0;
}

static void
list_tunnels(struct api_call *c)
{
	struct page_req pg;
	struct doc_list q;
	if (list_query(c, &pg, &q) != 0)
		return;
	struct doc_page page = {.data = json_array()};
	if (tunnel_store_list(c->srv->db, &q, list_add, &page, &page.more) != 0) {
		doc_page_free(&page);
		api_reply_err(c, AL_E_IO, "cannot list tunnels");
		return;
	}
	api_reply_json(c, 200, validate_page_json(&page, pg.desc));
}

static void
archive_tunnel(struct api_call *c)
{
	struct db *db = c->srv->db;
	json_t *o = NULL;
	bool archived = false;
	int r = load(db, c->params[0], &o, &archived);
	if (r == AL_E_NOTFOUND) {
		reply_not_found(c, c->params[0]);
		return;
	}
	if (r != 0) {
		api_reply_err(c, r, "cannot load tunnel");
		return;
	}
	if (archived) { /* idempotent: the existing record, unchanged */
		api_reply_json(c, 200, o);
		return;
	}
	json_decref(o);
	o = NULL;
	/* The token is wiped too: an archived tunnel's token is dead for good. */
	r = tunnel_store_archive(db, c->params[0], now_real_us());
	if (r == 0)
		r = load(db, c->params[0], &o, NULL);
	if (r != 0) {
		api_reply_err(c, r, "cannot archive tunnel");
		return;
	}
	tunnel_edge_close_tunnel(c->srv, c->params[0]);
	log_info("tunnel archived", "tunnel_id", c->params[0]);
	audit_api(c, "tunnel.archive", NULL, "ok", json_pack("{s:s}", "tunnel_id", c->params[0]));
	api_reply_json(c, 200, o);
}

static void
reveal_token(struct api_call *c)
{
	char tok_id[80];
	char *tok = NULL;
	bool archived = false;
	int r =
	    tunnel_store_token(c->srv->db, c->params[0], tok_id, sizeof(tok_id), &tok, &archived);
	if (r == AL_E_NOTFOUND) {
		reply_not_found(c, c->params[0]);
		return;
	}
	if (r != 0) {
		api_reply_err(c, AL_E_IO, "cannot load tunnel");
		return;
	}
	if (archived) {
		secret_free(tok);
		api_reply_error(c, 409, "invalid_request_error", "tunnel_archived",
		                "tunnel %s is archived", c->params[0]);
		return;
	}
	json_t *o = token_json(tok_id, tok);
	secret_free(tok);
	/* Audit: who revealed, never the value. */
	log_info("tunnel token revealed", "tunnel_id", c->params[0], "key_id", c->who.key_id);
	audit_api(c, "tunnel.token.reveal", NULL, "ok",
	          json_pack("{s:s, s:s}", "tunnel_id", c->params[0], "token_id", tok_id));
	api_reply_json(c, 200, o);
}

static void
rotate_token(struct api_call *c)
{
	static const char *const allowed[] = {"reason", NULL};
	const char *reason = NULL;
	struct db *db = c->srv->db;
	char hash[65];
	if (api_body_only(c, allowed))
		return;
	if (c->body) {
		json_t *v = json_object_get(c->body, "reason");
		if (v && !json_is_null(v)) {
			if (!json_is_string(v) || json_string_length(v) > 1024) {
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "reason: must be a string of at most 1024 "
				                "characters");
				return;
			}
			reason = json_string_value(v);
		}
	}
	bool archived = false;
	json_t *o = NULL;
	int r = load(db, c->params[0], &o, &archived);
	json_decref(o);
	if (r == AL_E_NOTFOUND) {
		reply_not_found(c, c->params[0]);
		return;
	}
	if (r == 0 && archived) {
		api_reply_error(c, 409, "invalid_request_error", "tunnel_archived",
		                "tunnel %s is archived", c->params[0]);
		return;
	}
	char *tok = token_new(TUNNEL_TOKEN_PREFIX);
	char *tok_id = id_new("tntok_");
	sha256_hex(tok, strlen(tok), hash);
	/* Only the new hash is stored: the old token opens no new connection from now
	 * on. Established connections were authenticated once and are left alone. */
	if (r == 0)
		r = tunnel_store_rotate(db, c->params[0], tok_id, tok, hash, now_real_us());
	if (r != 0)
		api_reply_err(c, r, "cannot rotate token");
	else {
		log_info("tunnel token rotated", "tunnel_id", c->params[0], "key_id", c->who.key_id,
		         "token_id", tok_id, "reason", reason ? reason : "");
		audit_api(c, "tunnel.token.rotate", NULL, "ok",
		          json_pack("{s:s, s:s, s:s?}", "tunnel_id", c->params[0], "token_id",
		                    tok_id, "reason", reason));
		api_reply_json(c, 200, token_json(tok_id, tok));
	}
	secret_free(tok);
	free(tok_id);
}

/* ---- /v1/tunnels/{id}/certificates: the customer CAs inner TLS trusts ---- */

static json_t *
render_cert(const struct tunnel_cert_row *r)
{
	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:o}", "type", "tunnel_certificate", "id",
	                 r->id, "tunnel_id", r->tunnel_id, "created_at", api_time(r->created_at),
	                 "expires_at", api_time(r->expires_at), "fingerprint", r->fingerprint,
	                 "archived_at", api_time(r->archived_at));
}

static void
reply_cert_not_found(struct api_call *c, const char *id)
{
	api_reply_error(c, 404, "not_found_error", NULL, "tunnel certificate %s not found", id);
}

/* The tunnel of a sub-route (certificates, connections) exists (archived ones too: their
 * certificates stay readable); answers 404 itself and returns false otherwise. */
static bool
tunnel_found(struct api_call *c)
{
	struct tunnel_row t;
	int r = tunnel_store_get(c->srv->db, c->params[0], &t);
	if (r == AL_E_NOTFOUND)
		reply_not_found(c, c->params[0]);
	else if (r != 0)
		api_reply_err(c, r, "cannot load tunnel");
	return r == 0;
}

static void
create_cert(struct api_call *c)
{
	static const char *const allowed[] = {"ca_certificate_pem", NULL};
	struct tunnel_cert_info info;
	struct tunnel_cert_row row;
	enum tunnel_cert_refusal why;
	char err[256];
	char *id = NULL;
	if (api_body_only(c, allowed))
		return;
	json_t *v = c->body ? json_object_get(c->body, "ca_certificate_pem") : NULL;
	if (v == NULL || !json_is_string(v)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "ca_certificate_pem: required, a PEM-encoded CA certificate");
		return;
	}
	if (!tunnel_found(c))
		return;
	if (tunnel_cert_check(json_string_value(v), json_string_length(v), now_real_us() / 1000000,
	                      &info, err, sizeof(err)) != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "%s", err);
		return;
	}
	id = id_new("tcrt_");
	struct tunnel_cert_new n = {.id = id,
	                            .tunnel_id = c->params[0],
	                            .pem = json_string_value(v),
	                            .fingerprint = info.fingerprint,
	                            .expires_at = info.not_after_us,
	                            .created_at = now_real_us()};
	int r = tunnel_store_cert_insert(c->srv->db, &n, &why);
	if (r == 0)
		r = tunnel_store_cert_get(c->srv->db, c->params[0], id, &row);
	if (r == AL_E_CONFLICT && why == TUNNEL_CERT_TUNNEL_ARCHIVED)
		api_reply_error(c, 409, "invalid_request_error", "tunnel_archived",
		                "tunnel %s is archived", c->params[0]);
	else if (r == AL_E_CONFLICT && why == TUNNEL_CERT_DUPLICATE)
		api_reply_error(c, 409, "invalid_request_error", NULL,
		                "certificate %s is already registered on tunnel %s",
		                info.fingerprint, c->params[0]);
	else if (r == AL_E_CONFLICT)
		api_reply_error(c, 409, "invalid_request_error", NULL,
		                "tunnel %s already has %d active certificates; archive one first",
		                c->params[0], TUNNEL_CERTS_LIVE_MAX);
	else if (r == AL_E_NOTFOUND)
		reply_not_found(c, c->params[0]);
	else if (r != 0)
		api_reply_err(c, r, "cannot store certificate");
	else {
		tunnel_inner_forget(c->srv, c->params[0]);
		log_info("tunnel certificate added", "tunnel_id", c->params[0], "certificate_id",
		         id, "fingerprint", info.fingerprint);
		audit_api(c, "tunnel.certificate.create", NULL, "ok",
		          json_pack("{s:s, s:s, s:s}", "tunnel_id", c->params[0], "certificate_id",
		                    id, "fingerprint", info.fingerprint));
		api_reply_json(c, 200, render_cert(&row));
	}
	free(id);
}

static void
get_cert(struct api_call *c)
{
	struct tunnel_cert_row row;
	int r = tunnel_store_cert_get(c->srv->db, c->params[0], c->params[1], &row);
	if (r == AL_E_NOTFOUND)
		reply_cert_not_found(c, c->params[1]);
	else if (r != 0)
		api_reply_err(c, r, "cannot load certificate");
	else
		api_reply_json(c, 200, render_cert(&row));
}

static int
cert_list_add(void *arg, const struct tunnel_cert_row *r)
{
	struct doc_page *page = arg;
	json_array_append_new(page->data, render_cert(r));
	page->last_seq = r->seq;
	return 0;
}

static void
list_certs(struct api_call *c)
{
	struct page_req pg;
	struct doc_list q;
	if (list_query(c, &pg, &q) != 0)
		return;
	if (!tunnel_found(c))
		return;
	struct doc_page page = {.data = json_array()};
	if (tunnel_store_cert_list(c->srv->db, c->params[0], &q, cert_list_add, &page,
	                           &page.more) != 0) {
		doc_page_free(&page);
		api_reply_err(c, AL_E_IO, "cannot list certificates");
		return;
	}
	api_reply_json(c, 200, validate_page_json(&page, pg.desc));
}

static void
archive_cert(struct api_call *c)
{
	struct tunnel_cert_row row;
	struct db *db = c->srv->db;
	int r = tunnel_store_cert_get(db, c->params[0], c->params[1], &row);
	if (r == AL_E_NOTFOUND) {
		reply_cert_not_found(c, c->params[1]);
		return;
	}
	if (r == 0 && row.archived_at == 0) {
		r = tunnel_store_cert_archive(db, c->params[0], c->params[1], now_real_us());
		if (r == 0)
			r = tunnel_store_cert_get(db, c->params[0], c->params[1], &row);
		if (r == 0) {
			tunnel_inner_forget(c->srv, c->params[0]);
			/* New inner TLS sessions stop trusting it now; a stream already open
			 * was verified once and runs to its end, as with token rotation. */
			log_info("tunnel certificate archived", "tunnel_id", c->params[0],
			         "certificate_id", c->params[1]);
			audit_api(c, "tunnel.certificate.archive", NULL, "ok",
			          json_pack("{s:s, s:s}", "tunnel_id", c->params[0],
			                    "certificate_id", c->params[1]));
		}
	}
	if (r != 0)
		api_reply_err(c, r, "cannot archive certificate");
	else
		api_reply_json(c, 200, render_cert(&row));
}

/* Path-routed ingress on the API port: the client's MCP URL is
 * <base>/v1/tunnels/{id}/routes/{route}/<path> and the upstream sees /<path> (any path,
 * query included). The upstream path is taken from the raw request target, not from
 * the decoded capture: decoding would turn %2F into a separator and %3F into a query. */
static void
ingress_any(struct api_call *c)
{
	char *needle = xasprintf("/routes/%s/", c->params[1]);
	const char *t = c->http->target;
	const char *at = strncmp(t, "/v1/tunnels/", 12) == 0 ? strstr(t + 12, needle) : NULL;
	if (at == NULL) { /* id or route percent-encoded: not a name we ever issue */
		free(needle);
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "tunnel id and route must not be percent-encoded");
		return;
	}
	char *path = xasprintf("/%s", at + strlen(needle));
	free(needle);
	tunnel_ingress_forward(c->srv, c->http, c, c->params[0], c->params[1], path);
	free(path);
}

/* airlock's own: who is connected now, from the edge's memory (nothing is stored), for
 * the console's tunnels page. One page always: a tunnel has a few connections. */
static void
list_connections(struct api_call *c)
{
	if (!tunnel_found(c))
		return;
	api_reply_json(c, 200,
	               json_pack("{s:o, s:n, s:b}", "data",
	                         tunnel_edge_connections(c->srv, c->params[0]), "next_page",
	                         "edge_running", c->srv->tunnel != NULL));
}

const struct api_route tunnel_routes[] = {
    {"POST", "/v1/tunnels", CREDS_API, create_tunnel},
    {"GET", "/v1/tunnels", CREDS_API, list_tunnels},
    {"GET", "/v1/tunnels/{}", CREDS_API, get_tunnel},
    {"GET", "/v1/tunnels/{}/connections", CREDS_API, list_connections},
    {"POST", "/v1/tunnels/{}/archive", CREDS_API, archive_tunnel},
    {"POST", "/v1/tunnels/{}/reveal_token", CREDS_API, reveal_token},
    {"POST", "/v1/tunnels/{}/rotate_token", CREDS_API, rotate_token},
    {"POST", "/v1/tunnels/{}/certificates", CREDS_API, create_cert},
    {"GET", "/v1/tunnels/{}/certificates", CREDS_API, list_certs},
    {"GET", "/v1/tunnels/{}/certificates/{}", CREDS_API, get_cert},
    {"POST", "/v1/tunnels/{}/certificates/{}/archive", CREDS_API, archive_cert},
    {"POST", "/v1/tunnels/{}/routes/{}/{*}", CREDS_API | API_RAW_BODY, ingress_any},
    {"GET", "/v1/tunnels/{}/routes/{}/{*}", CREDS_API | API_RAW_BODY, ingress_any},
    {"DELETE", "/v1/tunnels/{}/routes/{}/{*}", CREDS_API | API_RAW_BODY, ingress_any},
    {"PUT", "/v1/tunnels/{}/routes/{}/{*}", CREDS_API | API_RAW_BODY, ingress_any},
    {"PATCH", "/v1/tunnels/{}/routes/{}/{*}", CREDS_API | API_RAW_BODY, ingress_any},
    {NULL, NULL, 0, NULL},
};
