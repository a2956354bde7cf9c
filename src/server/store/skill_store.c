/* Skills: rows in the database, bundles under <data_dir>/skills/; see skill_store.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "db.h"
#include "err.h"
#include "file_store.h"
#include "log.h"
#include "skill_store.h"
#include "util.h"
#include "xalloc.h"

#define SKILL_PATH_MAX 4096

static int
bundle_path(const char *data_dir, const char *skill_id, const char *version_id, char *out,
            size_t outsz)
{
	int n = snprintf(out, outsz, "%s/skills/%s-%s.tar", data_dir, skill_id, version_id);
	return n < 0 || (size_t)n >= outsz ? AL_E_TOOBIG : 0;
}

/* Ids come from us, but they also name files: only [A-Za-z0-9_]. */
static bool
id_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= 'A' && *s <= 'Z') || *s == '_'))
			return false;
	return true;
}

int
skill_store_init(struct db *db, const char *data_dir)
{
	char dir[SKILL_PATH_MAX], p[SKILL_PATH_MAX];
	if (snprintf(dir, sizeof(dir), "%s/skills", data_dir) >= (int)sizeof(dir))
		return AL_E_TOOBIG;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		log_error("cannot create the skills directory", "path", dir, "error",
		          strerror(errno));
		return AL_E_IO;
	}
	DIR *d = opendir(dir);
	if (d == NULL)
		return AL_E_IO;
	int r = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		/* <skill_id>-<version_id>.tar; anything else is not ours to touch */
		char name[256];
		snprintf(name, sizeof(name), "%s", e->d_name);
		size_t n = strlen(name);
		char *dash = strchr(name, '-');
		if (n < 5 || strcmp(name + n - 4, ".tar") != 0 || dash == NULL)
			continue;
		name[n - 4] = '\0';
		*dash = '\0';
		if (!id_ok(name) || !id_ok(dash + 1))
			continue;
		int err;
		bool have = doc_store_exists(
		    db, "SELECT 1 FROM skill_versions WHERE skill_id = ? AND id = ?", name,
		    dash + 1, NULL, &err);
		if (err != 0) {
			r = err;
			break;
		}
		if (!have && snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) < (int)sizeof(p) &&
		    unlink(p) == 0)
			log_info("removed a skill bundle without a version", "path", p);
	}
	closedir(d);
	return r;
}

int
skill_store_publish(const char *data_dir, int fd, const char *tmp, const char *skill_id,
                    const char *version_id)
{
	char dst[SKILL_PATH_MAX], dir[SKILL_PATH_MAX];
	int r = AL_E_IO;
	if (!id_ok(skill_id) || !id_ok(version_id) ||
	    bundle_path(data_dir, skill_id, version_id, dst, sizeof(dst)) ||
	    snprintf(dir, sizeof(dir), "%s/skills", data_dir) >= (int)sizeof(dir))
		goto out;
	r = file_store_commit_tmp(fd, tmp, dst, dir);
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (r != 0) {
		log_error("cannot store a skill bundle", "skill_id", skill_id, "error",
		          strerror(errno));
		unlink(tmp);
	}
	return r;
}

int
skill_store_open(const char *data_dir, const char *skill_id, const char *version_id, int *fd)
{
	char p[SKILL_PATH_MAX];
	if (!id_ok(skill_id) || !id_ok(version_id) ||
	    bundle_path(data_dir, skill_id, version_id, p, sizeof(p)))
		return AL_E_NOTFOUND;
	*fd = open(p, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOENT ? AL_E_NOTFOUND : AL_E_IO;
	return 0;
}

void
skill_store_unlink(const char *data_dir, const char *skill_id, const char *version_id)
{
	char p[SKILL_PATH_MAX];
	if (id_ok(skill_id) && id_ok(version_id) &&
	    bundle_path(data_dir, skill_id, version_id, p, sizeof(p)) == 0 && unlink(p) != 0 &&
	    errno != ENOENT)
		log_warn("cannot remove a skill bundle (removed at the next start)", "path", p);
}

void
skill_store_unlink_all(const char *data_dir, const char *skill_id)
{
	char dir[SKILL_PATH_MAX], p[SKILL_PATH_MAX], prefix[80];
	if (!id_ok(skill_id) ||
	    snprintf(dir, sizeof(dir), "%s/skills", data_dir) >= (int)sizeof(dir))
		return;
	snprintf(prefix, sizeof(prefix), "%s-", skill_id);
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 &&
		    snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) < (int)sizeof(p))
			unlink(p);
	closedir(d);
}

