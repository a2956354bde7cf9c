/* Fuzzes the tool policy compiler (lib/policy.c) and its decisions. The input is a policy
 * file; an optional tail after a line "#tools" holds tool names (one a line) to decide.
 * Beyond "no crash", the three ways to ask must agree: policy_decide, policy_explain
 * (which also lists the matches) and policy_filter_tools — an index bug that made them
 * differ would offer a tool the check then denies, or the reverse. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "policy.h"

#define MAX_TOOLS 32

static const char *const fixed_tools[] = {
    "bash", "read", "mcp__ledger__post", "mcp__db__query", "", "x", "mcp__", "a-b_c"};

static void
check_tool(const struct policy *p, const struct policy_principal *who,
           const struct policy_agent *ag, const char *tool)
{
	struct policy_decision d1, d2;
	size_t m[4];
	bool keep;
	policy_decide(p, who, ag, tool, &d1);
	size_t n = policy_explain(p, who, ag, tool, &d2, m, 4);
	policy_filter_tools(p, who, ag, &tool, 1, &keep);
	if (d1.effect != d2.effect || strcmp(d1.rule, d2.rule) != 0 ||
	    keep != (d1.effect != POLICY_DENY) || (n == 0) != (strcmp(d1.rule, "default") == 0))
		abort();
	/* the deciding rule is one of the matches, with the winning effect */
	if (n > 0 && n <= 4) {
		bool found = false;
		for (size_t i = 0; i < n; i++) {
			if (policy_rule_effect(p, m[i]) > d1.effect)
				abort();
			found = found || strcmp(policy_rule_id(p, m[i]), d1.rule) == 0;
		}
		if (!found)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	size_t ylen = size;
	const char *tail = NULL;
	for (size_t i = 0; i + 7 <= size; i++)
		if (memcmp(text + i, "\n#tools", 7) == 0) {
			ylen = i + 1;
			tail = text + i + 7;
			break;
		}
	struct policy *p = NULL;
	char err[512];
	if (policy_parse("fuzz.yaml", text, ylen, &p, err, sizeof(err)) != 0) {
		if (p != NULL || err[0] == '\0')
			abort(); /* a refusal leaves *out alone and says why */
		return 0;
	}
	char *tools[MAX_TOOLS];
	size_t nt = 0;
	if (tail) {
		const char *end = text + size;
		for (const char *s = tail; s < end && nt < MAX_TOOLS;) {
			const char *nl = memchr(s, '\n', (size_t)(end - s));
			size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
			tools[nt] = strndup(s, len);
			if (tools[nt] == NULL)
				abort();
			nt++;
			s += len + 1;
		}
	}
	static const char *const groups[] = {"auditors", "interns", "engineers", "g0", ""};
	struct policy_principal who[] = {
	    {.sub = "alice", .email = "alice@example.com", .groups = groups, .n_groups = 5},
	    {.sub = "u0", .groups = groups + 1, .n_groups = 1},
	    {.sub = "apikey:k1", .apikey = true},
	    {0},
	};
	struct policy_agent ags[] = {{.id = "agent_1", .name = "ledger"}, {.id = "ag0"}};
	for (size_t w = 0; w < sizeof(who) / sizeof(who[0]); w++) {
		policy_role(p, &who[w]);
		for (size_t a = 0; a < 3; a++) {
			const struct policy_agent *ag = a < 2 ? &ags[a] : NULL;
			for (size_t t = 0; t < sizeof(fixed_tools) / sizeof(fixed_tools[0]); t++)
				check_tool(p, &who[w], ag, fixed_tools[t]);
			for (size_t t = 0; t < nt; t++)
				check_tool(p, &who[w], ag, tools[t]);
		}
	}
	for (size_t t = 0; t < nt; t++)
		free(tools[t]);
	policy_unref(p);
	return 0;
}
