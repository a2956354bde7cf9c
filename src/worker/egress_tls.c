/* TLS termination at the egress proxy; see egress_tls.h and docs/worker/egress.md. */
#include "egress_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "log.h"
#include "loop.h"
#include "ssl_dl.h"
#include "util.h"
#include "xalloc.h"

#define DEBIAN_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define BRIDGE_BUF 16384 /* one TLS record's plaintext each way */

struct leaf {
	char host[256];
	SSL_CTX *ctx;
	X509 *cert;
	int64_t made_s;
};

struct egress_ca {
	X509 *cert;
	EVP_PKEY *key;
	EVP_PKEY *leaf_key; /* one key for every leaf: a signature, not a key pair, per host */
	char *pem;
	SSL_CTX *origin; /* client side: system trust (+ origin_ca_file), verification on */
	struct leaf leaves[EGRESS_LEAF_CACHE];
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	char why[160] = "";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, why, sizeof(why));
	ERR_clear_error();
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (why[0] && n > 0 && (size_t)n < errlen)
		snprintf(err + n, errlen - (size_t)n, " (%s)", why);
	return AL_E_INVAL;
}

static bool
random_serial(X509 *x)
{
	long v = 0;
	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		return false;
	v &= 0x7fffffffffffffffL; /* positive */
	return ASN1_INTEGER_set(X509_get_serialNumber(x), v ? v : 1) == 1;
}

static bool
add_ext(X509 *issuer, X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (e == NULL)
		return false;
	int ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok == 1;
}

/* A certificate for key: self-signed CA when issuer is NULL, else a leaf for host. */
static X509 *
make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *host, int64_t now_s,
          long valid_s)
{
	X509 *x = X509_new();
	char san[300];
	bool is_ip = strchr(host, ':') != NULL || strspn(host, "0123456789.") == strlen(host);
	if (x == NULL || X509_set_version(x, 2) != 1 || !random_serial(x))
		goto fail;
	/* an hour back: a sandbox whose clock is a little behind still accepts it */
	time_t t0 = (time_t)now_s;
	if (X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, &t0) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), 0, valid_s, &t0) == NULL)
		goto fail;
	X509_NAME *n = X509_get_subject_name(x);
	const char *cn = issuer ? host : "airlock egress CA";
	/* a CN is at most 64 bytes; the SAN is what clients check anyway */
	if (strlen(cn) <= 64 &&
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
	                               0) != 1)
		goto fail;
	if (X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"airlock", -1,
	                               -1, 0) != 1)
		goto fail;
	if (X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n) != 1 ||
	    X509_set_pubkey(x, key) != 1)
		goto fail;
	if (issuer == NULL) {
		if (!add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
		    !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
		    !add_ext(x, x, NID_subject_key_identifier, "hash"))
			goto fail;
	} else {
		snprintf(san, sizeof(san), "%s:%s", is_ip ? "IP" : "DNS", host);
		if (!add_ext(issuer, x, NID_basic_constraints, "critical,CA:FALSE") ||
		    !add_ext(issuer, x, NID_key_usage, "critical,digitalSignature") ||
		    !add_ext(issuer, x, NID_ext_key_usage, "serverAuth") ||
		    !add_ext(issuer, x, NID_subject_alt_name, san) ||
		    !add_ext(issuer, x, NID_authority_key_identifier, "keyid"))
			goto fail;
	}
	if (X509_sign(x, issuer_key, EVP_sha256()) <= 0)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

static int
write_file(const char *path, int mode, bool key, void *obj, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		int e = errno;
		fail(err, errlen, "cannot create %s: %s", path, strerror(e));
		return e == EEXIST ? AL_E_CONFLICT : AL_E_IO;
	}
	FILE *f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return fail(err, errlen, "cannot write %s", path);
	}
	int ok =
	    key ? PEM_write_PrivateKey(f, obj, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, obj);
	if (fflush(f) != 0 || fsync(fd) != 0)
		ok = 0;
	fclose(f);
	if (ok != 1) {
		unlink(path);
		return fail(err, errlen, "cannot write %s", path);
	}
	return 0;
}

