/* /v1/skills and /v1/skills/{id}/versions: a bundle uploaded as multipart files[] (each
 * part's filename is its path in the bundle) is checked part by part and written
 * straight into a ustar archive on disk, which is what a worker downloads. See
 * docs/server/skills.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "api.h"
#include "audit.h"
#include "auth.h"
#include "buf.h"
#include "err.h"
#include "file_store.h"
#include "log.h"
#include "multipart.h"
#include "routes.h"
#include "server.h"
#include "session_store.h"
#include "skill_bundle.h"
#include "skill_store.h"
#include "skills.h"
#include "upload.h"
#include "util.h"
#include "validate.h"
#include "xalloc.h"

#define SKILL_FORM_SLACK (1u << 20) /* multipart framing of up to 1000 parts */
#define SKILL_MAX_DISPLAY 256

/* ---- uploads ---- */

struct skill_upload {
	struct upload_base base; /* first: the shared sink reads it; the archive being written */
	struct server *srv;
	uint64_t off;    /* archive bytes written */
	uint64_t hdr_at; /* the current file's header */
	char path[SKILL_MAX_PATH + 1];
	char top[SKILL_MAX_PATH + 1];
	uint64_t part_size, total;
	size_t nfiles;
	json_t *paths; /* set of paths seen */
	bool in_file, in_display, in_skill_md, have_skill_md, have_display;
	struct buf skill_md, display;
	int64_t now;
};

static void
skill_upload_free(struct skill_upload *u)
{
	if (u == NULL)
		return;
	upload_base_release(&u->base);
	json_decref(u->paths);
	buf_free(&u->skill_md);
	buf_free(&u->display);
	free(u);
}

static void
skill_upload_free_any(void *u)
{
	skill_upload_free(u);
}

static int
su_refuse(struct skill_upload *u, int err, const char *msg)
{
	return upload_refuse(&u->base, err, msg);
}

static int
su_write(struct skill_upload *u, const void *p, size_t n)
{
	if (upload_write(&u->base, u->off, p, n) != 0) {
		log_error("cannot write a skill bundle", "path", u->base.tmp, "error",
		          strerror(errno));
		return su_refuse(u, AL_E_IO, "cannot store the skill bundle");
	}
	u->off += n;
	return 0;
}

static int
su_begin(const struct multipart_part *p, void *arg)
{
	struct skill_upload *u = arg;
	if (strcmp(p->name, "display_name") == 0) {
		if (u->have_display)
			return su_refuse(u, AL_E_INVAL, "display_name: given twice");
		u->have_display = u->in_display = true;
		return 0;
	}
	if (strcmp(p->name, "files[]") != 0 && strcmp(p->name, "files") != 0)
		return su_refuse(u, AL_E_INVAL, "form: unknown field (files[] and display_name)");
	if (p->filename == NULL)
		return su_refuse(u, AL_E_INVAL, "files: each part needs a filename (its path)");
	const char *why = skill_path_error(p->filename);
	if (why)
		return su_refuse(u, AL_E_INVAL, why);
	if (++u->nfiles > SKILL_MAX_FILES)
		return su_refuse(u, AL_E_TOOBIG, "files: at most 1000 files");
	size_t tl = strcspn(p->filename, "/");
	if (u->top[0] == '\0')
		snprintf(u->top, sizeof(u->top), "%.*s", (int)tl, p->filename);
	else if (strlen(u->top) != tl || strncmp(u->top, p->filename, tl) != 0)
		return su_refuse(u, AL_E_INVAL,
		                 "files: all files must be in the same top-level directory");
	if (json_object_get(u->paths, p->filename))
		return su_refuse(u, AL_E_INVAL, "files: a path was given twice");
	json_object_set_new(u->paths, p->filename, json_true());
	snprintf(u->path, sizeof(u->path), "%s", p->filename);
	u->in_skill_md = strcmp(p->filename + tl, "/SKILL.md") == 0;
	if (u->in_skill_md)
		u->have_skill_md = true;
	if (u->base.fd < 0 && upload_tmp_open(&u->base, u->srv->cfg.data_dir) != 0)
		return su_refuse(u, AL_E_IO, "cannot store the skill bundle");
	/* a header now, its size patched in at the end of the part */
	unsigned char hdr[SKILL_TAR_BLOCK];
	if (skill_tar_header(u->path, 0, u->now / 1000000, hdr) != 0)
		return su_refuse(u, AL_E_INVAL, "files: a path too long for the archive");
	u->hdr_at = u->off;
	u->part_size = 0;
	u->in_file = true;
	EVP_DigestUpdate(u->base.sha, u->path, strlen(u->path) + 1);
	return su_write(u, hdr, sizeof(hdr));
}

