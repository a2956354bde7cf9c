/* src/server/identity/oidc.c: who a verified token names. Groups from the configured claim
 * and `roles`, sorted and unique; Entra ID's overage pointer and tokens without groups go
 * to the mapping file; bounds and malformed claims are refused; the configuration is
 * checked before anything is fetched. Token verification itself is lib/jose's
 * (unit-lib-jose) and the whole path runs against a real IdP in interop-identity. */
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
#include "loop.h"
#include "oidc.h"

static char groups_path[64];

static struct oidc *
make(struct loop *l, const char *claim, const char *file)
{
	struct oidc_config c = {.issuer = "https://idp.example.test",
	                        .audience = "airlock",
	                        .groups_claim = claim,
	                        .groups_file = file};
	struct oidc *o = NULL;
	char err[300];
	assert_int_equal(oidc_new(l, &c, &o, err, sizeof err), 0);
	return o;
}

static int
user_of(struct oidc *o, const char *json, struct oidc_user *u)
{
	json_t *p = json_loads(json, 0, NULL);
	assert_non_null(p);
	char err[300];
	int r = oidc_user_from_claims(o, p, u, err, sizeof err);
	json_decref(p);
	return r;
}

static void
test_groups_and_roles(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct oidc *o = make(l, NULL, NULL);
	struct oidc_user u;
	assert_int_equal(
	    user_of(o,
	            "{\"sub\":\"alice\",\"iss\":\"https://idp.example.test\","
	            "\"email\":\"alice@bank.test\",\"exp\":10,"
	            "\"groups\":[\"staff\",\"auditors\",\"staff\"],\"roles\":[\"Reader\"]}",
	            &u),
	    0);
	assert_string_equal(u.sub, "alice");
	assert_string_equal(u.email, "alice@bank.test");
	assert_int_equal(u.exp, 10);
	assert_int_equal(u.ngroups, 3);
	assert_string_equal(u.groups[0], "Reader");
	assert_string_equal(u.groups[1], "auditors");
	assert_string_equal(u.groups[2], "staff");
	assert_false(u.groups_from_file);
	oidc_user_reset(&u);
	/* one group as a plain string */
	assert_int_equal(user_of(o, "{\"sub\":\"a\",\"iss\":\"i\",\"groups\":\"solo\"}", &u), 0);
	assert_int_equal(u.ngroups, 1);
	oidc_user_reset(&u);
	/* refused: no sub, sub not a string, a non-string group, an empty group name */
	assert_int_equal(user_of(o, "{\"iss\":\"i\"}", &u), AL_E_AUTH);
	assert_int_equal(user_of(o, "{\"sub\":7,\"iss\":\"i\"}", &u), AL_E_AUTH);
	assert_int_equal(user_of(o, "{\"sub\":\"a\",\"iss\":\"i\",\"groups\":[1]}", &u), AL_E_AUTH);
	assert_int_equal(user_of(o, "{\"sub\":\"a\",\"iss\":\"i\",\"groups\":[\"\"]}", &u),
	                 AL_E_AUTH);
	assert_int_equal(user_of(o, "{\"sub\":\"a\",\"iss\":\"i\",\"groups\":{}}", &u), AL_E_AUTH);
	assert_null(u.groups);
	oidc_free(o);
	loop_free(l);
}

static void
test_group_bound(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct oidc *o = make(l, NULL, NULL);
	json_t *g = json_array();
	for (int i = 0; i <= OIDC_MAX_GROUPS; i++) {
		char name[16];
		snprintf(name, sizeof name, "g%d", i);
		json_array_append_new(g, json_string(name));
	}
	json_t *p = json_pack("{s:s, s:s, s:O}", "sub", "a", "iss", "i", "groups", g);
	struct oidc_user u;
	char err[300];
	assert_int_equal(oidc_user_from_claims(o, p, &u, err, sizeof err), AL_E_TOOBIG);
	assert_non_null(strstr(err, "more than 1000 groups"));
	/* exactly the bound is fine */
	json_array_remove(g, 0);
	json_object_set(p, "groups", g);
	assert_int_equal(oidc_user_from_claims(o, p, &u, err, sizeof err), 0);
	assert_int_equal(u.ngroups, OIDC_MAX_GROUPS);
	oidc_user_reset(&u);
	json_decref(p);
	json_decref(g);
	oidc_free(o);
	loop_free(l);
}

