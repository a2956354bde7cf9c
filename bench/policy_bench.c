/* Tool policy benchmark (issue 12): one decision under a 1,000-rule policy (p50, p99)
 * against the same decision under a 1-rule policy measured in the same run, and filtering
 * a 500-tool MCP list; prints ratios to the baseline and to the targets
 * (p50 <= 20 us per decision, <= 2 ms per 500-tool filter). Targets, not tests.
 *   policy_bench [DECISIONS]                                                     */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "policy.h"

#define N_RULES 1000
#define N_GROUPS 200
#define N_SERVERS 100
#define N_MCP 500

static unsigned rng = 42;

static unsigned
rnd(unsigned n)
{
	rng = rng * 1103515245u + 12345u;
	return (rng >> 8) % n;
}

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

/* A policy shaped like a large organisation's: rules per group over built-in tools, MCP
 * servers by prefix glob, a few infix globs, some rules for everyone or for one agent. */
static char *
big_policy(void)
{
	static const char *const builtin[] = {"bash", "read", "write",     "edit",
	                                      "glob", "grep", "web_fetch", "web_search"};
	static const char *const effects[] = {"allow", "allow", "allow", "ask", "deny"};
	struct buf y;
	buf_init(&y, 4 << 20);
	buf_add_str(&y, "default: deny\nroles:\n  admin: [g0]\n  developer: [g1, g2]\nrules:\n");
	for (int i = 0; i < N_RULES; i++) {
		buf_addf(&y, "  - id: r%d\n    effect: %s\n", i, effects[rnd(5)]);
		unsigned kind = rnd(10);
		if (kind != 0) /* one rule in ten applies to everyone */
			buf_addf(&y, "    groups: [g%u, g%u]\n", rnd(N_GROUPS), rnd(N_GROUPS));
		if (rnd(8) == 0)
			buf_addf(&y, "    agents: [agent_%u]\n", rnd(20));
		buf_add_str(&y, "    tools: [");
		if (kind < 4)
			buf_addf(&y, "%s, %s, custom_tool_%u", builtin[rnd(8)], builtin[rnd(8)],
			         rnd(500));
		else if (kind < 9)
			buf_addf(&y, "\"mcp__srv%u__*\", \"mcp__srv%u__read*\"", rnd(N_SERVERS),
			         rnd(N_SERVERS));
		else
			buf_add_str(&y, "\"mcp__*__delete*\", \"mcp__srv?__admin_*\"");
		buf_add_str(&y, "]\n");
	}
	return buf_steal(&y);
}

static struct policy *
load(const char *text, double *compile_ms)
{
	struct policy *p = NULL;
	char err[512];
	double t0 = now_us();
	if (policy_parse("bench.yaml", text, strlen(text), &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "policy_bench: %s\n", err);
		exit(1);
	}
	if (compile_ms)
		*compile_ms = (now_us() - t0) / 1e3;
	return p;
}

/* p50 and p99 of n timed decisions over a rotating set of tool names. */
static void
time_decisions(const struct policy *p, const struct policy_principal *who,
               const struct policy_agent *ag, char **tools, size_t nt, size_t n, double *p50,
               double *p99, unsigned *denied)
{
	double *s = malloc(n * sizeof(*s));
	*denied = 0;
	for (size_t i = 0; i < n; i++) {
		struct policy_decision d;
		double t0 = now_us();
		policy_decide(p, who, ag, tools[i % nt], &d);
		s[i] = now_us() - t0;
		*denied += d.effect == POLICY_DENY;
	}
	qsort(s, n, sizeof(*s), cmp_double);
	*p50 = s[n / 2];
	*p99 = s[n * 99 / 100];
	free(s);
}

