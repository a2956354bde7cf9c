/* Egress (issue 14) benchmarks, ratios against baselines measured in the same run; no
 * pass/fail (bench/run.sh prints them with the targets):
 *  1. an allow/deny decision (host + address) against a 256-entry allowlist: p50/p99;
 *  2. (root) sandbox creation to first exec through the monitor with the network exit
 *     (CREATE + EGRESS) against without, alternating, from warm spares;
 *  3. a 64 MiB download through a CONNECT tunnel against the same download direct;
 *  4. 10,000 requests through the proxy: the process's RSS growth;
 *  5. HTTPS through a terminated tunnel (a credential host: two handshakes, the request
 *     read and injected) against an untouched one: a small request's p50 and a 16 MiB
 *     download, alternating.
 * The proxy runs on its own event loop thread, as in the worker. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "egress.h"
#include "egress_policy.h"
#include "egress_tls.h"
#include "log.h"
#include "loop.h"
#include "monitor.h"
#include "net.h"
#include "sandbox.h"

#define DOWNLOAD (64u << 20)

static double
now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
pct(double *v, int n, double q)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[(int)(q * (n - 1))];
}

/* ---- 1. decisions ---- */

static void
bench_decide(void)
{
	char y[16384], err[512];
	size_t o = (size_t)snprintf(y, sizeof(y), "allowed_hosts:\n");
	for (int i = 0; i < 255; i++)
		o += (size_t)snprintf(y + o, sizeof(y) - o, "  - '*.team%d.corp.example'\n", i);
	o += (size_t)snprintf(y + o, sizeof(y) - o,
	                      "  - api.example\nallowed_addresses: [10.20.0.0/16]\n");
	struct egress_operator *op;
	if (egress_operator_parse("bench.yaml", y, o, &op, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	struct egress_env env = {.type = EGRESS_ENV_UNRESTRICTED};
	struct egress_addr a;
	egress_addr_parse("10.20.1.5", &a);
	enum { N = 20000 };
	static double v[N];
	char host[64];
	int allowed = 0;
	for (int i = 0; i < N; i++) {
		/* a third on the last entry (the worst scan), a third denied, a third early */
		if (i % 3 == 0)
			snprintf(host, sizeof(host), "api.example");
		else if (i % 3 == 1)
			snprintf(host, sizeof(host), "x.unknown%d.example", i);
		else
			snprintf(host, sizeof(host), "svc.team%d.corp.example", i % 16);
		struct egress_decision d, da;
		double t0 = now_us();
		egress_decide_host(op, &env, host, 443, &d);
		if (d.allow)
			egress_decide_addr(op, &a, NULL, 0, &da);
		v[i] = now_us() - t0;
		allowed += d.allow;
	}
	printf("decision (host + address, 256 patterns)  p50 %7.2f us  p99 %7.2f us  "
	       "(target p99 <= 1000 us; %d of %d allowed)\n",
	       pct(v, N, .5), pct(v, N, .99), allowed, N);
	egress_operator_free(op);
}

/* ---- 2. sandbox creation with the network exit ---- */

static void
bench_create(int n)
{
	char state[] = "/tmp/airlock-egbench-XXXXXX", root[96], ws[128], mstate[96];
	struct sandbox_profile p;
	int pfd[2];
	if (geteuid() != 0) {
		printf("sandbox create with network exit: skipped (needs root)\n");
		return;
	}
	if (mkdtemp(state) == NULL || pipe(pfd) != 0)
		return;
	snprintf(root, sizeof(root), "%s/root", state);
	snprintf(ws, sizeof(ws), "%s/ws", root);
	snprintf(mstate, sizeof(mstate), "%s/mstate", state);
	mkdir(root, 0755);
	mkdir(ws, 0755);
	sandbox_profile_defaults(&p);
	p.state_dir = mstate;
	fflush(stdout);
	pid_t h = fork();
	if (h == 0) {
		struct monitor_config cfg = {
		    .profile = &p, .workspace_root = root, .keep_root = true, .spares = 1};
		struct monitor *m;
		double *with = calloc((size_t)n, sizeof(double)),
		       *without = calloc((size_t)n, sizeof(double)),
		       *step = calloc((size_t)n, sizeof(double)), res[3] = {-1, -1, -1};
		int nul = open("/dev/null", O_WRONLY | O_CLOEXEC), i, st;
		close(pfd[0]);
		if (monitor_start(&cfg, &m) != 0)
			_exit(1);
		usleep(100000);
		for (i = 0; i < 2 * n; i++) {
			struct sandbox_proc *pr;
			uint32_t id;
			int lfd = -1;
			bool net = i % 2 == 0;
			double t0 = now_us();
			double tc = 0, te = 0;
			if (monitor_client_create(m, "egbench", ws, &id) != 0 ||
			    (tc = now_us(), false) ||
			    (net && monitor_client_egress(m, id, &lfd) != 0) ||
			    (te = now_us(), false) ||
			    monitor_client_spawn(m, id, (const char *[]){"/bin/true", NULL}, NULL,
			                         NULL, -1, nul, nul, &pr) != 0 ||
			    sandbox_proc_wait(pr, &st) != 0)
				break;
			(net ? with : without)[i / 2] = now_us() - t0;
			if (net)
				step[i / 2] = te - tc;
			sandbox_proc_free(pr);
			if (lfd >= 0)
				close(lfd);
			monitor_client_destroy(m, id);
			usleep(100000); /* the monitor refills its spare */
		}
		if (i == 2 * n) {
			res[0] = pct(with, n, .5);
			res[1] = pct(without, n, .5);
			res[2] = pct(step, n, .5);
		}
		(void)!write(pfd[1], res, sizeof(res));
		monitor_free(m);
		_exit(0);
	}
	close(pfd[1]);
	double res[3] = {-1, -1, -1};
	if (h > 0 && read(pfd[0], res, sizeof(res)) != sizeof(res))
		res[0] = -1;
	close(pfd[0]);
	if (h > 0)
		waitpid(h, NULL, 0);
	if (res[0] < 0)
		printf("sandbox create with network exit: failed\n");
	else
		printf("create to first exec (warm, monitor)      p50 %7.0f us with the network "
		       "exit, %7.0f us without: %.2fx (target <= 1.2x; %d each, alternating); the "
		       "EGRESS round trip itself p50 %.0f us\n",
		       res[0], res[1], res[0] / res[1], n, res[2]);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", state);
	(void)!system(cmd);
}

/* ---- 3 and 4: the proxy on loopback ---- */

static int origin_port, proxy_port;
static struct loop *ploop;

/* The origin: reads a request head (or anything), then sends `want` bytes, or the
 * small answer for "GET /small". */
static void *
origin_conn(void *arg)
{
	int c = (int)(intptr_t)arg;
	char buf[4096];
	ssize_t r = recv(c, buf, sizeof(buf) - 1, 0);
	if (r > 0) {
		buf[r] = '\0';
		if (strstr(buf, "/small") != NULL) {
			static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
			                         "Connection: close\r\n\r\nok";
			(void)send(c, ok, sizeof(ok) - 1, MSG_NOSIGNAL);
		} else {
			static char chunk[65536];
			for (size_t sent = 0; sent < DOWNLOAD;) {
				ssize_t w = send(c, chunk, sizeof(chunk), MSG_NOSIGNAL);
				if (w <= 0)
					break;
				sent += (size_t)w;
			}
		}
	}
	close(c);
	return NULL;
}

static void *
origin_main(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		if (c < 0)
			continue;
		pthread_t th;
		pthread_create(&th, NULL, origin_conn, (void *)(intptr_t)c);
		pthread_detach(th);
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
dial(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static size_t
drain(int fd)
{
	static char buf[1 << 16];
	size_t n = 0;
	ssize_t r;
	while ((r = recv(fd, buf, sizeof(buf), 0)) > 0)
		n += (size_t)r;
	return n;
}

/* MB/s of one download, direct or through CONNECT. */
static double
download(bool via_proxy)
{
	char req[128];
	int fd = dial(via_proxy ? proxy_port : origin_port);
	double t0 = now_us();
	if (via_proxy) {
		char head[40];
		snprintf(req, sizeof(req), "CONNECT api.bench.test:%d HTTP/1.1\r\n\r\n",
		         origin_port);
		(void)!send(fd, req, strlen(req), 0);
		if (recv(fd, head, 39, MSG_WAITALL) != 39) {
			close(fd);
			return -1;
		}
	}
	(void)!send(fd, "GET /big\r\n\r\n", 12, 0);
	size_t n = drain(fd);
	double dt = now_us() - t0;
	close(fd);
	return n >= DOWNLOAD ? (double)n / dt : -1; /* bytes/us = MB/s */
}

static long
rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			v = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static void
bench_proxy(int runs, int requests)
{
	int ofd, lfd;
	char y[512], err[256];
	struct egress_operator *op;
	struct egress_proxy *px;
	pthread_t th;
	if (net_listen_tcp("127.0.0.1:0", &ofd, &origin_port) != 0)
		return;
	fcntl(ofd, F_SETFL, fcntl(ofd, F_GETFL) & ~O_NONBLOCK);
	snprintf(y, sizeof(y),
	         "allowed_hosts: [api.bench.test]\nallowed_addresses: [127.0.0.1]\n"
	         "max_connections: 64\nresolve: {api.bench.test: 127.0.0.1}\n");
	if (egress_operator_parse("bench.yaml", y, strlen(y), &op, err, sizeof(err)) != 0)
		return;
	struct egress_env env = {.type = EGRESS_ENV_UNRESTRICTED};
	ploop = loop_new();
	if (net_listen_tcp("127.0.0.1:0", &lfd, &proxy_port) != 0 ||
	    egress_proxy_new(ploop, lfd, op, &env, "sesn_bench", &px) != 0)
		return;
	pthread_create(&th, NULL, origin_main, (void *)(intptr_t)ofd);
	pthread_detach(th);
	pthread_create(&th, NULL, proxy_main, NULL);
	pthread_detach(th);

	double *d = calloc((size_t)runs, sizeof(double)), *p = calloc((size_t)runs, sizeof(double));
	for (int i = 0; i < runs; i++) {
		d[i] = download(false);
		p[i] = download(true);
	}
	double dm = pct(d, runs, .5), pm = pct(p, runs, .5);
	printf("64 MiB download                          direct %7.0f MB/s, through CONNECT "
	       "%7.0f MB/s: %.2fx (target >= 0.8x; p50 of %d)\n",
	       dm, pm, pm / dm, runs);

	char req[256];
	snprintf(req, sizeof(req),
	         "GET http://api.bench.test:%d/small HTTP/1.1\r\nHost: api.bench.test:%d\r\n\r\n",
	         origin_port, origin_port);
	/* warm up (allocator, the decision queue at its bound), then measure */
	for (int i = 0; i < 2000; i++) {
		int fd = dial(proxy_port);
		(void)!send(fd, req, strlen(req), 0);
		drain(fd);
		close(fd);
	}
	long before = rss_kib();
	int ok = 0;
	double t0 = now_us();
	for (int i = 0; i < requests; i++) {
		int fd = dial(proxy_port);
		(void)!send(fd, req, strlen(req), 0);
		ok += drain(fd) > 0;
		close(fd);
	}
	double dt = now_us() - t0;
	long after = rss_kib();
	printf("%d requests through the proxy            RSS %ld -> %ld KiB: growth %.2f MiB "
	       "(target <= 8 MiB; %d answered, %.0f req/s)\n",
	       requests, before, after, (double)(after - before) / 1024.0, ok,
	       requests / (dt / 1e6));
}

/* ---- 5. TLS termination against an untouched tunnel ---- */

#define TLS_DOWNLOAD (16u << 20)
static SSL_CTX *t_origin;
static int t_proxy_port, t_origin_port;

static void *
tls_origin_conn(void *arg)
{
	int c = (int)(intptr_t)arg;
	SSL *s = SSL_new(t_origin);
	char buf[4096] = "";
	SSL_set_fd(s, c);
	if (SSL_accept(s) == 1 && SSL_read(s, buf, sizeof(buf) - 1) > 0) {
		bool big = strstr(buf, "GET /big") != NULL;
		char head[128];
		int hn =
		    snprintf(head, sizeof(head),
		             "HTTP/1.1 200 OK\r\nContent-Length: %u\r\nConnection: close\r\n\r\n",
		             big ? TLS_DOWNLOAD : 2u);
		SSL_write(s, head, hn);
		if (big) {
			static char chunk[1 << 16];
			/* the leaf's context allows partial writes: count what went */
			for (size_t sent = 0; sent < TLS_DOWNLOAD;) {
				int w = SSL_write(s, chunk, sizeof(chunk));
				if (w <= 0)
					break;
				sent += (size_t)w;
			}
		} else
			SSL_write(s, "ok", 2);
		SSL_shutdown(s);
	}
	SSL_free(s);
	ERR_clear_error();
	close(c);
	return NULL;
}

static void *
tls_origin_main(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		pthread_t th;
		if (c < 0)
			continue;
		pthread_create(&th, NULL, tls_origin_conn, (void *)(intptr_t)c);
		pthread_detach(th);
	}
	return NULL;
}

/* CONNECT host, TLS (the bench does not verify), one GET: the body's bytes, or 0. */
static size_t
tls_get(const char *host, const char *path)
{
	char req[256], head[40], buf[1 << 16];
	size_t n = 0;
	int r, fd = dial(t_proxy_port);
	snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\n\r\n", host, t_origin_port);
	(void)!send(fd, req, strlen(req), 0);
	if (recv(fd, head, 39, MSG_WAITALL) != 39) {
		close(fd);
		return 0;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *s = SSL_new(ctx);
	SSL_CTX_free(ctx);
	SSL_set_tlsext_host_name(s, host);
	SSL_set_fd(s, fd);
	if (SSL_connect(s) == 1) {
		int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", path,
		                  host, t_origin_port);
		SSL_write(s, req, rl);
		while ((r = SSL_read(s, buf, sizeof(buf))) > 0)
			n += (size_t)r;
	}
	SSL_free(s);
	ERR_clear_error();
	close(fd);
	return n;
}

static void
bench_tls(int runs)
{
	char y[512], err[512], pdir[] = "/tmp/egress_bench_XXXXXX",
	                       odir[] = "/tmp/egress_bench_XXXXXX";
	struct egress_operator *op;
	struct egress_proxy *px;
	struct egress_ca *pca, *oca;
	struct loop *l;
	int ofd, lfd;
	pthread_t th;
	if (!mkdtemp(pdir) || !mkdtemp(odir) ||
	    egress_ca_open(NULL, NULL, odir, NULL, &oca, err, sizeof(err)) != 0 ||
	    egress_ca_open(NULL, NULL, pdir, NULL, &pca, err, sizeof(err)) != 0) {
		printf("TLS termination: skipped (%s)\n", err);
		return;
	}
	/* the origin's leaf names both hosts' origin; the proxy is told to trust its CA */
	char ocert[64];
	snprintf(ocert, sizeof(ocert), "%s/egress-ca.crt", odir);
	egress_ca_free(pca);
	if (egress_ca_open(NULL, NULL, pdir, ocert, &pca, err, sizeof(err)) != 0)
		return;
	t_origin = egress_ca_leaf_ctx(oca, "tls.bench.test", (int64_t)time(NULL));
	if (net_listen_tcp("127.0.0.1:0", &ofd, &t_origin_port) != 0)
		return;
	fcntl(ofd, F_SETFL, fcntl(ofd, F_GETFL) & ~O_NONBLOCK);
	snprintf(y, sizeof(y),
	         "allowed_hosts: ['*.bench.test']\nallowed_addresses: [127.0.0.1]\n"
	         "resolve: {tls.bench.test: 127.0.0.1, open.bench.test: 127.0.0.1}\n");
	if (egress_operator_parse("bench.yaml", y, strlen(y), &op, err, sizeof(err)) != 0)
		return;
	struct egress_env env = {.type = EGRESS_ENV_UNRESTRICTED};
	l = loop_new();
	if (net_listen_tcp("127.0.0.1:0", &lfd, &t_proxy_port) != 0 ||
	    egress_proxy_new(l, lfd, op, &env, "sesn_tls_bench", &px) != 0)
		return;
	egress_proxy_set_ca(px, pca);
	json_t *hosts = json_pack("[s]", "tls.bench.test");
	egress_proxy_add_secret(px, "vcrd_bench", "PH-bench", "VALUE-bench", hosts, true, false);
	json_decref(hosts);
	ploop = l;
	pthread_create(&th, NULL, tls_origin_main, (void *)(intptr_t)ofd);
	pthread_detach(th);
	pthread_create(&th, NULL, proxy_main, NULL);
	pthread_detach(th);

	int m = runs * 5;
	double *a = calloc((size_t)m, sizeof(double)), *b = calloc((size_t)m, sizeof(double));
	for (int i = 0; i < m; i++) {
		double t0 = now_us();
		bool ok = tls_get("open.bench.test", "/small") > 0;
		double t1 = now_us();
		ok = tls_get("tls.bench.test", "/small") > 0 && ok;
		a[i] = t1 - t0;
		b[i] = ok ? now_us() - t1 : 1e12;
	}
	double am = pct(a, m, .5), bm = pct(b, m, .5);
	printf("HTTPS request (CONNECT + TLS + GET)      tunnel p50 %6.2f ms, terminated p50 %6.2f "
	       "ms: %.2fx (p50 of %d)\n",
	       am / 1e3, bm / 1e3, bm / am, m);
	for (int i = 0; i < runs; i++) {
		double t0 = now_us();
		size_t na = tls_get("open.bench.test", "/big");
		double t1 = now_us();
		size_t nb = tls_get("tls.bench.test", "/big");
		a[i] = na >= TLS_DOWNLOAD ? (double)na / (t1 - t0) : -1;
		b[i] = nb >= TLS_DOWNLOAD ? (double)nb / (now_us() - t1) : -1;
	}
	am = pct(a, runs, .5);
	bm = pct(b, runs, .5);
	printf("16 MiB HTTPS download                    tunnel %7.0f MB/s, terminated %7.0f MB/s: "
	       "%.2fx (p50 of %d)\n",
	       am, bm, bm / am, runs);
	free(a);
	free(b);
}

int
main(int argc, char **argv)
{
	int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 40;
	log_setup(LOG_FMT_TEXT, LOG_LVL_ERROR, "bench"); /* the proxy logs every decision */
	bench_create(n); /* first: the monitor forks before any thread exists */
	bench_decide();
	bench_proxy(n < 5 ? n : 5, 10000);
	bench_tls(n < 5 ? n : 5);
	return 0;
}
