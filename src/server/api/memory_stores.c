/* /v1/memory_stores, …/memories and …/memory_versions: memory stores, the text memories
 * in them and each memory's history. Validation and access here; storage and the
 * transactional rules (path overlap, preconditions, versions) in store/memory_store.c.
 * See docs/server/memory.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "audit.h"
#include "buf.h"
#include "err.h"
#include "log.h"
#include "memory_store.h"
#include "routes.h"
#include "server.h"
#include "session_store.h"
#include "util.h"
#include "validate.h"
#include "xalloc.h"

#define MEMORY_MAX_NAME 255 /* characters of a store's name */

/* ---- validation ---- */

/* Next code point of a valid UTF-8 string (jansson gave us only valid UTF-8). */
static unsigned
utf8_next(const unsigned char **p)
{
	const unsigned char *s = *p;
	unsigned cp;
	int n;
	if (s[0] < 0x80) {
		cp = s[0];
		n = 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		cp = s[0] & 0x1fu;
		n = 2;
	} else if ((s[0] & 0xf0) == 0xe0) {
		cp = s[0] & 0x0fu;
		n = 3;
	} else {
		cp = s[0] & 0x07u;
		n = 4;
	}
	for (int i = 1; i < n && s[i]; i++)
		cp = (cp << 6) | (s[i] & 0x3fu);
	*p = s + n;
	return cp;
}

/* Control and format characters (Unicode Cc, Cf) and U+2028/U+2029: invisible in a
 * listing, or able to reorder what a reader sees (bidi controls). */
static bool
forbidden_cp(unsigned cp)
{
	static const unsigned ranges[][2] = {
	    {0x0000, 0x001f},   {0x007f, 0x009f},   {0x00ad, 0x00ad},   {0x0600, 0x0605},
	    {0x061c, 0x061c},   {0x06dd, 0x06dd},   {0x070f, 0x070f},   {0x0890, 0x0891},
	    {0x08e2, 0x08e2},   {0x180e, 0x180e},   {0x200b, 0x200f},   {0x2028, 0x202e},
	    {0x2060, 0x2064},   {0x2066, 0x206f},   {0xfeff, 0xfeff},   {0xfff9, 0xfffb},
	    {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x1343f}, {0x1bca0, 0x1bca3},
	    {0x1d173, 0x1d17a}, {0xe0001, 0xe0001}, {0xe0020, 0xe007f},
	};
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if (cp >= ranges[i][0] && cp <= ranges[i][1])
			return true;
	return false;
}

/* A memory path (prefix: a path_prefix, which ends with '/' instead): starts with '/',
 * at most MEMORY_MAX_PATH bytes and MEMORY_MAX_SEGMENTS segments, none empty, "." or
 * "..", no control or format character. Unicode normalization is not checked
 * (docs/server/memory.md "Differences"). */
static int
check_path(const json_t *v, const char *field, bool prefix, struct verr *e)
{
	if (!json_is_string(v))
		return verr_set(e, "%s: must be a string", field);
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (len != strlen(s))
		return verr_set(e, "%s: must not contain NUL", field);
	if (len == 0 || s[0] != '/')
		return verr_set(e, "%s: must start with '/'", field);
	if (len > MEMORY_MAX_PATH)
		return verr_set(e, "%s: at most %d bytes", field, MEMORY_MAX_PATH);
	if (prefix && s[len - 1] != '/')
		return verr_set(e, "%s: must end with '/'", field);
	if (prefix && len == 1)
		return 0;
	const unsigned char *p = (const unsigned char *)s + 1;
	const unsigned char *end = (const unsigned char *)s + len - (prefix ? 1 : 0);
	unsigned segs = 0;
	while (p <= end) {
		const unsigned char *seg = p;
		while (p < end && *p != '/') {
			unsigned cp = utf8_next(&p);
			if (forbidden_cp(cp))
				return verr_set(e,
				                "%s: must not contain control or format characters "
				                "(U+%04X)",
				                field, cp);
		}
		size_t n = (size_t)(p - seg);
		if (n == 0)
			return verr_set(e, "%s: empty segment (no '//' and no trailing '/')",
			                field);
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return verr_set(e, "%s: segments '.' and '..' are not allowed", field);
		if (++segs > MEMORY_MAX_SEGMENTS)
			return verr_set(e, "%s: at most %d segments", field, MEMORY_MAX_SEGMENTS);
		p++; /* the '/' (or one past end) */
	}
	return 0;
}

