/* The egress proxy's CA and leaf maker (src/worker/egress_tls.c): a CA made into a state
 * directory (key 0600) and found there again, a supplied pair checked, leaves signed by
 * the CA for their host only, cached per host and made anew in their last hour, the
 * bundle for the sandbox, and a real handshake a client that trusts only the CA accepts.
 * Then the proxy itself on loopback: a CONNECT to a credential host is terminated (the
 * value in a header and in a chunked body split across writes, the Host check inside),
 * another host's and a no_terminate host's tunnels are left alone (the origin's
 * certificate, the placeholder), and a bad origin certificate, early tunnel bytes, a
 * fronted SNI and a client not trusting the CA are refused. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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

#include <jansson.h>

#include "egress.h"
#include "egress_policy.h"
#include "egress_tls.h"
#include "err.h"
#include "loop.h"
#include "net.h"

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

/* ---- the proxy terminating TLS, on loopback (no sandbox): a TLS origin whose
 * certificate another CA signed (the proxy's origin_ca_file), a blocking client ---- */

static struct egress_ca *pca, *oca; /* the proxy's CA; the origin's */
static SSL_CTX *origin_ctx;
static struct loop *ploop;
static struct egress_operator *op;
static struct egress_proxy *px;
static int proxy_port, origin_port;
static char pdir[64], odir[64], ocafile[128];
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static char seen[16384];
static size_t seen_len;

static void *
tls_origin_main(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		if (c < 0)
			continue;
		SSL *s = SSL_new(origin_ctx);
		SSL_set_fd(s, c);
		if (SSL_accept(s) == 1) {
			char buf[8192];
			size_t n = 0;
			struct pollfd pf = {c, POLLIN, 0};
			/* what arrives within 300 ms of quiet: the whole request */
			while (n < sizeof(buf) && (SSL_has_pending(s) || poll(&pf, 1, 300) > 0)) {
				int r = SSL_read(s, buf + n, (int)(sizeof(buf) - n));
				if (r <= 0)
					break;
				n += (size_t)r;
			}
			pthread_mutex_lock(&seen_mu);
			if (seen_len + n < sizeof(seen)) {
				memcpy(seen + seen_len, buf, n);
				seen_len += n;
				seen[seen_len] = '\0';
			}
			pthread_mutex_unlock(&seen_mu);
			static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
			                         "Connection: close\r\n\r\norigin-ok";
			(void)SSL_write(s, ok, sizeof(ok) - 1);
			(void)SSL_shutdown(s);
		}
		SSL_free(s);
		ERR_clear_error();
		close(c);
	}
	return NULL;
}

static void *
proxy_main(void *arg)
{
	(void)arg;
	loop_run(ploop);
	return NULL;
}