static int
su_data(const char *d, size_t n, void *arg)
{
	struct skill_upload *u = arg;
	if (u->in_display) {
		if (buf_add(&u->display, d, n) != 0)
			return su_refuse(u, AL_E_INVAL, "display_name: at most 256 bytes");
		return 0;
	}
	if (!u->in_file)
		return 0;
	if (n > SKILL_MAX_BYTES - u->total)
		return su_refuse(u, AL_E_TOOBIG, "files: a bundle is at most 30 MiB");
	u->total += n;
	u->part_size += n;
	if (u->in_skill_md && u->skill_md.len < SKILL_FRONT_MAX) {
		size_t k = SKILL_FRONT_MAX - u->skill_md.len;
		buf_add(&u->skill_md, d, n < k ? n : k);
	}
	EVP_DigestUpdate(u->base.sha, d, n);
	return su_write(u, d, n);
}

static int
su_end(void *arg)
{
	struct skill_upload *u = arg;
	if (u->in_display) {
		u->in_display = false;
		return 0;
	}
	if (!u->in_file)
		return 0;
	u->in_file = u->in_skill_md = false;
	unsigned char hdr[SKILL_TAR_BLOCK];
	if (skill_tar_header(u->path, u->part_size, u->now / 1000000, hdr) != 0)
		return su_refuse(u, AL_E_INVAL, "files: a path too long for the archive");
	if (pwrite(u->base.fd, hdr, sizeof(hdr), (off_t)u->hdr_at) != (ssize_t)sizeof(hdr))
		return su_refuse(u, AL_E_IO, "cannot store the skill bundle");
	static const unsigned char zero[SKILL_TAR_BLOCK];
	size_t pad = (SKILL_TAR_BLOCK - u->part_size % SKILL_TAR_BLOCK) % SKILL_TAR_BLOCK;
	return pad ? su_write(u, zero, pad) : 0;
}

static const struct multipart_cb skill_cb = {su_begin, su_data, su_end};

static struct skill_upload *
skill_upload_new(struct server *srv, const char *content_type)
{
	char boundary[MULTIPART_MAX_BOUNDARY + 1];
	if (multipart_boundary(content_type, boundary, sizeof(boundary)) != 0)
		return NULL;
	struct skill_upload *u = xcalloc(1, sizeof(*u));
	u->srv = srv;
	u->now = now_real_us();
	u->paths = json_object();
	buf_init(&u->skill_md, SKILL_FRONT_MAX);
	buf_init(&u->display, SKILL_MAX_DISPLAY);
	struct multipart_limits lim = {.max_parts = SKILL_MAX_FILES + 2};
	upload_base_init(&u->base, multipart_new(boundary, &lim, &skill_cb, u),
	                 skill_upload_free_any);
	return u;
}

static void *
skill_upload_make(struct server *srv, const char *content_type)
{
	return skill_upload_new(srv, content_type);
}

bool
skills_upload_hook(struct server *srv, struct http_request *req, struct http_body_sink *sink)
{
	const char *pattern =
	    strcmp(req->path, "/v1/skills") == 0 ? "/v1/skills" : "/v1/skills/{}/versions";
	if (!upload_may_stream(srv, req, pattern))
		return false;
	struct skill_upload *u = skill_upload_new(srv, http_request_header(req, "content-type"));
	if (u == NULL)
		return false;
	*sink = upload_sink(u, SKILL_MAX_BYTES + SKILL_FORM_SLACK);
	return true;
}

