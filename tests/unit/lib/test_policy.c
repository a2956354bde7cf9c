/* Tool policy (lib/policy.c): precedence, default, globs, principals and agents, roles,
 * every refused file with its line, reload keeping the last good policy, filtering, and
 * the indexes checked against a plain scan with fnmatch(3) on random policies. */
#include <fnmatch.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "policy.h"

static struct policy *
must_parse(const char *y)
{
	struct policy *p = NULL;
	char err[512] = "";
	int r = policy_parse("t.yaml", y, strlen(y), &p, err, sizeof(err));
	if (r != 0)
		fail_msg("policy refused: %s", err);
	return p;
}

/* effect and rule of one decision, for a user with a comma-separated group list */
static void
check(const struct policy *p, const char *sub, const char *groups, const char *agent,
      const char *tool, enum policy_effect want, const char *want_rule)
{
	const char *g[8];
	char tmp[256];
	size_t n = 0;
	snprintf(tmp, sizeof(tmp), "%s", groups ? groups : "");
	for (char *s = tmp, *e; groups && *s && n < 8; s = e + 1) {
		e = strchr(s, ',');
		g[n++] = s;
		if (e == NULL)
			break;
		*e = '\0';
	}
	struct policy_principal who = {.sub = sub, .groups = g, .n_groups = n};
	struct policy_agent ag = {.id = agent, .name = NULL};
	struct policy_decision d;
	policy_decide(p, &who, agent ? &ag : NULL, tool, &d);
	if (d.effect != want || strcmp(d.rule, want_rule) != 0)
		fail_msg("%s [%s] %s: got %s/%s, want %s/%s", sub ? sub : "-", groups ? groups : "",
		         tool, policy_effect_name(d.effect), d.rule, policy_effect_name(want),
		         want_rule);
}

static void
test_precedence_and_default(void **state)
{
	struct policy *p = must_parse("default: deny\n"
	                              "rules:\n"
	                              "  - id: a1\n"
	                              "    effect: allow\n"
	                              "    groups: [eng]\n"
	                              "    tools: [bash, read]\n"
	                              "  - id: k1\n"
	                              "    effect: ask\n"
	                              "    groups: [eng]\n"
	                              "    tools: [bash, write]\n"
	                              "  - id: d1\n"
	                              "    effect: deny\n"
	                              "    groups: [interns]\n"
	                              "    tools: [bash]\n"
	                              "  - id: a2\n"
	                              "    effect: allow\n"
	                              "    groups: [interns]\n"
	                              "    tools: [bash, read]\n");
	check(p, "u1", "eng", NULL, "read", POLICY_ALLOW, "a1");
	check(p, "u1", "eng", NULL, "bash", POLICY_ASK, "k1");          /* ask > allow */
	check(p, "u1", "eng,interns", NULL, "bash", POLICY_DENY, "d1"); /* deny > ask > allow */
	check(p, "u1", "interns", NULL, "bash", POLICY_DENY, "d1");     /* deny before allow */
	check(p, "u1", "interns", NULL, "read", POLICY_ALLOW, "a2");
	check(p, "u1", "eng", NULL, "grep", POLICY_DENY, "default");
	check(p, "u1", NULL, NULL, "read", POLICY_DENY, "default");
	check(p, "u1", "eng", NULL, "", POLICY_DENY, "default");
	assert_int_equal(policy_default(p), POLICY_DENY);
	assert_int_equal(policy_rule_count(p), 4);
	assert_int_equal(policy_rule_line(p, 2), 11);
	policy_unref(p);

	p = must_parse("default: allow\nrules:\n  - id: x\n    effect: deny\n    tools: [bash]\n");
	check(p, "u1", NULL, NULL, "read", POLICY_ALLOW, "default");
	check(p, "u1", NULL, NULL, "bash", POLICY_DENY, "x");
	policy_unref(p);

	/* an empty file: deny everything */
	p = must_parse("");
	check(p, "u1", "eng", NULL, "bash", POLICY_DENY, "default");
	assert_int_equal(policy_role(p, &(struct policy_principal){.sub = "u"}), POLICY_ROLE_USER);
	policy_unref(p);
}

