/* The /v1/tunnels resources (beta mcp-tunnels-2026-06-22): create, list, get, archive,
 * reveal and rotate the connector token, plus the path-routed MCP ingress
 * /v1/tunnels/{id}/routes/{route}/<any path>. Shapes follow the SDK's BetaTunnel and
 * BetaTunnelToken; see docs/server/tunnels.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api.h"
#include "err.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "tunnel.h"
#include "tunnel_proto.h"
#include "util.h"
#include "xalloc.h"

#define TUNNEL_COLS "id, seq, display_name, domain, created_at, archived_at"

static json_t *
render(sqlite3_stmt *st)
{
	const char *dn = db_col_text(st, 2);
	return json_pack(
	    "{s:s, s:s, s:o, s:s, s:o, s:o}", "type", "tunnel", "id", db_col_text(st, 0),
	    "display_name", dn ? json_string(dn) : json_null(), "domain", db_col_text(st, 3),
	    "created_at", api_time(sqlite3_column_int64(st, 4)), "archived_at",
	    api_time(sqlite3_column_type(st, 5) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 5)));
}

/* Loads one tunnel rendered; AL_E_NOTFOUND when absent. */
static int
load(struct db *db, const char *id, json_t **out, bool *archived)
{
	sqlite3_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db, "SELECT " TUNNEL_COLS " FROM tunnels WHERE id = ?", &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = render(st);
		if (archived)
			*archived = sqlite3_column_type(st, 5) != SQLITE_NULL;
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
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
	sqlite3_stmt *st = NULL;
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
	if ((r = db_begin(db)) != 0)
		goto out;
	int64_t seq = db_next_seq(db, "tunnels");
	if (seq < 0 ||
	    db_prepare(db,
	               "INSERT INTO tunnels (id, seq, display_name, domain, created_at, token_id, "
	               "token, token_hash) VALUES (?,?,?,?,?,?,?,?)",
	               &st) != 0) {
		db_rollback(db);
		r = AL_E_IO;
		goto out;
	}
	db_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, seq);
	db_bind_text(st, 3, dn);
	db_bind_text(st, 4, domain);
	sqlite3_bind_int64(st, 5, now_real_us());
	db_bind_text(st, 6, tok_id);
	db_bind_text(st, 7, tok);
	db_bind_text(st, 8, hash);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_rollback(db);
		r = AL_E_IO;
		goto out;
	}
	if ((r = db_commit(db)) != 0)
		goto out;
	if ((r = load(db, id, &o, NULL)) != 0)
		goto out;
	log_info("tunnel created", "tunnel_id", id, "domain", domain);
out:
	sqlite3_finalize(st);
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

static void
list_tunnels(struct api_call *c)
{
	struct page_req pg;
	sqlite3_stmt *st = NULL;
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
	char sql[512];
	snprintf(sql, sizeof(sql),
	         "SELECT " TUNNEL_COLS " FROM tunnels WHERE (? OR archived_at IS NULL) "
	         "AND (? = 0 OR seq %s ?) ORDER BY seq %s LIMIT ?",
	         pg.desc ? "<" : ">", pg.desc ? "DESC" : "ASC");
	if (db_prepare(c->srv->db, sql, &st) != 0) {
		api_reply_err(c, AL_E_IO, "cannot list tunnels");
		return;
	}
	sqlite3_bind_int(st, 1, include_archived);
	sqlite3_bind_int(st, 2, pg.has_cursor);
	sqlite3_bind_int64(st, 3, pg.after_seq);
	sqlite3_bind_int(st, 4, (int)pg.limit + 1);
	json_t *data = json_array();
	int64_t last = 0;
	bool more = false;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (json_array_size(data) == pg.limit) {
			more = true;
			break;
		}
		json_array_append_new(data, render(st));
		last = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	json_t *next = json_null();
	if (more) {
		char *cur = api_page_cursor(last, pg.desc);
		next = json_string(cur);
		free(cur);
	}
	api_reply_json(c, 200, json_pack("{s:o, s:o}", "data", data, "next_page", next));
}

static void
archive_tunnel(struct api_call *c)
{
	struct db *db = c->srv->db;
	sqlite3_stmt *st = NULL;
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
	/* The token column is wiped too: an archived tunnel's token is dead for good. */
	if (db_prepare(
	        db,
	        "UPDATE tunnels SET archived_at = ?, token = '', token_hash = 'archived:' || id "
	        "WHERE id = ? AND archived_at IS NULL",
	        &st) != 0) {
		api_reply_err(c, AL_E_IO, "cannot archive tunnel");
		return;
	}
	sqlite3_bind_int64(st, 1, now_real_us());
	db_bind_text(st, 2, c->params[0]);
	r = sqlite3_step(st) == SQLITE_DONE ? 0 : AL_E_IO;
	sqlite3_finalize(st);
	if (r == 0)
		r = load(db, c->params[0], &o, NULL);
	if (r != 0) {
		api_reply_err(c, r, "cannot archive tunnel");
		return;
	}
	tunnel_edge_close_tunnel(c->srv, c->params[0]);
	log_info("tunnel archived", "tunnel_id", c->params[0]);
	api_reply_json(c, 200, o);
}