/* The upload of this call (streamed, or parsed now from a buffered body), finished and
 * checked: its front matter in *meta. NULL after replying. */
static struct skill_upload *
upload_for_call(struct api_call *c, struct skill_meta *meta)
{
	struct skill_upload *u;
	const char *why = NULL;
	if ((u = upload_take(c, skill_upload_make)) == NULL)
		return NULL;
	if (u->nfiles == 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "files: Field required");
		goto fail;
	}
	if (!u->have_skill_md) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "files: %s/SKILL.md is required at the top of the bundle", u->top);
		goto fail;
	}
	if (skill_front_matter(u->skill_md.data ? u->skill_md.data : "", u->skill_md.len, meta,
	                       &why) != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "%s", why);
		goto fail;
	}
	static const unsigned char end[2 * SKILL_TAR_BLOCK];
	if (su_write(u, end, sizeof(end)) != 0) {
		api_reply_err(c, AL_E_IO, "cannot store the skill bundle");
		goto fail;
	}
	return u;
fail:
	skill_upload_free(u);
	return NULL;
}

/* Version ids are decimal microsecond timestamps, as the reference's; strictly after
 * the skill's latest so a new version always sorts last. */
static char *
version_id_after(const char *latest, int64_t now)
{
	uint64_t l = 0;
	if (latest && *latest)
		parse_uint_cstr(latest, UINT64_MAX, &l);
	uint64_t v = (uint64_t)now > l ? (uint64_t)now : l + 1;
	return xasprintf("%llu", (unsigned long long)v);
}

static void
store_version(struct api_call *c, struct skill_upload *u, const struct skill_meta *meta,
              json_t *skill_new, const char *skill_id, const char *latest)
{
	json_t *ver = NULL;
	char *vid = version_id_after(latest, u->now);
	char hex[65];
	upload_sha_hex(&u->base, hex);
	int r = skill_store_publish(c->srv->cfg.data_dir, u->base.fd, u->base.tmp, skill_id, vid);
	u->base.fd = -1;
	if (r != 0) {
		api_reply_err(c, AL_E_IO, "cannot store the skill bundle");
		goto out;
	}
	ver = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "type", "skill_version", "id", vid,
	                "skill_id", skill_id, "name", meta->name, "description", meta->description,
	                "created_at", api_time(u->now));
	struct skill_version_new n = {
	    .skill_id = skill_id,
	    .version_id = vid,
	    .skill_doc = skill_new,
	    .version_doc = ver,
	    .now = u->now,
	    .size = u->off,
	    .sha256 = hex,
	};
	if ((r = skill_store_add_version(c->srv->db, &n)) != 0) {
		skill_store_unlink(c->srv->cfg.data_dir, skill_id, vid);
		api_reply_err(c, r, r == AL_E_NOTFOUND ? "skill not found" : "cannot store skill");
		goto out;
	}
	log_info("skill version created", "skill_id", skill_id, "version", vid, "name", meta->name);
	audit_api(
	    c, skill_new ? "skill.create" : "skill_version.create", NULL, "ok",
	    json_pack("{s:s, s:s, s:s}", "skill_id", skill_id, "version", vid, "sha256", hex));
	if (skill_new) {
		json_t *doc = json_deep_copy(skill_new);
		json_object_set_new(doc, "latest_version_id", json_string(vid));
		api_reply_json(c, 200, doc);
	} else {
		api_reply_json(c, 200, json_incref(ver));
	}
out:
	json_decref(ver);
	free(vid);
}

static void
create_skill(struct api_call *c)
{
	struct skill_meta meta;
	struct skill_upload *u = upload_for_call(c, &meta);
	if (u == NULL)
		return;
	char *id = id_new("skill_");
	char display[SKILL_MAX_DISPLAY + 1];
	snprintf(display, sizeof(display), "%.*s", (int)u->display.len,
	         u->display.data ? u->display.data : "");
	json_t *dn = json_string(display);
	if (u->have_display && (display[0] == '\0' || dn == NULL)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "display_name: 1 to 256 bytes of UTF-8 text");
		goto out;
	}
	json_t *skill = json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:o, s:o}", "type", "skill", "id",
	                          id, "display_name", u->have_display ? display : meta.name,
	                          "latest_version_id", "", "source", "type", "custom", "created_at",
	                          api_time(u->now), "updated_at", api_time(u->now));
	store_version(c, u, &meta, skill, id, NULL);
	json_decref(skill);