static void
test_globs(void **state)
{
	struct policy *p =
	    must_parse("rules:\n"
	               "  - {id: ledger, effect: allow, tools: [\"mcp__ledger__*\"]}\n"
	               "  - {id: exact, effect: allow, tools: [grep]}\n"
	               "  - {id: q, effect: ask, tools: [\"t?p\"]}\n"
	               "  - {id: cls, effect: ask, tools: [\"v[a-c]x\", \"w[!0-9]\"]}\n"
	               "  - {id: infix, effect: ask, tools: [\"mcp__*__delete*\"]}\n"
	               "  - {id: all, effect: deny, agents: [evil], tools: [\"*\"]}\n");
	check(p, "u", NULL, NULL, "mcp__ledger__post", POLICY_ALLOW, "ledger");
	check(p, "u", NULL, NULL, "mcp__ledger__", POLICY_ALLOW, "ledger");
	check(p, "u", NULL, NULL, "mcp__ledgerx__post", POLICY_DENY, "default");
	check(p, "u", NULL, NULL, "mcp__ledger_", POLICY_DENY, "default");
	check(p, "u", NULL, NULL, "grep", POLICY_ALLOW, "exact");
	check(p, "u", NULL, NULL, "grepx", POLICY_DENY, "default");
	check(p, "u", NULL, NULL, "gre", POLICY_DENY, "default");
	check(p, "u", NULL, NULL, "tap", POLICY_ASK, "q");
	check(p, "u", NULL, NULL, "tp", POLICY_DENY, "default");
	check(p, "u", NULL, NULL, "vbx", POLICY_ASK, "cls");
	check(p, "u", NULL, NULL, "vdx", POLICY_DENY, "default");
	check(p, "u", NULL, NULL, "wz", POLICY_ASK, "cls");
	check(p, "u", NULL, NULL, "w5", POLICY_DENY, "default");
	check(p, "u", NULL, NULL, "mcp__ledger__delete_entry", POLICY_ASK, "infix");
	check(p, "u", NULL, NULL, "mcp__db__delete", POLICY_ASK, "infix");
	check(p, "u", NULL, NULL, "mcp__db__drop", POLICY_DENY, "default");
	/* "*" matches every name, even ones no tool could have */
	check(p, "u", NULL, "evil", "grep", POLICY_DENY, "all");
	check(p, "u", NULL, "evil", "no such/tool name", POLICY_DENY, "all");
	check(p, "u", NULL, "good", "grep", POLICY_ALLOW, "exact");
	policy_unref(p);
}

