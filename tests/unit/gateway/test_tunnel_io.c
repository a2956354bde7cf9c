/* Torture tests for struct tunnel_io (lib/tunnel_proto.c), the non-blocking TLS pump
 * of the tunnel: record coalescing counted on the wire, a slow reader behind tiny socket
 * buffers, and a peer that goes away mid-stream. Real TLS 1.3 over loopback TCP. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>

#include "err.h"
#include "tunnel_proto.h"
#include "testcert.h"
#include "tls.h"

/* One certificate and both ends' contexts, configured as the edge and the gateway do. */
static struct {
	char dir[64], cert[96], key[96];
	struct tls_server_ctx *edge;
	SSL_CTX *gw;
} fx;

static int
group_setup(void **state)
{
	(void)state;
	char err[256];
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/test_tunnel_io.XXXXXX");
	if (mkdtemp(fx.dir) == NULL)
		return -1;
	snprintf(fx.cert, sizeof(fx.cert), "%s/cert.pem", fx.dir);
	snprintf(fx.key, sizeof(fx.key), "%s/key.pem", fx.dir);
	if (testcert_write(fx.cert, fx.key, "localhost", NULL) != 0)
		return -1;
	if ((fx.edge = tls_server_ctx_new(fx.cert, fx.key, NULL, err, sizeof(err))) == NULL)
		return -1;
	SSL_CTX_set_min_proto_version(fx.edge->ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(fx.edge->ctx, TUNNEL_TLS13_SUITES);
	fx.gw = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(fx.gw, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(fx.gw, TUNNEL_TLS13_SUITES);
	SSL_CTX_set_verify(fx.gw, SSL_VERIFY_NONE, NULL); /* trust is not under test here */
	SSL_CTX_set_mode(fx.gw,
	                 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	SSL_CTX_free(fx.gw);
	tls_server_ctx_free(fx.edge);
	unlink(fx.cert);
	unlink(fx.key);
	rmdir(fx.dir);
	return 0;
}

/* Byte i of every stream: position-dependent, so a lost, repeated or reordered byte
 * shows up at the first place it happens. */
static uint8_t
pattern(uint64_t i)
{
	uint64_t z = (i >> 3) + 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (uint8_t)(z >> ((i & 7) * 8));
}

static void
pattern_fill(uint8_t *p, size_t n, uint64_t from)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pattern(from + i);
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t
pending(const struct tunnel_io *io)
{
	return io->out.len - io->out_off;
}

/* A connected loopback TCP pair, both ends non-blocking, as the edge and gateway run.
 * bufsz > 0 shrinks SO_SNDBUF and SO_RCVBUF on both ends (set before connect/listen,
 * so the window is negotiated small). fd[0] is the client (gateway) end. */
static void
tcp_pair(int fd[2], int bufsz)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int one = 1;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0 && fd[0] >= 0);
	if (bufsz > 0)
		for (int i = 0; i < 2; i++) {
			int s = i ? l : fd[0];
			assert_int_equal(
			    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz)), 0);
			assert_int_equal(
			    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz)), 0);
		}
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(connect(fd[0], (struct sockaddr *)&a, sizeof(a)), 0);
	fd[1] = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	assert_true(fd[1] >= 0);
	close(l);
	assert_int_equal(fcntl(fd[0], F_SETFL, fcntl(fd[0], F_GETFL) | O_NONBLOCK), 0);
	for (int i = 0; i < 2; i++)
		setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int
collect_feed(void *arg, const char *p, size_t n)
{
	return buf_add(arg, p, n);
}

/* The gateway end (TLS client) and the edge end (TLS server) of a tunnel, set up as
 * gateway.c and tunnel_edge.c do: tunnel_io_init before the handshake. */
