/* The egress proxy's CA and leaf maker (src/worker/egress_tls.c): a CA made into a state
 * directory (key 0600) and found there again, a supplied pair checked, leaves signed by
 * the CA for their host only, cached per host and made anew in their last hour, the
 * bundle for the sandbox, and a real handshake a client that trusts only the CA accepts. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "egress_tls.h"
#include "err.h"

static char dir[64];

static void
rm_dir(void)
{
	char p[128];
	const char *names[] = {"egress-ca.crt", "egress-ca.key", "bundle.pem",
	                       "sys.pem",       "other.crt",     "other.key"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/egress_tls_XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	rm_dir();
	return 0;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	char *b = calloc(1, 1 << 20);
	size_t n = fread(b, 1, (1 << 20) - 1, f);
	b[n] = '\0';
	fclose(f);
	return b;
}

static void
made_in_state_dir_and_found_again(void **state)
{
	(void)state;
	char err[512] = "", p[128];
	struct egress_ca *ca = NULL, *again = NULL;
	assert_int_equal(egress_ca_open(NULL, NULL, dir, NULL, &ca, err, sizeof(err)), 0);
	struct stat st;
	snprintf(p, sizeof(p), "%s/egress-ca.key", dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600); /* the key is the worker's alone */
	X509 *c = egress_ca_cert(ca);
	assert_true(X509_get_extension_flags(c) & EXFLAG_CA);
	assert_non_null(strstr(egress_ca_pem(ca), "BEGIN CERTIFICATE"));
	/* a restarted worker keeps the CA its sandboxes trust */
	assert_int_equal(egress_ca_open(NULL, NULL, dir, NULL, &again, err, sizeof(err)), 0);
	assert_string_equal(egress_ca_pem(ca), egress_ca_pem(again));
	egress_ca_free(again);

	/* the bundle: the system's CAs, then ours */
	snprintf(p, sizeof(p), "%s/sys.pem", dir);
	FILE *f = fopen(p, "w");
	fputs("-----BEGIN CERTIFICATE-----\nSYSTEM\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	char bp[128];
	snprintf(bp, sizeof(bp), "%s/bundle.pem", dir);
	assert_int_equal(egress_ca_write_bundle(ca, p, bp, err, sizeof(err)), 0);
	char *b = slurp(bp);
	assert_non_null(b);
	char *sys = strstr(b, "SYSTEM"), *ours = strstr(b, egress_ca_pem(ca));
	assert_non_null(sys);
	assert_non_null(ours);
	assert_true(sys < ours);
	free(b);
	egress_ca_free(ca);
}

static void
supplied_pair_checked(void **state)
{
	(void)state;
	char err[512] = "", cp[128], kp[128];
	struct egress_ca *ca = NULL;
	snprintf(cp, sizeof(cp), "%s/egress-ca.crt", dir);
	snprintf(kp, sizeof(kp), "%s/egress-ca.key", dir);
	assert_int_equal(egress_ca_open(NULL, NULL, dir, NULL, &ca, err, sizeof(err)), 0);
	egress_ca_free(ca);
	ca = NULL;
	/* the same pair given by name */
	assert_int_equal(egress_ca_open(cp, kp, NULL, NULL, &ca, err, sizeof(err)), 0);
	egress_ca_free(ca);
	ca = NULL;
	/* one without the other */
	assert_int_equal(egress_ca_open(cp, NULL, dir, NULL, &ca, err, sizeof(err)), AL_E_INVAL);
	assert_non_null(strstr(err, "go together"));
	/* a key of another CA */
	char od[64];
	snprintf(od, sizeof(od), "%s/o", dir);
	mkdir(od, 0700);
	assert_int_equal(egress_ca_open(NULL, NULL, od, NULL, &ca, err, sizeof(err)), 0);
	egress_ca_free(ca);
	ca = NULL;
	char okp[128], ocp[128];
	snprintf(okp, sizeof(okp), "%s/egress-ca.key", od);
	snprintf(ocp, sizeof(ocp), "%s/egress-ca.crt", od);
	assert_int_equal(egress_ca_open(cp, okp, NULL, NULL, &ca, err, sizeof(err)), AL_E_INVAL);
	assert_non_null(strstr(err, "does not match"));
	unlink(okp);
	unlink(ocp);
	rmdir(od);
	/* a missing file names itself */
	assert_int_equal(egress_ca_open("/nonexistent.crt", kp, NULL, NULL, &ca, err, sizeof(err)),
	                 AL_E_INVAL);
	assert_non_null(strstr(err, "/nonexistent.crt"));
	assert_null(ca);
}

