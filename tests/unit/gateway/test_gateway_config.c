/* Table-driven tests of the gateway's route matching (reference rule: exact host, then
 * tunnel_domain stripped) and the upstream address allow-list (SSRF). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "gateway_config.h"

static const char cfg_text[] = "server: edge:7844\n"
                               "tunnel_domain: AB12.Tunnel.Test\n"
                               "routes:\n"
                               "  echo: http://10.0.0.5:8080\n"
                               "  Docs.Example.Com: https://10.0.0.6:8443\n"
                               "upstream:\n"
                               "  allowed_ips: [10.0.0.0/8, 192.168.1.7, 'fd00::/8']\n"
                               "  tls: {include_system_cas: true}\n";

static void
test_routes(void **state)
{
	struct gateway_config c;
	char err[256];
	assert_int_equal(
	    gateway_config_parse(cfg_text, strlen(cfg_text), "t.yaml", &c, err, sizeof(err)), 0);
	static const struct {
		const char *host;
		const char *want; /* upstream or NULL */
	} cases[] = {
	    {"echo", "http://10.0.0.5:8080"},
	    {"echo.ab12.tunnel.test", "http://10.0.0.5:8080"},
	    {"ECHO.AB12.TUNNEL.TEST:443", "http://10.0.0.5:8080"},
	    {"docs.example.com", "https://10.0.0.6:8443"},
	    {"docs.example.com.ab12.tunnel.test", "https://10.0.0.6:8443"},
	    {"echo.other.tunnel.test", NULL},
	    {"x.echo.ab12.tunnel.test", NULL},
	    {"ab12.tunnel.test", NULL},
	    {".ab12.tunnel.test", NULL},
	    {"", NULL},
	    {"echo.ab12.tunnel.test.", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct gateway_route *r = gateway_config_route(&c, cases[i].host);
		if (cases[i].want == NULL)
			assert_null(r);
		else {
			assert_non_null(r);
			assert_string_equal(r->upstream, cases[i].want);
		}
	}
	gateway_config_free(&c);
}

static bool
allowed(const struct gateway_config *c, const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	}
	return gateway_config_ip_allowed(c, (struct sockaddr *)&ss);
}

static void
test_allow_list(void **state)
{
	struct gateway_config c;
	char err[256];
	assert_int_equal(
	    gateway_config_parse(cfg_text, strlen(cfg_text), "t.yaml", &c, err, sizeof(err)), 0);
	assert_true(allowed(&c, "10.0.0.1"));
	assert_true(allowed(&c, "10.255.255.255"));
	assert_false(allowed(&c, "11.0.0.1"));
	assert_true(allowed(&c, "192.168.1.7"));
	assert_false(allowed(&c, "192.168.1.8"));
	assert_true(allowed(&c, "::ffff:10.1.2.3")); /* mapped v4 judged as v4 */
	assert_false(allowed(&c, "::ffff:8.8.8.8"));
	assert_true(allowed(&c, "fd12::1"));
	assert_false(allowed(&c, "fe80::1"));
	assert_false(allowed(&c, "127.0.0.1"));
	gateway_config_free(&c);

	/* Defaults: RFC 1918 and ULA, nothing else (not loopback, not link-local). */
	static const char d[] = "server: e:1\nroutes: {a: 'http://10.0.0.1:1'}\n";
	assert_int_equal(gateway_config_parse(d, strlen(d), "d.yaml", &c, err, sizeof(err)), 0);
	static const char *const yes[] = {"10.1.1.1",    "172.16.0.1", "172.31.255.255",
	                                  "192.168.0.1", "fc00::1",    "fdff::1"};
	static const char *const no[] = {"172.32.0.1",      "172.15.255.255", "127.0.0.1",
	                                 "169.254.169.254", "8.8.8.8",        "::1",
	                                 "fe80::1",         "100.64.0.1",     "0.0.0.0"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(allowed(&c, yes[i]));
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(allowed(&c, no[i]));
	gateway_config_free(&c);
}

static void
test_cidr(void **state)
{
	struct gateway_cidr x;
	assert_int_equal(gateway_cidr_parse("10.0.0.0/8", &x), 0);
	assert_int_equal(x.bits, 8);
	assert_int_equal(gateway_cidr_parse("1.2.3.4", &x), 0);
	assert_int_equal(x.bits, 32);
	assert_int_equal(gateway_cidr_parse("::/0", &x), 0);
	assert_int_equal(x.bits, 0);
	assert_int_not_equal(gateway_cidr_parse("10.0.0.0/33", &x), 0);
	assert_int_not_equal(gateway_cidr_parse("10.0.0.0/", &x), 0);
	assert_int_not_equal(gateway_cidr_parse("10.0.0/8", &x), 0);
	assert_int_not_equal(gateway_cidr_parse("/8", &x), 0);
	assert_int_not_equal(gateway_cidr_parse("fd00::/129", &x), 0);
	assert_int_not_equal(gateway_cidr_parse("10.0.0.0/+8", &x), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_allow_list),
	    cmocka_unit_test(test_cidr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
