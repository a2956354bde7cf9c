/* /v1/sessions/{id}/resources: the session's resources after creation (SDK 1.14
 * `client.beta.sessions.resources`). Files are added, listed, read and removed here;
 * memory stores are attached at creation (sessions.c) and may be read and removed here;
 * github_repository resources wait for worker egress. The resources live in the
 * session's document, so a sessions token sees exactly what its worker must mount.
 * docs/server/resources.md "Session resources". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "db.h"
#include "err.h"
#include "file_store.h"
#include "log.h"
#include "memory_store.h"
#include "routes.h"
#include "server.h"
#include "session_store.h"
#include "util.h"
#include "validate.h"
#include "xalloc.h"

#define RES_MAX 8          /* resources per session, as at creation */
#define RES_MAX_MOUNT 1024 /* bytes of a mount path */
#define RES_UPLOADS "/mnt/session/uploads/"

/* The session of the route for this caller, or NULL after replying; write: it must
 * still be open to changes. */
static json_t *
res_session(struct api_call *c, bool write)
{
	json_t *doc = sessions_for_call(c);
	if (doc == NULL)
		return NULL;
	if (write &&
	    (!json_is_null(json_object_get(doc, "archived_at")) ||
	     strcmp(json_string_value(json_object_get(doc, "status")), "terminated") == 0)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "session %s is archived or terminated; its resources cannot change",
		                c->params[0]);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* Index of resource rid in the session's list, or -1 after replying 404. */
static long
res_find(struct api_call *c, const json_t *res, const char *rid)
{
	for (size_t i = 0; i < json_array_size(res); i++) {
		const char *id = json_string_value(json_object_get(json_array_get(res, i), "id"));
		if (id && strcmp(id, rid) == 0)
			return (long)i;
	}
	api_reply_error(c, 404, "not_found_error", NULL, "resource %.100s not found", rid);
	return -1;
}

/* An absolute path of plain segments: no "", ".", "..", control characters or NUL, not
 * inside the memory mounts. The message names the rule. */
static const char *
mount_path_error(const char *p)
{
	size_t n = strlen(p);
	if (n < 2 || n > RES_MAX_MOUNT || p[0] != '/')
		return "mount_path: must be an absolute path of at most 1024 bytes";
	if (strncmp(p, "/mnt/memory/", 12) == 0 || strcmp(p, "/mnt/memory") == 0)
		return "mount_path: /mnt/memory is where memory stores are mounted";
	for (const char *s = p + 1; *s;) {
		const char *e = strchr(s, '/');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len == 0 || (len == 1 && s[0] == '.') ||
		    (len == 2 && s[0] == '.' && s[1] == '.'))
			return "mount_path: empty, '.' and '..' segments are not allowed";
		s += len + (e ? 1 : 0);
		if (e && *s == '\0')
			return "mount_path: must not end with '/'";
	}
	for (const char *s = p; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return "mount_path: control characters are not allowed";
	return NULL;
}

static int
res_save(struct api_call *c, json_t *doc)
{
	struct db *db = c->srv->db;
	int r;
	json_object_set_new(doc, "updated_at", api_time(now_real_us()));
	if ((r = db_begin(db)) != 0)
		return r;
	if ((r = session_store_put(db, c->params[0], doc)) != 0 || (r = db_commit(db)) != 0)
		db_rollback(db);
	return r;
}

static void
add_resource(struct api_call *c)
{
	static const char *const allowed[] = {"type", "file_id", "mount_path", NULL};
	json_t *doc = NULL, *file = NULL, *item = NULL;
	char *mount = NULL;
	int err = 0;
	if (api_body_required(c))
		return;
	const char *type = json_string_value(json_object_get(c->body, "type"));
	if (type == NULL) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "type: Field required");
		return;
	}
	if (strcmp(type, "github_repository") == 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "github_repository resources are not supported yet: cloning needs "
		                "the worker's network egress, which airlock does not have");
		return;
	}
	if (strcmp(type, "memory_store") == 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "memory_store resources are attached when the session is created "
		                "(resources in POST /v1/sessions)");
		return;
	}
	if (strcmp(type, "file") != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "type: must be 'file' (or 'github_repository', not supported yet)");
		return;
	}
	if (api_body_only(c, allowed))
		return;
	const char *file_id = json_string_value(json_object_get(c->body, "file_id"));
	json_t *mp = json_object_get(c->body, "mount_path");
	if (file_id == NULL || id_valid(file_id, "file_") != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "file_id: must be a file id (file_...)");
		return;
	}
	if (mp && !json_is_null(mp) && !json_is_string(mp)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "mount_path: must be a string or null");
		return;
	}
	mount = mp && json_is_string(mp) ? xstrdup(json_string_value(mp))
	                                 : xasprintf(RES_UPLOADS "%s", file_id);
	const char *why = mount_path_error(mount);
	if (why) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "%s", why);
		goto out;
	}
	if ((doc = res_session(c, true)) == NULL)
		goto out;
	if ((file = file_store_get(c->srv->db, file_id, &err)) == NULL) {
		if (err == AL_E_NOTFOUND)
			api_reply_error(c, 404, "not_found_error", NULL,
			                "file_id: file %s not found", file_id);
		else
			api_reply_err(c, err, "cannot load file");
		goto out;
	}
	json_t *res = json_object_get(doc, "resources");
	if (!json_is_array(res)) {
		res = json_array();
		json_object_set_new(doc, "resources", res);
	}
	if (json_array_size(res) >= RES_MAX) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "resources: at most %d resources per session", RES_MAX);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(res); i++) {
		const char *m =
		    json_string_value(json_object_get(json_array_get(res, i), "mount_path"));
		if (m && strcmp(m, mount) == 0) {
			api_reply_error(
			    c, 409, "invalid_request_error", NULL,
			    "mount_path: %s is taken by another resource of this session", mount);
			goto out;
		}
	}
	char *rid = id_new("sesrsc_");
	json_t *now = api_time(now_real_us());
	item = json_pack("{s:s, s:s, s:s, s:s, s:O, s:O}", "type", "file", "id", rid, "file_id",
	                 file_id, "mount_path", mount, "created_at", now, "updated_at", now);
	json_decref(now);
	free(rid);
	json_array_append(res, item);
	if ((err = res_save(c, doc)) != 0) {
		api_reply_err(c, err, "cannot update session");
		goto out;
	}
	log_info("session resource added", "session_id", c->params[0], "file_id", file_id);
	api_reply_json(c, 200, item);
	item = NULL;