static int
check_content(const json_t *v, struct verr *e)
{
	if (!json_is_string(v))
		return verr_set(e, "content: must be a string");
	if (json_string_length(v) != strlen(json_string_value(v)))
		return verr_set(e, "content: must not contain NUL");
	if (json_string_length(v) > MEMORY_MAX_CONTENT)
		return verr_set(e, "content: at most %d bytes (this is %zu)", MEMORY_MAX_CONTENT,
		                json_string_length(v));
	return 0;
}

static bool
is_sha256_hex(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 64;
}

static size_t
utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static int
check_name(const json_t *v, struct verr *e)
{
	if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)))
		return verr_set(e, "name: must be a string");
	size_t n = utf8_chars(json_string_value(v));
	if (n < 1 || n > MEMORY_MAX_NAME)
		return verr_set(e, "name: must be 1 to %d characters", MEMORY_MAX_NAME);
	return 0;
}

static int
check_description(const json_t *v, struct verr *e)
{
	if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)) ||
	    utf8_chars(json_string_value(v)) > VALIDATE_MAX_DESCRIPTION)
		return verr_set(e, "description: must be a string of at most %d characters",
		                VALIDATE_MAX_DESCRIPTION);
	return 0;
}

/* ?view=basic|full; dflt when absent. Replies 400 itself. */
static int
query_view(struct api_call *c, bool dflt, bool *full)
{
	const char *v = query_get(&c->query, "view");
	*full = dflt;
	if (v == NULL)
		return 0;
	if (strcmp(v, "full") == 0)
		*full = true;
	else if (strcmp(v, "basic") == 0)
		*full = false;
	else {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "view: must be 'basic' or 'full'");
		return AL_E_INVAL;
	}
	return 0;
}

/* ---- access ---- */

static bool
is_archived(const json_t *doc)
{
	return !json_is_null(json_object_get(doc, "archived_at"));
}

/* The access a sessions token's session has to store_id: "read_write", "read_only", or
 * NULL when the session does not mount it. */
static const char *
session_access(struct api_call *c, const char *store_id, json_t **sess)
{
	int err;
	*sess = session_store_get(c->srv->db, c->who.session_id, &err);
	json_t *res = json_object_get(*sess, "resources");
	for (size_t i = 0; i < json_array_size(res); i++) {
		json_t *r = json_array_get(res, i);
		const char *id = json_string_value(json_object_get(r, "memory_store_id"));
		if (id && strcmp(id, store_id) == 0) {
			const char *a = json_string_value(json_object_get(r, "access"));
			return a ? a : "read_write";
		}
	}
	return NULL;
}

/* Loads the store of the route for this caller. A sessions token reaches only the
 * stores its session mounts (others are "not found", as if they did not exist), and
 * writes only read_write ones; a user below developer reads only the stores of their
 * own sessions. write: the call changes memories. Replies itself on refusal. */
