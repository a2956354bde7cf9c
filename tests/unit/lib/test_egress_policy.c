/* Egress policy (lib/egress_policy.c): host normalisation and matching, request targets,
 * address classes and rules, the operator file with its FILE:LINE errors, the
 * environment's networking, and the effective decision (environment ∩ operator). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "egress_policy.h"
#include "err.h"
#include "tls_hello.h"

static void
test_host_norm(void **state)
{
	(void)state;
	static const struct {
		const char *in, *want; /* want NULL: refused */
	} cases[] = {
	    {"Example.COM", "example.com"},
	    {"example.com.", "example.com"},
	    {"a-b.c_d.example", "a-b.c_d.example"},
	    {"10.0.0.1", "10.0.0.1"},
	    {"example.com..", NULL},
	    {".example.com", NULL},
	    {"a..b", NULL},
	    {"-a.example", NULL},
	    {"a-.example", NULL},
	    {"exa mple.com", NULL},
	    {"ex%61mple.com", NULL},
	    {"fe80::1%eth0", NULL},
	    {"::1", NULL},
	    {"", NULL},
	    {".", NULL},
	    {"010.0.0.1", NULL},  /* octal to some resolvers */
	    {"1.2.3", NULL},      /* 1.2.0.3 to inet_aton */
	    {"2130706433", NULL}, /* 127.0.0.1 to inet_aton */
	    {"0x7f.1", NULL},
	    {"a*.example", NULL},
	};
	char out[EGRESS_HOST_MAX + 1];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = egress_host_norm(cases[i].in, strlen(cases[i].in), out);
		if (cases[i].want == NULL) {
			if (r == 0)
				fail_msg("%s: accepted as %s", cases[i].in, out);
		} else {
			if (r != 0)
				fail_msg("%s: refused", cases[i].in);
			assert_string_equal(out, cases[i].want);
		}
	}
	/* 63-byte labels pass, 64 do not; 253 bytes in all */
	char lab[80];
	memset(lab, 'a', 63);
	memcpy(lab + 63, ".x", 3);
	assert_int_equal(egress_host_norm(lab, strlen(lab), out), 0);
	memset(lab, 'a', 64);
	memcpy(lab + 64, ".x", 3);
	assert_int_equal(egress_host_norm(lab, strlen(lab), out), AL_E_INVAL);
	char big[300];
	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (i % 2) ? '.' : 'a';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(egress_host_norm(big, 253, out), 0);
	assert_int_equal(egress_host_norm(big, 255, out), AL_E_INVAL);
}

