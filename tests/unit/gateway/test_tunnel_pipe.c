/* struct tunnel_pipe (lib/tunnel_proto.c): a client and a server pipe wired back to back
 * in memory, as the server's inner TLS client and the gateway use them: a request and an
 * answer cross, close_notify ends the answer, the second session resumes the first
 * (no certificate exchange), and a client trusting another CA fails with the verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "err.h"
#include "testcert.h"
#include "tunnel_proto.h"

static char dir[] = "/tmp/tunnel_pipe_XXXXXX";
static char cert[64], key[64], other[64], okey[64];

/* Moves ciphertext both ways until neither side has any; b's plaintext goes to got. */
static void
shuttle(struct tunnel_pipe *a, struct tunnel_pipe *b, struct buf *got)
{
	char tmp[65536];
	for (int moved = 1; moved;) {
		moved = 0;
		size_t n;
		while ((n = tunnel_pipe_take(a, tmp, sizeof(tmp))) > 0) {
			assert_int_equal(tunnel_pipe_feed(b, tmp, n), 0);
			moved = 1;
		}
		while ((n = tunnel_pipe_take(b, tmp, sizeof(tmp))) > 0) {
			assert_int_equal(tunnel_pipe_feed(a, tmp, n), 0);
			moved = 1;
		}
		/* let each side process what arrived (handshake messages, tickets) */
		struct buf sink;
		char err[256];
		buf_init(&sink, 1 << 20);
		tunnel_pipe_read(a, &sink, err, sizeof(err));
		tunnel_pipe_read(b, got, err, sizeof(err));
		assert_int_equal(sink.len, 0);
		buf_free(&sink);
	}
}

static SSL_CTX *
client_ctx(const char *ca)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	assert_non_null(c);
	SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	assert_int_equal(SSL_CTX_load_verify_locations(c, ca, NULL), 1);
	return c;
}

static SSL_CTX *
server_ctx(void)
{
	SSL_CTX *c = SSL_CTX_new(TLS_server_method());
	assert_non_null(c);
	SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(c, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM), 1);
	return c;
}

/* One exchange; returns whether the client resumed; *sess gets its session after. */
static int
exchange(SSL_CTX *cc, SSL_CTX *sc, SSL_SESSION **sess, char *fail, size_t faillen)
{
	struct tunnel_pipe c, s;
	char err[256] = "";
	SSL *cs = SSL_new(cc), *ss = SSL_new(sc);
	SSL_set_connect_state(cs);
	SSL_set_tlsext_host_name(cs, "localhost");
	SSL_set1_host(cs, "localhost");
	if (*sess)
		SSL_set_session(cs, *sess);
	SSL_set_accept_state(ss);
	assert_int_equal(tunnel_pipe_init(&c, cs), 0);
	assert_int_equal(tunnel_pipe_init(&s, ss), 0);
	static const char rq[] = "GET / HTTP/1.1\r\nhost: localhost\r\n\r\n";
	assert_int_equal(tunnel_pipe_write(&c, rq, sizeof(rq) - 1, err, sizeof(err)), 0);
	struct buf got;
	buf_init(&got, 1 << 20);
	int reused = -1;
	for (int round = 0; round < 8; round++) {
		char tmp[65536];
		size_t n;
		while ((n = tunnel_pipe_take(&c, tmp, sizeof(tmp))) > 0)
			assert_int_equal(tunnel_pipe_feed(&s, tmp, n), 0);
		int r = tunnel_pipe_read(&s, &got, err, sizeof(err));
		if (r < 0) {
			snprintf(fail, faillen, "server: %s", err);
			break;
		}
		while ((n = tunnel_pipe_take(&s, tmp, sizeof(tmp))) > 0)
			assert_int_equal(tunnel_pipe_feed(&c, tmp, n), 0);
		r = tunnel_pipe_write(&c, rq, sizeof(rq) - 1, err, sizeof(err));
		if (r < 0) {
			snprintf(fail, faillen, "client: %s", err);
			break;
		}
		if (r > 0)
			break;
	}
	shuttle(&c, &s, &got);
	if (fail[0] == '\0') {
		assert_true(got.len >= sizeof(rq) - 1);
		assert_int_equal(
		    tunnel_pipe_write(&s, "HTTP/1.1 200 \r\n\r\nok", 20, err, sizeof(err)), 20);
		tunnel_pipe_close(&s);
		char tmp[65536];
		size_t n = tunnel_pipe_take(&s, tmp, sizeof(tmp));
		assert_int_equal(tunnel_pipe_feed(&c, tmp, n), 0);
		buf_reset(&got);
		assert_int_equal(tunnel_pipe_read(&c, &got, err, sizeof(err)),
		                 1); /* close_notify */
		assert_int_equal(got.len, 20);
		reused = SSL_session_reused(cs);
		SSL_SESSION_free(*sess);
		*sess = SSL_get1_session(cs);
	}
	buf_free(&got);
	tunnel_pipe_free(&c);
	tunnel_pipe_free(&s);
	return reused;
}

static void
test_resume(void **state)
{
	SSL_CTX *cc = client_ctx(cert), *sc = server_ctx();
	SSL_SESSION *sess = NULL;
	char fail[300] = "";
	assert_int_equal(exchange(cc, sc, &sess, fail, sizeof(fail)), 0);
	assert_string_equal(fail, "");
	assert_true(SSL_SESSION_is_resumable(sess));
	int reused = exchange(cc, sc, &sess, fail, sizeof(fail));
	assert_string_equal(fail, "");
	assert_int_equal(reused, 1);
	SSL_SESSION_free(sess);
	SSL_CTX_free(cc);
	SSL_CTX_free(sc);
}

static void
test_wrong_ca(void **state)
{
	SSL_CTX *cc = client_ctx(other), *sc = server_ctx();
	SSL_SESSION *sess = NULL;
	char fail[300] = "";
	assert_int_equal(exchange(cc, sc, &sess, fail, sizeof(fail)), -1);
	if (strstr(fail, "client: certificate verify failed") == NULL)
		fail_msg("got \"%s\"", fail);
	SSL_CTX_free(cc);
	SSL_CTX_free(sc);
}

static int
setup(void **state)
{
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(cert, sizeof(cert), "%s/c.pem", dir);
	snprintf(key, sizeof(key), "%s/c.key", dir);
	snprintf(other, sizeof(other), "%s/o.pem", dir);
	snprintf(okey, sizeof(okey), "%s/o.key", dir);
	return testcert_write(cert, key, "localhost", "DNS:localhost") == 0 &&
	               testcert_write(other, okey, "other", "DNS:localhost") == 0
	           ? 0
	           : -1;
}

static int
teardown(void **state)
{
	unlink(cert);
	unlink(key);
	unlink(other);
	unlink(okey);
	rmdir(dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_resume),
	    cmocka_unit_test(test_wrong_ca),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
