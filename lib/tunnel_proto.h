/* The tunnel wire protocol shared by the server's edge and `airlock gateway`: the
 * HELLO/READY handshake that runs inside TLS before HTTP/2, and a small pump that
 * moves bytes between a non-blocking TLS socket and an nghttp2 session.
 * The format is documented in docs/proto/tunnel.md. */
#ifndef AL_TUNNEL_PROTO_H
#define AL_TUNNEL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "buf.h"

#define TUNNEL_ALPN "airlock-tunnel/1"
#define TUNNEL_MAGIC "AIRLOCK-TUNNEL/1"
#define TUNNEL_HANDSHAKE_MAX 4096
#define TUNNEL_TOKEN_PREFIX "alk_tnl_"
/* Both ends PING every TUNNEL_PING_MS and drop a connection silent for TUNNEL_DEAD_MS. */
#define TUNNEL_PING_MS 15000
#define TUNNEL_DEAD_MS 45000
/* Both ends accept HTTP/2 frames up to TUNNEL_MAX_FRAME; the gateway's DATA frames span
 * TUNNEL_DATA_RECORDS TLS records, so a bulk body costs one frame per 256 KiB. */
#define TUNNEL_MAX_FRAME (1 << 20)
#define TUNNEL_DATA_RECORDS 16
/* TLS 1.3 suites for the edge connection, both ends. AES-128-GCM first: the tunnel's
 * bulk throughput is bounded by CPU per byte on each side, and it needs 10 rounds per
 * block where AES-256 needs 14 (openssl speed here: 2.8 vs 2.5 GB/s); 128-bit keys are
 * TLS 1.3's mandatory suite and ample for a session key. */
#define TUNNEL_TLS13_SUITES                                                                        \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* TLS's largest record payload (RFC 8446 §5.1). */
#define TUNNEL_RECORD_MAX 16384
/* OpenSSL's read-ahead buffer: up to four records per recv (see tunnel_io_init). */
#define TUNNEL_READ_AHEAD (64 * 1024)
/* tunnel_io_read hands the session up to this much decrypted data per call. */
#define TUNNEL_READ_BATCH (256 * 1024)
/* TLS records are sent in batches of up to this (a write buffer before the socket). */
#define TUNNEL_WRITE_BATCH (256 * 1024)

/* One handshake message: a start line and up to 8 "Name: value" fields. */
struct tunnel_msg {
	int status;       /* reply only: 200, 400, 401, 403, 503; 0 for a HELLO */
	char reason[128]; /* reply only */
	struct {
		char name[32];
		char value[512];
	} f[8];
	size_t nf;
};

/* Looks for a complete message (ending "\r\n\r\n") at the start of p[0..n).
 * Returns the message length (>0) when one was parsed into *m, 0 when more bytes are
 * needed, AL_E_TOOBIG past TUNNEL_HANDSHAKE_MAX, AL_E_PROTO when malformed. is_reply
 * selects the start line form: "AIRLOCK-TUNNEL/1" or "AIRLOCK-TUNNEL/1 <code> <reason>". */
int tunnel_msg_parse(const char *p, size_t n, bool is_reply, struct tunnel_msg *m);
const char *tunnel_msg_get(const struct tunnel_msg *m, const char *name); /* NULL if absent */
/* Serializes m into out (appended). Field values must not hold CR or LF. */
int tunnel_msg_write(const struct tunnel_msg *m, bool is_reply, struct buf *out);
void tunnel_msg_add(struct tunnel_msg *m, const char *name, const char *value);

/* Non-blocking TLS byte pump. out[out_off..len) holds plaintext not yet accepted by
 * SSL_write; out.len is 0 whenever nothing is pending. */
struct tunnel_io {
	SSL *ssl;
	struct buf out;
	size_t out_off;  /* consumed prefix of out: no memmove per TLS record */
	bool want_write; /* SSL needs the socket writable to make progress */
	bool eof;        /* peer closed or fatal error */
};

void tunnel_io_init(struct tunnel_io *io, SSL *ssl);
void tunnel_io_reset(struct tunnel_io *io); /* frees out, SSL_free */
/* Reads what is available; calls feed(arg, p, n) per chunk (a non-zero return stops
 * and is returned). Returns 0 (would block), AL_E_CLOSED on EOF/error. */
int tunnel_io_read(struct tunnel_io *io, int (*feed)(void *arg, const char *p, size_t n),
                   void *arg);
/* Fills out from the nghttp2 session (if h2 non-NULL) and writes as much as the socket
 * takes. Returns 0 or AL_E_CLOSED. */
int tunnel_io_flush(struct tunnel_io *io, nghttp2_session *h2);

