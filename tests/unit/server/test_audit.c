/* src/server/audit/audit.c without a server: the log's offset index (built at open,
 * extended on append), the filters of GET /v1/audit_events (action, principal, session,
 * time), cursor paging in both orders, and the scan bound that ends a page early when
 * matches are rare; a failed write makes the server refuse until a retry writes the
 * "audit.recovered" record; the agent loop's records, committed with its events through
 * the outbox, reach the file exactly once across a crash; closing adds a checkpoint. The HTTP route
 * and the emit points run in interop-audit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api.h"
#include "audit.h"
#include "audit_store.h"
#include "db.h"
#include "err.h"
#include "loop.h"
#include "server.h"

#define T0 1700000000000000LL /* µs */
#define N 30

static char path[64];

/* Record i (1-based seq): actions cycle tool.call, session.create, auth.fail; principal
 * alice for even i, bob for odd; session s<i % 3>; one second apart. */
static void
fill(struct audit_log *lg, int from, int to)
{
	for (int i = from; i <= to; i++) {
		static const char *const actions[] = {"tool.call", "session.create", "auth.fail"};
		char sid[8];
		snprintf(sid, sizeof sid, "s%d", i % 3);
		json_t *res = json_pack("{s:s}", "session_id", sid);
		struct audit_event e = {.time_us = T0 + (int64_t)i * 1000000,
		                        .action = actions[i % 3],
		                        .sub = i % 2 ? "bob" : "alice",
		                        .resources = res,
		                        .outcome = "ok"};
		json_t *rec = audit_record_new(&e);
		assert_int_equal(audit_log_append(lg, rec), 0);
		json_decref(rec);
		json_decref(res);
	}
}

static struct audit_query
all(void)
{
	struct audit_query q = {.time_lo = INT64_MIN, .time_hi = INT64_MAX, .limit = 1000};
	return q;
}

static int
setup(void **state)
{
	struct audit_log *lg = NULL;
	char err[256];
	unlink(path);
	assert_int_equal(audit_log_open(path, &lg, err, sizeof err), 0);
	fill(lg, 1, N);
	*state = lg;
	return 0;
}

static int
teardown(void **state)
{
	audit_log_free(*state);
	unlink(path);
	return 0;
}

/* The file as written is one valid chain of count records. */
static void
assert_file_valid(const char *file, uint64_t count)
{
	FILE *f = fopen(file, "rb");
	struct audit_verify v;
	audit_verify_init(&v);
	assert_non_null(f);
	assert_int_equal(audit_verify_stream(&v, f), 0);
	fclose(f);
	assert_int_equal(v.count, count);
}

static uint64_t
seq_of(json_t *data, size_t i)
{
	return (uint64_t)json_integer_value(json_object_get(json_array_get(data, i), "seq"));
}

static void
test_filters(void **state)
{
	struct audit_log *lg = *state;
	json_t *data;
	uint64_t next;
	struct {
		const char *action, *principal, *session;
		int64_t lo, hi;
		size_t want;
	} cases[] = {
	    {NULL, NULL, NULL, INT64_MIN, INT64_MAX, N},
	    {"tool.call", NULL, NULL, INT64_MIN, INT64_MAX, N / 3},
	    {NULL, "alice", NULL, INT64_MIN, INT64_MAX, N / 2},
	    {"auth.fail", "bob", NULL, INT64_MIN, INT64_MAX, 5}, /* i = 5, 11, 17, 23, 29 */
	    {NULL, NULL, "s1", INT64_MIN, INT64_MAX, N / 3},
	    {NULL, NULL, NULL, T0 + 5000000, T0 + 9000000, 5},       /* inclusive both ends */
	    {"session.create", NULL, "s2", INT64_MIN, INT64_MAX, 0}, /* never both */
	    {"no.such", NULL, NULL, INT64_MIN, INT64_MAX, 0},
	    {NULL, "carol", NULL, INT64_MIN, INT64_MAX, 0},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct audit_query q = all();
		q.action = cases[k].action;
		q.principal = cases[k].principal;
		q.session_id = cases[k].session;
		q.time_lo = cases[k].lo;
		q.time_hi = cases[k].hi;
		assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
		if (json_array_size(data) != cases[k].want)
			fail_msg("case %zu: %zu records, want %zu", k, json_array_size(data),
			         cases[k].want);
		assert_int_equal(next, 0);
		for (size_t i = 0; i < json_array_size(data); i++)
			assert_true(audit_query_match(&q, json_array_get(data, i)));
		json_decref(data);
	}
}