int
skill_store_add_version(struct db *db, const struct skill_version_new *n)
{
	struct db_stmt *st = NULL;
	json_t *skill = NULL;
	char *sdoc = NULL, *vdoc = json_dumps(n->version_doc, JSON_COMPACT);
	int r, err = 0;
	if ((r = db_begin(db)) != 0)
		goto out;
	r = AL_E_IO;
	if (n->skill_doc) {
		sdoc = json_dumps(n->skill_doc, JSON_COMPACT);
		if (db_prepare(
		        db,
		        "INSERT INTO skills (id, seq, created_at, source, doc) VALUES (?, ?, ?, "
		        "?, ?)",
		        &st) != 0)
			goto fail;
		int64_t seq = db_next_seq(db, "skills");
		if (seq < 0) /* a row at seq -1 would sort first in every list, for ever */
			goto fail;
		db_bind_text(st, 1, n->skill_id);
		db_bind_int64(st, 2, seq);
		db_bind_int64(st, 3, n->now);
		db_bind_text(st, 4, "custom");
		db_bind_text(st, 5, sdoc);
		if (db_step(st) != DB_DONE)
			goto fail;
		db_finalize(st);
		st = NULL;
	}
	if ((skill = skill_store_get(db, n->skill_id, &err)) == NULL) {
		r = err;
		goto fail;
	}
	if (db_prepare(db,
	               "INSERT INTO skill_versions (id, skill_id, seq, created_at, size_bytes, "
	               "sha256, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
	               &st) != 0)
		goto fail;
	int64_t vseq = db_next_seq(db, "skill_versions");
	if (vseq < 0)
		goto fail;
	db_bind_text(st, 1, n->version_id);
	db_bind_text(st, 2, n->skill_id);
	db_bind_int64(st, 3, vseq);
	db_bind_int64(st, 4, n->now);
	db_bind_int64(st, 5, (int64_t)n->size);
	db_bind_text(st, 6, n->sha256);
	db_bind_text(st, 7, vdoc);
	if (db_step(st) != DB_DONE)
		goto fail;
	json_object_set_new(skill, "latest_version_id", json_string(n->version_id));
	json_object_set_new(skill, "updated_at", doc_store_time(n->now));
	if (db_set_doc(db, "skills", n->skill_id, skill, 0) != 0 || db_commit(db) != 0)
		goto fail;
	r = 0;
	goto out;
fail:
	if (r == 0)
		r = AL_E_IO;
	db_rollback(db);
out:
	db_finalize(st);
	json_decref(skill);
	free(sdoc);
	free(vdoc);
	return r;
}

json_t *
skill_store_get(struct db *db, const char *id, int *err)
{
	return db_load_doc(db, "skills", id, err);
}

int
skill_store_list(struct db *db, const char *source, const struct doc_list *q, struct doc_page *out)
{
	return doc_store_page(db, "skills", source ? "source" : NULL, source, q, out);
}

int
skill_store_delete(struct db *db, const char *id)
{
	int r;
	if ((r = db_begin(db)) != 0)
		return r;
	if ((r = doc_store_exec(db, "skill", "DELETE FROM skill_versions WHERE skill_id = ?", id,
	                        NULL, NULL)) != 0 ||
	    (r = doc_store_exec(db, "skill", "DELETE FROM skills WHERE id = ?", id, NULL, NULL)) !=
	        0)
		goto fail;
	if (db_changes(db) != 1) {
		r = AL_E_NOTFOUND;
		goto fail;
	}
	if ((r = db_commit(db)) != 0)
		goto fail;
	return 0;
fail:
	db_rollback(db);
	return r;
}