static json_t *
store_for_call(struct api_call *c, bool write)
{
	const char *id = c->params[0];
	json_t *store, *sess = NULL;
	int err;
	bool visible = true, writable = true;
	if (c->who.kind == PRINCIPAL_SESSION_TOKEN) {
		const char *a = session_access(c, id, &sess);
		visible = a != NULL;
		writable = a && strcmp(a, "read_write") == 0;
		json_decref(sess);
	} else if (c->who.kind == PRINCIPAL_USER && c->who.role < ROLE_DEVELOPER) {
		visible = memory_store_attached_to_owner(c->srv->db, id, c->who.user.iss,
		                                         c->who.user.sub);
		writable = false;
	}
	if (!visible) {
		api_reply_error(c, 404, "not_found_error", NULL, "memory store %s not found", id);
		return NULL;
	}
	if ((store = memory_store_get(c->srv->db, id, &err)) == NULL) {
		if (err == AL_E_NOTFOUND)
			api_reply_error(c, 404, "not_found_error", NULL,
			                "memory store %s not found", id);
		else
			api_reply_err(c, err, "cannot load memory store");
		return NULL;
	}
	if (write && !writable) {
		api_reply_error(c, 403, "permission_error", NULL,
		                "memory store %s is attached to this session read_only", id);
		json_decref(store);
		return NULL;
	}
	if (write && is_archived(store)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "memory store %s is archived; archived stores are read-only", id);
		json_decref(store);
		return NULL;
	}
	return store;
}

/* Who is writing, for the version's created_by. */
static struct memory_actor
call_actor(const struct api_call *c)
{
	struct memory_actor a = {0};
	if (c->who.kind == PRINCIPAL_SESSION_TOKEN)
		a.session_id = c->who.session_id;
	else if (c->who.kind == PRINCIPAL_USER)
		a.user_id = c->who.user.sub;
	else
		a.api_key_id = c->who.key_id;
	return a;
}

/* ---- stores ---- */

static void
create_store(struct api_call *c)
{
	static const char *const allowed[] = {"name", "description", "metadata", NULL};
	struct verr e = {{0}};
	json_t *meta = NULL, *doc = NULL, *v;
	char *id = NULL;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	v = json_object_get(c->body, "name");
	if (v == NULL || json_is_null(v)) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "name: Field required");
		return;
	}
	if (check_name(v, &e) != 0) {
		validate_reply(c, &e);
		return;
	}
	json_t *desc = json_object_get(c->body, "description");
	if (desc && !json_is_null(desc) && check_description(desc, &e) != 0) {
		validate_reply(c, &e);
		return;
	}
	json_t *m = json_object_get(c->body, "metadata");
	if (m && !json_is_null(m) && api_metadata(c, m, NULL, false, &meta) != 0)
		return;
	id = id_new("memstore_");
	int64_t now = now_real_us();
	doc = json_pack("{s:s, s:s, s:O, s:o, s:o, s:o, s:o, s:n}", "type", "memory_store", "id",
	                id, "name", v, "description",
	                desc && !json_is_null(desc) ? json_incref(desc) : json_string(""),
	                "metadata", meta ? json_incref(meta) : json_object(), "created_at",
	                api_time(now), "updated_at", api_time(now), "archived_at");
	if (memory_store_insert(c->srv->db, id, doc, now) != 0) {
		api_reply_err(c, AL_E_IO, "cannot store memory store");
		goto out;
	}
	log_info("memory store created", "memory_store_id", id);
	api_reply_json(c, 200, doc);
	doc = NULL;
out:
	json_decref(doc);
	json_decref(meta);
	free(id);
}

static void
get_store(struct api_call *c)
{
	json_t *store = store_for_call(c, false);
	if (store)
		api_reply_json(c, 200, store);
}