/* Pages of 4 in both orders: every record exactly once, in order, and the last page
 * says there is no next one. */
static void
test_paging(void **state)
{
	struct audit_log *lg = *state;
	for (int desc = 0; desc <= 1; desc++) {
		struct audit_query q = all();
		q.limit = 4;
		q.desc = desc;
		uint64_t want = desc ? N : 1, pages = 0, next;
		for (;;) {
			json_t *data;
			assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
			for (size_t i = 0; i < json_array_size(data); i++) {
				assert_int_equal(seq_of(data, i), want);
				want = desc ? want - 1 : want + 1;
			}
			json_decref(data);
			pages++;
			if (next == 0)
				break;
			q.has_cursor = true;
			q.after_seq = next;
		}
		assert_int_equal(want, desc ? 0 : N + 1);
		assert_int_equal(pages, (N + 3) / 4);
	}
	/* a cursor past either end is an empty last page */
	struct audit_query q = all();
	json_t *data;
	uint64_t next;
	q.has_cursor = true;
	q.after_seq = N + 5;
	assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
	assert_int_equal(json_array_size(data), 0);
	assert_int_equal(next, 0);
	json_decref(data);
	q.desc = true;
	q.after_seq = 1;
	assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
	assert_int_equal(json_array_size(data), 0);
	assert_int_equal(next, 0);
	json_decref(data);
}

/* Rare matches: a page stops after max_scan records with a cursor even when empty, and
 * following the cursors finds every match. */
static void
test_scan_bound(void **state)
{
	struct audit_log *lg = *state;
	struct audit_query q = all();
	q.action = "auth.fail";
	q.principal = "bob";
	q.max_scan = 4;
	q.desc = true;
	uint64_t next, found = 0, pages = 0;
	for (;;) {
		json_t *data;
		assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
		assert_true(json_array_size(data) <= 4);
		found += json_array_size(data);
		json_decref(data);
		pages++;
		if (next == 0)
			break;
		q.has_cursor = true;
		q.after_seq = next;
	}
	assert_int_equal(found, 5);
	assert_int_equal(pages, (N + 3) / 4);
}

/* Reopened: the index is rebuilt from the file, the chain goes on where it stopped. */
static void
test_reopen(void **state)
{
	struct audit_log *lg = *state;
	char err[256];
	audit_log_free(lg);
	*state = NULL;
	assert_int_equal(audit_log_open(path, &lg, err, sizeof err), 0);
	*state = lg;
	assert_int_equal(audit_log_count(lg), N);
	fill(lg, N + 1, N + 2);
	struct audit_query q = all();
	q.desc = true;
	q.limit = 3;
	json_t *data;
	uint64_t next;
	assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
	assert_int_equal(seq_of(data, 0), N + 2);
	assert_int_equal(seq_of(data, 2), N);
	assert_int_equal(next, N);
	json_decref(data);
	/* the file as written is one valid chain */
	assert_file_valid(path, N + 2);
}

/* The descriptor the log writes to, found by its path: the test swaps the file under it. */
static int
log_fd(void)
{
	for (int fd = 3; fd < 1024; fd++) {
		char link[64], target[PATH_MAX];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n > 0) {
			target[n] = '\0';
			if (strcmp(target, path) == 0)
				return fd;
		}
	}
	return -1;
}

/* A write that fails (ENOSPC from /dev/full put under the log's descriptor) is counted
 * and makes API actions refused; once the file takes writes again, the next check after
 * the retry delay writes "audit.recovered" with the count and lets them through. */