out:
	json_decref(dn);
	free(id);
	skill_upload_free(u);
}

static json_t *
skill_for_call(struct api_call *c)
{
	int err = AL_E_NOTFOUND;
	json_t *doc = NULL;
	if (id_valid(c->params[0], "skill_") == 0)
		doc = skill_store_get(c->srv->db, c->params[0], &err);
	if (doc == NULL)
		api_reply_err(c, err == AL_E_NOTFOUND ? AL_E_NOTFOUND : AL_E_IO,
		              err == AL_E_NOTFOUND ? "skill not found" : "cannot read skill");
	return doc;
}

static void
create_version(struct api_call *c)
{
	struct skill_meta meta;
	struct skill_upload *u = NULL;
	json_t *skill = skill_for_call(c);
	if (skill == NULL)
		return; /* the streamed body, unclaimed, is dropped with the request */
	if ((u = upload_for_call(c, &meta)) == NULL)
		goto out;
	if (u->have_display) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "display_name: set when the skill is created, not per version");
		goto out;
	}
	store_version(c, u, &meta, NULL, c->params[0],
	              json_string_value(json_object_get(skill, "latest_version_id")));
out:
	skill_upload_free(u);
	json_decref(skill);
}

static void
get_skill(struct api_call *c)
{
	json_t *doc = skill_for_call(c);
	if (doc)
		api_reply_json(c, 200, doc);
}

static void
list_skills(struct api_call *c)
{
	const char *source = query_get(&c->query, "source");
	if (source && *source && strcmp(source, "custom") != 0 &&
	    strcmp(source, "anthropic") != 0) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "source: must be 'custom' or 'anthropic'");
		return;
	}
	validate_list_docs_ext(c, skill_store_list, source && *source ? source : NULL, true);
}

static void
delete_skill(struct api_call *c)
{
	int r = id_valid(c->params[0], "skill_") == 0 ? skill_store_delete(c->srv->db, c->params[0])
	                                              : AL_E_NOTFOUND;
	if (r != 0) {
		api_reply_err(c, r, r == AL_E_NOTFOUND ? "skill not found" : "cannot delete skill");
		return;
	}
	skill_store_unlink_all(c->srv->cfg.data_dir, c->params[0]);
	log_info("skill deleted", "skill_id", c->params[0]);
	audit_api(c, "skill.delete", NULL, "ok", json_pack("{s:s}", "skill_id", c->params[0]));
	api_reply_json(c, 200,
	               json_pack("{s:s, s:s}", "id", c->params[0], "type", "skill_deleted"));
}

/* ---- versions ---- */

/* A sessions token reaches the skills of its session's agent only (its worker downloads
 * them); others see every skill. */
static bool
token_may_skill(struct api_call *c, const char *skill_id)
{
	if (c->who.kind != PRINCIPAL_SESSION_TOKEN)
		return true;
	int err;
	json_t *s = session_store_get(c->srv->db, c->who.session_id, &err);
	json_t *skills = json_object_get(json_object_get(s, "agent"), "skills");
	bool yes = false;
	for (size_t i = 0; i < json_array_size(skills) && !yes; i++) {
		const char *id =
		    json_string_value(json_object_get(json_array_get(skills, i), "skill_id"));
		yes = id && strcmp(id, skill_id) == 0;
	}
	json_decref(s);
	return yes;
}

static json_t *
version_for_call(struct api_call *c)
{
	int err = AL_E_NOTFOUND;
	json_t *doc = NULL;
	if (id_valid(c->params[0], "skill_") == 0 && token_may_skill(c, c->params[0]))
		doc = skill_store_version_get(c->srv->db, c->params[0], c->params[1], &err);
	if (doc == NULL)
		api_reply_err(c, err == AL_E_NOTFOUND ? AL_E_NOTFOUND : AL_E_IO,
		              err == AL_E_NOTFOUND ? "skill version not found"
		                                   : "cannot read skill version");
	return doc;
}