static void
io_open(struct tunnel_io *io, int fd, bool server)
{
	SSL *ssl = SSL_new(server ? fx.edge->ctx : fx.gw);
	assert_non_null(ssl);
	assert_int_equal(SSL_set_fd(ssl, fd), 1);
	if (server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	tunnel_io_init(io, ssl);
}

/* One non-blocking handshake step; true once it is done (SSL_do_handshake answers 1
 * again after that). */
static bool
hs_step(SSL *ssl)
{
	ERR_clear_error();
	int r = SSL_do_handshake(ssl);
	if (r == 1)
		return true;
	int e = SSL_get_error(ssl, r);
	assert_true(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE);
	return false;
}

/* Polls until one of fds is ready. The timeout only turns a hang into a clear failure
 * (no progress in a minute); nothing is asserted about speed. */
static void
wait_any(struct pollfd *p, int n, int *stalls)
{
	int r = poll(p, (nfds_t)n, 2000);
	assert_true(r >= 0);
	*stalls = r == 0 ? *stalls + 1 : 0;
	assert_true(*stalls < 30);
}

static void
handshake(struct tunnel_io *a, struct tunnel_io *b)
{
	int stalls = 0;
	for (;;) {
		bool da = hs_step(a->ssl), db = hs_step(b->ssl);
		if (da && db)
			break;
		struct pollfd p[2] = {{.fd = SSL_get_fd(a->ssl), .events = da ? 0 : POLLIN},
		                      {.fd = SSL_get_fd(b->ssl), .events = db ? 0 : POLLIN}};
		wait_any(p, 2, &stalls);
	}
}

/* ---- A tap on the wire: test 1 counts TLS records. --------------------------------
 * The gateway and the edge talk through a relay in the test: it reads the raw bytes the
 * gateway sends, parses the 5-byte record headers as they pass, and forwards them. */
struct tap {
	int gw_fd, edge_fd; /* the relay's ends: towards the gateway, towards the edge */
	uint8_t hdr[5];
	size_t hdr_have, body_left;
	size_t app_records, other_records, max_body;
};

static void
tap_count(struct tap *t, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (t->hdr_have < 5) {
			size_t k = 5 - t->hdr_have < n ? 5 - t->hdr_have : n;
			memcpy(t->hdr + t->hdr_have, p, k);
			t->hdr_have += k;
			p += k;
			n -= k;
			if (t->hdr_have < 5)
				break;
			t->body_left = (size_t)t->hdr[3] << 8 | t->hdr[4];
			if (t->hdr[0] == 0x17) /* TLS 1.3: application data, and all encrypted */
				t->app_records++;
			else
				t->other_records++;
			if (t->body_left > t->max_body)
				t->max_body = t->body_left;
		}
		size_t k = t->body_left < n ? t->body_left : n;
		p += k;
		n -= k;
		t->body_left -= k;
		if (t->body_left == 0)
			t->hdr_have = 0;
	}
}

static void
send_all(int fd, const uint8_t *p, size_t n)
{
	int stalls = 0;
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			wait_any(&pf, 1, &stalls);
			continue;
		}
		assert_true(k > 0);
		p += k;
		n -= (size_t)k;
	}
}