static int
load_pair(struct egress_ca *ca, const char *cert_file, const char *key_file, char *err,
          size_t errlen)
{
	FILE *f = fopen(cert_file, "re");
	if (f == NULL)
		return fail(err, errlen, "egress CA certificate %s: %s", cert_file,
		            strerror(errno));
	ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (ca->cert == NULL)
		return fail(err, errlen, "egress CA certificate %s: not a PEM certificate",
		            cert_file);
	if ((f = fopen(key_file, "re")) == NULL)
		return fail(err, errlen, "egress CA key %s: %s", key_file, strerror(errno));
	ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (ca->key == NULL)
		return fail(err, errlen, "egress CA key %s: not an unencrypted PEM private key",
		            key_file);
	if (X509_check_private_key(ca->cert, ca->key) != 1)
		return fail(err, errlen, "egress CA key %s does not match %s", key_file, cert_file);
	if (!(X509_get_extension_flags(ca->cert) & EXFLAG_CA))
		return fail(err, errlen, "egress CA certificate %s is not a CA (basicConstraints)",
		            cert_file);
	return 0;
}

int
egress_ca_open(const char *cert_file, const char *key_file, const char *state_dir,
               const char *origin_ca_file, struct egress_ca **out, char *err, size_t errlen)
{
	struct egress_ca *ca = xcalloc(1, sizeof(*ca));
	char cp[4096], kp[4096];
	int r = AL_E_INVAL;
	*out = NULL;
	if ((r = ssl_dl_load()) != 0) {
		snprintf(err, errlen, "egress: TLS termination needs OpenSSL: %s", ssl_dl_error());
		goto out;
	}
	r = AL_E_INVAL;
	if ((cert_file == NULL) != (key_file == NULL)) {
		fail(err, errlen, "egress: ca_cert_file and ca_key_file go together");
		goto out;
	}
	if (cert_file == NULL) {
		if (state_dir == NULL) {
			fail(err, errlen, "egress: no CA given and no state directory for one");
			goto out;
		}
		snprintf(cp, sizeof(cp), "%s/egress-ca.crt", state_dir);
		snprintf(kp, sizeof(kp), "%s/egress-ca.key", state_dir);
		if (access(cp, F_OK) != 0 && access(kp, F_OK) != 0) {
			/* made once and kept: a restarted worker's sandboxes keep trusting it */
			ca->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
			if (ca->key == NULL ||
			    (ca->cert = make_cert(ca->key, NULL, ca->key, "", (int64_t)time(NULL),
			                          10L * 365 * 24 * 3600)) == NULL) {
				fail(err, errlen, "egress: cannot make a CA");
				goto out;
			}
			if ((r = write_file(kp, 0600, true, ca->key, err, errlen)) != 0 &&
			    r != AL_E_CONFLICT)
				goto out;
			if (r == 0 && (r = write_file(cp, 0644, false, ca->cert, err, errlen)) != 0)
				goto out;
			if (r == 0)
				log_info("egress: made a CA for TLS termination", "cert", cp);
			else
				/* another `worker run` made it first: its pair is read below, once
				 * its certificate is there too */
				for (int i = 0; i < 20 && access(cp, F_OK) != 0; i++)
					usleep(100 * 1000);
			X509_free(ca->cert);
			EVP_PKEY_free(ca->key);
			ca->cert = NULL;
			ca->key = NULL;
		}
		cert_file = cp;
		key_file = kp;
	}
	if ((r = load_pair(ca, cert_file, key_file, err, errlen)) != 0)
		goto out;
	r = AL_E_INVAL;
	ca->leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (ca->leaf_key == NULL) {
		fail(err, errlen, "egress: cannot make the leaf key");
		goto out;
	}
	char *mem = NULL;
	size_t ml = 0;
	FILE *mf = open_memstream(&mem, &ml);
	if (mf == NULL || PEM_write_X509(mf, ca->cert) != 1) {
		if (mf)
			fclose(mf);
		free(mem);
		fail(err, errlen, "egress: cannot encode the CA");
		goto out;
	}
	fclose(mf);
	ca->pem = mem;
	ca->origin = SSL_CTX_new(TLS_client_method());
	if (ca->origin == NULL) {
		fail(err, errlen, "egress: cannot make the origin TLS context");
		goto out;
	}
	SSL_CTX_set_min_proto_version(ca->origin, TLS1_2_VERSION);
	/* an origin may echo the request (and its secret) back: OpenSSL wipes what it
	 * decrypted once we have read it, not when the buffer is next reused */
	SSL_CTX_set_options(ca->origin, SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_mode(ca->origin,
	                 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(ca->origin, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_set_default_verify_paths(ca->origin) != 1) {
		fail(err, errlen, "egress: cannot load the system trust");
		goto out;
	}
	if (origin_ca_file &&
	    SSL_CTX_load_verify_locations(ca->origin, origin_ca_file, NULL) != 1) {
		fail(err, errlen, "egress: origin_ca_file %s: not a PEM CA bundle", origin_ca_file);
		goto out;
	}
	*out = ca;
	ca = NULL;
	r = 0;
out:
	egress_ca_free(ca);
	return r;
}

void
egress_ca_free(struct egress_ca *ca)
{
	if (ca == NULL)
		return;
	for (size_t i = 0; i < EGRESS_LEAF_CACHE; i++)
		SSL_CTX_free(ca->leaves[i].ctx);
	SSL_CTX_free(ca->origin);
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	EVP_PKEY_free(ca->leaf_key);
	free(ca->pem);
	free(ca);
}

const char *
egress_ca_pem(const struct egress_ca *ca)
{
	return ca->pem;
}

X509 *
egress_ca_cert(const struct egress_ca *ca)
{
	return ca->cert;
}

int
egress_ca_write_bundle(const struct egress_ca *ca, const char *sys_bundle, const char *path,
                       char *err, size_t errlen)
{
	char tmp[4096];
	int r = AL_E_IO;
	FILE *in = NULL, *f = NULL;
	/* per process: concurrent `worker run`s each write theirs, the last rename wins */
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return AL_E_IO;
	}
	/* Debian's bundle, else where this OpenSSL looks by default (other distributions);
	 * with neither, only our CA: every other host then fails verification in the sandbox,
	 * as it would there without the proxy */
	if (sys_bundle == NULL && access(DEBIAN_BUNDLE, R_OK) == 0)
		sys_bundle = DEBIAN_BUNDLE;
	if (sys_bundle == NULL)
		sys_bundle = X509_get_default_cert_file();
	if (sys_bundle && (in = fopen(sys_bundle, "re")) != NULL) {
		char b[8192];
		size_t n;
		while ((n = fread(b, 1, sizeof(b), in)) > 0)
			if (fwrite(b, 1, n, f) != n)
				goto out;
		if (ferror(in))
			goto out;
		fputc('\n', f);
	}
	if (fputs(ca->pem, f) < 0 || fflush(f) != 0)
		goto out;
	r = 0;
out:
	if (in)
		fclose(in);
	if (fclose(f) != 0)
		r = AL_E_IO;
	if (r == 0 && rename(tmp, path) != 0)
		r = AL_E_IO;
	if (r != 0) {
		snprintf(err, errlen, "cannot write the CA bundle %s: %s", path, strerror(errno));
		unlink(tmp);
	}
	return r;
}

SSL_CTX *
egress_ca_leaf_ctx(struct egress_ca *ca, const char *host, int64_t now_s)
{
	struct leaf *slot = NULL, *oldest = &ca->leaves[0];
	for (size_t i = 0; i < EGRESS_LEAF_CACHE; i++) {
		struct leaf *lf = &ca->leaves[i];
		if (lf->ctx && strcmp(lf->host, host) == 0) {
			if (now_s < lf->made_s + EGRESS_LEAF_VALIDITY_S - EGRESS_LEAF_RENEW_S &&
			    now_s >= lf->made_s - 3600)
				return lf->ctx;
			slot = lf; /* in its last hour (or the clock went back): made anew */
			break;
		}
		if (lf->ctx == NULL && slot == NULL)
			slot = lf;
		if (lf->ctx && (oldest->ctx == NULL || lf->made_s < oldest->made_s))
			oldest = lf;
	}
	if (slot == NULL)
		slot = oldest;
	if (strlen(host) >= sizeof(slot->host))
		return NULL;
	X509 *x = make_cert(ca->leaf_key, ca->cert, ca->key, host, now_s, EGRESS_LEAF_VALIDITY_S);
	if (x == NULL)
		return NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL || SSL_CTX_use_certificate(ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, ca->leaf_key) != 1) {
		SSL_CTX_free(ctx);
		X509_free(x);
		ERR_clear_error();
		return NULL;
	}
	X509_free(x); /* the context holds its own reference */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* no ALPN callback: the client falls back to HTTP/1.1, the only thing the proxy's
	 * HTTP code reads */
	SSL_CTX_free(slot->ctx); /* open connections hold their own reference */
	snprintf(slot->host, sizeof(slot->host), "%s", host);
	slot->ctx = ctx;
	slot->made_s = now_s;
	return ctx;
}

