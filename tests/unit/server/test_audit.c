/* src/server/audit/audit.c without a server: the log's offset index (built at open,
 * extended on append), the filters of GET /v1/audit_events (action, principal, session,
 * time), cursor paging in both orders, and the scan bound that ends a page early when
 * matches are rare; a failed write makes the server refuse until a retry writes the
 * "audit.recovered" record; the agent loop's records, committed in its events' rows, reach
 * the file exactly once across a crash and in order after a failed append; closing adds a
 * checkpoint. The HTTP route and the emit points run in interop-audit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api.h"
#include "audit.h"
#include "audit_store.h"
#include "db.h"
#include "err.h"
#include "event_store.h"
#include "events.h"
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

/* The descriptor of a file, found by its path. */
static int
fd_of(const char *file)
{
	for (int fd = 3; fd < 1024; fd++) {
		char link[64], target[PATH_MAX];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n > 0) {
			target[n] = '\0';
			if (strcmp(target, file) == 0)
				return fd;
		}
	}
	return -1;
}

/* The descriptor the log writes to: the test swaps the file under it. */
static int
log_fd(void)
{
	return fd_of(path);
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

/* How many records of the file have this value at key (of resources when res). */
static int
in_file(struct audit_log *lg, bool res, const char *key, const json_t *want)
{
	struct audit_query q = all();
	json_t *data, *rec;
	uint64_t next;
	size_t i;
	int n = 0;
	assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
	json_array_foreach(data, i, rec)
	{
		n += json_equal(json_object_get(res ? json_object_get(rec, "resources") : rec, key),
		                want);
	}
	json_decref(data);
	return n;
}

static int
tool_call_in_file(struct audit_log *lg, const char *event_id)
{
	json_t *v = json_string(event_id);
	int n = in_file(lg, false, "request_id", v);
	json_decref(v);
	return n;
}

static int
count_event_record(void *arg, const char *event_id, const char *text)
{
	(void)event_id;
	(void)text;
	++*(int *)arg;
	return 0;
}

/* Records still held in event rows, and the flag that makes a start look for them. */
static int
held_in_events(struct db *db, int64_t *flag)
{
	int n = 0;
	assert_int_equal(event_store_audit_pending(db, count_event_record, &n), 0);
	assert_int_equal(db_seq_get(db, "audit_records_in_events", flag), 0);
	return n;
}

/* One answer_commit: the events stored, their tool.call records with them, then moved
 * (unless a crash comes first). */
static void
commit_tool_uses(struct server *s, json_t *events, bool commit, bool move)
{
	size_t i;
	json_t *ev;
	assert_int_equal(db_begin(s->db), 0);
	json_array_foreach(events, i, ev)
	{
		const char *rec;
		assert_int_equal(audit_tool_use_tx(s, "sesn_x", NULL, ev, &rec), 0);
		assert_non_null(rec);
		assert_int_equal(events_append_audited_tx(s, "sesn_x", ev, false, rec), 0);
	}
	if (commit)
		assert_int_equal(db_commit(s->db), 0);
	else
		db_rollback(s->db);
	if (move)
		audit_outbox_move(s, commit);
}

static void
server_up(struct server *s, char dir[])
{
	memset(s, 0, sizeof(*s));
	assert_non_null(mkdtemp(dir));
	s->cfg.data_dir = dir;
	s->loop = loop_new();
	assert_int_equal(db_open(dir, &s->db), 0);
	assert_int_equal(audit_open(s), 0);
}

static void
server_gone(struct server *s, char *dir)
{
	char file[128];
	db_close(s->db);
	loop_free(s->loop);
	static const char *const files[] = {"audit.jsonl", "airlock.db", "airlock.db-wal",
	                                    "airlock.db-shm"};
	for (size_t i = 0; i < 4; i++) {
		snprintf(file, sizeof file, "%s/%s", dir, files[i]);
		unlink(file);
	}
	rmdir(dir);
}

/* The file's record for a tool use, without seq, prev and hash (new reference). */
static json_t *
tool_call_record(struct audit_log *lg, const char *event_id)
{
	struct audit_query q = all();
	json_t *data, *rec, *found = NULL;
	uint64_t next;
	size_t i;
	assert_int_equal(audit_log_query(lg, &q, &data, &next), 0);
	json_array_foreach(data, i, rec)
	{
		if (strcmp(json_string_value(json_object_get(rec, "request_id")) ?: "", event_id) ==
		    0)
			found = json_deep_copy(rec);
	}
	json_decref(data);
	assert_non_null(found);
	json_object_del(found, "seq");
	json_object_del(found, "prev");
	json_object_del(found, "hash");
	return found;
}

/* The agent loop's tool.call records commit with their events (in the events' own rows),
 * are appended without a sync, and leave the rows at the next flush; `airlock keys`
 * records go through the audit_outbox table. A crash before the flush (sevt_a and sevt_b
 * in the file, sevt_c committed but never appended, a key record not drained yet) loses
 * none and repeats none; a rolled-back transaction leaves nothing. */
static void
test_outbox_across_a_crash(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_audit_db.XXXXXX", file[128];
	struct server s;
	int64_t flag;
	server_up(&s, dir);
	snprintf(file, sizeof file, "%s/audit.jsonl", dir);
	json_t *two = json_pack("[{s:s, s:s, s:s, s:{}}, {s:s, s:s, s:s, s:{}}]", "type",
	                        "agent.tool_use", "id", "sevt_a", "name", "bash", "input", "type",
	                        "agent.mcp_tool_use", "id", "sevt_b", "name", "query", "input");
	json_t *one = json_pack("[{s:s, s:s, s:s, s:{}}]", "type", "agent.tool_use", "id", "sevt_c",
	                        "name", "read", "input");
	assert_int_equal(held_in_events(s.db, &flag), 0);
	assert_int_equal(flag, 0);
	commit_tool_uses(&s, two, true, true);
	assert_int_equal(audit_log_count(s.audit), 2);
	/* the file's record is what the event row holds, sealed */
	char *held = NULL;
	assert_int_equal(event_store_get_audit(s.db, "sevt_a", &held), 0);
	json_t *want = json_loads(held, 0, NULL), *got = tool_call_record(s.audit, "sevt_a");
	assert_true(json_equal(want, got));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(got, "resources"), "via")), "outbox");
	free(held);
	json_decref(want);
	json_decref(got);
	commit_tool_uses(&s, one, false, true);
	assert_int_equal(audit_log_count(s.audit), 2);
	assert_int_equal(held_in_events(s.db, &flag), 2);
	assert_int_equal(flag, 1);
	commit_tool_uses(&s, one, true, false);
	assert_int_equal(audit_outbox_add(s.db, "key.create", json_pack("{s:s}", "key_id", "k1")),
	                 0);
	/* the crash: no move, no flush, no close */
	audit_log_free(s.audit);
	s.audit = NULL;
	assert_int_equal(held_in_events(s.db, &flag), 3);
	assert_int_equal(flag, 1);

	assert_int_equal(audit_open(&s), 0); /* recovers: appends what is missing, flushes */
	assert_int_equal(audit_log_count(s.audit), 4);
	static const char *const ids[] = {"sevt_a", "sevt_b", "sevt_c"};
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(tool_call_in_file(s.audit, ids[i]), 1);
	json_t *k1 = json_string("k1");
	assert_int_equal(in_file(s.audit, true, "key_id", k1), 1);
	json_decref(k1);
	assert_int_equal(held_in_events(s.db, &flag), 0);
	assert_int_equal(flag, 0);
	int rows = 0;
	assert_int_equal(audit_store_outbox_list(s.db, 0, 100, count_row, &rows), 0);
	assert_int_equal(rows, 0);
	audit_close(&s);
	/* and close adds a checkpoint naming the head (unsigned: no agent-identity key here) */
	assert_file_valid(file, 5);
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
	    json_integer_value(json_object_get(json_object_get(cp, "resources"), "seq")), 4);
	json_decref(data);
	audit_log_free(lg);
	/* a flag left set with no record held (a retry's records cleared by one flush, the
	 * flag by none since): the next start's flush clears it, so starts do not scan on */
	assert_int_equal(db_seq_set(s.db, "audit_records_in_events", 1), 0);
	assert_int_equal(audit_open(&s), 0);
	assert_int_equal(held_in_events(s.db, &flag), 0);
	assert_int_equal(flag, 0);
	audit_close(&s);
	json_decref(one);
	json_decref(two);
	server_gone(&s, dir);
}