/* Forwards what is there in both directions, counting the gateway's records. */
static void
tap_pump(struct tap *t)
{
	static uint8_t b[65536];
	ssize_t n;
	while ((n = recv(t->gw_fd, b, sizeof(b), 0)) > 0) {
		tap_count(t, b, (size_t)n);
		send_all(t->edge_fd, b, (size_t)n);
	}
	assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	while ((n = recv(t->edge_fd, b, sizeof(b), 0)) > 0)
		send_all(t->gw_fd, b, (size_t)n);
	assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* Flushes the gateway and pumps the tap until the edge has decrypted want bytes. */
static void
tap_expect(struct tap *t, struct tunnel_io *gw, struct tunnel_io *edge, struct buf *got,
           size_t want)
{
	int stalls = 0;
	while (got->len < want) {
		assert_int_equal(tunnel_io_flush(gw, NULL), 0);
		struct pollfd p[2] = {{.fd = t->gw_fd, .events = POLLIN},
		                      {.fd = SSL_get_fd(edge->ssl), .events = POLLIN}};
		wait_any(p, 2, &stalls);
		tap_pump(t);
		assert_int_equal(tunnel_io_read(edge, collect_feed, got), 0);
	}
	assert_int_equal(got->len, want);
}

/* Test 1: how many TLS records a sequence of tunnel_io_write calls becomes. Writes
 * shorter than a record together wait in the queue for the flush and go out as one;
 * a write that would reach a record sends the queue, then itself in full records. */
static void
test_records_on_the_wire(void **state)
{
	(void)state;
	static const struct {
		const char *what;
		size_t sizes[4];
		size_t queued; /* expected in io->out after the writes, before the flush */
		size_t records;
	} cases[] = {
	    {"three small frames share one record", {13, 200, 900}, 1113, 1},
	    {"one byte short of a record stays queued", {8000, 8383}, 16383, 1},
	    {"reaching a record sends the queue, then the write", {8000, 8384}, 0, 2},
	    {"100 KiB goes out in full records", {100 * 1024}, 0, 7},
	    {"one byte over a record", {16385}, 0, 2},
	    {"small frame, then bulk", {100, 40000}, 0, 1 + 3},
	    {"small frames after bulk wait again", {40000, 100, 50}, 150, 3 + 1},
	};
	static uint8_t data[128 * 1024];
	int gw_side[2], edge_side[2];
	struct tunnel_io gw, edge;
	struct buf got;
	tcp_pair(gw_side, 0);
	tcp_pair(edge_side, 0);
	struct tap t = {.gw_fd = gw_side[1], .edge_fd = edge_side[0]};
	io_open(&gw, gw_side[0], false);
	io_open(&edge, edge_side[1], true);
	buf_init(&got, 1 << 20);
	int stalls = 0;
	for (;;) {
		bool dg = hs_step(gw.ssl), de = hs_step(edge.ssl);
		if (dg && de)
			break;
		struct pollfd p[2] = {{.fd = t.gw_fd, .events = POLLIN},
		                      {.fd = t.edge_fd, .events = POLLIN}};
		wait_any(p, 2, &stalls);
		tap_pump(&t);
	}
	uint64_t pos = 0;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		t.app_records = t.other_records = t.max_body = 0;
		buf_reset(&got);
		uint64_t start = pos;
		for (size_t i = 0; i < 4 && cases[c].sizes[i]; i++) {
			size_t n = cases[c].sizes[i];
			pattern_fill(data, n, pos);
			assert_int_equal(tunnel_io_write(&gw, data, n), 0);
			pos += n;
		}
		assert_false(gw.want_write);
		if (pending(&gw) != cases[c].queued)
			fail_msg("%s: %zu bytes queued, want %zu", cases[c].what, pending(&gw),
			         cases[c].queued);
		if (cases[c].queued == pos - start) { /* all queued: nothing may be on the wire */
			char b;
			assert_int_equal(recv(t.gw_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT), -1);
		}
		tap_expect(&t, &gw, &edge, &got, (size_t)(pos - start));
		assert_int_equal(pending(&gw), 0);
		for (size_t i = 0; i < got.len; i++)
			if ((uint8_t)got.data[i] != pattern(start + i))
				fail_msg("%s: byte %zu differs", cases[c].what, i);
		if (t.app_records != cases[c].records || t.other_records != 0)
			fail_msg("%s: %zu application records (+%zu other), want %zu",
			         cases[c].what, t.app_records, t.other_records, cases[c].records);
		/* 16 KiB of plaintext, the content type byte and the AEAD tag */
		assert_true(t.max_body <= TUNNEL_RECORD_MAX + 1 + 16);
	}
	buf_free(&got);
	tunnel_io_reset(&gw);
	tunnel_io_reset(&edge);
	for (int i = 0; i < 2; i++) {
		close(gw_side[i]);
		close(edge_side[i]);
	}
}

/* ---- Test 2: a slow reader behind small socket buffers. ---------------------------- */