static void
get_version(struct api_call *c)
{
	json_t *doc = version_for_call(c);
	if (doc)
		api_reply_json(c, 200, doc);
}

static void
list_versions(struct api_call *c)
{
	json_t *skill = skill_for_call(c);
	if (skill == NULL)
		return;
	json_decref(skill);
	validate_list_docs(c, skill_store_version_list, c->params[0]);
}

static void
delete_version(struct api_call *c)
{
	json_t *doc = version_for_call(c);
	if (doc == NULL)
		return;
	const char *vid = json_string_value(json_object_get(doc, "id"));
	int r = skill_store_version_delete(c->srv->db, c->params[0], vid, now_real_us());
	if (r != 0) {
		api_reply_err(c, r, "cannot delete skill version");
		goto out;
	}
	skill_store_unlink(c->srv->cfg.data_dir, c->params[0], vid);
	audit_api(c, "skill_version.delete", NULL, "ok",
	          json_pack("{s:s, s:s}", "skill_id", c->params[0], "version", vid));
	api_reply_json(c, 200, json_pack("{s:s, s:s}", "id", vid, "type", "skill_version_deleted"));
out:
	json_decref(doc);
}

static void
download_version(struct api_call *c)
{
	json_t *doc = version_for_call(c);
	int fd = -1;
	if (doc == NULL)
		return;
	int r = skill_store_open(c->srv->cfg.data_dir, c->params[0],
	                         json_string_value(json_object_get(doc, "id")), &fd);
	json_decref(doc);
	if (r != 0) {
		api_reply_err(c, AL_E_IO, "cannot read the skill bundle");
		return;
	}
	upload_send_fd(c, fd, "application/x-tar");
}

/* ---- agents ---- */

int
skills_check_refs(struct api_call *c, const json_t *skills, const char *path)
{
	for (size_t i = 0; i < json_array_size(skills); i++) {
		const json_t *s = json_array_get(skills, i);
		if (strcmp(json_string_value(json_object_get(s, "type")), "custom") != 0)
			continue;
		const char *id = json_string_value(json_object_get(s, "skill_id"));
		const char *ver = json_string_value(json_object_get(s, "version"));
		int err = AL_E_NOTFOUND;
		json_t *v =
		    id_valid(id, "skill_") == 0
		        ? skill_store_version_get(c->srv->db, id, ver ? ver : "latest", &err)
		        : NULL;
		json_decref(v);
		if (v == NULL) {
			if (err == AL_E_NOTFOUND)
				api_reply_error(c, 400, "invalid_request_error", NULL,
				                "%s[%zu]: skill %s version %s not found", path, i,
				                id, ver ? ver : "latest");
			else
				api_reply_err(c, err, "cannot read skills");
			return AL_E_INVAL;
		}
	}
	return 0;
}

#define CREDS_SKILL_READ (CREDS_API | PRINCIPAL_SESSION_TOKEN)

const struct api_route skills_routes[] = {
    {"POST", "/v1/skills", CREDS_API | API_RAW_BODY, create_skill},
    {"GET", "/v1/skills", CREDS_API, list_skills},
    {"GET", "/v1/skills/{}", CREDS_API, get_skill},
    {"DELETE", "/v1/skills/{}", CREDS_API, delete_skill},
    {"POST", "/v1/skills/{}/versions", CREDS_API | API_RAW_BODY, create_version},
    {"GET", "/v1/skills/{}/versions", CREDS_API, list_versions},
    {"GET", "/v1/skills/{}/versions/{}", CREDS_SKILL_READ, get_version},
    {"DELETE", "/v1/skills/{}/versions/{}", CREDS_API, delete_version},
    {"GET", "/v1/skills/{}/versions/{}/content", CREDS_SKILL_READ, download_version},
    {NULL, NULL, 0, NULL},
};