/* Writes n bytes to TLS in whole records from the caller's bytes; what would make a
 * short record, and what the socket does not take, is queued (a copy) behind anything
 * already queued and sent by the next tunnel_io_flush. For nghttp2's send_data callback
 * (NGHTTP2_DATA_FLAG_NO_COPY), which runs inside tunnel_io_flush. Returns 0 or
 * AL_E_CLOSED. */
int tunnel_io_write(struct tunnel_io *io, const void *p, size_t n);

/* Hop-by-hop headers that never cross the tunnel (RFC 9110 §7.6.1, RFC 9113 §8.2.2). */
bool tunnel_hop_header(const char *lname, size_t len);

/* ---- inner TLS (docs/proto/tunnel.md "Inner TLS") ----
 * A stream whose request carries INNER_TLS_HEADER is a byte pipe: its DATA frames carry a
 * TLS 1.3 session between the server's MCP client or ingress and the gateway, and
 * inside it one HTTP/1.1 exchange: the request with a content-length, the response head,
 * then its body until the gateway's close_notify. The edge relays ciphertext only. */
#define TUNNEL_INNER_HEADER "airlock-inner-tls"
#define TUNNEL_INNER_HEAD_MAX (64 * 1024)
#define TUNNEL_INNER_FIELDS 100

struct tunnel_slice {
	const char *p;
	size_t n;
};

/* One parsed HTTP/1.1 head; slices point into the parsed bytes. */
struct tunnel_head {
	struct tunnel_slice method, target; /* request */
	int status;                         /* response */
	struct {
		struct tunnel_slice name, value; /* value without surrounding whitespace */
	} f[TUNNEL_INNER_FIELDS];
	size_t nf;
};

/* Parses the head at the start of p[0..n): a request ("METHOD /target HTTP/1.1") or a
 * response ("HTTP/1.1 NNN reason"), CRLF lines, "name: value" fields, an empty line.
 * Returns the head's length (> 0), 0 when more bytes are needed, AL_E_TOOBIG past
 * TUNNEL_INNER_HEAD_MAX bytes or TUNNEL_INNER_FIELDS fields, AL_E_PROTO when malformed
 * (bare LF, obs-fold, control bytes, a bad start line or field name). */
int tunnel_head_parse(const char *p, size_t n, bool response, struct tunnel_head *h);
/* The first field named name (lower case; field names compare case-insensitively). */
const struct tunnel_slice *tunnel_head_get(const struct tunnel_head *h, const char *name);

/* A TLS session over memory: ciphertext in through tunnel_pipe_feed, out through
 * tunnel_pipe_take. */
struct tunnel_pipe {
	SSL *ssl;
	BIO *in, *out; /* owned by ssl */
};
/* Takes ssl (SSL_free'd by tunnel_pipe_free). 0 or AL_E_IO. */
int tunnel_pipe_init(struct tunnel_pipe *tp, SSL *ssl);
void tunnel_pipe_free(struct tunnel_pipe *tp);
int tunnel_pipe_feed(struct tunnel_pipe *tp, const void *p, size_t n); /* 0 or AL_E_IO */
/* Ciphertext waiting to leave, and a copy of up to len bytes of it (consumed). */
size_t tunnel_pipe_pending(struct tunnel_pipe *tp);
size_t tunnel_pipe_take(struct tunnel_pipe *tp, void *p, size_t len);
/* Plaintext in: bytes accepted (0 while the handshake waits for the peer), or AL_E_PROTO
 * (TLS failed; err says why). */
int tunnel_pipe_write(struct tunnel_pipe *tp, const void *p, size_t n, char *err, size_t errlen);
/* Plaintext out into b (at most what b's bound allows): 0 (would block), 1 (the peer's
 * close_notify came: no more), AL_E_TOOBIG (b full), AL_E_PROTO (err says why). */
int tunnel_pipe_read(struct tunnel_pipe *tp, struct buf *b, char *err, size_t errlen);
/* Sends close_notify (the response ends). */
void tunnel_pipe_close(struct tunnel_pipe *tp);

/* The body of an inner answer without a content-length: HTTP/1.1 chunked coding as the
 * gateway writes it (RFC 9112 §7.1): hex sizes, no extensions, no trailers. */
struct tunnel_chunked {
	int state;
	uint64_t left; /* bytes left in the current chunk, or the size being read */
	unsigned digits;
};
/* Decodes p[0..*n) in place: on return p[0..*n) holds the body bytes it carried, *used
 * how many input bytes were read. 0 (more to come), 1 (the last chunk ended the body;
 * input after it is not read), AL_E_PROTO (malformed). */
int tunnel_chunked_decode(struct tunnel_chunked *c, char *p, size_t *n, size_t *used);

#endif
