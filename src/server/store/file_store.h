/* The files table and the bytes behind it (docs/server/files.md): the only place with
 * SQL on files and the only code that touches <data_dir>/files/. An upload's bytes
 * land in a temporary file, are synced and renamed to their id, and only then is the
 * row committed; a delete removes the row first and the bytes after. */
#ifndef AL_SERVER_FILE_STORE_H
#define AL_SERVER_FILE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "doc_store.h"

struct db;

#define FILE_STORE_PATH_MAX 4096

/* Creates <data_dir>/files/ and files/tmp/ (0700), drops what an interrupted upload
 * left in tmp/, and removes bytes whose row never committed (a crash between the
 * rename and the commit) or whose row is gone (between a delete's commit and unlink). */
int file_store_init(struct db *db, const char *data_dir);

/* A new temporary file (0600) for an upload: *fd open for writing, path filled. */
int file_store_tmp_open(const char *data_dir, char *path, size_t pathsz, int *fd);
/* Syncs fd and renames path to the file's own name, then syncs the directory: once it
 * returns 0 the bytes survive a crash. Closes fd either way. */
int file_store_publish(const char *data_dir, int fd, const char *path, const char *id);
/* The durable step of a publish, for any finished file from file_store_tmp_open (skill
 * bundles take it too): syncs fd, closes it, renames tmp to dst and syncs dst's
 * directory dir. Closes fd either way; 0, or AL_E_IO with errno saying why. Unlinking
 * tmp after a failure is the caller's. */
int file_store_commit_tmp(int fd, const char *tmp, const char *dst, const char *dir);
/* Opens the bytes of file id for reading; *size from fstat. AL_E_NOTFOUND, AL_E_IO. */
int file_store_open(const char *data_dir, const char *id, int *fd, uint64_t *size);
/* Removes the bytes of file id (missing is fine). */
void file_store_unlink(const char *data_dir, const char *id);

/* Commits the row. scope_id may be NULL. */
int file_store_insert(struct db *db, const char *id, const json_t *doc, int64_t created_at,
                      const char *scope_id, uint64_t size, const char *sha256);
/* The file's document (new reference); *err: 0, AL_E_NOTFOUND or AL_E_IO. */
json_t *file_store_get(struct db *db, const char *id, int *err);
/* Deletes the row: 0, AL_E_NOTFOUND, AL_E_IO. The caller unlinks the bytes after. */
int file_store_delete(struct db *db, const char *id);
/* A page of files, newest first unless q says otherwise; scope_id NULL: every file. */
int file_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                    struct doc_page *out);

#endif
