/* What the upload routes share (files.c, skills.c): who may stream a body to disk, the
 * multipart state every upload starts with, and sending stored bytes back at the pace
 * the client reads. docs/server/files.md. */
#ifndef AL_SERVER_UPLOAD_H
#define AL_SERVER_UPLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "api.h"
#include "file_store.h"
#include "multipart.h"

/* First member of every upload's state, so one sink callback serves them all; it also
 * holds what every upload writes: the temporary file and the SHA-256 of what it took. */
struct upload_base {
	struct multipart *mp;
	char msg[200]; /* why the body was refused, for the client */
	void (*free)(void *u);
	int fd; /* the temporary file, -1 before upload_tmp_open */
	char tmp[FILE_STORE_PATH_MAX];
	EVP_MD_CTX *sha;
};

/* Sets b up with its parser and its owner's free function (the sink's abort calls it). */
void upload_base_init(struct upload_base *b, struct multipart *mp, void (*free)(void *u));
/* Frees what b holds; a temporary file still open is removed: nothing stored half-way. */
void upload_base_release(struct upload_base *b);
/* Opens b's temporary file under data_dir's files/tmp/. */
int upload_tmp_open(struct upload_base *b, const char *data_dir);
/* Writes all of p at off in the temporary file: 0, or -1 with errno. */
int upload_write(struct upload_base *b, uint64_t off, const void *p, size_t n);
/* The lower-case hex SHA-256 of what b's owner fed to b->sha. */
void upload_sha_hex(struct upload_base *b, char hex[65]);

/* Only a caller the route (POST pattern) will accept streams: anyone else takes the
 * buffered path (the usual 32 MiB cap) and dispatch's 401/403, so no stranger can make
 * the server write to disk. A user token whose key must be fetched goes that way too. */
bool upload_may_stream(struct server *srv, const struct http_request *req, const char *pattern);
/* The sink for an upload whose state starts with struct upload_base. */
struct http_body_sink upload_sink(void *u, size_t max_bytes);
/* Records why an upload refused its body; returns err (for multipart callbacks). */
int upload_refuse(struct upload_base *b, int err, const char *msg);
/* The call's upload, finished: the streamed one claimed from the request, or the
 * buffered body fed now to the one make() builds from the Content-Type (NULL: not
 * multipart). NULL after replying (400/413/500 with the reason). */
void *upload_take(struct api_call *c, void *(*make)(struct server *srv, const char *ctype));
/* Answers c with fd's bytes (fd is taken) as a chunked stream of content_type: 64 KiB
 * reads, at most 1 MiB queued; a read error aborts the stream. */
void upload_send_fd(struct api_call *c, int fd, const char *content_type);

#endif
