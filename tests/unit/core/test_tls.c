/* TLS server context: a real handshake over a socketpair with a throwaway certificate
 * (made with OpenSSL here), ALPN selection, and clear errors for bad files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tls.h"
#include "testcert.h"

static char dir[] = "/tmp/airlock-tls-XXXXXX";
static char cert_path[256], key_path[256];

static int
make_cert(void **state)
{
	assert_non_null(mkdtemp(dir));
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	assert_int_equal(testcert_write(cert_path, key_path, "localhost", NULL), 0);
	return 0;
}

static int
cleanup(void **state)
{
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	return 0;
}

static void
test_handshake_and_alpn(void **state)
{
	char err[256] = "";
	static const char *const alpn[] = {"airlock-tunnel/1", "h2", NULL};
	struct tls_server_ctx *t = tls_server_ctx_new(cert_path, key_path, alpn, err, sizeof(err));
	assert_non_null(t);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	if (pid == 0) {
		SSL *s = SSL_new(t->ctx);
		SSL_set_fd(s, sv[0]);
		if (SSL_accept(s) != 1)
			_exit(1);
		char buf[5];
		if (SSL_read(s, buf, 5) != 5 || memcmp(buf, "hello", 5) != 0)
			_exit(2);
		SSL_write(s, "world", 5);
		_exit(0);
	}
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)"\x02h2", 3);
	SSL *c = SSL_new(cctx);
	SSL_set_fd(c, sv[1]);
	assert_int_equal(SSL_connect(c), 1);
	const unsigned char *proto;
	unsigned plen;
	SSL_get0_alpn_selected(c, &proto, &plen);
	assert_int_equal(plen, 2);
	assert_memory_equal(proto, "h2", 2);
	assert_int_equal(SSL_write(c, "hello", 5), 5);
	char buf[5];
	assert_int_equal(SSL_read(c, buf, 5), 5);
	assert_memory_equal(buf, "world", 5);
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	SSL_free(c);
	SSL_CTX_free(cctx);
	close(sv[0]);
	close(sv[1]);
	tls_server_ctx_free(t);
}

static void
test_bad_files(void **state)
{
	char err[256] = "";
	assert_null(tls_server_ctx_new("/nonexistent.pem", key_path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot load certificate /nonexistent.pem"));
	/* a key that does not match: the certificate used as its own key file */
	assert_null(tls_server_ctx_new(cert_path, cert_path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot load private key"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_and_alpn),
	    cmocka_unit_test(test_bad_files),
	};
	return cmocka_run_group_tests(tests, make_cert, cleanup);
}
