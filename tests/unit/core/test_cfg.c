/* YAML config loading: types, line numbers in errors, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"
#include "err.h"

static void
test_values_and_lines(void **state)
{
	struct cfg c;
	const char *y = "listen: 127.0.0.1:8400\n"
	                "lease_ttl_seconds: 30\n"
	                "tls:\n"
	                "  cert_file: /etc/a.pem\n"
	                "flags: [a, b]\n"
	                "empty: ~\n"
	                "quoted: \"null\"\n";
	assert_int_equal(cfg_parse(&c, "t.yaml", y, strlen(y)), 0);
	char *listen = NULL;
	uint64_t ttl = 90;
	const json_t *tls = NULL;
	assert_int_equal(cfg_get_str(&c, c.root, "listen", &listen), 0);
	assert_string_equal(listen, "127.0.0.1:8400");
	assert_int_equal(cfg_get_uint(&c, c.root, "lease_ttl_seconds", 1, 600, &ttl), 0);
	assert_true(ttl == 30);
	assert_int_equal(cfg_get_map(&c, c.root, "tls", &tls), 0);
	assert_non_null(tls);
	assert_int_equal(cfg_line(&c, json_object_get(tls, "cert_file")), 4);
	assert_true(json_is_null(json_object_get(c.root, "empty")));
	assert_string_equal(json_string_value(json_object_get(c.root, "quoted")), "null");
	/* out of range: the message names the file and the line */
	assert_int_equal(cfg_get_uint(&c, c.root, "lease_ttl_seconds", 60, 600, &ttl), AL_E_INVAL);
	assert_string_equal(c.err,
	                    "t.yaml:2: lease_ttl_seconds: must be an integer from 60 to 600");
	static const char *const allowed[] = {"listen", "tls", NULL};
	assert_int_equal(cfg_only_keys(&c, c.root, allowed), AL_E_INVAL);
	assert_non_null(strstr(c.err, "unknown key 'lease_ttl_seconds'"));
	free(listen);
	cfg_free(&c);
}

/* Messages name a nested key from the top of the file, through mappings and lists, so
 * tls.cert_file and tunnel.tls.cert_file are told apart. */
static void
test_nested_key_names(void **state)
{
	struct cfg c;
	const char *y = "tls:\n  cert_file: a\ntunnel:\n  tls:\n    cert_file: [x]\n"
	                "routes:\n  - name: a\n  - name: b\n    port: http\n";
	const json_t *tun = NULL, *tls = NULL, *r1;
	char *s = NULL;
	uint64_t v = 0;
	static const char *const only_name[] = {"name", NULL};
	assert_int_equal(cfg_parse(&c, "t.yaml", y, strlen(y)), 0);
	assert_int_equal(cfg_get_map(&c, c.root, "tunnel", &tun), 0);
	assert_int_equal(cfg_get_map(&c, tun, "tls", &tls), 0);
	assert_int_equal(cfg_get_str(&c, tls, "cert_file", &s), AL_E_INVAL);
	assert_string_equal(c.err, "t.yaml:5: tunnel.tls.cert_file: must be a string");
	r1 = json_array_get(json_object_get(c.root, "routes"), 1);
	assert_int_equal(cfg_get_uint(&c, r1, "port", 1, 9, &v), AL_E_INVAL);
	assert_string_equal(c.err, "t.yaml:9: routes[1].port: must be an integer from 1 to 9");
	assert_int_equal(cfg_only_keys(&c, r1, only_name), AL_E_INVAL);
	assert_string_equal(c.err, "t.yaml:9: unknown key 'routes[1].port'");
	free(s);
	cfg_free(&c);
	(void)state;
}

/* Durations in YAML are written as on the command line: 90, 90s, 5m, 1m30s. */
static void
test_seconds(void **state)
{
	struct cfg c;
	const char *y = "a: 90\nb: 90s\nc: 5m\nd: 1m30s\ne: 1500ms\nf: 11m\ng: soon\n";
	uint64_t v = 0;
	assert_int_equal(cfg_parse(&c, "t.yaml", y, strlen(y)), 0);
	static const struct {
		const char *key;
		int ok;
		uint64_t want;
	} cases[] = {{"a", 1, 90}, {"b", 1, 90}, {"c", 1, 300}, {"d", 1, 90},
	             {"e", 0, 0},  {"f", 0, 0},  {"g", 0, 0}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = cfg_get_seconds(&c, c.root, cases[i].key, 1, 600, &v);
		if (cases[i].ok) {
			assert_int_equal(r, 0);
			assert_true(v == cases[i].want);
		} else {
			assert_int_equal(r, AL_E_INVAL);
		}
	}
	assert_string_equal(c.err, "t.yaml:7: g: must be a duration from 1s to 600s (90, 90s, "
	                           "5m, 1h)");
	cfg_free(&c);
}

static void
test_refusals(void **state)
{
	static const struct {
		const char *yaml;
		const char *want;
	} cases[] = {
	    {"a: 1\na: 2\n", "t.yaml:2: duplicate key 'a'"},
	    {"a: &x 1\nb: *x\n", "anchors are not supported"},
	    {"- 1\n- 2\n", "must be one mapping"},
	    {"a: [1, 2\n", "t.yaml:"},
	    {"---\na: 1\n---\nb: 2\n", "only one YAML document"},
	    {"? [a]\n: 1\n", "mapping keys must be plain strings"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cfg c;
		assert_int_equal(cfg_parse(&c, "t.yaml", cases[i].yaml, strlen(cases[i].yaml)),
		                 AL_E_INVAL);
		assert_non_null(strstr(c.err, cases[i].want));
		cfg_free(&c);
	}
	struct cfg c;
	assert_int_equal(cfg_parse(&c, "t.yaml", "", 0), 0);
	assert_true(json_is_object(c.root));
	cfg_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_values_and_lines),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_seconds),
	    cmocka_unit_test(test_nested_key_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