static void
test_failure_refuses_until_recovered(void **state)
{
	struct server s;
	memset(&s, 0, sizeof(s));
	s.audit = *state;
	struct audit_event e = {.action = "session.create", .outcome = "ok"};
	struct audit_stats st;
	assert_false(audit_refusing(&s));
	int fd = log_fd(), full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (full < 0)
		skip(); /* no /dev/full here */
	assert_true(fd >= 0);
	int saved = dup(fd);
	assert_true(saved >= 0);
	assert_int_equal(dup2(full, fd), fd);
	assert_int_not_equal(audit_emit(&s, &e), 0);
	assert_int_not_equal(audit_emit(&s, &e), 0);
	audit_get_stats(&s, &st);
	assert_int_equal(st.failed, 2);
	assert_true(audit_refusing(&s));
	/* the file is back; refusing holds until the retry delay has passed */
	assert_int_equal(dup2(saved, fd), fd);
	close(saved);
	close(full);
	assert_true(audit_refusing(&s));
	usleep(1100 * 1000);
	assert_false(audit_refusing(&s));
	assert_false(audit_refusing(&s));
	audit_get_stats(&s, &st);
	assert_int_equal(st.written, 1);
	struct audit_query q = all();
	q.action = "audit.recovered";
	json_t *data;
	uint64_t next;
	assert_int_equal(audit_log_query(s.audit, &q, &data, &next), 0);
	assert_int_equal(json_array_size(data), 1);
	json_t *rec = json_array_get(data, 0);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(rec, "resources"), "records_lost")),
	    "2");
	assert_int_equal(json_integer_value(json_object_get(rec, "seq")), N + 1);
	json_decref(data);
	/* the chain never saw the failed records */
	assert_file_valid(path, N + 1);
}

static int
count_row(void *arg, int64_t id, json_t *rec)
{
	(void)id;
	(void)rec;
	++*(int *)arg;
	return 0;
}

/* How many records of the file carry this outbox id. */
static int
in_file(struct audit_log *lg, int64_t id)
{
	struct audit_query q = all();
	json_t *data, *rec;
	uint64_t next;
	size_t i;
	int n = 0;
	assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
	json_array_foreach(data, i, rec)
	{
		json_t *oid = json_object_get(json_object_get(rec, "resources"), "outbox_id");
		n += json_integer_value(oid) == id;
	}
	json_decref(data);
	return n;
}

/* The agent loop's tool.call records commit with its events (outbox rows), are appended
 * without a sync, and their rows go at the next flush. A crash before the flush (rows 1
 * and 2 in the file, row 3 committed but never appended) loses none and repeats none;
 * a rolled-back transaction leaves nothing. */
static void
test_outbox_across_a_crash(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_audit_db.XXXXXX", file[128];
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof file, "%s/audit.jsonl", dir);
	struct server s;
	memset(&s, 0, sizeof(s));
	s.cfg.data_dir = dir;
	s.loop = loop_new();
	assert_int_equal(db_open(dir, &s.db), 0);
	assert_int_equal(audit_open(&s), 0);
	json_t *two = json_pack("[{s:s, s:s, s:s, s:{}}, {s:s, s:s, s:s, s:{}}]", "type",
	                        "agent.tool_use", "id", "sevt_a", "name", "bash", "input", "type",
	                        "agent.mcp_tool_use", "id", "sevt_b", "name", "query", "input");
	json_t *one = json_pack("[{s:s, s:s, s:s, s:{}}]", "type", "agent.tool_use", "id", "sevt_c",
	                        "name", "read", "input");
	assert_int_equal(db_begin(s.db), 0);
	assert_int_equal(audit_tool_uses_tx(&s, "sesn_x", NULL, two), 0);
	assert_int_equal(db_commit(s.db), 0);
	audit_outbox_move(&s, true);
	assert_int_equal(audit_log_count(s.audit), 2);
	assert_int_equal(db_begin(s.db), 0);
	assert_int_equal(audit_tool_uses_tx(&s, "sesn_x", NULL, one), 0);
	db_rollback(s.db);
	audit_outbox_move(&s, false);
	assert_int_equal(audit_log_count(s.audit), 2);
	assert_int_equal(db_begin(s.db), 0);
	assert_int_equal(audit_tool_uses_tx(&s, "sesn_x", NULL, one), 0);
	assert_int_equal(db_commit(s.db), 0);
	/* the crash: no move, no flush, no close */
	audit_log_free(s.audit);
	s.audit = NULL;
	int rows = 0;
	assert_int_equal(audit_store_outbox_list(s.db, 0, 100, count_row, &rows), 0);
	assert_int_equal(rows, 3);

	assert_int_equal(audit_open(&s), 0); /* recovers, moves row 3, flushes */
	assert_int_equal(audit_log_count(s.audit), 3);
	for (int64_t id = 1; id <= 3; id++)
		assert_int_equal(in_file(s.audit, id), 1);
	rows = 0;
	assert_int_equal(audit_store_outbox_list(s.db, 0, 100, count_row, &rows), 0);
	assert_int_equal(rows, 0);
	audit_close(&s);
	/* and close adds a checkpoint naming the head (unsigned: no agent-identity key here) */
	assert_file_valid(file, 4);
	struct audit_log *lg = NULL;
	char err[256];
	struct audit_query q = all();
	json_t *data;
	uint64_t next;
	assert_int_equal(audit_log_open(file, &lg, err, sizeof err), 0);
	q.action = AUDIT_CHECKPOINT_ACTION;
	assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
	assert_int_equal(json_array_size(data), 1);
	json_t *cp = json_array_get(data, 0);
	assert_string_equal(json_string_value(json_object_get(cp, "outcome")), "unsigned");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(cp, "resources"), "seq")), 3);
	json_decref(data);
	audit_log_free(lg);

	json_decref(one);
	json_decref(two);
	db_close(s.db);
	loop_free(s.loop);
	static const char *const files[] = {"audit.jsonl", "airlock.db", "airlock.db-wal",
	                                    "airlock.db-shm"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(file, sizeof file, "%s/%s", dir, files[i]);
		unlink(file);
	}
	rmdir(dir);
}