json_t *
skill_store_version_get(struct db *db, const char *skill_id, const char *version, int *err)
{
	struct db_stmt *st = NULL;
	json_t *doc = NULL, *skill = NULL;
	*err = AL_E_IO;
	if (strcmp(version, "latest") == 0) {
		if ((skill = skill_store_get(db, skill_id, err)) == NULL)
			return NULL;
		version = json_string_value(json_object_get(skill, "latest_version_id"));
		if (version == NULL || *version == '\0') {
			*err = AL_E_NOTFOUND;
			goto out;
		}
	}
	if (db_prepare(db, "SELECT doc FROM skill_versions WHERE skill_id = ? AND id = ?", &st) !=
	    0)
		goto out;
	db_bind_text(st, 1, skill_id);
	db_bind_text(st, 2, version);
	int rc = db_step(st);
	if (rc == DB_ROW) {
		doc = db_col_json(st, 0);
		*err = doc ? 0 : AL_E_IO;
	} else if (rc == DB_DONE) {
		*err = AL_E_NOTFOUND;
	}
out:
	db_finalize(st);
	json_decref(skill);
	return doc;
}

int
skill_store_version_list(struct db *db, const char *skill_id, const struct doc_list *q,
                         struct doc_page *out)
{
	return doc_store_page(db, "skill_versions", "skill_id", skill_id, q, out);
}

int
skill_store_version_delete(struct db *db, const char *skill_id, const char *version_id, int64_t now)
{
	struct db_stmt *st = NULL;
	json_t *skill = NULL;
	int r, err;
	if ((r = db_begin(db)) != 0)
		return r;
	if ((r = doc_store_exec(db, "skill",
	                        "DELETE FROM skill_versions WHERE skill_id = ? AND id = ?",
	                        skill_id, version_id, NULL)) != 0)
		goto fail;
	if (db_changes(db) != 1) {
		r = AL_E_NOTFOUND;
		goto fail;
	}
	r = AL_E_IO;
	if ((skill = skill_store_get(db, skill_id, &err)) == NULL) {
		r = err;
		goto fail;
	}
	if (db_prepare(db,
	               "SELECT id FROM skill_versions WHERE skill_id = ? ORDER BY seq DESC LIMIT 1",
	               &st) != 0)
		goto fail;
	db_bind_text(st, 1, skill_id);
	int rc = db_step(st);
	if (rc != DB_ROW && rc != DB_DONE)
		goto fail;
	json_object_set_new(skill, "latest_version_id",
	                    json_string(rc == DB_ROW ? db_col_text(st, 0) : ""));
	json_object_set_new(skill, "updated_at", doc_store_time(now));
	if (db_set_doc(db, "skills", skill_id, skill, 0) != 0 || db_commit(db) != 0)
		goto fail;
	db_finalize(st);
	json_decref(skill);
	return 0;
fail:
	db_finalize(st);
	json_decref(skill);
	db_rollback(db);
	return r;
}

char *
skill_store_prompt(struct db *db, const json_t *skills)
{
	struct buf b;
	size_t n = 0;
	buf_init(&b, 1 << 20);
	buf_add_str(&b, "The following skills are available. Each is a directory under skills/ "
	                "in your working directory; read its SKILL.md for the instructions "
	                "before you use it.\n\n<available_skills>\n");
	for (size_t i = 0; i < json_array_size(skills); i++) {
		const json_t *s = json_array_get(skills, i);
		const char *type = json_string_value(json_object_get(s, "type"));
		const char *id = json_string_value(json_object_get(s, "skill_id"));
		const char *ver = json_string_value(json_object_get(s, "version"));
		int err;
		if (type == NULL || strcmp(type, "custom") != 0 || id == NULL)
			continue;
		json_t *v = skill_store_version_get(db, id, ver ? ver : "latest", &err);
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *desc = json_string_value(json_object_get(v, "description"));
		if (name && desc &&
		    buf_addf(&b,
		             "<skill>\n<name>%s</name>\n<description>%s</description>\n"
		             "<location>skills/%s/SKILL.md</location>\n</skill>\n",
		             name, desc, name) == 0)
			n++;
		json_decref(v);
	}
	if (n == 0 || buf_add_str(&b, "</available_skills>") != 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}
