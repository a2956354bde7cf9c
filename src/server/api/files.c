/* /v1/files: uploads streamed from the socket through the multipart parser into a
 * temporary file (never whole in memory), synced and renamed before the row commits;
 * downloads streamed back at the pace the client reads. docs/server/files.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "api.h"
#include "audit.h"
#include "auth.h"
#include "err.h"
#include "file_store.h"
#include "log.h"
#include "multipart.h"
#include "routes.h"
#include "server.h"
#include "upload.h"
#include "util.h"
#include "validate.h"
#include "xalloc.h"

#define FILES_MAX_NAME 255     /* bytes of a filename */
#define FILES_MAX_MIME 255     /* bytes of a part's Content-Type */
#define FILES_FORM_SLACK 65536 /* multipart framing allowed around the file's bytes */

/* ---- uploads ---- */

struct upload {
	struct upload_base base; /* first: the shared sink reads it; the file from the file part */
	struct server *srv;
	char *filename, *mime;
	uint64_t size, max;
	bool in_file, have_file;
};

static void
upload_free(struct upload *u)
{
	if (u == NULL)
		return;
	upload_base_release(&u->base);
	free(u->filename);
	free(u->mime);
	free(u);
}

static void
upload_free_any(void *u)
{
	upload_free(u);
}

static int
refuse(struct upload *u, int err, const char *msg)
{
	return upload_refuse(&u->base, err, msg);
}

static bool
utf8_text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	json_t *j = json_string(s); /* NULL on invalid UTF-8 */
	json_decref(j);
	return j != NULL;
}

static int
up_begin(const struct multipart_part *p, void *arg)
{
	struct upload *u = arg;
	if (strcmp(p->name, "file") != 0)
		return refuse(u, AL_E_INVAL,
		              strcmp(p->name, "expires_in_seconds") == 0
		                  ? "expires_in_seconds: not supported (airlock keeps files "
		                    "until they are deleted)"
		                  : "form: unknown field (only file is accepted)");
	if (u->have_file)
		return refuse(u, AL_E_INVAL, "file: more than one file part");
	if (p->filename == NULL || !utf8_text_ok(p->filename, FILES_MAX_NAME))
		return refuse(u, AL_E_INVAL,
		              "file: a filename of 1 to 255 bytes of UTF-8 is required");
	if (!utf8_text_ok(p->content_type, FILES_MAX_MIME))
		return refuse(u, AL_E_INVAL, "file: bad Content-Type");
	if (upload_tmp_open(&u->base, u->srv->cfg.data_dir) != 0)
		return refuse(u, AL_E_IO, "cannot store the upload");
	u->filename = xstrdup(p->filename);
	u->mime = xstrdup(p->content_type);
	u->have_file = true;
	u->in_file = true;
	return 0;
}

static int
up_data(const char *d, size_t n, void *arg)
{
	struct upload *u = arg;
	if (!u->in_file)
		return 0;
	if (n > u->max - u->size)
		return refuse(u, AL_E_TOOBIG, "file too large");
	EVP_DigestUpdate(u->base.sha, d, n);
	if (upload_write(&u->base, u->size, d, n) != 0) {
		log_error("cannot write an upload", "path", u->base.tmp, "error", strerror(errno));
		return refuse(u, AL_E_IO, "cannot store the upload");
	}
	u->size += n;
	return 0;
}

static int
up_end(void *arg)
{
	struct upload *u = arg;
	u->in_file = false;
	return 0;
}

static const struct multipart_cb upload_cb = {up_begin, up_data, up_end};

static struct upload *
upload_new(struct server *srv, const char *content_type)
{
	char boundary[MULTIPART_MAX_BOUNDARY + 1];
	if (multipart_boundary(content_type, boundary, sizeof(boundary)) != 0)
		return NULL;
	struct upload *u = xcalloc(1, sizeof(*u));
	u->srv = srv;
	u->max = srv->cfg.files_max_bytes;
	upload_base_init(&u->base, multipart_new(boundary, NULL, &upload_cb, u), upload_free_any);
	return u;
}

static void *
upload_make(struct server *srv, const char *content_type)
{
	return upload_new(srv, content_type);
}

bool
files_upload_hook(struct server *srv, struct http_request *req, struct http_body_sink *sink)
{
	if (!upload_may_stream(srv, req, "/v1/files"))
		return false;
	struct upload *u = upload_new(srv, http_request_header(req, "content-type"));
	if (u == NULL)
		return false; /* not multipart: the handler says so */
	*sink = upload_sink(u, (size_t)u->max + FILES_FORM_SLACK);
	return true;
}

static json_t *
file_doc(const char *id, const struct upload *u, int64_t now)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:b}", "type", "file", "id", id,
	                 "filename", u->filename, "mime_type", u->mime, "size_bytes",
	                 (json_int_t)u->size, "created_at", api_time(now), "downloadable", 1);
}