X509 *
egress_ca_leaf_cert(SSL_CTX *leaf)
{
	return SSL_CTX_get0_certificate(leaf);
}

SSL *
egress_ca_origin_ssl(struct egress_ca *ca, const char *host, bool is_ip)
{
	static const unsigned char h11[] = "\x08http/1.1";
	SSL *s = SSL_new(ca->origin);
	if (s == NULL)
		return NULL;
	int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), host)
	               : SSL_set_tlsext_host_name(s, host) == 1 && SSL_set1_host(s, host) == 1;
	if (!ok || SSL_set_alpn_protos(s, h11, sizeof(h11) - 1) != 0) {
		SSL_free(s);
		ERR_clear_error();
		return NULL;
	}
	return s;
}

/* ---- the bridge ---- */

struct egress_tls_bridge {
	struct loop *loop;
	SSL *ssl;
	int fd, pfd;
	bool server, started;
	struct loop_timer *timer;
	uint64_t idle_ms, last_io_ms;
	egress_tls_done_cb *done;
	void *arg;
	bool tls_eof, p_eof, p_shut;
	int rd_want, wr_want; /* what the last SSL_read / SSL_write waits for */
	size_t to_len, from_len;
	char to_tls[BRIDGE_BUF], from_tls[BRIDGE_BUF];
};