static void
update_store(struct api_call *c)
{
	static const char *const allowed[] = {"name", "description", "metadata", NULL};
	const char *id = c->params[0];
	struct verr e = {{0}};
	json_t *cur = NULL, *doc = NULL, *meta = NULL, *v;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if ((cur = store_for_call(c, false)) == NULL)
		return;
	if (is_archived(cur)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "memory store %s is archived; archived stores are read-only", id);
		goto out;
	}
	doc = json_deep_copy(cur);
	/* name is required on a store: null means "leave it" */
	if ((v = json_object_get(c->body, "name")) != NULL && !json_is_null(v)) {
		if (check_name(v, &e) != 0) {
			validate_reply(c, &e);
			goto out;
		}
		json_object_set(doc, "name", v);
	}
	if ((v = json_object_get(c->body, "description")) != NULL) {
		if (!json_is_null(v) && check_description(v, &e) != 0) {
			validate_reply(c, &e);
			goto out;
		}
		json_object_set_new(doc, "description",
		                    json_is_null(v) ? json_string("") : json_incref(v));
	}
	if ((v = json_object_get(c->body, "metadata")) != NULL && !json_is_null(v)) {
		if (api_metadata(c, v, json_object_get(cur, "metadata"), true, &meta) != 0)
			goto out;
		json_object_set(doc, "metadata", meta);
	}
	if (!json_equal(doc, cur)) {
		json_object_set_new(doc, "updated_at", api_time(now_real_us()));
		if (memory_store_update(c->srv->db, id, doc) != 0) {
			api_reply_err(c, AL_E_IO, "cannot store memory store");
			goto out;
		}
	}
	api_reply_json(c, 200, doc);
	doc = NULL;
out:
	json_decref(cur);
	json_decref(doc);
	json_decref(meta);
}

static void
archive_store(struct api_call *c)
{
	json_t *doc;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((doc = store_for_call(c, false)) == NULL)
		return;
	if (!is_archived(doc)) {
		int64_t now = now_real_us();
		json_object_set_new(doc, "updated_at", api_time(now));
		json_object_set_new(doc, "archived_at", api_time(now));
		if (memory_store_archive(c->srv->db, c->params[0], doc, now) != 0) {
			json_decref(doc);
			api_reply_err(c, AL_E_IO, "cannot archive memory store");
			return;
		}
		log_info("memory store archived", "memory_store_id", c->params[0]);
	}
	api_reply_json(c, 200, doc);
}

static void
delete_store(struct api_call *c)
{
	json_t *doc;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((doc = store_for_call(c, false)) == NULL)
		return;
	json_decref(doc);
	/* Sessions that mount it keep the resource entry; their workers find the store
	 * gone (404) and mount nothing. */
	if (memory_store_delete(c->srv->db, c->params[0]) != 0) {
		api_reply_err(c, AL_E_IO, "cannot delete memory store");
		return;
	}
	log_info("memory store deleted", "memory_store_id", c->params[0]);
	audit_api(c, "memory_store.delete", NULL, "ok",
	          json_pack("{s:s}", "memory_store_id", c->params[0]));
	api_reply_json(c, 200,
	               json_pack("{s:s, s:s}", "id", c->params[0], "type", "memory_store_deleted"));
}

static void
list_stores(struct api_call *c)
{
	validate_list_docs(c, memory_store_list, NULL);
}

/* ---- memories ---- */

static void
reply_conflict(struct api_call *c, const struct memory_conflict *k, const char *path)
{
	json_t *err = json_pack("{s:s, s:s, s:s, s:s}", "type", "memory_path_conflict_error",
	                        "message", "", "conflicting_memory_id", k->id, "conflicting_path",
	                        k->path[0] ? k->path : path);
	char msg[MEMORY_MAX_PATH * 2 + 160];
	if (k->id[0] && strcmp(k->path, path) == 0)
		snprintf(msg, sizeof(msg), "path %s is taken by memory %s", path, k->id);
	else if (k->id[0])
		snprintf(msg, sizeof(msg),
		         "path %s overlaps memory %s at %s (one is an ancestor of "
		         "the other)",
		         path, k->id, k->path);
	else
		snprintf(msg, sizeof(msg), "path %s was taken by a concurrent write; retry", path);
	json_object_set_new(err, "message", json_string(msg));
	api_reply_json(c, 409,
	               json_pack("{s:s, s:o, s:s}", "type", "error", "error", err, "request_id",
	                         c->request_id));
}