static void
test_patterns(void **state)
{
	(void)state;
	static const struct {
		const char *pat, *host;
		uint16_t port;
		bool want;
	} cases[] = {
	    {"api.example", "api.example", 443, true},
	    {"API.Example.", "api.example", 80, true},
	    {"api.example", "x.api.example", 443, false},
	    {"*.corp.example", "a.corp.example", 443, true},
	    {"*.corp.example", "a.b.corp.example", 443, true},
	    {"*.corp.example", "corp.example", 443, false}, /* never the apex */
	    {"*.corp.example", "evilcorp.example", 443, false},
	    {"*.corp.example", "a.corp.example.evil", 443, false},
	    {"pypi.corp.example:443", "pypi.corp.example", 443, true},
	    {"pypi.corp.example:443", "pypi.corp.example", 80, false},
	    {"*.corp.example:8443", "x.corp.example", 8443, true},
	    {"*.corp.example:8443", "x.corp.example", 443, false},
	    {"10.1.2.3", "10.1.2.3", 80, true},
	};
	struct egress_host h;
	char err[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (egress_pattern_parse(cases[i].pat, true, &h, err, sizeof(err)) != 0)
			fail_msg("%s: %s", cases[i].pat, err);
		if (egress_pattern_match(&h, cases[i].host, cases[i].port) != cases[i].want)
			fail_msg("%s vs %s:%u: want %d", cases[i].pat, cases[i].host, cases[i].port,
			         cases[i].want);
	}
	static const char *const bad[] = {"*",        "*.",  "**.x",       "a.*.x", "x:0",
	                                  "x:65536",  "x:",  "[::1]",      "::1",   "*.1.2.3.4",
	                                  "http://x", "x/y", "10.0.0.0/8", "x:1:2", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (egress_pattern_parse(bad[i], true, &h, err, sizeof(err)) == 0)
			fail_msg("pattern %s accepted", bad[i]);
	assert_int_equal(egress_pattern_parse("x:443", false, &h, err, sizeof(err)), AL_E_INVAL);
	assert_non_null(strstr(err, "no port"));
}

static void
test_authority(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		uint16_t dflt;
		const char *host; /* NULL: refused */
		uint16_t port;
		bool ip;
	} cases[] = {
	    {"Example.com:443", 0, "example.com", 443, false},
	    {"example.com.:8080", 0, "example.com", 8080, false},
	    {"example.com", 80, "example.com", 80, false},
	    {"example.com", 0, NULL, 0, false}, /* CONNECT needs a port */
	    {"1.2.3.4:443", 0, "1.2.3.4", 443, true},
	    {"[::1]:443", 0, "::1", 443, true},
	    {"[::ffff:169.254.169.254]:80", 0, "169.254.169.254", 80, true},
	    {"[::FFFF:a9fe:a9fe]:80", 0, "169.254.169.254", 80, true},
	    {"[fe80::1%25eth0]:443", 0, NULL, 0, false},
	    {"[fe80::1%eth0]:443", 0, NULL, 0, false},
	    {"[::1]x", 0, NULL, 0, false},
	    {"[1.2.3.4]:80", 0, NULL, 0, false},
	    {"example.com:0", 0, NULL, 0, false},
	    {"example.com:65536", 0, NULL, 0, false},
	    {"example.com:+443", 0, NULL, 0, false},
	    {"example.com:443 ", 0, NULL, 0, false},
	    {":443", 0, NULL, 0, false},
	    {"a:b:c", 0, NULL, 0, false},
	    {"0x7f.1:80", 0, NULL, 0, false},
	};
	char host[EGRESS_HOST_MAX + 1];
	uint16_t port;
	bool ip;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = egress_authority_parse(cases[i].in, strlen(cases[i].in), cases[i].dflt,
		                               host, sizeof(host), &port, &ip);
		if (cases[i].host == NULL) {
			if (r == 0)
				fail_msg("%s: accepted as %s:%u", cases[i].in, host, port);
			continue;
		}
		if (r != 0)
			fail_msg("%s: refused", cases[i].in);
		assert_string_equal(host, cases[i].host);
		assert_int_equal(port, cases[i].port);
		assert_int_equal(ip, cases[i].ip);
	}
	const char *path;
	size_t plen;
	static const char u1[] = "http://Api.Example:8080/v1/x?y=1";
	assert_int_equal(egress_url_parse(u1, strlen(u1), host, sizeof(host), &port, &path, &plen),
	                 0);
	assert_string_equal(host, "api.example");
	assert_int_equal(port, 8080);
	assert_int_equal(plen, strlen("/v1/x?y=1"));
	static const char u2[] = "HTTP://api.example";
	assert_int_equal(egress_url_parse(u2, strlen(u2), host, sizeof(host), &port, &path, &plen),
	                 0);
	assert_int_equal(port, 80);
	assert_memory_equal(path, "/", 1);
	static const char *const badu[] = {"https://api.example/", "http://user@evil/", "/relative",
	                                   "http://", "http://[::1%25lo]/"};
	for (size_t i = 0; i < sizeof(badu) / sizeof(badu[0]); i++)
		if (egress_url_parse(badu[i], strlen(badu[i]), host, sizeof(host), &port, &path,
		                     &plen) == 0)
			fail_msg("%s accepted", badu[i]);
}