static void bridge_io(struct loop *l, int fd, int mask, void *arg);

void
egress_tls_bridge_free(struct egress_tls_bridge *b)
{
	if (b == NULL)
		return;
	loop_timer_cancel(b->loop, b->timer);
	loop_fd_del(b->loop, b->fd);
	close(b->fd);
	if (b->pfd >= 0) {
		loop_fd_del(b->loop, b->pfd);
		close(b->pfd);
	}
	SSL_free(b->ssl);
	ERR_clear_error();
	/* a request with a secret crosses these buffers in the clear */
	explicit_wipe(b->to_tls, sizeof(b->to_tls));
	explicit_wipe(b->from_tls, sizeof(b->from_tls));
	free(b);
}

static const char *
ssl_why(struct egress_tls_bridge *b, char *why, size_t n)
{
	long v = SSL_get_verify_result(b->ssl);
	unsigned long e = ERR_get_error();
	if (!b->server && v != X509_V_OK)
		snprintf(why, n, "certificate verification failed: %s",
		         X509_verify_cert_error_string(v));
	else if (e) {
		char s[160];
		ERR_error_string_n(e, s, sizeof(s));
		snprintf(why, n, "TLS handshake failed: %s", s);
	} else
		snprintf(why, n, "TLS handshake failed: the peer closed the connection");
	ERR_clear_error();
	return why;
}

static void
on_timer(struct loop *l, void *arg)
{
	struct egress_tls_bridge *b = arg;
	(void)l;
	b->timer = NULL;
	if (!b->started) {
		b->done(b->arg, false, "TLS handshake deadline");
		egress_tls_bridge_free(b);
		return;
	}
	uint64_t idle = now_mono_ms() - b->last_io_ms;
	if (idle >= b->idle_ms) {
		egress_tls_bridge_free(b);
		return;
	}
	b->timer = loop_timer_add(b->loop, b->idle_ms - idle, on_timer, b);
}

static void
handshake(struct egress_tls_bridge *b)
{
	char why[256];
	ERR_clear_error();
	int r = SSL_do_handshake(b->ssl);
	if (r == 1) {
		loop_timer_cancel(b->loop, b->timer);
		b->timer = NULL;
		loop_fd_set(b->loop, b->fd, 0, bridge_io, b);
		b->done(b->arg, true, NULL); /* may start or free b: not touched after */
		return;
	}
	int e = SSL_get_error(b->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		loop_fd_set(b->loop, b->fd, e == SSL_ERROR_WANT_READ ? LOOP_READ : LOOP_WRITE,
		            bridge_io, b);
		return;
	}
	b->done(b->arg, false, ssl_why(b, why, sizeof(why)));
	egress_tls_bridge_free(b);
}

/* Moves what each side has to the other until nothing moves; closes the bridge when the
 * plaintext side has ended (all of its bytes sent on) or either side fails. */