static void
test_overage_and_mapping_file(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct oidc *o = make(l, "groups", groups_path);
	struct oidc_user u;
	/* Entra ID overage: no groups, a pointer to Graph instead → the file, by sub */
	assert_int_equal(
	    user_of(o,
	            "{\"sub\":\"00u-carol\",\"iss\":\"i\",\"_claim_names\":{\"groups\":\"src1\"},"
	            "\"_claim_sources\":{\"src1\":{\"endpoint\":\"https://graph\"}}}",
	            &u),
	    0);
	assert_true(u.groups_from_file);
	assert_int_equal(u.ngroups, 2);
	assert_string_equal(u.groups[0], "auditors");
	oidc_user_reset(&u);
	/* Google Workspace: no groups claim at all → the file, by email */
	assert_int_equal(user_of(o,
	                         "{\"sub\":\"1234\",\"iss\":\"i\",\"email\":\"dave@bank.test\","
	                         "\"email_verified\":true}",
	                         &u),
	                 0);
	assert_true(u.groups_from_file);
	assert_int_equal(u.ngroups, 1);
	assert_string_equal(u.groups[0], "engineers");
	oidc_user_reset(&u);
	/* the same address unverified names nobody: anyone can type it at some IdPs */
	assert_int_equal(
	    user_of(o, "{\"sub\":\"5678\",\"iss\":\"i\",\"email\":\"dave@bank.test\"}", &u), 0);
	assert_false(u.groups_from_file);
	assert_false(u.email_verified);
	assert_int_equal(u.ngroups, 0);
	oidc_user_reset(&u);
	/* listed nowhere: signed in with no groups (and a log line, not silence) */
	assert_int_equal(user_of(o, "{\"sub\":\"nobody\",\"iss\":\"i\"}", &u), 0);
	assert_int_equal(u.ngroups, 0);
	assert_false(u.groups_from_file);
	oidc_user_reset(&u);
	/* a token that has the claim is not overridden by the file */
	assert_int_equal(user_of(o, "{\"sub\":\"00u-carol\",\"iss\":\"i\",\"groups\":[\"x\"]}", &u),
	                 0);
	assert_int_equal(u.ngroups, 1);
	assert_string_equal(u.groups[0], "x");
	oidc_user_reset(&u);
	oidc_free(o);
	/* roles as the groups claim (Entra app roles) */
	o = make(l, "roles", NULL);
	assert_int_equal(user_of(o, "{\"sub\":\"a\",\"iss\":\"i\",\"roles\":[\"Admin\"]}", &u), 0);
	assert_int_equal(u.ngroups, 1);
	oidc_user_reset(&u);
	oidc_free(o);
	loop_free(l);
}

static void
test_config_refused(void **state)
{
	(void)state;
	struct loop *l = loop_new();
	struct oidc *o = NULL;
	char err[300];
	struct {
		const char *issuer, *audience, *file, *want;
	} cases[] = {
	    {NULL, "a", NULL, "issuer"},
	    {"http://idp.example.com", "a", NULL, "https://"},
	    {"http://10.0.0.1:8080", "a", NULL, "https://"},
	    {"ftp://idp", "a", NULL, "https://"},
	    {"https://", "a", NULL, "https://"},
	    {"https://idp", NULL, NULL, "audience"},
	    {"https://idp", "", NULL, "audience"},
	    {"https://idp", "a", "/nonexistent/groups.yaml", "groups.yaml"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct oidc_config c = {.issuer = cases[i].issuer,
		                        .audience = cases[i].audience,
		                        .groups_file = cases[i].file};
		err[0] = '\0';
		assert_int_not_equal(oidc_new(l, &c, &o, err, sizeof err), 0);
		assert_non_null(strstr(err, cases[i].want));
	}
	/* loopback http is accepted (tests) */
	const char *ok[] = {"http://127.0.0.1:9", "http://localhost:9/", "http://[::1]:9"};
	for (size_t i = 0; i < 3; i++) {
		struct oidc_config c = {.issuer = ok[i], .audience = "a"};
		assert_int_equal(oidc_new(l, &c, &o, err, sizeof err), 0);
		assert_false(oidc_ready(o));
		oidc_free(o);
	}
	/* a mapping file with a bad entry: refused with its line */
	char bad[] = "/tmp/test_oidc_bad.XXXXXX";
	int fd = mkstemp(bad);
	const char text[] = "users:\n  alice: [a]\n  bob: not-a-list\n";
	assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
	close(fd);
	struct oidc_config c = {.issuer = "https://idp", .audience = "a", .groups_file = bad};
	assert_int_equal(oidc_new(l, &c, &o, err, sizeof err), AL_E_INVAL);
	assert_non_null(strstr(err, ":3: users.bob"));
	unlink(bad);
	loop_free(l);
}

static void
test_looks_like_jwt(void **state)
{
	(void)state;
	assert_true(oidc_looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.e30.c2ln"));
	assert_false(oidc_looks_like_jwt("alk_srv_abcdef"));
	assert_false(oidc_looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.e30"));
	assert_false(oidc_looks_like_jwt(""));
	assert_false(oidc_looks_like_jwt(NULL));
}

int
main(void)
{
	snprintf(groups_path, sizeof groups_path, "/tmp/test_oidc_groups.XXXXXX");
	int fd = mkstemp(groups_path);
	const char text[] = "# who is in which group when the token does not say\n"
	                    "users:\n"
	                    "  00u-carol: [staff, auditors]\n"
	                    "  dave@bank.test: [engineers]\n";
	if (fd < 0 || write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1))
		return 1;
	close(fd);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_groups_and_roles),         cmocka_unit_test(test_group_bound),
	    cmocka_unit_test(test_overage_and_mapping_file), cmocka_unit_test(test_config_refused),
	    cmocka_unit_test(test_looks_like_jwt),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(groups_path);
	return r;
}