static void
reply_precondition(struct api_call *c, const char *id)
{
	json_t *err =
	    json_pack("{s:s, s:s}", "type", "memory_precondition_failed_error", "message", "");
	char msg[200];
	snprintf(msg, sizeof(msg),
	         "memory %s does not have the expected content_sha256; retrieve it and retry", id);
	json_object_set_new(err, "message", json_string(msg));
	api_reply_json(c, 409,
	               json_pack("{s:s, s:o, s:s}", "type", "error", "error", err, "request_id",
	                         c->request_id));
}

static void
reply_write_err(struct api_call *c, int r, const struct memory_conflict *k, const char *path)
{
	switch (r) {
	case AL_E_CONFLICT:
		reply_conflict(c, k, path);
		break;
	case AL_E_PRECOND:
		reply_precondition(c, c->params[1]);
		break;
	case AL_E_NOTFOUND:
		api_reply_error(c, 404, "not_found_error", NULL, "memory %s not found in store %s",
		                c->params[1], c->params[0]);
		break;
	case AL_E_TOOBIG:
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "memory store %s already holds %d memories, the maximum",
		                c->params[0], MEMORY_MAX_PER_STORE);
		break;
	default:
		api_reply_err(c, r, "cannot store memory");
		break;
	}
}

static void
create_memory(struct api_call *c)
{
	static const char *const allowed[] = {"path", "content", NULL};
	struct memory_conflict k;
	struct verr e = {{0}};
	json_t *store = NULL, *doc = NULL, *path, *content;
	char *id = NULL;
	bool full;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed) || query_view(c, false, &full))
		return;
	path = json_object_get(c->body, "path");
	content = json_object_get(c->body, "content");
	if (path == NULL || json_is_null(path)) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "path: Field required");
		return;
	}
	if (content == NULL) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "content: Field required (\"\" for an empty memory)");
		return;
	}
	if (check_path(path, "path", false, &e) != 0 ||
	    (!json_is_null(content) && check_content(content, &e) != 0)) {
		validate_reply(c, &e);
		return;
	}
	if ((store = store_for_call(c, true)) == NULL)
		return;
	id = id_new("mem_");
	struct memory_write w = {
	    .store_id = c->params[0],
	    .id = id,
	    .path = json_string_value(path),
	    .content = json_is_null(content) ? "" : json_string_value(content),
	    .content_len = json_is_null(content) ? 0 : json_string_length(content),
	    .actor = call_actor(c),
	    .now = now_real_us(),
	};
	if ((r = memory_store_memory_create(c->srv->db, &w, full, &doc, &k)) != 0) {
		reply_write_err(c, r, &k, w.path);
		goto out;
	}
	api_reply_json(c, 200, doc);
out:
	json_decref(store);
	free(id);
}

static void
get_memory(struct api_call *c)
{
	json_t *store, *doc;
	bool full;
	int err;
	if (query_view(c, true, &full) || (store = store_for_call(c, false)) == NULL)
		return;
	json_decref(store);
	if ((doc = memory_store_memory_get(c->srv->db, c->params[0], c->params[1], full, &err)) ==
	    NULL) {
		reply_write_err(c, err, NULL, NULL);
		return;
	}
	api_reply_json(c, 200, doc);
}