static void
test_addresses(void **state)
{
	(void)state;
	static const struct {
		const char *a;
		enum egress_addr_class cls;
	} cases[] = {
	    {"8.8.8.8", EGRESS_ADDR_PUBLIC},
	    {"2606:4700::1", EGRESS_ADDR_PUBLIC},
	    {"127.0.0.1", EGRESS_ADDR_LOOPBACK},
	    {"127.255.0.9", EGRESS_ADDR_LOOPBACK},
	    {"::1", EGRESS_ADDR_LOOPBACK},
	    {"::ffff:127.0.0.1", EGRESS_ADDR_LOOPBACK},
	    {"169.254.169.254", EGRESS_ADDR_METADATA},
	    {"::ffff:169.254.169.254", EGRESS_ADDR_METADATA},
	    {"fd00:ec2::254", EGRESS_ADDR_METADATA},
	    {"100.100.100.200", EGRESS_ADDR_METADATA},
	    {"168.63.129.16", EGRESS_ADDR_METADATA},
	    {"169.254.1.1", EGRESS_ADDR_LINKLOCAL},
	    {"fe80::1", EGRESS_ADDR_LINKLOCAL},
	    {"10.20.1.5", EGRESS_ADDR_PRIVATE},
	    {"172.31.255.255", EGRESS_ADDR_PRIVATE},
	    {"172.32.0.1", EGRESS_ADDR_PUBLIC},
	    {"192.168.1.1", EGRESS_ADDR_PRIVATE},
	    {"100.64.0.1", EGRESS_ADDR_PRIVATE},
	    {"fd12::1", EGRESS_ADDR_PRIVATE},
	    {"0.0.0.0", EGRESS_ADDR_UNSPECIFIED},
	    {"::", EGRESS_ADDR_UNSPECIFIED},
	    {"224.0.0.1", EGRESS_ADDR_MULTICAST},
	    {"255.255.255.255", EGRESS_ADDR_MULTICAST},
	    {"ff02::1", EGRESS_ADDR_MULTICAST},
	    {"64:ff9b::a9fe:a9fe", EGRESS_ADDR_TRANSLATED},
	    {"2002:a9fe:a9fe::1", EGRESS_ADDR_TRANSLATED},
	    {"::127.0.0.1", EGRESS_ADDR_TRANSLATED},
	    {"240.0.0.1", EGRESS_ADDR_RESERVED},
	};
	struct egress_addr a;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (egress_addr_parse(cases[i].a, &a) != 0)
			fail_msg("%s refused", cases[i].a);
		if (egress_addr_classify(&a) != cases[i].cls)
			fail_msg("%s: class %s, want %s", cases[i].a,
			         egress_addr_class_name(egress_addr_classify(&a)),
			         egress_addr_class_name(cases[i].cls));
	}
	assert_int_equal(egress_addr_parse("fe80::1%eth0", &a), AL_E_INVAL);
	assert_int_equal(egress_addr_parse("1.2.3", &a), AL_E_INVAL);
	/* the mapped form is the IPv4 address: formatted and matched as one */
	char txt[64];
	assert_int_equal(egress_addr_parse("::ffff:10.1.2.3", &a), 0);
	egress_addr_format(&a, txt, sizeof(txt));
	assert_string_equal(txt, "10.1.2.3");
	struct egress_cidr c;
	assert_int_equal(egress_cidr_parse("10.0.0.0/8", &c), 0);
	assert_true(egress_cidr_contains(&c, &a));
	assert_int_equal(egress_cidr_parse("10.1.2.3/8", &c), AL_E_INVAL); /* host bits */
	assert_int_equal(egress_cidr_parse("10.0.0.0/33", &c), AL_E_INVAL);
	assert_int_equal(egress_cidr_parse("fd00::/8", &c), 0);
	assert_int_equal(egress_cidr_parse("fd00::/129", &c), AL_E_INVAL);
	assert_int_equal(egress_cidr_parse("127.0.0.1", &c), 0);
	assert_int_equal(c.bits, 128);
}

static struct egress_operator *
must_op(const char *y)
{
	struct egress_operator *op = NULL;
	char err[512] = "";
	if (egress_operator_parse("op.yaml", y, strlen(y), &op, err, sizeof(err)) != 0)
		fail_msg("operator file refused: %s", err);
	return op;
}

