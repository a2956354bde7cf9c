/* Identity benchmark (issue 12): the cost of authenticating a user token that was seen
 * before (the verified-token cache: a SHA-256 and a table probe) against a full ES256
 * verification with lib/jose, both measured in this run (target: cached <= 0.1x). The
 * oidc module runs for real: it fetches discovery and keys from a loopback issuer served
 * by lib/http in this process. Targets, not tests.
 *   identity_bench [N]                                                             */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "http.h"
#include "jose.h"
#include "loop.h"
#include "oidc.h"
#include "util.h"

static struct jose_key *key;
static char issuer[64];

static double
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The issuer: discovery and JWKS. */
static void
serve(struct http_request *req, void *arg)
{
	(void)arg;
	json_t *doc;
	if (strcmp(req->path, "/.well-known/openid-configuration") == 0) {
		char uri[128];
		snprintf(uri, sizeof uri, "%s/jwks", issuer);
		doc = json_pack("{s:s, s:s}", "issuer", issuer, "jwks_uri", uri);
	} else {
		doc = json_pack("{s:[o]}", "keys", jose_key_public_jwk(key));
	}
	char *text = json_dumps(doc, JSON_COMPACT);
	struct http_header ct = {"content-type", "application/json"};
	http_respond(req, 200, &ct, 1, text, strlen(text));
	free(text);
	json_decref(doc);
}

static char *
user_token(int64_t now, int i)
{
	json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I, s:[s, s], s:i}", "iss", issuer, "aud",
	                      "airlock", "sub", "alice", "iat", (json_int_t)now, "exp",
	                      (json_int_t)(now + 600), "groups", "auditors", "staff", "n", i);
	char *t = NULL;
	if (jose_sign(key, JOSE_ES256, c, &t) != 0)
		exit(1);
	json_decref(c);
	return t;
}

static void
report(const char *what, double *v, size_t n, double *p50)
{
	qsort(v, n, sizeof *v, cmp_double);
	*p50 = v[n / 2];
	printf("%-44s p50 %8.2f us   p99 %8.2f us\n", what, v[n / 2], v[n * 99 / 100]);
}

int
main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
	if (n < 100)
		n = 100;
	if (jose_key_generate(JOSE_ES256, "k1", &key) != 0)
		return 1;
	struct loop *l = loop_new();
	struct http_server *hs = http_server_new(l, NULL, serve, NULL);
	int port = 0;
	if (http_server_listen(hs, "127.0.0.1:0", NULL, &port) != 0)
		return 1;
	snprintf(issuer, sizeof issuer, "http://127.0.0.1:%d", port);
	struct oidc_config oc = {.issuer = issuer, .audience = "airlock"};
	struct oidc *o = NULL;
	char err[300];
	if (oidc_new(l, &oc, &o, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	oidc_start(o);
	for (int i = 0; i < 500 && !oidc_ready(o); i++)
		loop_once(l, 10);
	if (!oidc_ready(o)) {
		fprintf(stderr, "the issuer's keys did not load\n");
		return 1;
	}
	int64_t now = now_real_us() / 1000000;
	char **fresh = calloc(n, sizeof *fresh);
	for (size_t i = 0; i < n; i++)
		fresh[i] = user_token(now, (int)i);
	struct jose_keyset *ks = jose_keyset_new(&key, 1);
	double *t = calloc(n, sizeof *t), p_verify, p_first, p_cached;

	/* 1. lib/jose alone: ES256 signature and claim parsing, no cache */
	for (size_t i = 0; i < n; i++) {
		json_t *p = NULL;
		double a = now_us();
		if (jose_verify(fresh[i], strlen(fresh[i]), ks, JOSE_ALGS_ALL, &p, err,
		                sizeof err) != 0)
			return 1;
		t[i] = now_us() - a;
		json_decref(p);
	}
	report("uncached ES256 verify (lib/jose)", t, n, &p_verify);

	/* 2. the oidc path, first sight of each token: verify + claims + groups + cache fill */
	struct oidc_user u;
	for (size_t i = 0; i < n; i++) {
		double a = now_us();
		if (oidc_authenticate(o, fresh[i], &u, err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		t[i] = now_us() - a;
		oidc_user_reset(&u);
	}
	report("user token, first request (oidc)", t, n, &p_first);

	/* 3. the same token again: the cache */
	for (size_t i = 0; i < n; i++) {
		double a = now_us();
		if (oidc_authenticate(o, fresh[n - 1], &u, err, sizeof err) != 0)
			return 1;
		t[i] = now_us() - a;
		oidc_user_reset(&u);
	}
	report("user token, seen before (oidc cache)", t, n, &p_cached);
	printf("cached / uncached ES256 verify = %.3fx (target <= 0.1x)\n", p_cached / p_verify);
	printf("first request / uncached verify = %.2fx (claims, groups, cache fill)\n",
	       p_first / p_verify);

	struct oidc_stats st;
	oidc_get_stats(o, &st);
	printf("oidc: %llu verified, %llu cache hits, %llu JWKS fetches\n",
	       (unsigned long long)st.verified, (unsigned long long)st.cache_hits,
	       (unsigned long long)st.jwks_fetches);
	for (size_t i = 0; i < n; i++)
		free(fresh[i]);
	free(fresh);
	free(t);
	jose_keyset_free(ks);
	oidc_free(o);
	http_server_free(hs);
	loop_free(l);
	jose_key_free(key);
	return 0;
}
