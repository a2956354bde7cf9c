/* Files: rows in the database, bytes under <data_dir>/files/; see file_store.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "err.h"
#include "file_store.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

static int
dir_path(const char *data_dir, const char *sub, char *out, size_t outsz)
{
	int n = snprintf(out, outsz, "%s/files%s%s", data_dir, sub ? "/" : "", sub ? sub : "");
	return n < 0 || (size_t)n >= outsz ? AL_E_TOOBIG : 0;
}

static int
sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return AL_E_IO;
	int r = fsync(fd) == 0 ? 0 : AL_E_IO;
	close(fd);
	return r;
}

/* Ids are ours ("file_" and base62), but a name read back from the directory is
 * checked before it is used in a path or a query. */
static bool
file_id_ok(const char *id)
{
	if (strncmp(id, "file_", 5) != 0 || strlen(id) > 64)
		return false;
	for (const char *p = id + 5; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z')))
			return false;
	return id[5] != '\0';
}

int
file_store_init(struct db *db, const char *data_dir)
{
	char dir[FILE_STORE_PATH_MAX], tmp[FILE_STORE_PATH_MAX], p[FILE_STORE_PATH_MAX];
	int r = AL_E_IO;
	DIR *d = NULL;
	if (dir_path(data_dir, NULL, dir, sizeof(dir)) ||
	    dir_path(data_dir, "tmp", tmp, sizeof(tmp)))
		return AL_E_TOOBIG;
	if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(tmp, 0700) != 0 && errno != EEXIST)) {
		log_error("cannot create the files directory", "path", dir, "error",
		          strerror(errno));
		return AL_E_IO;
	}
	if ((d = opendir(tmp)) == NULL)
		goto out;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", tmp, e->d_name) < (int)sizeof(p) &&
		    unlink(p) == 0)
			log_info("removed an interrupted upload", "path", p);
	}
	closedir(d);
	if ((d = opendir(dir)) == NULL)
		goto out;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		int err = 0;
		if (!file_id_ok(e->d_name))
			continue;
		bool have = doc_store_exists(db, "SELECT 1 FROM files WHERE id = ?", e->d_name,
		                             NULL, NULL, &err);
		if (err != 0)
			goto out;
		if (!have && snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) < (int)sizeof(p) &&
		    unlink(p) == 0)
			log_info("removed file bytes without a row", "file_id", e->d_name);
	}
	r = 0;
out:
	if (d)
		closedir(d);
	if (r != 0)
		log_error("cannot read the files directory", "path", dir, "error", strerror(errno));
	return r;
}

int
file_store_tmp_open(const char *data_dir, char *path, size_t pathsz, int *fd)
{
	char *rnd = id_new("up_");
	int r = 0;
	if (snprintf(path, pathsz, "%s/files/tmp/%s", data_dir, rnd) >= (int)pathsz) {
		r = AL_E_TOOBIG;
		goto out;
	}
	*fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (*fd < 0) {
		log_error("cannot create an upload file", "path", path, "error", strerror(errno));
		r = AL_E_IO;
	}
out:
	free(rnd);
	return r;
}

int
file_store_commit_tmp(int fd, const char *tmp, const char *dst, const char *dir)
{
	if (fsync(fd) != 0) {
		int e = errno;
		close(fd);
		errno = e; /* the caller logs why the sync failed, not the close */
		return AL_E_IO;
	}
	if (close(fd) != 0 || rename(tmp, dst) != 0)
		return AL_E_IO;
	return sync_dir(dir);
}

int
file_store_publish(const char *data_dir, int fd, const char *path, const char *id)
{
	char dst[FILE_STORE_PATH_MAX], dir[FILE_STORE_PATH_MAX];
	int r = AL_E_IO;
	if (dir_path(data_dir, id, dst, sizeof(dst)) ||
	    dir_path(data_dir, NULL, dir, sizeof(dir))) {
		r = AL_E_TOOBIG;
		goto out;
	}
	r = file_store_commit_tmp(fd, path, dst, dir);
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (r != 0) {
		log_error("cannot store file bytes", "file_id", id, "error", strerror(errno));
		unlink(path);
	}
	return r;
}

int
file_store_open(const char *data_dir, const char *id, int *fd, uint64_t *size)
{
	char p[FILE_STORE_PATH_MAX];
	struct stat sb;
	if (!file_id_ok(id) || dir_path(data_dir, id, p, sizeof(p)))
		return AL_E_NOTFOUND;
	*fd = open(p, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOENT ? AL_E_NOTFOUND : AL_E_IO;
	if (fstat(*fd, &sb) != 0) {
		close(*fd);
		*fd = -1;
		return AL_E_IO;
	}
	*size = (uint64_t)sb.st_size;
	return 0;
}

void
file_store_unlink(const char *data_dir, const char *id)
{
	char p[FILE_STORE_PATH_MAX];
	if (file_id_ok(id) && dir_path(data_dir, id, p, sizeof(p)) == 0 && unlink(p) != 0 &&
	    errno != ENOENT)
		log_warn("cannot remove file bytes (removed at the next start)", "file_id", id,
		         "error", strerror(errno));
}

int
file_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at,
                  const char *scope_id, uint64_t size, const char *sha256)
{
	struct db_stmt *st = NULL;
	char *text = json_dumps(doc, JSON_COMPACT);
	int r = AL_E_IO;
	int64_t seq = db_next_seq(db, "files");
	if (seq < 0 || /* a row at seq -1 would sort first in every list, for ever */
	    db_prepare(db,
	               "INSERT INTO files (id, seq, created_at, scope_id, size_bytes, sha256, doc) "
	               "VALUES (?, ?, ?, ?, ?, ?, ?)",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, id);
	db_bind_int64(st, 2, seq);
	db_bind_int64(st, 3, created_at);
	db_bind_text(st, 4, scope_id);
	db_bind_int64(st, 5, (int64_t)size);
	db_bind_text(st, 6, sha256);
	db_bind_text(st, 7, text);
	if (db_step(st) == DB_DONE)
		r = 0;
	else
		log_error("cannot insert file", "error", db_errmsg(db));
out:
	db_finalize(st);
	free(text);
	return r;
}

json_t *
file_store_get(struct db *db, const char *id, int *err)
{
	return db_load_doc(db, "files", id, err);
}

int
file_store_delete(struct db *db, const char *id)
{
	return doc_store_change_one(db, "DELETE FROM files WHERE id = ?", id, NULL, NULL);
}

int
file_store_list(struct db *db, const char *scope_id, const struct doc_list *q, struct doc_page *out)
{
	return doc_store_page(db, "files", scope_id ? "scope_id" : NULL, scope_id, q, out);
}
