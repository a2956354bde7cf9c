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

static void
list_tunnels(struct api_call *c)
{
	struct page_req pg;
	const char *ia = query_get(&c->query, "include_archived");
	bool include_archived = false;
	if (api_page_parse(c, 20, 1000, true, &pg) != 0)
		return;
	if (ia) {
		if (strcmp(ia, "true") == 0)
			include_archived = true;
		else if (strcmp(ia, "false") != 0) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "include_archived: must be true or false");
			return;
		}
	}
	struct doc_list q = {.include_archived = include_archived,
	                     .has_cursor = pg.has_cursor,
	                     .after_seq = pg.after_seq,
	                     .limit = pg.limit,
	                     .desc = pg.desc};
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

const struct api_route tunnel_routes[] = {
    {"POST", "/v1/tunnels", CREDS_API, create_tunnel},
    {"GET", "/v1/tunnels", CREDS_API, list_tunnels},
    {"GET", "/v1/tunnels/{}", CREDS_API, get_tunnel},
    {"POST", "/v1/tunnels/{}/archive", CREDS_API, archive_tunnel},
    {"POST", "/v1/tunnels/{}/reveal_token", CREDS_API, reveal_token},
    {"POST", "/v1/tunnels/{}/rotate_token", CREDS_API, rotate_token},
    {"POST", "/v1/tunnels/{}/routes/{}/{*}", CREDS_API | API_RAW_BODY, ingress_any},
    {"GET", "/v1/tunnels/{}/routes/{}/{*}", CREDS_API | API_RAW_BODY, ingress_any},
    {"DELETE", "/v1/tunnels/{}/routes/{}/{*}", CREDS_API | API_RAW_BODY, ingress_any},
    {"PUT", "/v1/tunnels/{}/routes/{}/{*}", CREDS_API | API_RAW_BODY, ingress_any},
    {"PATCH", "/v1/tunnels/{}/routes/{}/{*}", CREDS_API | API_RAW_BODY, ingress_any},
    {NULL, NULL, 0, NULL},
};