out:
	json_decref(item);
	json_decref(doc);
	json_decref(file);
	free(mount);
}

static void
list_resources(struct api_call *c)
{
	struct page_req pg;
	json_t *doc;
	if (api_page_parse(c, 20, 100, false, &pg))
		return;
	if ((doc = res_session(c, false)) == NULL)
		return;
	/* at most RES_MAX: the cursor is an index into the session's list */
	json_t *res = json_object_get(doc, "resources"), *data = json_array();
	size_t from = pg.has_cursor && pg.after_seq >= 0 ? (size_t)pg.after_seq + 1 : 0;
	size_t n = json_array_size(res), i;
	for (i = from; i < n && json_array_size(data) < pg.limit; i++)
		json_array_append(data, json_array_get(res, i));
	json_t *next = json_null();
	if (i < n) {
		char *cur = api_page_cursor((int64_t)i - 1, false);
		next = json_string(cur);
		free(cur);
	}
	json_decref(doc);
	api_reply_json(c, 200, json_pack("{s:o, s:o}", "data", data, "next_page", next));
}

static void
get_resource(struct api_call *c)
{
	json_t *doc = res_session(c, false);
	if (doc == NULL)
		return;
	json_t *res = json_object_get(doc, "resources");
	long i = res_find(c, res, c->params[1]);
	if (i >= 0)
		api_reply_json(c, 200, json_incref(json_array_get(res, (size_t)i)));
	json_decref(doc);
}

static void
update_resource(struct api_call *c)
{
	static const char *const allowed[] = {"authorization_token", NULL};
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	json_t *doc = res_session(c, true);
	if (doc == NULL)
		return;
	json_t *res = json_object_get(doc, "resources");
	long i = res_find(c, res, c->params[1]);
	if (i >= 0)
		api_reply_error(
		    c, 400, "invalid_request_error", NULL,
		    "authorization_token: only github_repository resources take one; this is a %s "
		    "resource",
		    json_string_value(json_object_get(json_array_get(res, (size_t)i), "type")));
	json_decref(doc);
}

static void
delete_resource(struct api_call *c)
{
	struct db *db = c->srv->db;
	json_t *doc = res_session(c, true);
	int r;
	if (doc == NULL)
		return;
	json_t *res = json_object_get(doc, "resources");
	long i = res_find(c, res, c->params[1]);
	if (i < 0)
		goto out;
	char *store = NULL;
	const char *ms =
	    json_string_value(json_object_get(json_array_get(res, (size_t)i), "memory_store_id"));
	if (ms)
		store = xstrdup(ms);
	json_array_remove(res, (size_t)i);
	json_object_set_new(doc, "updated_at", api_time(now_real_us()));
	/* the document and the attachment a user's access rests on go together */
	if ((r = db_begin(db)) == 0) {
		if ((r = session_store_put(db, c->params[0], doc)) != 0 ||
		    (store && (r = memory_store_detach(db, c->params[0], store)) != 0) ||
		    (r = db_commit(db)) != 0)
			db_rollback(db);
	}
	free(store);
	if (r != 0) {
		api_reply_err(c, r, "cannot update session");
		goto out;
	}
	log_info("session resource removed", "session_id", c->params[0], "resource_id",
	         c->params[1]);
	api_reply_json(
	    c, 200,
	    json_pack("{s:s, s:s}", "id", c->params[1], "type", "session_resource_deleted"));
out:
	json_decref(doc);
}

/* Whether the sessions token's session has file_id among its resources (its worker may
 * download it). */
bool
session_resources_has_file(struct api_call *c, const char *file_id)
{
	int err;
	json_t *doc = session_store_get(c->srv->db, c->who.session_id, &err);
	json_t *res = json_object_get(doc, "resources");
	bool yes = false;
	for (size_t i = 0; i < json_array_size(res) && !yes; i++) {
		const char *f =
		    json_string_value(json_object_get(json_array_get(res, i), "file_id"));
		yes = f && strcmp(f, file_id) == 0;
	}
	json_decref(doc);
	return yes;
}

const struct api_route session_resources_routes[] = {
    {"POST", "/v1/sessions/{}/resources", CREDS_API, add_resource},
    {"GET", "/v1/sessions/{}/resources", CREDS_ANY, list_resources},
    {"GET", "/v1/sessions/{}/resources/{}", CREDS_ANY, get_resource},
    {"POST", "/v1/sessions/{}/resources/{}", CREDS_API, update_resource},
    {"DELETE", "/v1/sessions/{}/resources/{}", CREDS_API, delete_resource},
    {NULL, NULL, 0, NULL},
};