static void
test_principals_and_agents(void **state)
{
	struct policy *p = must_parse("default: deny\n"
	                              "rules:\n"
	                              "  - id: by-user\n"
	                              "    effect: allow\n"
	                              "    users: [alice@bank.example, sub-bob]\n"
	                              "    tools: [bash]\n"
	                              "  - id: by-group-and-agent\n"
	                              "    effect: allow\n"
	                              "    groups: [auditors]\n"
	                              "    agents: [agent_011ABC, ledger-auditor]\n"
	                              "    tools: [read]\n"
	                              "  - id: user-or-group\n"
	                              "    effect: ask\n"
	                              "    users: [carol]\n"
	                              "    groups: [ops]\n"
	                              "    tools: [write]\n"
	                              "  - id: everyone\n"
	                              "    effect: allow\n"
	                              "    tools: [grep]\n"
	                              "  - id: apikey-7\n"
	                              "    effect: allow\n"
	                              "    users: [\"apikey:key_7\"]\n"
	                              "    tools: [\"*\"]\n");
	struct policy_decision d;
	struct policy_principal alice = {.sub = "sub-alice", .email = "alice@bank.example"};
	policy_decide(p, &alice, NULL, "bash", &d);
	assert_string_equal(d.rule, "by-user"); /* by email */
	check(p, "sub-bob", NULL, NULL, "bash", POLICY_ALLOW, "by-user");
	check(p, "sub-eve", NULL, NULL, "bash", POLICY_DENY, "default");
	/* group and agent must both match; the agent by id or by name */
	check(p, "u", "auditors", "agent_011ABC", "read", POLICY_ALLOW, "by-group-and-agent");
	check(p, "u", "auditors", NULL, "read", POLICY_DENY, "default");
	check(p, "u", "auditors", "agent_other", "read", POLICY_DENY, "default");
	check(p, "u", "staff", "agent_011ABC", "read", POLICY_DENY, "default");
	struct policy_agent byname = {.id = "agent_999", .name = "ledger-auditor"};
	const char *grp[] = {"x", "auditors"};
	struct policy_principal aud = {.sub = "u", .groups = grp, .n_groups = 2};
	policy_decide(p, &aud, &byname, "read", &d);
	assert_string_equal(d.rule, "by-group-and-agent");
	/* users and groups in one rule: either matches */
	check(p, "carol", NULL, NULL, "write", POLICY_ASK, "user-or-group");
	check(p, "dave", "ops", NULL, "write", POLICY_ASK, "user-or-group");
	check(p, "dave", "dev", NULL, "write", POLICY_DENY, "default");
	/* no principal selector: anyone, with or without a principal */
	check(p, NULL, NULL, NULL, "grep", POLICY_ALLOW, "everyone");
	policy_decide(p, NULL, NULL, "grep", &d);
	assert_string_equal(d.rule, "everyone");
	/* API-key principals: user apikey:<id>, no groups */
	struct policy_principal key7 = {.sub = "apikey:key_7", .apikey = true};
	struct policy_principal key8 = {.sub = "apikey:key_8", .apikey = true};
	policy_decide(p, &key7, NULL, "mcp__x__y", &d);
	assert_int_equal(d.effect, POLICY_ALLOW);
	policy_decide(p, &key8, NULL, "mcp__x__y", &d);
	assert_string_equal(d.rule, "default");
	policy_unref(p);
}

static void
test_roles(void **state)
{
	struct policy *p = must_parse("roles:\n"
	                              "  admin: [platform-admins]\n"
	                              "  developer: [engineers, sre]\n"
	                              "  user: [staff]\n");
	const char *g1[] = {"staff", "engineers"};
	const char *g2[] = {"platform-admins", "staff"};
	const char *g3[] = {"visitors"};
	assert_int_equal(policy_role(p, &(struct policy_principal){.groups = g1, .n_groups = 2}),
	                 POLICY_ROLE_DEVELOPER);
	assert_int_equal(policy_role(p, &(struct policy_principal){.groups = g2, .n_groups = 2}),
	                 POLICY_ROLE_ADMIN);
	assert_int_equal(policy_role(p, &(struct policy_principal){.groups = g3, .n_groups = 1}),
	                 POLICY_ROLE_USER);
	assert_int_equal(policy_role(p, &(struct policy_principal){.apikey = true}),
	                 POLICY_ROLE_ADMIN);
	assert_int_equal(policy_role_groups(p, POLICY_ROLE_DEVELOPER), 2);
	policy_unref(p);
	p = must_parse("default_role: none\nroles:\n  user: [staff]\n");
	assert_int_equal(policy_role(p, &(struct policy_principal){.groups = g3, .n_groups = 1}),
	                 POLICY_ROLE_NONE);
	assert_int_equal(policy_role(p, &(struct policy_principal){.groups = g1, .n_groups = 2}),
	                 POLICY_ROLE_USER);
	policy_unref(p);
}