static void
pump(struct egress_tls_bridge *b)
{
	for (int round = 0; round < 64; round++) {
		bool moved = false;
		if (!b->tls_eof && b->from_len == 0) {
			size_t got = 0;
			ERR_clear_error();
			if (SSL_read_ex(b->ssl, b->from_tls, sizeof(b->from_tls), &got) == 1) {
				b->from_len = got;
				moved = true;
			} else {
				int e = SSL_get_error(b->ssl, 0);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					b->rd_want = e;
				else {
					b->tls_eof = true; /* close_notify, a reset or an error */
					moved = true;
				}
			}
		}
		if (b->from_len > 0) {
			ssize_t n = send(b->pfd, b->from_tls, b->from_len, MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				goto close;
			if (n > 0) {
				memmove(b->from_tls, b->from_tls + n, b->from_len - (size_t)n);
				b->from_len -= (size_t)n;
				moved = true;
			}
		}
		if (b->tls_eof && b->from_len == 0 && !b->p_shut) {
			shutdown(b->pfd, SHUT_WR);
			b->p_shut = true;
		}
		if (!b->p_eof && b->to_len == 0) {
			ssize_t n = recv(b->pfd, b->to_tls, sizeof(b->to_tls), 0);
			if (n > 0) {
				b->to_len = (size_t)n;
				moved = true;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				b->p_eof = true;
				moved = true;
			}
		}
		if (b->to_len > 0) {
			size_t w = 0;
			ERR_clear_error();
			if (SSL_write_ex(b->ssl, b->to_tls, b->to_len, &w) == 1) {
				memmove(b->to_tls, b->to_tls + w, b->to_len - w);
				b->to_len -= w;
				moved = true;
			} else {
				int e = SSL_get_error(b->ssl, 0);
				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
					goto close;
				b->wr_want = e;
			}
		}
		if (b->p_eof && b->to_len == 0) {
			(void)SSL_shutdown(b->ssl); /* close_notify, best effort */
			goto close;
		}
		if (!moved)
			break;
	}
	int tm = 0, pm = 0;
	if (!b->tls_eof && b->from_len == 0)
		tm |= b->rd_want == SSL_ERROR_WANT_WRITE ? LOOP_WRITE : LOOP_READ;
	if (b->to_len > 0)
		tm |= b->wr_want == SSL_ERROR_WANT_READ ? LOOP_READ : LOOP_WRITE;
	if (!b->p_eof && b->to_len == 0)
		pm |= LOOP_READ;
	if (b->from_len > 0)
		pm |= LOOP_WRITE;
	loop_fd_set(b->loop, b->fd, tm, bridge_io, b);
	loop_fd_set(b->loop, b->pfd, pm, bridge_io, b);
	return;
close:
	egress_tls_bridge_free(b);
}

static void
bridge_io(struct loop *l, int fd, int mask, void *arg)
{
	struct egress_tls_bridge *b = arg;
	(void)l;
	(void)fd;
	(void)mask;
	b->last_io_ms = now_mono_ms();
	if (!b->started)
		handshake(b);
	else
		pump(b);
}

struct egress_tls_bridge *
egress_tls_bridge_new(struct loop *l, SSL *ssl, int fd, bool server, uint64_t deadline_ms,
                      uint64_t idle_ms, egress_tls_done_cb *done, void *arg)
{
	struct egress_tls_bridge *b = xcalloc(1, sizeof(*b));
	b->loop = l;
	b->ssl = ssl;
	b->fd = fd;
	b->pfd = -1;
	b->server = server;
	b->idle_ms = idle_ms;
	b->done = done;
	b->arg = arg;
	b->last_io_ms = now_mono_ms();
	if (SSL_set_fd(ssl, fd) != 1) {
		egress_tls_bridge_free(b);
		return NULL;
	}
	if (server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	b->timer = loop_timer_add(l, deadline_ms, on_timer, b);
	loop_fd_set(l, fd, server ? LOOP_READ : LOOP_WRITE, bridge_io, b);
	return b;
}

void
egress_tls_bridge_start(struct egress_tls_bridge *b, int plain_fd)
{
	b->pfd = plain_fd;
	b->started = true;
	b->last_io_ms = now_mono_ms();
	b->timer = loop_timer_add(b->loop, b->idle_ms, on_timer, b);
	pump(b);
}

SSL *
egress_tls_bridge_ssl(struct egress_tls_bridge *b)
{
	return b->ssl;
}
