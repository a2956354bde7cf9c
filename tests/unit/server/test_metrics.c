/* src/server/api/metrics.c without HTTP: route templates map to their families (every
 * route of every table to a named one, so a new route cannot fall into "other"
 * unnoticed), and requests observed land in the right counter and histogram buckets of
 * the exposition. The HTTP doors and the scrape-time gauges run in interop-metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "db.h"
#include "metrics.h"
#include "routes.h"
#include "server.h"
#include "testdb.h"

static const struct api_route *const tables[] = {ROUTE_TABLES};

static void
test_family_table(void **state)
{
	static const struct {
		const char *pattern, *family;
	} rows[] = {
	    {NULL, "unmatched"},
	    {"/healthz", "probe"},
	    {"/readyz", "probe"},
	    {"/metrics", "metrics"},
	    {"/console/{*}", "console"},
	    {"/console/oidc/callback", "console"},
	    {"/.well-known/jwks.json", "well_known"},
	    {"/v1/agents", "agents"},
	    {"/v1/agents/{}/versions", "agents"},
	    {"/v1/sessions", "sessions"},
	    {"/v1/sessions/{}", "sessions"},
	    {"/v1/sessions/{}/events", "events"},
	    {"/v1/sessions/{}/events/stream", "event_stream"},
	    {"/v1/environments/{}", "environments"},
	    {"/v1/environments/{}/keys", "environments"},
	    {"/v1/environments/{}/work/poll", "work"},
	    {"/v1/environments/{}/work/{}/heartbeat", "work"},
	    {"/v1/vaults/{}/credentials/{}", "vaults"},
	    {"/v1/memory_stores/{}/memories", "memory_stores"},
	    {"/v1/tunnels/{}/rotate_token", "tunnels"},
	    {"/v1/tunnels/{}/routes/{}/{*}", "tunnel_ingress"},
	    {"/v1/audit_events", "audit_events"},
	    {"/v1/files", "files"},
	    {"/v1/files/{}/content", "files"},
	    {"/v1/skills", "skills"},
	    /* a prefix is a whole segment: no family by accident */
	    {"/v1/agentsX", "other"},
	    {"/v1/new_thing", "other"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *got = metrics_route_family(rows[i].pattern);
		if (strcmp(got, rows[i].family) != 0)
			fail_msg("%s: %s, want %s", rows[i].pattern ? rows[i].pattern : "(none)",
			         got, rows[i].family);
	}
}

static void
test_every_route_has_a_family(void **state)
{
	size_t n = 0;
	(void)state;
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct api_route *r = tables[t]; r->pattern; r++, n++) {
			const char *f = metrics_route_family(r->pattern);
			if (strcmp(f, "other") == 0 || strcmp(f, "unmatched") == 0)
				fail_msg("%s %s counts as \"%s\": give it a family in metrics.c",
				         r->method, r->pattern, f);
		}
	assert_true(n > 40); /* the tables were really walked */
}

/* t0 so that the request took ms milliseconds by now */
static struct timespec
ago(long ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_nsec -= ms * 1000000L;
	while (t.tv_nsec < 0) {
		t.tv_nsec += 1000000000L;
		t.tv_sec--;
	}
	return t;
}

static void
assert_line(const char *text, const char *line)
{
	char want[256];
	snprintf(want, sizeof(want), "\n%s\n", line);
	if (strstr(text, want) == NULL)
		fail_msg("missing line %s in:\n%s", line, text);
}

static void
test_observe_and_render(void **state)
{
	char dir[] = "/tmp/airlock-metrics-XXXXXX";
	struct server s;
	struct buf b;
	(void)state;
	memset(&s, 0, sizeof(s));
	s.db = testdb_open(dir);
	assert_int_equal(metrics_init(&s), 0);

	struct timespec t3 = ago(3), t200 = ago(200), t0 = ago(0);
	metrics_observe(&s, "/v1/sessions", 200, &t3);
	metrics_observe(&s, "/v1/sessions/{}", 201, &t200);
	metrics_observe(&s, "/v1/sessions", 400, &t0);
	metrics_observe(&s, NULL, 404, &t0);
	metrics_observe(&s, "/v1/sessions/{}/events/stream", 0, &t0); /* client left */

	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_render(&s, &b), 0);
	assert_int_equal(buf_add(&b, "", 1), 0);
	const char *text = b.data;
	assert_line(text,
	            "airlock_http_requests_total{family=\"sessions\",status_class=\"2xx\"} 2");
	assert_line(text,
	            "airlock_http_requests_total{family=\"sessions\",status_class=\"4xx\"} 1");
	assert_line(text,
	            "airlock_http_requests_total{family=\"unmatched\",status_class=\"4xx\"} 1");
	assert_line(text,
	            "airlock_http_requests_total{family=\"event_stream\",status_class=\"none\"} 1");
	/* 0 ms, 3 ms and 200 ms: cumulative buckets */
	assert_line(
	    text,
	    "airlock_http_request_duration_seconds_bucket{family=\"sessions\",le=\"0.0025\"} 1");
	assert_line(
	    text,
	    "airlock_http_request_duration_seconds_bucket{family=\"sessions\",le=\"0.005\"} 2");
	assert_line(
	    text, "airlock_http_request_duration_seconds_bucket{family=\"sessions\",le=\"0.1\"} 2");
	assert_line(
	    text,
	    "airlock_http_request_duration_seconds_bucket{family=\"sessions\",le=\"0.25\"} 3");
	assert_line(
	    text,
	    "airlock_http_request_duration_seconds_bucket{family=\"sessions\",le=\"+Inf\"} 3");
	assert_line(text, "airlock_http_request_duration_seconds_count{family=\"sessions\"} 3");
	/* families nobody asked for stay out; the database answers; nothing drains */
	assert_null(strstr(text, "family=\"agents\""));
	assert_line(text, "airlock_database_up 1");
	assert_line(text, "airlock_sessions{status=\"running\"} 0");
	assert_line(text, "airlock_draining 0");
	s.draining = true;
	buf_reset(&b);
	assert_int_equal(metrics_render(&s, &b), 0);
	assert_int_equal(buf_add(&b, "", 1), 0);
	assert_line(b.data, "airlock_draining 1");
	buf_free(&b);

	metrics_shutdown(&s);
	testdb_close(s.db, dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_family_table),
	    cmocka_unit_test(test_every_route_has_a_family),
	    cmocka_unit_test(test_observe_and_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