static void
update_memory(struct api_call *c)
{
	static const char *const allowed[] = {"path", "content", "precondition", NULL};
	static const char *const pre_keys[] = {"type", "content_sha256", NULL};
	struct memory_conflict k;
	struct verr e = {{0}};
	json_t *store = NULL, *doc = NULL, *path, *content, *pre;
	const char *expected = NULL;
	bool full;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed) || query_view(c, false, &full))
		return;
	path = json_object_get(c->body, "path");
	content = json_object_get(c->body, "content");
	pre = json_object_get(c->body, "precondition");
	if ((path && !json_is_null(path) && check_path(path, "path", false, &e) != 0) ||
	    (content && !json_is_null(content) && check_content(content, &e) != 0)) {
		validate_reply(c, &e);
		return;
	}
	if (pre && !json_is_null(pre)) {
		const json_t *t = json_object_get(pre, "type"), *h;
		if (!json_is_object(pre) ||
		    validate_only_keys(pre, "precondition", pre_keys, &e) != 0) {
			if (!json_is_object(pre))
				verr_set(&e, "precondition: must be an object");
			validate_reply(c, &e);
			return;
		}
		if (!json_is_string(t) || strcmp(json_string_value(t), "content_sha256") != 0) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "precondition.type: must be 'content_sha256'");
			return;
		}
		h = json_object_get(pre, "content_sha256");
		if (h && !json_is_null(h)) {
			if (!json_is_string(h) || !is_sha256_hex(json_string_value(h))) {
				api_reply_error(
				    c, 400, "invalid_request_error", NULL,
				    "precondition.content_sha256: must be 64 lower-case "
				    "hexadecimal characters");
				return;
			}
			expected = json_string_value(h);
		}
	}
	if ((store = store_for_call(c, true)) == NULL)
		return;
	struct memory_write w = {
	    .store_id = c->params[0],
	    .id = c->params[1],
	    .path = path && !json_is_null(path) ? json_string_value(path) : NULL,
	    .content = content && !json_is_null(content) ? json_string_value(content) : NULL,
	    .content_len = content && !json_is_null(content) ? json_string_length(content) : 0,
	    .expected_sha256 = expected,
	    .actor = call_actor(c),
	    .now = now_real_us(),
	};
	if ((r = memory_store_memory_update(c->srv->db, &w, full, &doc, &k)) != 0)
		reply_write_err(c, r, &k, w.path ? w.path : "");
	else
		api_reply_json(c, 200, doc);
	json_decref(store);
}

static void
delete_memory(struct api_call *c)
{
	const char *expected = query_get(&c->query, "expected_content_sha256");
	json_t *store;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if (expected && !is_sha256_hex(expected)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "expected_content_sha256: must be 64 lower-case hexadecimal "
		                "characters");
		return;
	}
	if ((store = store_for_call(c, true)) == NULL)
		return;
	json_decref(store);
	struct memory_write w = {
	    .store_id = c->params[0],
	    .id = c->params[1],
	    .expected_sha256 = expected,
	    .actor = call_actor(c),
	    .now = now_real_us(),
	};
	if ((r = memory_store_memory_delete(c->srv->db, &w)) != 0) {
		reply_write_err(c, r, NULL, NULL);
		return;
	}
	api_reply_json(c, 200,
	               json_pack("{s:s, s:s}", "id", c->params[1], "type", "memory_deleted"));
}

/* The memories cursor: base64url of 'g' (after) or 'e' (from) and a path. */
static int
parse_memory_cursor(struct api_call *c, const char *page, char **from, bool *incl)
{
	unsigned char *raw = NULL;
	size_t n = 0;
	*from = NULL;
	if (strlen(page) > 2 * MEMORY_MAX_PATH ||
	    base64_decode_any(page, strlen(page), &raw, &n) != 0 || n < 2 ||
	    (raw[0] != 'g' && raw[0] != 'e') || memchr(raw, 0, n) != NULL) {
		free(raw);
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "page: not a cursor this list returned");
		return AL_E_INVAL;
	}
	*incl = raw[0] == 'e';
	*from = xstrndup((const char *)raw + 1, n - 1);
	free(raw);
	return 0;
}