static void
upload_file(struct api_call *c)
{
	struct upload *u = NULL;
	json_t *doc = NULL;
	char *id = NULL;
	int r;
	if ((u = upload_take(c, upload_make)) == NULL)
		return;
	if (!u->have_file) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "file: Field required");
		goto out;
	}
	char hex[65];
	upload_sha_hex(&u->base, hex);
	id = id_new("file_");
	int64_t now = now_real_us();
	/* bytes durable under their name first, then the row, then the answer */
	r = file_store_publish(c->srv->cfg.data_dir, u->base.fd, u->base.tmp, id);
	u->base.fd = -1;
	if (r != 0) {
		api_reply_err(c, AL_E_IO, "cannot store the file");
		goto out;
	}
	doc = file_doc(id, u, now);
	if (file_store_insert(c->srv->db, id, doc, now, NULL, u->size, hex) != 0) {
		file_store_unlink(c->srv->cfg.data_dir, id);
		api_reply_err(c, AL_E_IO, "cannot store the file");
		goto out;
	}
	char size[24];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)u->size);
	log_info("file uploaded", "file_id", id, "size_bytes", size);
	audit_api(c, "file.create", NULL, "ok",
	          json_pack("{s:s, s:I, s:s}", "file_id", id, "size_bytes", (json_int_t)u->size,
	                    "sha256", hex));
	api_reply_json(c, 200, doc);
	doc = NULL;
out:
	json_decref(doc);
	free(id);
	upload_free(u);
}

/* ---- reads ---- */

/* The file of the route. A sessions token reaches only the files its session has as
 * resources (its worker copies them in); any other is "not found". */
static json_t *
file_for_call(struct api_call *c)
{
	int err = AL_E_NOTFOUND;
	json_t *doc = NULL;
	if (c->who.kind != PRINCIPAL_SESSION_TOKEN || session_resources_has_file(c, c->params[0]))
		doc = file_store_get(c->srv->db, c->params[0], &err);
	if (doc == NULL)
		api_reply_err(c, err == AL_E_NOTFOUND ? AL_E_NOTFOUND : AL_E_IO,
		              err == AL_E_NOTFOUND ? "file not found" : "cannot read file");
	return doc;
}

static void
get_file(struct api_call *c)
{
	json_t *doc = file_for_call(c);
	if (doc)
		api_reply_json(c, 200, doc);
}

/* ids[] (≤ 100): those files that exist, in the order asked, on one page. */
static void
list_files_by_id(struct api_call *c)
{
	json_t *data = json_array();
	size_t n = 0;
	for (size_t i = 0; i < c->query.n; i++) {
		const struct query_param *q = &c->query.params[i];
		if (strcmp(q->key, "ids[]") != 0 && strcmp(q->key, "ids") != 0)
			continue;
		if (++n > 100) {
			json_decref(data);
			api_reply_error(c, 400, "invalid_request_error", NULL,
			                "ids: at most 100 ids");
			return;
		}
		int err = 0;
		json_t *doc = file_store_get(c->srv->db, q->value, &err);
		if (doc)
			json_array_append_new(data, doc);
		else if (err != AL_E_NOTFOUND) {
			json_decref(data);
			api_reply_err(c, AL_E_IO, "cannot list");
			return;
		}
	}
	api_reply_json(c, 200, json_pack("{s:o, s:n}", "data", data, "next_page"));
}

static void
list_files(struct api_call *c)
{
	const char *scope = query_get(&c->query, "scope_id");
	if (query_get(&c->query, "ids") || query_get(&c->query, "ids[]")) {
		list_files_by_id(c);
		return;
	}
	validate_list_docs(c, file_store_list, scope && *scope ? scope : NULL);
}

static void
delete_file(struct api_call *c)
{
	int r = file_store_delete(c->srv->db, c->params[0]);
	if (r != 0) {
		api_reply_err(c, r, r == AL_E_NOTFOUND ? "file not found" : "cannot delete file");
		return;
	}
	/* the row is gone (committed): the bytes follow; a crash here leaves bytes that
	 * the next start removes */
	file_store_unlink(c->srv->cfg.data_dir, c->params[0]);
	log_info("file deleted", "file_id", c->params[0]);
	audit_api(c, "file.delete", NULL, "ok", json_pack("{s:s}", "file_id", c->params[0]));
	api_reply_json(c, 200, json_pack("{s:s, s:s}", "id", c->params[0], "type", "file_deleted"));
}

/* ---- downloads ---- */

static void
download_file(struct api_call *c)
{
	json_t *doc = file_for_call(c);
	uint64_t size = 0;
	int fd = -1;
	if (doc == NULL)
		return;
	int r = file_store_open(c->srv->cfg.data_dir, c->params[0], &fd, &size);
	if (r != 0)
		api_reply_err(c, r == AL_E_NOTFOUND ? AL_E_IO : r, "cannot read file bytes");
	else
		upload_send_fd(c, fd, json_string_value(json_object_get(doc, "mime_type")));
	json_decref(doc);
}

#define CREDS_FILES CREDS_API

const struct api_route files_routes[] = {
    {"POST", "/v1/files", CREDS_FILES | API_RAW_BODY, upload_file},
    {"GET", "/v1/files", CREDS_FILES, list_files},
    {"GET", "/v1/files/{}", CREDS_FILES | PRINCIPAL_SESSION_TOKEN, get_file},
    {"DELETE", "/v1/files/{}", CREDS_FILES, delete_file},
    {"GET", "/v1/files/{}/content", CREDS_FILES | PRINCIPAL_SESSION_TOKEN, download_file},
    {NULL, NULL, 0, NULL},
};