static int
proxy_setup(void **state)
{
	(void)state;
	char y[1024], err[512];
	int ofd, lfd;
	pthread_t th;
	snprintf(pdir, sizeof(pdir), "/tmp/egress_tlsp_XXXXXX");
	snprintf(odir, sizeof(odir), "/tmp/egress_tlso_XXXXXX");
	if (!mkdtemp(pdir) || !mkdtemp(odir))
		return -1;
	/* the origin's CA and its certificate for tls.corp.test only */
	if (egress_ca_open(NULL, NULL, odir, NULL, &oca, err, sizeof(err)) != 0)
		return -1;
	snprintf(ocafile, sizeof(ocafile), "%s/egress-ca.crt", odir);
	origin_ctx = egress_ca_leaf_ctx(oca, "tls.corp.test", (int64_t)time(NULL));
	if (egress_ca_open(NULL, NULL, pdir, ocafile, &pca, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	if (net_listen_tcp("127.0.0.1:0", &ofd, &origin_port) != 0)
		return -1;
	fcntl(ofd, F_SETFL, fcntl(ofd, F_GETFL) & ~O_NONBLOCK);
	snprintf(y, sizeof(y),
	         "allowed_hosts: ['*.corp.test']\n"
	         "allowed_addresses: [127.0.0.1]\n"
	         "no_terminate: [pin.corp.test]\n"
	         "resolve: {tls.corp.test: 127.0.0.1, open.corp.test: 127.0.0.1, "
	         "pin.corp.test: 127.0.0.1, bad.corp.test: 127.0.0.1}\n");
	if (egress_operator_parse("op.yaml", y, strlen(y), &op, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	struct egress_env env = {.type = EGRESS_ENV_LIMITED};
	if (egress_hostlist_add(&env.allow, "*.corp.test", true, err, sizeof(err)) != 0)
		return -1;
	ploop = loop_new();
	if (net_listen_tcp("127.0.0.1:0", &lfd, &proxy_port) != 0 ||
	    egress_proxy_new(ploop, lfd, op, &env, "sesn_tls", &px) != 0)
		return -1;
	egress_proxy_set_timeouts(px, 1000, 2000);
	egress_proxy_set_ca(px, pca);
	json_t *hosts = json_pack("[s,s,s]", "tls.corp.test", "pin.corp.test", "bad.corp.test");
	if (egress_proxy_add_secret(px, "vcrd_tls", "PH-5e1d", "VALUE-9876", hosts, true, true) !=
	    0)
		return -1;
	json_decref(hosts);
	pthread_create(&th, NULL, tls_origin_main, (void *)(intptr_t)ofd);
	pthread_detach(th);
	pthread_create(&th, NULL, proxy_main, NULL);
	pthread_detach(th);
	return 0;
}

static void
seen_reset(void)
{
	pthread_mutex_lock(&seen_mu);
	seen_len = 0;
	seen[0] = '\0';
	pthread_mutex_unlock(&seen_mu);
}

/* Sends CONNECT host (+ extra bytes right behind it) and reads the answer's head (and,
 * for a refusal, its body) into out. The socket, or -1 once closed. */
static int
connect_via_proxy(const char *host, const char *extra, char *out, size_t outlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)proxy_port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char req[512];
	int n = snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n%s", host,
	                 origin_port, host, origin_port, extra);
	assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	size_t got = 0;
	struct pollfd pf = {fd, POLLIN, 0};
	/* byte by byte up to the head's end: what follows is TLS */
	while (got + 1 < outlen && poll(&pf, 1, 5000) > 0) {
		ssize_t r = recv(fd, out + got, 1, 0);
		if (r <= 0)
			break;
		got++;
		out[got] = '\0';
		if (got >= 4 && memcmp(out + got - 4, "\r\n\r\n", 4) == 0 &&
		    strncmp(out, "HTTP/1.1 200", 12) == 0)
			return fd;
	}
	out[got] = '\0';
	close(fd);
	return -1;
}

/* TLS over fd trusting ca (host: the name checked, NULL for none). */
static SSL *
tls_client(int fd, X509 *ca, const char *sni, const char *host)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL *s = SSL_new(ctx);
	SSL_CTX_free(ctx);
	SSL_set_tlsext_host_name(s, sni);
	if (host)
		SSL_set1_host(s, host);
	SSL_set_fd(s, fd);
	return s;
}

static void
tls_read_all(SSL *s, char *out, size_t outlen)
{
	size_t n = 0;
	int r;
	while (n + 1 < outlen && (r = SSL_read(s, out + n, (int)(outlen - 1 - n))) > 0)
		n += (size_t)r;
	out[n] = '\0';
	ERR_clear_error();
}

static void
proxy_terminates_credential_hosts(void **state)
{
	(void)state;
	char head[2048], resp[4096], req[1024];
	seen_reset();
	int fd = connect_via_proxy("tls.corp.test", "", head, sizeof(head));
	assert_true(fd >= 0);
	/* the sandbox's client verifies the name against the worker's CA only */
	SSL *s = tls_client(fd, egress_ca_cert(pca), "tls.corp.test", "tls.corp.test");
	assert_int_equal(SSL_connect(s), 1);
	X509 *peer = SSL_get1_peer_certificate(s);
	assert_int_equal(X509_verify(peer, X509_get0_pubkey(egress_ca_cert(pca))), 1);
	X509_free(peer);
	/* the placeholder in a header, and split across two writes and two chunks */
	int n = snprintf(req, sizeof(req),
	                 "POST /t HTTP/1.1\r\nHost: tls.corp.test:%d\r\n"
	                 "Authorization: Bearer PH-5e1d\r\nTransfer-Encoding: chunked\r\n\r\n"
	                 "5\r\nk=PH-\r\n",
	                 origin_port);
	assert_int_equal(SSL_write(s, req, n), n);
	usleep(50 * 1000);
	static const char rest[] = "4\r\n5e1d\r\n0\r\n\r\n";
	assert_int_equal(SSL_write(s, rest, sizeof(rest) - 1), (int)sizeof(rest) - 1);
	tls_read_all(s, resp, sizeof(resp));
	assert_non_null(strstr(resp, "origin-ok"));
	SSL_free(s);
	close(fd);
	pthread_mutex_lock(&seen_mu);
	assert_non_null(strstr(seen, "Authorization: Bearer VALUE-9876"));
	assert_non_null(strstr(seen, "Content-Length: 12\r\n"));
	assert_non_null(strstr(seen, "\r\n\r\nk=VALUE-9876"));
	assert_null(strstr(seen, "PH-5e1d"));
	pthread_mutex_unlock(&seen_mu);

	/* inside the tunnel, Host must still name the target */
	seen_reset();
	fd = connect_via_proxy("tls.corp.test", "", head, sizeof(head));
	s = tls_client(fd, egress_ca_cert(pca), "tls.corp.test", "tls.corp.test");
	assert_int_equal(SSL_connect(s), 1);
	n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: open.corp.test:%d\r\n\r\n",
	             origin_port);
	assert_int_equal(SSL_write(s, req, n), n);
	tls_read_all(s, resp, sizeof(resp));
	assert_non_null(strstr(resp, "403 Forbidden"));
	assert_non_null(strstr(resp, "the Host check"));
	SSL_free(s);
	close(fd);
	assert_int_equal(seen_len, 0);
}

