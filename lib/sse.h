/* Server-sent events: an incremental parser for the client side (WHATWG event-stream
 * rules: LF, CRLF or CR line ends, "field: value" lines, ':' comments, blank line
 * dispatches) with bounded line and event sizes, and the frame writer the server uses. */
#ifndef AL_SSE_H
#define AL_SSE_H

#include <stddef.h>

#include "buf.h"

struct sse_event {
	struct str event; /* "event:" value, empty when the frame had none */
	struct str data;  /* "data:" lines joined with '\n', no trailing newline */
	struct str id;    /* "id:" value given in this frame, empty when none */
};

/* Return 0 to go on; any other value stops the parser and is returned by feed. */
typedef int sse_event_fn(const struct sse_event *ev, void *arg);

struct sse_parser {
	struct buf line;
	struct buf event;
	struct buf data;
	struct buf id;
	size_t max_event;
	int err;         /* sticky: once a feed failed, every later feed returns it */
	unsigned state;  /* private: CR seen, BOM handling, data present */
	size_t comments; /* ':' lines seen (keepalives) */
	sse_event_fn *cb;
	void *arg;
};

/* max_line bounds one line, max_event the joined data of one event (0: 64 KiB, 16 MiB). */
void sse_parser_init(struct sse_parser *p, size_t max_line, size_t max_event, sse_event_fn *cb,
                     void *arg);
/* Feeds bytes split anywhere. Returns 0, AL_E_TOOBIG (a line or event over its bound)
 * or the callback's non-zero value. */
int sse_parser_feed(struct sse_parser *p, const char *data, size_t n);
void sse_parser_free(struct sse_parser *p);

/* Appends "id: <id>\nevent: <event>\ndata: <json>\n\n" (id and event optional). A json
 * with line breaks becomes several data lines, so a frame can never be split early.
 * AL_E_INVAL if event or id holds a line break, AL_E_TOOBIG if b is full. */
int sse_frame(struct buf *b, const char *event, const char *id, const char *json);

#endif
