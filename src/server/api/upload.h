/* What the upload routes share (files.c, skills.c): who may stream a body to disk, the
 * multipart state every upload starts with, and sending stored bytes back at the pace
 * the client reads. docs/server/files.md. */
#ifndef AL_SERVER_UPLOAD_H
#define AL_SERVER_UPLOAD_H

#include <stdbool.h>

#include "api.h"
#include "multipart.h"

/* First member of every upload's state, so one sink callback serves them all. */
struct upload_base {
	struct multipart *mp;
	char msg[200]; /* why the body was refused, for the client */
	void (*free)(void *u);
};

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