static void
proxy_leaves_other_tunnels_alone(void **state)
{
	(void)state;
	char head[2048], resp[4096], req[512];
	const char *hosts[] = {"open.corp.test", "pin.corp.test"}; /* none due; no_terminate */
	for (int i = 0; i < 2; i++) {
		seen_reset();
		int fd = connect_via_proxy(hosts[i], "", head, sizeof(head));
		assert_true(fd >= 0);
		/* the origin's own certificate: it chains to the origin's CA, not the worker's */
		SSL *s = tls_client(fd, egress_ca_cert(oca), hosts[i], NULL);
		assert_int_equal(SSL_connect(s), 1);
		int n = snprintf(req, sizeof(req),
		                 "GET / HTTP/1.1\r\nHost: %s\r\nAuthorization: PH-5e1d\r\n\r\n",
		                 hosts[i]);
		assert_int_equal(SSL_write(s, req, n), n);
		tls_read_all(s, resp, sizeof(resp));
		assert_non_null(strstr(resp, "origin-ok"));
		SSL_free(s);
		close(fd);
		pthread_mutex_lock(&seen_mu);
		assert_non_null(strstr(seen, "Authorization: PH-5e1d")); /* untouched */
		pthread_mutex_unlock(&seen_mu);
	}
}

static void
proxy_refuses_by_rule(void **state)
{
	(void)state;
	char head[2048], resp[256];
	seen_reset();
	/* an origin whose certificate does not name the host: 502 with the reason */
	assert_int_equal(connect_via_proxy("bad.corp.test", "", head, sizeof(head)), -1);
	assert_non_null(strstr(head, "HTTP/1.1 502 Bad Gateway"));
	assert_non_null(strstr(head, "bad.corp.test refused: certificate verification failed: "
	                             "hostname mismatch"));
	/* tunnel bytes before the 200 */
	assert_int_equal(connect_via_proxy("tls.corp.test", "\x16\x03\x01", head, sizeof(head)),
	                 -1);
	assert_non_null(strstr(head, "HTTP/1.1 400 Bad Request"));
	/* a client hello naming another host than the target is cut off */
	int fd = connect_via_proxy("tls.corp.test", "", head, sizeof(head));
	assert_true(fd >= 0);
	SSL *s = tls_client(fd, egress_ca_cert(pca), "evil.corp.test", NULL);
	int ok = SSL_connect(s) == 1 && SSL_write(s, "GET / HTTP/1.1\r\n\r\n", 18) > 0;
	if (ok)
		tls_read_all(s, resp, sizeof(resp));
	assert_true(!ok || resp[0] == '\0');
	SSL_free(s);
	close(fd);
	/* a client that does not trust the worker's CA fails its handshake: nothing leaves */
	fd = connect_via_proxy("tls.corp.test", "", head, sizeof(head));
	s = tls_client(fd, egress_ca_cert(oca), "tls.corp.test", "tls.corp.test");
	assert_int_not_equal(SSL_connect(s), 1);
	SSL_free(s);
	close(fd);
	ERR_clear_error();
	usleep(200 * 1000);
	assert_int_equal(seen_len, 0);
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
	signal(SIGPIPE, SIG_IGN); /* as the worker does: a closed peer is an error, not death */
	const struct CMUnitTest proxy[] = {
	    cmocka_unit_test(proxy_terminates_credential_hosts),
	    cmocka_unit_test(proxy_leaves_other_tunnels_alone),
	    cmocka_unit_test(proxy_refuses_by_rule),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	return r + cmocka_run_group_tests(proxy, proxy_setup, NULL);
}