#define TORTURE_BYTES (20u << 20)
#define TORTURE_CHUNK_MAX (300u * 1024)
/* The writer stops adding once this much is queued, as pump() does at 256 KiB, so the
 * queue may reach this plus one write and never more. */
#define TORTURE_QUEUE_SOFT (256u * 1024)

/* Frame-sized writes mostly, some around a record, some bulk up to 300 KiB. */
static size_t
torture_size(uint64_t *s)
{
	uint64_t r = xorshift(s);
	switch (r & 7) {
	case 0:
	case 1:
	case 2:
	case 3:
		return 1 + (size_t)(r >> 8) % 2048;
	case 4:
	case 5:
		return 1 + (size_t)(r >> 8) % (64 * 1024);
	case 6:
		return TUNNEL_RECORD_MAX - 1 + (size_t)(r >> 8) % 3;
	default:
		return 1 + (size_t)(r >> 8) % TORTURE_CHUNK_MAX;
	}
}

struct check {
	uint64_t pos;
	uint64_t bad_at; /* UINT64_MAX while every byte matched */
};

static int
check_feed(void *arg, const char *p, size_t n)
{
	struct check *c = arg;
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)p[i] != pattern(c->pos + i)) {
			c->bad_at = c->pos + i;
			return AL_E_PROTO;
		}
	c->pos += n;
	return 0;
}

/* What the run went through: each path of tunnel_io_write must have been taken, or
 * the run proved nothing about it. */
struct torture_stats {
	size_t writes, flushes, want_write, queued_max;
	size_t coalesced; /* a short write queued while the socket had room */
	size_t split;     /* a write sent in part from the caller's bytes, the rest queued */
	size_t behind;    /* a write queued behind a queue the socket did not take */
};

/* One tunnel_io_write with the invariants that must hold around it. */
static void
torture_write(struct tunnel_io *io, const uint8_t *p, size_t n, struct torture_stats *st)
{
	size_t before = pending(io);
	bool full = io->want_write;
	assert_int_equal(tunnel_io_write(io, p, n), 0);
	size_t after = pending(io);
	assert_true(after <= before + n); /* nothing is queued twice */
	if (!full && before + n < TUNNEL_RECORD_MAX)
		st->coalesced++;
	else if (!full && before == 0 && after > 0 && after < n)
		st->split++;
	else if (!full && before > 0 && after > before)
		st->behind++;
	/* A socket that took everything leaves only a short record's worth queued. */
	if (!io->want_write && after >= TUNNEL_RECORD_MAX)
		fail_msg("%zu bytes queued without want_write", after);
	if (after > st->queued_max)
		st->queued_max = after;
	assert_true(after <= TORTURE_QUEUE_SOFT + TORTURE_CHUNK_MAX);
	st->writes++;
}

/* One tunnel_io_flush: it only shrinks the queue, and returns with want_write clear
 * only when everything, the write buffer BIO included, is on the socket. */
static void
torture_flush(struct tunnel_io *io, struct torture_stats *st)
{
	size_t before = pending(io);
	assert_int_equal(tunnel_io_flush(io, NULL), 0);
	assert_true(pending(io) <= before);
	if (io->want_write)
		st->want_write++;
	else {
		assert_int_equal(pending(io), 0);
		assert_int_equal(BIO_wpending(SSL_get_wbio(io->ssl)), 0);
	}
	st->flushes++;
}