static void
leaf_for_its_host_only(void **state)
{
	(void)state;
	char err[512] = "";
	struct egress_ca *ca = NULL;
	assert_int_equal(egress_ca_open(NULL, NULL, dir, NULL, &ca, err, sizeof(err)), 0);
	int64_t now = (int64_t)time(NULL);
	SSL_CTX *a = egress_ca_leaf_ctx(ca, "api.example.test", now);
	assert_non_null(a);
	X509 *leaf = egress_ca_leaf_cert(a), *cac = egress_ca_cert(ca);
	assert_non_null(leaf);
	/* signed by the CA, named for the host and nothing else, not a CA */
	assert_int_equal(X509_verify(leaf, X509_get0_pubkey(cac)), 1);
	assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(cac)), 0);
	assert_int_equal(X509_check_host(leaf, "api.example.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(leaf, "other.example.test", 0, 0, NULL), 0);
	assert_int_equal(X509_check_host(leaf, "example.test", 0, 0, NULL), 0);
	assert_false(X509_get_extension_flags(leaf) & EXFLAG_CA);
	/* short validity: not after a day from now, valid now */
	assert_int_equal(X509_cmp_current_time(X509_get0_notBefore(leaf)), -1);
	assert_int_equal(X509_cmp_current_time(X509_get0_notAfter(leaf)), 1);
	struct tm tm;
	assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm), 1);
	int64_t na = (int64_t)timegm(&tm);
	assert_true(na <= now + EGRESS_LEAF_VALIDITY_S && na > now + EGRESS_LEAF_VALIDITY_S - 60);

	/* cached per host; another host gets its own */
	assert_ptr_equal(egress_ca_leaf_ctx(ca, "api.example.test", now + 60), a);
	SSL_CTX *b = egress_ca_leaf_ctx(ca, "other.example.test", now);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_int_equal(X509_check_host(egress_ca_leaf_cert(b), "other.example.test", 0, 0, NULL),
	                 1);
	/* in its last hour the leaf is made anew */
	SSL_CTX *a2 = egress_ca_leaf_ctx(ca, "api.example.test",
	                                 now + EGRESS_LEAF_VALIDITY_S - EGRESS_LEAF_RENEW_S + 1);
	assert_non_null(a2);
	assert_ptr_not_equal(a2, a);
	/* an IP literal gets an IP SAN, not a name */
	SSL_CTX *ip = egress_ca_leaf_ctx(ca, "127.0.0.1", now);
	assert_non_null(ip);
	assert_int_equal(X509_check_ip_asc(egress_ca_leaf_cert(ip), "127.0.0.1", 0), 1);
	/* the cache is bounded: more hosts than it holds still each get a leaf */
	for (int i = 0; i < EGRESS_LEAF_CACHE + 8; i++) {
		char h[64];
		snprintf(h, sizeof(h), "h%d.example.test", i);
		SSL_CTX *c = egress_ca_leaf_ctx(ca, h, now + i);
		assert_non_null(c);
		assert_int_equal(X509_check_host(egress_ca_leaf_cert(c), h, 0, 0, NULL), 1);
	}
	egress_ca_free(ca);
}

struct hs {
	SSL *ssl;
	int rc;
};

static void *
accept_main(void *arg)
{
	struct hs *h = arg;
	h->rc = SSL_accept(h->ssl);
	if (h->rc == 1)
		(void)SSL_write(h->ssl, "ok", 2);
	return NULL;
}

/* A client that trusts only the CA completes a handshake with the leaf for the name it
 * asked for, and refuses the leaf made for another name. */
static void
client_trusting_the_ca_accepts(void **state)
{
	(void)state;
	char err[512] = "";
	struct egress_ca *ca = NULL;
	assert_int_equal(egress_ca_open(NULL, NULL, dir, NULL, &ca, err, sizeof(err)), 0);
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), egress_ca_cert(ca));
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	const char *served[] = {"api.example.test", "evil.example.test"};
	for (int i = 0; i < 2; i++) {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		struct hs h = {SSL_new(egress_ca_leaf_ctx(ca, served[i], (int64_t)time(NULL))), 0};
		SSL_set_fd(h.ssl, sv[0]);
		SSL *c = SSL_new(cctx);
		SSL_set_tlsext_host_name(c, "api.example.test");
		SSL_set1_host(c, "api.example.test");
		SSL_set_fd(c, sv[1]);
		pthread_t t;
		pthread_create(&t, NULL, accept_main, &h);
		int rc = SSL_connect(c);
		if (i == 0) {
			assert_int_equal(rc, 1);
			char buf[4] = "";
			assert_int_equal(SSL_read(c, buf, sizeof(buf)), 2);
			assert_memory_equal(buf, "ok", 2);
		} else {
			assert_int_not_equal(rc, 1); /* hostname mismatch */
			assert_int_equal(SSL_get_verify_result(c), X509_V_ERR_HOSTNAME_MISMATCH);
		}
		close(sv[1]);
		pthread_join(t, NULL);
		close(sv[0]);
		SSL_free(c);
		SSL_free(h.ssl);
		ERR_clear_error();
	}
	SSL_CTX_free(cctx);
	egress_ca_free(ca);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(made_in_state_dir_and_found_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(supplied_pair_checked, setup, teardown),
	    cmocka_unit_test_setup_teardown(leaf_for_its_host_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(client_trusting_the_ca_accepts, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
