/* A bounded, streaming multipart/form-data parser (RFC 7578 over RFC 2046's framing):
 * fed the body in pieces as they arrive, it reports each part's headers, then its bytes,
 * then its end, holding at most one window of input. Uploads never sit whole in memory.
 * docs/lib/multipart.md. */
#ifndef AL_MULTIPART_H
#define AL_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

#define MULTIPART_MAX_BOUNDARY 70 /* RFC 2046 5.1.1 */

/* One part's headers as parsed. Strings are owned by the parser and valid until the
 * part ends. filename is NULL when the part has none (a plain field). */
struct multipart_part {
	const char *name;         /* Content-Disposition name (required) */
	const char *filename;     /* Content-Disposition filename, or NULL */
	const char *content_type; /* Content-Type, or "text/plain" (RFC 7578 4.4) */
	size_t index;             /* 0 for the first part */
};

/* Each returns 0 to go on, or an error (negative) that stops the parse and comes back
 * from multipart_feed unchanged. */
struct multipart_cb {
	int (*part_begin)(const struct multipart_part *p, void *arg);
	int (*part_data)(const char *data, size_t len, void *arg);
	int (*part_end)(void *arg);
};

struct multipart_limits {
	size_t max_parts;        /* more parts: AL_E_TOOBIG. Default 64 */
	size_t max_header_bytes; /* one part's header block: AL_E_TOOBIG. Default 8 KiB */
	size_t max_preamble;     /* bytes before the first boundary: AL_E_INVAL. Default 1 KiB */
};

struct multipart;

/* The boundary parameter of a Content-Type header value ("multipart/form-data;
 * boundary=xyz", quoted or not), checked against RFC 2046's grammar: 0, or AL_E_INVAL
 * (not multipart/form-data, no boundary, or a malformed one). out holds at least
 * MULTIPART_MAX_BOUNDARY + 1 bytes. */
int multipart_boundary(const char *content_type, char *out, size_t outsz);

/* lim may be NULL (defaults). boundary as multipart_boundary gives it. */
struct multipart *multipart_new(const char *boundary, const struct multipart_limits *lim,
                                const struct multipart_cb *cb, void *arg);
/* Feeds the next piece of the body. 0, AL_E_INVAL (malformed), AL_E_TOOBIG (a limit), or
 * a callback's error; after an error every later call returns it again. */
int multipart_feed(struct multipart *m, const char *data, size_t len);
/* The body ended: 0 when the closing boundary was seen, AL_E_INVAL otherwise (a
 * truncated body; a part in progress gets no part_end). */
int multipart_finish(struct multipart *m);
/* Why the last error happened, for the client ("" when none). */
const char *multipart_error(const struct multipart *m);
void multipart_free(struct multipart *m);

#endif