static void
test_refusals(void **state)
{
	static const struct {
		const char *yaml;
		const char *want;
	} cases[] = {
	    {"default: deny\nrule: []\n", "t.yaml:2: unknown key 'rule'"},
	    {"default: maybe\n", "t.yaml:1: default: must be allow, deny or ask"},
	    {"default_role: root\n",
	     "t.yaml:1: default_role: must be none, user, developer or admin"},
	    {"rules: {a: 1}\n", "t.yaml:1: rules: must be a list of rules"},
	    {"rules:\n  - just-a-string\n", "t.yaml:2: rules: each rule must be a mapping"},
	    {"rules:\n  - effect: allow\n    tools: [a]\n", "t.yaml:2: rules: rule 1 has no id"},
	    {"rules:\n  - id: 'a b'\n    effect: allow\n    tools: [a]\n",
	     "t.yaml:2: rules: id must be 1 to 64 characters"},
	    {"rules:\n  - id: default\n    effect: allow\n    tools: [a]\n",
	     "t.yaml:2: rules: id 'default' is reserved"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools: [a]\n"
	     "  - id: y\n    effect: deny\n    tools: [a]\n"
	     "  - id: x\n    effect: deny\n    tools: [b]\n",
	     "t.yaml:8: rules: duplicate id 'x' (first used on line 2)"},
	    {"rules:\n  - id: x\n    effect: allow\n    tool: [a]\n",
	     "t.yaml:4: rule 'x': unknown key 'tool'"},
	    {"rules:\n  - id: x\n    effect: permit\n    tools: [a]\n",
	     "t.yaml:3: rule 'x': effect: must be allow, ask or deny"},
	    {"rules:\n  - id: x\n    tools: [a]\n", "t.yaml:2: rule 'x': effect: missing"},
	    {"rules:\n  - id: x\n    effect: allow\n", "t.yaml:2: rule 'x': tools: missing"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools: []\n",
	     "t.yaml:4: rule 'x': tools: must be a non-empty list"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools:\n",
	     "t.yaml:2: rule 'x': tools: must be a non-empty list"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools: bash\n",
	     "t.yaml:4: rule 'x': tools: must be a non-empty list"},
	    {"rules:\n  - id: x\n    effect: allow\n    groups: []\n    tools: [a]\n",
	     "t.yaml:4: rule 'x': groups: must be a non-empty list (omit the key to match any)"},
	    {"rules:\n  - id: x\n    effect: allow\n    users: [[a]]\n    tools: [a]\n",
	     "t.yaml:4: rule 'x': users: entries must be non-empty strings"},
	    {"rules:\n  - id: x\n    effect: allow\n    agents: ['']\n    tools: [a]\n",
	     "t.yaml:4: rule 'x': agents: entries must be non-empty strings"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools:\n      - bash\n      - "
	     "'mcp__a__[b'\n",
	     "t.yaml:6: rule 'x': tools: 'mcp__a__[b': unterminated '['"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools: ['mcp__a.*']\n",
	     "t.yaml:4: rule 'x': tools: 'mcp__a.*': '.' cannot appear in a tool name"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools: ['a[]']\n", "empty character class"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools: ['a[z-a]']\n", "reversed range"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools: ['a[.]']\n",
	     "character class holds '.'"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools: ['']\n",
	     "t.yaml:4: rule 'x': tools: entries must be non-empty strings"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools: ['a\\\\b']\n", "'\\' cannot appear"},
	    {"rules:\n  - id: x\n    effect: allow\n    tools: [a]\n    description: [1]\n",
	     "t.yaml:5: rule 'x': description: must be a string"},
	    {"roles:\n  admin: [a]\n  owner: [b]\n", "t.yaml:3: unknown key 'roles.owner'"},
	    {"roles:\n  admin: [a]\n  user: [b, a]\n",
	     "t.yaml:3: roles: group 'a' is already mapped to admin"},
	    {"roles:\n  admin: [a, a]\n", "t.yaml:2: roles: admin: group 'a' listed twice"},
	    {"roles: [admin]\n", "t.yaml:1: roles: must be a mapping"},
	    {"default: deny\ndefault: allow\n", "t.yaml:2: duplicate key 'default'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct policy *p = (struct policy *)&cases; /* must stay untouched */
		char err[512] = "";
		int r = policy_parse("t.yaml", cases[i].yaml, strlen(cases[i].yaml), &p, err,
		                     sizeof(err));
		if (r != AL_E_INVAL || strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: r=%d err '%s', want '%s'", i, r, err, cases[i].want);
		assert_ptr_equal(p, (struct policy *)&cases);
	}
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The reload contract: a bad file leaves the caller's current policy in force, and a
 * decision holding the old object survives the swap. */
static void
test_reload_keeps_last_good(void **state)
{
	char dir[] = "/tmp/policy-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%s/policy.yaml", dir);
	char err[512];
	struct policy *cur = NULL;

	write_file(path, "default: deny\nrules:\n  - {id: r1, effect: allow, tools: [bash]}\n");
	assert_int_equal(policy_load(path, &cur, err, sizeof(err)), 0);
	check(cur, "u", NULL, NULL, "bash", POLICY_ALLOW, "r1");
	struct policy *held = policy_ref(cur); /* a call in flight */

	write_file(path, "default: deny\nrules:\n  - {id: r1, effect: alow, tools: [bash]}\n");
	struct policy *next = NULL;
	assert_int_equal(policy_load(path, &next, err, sizeof(err)), AL_E_INVAL);
	assert_null(next);
	char want[128];
	snprintf(want, sizeof(want), "%s:3: rule 'r1': effect: must be allow, ask or deny", path);
	assert_string_equal(err, want);
	check(cur, "u", NULL, NULL, "bash", POLICY_ALLOW, "r1");

	write_file(path, "default: allow\nrules:\n  - {id: r2, effect: deny, tools: [bash]}\n");
	assert_int_equal(policy_load(path, &next, err, sizeof(err)), 0);
	struct policy *old = cur;
	cur = next;
	policy_unref(old);
	check(cur, "u", NULL, NULL, "bash", POLICY_DENY, "r2");
	check(held, "u", NULL, NULL, "bash", POLICY_ALLOW, "r1"); /* still the old one */
	policy_unref(held);

	unlink(path);
	assert_true(policy_load(path, &next, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "No such file"));
	check(cur, "u", NULL, NULL, "bash", POLICY_DENY, "r2");
	policy_unref(cur);
	rmdir(dir);
}

/* Writes text to path through a temporary file and rename, as editors and config
 * management do, so the file is never seen half-written. */
static void
replace_file(const char *path, const char *text)
{
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	write_file(tmp, text);
	assert_int_equal(rename(tmp, path), 0);
}

static void
test_policy_file_hot_reload(void **state)
{
	char dir[] = "/tmp/policy-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%s/policy.yaml", dir);
	struct policy_file pf;

	/* a missing file: an error, no policy, and the watcher stays usable */
	assert_true(policy_file_open(&pf, path) < 0);
	assert_null(policy_file_get(&pf));
	assert_non_null(strstr(pf.err, "No such file"));
	assert_int_equal(policy_file_poll(&pf, false), 0); /* still missing: said once */

	replace_file(path, "rules:\n  - {id: r1, effect: allow, tools: [bash]}\n");
	assert_int_equal(policy_file_poll(&pf, false), 1);
	struct policy *p = policy_file_get(&pf);
	check(p, "u", NULL, NULL, "bash", POLICY_ALLOW, "r1");
	assert_int_equal(policy_file_poll(&pf, false), 0); /* unchanged */

	/* a bad version: refused with FILE:LINE, the last good one stays, and it is not
	 * retried (nor logged again) until the file changes */
	replace_file(path, "rules:\n  - {id: r1, effect: allow, tools: [bash]}\n"
	                   "  - {id: r1, effect: deny, tools: [read]}\n");
	assert_int_equal(policy_file_poll(&pf, false), AL_E_INVAL);
	char want[128];
	snprintf(want, sizeof(want), "%s:3: rules: duplicate id 'r1' (first used on line 2)", path);
	assert_string_equal(pf.err, want);
	struct policy *q = policy_file_get(&pf);
	assert_ptr_equal(q, p);
	policy_unref(q);
	assert_int_equal(policy_file_poll(&pf, false), 0);

	/* fixed: the next poll swaps; the reference taken before still works */
	replace_file(path, "rules:\n  - {id: r2, effect: deny, tools: [bash]}\n");
	assert_int_equal(policy_file_poll(&pf, false), 1);
	assert_string_equal(pf.err, "");
	q = policy_file_get(&pf);
	check(q, "u", NULL, NULL, "bash", POLICY_DENY, "r2");
	check(p, "u", NULL, NULL, "bash", POLICY_ALLOW, "r1");
	policy_unref(p);
	policy_unref(q);

	/* SIGHUP: force reloads even an unchanged file; a deleted file keeps the policy */
	assert_int_equal(policy_file_poll(&pf, true), 1);
	unlink(path);
	assert_true(policy_file_poll(&pf, false) < 0);
	q = policy_file_get(&pf);
	check(q, "u", NULL, NULL, "bash", POLICY_DENY, "r2");
	policy_unref(q);
	policy_file_close(&pf);
	rmdir(dir);
}

static void
test_explain_and_filter(void **state)
{
	struct policy *p =
	    must_parse("rules:\n"
	               "  - {id: a, effect: allow, groups: [g], tools: [\"mcp__*\"]}\n"
	               "  - {id: b, effect: deny, groups: [g], tools: [\"mcp__db__*\"]}\n"
	               "  - {id: c, effect: ask, tools: [\"mcp__db__read\"]}\n"
	               "  - {id: d, effect: allow, groups: [h], tools: [\"mcp__db__*\"]}\n");
	const char *g[] = {"g"};
	struct policy_principal who = {.sub = "u", .groups = g, .n_groups = 1};
	struct policy_decision d;
	size_t m[8];
	size_t n = policy_explain(p, &who, NULL, "mcp__db__read", &d, m, 8);
	assert_int_equal(n, 3);
	assert_int_equal(m[0], 0);
	assert_int_equal(m[1], 1);
	assert_int_equal(m[2], 2);
	assert_int_equal(d.effect, POLICY_DENY);
	assert_string_equal(d.rule, "b");
	assert_int_equal(d.line, 3);

	const char *names[] = {"mcp__db__read", "mcp__jira__search", "bash", "mcp__db__write"};
	bool keep[4];
	assert_int_equal(policy_filter_tools(p, &who, NULL, names, 4, keep), 1);
	assert_false(keep[0]);
	assert_true(keep[1]);
	assert_false(keep[2]);
	assert_false(keep[3]);
	/* someone outside g: ask keeps mcp__db__read on offer */
	const char *h[] = {"h"};
	struct policy_principal other = {.sub = "v", .groups = h, .n_groups = 1};
	assert_int_equal(policy_filter_tools(p, &other, NULL, names, 4, keep), 2);
	assert_true(keep[0]);
	assert_false(keep[1]);
	assert_true(keep[3]);
	policy_unref(p);
}

/* ---- the indexes against a plain scan on random policies */

#define R_RULES 300
#define R_ALPHA 4

struct rrule {
	int effect;
	int users[2], groups[2], agents[2], n_users, n_groups, n_agents;
	char tools[3][24];
	int n_tools;
};

static unsigned rng = 12345;

static unsigned
rnd(unsigned n)
{
	rng = rng * 1103515245u + 12345u;
	return (rng >> 16) % n;
}

static void
rand_name(char *out, size_t cap, bool glob)
{
	static const char *const parts[] = {"mcp__", "db", "__", "read", "write", "a", "b", "_"};
	size_t n = 0;
	int k = 1 + (int)rnd(4);
	out[0] = '\0';
	for (int i = 0; i < k; i++) {
		const char *s = parts[rnd(8)];
		if (glob && rnd(4) == 0)
			s = rnd(3) == 0 ? "?" : rnd(2) ? "*" : "[a-d]";
		if (n + strlen(s) + 1 < cap) {
			memcpy(out + n, s, strlen(s) + 1);
			n += strlen(s);
		}
	}
}

/* "    key: [p1, p3]\n" with 1 or 2 random names, kept in v for the plain scan */
static void
rand_list(struct buf *y, const char *key, const char *prefix, int *v, int *n)
{
	*n = 1 + (int)rnd(2);
	buf_addf(y, "    %s: [", key);
	for (int k = 0; k < *n; k++) {
		v[k] = (int)rnd(R_ALPHA);
		buf_addf(y, "%s%s%d", k ? ", " : "", prefix, v[k]);
	}
	buf_add_str(y, "]\n");
}

static bool
in(const int *v, int n, int x)
{
	for (int i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

static void
test_against_plain_scan(void **state)
{
	static struct rrule rules[R_RULES];
	struct buf y;
	buf_init(&y, 1 << 20);
	buf_add_str(&y, "default: allow\nrules:\n");
	for (int i = 0; i < R_RULES; i++) {
		struct rrule *r = &rules[i];
		memset(r, 0, sizeof(*r));
		r->effect = (int)rnd(3);
		buf_addf(&y, "  - id: r%d\n    effect: %s\n", i, policy_effect_name(r->effect));
		if (rnd(2))
			rand_list(&y, "users", "u", r->users, &r->n_users);
		if (rnd(2))
			rand_list(&y, "groups", "g", r->groups, &r->n_groups);
		if (rnd(3) == 0)
			rand_list(&y, "agents", "ag", r->agents, &r->n_agents);
		r->n_tools = 1 + (int)rnd(3);
		buf_add_str(&y, "    tools: [");
		for (int k = 0; k < r->n_tools; k++) {
			rand_name(r->tools[k], sizeof(r->tools[k]), true);
			buf_addf(&y, "%s\"%s\"", k ? ", " : "", r->tools[k]);
		}
		buf_add_str(&y, "]\n");
	}
	struct policy *p = must_parse(y.data);
	buf_free(&y);
	for (int q = 0; q < 20000; q++) {
		int user = (int)rnd(R_ALPHA + 1), agent = (int)rnd(R_ALPHA + 1);
		int gs[2] = {(int)rnd(R_ALPHA + 1), (int)rnd(R_ALPHA + 1)};
		char ubuf[8], abuf[8], gbuf[2][8], tool[32];
		snprintf(ubuf, sizeof(ubuf), "u%d", user);
		snprintf(abuf, sizeof(abuf), "ag%d", agent);
		snprintf(gbuf[0], 8, "g%d", gs[0]);
		snprintf(gbuf[1], 8, "g%d", gs[1]);
		const char *gp[2] = {gbuf[0], gbuf[1]};
		rand_name(tool, sizeof(tool), false);
		struct policy_principal who = {.sub = ubuf, .groups = gp, .n_groups = 2};
		struct policy_agent ag = {.id = abuf};
		/* plain scan */
		int best = -1, best_rule = -1;
		for (int i = 0; i < R_RULES; i++) {
			const struct rrule *r = &rules[i];
			bool pm = (r->n_users == 0 && r->n_groups == 0) ||
			          in(r->users, r->n_users, user) ||
			          in(r->groups, r->n_groups, gs[0]) ||
			          in(r->groups, r->n_groups, gs[1]);
			bool am = r->n_agents == 0 || in(r->agents, r->n_agents, agent);
			bool tm = false;
			for (int k = 0; k < r->n_tools; k++)
				tm = tm || fnmatch(r->tools[k], tool, FNM_NOESCAPE) == 0;
			if (pm && am && tm && r->effect > best) {
				best = r->effect;
				best_rule = i;
			}
		}
		struct policy_decision d;
		policy_decide(p, &who, &ag, tool, &d);
		char want_id[16] = "default";
		if (best_rule >= 0)
			snprintf(want_id, sizeof(want_id), "r%d", best_rule);
		if ((int)d.effect != (best < 0 ? POLICY_ALLOW : best) ||
		    strcmp(d.rule, want_id) != 0)
			fail_msg("query %d (u%d g%d,g%d ag%d %s): got %s/%s want %d/%s", q, user,
			         gs[0], gs[1], agent, tool, policy_effect_name(d.effect), d.rule,
			         best, want_id);
		bool keep;
		const char *one[] = {tool};
		policy_filter_tools(p, &who, &ag, one, 1, &keep);
		assert_int_equal(keep, d.effect != POLICY_DENY);
	}
	policy_unref(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_precedence_and_default),
	    cmocka_unit_test(test_globs),
	    cmocka_unit_test(test_principals_and_agents),
	    cmocka_unit_test(test_roles),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_reload_keeps_last_good),
	    cmocka_unit_test(test_policy_file_hot_reload),
	    cmocka_unit_test(test_explain_and_filter),
	    cmocka_unit_test(test_against_plain_scan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