static void
list_memories(struct api_call *c)
{
	const char *prefix = query_get(&c->query, "path_prefix");
	const char *depth = query_get(&c->query, "depth");
	const char *limit = query_get(&c->query, "limit");
	const char *page = query_get(&c->query, "page");
	struct verr e = {{0}};
	struct memory_page pg = {0};
	json_t *store = NULL, *pj = NULL;
	char *from = NULL;
	bool full, incl = false;
	uint64_t v;
	struct memory_list q = {.store_id = c->params[0], .prefix = "/", .limit = 20};
	if (query_view(c, false, &full))
		return;
	q.with_content = full;
	if (prefix) {
		pj = json_string(prefix);
		if (check_path(pj, "path_prefix", true, &e) != 0) {
			validate_reply(c, &e);
			goto out;
		}
		q.prefix = prefix;
	}
	if (depth) {
		if (parse_uint_cstr(depth, MEMORY_MAX_SEGMENTS, &v) != 0) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "depth: must be an integer between 0 and %d",
			                MEMORY_MAX_SEGMENTS);
			goto out;
		}
		q.depth = (unsigned)v;
	}
	if (limit) {
		if (parse_uint_cstr(limit, 1000, &v) != 0 || v < 1) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "limit: must be an integer between 1 and 1000");
			goto out;
		}
		q.limit = (unsigned)v;
	}
	/* view=full pages hold at most 20 items (the reference caps, it does not refuse) */
	if (full && q.limit > 20)
		q.limit = 20;
	if (page && *page) {
		if (parse_memory_cursor(c, page, &from, &incl) != 0)
			goto out;
		q.from = from;
		q.from_inclusive = incl;
	}
	if ((store = store_for_call(c, false)) == NULL)
		goto out;
	if (memory_store_memory_list(c->srv->db, &q, &pg) != 0) {
		api_reply_err(c, AL_E_IO, "cannot list memories");
		goto out;
	}
	json_t *ans = json_pack("{s:O}", "data", pg.data);
	if (pg.more) {
		size_t n = strlen(pg.next);
		char *raw = xmalloc(n + 2);
		raw[0] = pg.next_inclusive ? 'e' : 'g';
		memcpy(raw + 1, pg.next, n + 1);
		char *cur = base64url_encode(raw, n + 1);
		json_object_set_new(ans, "next_page", json_string(cur));
		free(cur);
		free(raw);
	} else {
		json_object_set_new(ans, "next_page", json_null());
	}
	api_reply_json(c, 200, ans);
out:
	memory_page_free(&pg);
	json_decref(store);
	json_decref(pj);
	free(from);
}

/* ---- versions ---- */

static void
get_version(struct api_call *c)
{
	json_t *store, *doc;
	bool full;
	int err;
	if (query_view(c, true, &full) || (store = store_for_call(c, false)) == NULL)
		return;
	json_decref(store);
	if ((doc = memory_store_version_get(c->srv->db, c->params[0], c->params[1], full, &err)) ==
	    NULL) {
		if (err == AL_E_NOTFOUND)
			api_reply_error(c, 404, "not_found_error", NULL,
			                "memory version %s not found in store %s", c->params[1],
			                c->params[0]);
		else
			api_reply_err(c, err, "cannot load memory version");
		return;
	}
	api_reply_json(c, 200, doc);
}

static void
list_versions(struct api_call *c)
{
	static const char *const ops[] = {"created", "modified", "deleted", NULL};
	struct page_req pg;
	struct time_range tr;
	struct doc_page page = {0};
	json_t *store;
	bool full;
	struct memory_version_filter f = {
	    .memory_id = query_get(&c->query, "memory_id"),
	    .operation = query_get(&c->query, "operation"),
	    .session_id = query_get(&c->query, "session_id"),
	    .api_key_id = query_get(&c->query, "api_key_id"),
	    /* versions are never written by a service account here */
	    .none = query_get(&c->query, "service_account_id") != NULL,
	};
	if (query_view(c, false, &full) || api_page_parse(c, 20, 1000, true, &pg) ||
	    validate_query_created(c, &tr))
		return;
	if (f.operation) {
		bool ok = false;
		for (size_t i = 0; ops[i]; i++)
			ok = ok || strcmp(ops[i], f.operation) == 0;
		if (!ok) {
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "operation: must be 'created', 'modified' or 'deleted'");
			return;
		}
	}
	if (full && pg.limit > 20)
		pg.limit = 20;
	if ((store = store_for_call(c, false)) == NULL)
		return;
	json_decref(store);
	struct doc_list q = {.created_lo = tr.lo,
	                     .created_hi = tr.hi,
	                     .has_cursor = pg.has_cursor,
	                     .after_seq = pg.after_seq,
	                     .limit = pg.limit,
	                     .desc = pg.desc};
	if (memory_store_version_list(c->srv->db, c->params[0], &f, &q, full, &page) != 0) {
		doc_page_free(&page);
		api_reply_err(c, AL_E_IO, "cannot list memory versions");
		return;
	}
	api_reply_json(c, 200, validate_page_json(&page, pg.desc));
}