/* A record whose append fails waits in its event row and goes in first, in order, once
 * the file takes writes; deleting a session first makes its records durable in the log
 * (audit_settle), and refuses while they cannot be. */
static void
test_failed_append_waits_in_its_row(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_audit_db.XXXXXX", file[128];
	struct server s;
	int64_t flag;
	server_up(&s, dir);
	snprintf(file, sizeof file, "%s/audit.jsonl", dir);
	int fd = fd_of(file), full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (full < 0)
		skip(); /* no /dev/full here */
	assert_true(fd >= 0);
	int saved = dup(fd);
	assert_int_equal(dup2(full, fd), fd);
	json_t *a = json_pack("[{s:s, s:s, s:s, s:{}}]", "type", "agent.tool_use", "id", "sevt_1",
	                      "name", "bash", "input");
	json_t *b = json_pack("[{s:s, s:s, s:s, s:{}}]", "type", "agent.tool_use", "id", "sevt_2",
	                      "name", "read", "input");
	commit_tool_uses(&s, a, true, true); /* the append fails: the row keeps it */
	assert_int_equal(audit_log_count(s.audit), 0);
	assert_int_equal(audit_settle(&s), AL_E_IO); /* a deletion would wait */
	assert_int_equal(held_in_events(s.db, &flag), 1);
	assert_int_equal(dup2(saved, fd), fd);
	close(saved);
	close(full);
	commit_tool_uses(&s, b, true, true); /* the older one goes first */
	assert_int_equal(audit_log_count(s.audit), 2);
	json_t *r1 = tool_call_record(s.audit, "sevt_1"), *r2 = tool_call_record(s.audit, "sevt_2");
	(void)r2;
	struct audit_query q = all();
	json_t *data;
	uint64_t next;
	assert_int_equal(audit_log_query(s.audit, &q, &data, &next), 0);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(data, 0), "request_id")), "sevt_1");
	json_decref(data);
	json_decref(r1);
	json_decref(r2);
	assert_int_equal(held_in_events(s.db, &flag), 2); /* until the flush */
	assert_int_equal(audit_settle(&s), 0);
	assert_int_equal(held_in_events(s.db, &flag), 0);
	assert_int_equal(flag, 0);
	audit_close(&s);
	assert_file_valid(file, 3);
	json_decref(a);
	json_decref(b);
	server_gone(&s, dir);
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
	    cmocka_unit_test(test_failed_append_waits_in_its_row),
	    cmocka_unit_test(test_unauthenticated_flood_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