static void
torture(bool edge_sends, uint64_t seed)
{
	static uint8_t chunk[TORTURE_CHUNK_MAX];
	int fd[2];
	struct tunnel_io cli, srv;
	tcp_pair(fd, 4096); /* the kernel rounds up to its minimum, a few KiB */
	io_open(&cli, fd[0], false);
	io_open(&srv, fd[1], true);
	handshake(&cli, &srv);
	struct tunnel_io *tx = edge_sends ? &srv : &cli, *rx = edge_sends ? &cli : &srv;
	int txfd = SSL_get_fd(tx->ssl), rxfd = SSL_get_fd(rx->ssl);
	struct check chk = {.pos = 0, .bad_at = UINT64_MAX};
	struct torture_stats st = {0};
	uint64_t sizes = seed, lazy = seed ^ 0x5555, sent = 0;
	int stalls = 0, since_flush = 0;
	bool polite = false;
	int polite_writes = 0, eager_turns = 0;
	while (chk.pos < TORTURE_BYTES) {
		/* A few writes per turn. In polite stretches the writer waits while the socket
		 * is full, as pump() does, so writes meet a socket with room and go out from
		 * the caller's bytes; in eager ones it keeps writing and they queue. */
		if (polite ? polite_writes >= 48 : ++eager_turns >= 16) {
			polite = !polite;
			polite_writes = eager_turns = 0;
		}
		for (int i = 0; i < 4 && sent < TORTURE_BYTES && pending(tx) < TORTURE_QUEUE_SOFT &&
		                !(polite && tx->want_write);
		     i++) {
			size_t n = torture_size(&sizes);
			if (n > TORTURE_BYTES - sent)
				n = (size_t)(TORTURE_BYTES - sent);
			pattern_fill(chunk, n, sent);
			torture_write(tx, chunk, n, &st);
			polite_writes += polite;
			sent += n;
			since_flush++;
		}
		if (tx->want_write || since_flush >= 3 || sent == TORTURE_BYTES) {
			torture_flush(tx, &st);
			since_flush = 0;
		}
		/* While the writer is eager the reader sits out one turn in three. */
		bool reads = polite || xorshift(&lazy) % 3 != 0;
		bool tx_busy = tx->want_write || (sent == TORTURE_BYTES && pending(tx) > 0);
		struct pollfd p[2] = {{.fd = txfd, .events = tx_busy ? POLLOUT : 0},
		                      {.fd = rxfd, .events = reads ? POLLIN : 0}};
		if (!reads || (!tx_busy && sent < TORTURE_BYTES))
			assert_true(poll(p, 2, 0) >= 0); /* someone can move without waiting */
		else
			wait_any(p, 2, &stalls);
		if (reads) {
			int r = tunnel_io_read(rx, check_feed, &chk);
			if (r != 0)
				fail_msg("read: %d (%s); first wrong byte %llu, %llu delivered", r,
				         al_strerror(r), (unsigned long long)chk.bad_at,
				         (unsigned long long)chk.pos);
		}
	}
	assert_int_equal(chk.pos, TORTURE_BYTES);
	assert_int_equal(pending(tx), 0);
	print_message("%s sends: %zu writes (%zu coalesced, %zu split, %zu behind a queue), "
	              "%zu flushes (%zu left the socket full), queue max %zu\n",
	              edge_sends ? "edge" : "gateway", st.writes, st.coalesced, st.split, st.behind,
	              st.flushes, st.want_write, st.queued_max);
	/* The run met backpressure and took every path, or it proved nothing about them. */
	assert_true(st.want_write > 0);
	assert_true(st.queued_max > TUNNEL_RECORD_MAX);
	assert_true(st.coalesced > 0 && st.split > 0 && st.behind > 0);
	tunnel_io_reset(&cli);
	tunnel_io_reset(&srv);
	close(fd[0]);
	close(fd[1]);
}

static void
test_torture_gateway_sends(void **state)
{
	(void)state;
	torture(false, 0x7e57c0de);
}

static void
test_torture_edge_sends(void **state)
{
	(void)state;
	torture(true, 0xfeedbeef);
}

/* ---- Test 3: the peer goes away. --------------------------------------------------- */

/* The edge reads a little of a bulk transfer, then drops the connection without a
 * close_notify; its unread data turns the close into a reset. The gateway still holds
 * most of the transfer in its write buffer. Each of its calls must then report
 * AL_E_CLOSED with eof set, and everything frees cleanly. */