static void
redact_version(struct api_call *c)
{
	json_t *store, *doc = NULL;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((store = store_for_call(c, false)) == NULL)
		return;
	json_decref(store);
	struct memory_actor by = call_actor(c);
	r = memory_store_version_redact(c->srv->db, c->params[0], c->params[1], &by, now_real_us(),
	                                &doc);
	if (r == AL_E_NOTFOUND)
		api_reply_error(c, 404, "not_found_error", NULL,
		                "memory version %s not found in store %s", c->params[1],
		                c->params[0]);
	else if (r == AL_E_CONFLICT)
		api_reply_error(c, 409, "conflict_error", NULL,
		                "memory version %s holds the current content of its memory; update "
		                "or delete the memory first, then redact this version",
		                c->params[1]);
	else if (r != 0)
		api_reply_err(c, r, "cannot redact memory version");
	else {
		log_info("memory version redacted", "memory_store_id", c->params[0],
		         "memory_version_id", c->params[1]);
		audit_api(c, "memory_version.redact", NULL, "ok",
		          json_pack("{s:s, s:s, s:O?}", "memory_store_id", c->params[0],
		                    "memory_version_id", c->params[1], "memory_id",
		                    json_object_get(doc, "memory_id")));
		api_reply_json(c, 200, doc);
	}
}

/* Environment keys never reach memories (the reference refuses them too): a worker uses
 * the per-item sessions token, which store_for_call narrows to its session's stores. */
#define CREDS_MEM (CREDS_API | PRINCIPAL_SESSION_TOKEN)

const struct api_route memory_stores_routes[] = {
    {"POST", "/v1/memory_stores", CREDS_API, create_store},
    {"GET", "/v1/memory_stores", CREDS_API, list_stores},
    {"GET", "/v1/memory_stores/{}", CREDS_MEM, get_store},
    {"POST", "/v1/memory_stores/{}", CREDS_API, update_store},
    {"DELETE", "/v1/memory_stores/{}", CREDS_API, delete_store},
    {"POST", "/v1/memory_stores/{}/archive", CREDS_API, archive_store},
    {"POST", "/v1/memory_stores/{}/memories", CREDS_MEM, create_memory},
    {"GET", "/v1/memory_stores/{}/memories", CREDS_MEM, list_memories},
    {"GET", "/v1/memory_stores/{}/memories/{}", CREDS_MEM, get_memory},
    {"POST", "/v1/memory_stores/{}/memories/{}", CREDS_MEM, update_memory},
    {"PATCH", "/v1/memory_stores/{}/memories/{}", CREDS_MEM, update_memory},
    {"DELETE", "/v1/memory_stores/{}/memories/{}", CREDS_MEM, delete_memory},
    {"GET", "/v1/memory_stores/{}/memory_versions", CREDS_MEM, list_versions},
    {"GET", "/v1/memory_stores/{}/memory_versions/{}", CREDS_MEM, get_version},
    {"POST", "/v1/memory_stores/{}/memory_versions/{}/redact", CREDS_API, redact_version},
    {NULL, NULL, 0, NULL},
};
