/* src/gateway/gateway_identity.c and the agent_identity section of the gateway config:
 * tokens signed with lib/jose (as the server signs them) pass or are refused with 401
 * (no token, bad signature, another issuer or server, expired, too long-lived) or 403 (an
 * agent or principal the route does not allow); the config refuses what cannot work. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "err.h"
#include "gateway_config.h"
#include "gateway_identity.h"
#include "jose.h"

#define NOW 1800000000
#define ISS "https://agents.bank.test"

static const char base_cfg[] = "server: edge.test:7844\n"
                               "tunnel_domain: t.tunnel.test\n"
                               "routes:\n"
                               "  ledger: http://10.0.0.5:8080\n"
                               "  docs: http://10.0.0.6:8080\n";

static struct jose_key *key, *other;

static char *
token(const struct jose_key *k, const char *aud, int64_t iat, int64_t exp, const char *agent,
      const char *user, const char *group)
{
	json_t *c =
	    json_pack("{s:s, s:s, s:s, s:I, s:I, s:{s:s, s:s, s:i}, s:s, s:{s:s, s:[s]}}", "iss",
	              ISS, "aud", aud, "sub", agent, "iat", (json_int_t)iat, "exp", (json_int_t)exp,
	              "agent", "id", agent, "name", "ledger-auditor", "version", 3, "session_id",
	              "sesn_1", "on_behalf_of", "sub", user, "groups", group);
	char *t = NULL;
	assert_int_equal(jose_sign(k, JOSE_ES256, c, &t), 0);
	json_decref(c);
	return t;
}

static void
load(struct gateway_config *cfg, const char *extra)
{
	char text[2048], err[300];
	snprintf(text, sizeof text, "%s%s", base_cfg, extra);
	assert_int_equal(gateway_config_parse(text, strlen(text), "gw.yaml", cfg, err, sizeof err),
	                 0);
	cfg->aid_keys = jose_keyset_new(&key, 1);
}

static void
test_checks(void **state)
{
	(void)state;
	struct gateway_config cfg;
	load(&cfg, "agent_identity:\n"
	           "  issuer: " ISS "\n"
	           "  jwks_file: /unused\n"
	           "  routes:\n"
	           "    ledger:\n"
	           "      allowed_agents: [agent_1, ledger-auditor-x]\n"
	           "      allowed_groups: [auditors]\n"
	           "      allowed_users: [carol]\n");
	const struct gateway_route *ledger = gateway_config_route(&cfg, "ledger.t.tunnel.test");
	const struct gateway_route *docs = gateway_config_route(&cfg, "docs.t.tunnel.test");
	const struct gateway_identity_rule *r = gateway_config_identity_rule(&cfg, ledger);
	assert_non_null(r);
	assert_null(gateway_config_identity_rule(&cfg, docs)); /* docs: no token needed */
	const char *host = "ledger.t.tunnel.test";
	const char *aud = "https://ledger.t.tunnel.test/mcp";
	char why[300];
	struct {
		char *tok;
		const char *host;
		int want;
		const char *why;
	} cases[] = {
	    {token(key, aud, NOW, NOW + 300, "agent_1", "alice", "auditors"), host, 0, NULL},
	    /* the port of :authority does not matter, case neither */
	    {token(key, aud, NOW, NOW + 300, "agent_1", "alice", "auditors"),
	     "LEDGER.t.tunnel.test:443", 0, NULL},
	    {token(key, aud, NOW, NOW + 300, "agent_1", "carol", "staff"), host, 0, NULL},
	    {NULL, host, 401, "required"},
	    {token(other, aud, NOW, NOW + 300, "agent_1", "alice", "auditors"), host, 401,
	     "signature"},
	    {token(key, "https://docs.t.tunnel.test/mcp", NOW, NOW + 300, "agent_1", "alice",
	           "auditors"),
	     host, 401, "another server"},
	    {token(key, aud, NOW - 700, NOW - 400, "agent_1", "alice", "auditors"), host, 401,
	     "expired"},
	    {token(key, aud, NOW, NOW + 3600, "agent_1", "alice", "auditors"), host, 401,
	     "lifetime"},
	    {token(key, aud, NOW, NOW + 300, "agent_2", "alice", "auditors"), host, 403,
	     "agent agent_2"},
	    {token(key, aud, NOW, NOW + 300, "agent_1", "bob", "interns"), host, 403, "user"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		why[0] = '\0';
		int st = gateway_identity_check(&cfg, r, cases[i].host, cases[i].tok, NOW, why,
		                                sizeof why);
		if (st != cases[i].want)
			fail_msg("case %zu: %d, want %d (%s)", i, st, cases[i].want, why);
		if (cases[i].why)
			assert_non_null(strstr(why, cases[i].why));
		free(cases[i].tok);
	}
	/* a token from another issuer, even with our key, is refused */
	json_t *c = json_pack("{s:s, s:s, s:I, s:I}", "iss", "https://evil.test", "aud", aud, "iat",
	                      (json_int_t)NOW, "exp", (json_int_t)(NOW + 60));
	char *t = NULL;
	assert_int_equal(jose_sign(key, JOSE_ES256, c, &t), 0);
	assert_int_equal(gateway_identity_check(&cfg, r, host, t, NOW, why, sizeof why), 401);
	assert_non_null(strstr(why, "issuer"));
	free(t);
	json_decref(c);
	gateway_config_free(&cfg);
}

