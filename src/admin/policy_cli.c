/* `airlock policy check FILE` and `airlock policy explain`: what an operator runs before
 * installing a policy file, and to answer "why was this tool denied?". See
 * docs/server/policy.md. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "admin.h"
#include "policy.h"
#include "xalloc.h"

#define MATCHED_SHOWN 50

/* sub "explain": its usage line first (each subcommand's --help starts with its own). */
static void
policy_usage(FILE *f, const char *sub)
{
	static const char *const check = "airlock policy check FILE\n";
	static const char *const explain =
	    "airlock policy explain --file FILE (--user SUB | --apikey KEY_ID)\n"
	    "                              [--email E] [--groups a,b] [--agent A] --tool T...\n";
	bool ex = sub != NULL && strcmp(sub, "explain") == 0;
	fprintf(f, "usage: %s       %s", ex ? explain : check, ex ? check : explain);
	fprintf(f,
	        "\n"
	        "check    validate a policy file: exit 0 and a summary, or exit 2 and\n"
	        "         FILE:LINE: message\n"
	        "explain  the decision for one principal, agent and tool (repeat --tool for\n"
	        "         several), the deciding rule, every matching rule and the role\n"
	        "\n"
	        "  --file FILE     the policy file\n"
	        "  --user SUB      the principal's OIDC subject\n"
	        "  --email E       its email (rules' users: match sub or email)\n"
	        "  --groups a,b    its groups, comma-separated\n"
	        "  --apikey KEY_ID an API-key principal instead (user apikey:KEY_ID, no groups)\n"
	        "  --agent A       the session's agent id or name\n"
	        "  --tool T        the tool name as the model sees it (bash, mcp__srv__tool)\n");
}

static int
policy_check(const char *path)
{
	struct policy *p = NULL;
	char err[600];
	if (policy_load(path, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	size_t n = policy_rule_count(p), by[3] = {0, 0, 0};
	for (size_t i = 0; i < n; i++)
		by[policy_rule_effect(p, i)]++;
	printf("%s: ok: %zu rules (%zu allow, %zu ask, %zu deny), default %s; roles: %zu admin, "
	       "%zu developer, %zu user groups; default role %s\n",
	       path, n, by[POLICY_ALLOW], by[POLICY_ASK], by[POLICY_DENY],
	       policy_effect_name(policy_default(p)), policy_role_groups(p, POLICY_ROLE_ADMIN),
	       policy_role_groups(p, POLICY_ROLE_DEVELOPER),
	       policy_role_groups(p, POLICY_ROLE_USER),
	       policy_role_name(policy_role(p, &(struct policy_principal){0})));
	policy_unref(p);
	return 0;
}

/* Splits "a,b,,c" into its non-empty parts (in place). */
static size_t
split_groups(char *s, const char ***out)
{
	size_t n = 0;
	const char **v = NULL;
	for (char *p = s; p && *p;) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		if (*p) {
			v = xreallocarray(v, n + 1, sizeof(*v));
			v[n++] = p;
		}
		p = comma ? comma + 1 : NULL;
	}
	*out = v;
	return n;
}

static int
policy_explain_main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"file", required_argument, NULL, 'f'},
	    {"user", required_argument, NULL, 'u'},
	    {"email", required_argument, NULL, 'e'},
	    {"groups", required_argument, NULL, 'g'},
	    {"apikey", required_argument, NULL, 'k'},
	    {"agent", required_argument, NULL, 'a'},
	    {"tool", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *file = NULL, *user = NULL, *email = NULL, *apikey = NULL, *agent = NULL;
	char *groups_arg = NULL, *sub = NULL;
	const char **tools = NULL, **groups = NULL;
	size_t n_tools = 0;
	struct policy *p = NULL;
	char err[600];
	int rc = 2, ch;
	optind = 1;
	opterr = 0; /* cli_option_error words it */
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			file = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'e':
			email = optarg;
			break;
		case 'g':
			groups_arg = optarg;
			break;
		case 'k':
			apikey = optarg;
			break;
		case 'a':
			agent = optarg;
			break;
		case 't':
			tools = xreallocarray(tools, n_tools + 1, sizeof(*tools));
			tools[n_tools++] = optarg;
			break;
		case 'h':
			policy_usage(stdout, "explain");
			rc = 0;
			goto out;
		default:
			rc = cli_option_error("policy explain", ch, argc, argv);
			goto out;
		}
	}
	if (optind != argc || file == NULL || n_tools == 0 || (user == NULL) == (apikey == NULL) ||
	    (apikey && (email || groups_arg))) {
		fprintf(stderr, "airlock policy explain: give --file, --tool and exactly one of "
		                "--user or --apikey (an API key has no email or groups)\n");
		goto out;
	}
	if (policy_load(file, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	struct policy_principal who = {.sub = user, .email = email, .apikey = apikey != NULL};
	if (apikey)
		who.sub = sub = xasprintf("apikey:%s", apikey);
	who.n_groups = split_groups(groups_arg, &groups);
	who.groups = groups;
	struct policy_agent ag = {.id = agent, .name = agent};
	printf("principal: %s%s%s (%zu groups), role %s\n", who.sub, email ? " " : "",
	       email ? email : "", who.n_groups, policy_role_name(policy_role(p, &who)));
	for (size_t t = 0; t < n_tools; t++) {
		struct policy_decision d;
		size_t m[MATCHED_SHOWN];
		size_t n =
		    policy_explain(p, &who, agent ? &ag : NULL, tools[t], &d, m, MATCHED_SHOWN);
		printf("%s: %s by %s", tools[t], policy_effect_name(d.effect), d.rule);
		if (d.line)
			printf(" (%s:%u)", file, d.line);
		printf("\n");
		if (n == 0)
			printf("  no rule matched: the default applies\n");
		for (size_t i = 0; i < n && i < MATCHED_SHOWN; i++)
			printf("  matched %-5s %s (%s:%u)\n",
			       policy_effect_name(policy_rule_effect(p, m[i])),
			       policy_rule_id(p, m[i]), file, policy_rule_line(p, m[i]));
		if (n > MATCHED_SHOWN)
			printf("  … and %zu more\n", n - MATCHED_SHOWN);
	}
	rc = 0;
out:
	policy_unref(p);
	free(tools);
	free(groups);
	free(sub);
	return rc;
}

int
policy_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		policy_usage(argc < 2 ? stderr : stdout, NULL);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "check") == 0) {
		if (argc == 3 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
			policy_usage(stdout, "check");
			return 0;
		}
		if (argc >= 3 && argv[2][0] == '-') {
			fprintf(stderr, "airlock policy check: unknown option '%s'\n", argv[2]);
			fprintf(stderr, "Run 'airlock policy check --help' for the options.\n");
			return 2;
		}
		if (argc != 3) {
			fprintf(stderr, "usage: airlock policy check FILE\n");
			return 2;
		}
		return policy_check(argv[2]);
	}
	if (strcmp(argv[1], "explain") == 0)
		return policy_explain_main(argc - 1, argv + 1);
	fprintf(stderr, "airlock policy: unknown command '%s'\n", argv[1]);
	policy_usage(stderr, NULL);
	return 2;
}