static void
test_operator_file(void **state)
{
	(void)state;
	struct egress_operator *op = must_op("allowed_hosts: [\"*.corp.example\", "
	                                     "\"pypi.corp.example:443\"]\n"
	                                     "allowed_addresses: [10.20.0.0/16]\n"
	                                     "resolve: {ledger.corp.example: 10.20.1.5}\n");
	struct egress_addr a;
	char txt[64];
	assert_int_equal(op->allow.n, 2);
	assert_int_equal(op->n_addrs, 1);
	assert_int_equal(op->max_connections, 64);
	assert_true(egress_operator_resolve(op, "ledger.corp.example", &a));
	egress_addr_format(&a, txt, sizeof(txt));
	assert_string_equal(txt, "10.20.1.5");
	assert_false(egress_operator_resolve(op, "other.corp.example", &a));
	egress_operator_free(op);

	static const struct {
		const char *y, *want;
	} bad[] = {
	    {"allowed_hosts: [a.example]\nallowd_addresses: []\n", "op.yaml:2: unknown key"},
	    {"allowed_hosts:\n  - a.example\n  - 'x y'\n", "op.yaml:3: allowed_hosts[1]: 'x y'"},
	    {"allowed_hosts: a.example\n", "op.yaml:1: allowed_hosts: must be a list"},
	    {"denied_hosts: ['*']\n", "op.yaml:1: denied_hosts[0]"},
	    {"allowed_addresses:\n  - 10.20.0.0/16\n  - 10.1.2.3/8\n",
	     "op.yaml:3: allowed_addresses[1]: not an address"},
	    {"allowed_addresses: [fe80::1%eth0]\n", "op.yaml:1: allowed_addresses[0]"},
	    {"resolve:\n  a.example: 10.0.0.1\n  b.example: nope\n",
	     "op.yaml:3: resolve.b.example"},
	    {"resolve: {1.2.3.4: 10.0.0.1}\n", "resolve: '1.2.3.4' is not a host name"},
	    {"unrestricted: maybe\n", "op.yaml:1: unrestricted"},
	    {"max_connections: 0\n", "op.yaml:1: max_connections"},
	    {"- a\n", "op.yaml:1:"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[512] = "";
		struct egress_operator *o = NULL;
		if (egress_operator_parse("op.yaml", bad[i].y, strlen(bad[i].y), &o, err,
		                          sizeof(err)) == 0)
			fail_msg("accepted: %s", bad[i].y);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("error for %s: '%s', want '%s'", bad[i].y, err, bad[i].want);
		assert_null(o);
	}
}

static void
env_from(const char *json, struct egress_env *e)
{
	json_error_t je;
	json_t *j = json_loads(json, 0, &je);
	char err[256] = "";
	assert_non_null(j);
	if (egress_env_parse(j, "networking", e, err, sizeof(err)) != 0)
		fail_msg("%s refused: %s", json, err);
	json_decref(j);
}

static void
test_env(void **state)
{
	(void)state;
	static const struct {
		const char *json, *want;
	} bad[] = {
	    {"{}", "networking.type: Field required"},
	    {"{\"type\":\"open\"}", "networking.type: must be"},
	    {"{\"type\":\"unrestricted\",\"allowed_hosts\":[]}", "networking.allowed_hosts: Extra"},
	    {"{\"type\":\"limited\",\"allowed_hosts\":\"a\"}", "networking.allowed_hosts: must be"},
	    {"{\"type\":\"limited\",\"allowed_hosts\":[\"a b\"]}", "networking.allowed_hosts[0]"},
	    {"{\"type\":\"limited\",\"allowed_hosts\":[1]}", "networking.allowed_hosts[0]: must"},
	    {"{\"type\":\"limited\",\"allow_mcp_servers\":1}", "allow_mcp_servers: must be a bool"},
	    {"{\"type\":\"limited\",\"allowed_ips\":[]}", "networking.allowed_ips: Extra"},
	    {"[]", "networking: must be an object"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i].json, JSON_DECODE_ANY, NULL);
		struct egress_env e;
		char err[256] = "";
		assert_non_null(j);
		assert_int_equal(egress_env_parse(j, "networking", &e, err, sizeof(err)),
		                 AL_E_INVAL);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("%s: '%s', want '%s'", bad[i].json, err, bad[i].want);
		json_decref(j);
	}
	struct egress_env e;
	env_from("{\"type\":\"limited\",\"allowed_hosts\":[\"API.example\"],"
	         "\"allow_package_managers\":true,\"allow_mcp_servers\":false}",
	         &e);
	assert_int_equal(e.type, EGRESS_ENV_LIMITED);
	assert_true(e.allow_package_managers);
	assert_false(e.allow_mcp_servers);
	assert_string_equal(e.allow.v[0].name, "api.example");
	egress_env_free(&e);
	assert_int_equal(egress_env_parse(NULL, "n", &e, NULL, 0), 0);
	assert_int_equal(e.type, EGRESS_ENV_NONE);
}

static void
check_host(const struct egress_operator *op, const struct egress_env *env, const char *host,
           uint16_t port, bool want, const char *rule_part)
{
	struct egress_decision d;
	egress_decide_host(op, env, host, port, &d);
	if (d.allow != want || strstr(d.rule, rule_part) == NULL)
		fail_msg("%s:%u: allow=%d rule '%s', want %d '%s'", host, port, d.allow, d.rule,
		         want, rule_part);
}