/* A flood of requests without a credential: AUDIT_UNAUTH_PER_SEC records, then one that
 * counts the rest (written at close here, each second by the server's timer); a request
 * with a credential is never held back. */
static void
test_unauthenticated_flood_is_bounded(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_audit_flood.XXXXXX", file[128];
	assert_non_null(mkdtemp(dir));
	struct server s;
	memset(&s, 0, sizeof(s));
	s.cfg.data_dir = dir;
	assert_int_equal(audit_open(&s), 0);
	struct api_call c;
	memset(&c, 0, sizeof(c));
	c.srv = &s;
	clock_gettime(CLOCK_MONOTONIC, &c.t0);
	for (int i = 0; i < 200; i++) {
		snprintf(c.request_id, sizeof c.request_id, "req_%d", i);
		assert_int_equal(audit_api(&c, "auth.fail", "deny", "401", json_object()), 0);
	}
	c.who.kind = PRINCIPAL_API_KEY;
	snprintf(c.who.key_id, sizeof c.who.key_id, "apikey_x");
	assert_int_equal(audit_api(&c, "key.create", NULL, "ok", NULL), 0);
	struct audit_query q = all();
	json_t *data;
	uint64_t next;
	assert_int_equal(audit_log_query(s.audit, &q, &data, &next), 0);
	/* the window may roll over once on a slow machine: at most two windows' worth */
	size_t written = json_array_size(data) - 1;
	assert_true(written >= AUDIT_UNAUTH_PER_SEC && written <= 2 * AUDIT_UNAUTH_PER_SEC);
	json_decref(data);
	audit_close(&s);

	snprintf(file, sizeof file, "%s/audit.jsonl", dir);
	struct audit_log *lg = NULL;
	char err[256];
	assert_int_equal(audit_log_open(file, &lg, err, sizeof err), 0);
	q.action = "auth.fail";
	assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
	json_t *last = json_array_get(data, json_array_size(data) - 1);
	assert_string_equal(json_string_value(json_object_get(last, "outcome")), "suppressed");
	json_int_t suppressed =
	    json_integer_value(json_object_get(json_object_get(last, "resources"), "suppressed"));
	assert_int_equal((size_t)suppressed + written, 200);
	assert_int_equal(json_array_size(data), written + 1);
	json_decref(data);
	audit_log_free(lg);
	unlink(file);
	rmdir(dir);
}

int
main(void)
{
	snprintf(path, sizeof path, "/tmp/test_audit.%d.jsonl", (int)getpid());
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failure_refuses_until_recovered, setup, teardown),
	    cmocka_unit_test(test_outbox_across_a_crash),
	    cmocka_unit_test(test_unauthenticated_flood_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