static void
test_token_headers(void **state)
{
	(void)state;
	static const char h1[] = "accept: */*\0authorization: Bearer abc\0x-agent-identity: xyz\0";
	static const char h2[] = "authorization: Bearer abc\0";
	static const char h3[] = "authorization: Basic abc\0";
	assert_string_equal(gateway_identity_token(h1, sizeof h1 - 1), "xyz");
	assert_string_equal(gateway_identity_token(h2, sizeof h2 - 1), "abc");
	assert_null(gateway_identity_token(h3, sizeof h3 - 1));
	assert_null(gateway_identity_token("", 0));
}

static void
test_config_refused(void **state)
{
	(void)state;
	struct {
		const char *extra, *want;
	} cases[] = {
	    {"agent_identity:\n  issuer: " ISS "\n  routes:\n    ledger: {}\n", "jwks_file"},
	    {"agent_identity:\n  jwks_file: /x\n", "issuer"},
	    {"agent_identity:\n  issuer: " ISS "\n  jwks_file: /x\n  routes:\n    nope: {}\n",
	     "gw.yaml:10: agent_identity.routes: \"nope\" is not a key of routes"},
	    {"agent_identity:\n  issuer: " ISS "\n  jwks_file: /x\n  routes:\n    ledger:\n"
	     "      allowed_groups: []\n",
	     "empty list"},
	    {"agent_identity:\n  issuer: " ISS "\n  jwks_file: /x\n  routes:\n    ledger:\n"
	     "      allowed_teams: [a]\n",
	     "unknown key"},
	    {"agent_identity:\n  issuer: " ISS "\n  jwks_file: /x\n  color: red\n", "unknown key"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct gateway_config cfg;
		char text[2048], err[300] = "";
		snprintf(text, sizeof text, "%s%s", base_cfg, cases[i].extra);
		assert_int_equal(
		    gateway_config_parse(text, strlen(text), "gw.yaml", &cfg, err, sizeof err),
		    AL_E_INVAL);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: %s", i, err);
	}
	/* a jwks_file that does not hold keys is refused at load, with the key's line */
	char dir[] = "/tmp/test_gw_id.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char cfgp[128], jwks[128], text[2048], err[300];
	snprintf(cfgp, sizeof cfgp, "%s/gw.yaml", dir);
	snprintf(jwks, sizeof jwks, "%s/jwks.json", dir);
	FILE *f = fopen(jwks, "w");
	fputs("{\"keys\":[]}", f);
	fclose(f);
	snprintf(text, sizeof text, "%sagent_identity:\n  issuer: " ISS "\n  jwks_file: %s\n",
	         base_cfg, jwks);
	f = fopen(cfgp, "w");
	fputs(text, f);
	fclose(f);
	struct gateway_config cfg;
	assert_int_equal(gateway_config_load(cfgp, &cfg, err, sizeof err), AL_E_INVAL);
	assert_non_null(strstr(err, "gw.yaml:8: agent_identity.jwks_file"));
	/* and a good one loads */
	json_t *jwk = jose_key_public_jwk(key);
	json_t *doc = json_pack("{s:[o]}", "keys", jwk);
	json_dump_file(doc, jwks, 0);
	json_decref(doc);
	assert_int_equal(gateway_config_load(cfgp, &cfg, err, sizeof err), 0);
	assert_int_equal(jose_keyset_count(cfg.aid_keys), 1);
	gateway_config_free(&cfg);
	unlink(jwks);
	unlink(cfgp);
	rmdir(dir);
}

int
main(void)
{
	if (jose_key_generate(JOSE_ES256, "k1", &key) != 0 ||
	    jose_key_generate(JOSE_ES256, "k1", &other) != 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_checks),
	    cmocka_unit_test(test_token_headers),
	    cmocka_unit_test(test_config_refused),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	jose_key_free(key);
	jose_key_free(other);
	return r;
}