static void
test_decide_host(void **state)
{
	(void)state;
	struct egress_operator *op = must_op("allowed_hosts: ['*.corp.example', 'pypi.org', "
	                                     "'api.public.example:443']\n"
	                                     "denied_hosts: ['secret.corp.example']\n");
	struct egress_operator *any = must_op("unrestricted: true\n"
	                                      "denied_hosts: ['*.evil.example']\n");
	struct egress_env lim, unr, none = {0};
	env_from("{\"type\":\"limited\",\"allowed_hosts\":[\"*.corp.example\",\"other.example\","
	         "\"api.public.example\"],\"allow_package_managers\":true}",
	         &lim);
	env_from("{\"type\":\"unrestricted\"}", &unr);

	check_host(NULL, &lim, "a.corp.example", 443, false, "no --egress-policy");
	check_host(op, &none, "a.corp.example", 443, false, "none configured");
	check_host(op, &lim, "a.corp.example", 443, true, "'*.corp.example'");
	/* deny wins over both allowlists */
	check_host(op, &lim, "secret.corp.example", 443, false, "denied_hosts entry");
	/* the environment allows, the operator does not: the operator has the last word */
	check_host(op, &lim, "other.example", 443, false, "the worker's allowed_hosts");
	/* the operator allows, the environment does not */
	check_host(op, &lim, "x.example", 443, false, "the environment's allowed_hosts");
	/* ports: the operator's entry pins 443 */
	check_host(op, &lim, "api.public.example", 443, true, "allowed_hosts");
	check_host(op, &lim, "api.public.example", 8080, false, "the worker's allowed_hosts");
	/* package managers open the documented list, still under the operator's */
	check_host(op, &lim, "pypi.org", 443, true, "allow_package_managers");
	check_host(op, &lim, "registry.npmjs.org", 443, false, "the worker's allowed_hosts");
	/* unrestricted environment ∩ operator list = the operator's list */
	check_host(op, &unr, "a.corp.example", 443, true, "'unrestricted'");
	check_host(op, &unr, "x.example", 443, false, "the worker's allowed_hosts");
	/* the operator's opt-in opens any host, but its denials hold */
	check_host(any, &unr, "x.example", 443, true, "any host");
	check_host(any, &unr, "a.evil.example", 443, false, "denied_hosts entry '*.evil.example'");
	check_host(any, &lim, "x.example", 443, false, "the environment's allowed_hosts");
	check_host(any, &lim, "other.example", 80, true, "any host");

	/* MCP hosts only with allow_mcp_servers */
	char err[64];
	assert_int_equal(egress_hostlist_add(&lim.mcp, "mcp.other.example", true, err, sizeof(err)),
	                 0);
	struct egress_operator *mop = must_op("allowed_hosts: ['mcp.other.example']\n");
	check_host(mop, &lim, "mcp.other.example", 443, false, "the environment's allowed_hosts");
	lim.allow_mcp_servers = true;
	check_host(mop, &lim, "mcp.other.example", 443, true, "allow_mcp_servers");
	egress_env_free(&lim);
	egress_env_free(&unr);
	egress_operator_free(op);
	egress_operator_free(any);
	egress_operator_free(mop);
}

static void
check_addr(const struct egress_operator *op, const char *addr, const struct egress_addr *own,
           size_t n_own, bool want, const char *rule_part)
{
	struct egress_addr a;
	struct egress_decision d;
	assert_int_equal(egress_addr_parse(addr, &a), 0);
	egress_decide_addr(op, &a, own, n_own, &d);
	if (d.allow != want || strstr(d.rule, rule_part) == NULL)
		fail_msg("%s: allow=%d rule '%s', want %d '%s'", addr, d.allow, d.rule, want,
		         rule_part);
}