static void
reveal_token(struct api_call *c)
{
	sqlite3_stmt *st = NULL;
	if (db_prepare(c->srv->db, "SELECT token_id, token, archived_at FROM tunnels WHERE id = ?",
	               &st) != 0) {
		api_reply_err(c, AL_E_IO, "cannot load tunnel");
		return;
	}
	db_bind_text(st, 1, c->params[0]);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		reply_not_found(c, c->params[0]);
		return;
	}
	if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
		sqlite3_finalize(st);
		api_reply_error(c, 409, "invalid_request_error", "tunnel_archived",
		                "tunnel %s is archived", c->params[0]);
		return;
	}
	json_t *o = token_json(db_col_text(st, 0), db_col_text(st, 1));
	sqlite3_finalize(st);
	/* Audit: who revealed, never the value. */
	log_info("tunnel token revealed", "tunnel_id", c->params[0], "key_id", c->who.key_id);
	api_reply_json(c, 200, o);
}

static void
rotate_token(struct api_call *c)
{
	static const char *const allowed[] = {"reason", NULL};
	const char *reason = NULL;
	struct db *db = c->srv->db;
	sqlite3_stmt *st = NULL;
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
	if (r == 0 && db_prepare(db,
	                         "UPDATE tunnels SET token_id = ?, token = ?, token_hash = ?, "
	                         "rotated_at = ? WHERE id = ? AND archived_at IS NULL",
	                         &st) != 0)
		r = AL_E_IO;
	if (r == 0) {
		db_bind_text(st, 1, tok_id);
		db_bind_text(st, 2, tok);
		db_bind_text(st, 3, hash);
		sqlite3_bind_int64(st, 4, now_real_us());
		db_bind_text(st, 5, c->params[0]);
		r = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db->h) == 1 ? 0 : AL_E_IO;
	}
	sqlite3_finalize(st);
	if (r != 0)
		api_reply_err(c, r, "cannot rotate token");
	else {
		log_info("tunnel token rotated", "tunnel_id", c->params[0], "key_id", c->who.key_id,
		         "token_id", tok_id, "reason", reason ? reason : "");
		api_reply_json(c, 200, token_json(tok_id, tok));
	}
	secret_free(tok);
	free(tok_id);
}

int
tunnel_token_lookup(struct server *s, const char *token, char *tunnel_id, size_t len)
{
	char hash[65];
	sqlite3_stmt *st = NULL;
	int r = AL_E_AUTH;
	size_t tl = strlen(token);
	if (tl < strlen(TUNNEL_TOKEN_PREFIX) + 16 || tl > 256 ||
	    strncmp(token, TUNNEL_TOKEN_PREFIX, strlen(TUNNEL_TOKEN_PREFIX)) != 0)
		return AL_E_AUTH;
	sha256_hex(token, tl, hash);
	if (db_prepare(s->db, "SELECT id FROM tunnels WHERE token_hash = ? AND archived_at IS NULL",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, hash);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(tunnel_id, len, "%s", db_col_text(st, 0));
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

int
tunnel_resolve_host(struct server *s, const char *host, char *tunnel_id, char *route)
{
	sqlite3_stmt *st = NULL;
	char h[256];
	int r = AL_E_NOTFOUND;
	size_t hl = strlen(host);
	if (hl == 0 || hl >= sizeof(h))
		return AL_E_NOTFOUND;
	/* Lower-case and drop the port. */
	for (size_t i = 0; i <= hl; i++)
		h[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] + 32 : host[i]);
	char *colon = strrchr(h, ':');
	if (colon && h[0] != '[')
		*colon = '\0';
	char *dot = strchr(h, '.');
	if (dot == NULL || dot == h || (size_t)(dot - h) >= 64)
		return AL_E_NOTFOUND;
	*dot = '\0';
	if (db_prepare(s->db, "SELECT id FROM tunnels WHERE domain = ? AND archived_at IS NULL",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, dot + 1);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(tunnel_id, 80, "%s", db_col_text(st, 0));
		memcpy(route, h, (size_t)(dot - h) + 1); /* < 64, checked above */
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
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
