/* Work-queue handling rate and latency on loopback: for each iteration a session is
 * created (which queues work), then poll, ack, three heartbeats and a forced stop,
 * each timed. The baseline, measured in the same run on the same keep-alive
 * connection, is the cheapest answer the server gives (an authenticated 404), so the
 * printed ratios show what the queue logic itself costs on top of HTTP.
 * usage: queue_bench BASE_URL API_KEY ITERATIONS */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct resp {
	char *data;
	size_t len;
};

static size_t
collect(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	r->data = realloc(r->data, r->len + sz * n + 1);
	memcpy(r->data + r->len, p, sz * n);
	r->len += sz * n;
	r->data[r->len] = '\0';
	return sz * n;
}

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static CURL *h;
static const char *base;

/* One request; returns the parsed body (NULL for non-JSON) and the elapsed ms. */
static json_t *
call(const char *method, const char *path, const char *key, const char *body, double *ms,
     long *status)
{
	char url[1024], auth[1024];
	struct resp r = {0};
	struct curl_slist *hd = NULL;
	snprintf(url, sizeof(url), "%s%s", base, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	hd = curl_slist_append(hd, auth);
	hd = curl_slist_append(hd, "content-type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	double t0 = now_ms();
	CURLcode rc = curl_easy_perform(h);
	*ms = now_ms() - t0;
	curl_slist_free_all(hd);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	json_t *j = (rc == CURLE_OK && r.data) ? json_loads(r.data, JSON_DECODE_ANY, NULL) : NULL;
	free(r.data);
	return j;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void
report(const char *name, double *v, int n, double base_p50)
{
	qsort(v, (size_t)n, sizeof(double), cmp);
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += v[i];
	double p50 = v[n / 2], p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
	printf("%-10s n=%-5d rate=%8.0f/s p50=%7.3f ms p99=%7.3f ms  p50/baseline=%.2fx\n", name, n,
	       n / (sum / 1000.0), p50, p99, base_p50 > 0 ? p50 / base_p50 : 0);
}

int
main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: queue_bench BASE_URL API_KEY ITERATIONS\n");
		return 2;
	}
	base = argv[1];
	const char *api = argv[2];
	int n = (int)strtol(argv[3], NULL, 10);
	if (n < 1 || n > 1000000) {
		fprintf(stderr, "ITERATIONS: 1 to 1000000\n");
		return 2;
	}
	double *t_base = calloc((size_t)n, sizeof(double)),
	       *t_poll = calloc((size_t)n, sizeof(double));
	double *t_ack = calloc((size_t)n, sizeof(double)),
	       *t_hb = calloc((size_t)n * 3, sizeof(double));
	double *t_stop = calloc((size_t)n, sizeof(double));
	double ms;
	long st;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	h = curl_easy_init();
	json_t *env = call("POST", "/v1/environments", api,
	                   "{\"name\":\"bench\",\"config\":{\"type\":\"self_hosted\"}}", &ms, &st);
	const char *env_id = json_string_value(json_object_get(env, "id"));
	json_t *agent = call("POST", "/v1/agents", api,
	                     "{\"name\":\"bench\",\"model\":\"claude-bench\"}", &ms, &st);
	const char *agent_id = json_string_value(json_object_get(agent, "id"));
	char path[512], body[512];
	snprintf(path, sizeof(path), "/v1/environments/%s/keys", env_id ? env_id : "x");
	json_t *key = call("POST", path, api, "{}", &ms, &st);
	const char *env_key = json_string_value(json_object_get(key, "key"));
	if (!env_id || !agent_id || !env_key) {
		fprintf(stderr, "setup failed (is the server up and the key right?)\n");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		json_decref(call("GET", "/v1/bench-baseline", api, NULL, &t_base[i], &st));
		snprintf(body, sizeof(body), "{\"agent\":\"%s\",\"environment_id\":\"%s\"}",
		         agent_id, env_id);
		json_decref(call("POST", "/v1/sessions", api, body, &ms, &st));
		snprintf(path, sizeof(path), "/v1/environments/%s/work/poll", env_id);
		json_t *w = call("GET", path, env_key, NULL, &t_poll[i], &st);
		const char *wid = json_string_value(json_object_get(w, "id"));
		const char *secret = json_string_value(json_object_get(w, "secret"));
		if (!wid || !secret) {
			fprintf(stderr, "poll returned no work at iteration %d\n", i);
			return 1;
		}
		/* the sessions token is inside the base64url secret */
		char cmd[1024];
		snprintf(cmd, sizeof(cmd), "%s", secret);
		for (char *p = cmd; *p; p++)
			*p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
		size_t L = strlen(cmd);
		while (L % 4)
			cmd[L++] = '=';
		cmd[L] = '\0';
		unsigned char dec[1024];
		int dl = EVP_DecodeBlock(dec, (const unsigned char *)cmd, (int)L);
		if (dl < 0)
			return 1;
		dec[dl] = '\0';
		json_t *sj = json_loads((const char *)dec, 0, NULL);
		const char *tok = json_string_value(json_object_get(sj, "sessions_token"));
		snprintf(path, sizeof(path), "/v1/environments/%s/work/%s/ack", env_id, wid);
		json_decref(call("POST", path, tok, NULL, &t_ack[i], &st));
		const char *last = "NO_HEARTBEAT";
		char lastbuf[64];
		for (int k = 0; k < 3; k++) {
			snprintf(path, sizeof(path),
			         "/v1/environments/%s/work/%s/heartbeat?expected_last_heartbeat=%s",
			         env_id, wid, last);
			json_t *hb = call("POST", path, tok, NULL, &t_hb[i * 3 + k], &st);
			snprintf(lastbuf, sizeof(lastbuf), "%s",
			         json_string_value(json_object_get(hb, "last_heartbeat")));
			last = lastbuf;
			json_decref(hb);
		}
		snprintf(path, sizeof(path), "/v1/environments/%s/work/%s/stop", env_id, wid);
		json_decref(call("POST", path, tok, "{\"force\":true}", &t_stop[i], &st));
		json_decref(sj);
		json_decref(w);
	}
	qsort(t_base, (size_t)n, sizeof(double), cmp);
	double b50 = t_base[n / 2];
	report("baseline", t_base, n, b50);
	report("poll", t_poll, n, b50);
	report("ack", t_ack, n, b50);
	report("heartbeat", t_hb, n * 3, b50);
	report("stop", t_stop, n, b50);
	return 0;
}