static void
test_decide_addr(void **state)
{
	(void)state;
	struct egress_operator *op =
	    must_op("allowed_addresses: [10.20.0.0/16, 127.0.0.1, '169.254.0.0/16', "
	            "'100.64.0.0/10']\n");
	struct egress_operator *all = must_op("allowed_addresses: ['::/0']\n");
	struct egress_operator *none = must_op("allowed_hosts: []\n");
	struct egress_addr own[1];
	assert_int_equal(egress_addr_parse("192.0.2.1", &own[0]), 0);
	check_addr(none, "8.8.8.8", NULL, 0, true, "public");
	check_addr(none, "10.20.1.5", NULL, 0, false, "private and not in allowed_addresses");
	check_addr(op, "10.20.1.5", NULL, 0, true, "allowed_addresses entry 10.20.0.0/16");
	check_addr(op, "10.21.1.5", NULL, 0, false, "private");
	check_addr(none, "127.0.0.1", NULL, 0, false, "loopback");
	check_addr(op, "127.0.0.1", NULL, 0, true, "allowed_addresses entry 127.0.0.1");
	check_addr(op, "::ffff:127.0.0.1", NULL, 0, true, "127.0.0.1");
	check_addr(op, "127.0.0.2", NULL, 0, false, "loopback");
	/* metadata and link-local never, even when a listed range holds them */
	check_addr(op, "169.254.169.254", NULL, 0, false, "cloud metadata");
	check_addr(op, "::ffff:169.254.169.254", NULL, 0, false, "cloud metadata");
	check_addr(op, "100.100.100.200", NULL, 0, false, "cloud metadata");
	check_addr(op, "fd00:ec2::254", NULL, 0, false, "cloud metadata");
	check_addr(op, "169.254.10.1", NULL, 0, false, "link-local");
	check_addr(op, "64:ff9b::a9fe:a9fe", NULL, 0, false, "translated");
	check_addr(op, "0.0.0.0", NULL, 0, false, "unspecified");
	check_addr(op, "::", NULL, 0, false, "unspecified");
	/* ::/0 holds every address, IPv4 ones too: still never metadata */
	check_addr(all, "10.21.1.5", NULL, 0, true, "::/0");
	check_addr(all, "169.254.169.254", NULL, 0, false, "cloud metadata");
	/* the worker's own addresses only when listed */
	struct egress_addr pub[1];
	assert_int_equal(egress_addr_parse("8.8.4.4", &pub[0]), 0);
	check_addr(none, "8.8.4.4", pub, 1, false, "the worker's own address");
	egress_operator_free(op);
	egress_operator_free(none);
	egress_operator_free(all);
}

static void
test_sni(void **state)
{
	(void)state;
	uint8_t h[600];
	char sni[EGRESS_HOST_MAX + 1];
	size_t n = test_tls_hello("API.Corp.Test", 0, h);
	assert_int_equal(egress_sni_parse(h, n, sni), 0);
	assert_string_equal(sni, "api.corp.test");
	/* every prefix asks for more, never decides early */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(egress_sni_parse(h, i, sni), AL_E_AGAIN);
	/* split over two records */
	n = test_tls_hello("api.corp.test", 20, h);
	assert_int_equal(egress_sni_parse(h, n, sni), 0);
	assert_string_equal(sni, "api.corp.test");
	assert_int_equal(egress_sni_parse(h, n - 1, sni), AL_E_AGAIN);
	n = test_tls_hello(NULL, 0, h);
	assert_int_equal(egress_sni_parse(h, n, sni), AL_E_NOTFOUND);
	assert_int_equal(egress_sni_parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, sni),
	                 AL_E_UNSUPPORTED);
	/* malformed: a bad name, a record of another type next, a wrong handshake type */
	n = test_tls_hello("bad name", 0, h);
	assert_int_equal(egress_sni_parse(h, n, sni), AL_E_PROTO);
	n = test_tls_hello("a.test", 0, h);
	h[5] = 2; /* server_hello */
	assert_int_equal(egress_sni_parse(h, n, sni), AL_E_PROTO);
	n = test_tls_hello("a.test", 20, h);
	h[25] = 23; /* the second record is application data */
	assert_int_equal(egress_sni_parse(h, n, sni), AL_E_PROTO);
	n = test_tls_hello("a.test", 0, h);
	h[n - 1] = 0; /* a NUL inside the name */
	assert_int_equal(egress_sni_parse(h, n, sni), AL_E_PROTO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_host_norm),     cmocka_unit_test(test_patterns),
	    cmocka_unit_test(test_authority),     cmocka_unit_test(test_addresses),
	    cmocka_unit_test(test_operator_file), cmocka_unit_test(test_env),
	    cmocka_unit_test(test_decide_host),   cmocka_unit_test(test_decide_addr),
	    cmocka_unit_test(test_sni),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