static void
test_peer_resets_mid_stream(void **state)
{
	(void)state;
	static uint8_t chunk[TORTURE_CHUNK_MAX];
	int fd[2];
	struct tunnel_io cli, srv;
	struct check chk = {.pos = 0, .bad_at = UINT64_MAX};
	tcp_pair(fd, 4096);
	io_open(&cli, fd[0], false);
	io_open(&srv, fd[1], true);
	handshake(&cli, &srv);
	pattern_fill(chunk, sizeof(chunk), 0);
	/* 64 KiB: far more than the small socket buffers hold */
	assert_int_equal(tunnel_io_write(&cli, chunk, 64 * 1024), 0);
	int stalls = 0;
	while (chk.pos == 0) {
		assert_int_equal(tunnel_io_flush(&cli, NULL), 0);
		struct pollfd p = {.fd = fd[1], .events = POLLIN};
		wait_any(&p, 1, &stalls);
		assert_int_equal(tunnel_io_read(&srv, check_feed, &chk), 0);
	}
	assert_true(cli.want_write); /* the rest waits in the gateway */
	tunnel_io_reset(&srv);       /* SSL_free without SSL_shutdown */
	close(fd[1]);
	struct pollfd p = {.fd = fd[0], .events = 0}; /* POLLERR/POLLHUP: the reset is in */
	wait_any(&p, 1, &stalls);
	/* Sending what is buffered meets the reset. */
	assert_int_equal(tunnel_io_flush(&cli, NULL), AL_E_CLOSED);
	assert_true(cli.eof);
	/* A closed pump stays closed: a write larger than the write buffer reaches the
	 * socket and fails, and so do flush and read. */
	assert_int_equal(tunnel_io_write(&cli, chunk, sizeof(chunk)), AL_E_CLOSED);
	assert_int_equal(tunnel_io_flush(&cli, NULL), AL_E_CLOSED);
	struct buf got;
	buf_init(&got, 1 << 20);
	assert_int_equal(tunnel_io_read(&cli, collect_feed, &got), AL_E_CLOSED);
	buf_free(&got);
	tunnel_io_reset(&cli);
	close(fd[0]);
}

/* The edge says goodbye properly: what it sent before its close_notify is delivered,
 * then the gateway's read reports AL_E_CLOSED with eof set. */
static void
test_peer_close_notify(void **state)
{
	(void)state;
	int fd[2];
	struct tunnel_io cli, srv;
	tcp_pair(fd, 0);
	io_open(&cli, fd[0], false);
	io_open(&srv, fd[1], true);
	handshake(&cli, &srv);
	assert_int_equal(tunnel_io_write(&srv, "last words", 10), 0);
	assert_int_equal(tunnel_io_flush(&srv, NULL), 0);
	assert_false(srv.want_write);
	ERR_clear_error();
	assert_true(SSL_shutdown(srv.ssl) >= 0);
	assert_int_equal(BIO_flush(SSL_get_wbio(srv.ssl)), 1);
	struct buf got;
	buf_init(&got, 1 << 20);
	int r = 0, stalls = 0;
	while (r == 0) {
		struct pollfd p = {.fd = fd[0], .events = POLLIN};
		wait_any(&p, 1, &stalls);
		r = tunnel_io_read(&cli, collect_feed, &got);
	}
	assert_int_equal(r, AL_E_CLOSED);
	assert_true(cli.eof);
	assert_int_equal(got.len, 10);
	assert_memory_equal(got.data, "last words", 10);
	buf_free(&got);
	tunnel_io_reset(&cli);
	tunnel_io_reset(&srv);
	close(fd[0]);
	close(fd[1]);
}

int
main(void)
{
	/* as the server and the gateway do: a reset peer is an error return, not a signal */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_records_on_the_wire),
	    cmocka_unit_test(test_torture_gateway_sends),
	    cmocka_unit_test(test_torture_edge_sends),
	    cmocka_unit_test(test_peer_resets_mid_stream),
	    cmocka_unit_test(test_peer_close_notify),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