int
main(int argc, char **argv)
{
	uint64_t n = 200000;
	if (argc > 1 && (parse_uint_cstr(argv[1], 100000000, &n) != 0 || n < 100)) {
		fprintf(stderr, "usage: policy_bench [DECISIONS >= 100]\n");
		return 2;
	}
	char *text = big_policy();
	double compile_ms;
	struct policy *big = load(text, &compile_ms);
	struct policy *one = load("default: deny\nrules:\n  - id: r0\n    effect: allow\n"
	                          "    groups: [g7]\n    tools: [\"mcp__srv7__*\", bash]\n",
	                          NULL);
	const char *groups[] = {"g7", "g21", "g42", "g99", "g150", "staff", "everyone"};
	struct policy_principal who = {
	    .sub = "00u1abcd", .email = "alice@bank.example", .groups = groups, .n_groups = 7};
	struct policy_agent ag = {.id = "agent_3", .name = "ledger-auditor"};

	/* the names a session asks about: built-ins, custom tools, MCP tools, unknowns */
	char *tools[N_MCP];
	static const char *const verbs[] = {"read_rows", "delete_row", "admin_reset", "query",
	                                    "post_entry"};
	for (int i = 0; i < N_MCP; i++) {
		char name[96];
		unsigned k = rnd(10);
		if (k < 2)
			snprintf(name, sizeof(name), "%s", k ? "read" : "bash");
		else if (k < 3)
			snprintf(name, sizeof(name), "custom_tool_%u", rnd(600));
		else
			snprintf(name, sizeof(name), "mcp__srv%u__%s_%u", rnd(N_SERVERS),
			         verbs[rnd(5)], rnd(50));
		tools[i] = strdup(name);
	}
	char *mcp[N_MCP]; /* the 500-tool tools/list: all MCP */
	for (int i = 0; i < N_MCP; i++) {
		char name[96];
		snprintf(name, sizeof(name), "mcp__srv%u__%s_%d", (unsigned)i / 5, verbs[i % 5], i);
		mcp[i] = strdup(name);
	}

	double b50, b99, p50, p99;
	unsigned bd, pd;
	time_decisions(one, &who, &ag, tools, N_MCP, n, &b50, &b99, &bd); /* warm-up */
	time_decisions(one, &who, &ag, tools, N_MCP, n, &b50, &b99, &bd);
	time_decisions(big, &who, &ag, tools, N_MCP, n, &p50, &p99, &pd);
	printf("policy: compiled %d rules in %.2f ms (%zu bytes of YAML)\n", N_RULES, compile_ms,
	       strlen(text));
	printf("decision, 1 rule (baseline):  p50 %.3f us  p99 %.3f us  (%llu decisions)\n", b50,
	       b99, (unsigned long long)n);
	printf("decision, %d rules:         p50 %.3f us  p99 %.3f us  ratio to baseline p50 "
	       "%.2fx p99 %.2fx  (%u of %llu denied)\n",
	       N_RULES, p50, p99, p50 / b50, p99 / b99, pd, (unsigned long long)n);
	printf("  target p50 <= 20 us: %.4fx of the target\n", p50 / 20.0);

	/* a token with 10,000 groups (issue 12's bad input): the cost grows with the groups,
	 * once per decision, and stays bounded */
	static char gname[10000][16];
	static const char *many[10000];
	for (int i = 0; i < 10000; i++) {
		snprintf(gname[i], sizeof(gname[i]), "g%d", i);
		many[i] = gname[i];
	}
	struct policy_principal crowd = {.sub = "x", .groups = many, .n_groups = 10000};
	double c50, c99;
	unsigned cd;
	time_decisions(big, &crowd, &ag, tools, N_MCP, n / 100, &c50, &c99, &cd);
	printf("decision, %d rules, a principal in 10,000 groups: p50 %.1f us  p99 %.1f us  "
	       "ratio to the %d-rule p50 %.0fx\n",
	       N_RULES, c50, c99, N_RULES, c50 / p50);

	/* filtering: the tool list of one session, principal and agent resolved once */
	size_t reps = 2000;
	double *s = malloc(reps * sizeof(*s)), *sb = malloc(reps * sizeof(*sb));
	bool keep[N_MCP];
	size_t kept = 0;
	for (size_t r = 0; r < reps; r++) {
		double t0 = now_us();
		policy_filter_tools(one, &who, &ag, (const char *const *)mcp, N_MCP, keep);
		sb[r] = now_us() - t0;
		t0 = now_us();
		kept = policy_filter_tools(big, &who, &ag, (const char *const *)mcp, N_MCP, keep);
		s[r] = now_us() - t0;
	}
	qsort(s, reps, sizeof(*s), cmp_double);
	qsort(sb, reps, sizeof(*sb), cmp_double);
	printf("filter %d MCP tools, 1 rule (baseline): p50 %.3f ms\n", N_MCP, sb[reps / 2] / 1e3);
	printf("filter %d MCP tools, %d rules:        p50 %.3f ms  p99 %.3f ms  ratio to "
	       "baseline %.2fx  (%zu kept)\n",
	       N_MCP, N_RULES, s[reps / 2] / 1e3, s[reps * 99 / 100] / 1e3,
	       s[reps / 2] / sb[reps / 2], kept);
	printf("  target <= 2 ms: %.4fx of the target\n", s[reps / 2] / 2000.0);
	free(s);
	free(sb);
	for (int i = 0; i < N_MCP; i++) {
		free(tools[i]);
		free(mcp[i]);
	}
	policy_unref(big);
	policy_unref(one);
	free(text);
	return 0;
}
