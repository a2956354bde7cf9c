/* Audit log benchmark (issue 12: "audit logging adds <= 10% to event-append latency"):
 * the agent loop's event append (one agent.tool_use event in a SQLite transaction, the
 * commit fsynced as the server does) with and without its tool.call audit record, the
 * way answer_commit writes it: in the event's own row (events_append_audited_tx), appended
 * to the log after the commit without a sync, and the log synced (and the rows cleared)
 * once a second, whose cost is charged to the append that triggers it. Interleaved in one
 * run on the same disk; prints p50/p99/mean and the ratios. Targets, not tests.
 *   audit_bench [DIR [APPENDS]]   DIR: where the database and log go (default: a new
 *                                 directory under the current one, not /tmp, which may
 *                                 be a tmpfs where fsync costs nothing)             */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "buf.h"
#include "db.h"
#include "events.h"
#include "server.h"
#include "session_store.h"

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

/* One event append as answer_commit does it; with audit, its record in the event's row
 * and moved to the log after the commit. */
static double
append_once(struct server *s, const struct session_owner *o, unsigned i, int with_audit)
{
	char id[32];
	snprintf(id, sizeof id, "sevt_bench%u", i);
	json_t *ev =
	    json_pack("{s:s, s:s, s:s, s:{s:s}, s:s, s:{s:s, s:s, s:s}}", "type", "agent.tool_use",
	              "id", id, "name", "bash", "input", "command", "ls -la /workspace",
	              "evaluated_permission", "allow", "evaluation", "type", "policy",
	              "policy_rule", "auditors-tools", "policy_effect", "allow");
	const char *rec = NULL;
	double t0 = now_us();
	if (db_begin(s->db) != 0 ||
	    (with_audit && audit_tool_use_tx(s, "sesn_bench", o, ev, &rec) != 0) ||
	    events_append_audited_tx(s, "sesn_bench", ev, false, rec) != 0 ||
	    db_commit(s->db) != 0) {
		fprintf(stderr, "event append failed\n");
		exit(1);
	}
	if (with_audit)
		audit_outbox_move(s, true);
	double dt = now_us() - t0;
	json_decref(ev);
	return dt;
}

/* Two names for callgrind (bench/run.sh's instruction counts): the instructions of each
 * kind of append show apart. */
static __attribute__((noinline)) double
append_plain(struct server *s, const struct session_owner *o, unsigned i)
{
	return append_once(s, o, i, 0);
}

static __attribute__((noinline)) double
append_audited(struct server *s, const struct session_owner *o, unsigned i)
{
	return append_once(s, o, i, 1);
}

static void
report(const char *what, double *v, unsigned n, double *p50, double *mean)
{
	double sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += v[i];
	qsort(v, n, sizeof(*v), cmp_double);
	*p50 = v[n / 2];
	*mean = sum / n;
	printf("%-28s p50=%8.1f us  p99=%8.1f us  mean=%8.1f us\n", what, v[n / 2], v[n * 99 / 100],
	       *mean);
}

int
main(int argc, char **argv)
{
	char tmpl[] = "audit-bench.XXXXXX";
	const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
	uint64_t n = 400;
	if (dir == NULL || (argc > 2 && (parse_uint_cstr(argv[2], 1000000, &n) != 0 || n < 10))) {
		fprintf(stderr, "usage: audit_bench [DIR [APPENDS >= 10]]\n");
		return 2;
	}
	struct server s;
	memset(&s, 0, sizeof(s));
	char path[4096];
	snprintf(path, sizeof path, "%s/audit.jsonl", dir);
	s.cfg.data_dir = (char *)dir;
	s.cfg.audit_file = path;
	if (db_open(dir, &s.db) != 0 || audit_open(&s) != 0) {
		fprintf(stderr, "cannot open the database or the log in %s\n", dir);
		return 1;
	}
	char *groups[] = {"auditors", NULL};
	struct session_owner o = {
	    .sub = "alice", .iss = "https://idp.bank.test", .groups = groups, .ngroups = 1};
	double *off = calloc(n, sizeof(double)), *on = calloc(n, sizeof(double));
	for (unsigned i = 0; i < 20; i++) /* warm up the database and the page cache */
		append_once(&s, &o, 1000000 + i, (int)(i & 1));
	double since_flush = 0;
	for (unsigned i = 0; i < n; i++) { /* interleaved: drift hits both alike */
		off[i] = append_plain(&s, &o, 2 * i);
		on[i] = append_audited(&s, &o, 2 * i + 1);
		since_flush += off[i] + on[i];
		if (since_flush >= 1e6) { /* the server's once-a-second outbox flush */
			double t0 = now_us();
			audit_outbox_flush(&s);
			on[i] += now_us() - t0;
			since_flush = 0;
		}
	}
	double p_off, p_on, m_off, m_on;
	printf("event appends in %s (%llu each; the commit fsynced: synchronous=FULL)\n", dir,
	       (unsigned long long)n);
	report("event append, audit off", off, (unsigned)n, &p_off, &m_off);
	report("event append + audit record", on, (unsigned)n, &p_on, &m_on);
	printf("ratio audit on / off: p50 %.2fx, mean %.2fx  (target <= 1.10x)\n", p_on / p_off,
	       m_on / m_off);
	/* the ratio falls as the disk's fsync time grows; the difference is the record's own cost
	 */
	printf("added by the record: p50 %+.1f us, mean %+.1f us\n", p_on - p_off, m_on - m_off);
	free(off);
	free(on);
	audit_close(&s);
	db_close(s.db);
	if (argc <= 1) { /* our own directory: what db_open and the log made in it */
		static const char *const files[] = {"audit.jsonl", "airlock.db", "airlock.db-wal",
		                                    "airlock.db-shm"};
		for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
			snprintf(path, sizeof path, "%s/%s", dir, files[i]);
			unlink(path);
		}
		if (rmdir(dir) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return 0;
}
