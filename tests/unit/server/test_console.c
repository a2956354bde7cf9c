/* The web console's request checks (src/server/console/console.c): the Cookie header
 * parser, which requests count as the console's, that a cookie naming no session is
 * refused before anything else is looked at, and the session rows
 * (store/console_session_store.c): one last-seen write a minute, expired and idle rows
 * swept, the table bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "console.h"
#include "console_session_store.h"
#include "db.h"
#include "err.h"
#include "server.h"
#include "testdb.h"

static void
cookie_parse(void **state)
{
	(void)state;
	static const struct {
		const char *header;
		int want;
		const char *value;
	} cases[] = {
	    {"airlock_console=abc", 0, "abc"},
	    {"a=1; airlock_console=abc; b=2", 0, "abc"},
	    {"a=1;airlock_console=abc", 0, "abc"},
	    {"  airlock_console=abc  ", 0, "abc"},
	    {"airlock_console=", 0, ""},
	    {"xairlock_console=abc", AL_E_NOTFOUND, NULL},
	    {"airlock_consolex=abc", AL_E_NOTFOUND, NULL},
	    {"airlock_console", AL_E_NOTFOUND, NULL},
	    {"", AL_E_NOTFOUND, NULL},
	    {";;;", AL_E_NOTFOUND, NULL},
	    {NULL, AL_E_NOTFOUND, NULL},
	    /* the first wins, as browsers send the most specific path first */
	    {"airlock_console=one; airlock_console=two", 0, "one"},
	    {"airlock_console=0123456789abcdef", AL_E_TOOBIG, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[16] = "untouched";
		int r = console_cookie_get(cases[i].header, CONSOLE_COOKIE, out, sizeof out);
		if (r != cases[i].want)
			fail_msg("case %zu (%s): got %d, want %d", i,
			         cases[i].header ? cases[i].header : "NULL", r, cases[i].want);
		if (cases[i].value)
			assert_string_equal(out, cases[i].value);
	}
}

static struct http_request
request(struct http_header *h, size_t n)
{
	struct http_request req;
	memset(&req, 0, sizeof req);
	req.headers = h;
	req.nheaders = n;
	return req;
}

static void
which_requests(void **state)
{
	(void)state;
	struct http_header cookie = {"cookie", "a=1; airlock_console=abc"};
	struct http_header other = {"cookie", "a=1"};
	struct http_header key = {"x-api-key", "k"};
	struct http_header bearer = {"authorization", "Bearer t"};
	struct http_header h1[] = {cookie};
	struct http_header h2[] = {cookie, key};
	struct http_header h3[] = {bearer, cookie};
	struct http_header h4[] = {other};
	struct http_request r;
	r = request(h1, 1);
	assert_true(console_request(&r));
	/* an API credential is what the API checks; the cookie is then ignored */
	r = request(h2, 2);
	assert_false(console_request(&r));
	r = request(h3, 2);
	assert_false(console_request(&r));
	r = request(h4, 1);
	assert_false(console_request(&r));
	r = request(NULL, 0);
	assert_false(console_request(&r));
}

static void
unknown_session(void **state)
{
	(void)state;
	char dir[] = "/tmp/airlock-console-XXXXXX";
	struct server srv;
	memset(&srv, 0, sizeof srv);
	srv.db = testdb_open(dir);
	struct http_header h[] = {{"cookie", "airlock_console=forged"}, {CONSOLE_HEADER, "forged"}};
	struct http_request r = request(h, 2);
	struct principal who;
	char why[128];
	assert_int_equal(console_auth(&srv, &r, &who, why, sizeof why), AL_E_AUTH);
	assert_int_equal(who.kind, PRINCIPAL_NONE);
	assert_string_equal(who.cred, "console session");
	assert_non_null(strstr(why, "no such console session"));
	console_free(&srv);
	testdb_close(srv.db, dir);
}

static void
add(struct db *db, const char *hash, int64_t created, int64_t seen, int64_t expires)
{
	struct console_session_row row = {0};
	snprintf(row.kind, sizeof row.kind, "%s", CONSOLE_SESSION_KEY);
	snprintf(row.csrf, sizeof row.csrf, "csrf-%s", hash);
	snprintf(row.key_id, sizeof row.key_id, "apikey_%s", hash);
	snprintf(row.key_hash, sizeof row.key_hash, "%064d", 7);
	row.created_at = created;
	row.last_seen_at = seen;
	row.expires_at = expires;
	assert_int_equal(console_session_store_insert(db, hash, &row), 0);
}

static int64_t
seen(struct db *db, const char *hash)
{
	struct console_session_row row;
	int r = console_session_store_find(db, hash, &row);
	int64_t v = r == 0 ? row.last_seen_at : -r;
	console_session_row_reset(&row);
	return v;
}

static void
session_rows(void **state)
{
	(void)state;
	char dir[] = "/tmp/airlock-console-XXXXXX";
	struct db *db = testdb_open(dir);
	const int64_t min = 60LL * 1000000, t = 1000 * min;
	struct console_session_row row;

	add(db, "a", t, t, t + 100 * min);
	assert_int_equal(console_session_store_find(db, "a", &row), 0);
	assert_string_equal(row.csrf, "csrf-a");
	assert_string_equal(row.kind, CONSOLE_SESSION_KEY);
	assert_null(row.user);
	assert_int_equal(row.expires_at, t + 100 * min);
	console_session_row_reset(&row);
	assert_int_equal(console_session_store_find(db, "b", &row), AL_E_NOTFOUND);
	/* a duplicate hash is refused, never overwrites */
	struct console_session_row dup = {.kind = "key", .csrf = "x", .key_id = "y"};
	assert_int_equal(console_session_store_insert(db, "a", &dup), AL_E_IO);

	/* last seen: not written again within the minute, written after it */
	assert_int_equal(console_session_store_touch(db, "a", t + min / 2, min), 0);
	assert_int_equal(seen(db, "a"), t);
	assert_int_equal(console_session_store_touch(db, "a", t + min, min), 0);
	assert_int_equal(seen(db, "a"), t + min);

	/* sweep: past expires_at, and idle since before the bound, go; the rest stay */
	add(db, "expired", t, t + 5 * min, t + 5 * min);
	add(db, "idle", t, t, t + 100 * min);
	add(db, "live", t, t + 4 * min, t + 100 * min);
	assert_int_equal(console_session_store_sweep(db, t + 5 * min, t + min, 100), 0);
	assert_int_equal(seen(db, "expired"), -AL_E_NOTFOUND);
	assert_int_equal(seen(db, "idle"), -AL_E_NOTFOUND);
	assert_int_equal(seen(db, "a"), t + min);
	assert_int_equal(seen(db, "live"), t + 4 * min);

	/* bounded: past max_rows the least recently seen go */
	add(db, "newer", t, t + 6 * min, t + 100 * min);
	assert_int_equal(console_session_store_sweep(db, t + 6 * min, t, 2), 0);
	assert_int_equal(seen(db, "a"), -AL_E_NOTFOUND);
	assert_int_equal(seen(db, "live"), t + 4 * min);
	assert_int_equal(seen(db, "newer"), t + 6 * min);

	/* sign-out */
	assert_int_equal(console_session_store_delete(db, "live"), 0);
	assert_int_equal(seen(db, "live"), -AL_E_NOTFOUND);
	assert_int_equal(console_session_store_delete(db, "live"), 0);
	testdb_close(db, dir);
}

static void
sign_on_rows(void **state)
{
	(void)state;
	char dir[] = "/tmp/airlock-console-XXXXXX";
	struct db *db = testdb_open(dir);
	char v[64];
	const int64_t t = 1000000000;

	assert_int_equal(console_session_store_sign_on_add(db, "s1", "verifier-1", t, t + 10, 3),
	                 0);
	assert_int_equal(console_session_store_sign_on_take(db, "s1", t + 5, v, sizeof v), 0);
	assert_string_equal(v, "verifier-1");
	/* good once */
	assert_int_equal(console_session_store_sign_on_take(db, "s1", t + 5, v, sizeof v),
	                 AL_E_NOTFOUND);
	assert_string_equal(v, "");
	/* expired: refused, and gone */
	assert_int_equal(console_session_store_sign_on_add(db, "s2", "verifier-2", t, t + 10, 3),
	                 0);
	assert_int_equal(console_session_store_sign_on_take(db, "s2", t + 10, v, sizeof v),
	                 AL_E_NOTFOUND);
	assert_string_equal(v, "");
	/* an add sweeps the expired, then past max_rows the oldest give way */
	assert_int_equal(console_session_store_sign_on_add(db, "a", "va", t + 1, t + 100, 3), 0);
	assert_int_equal(console_session_store_sign_on_add(db, "b", "vb", t + 2, t + 100, 3), 0);
	assert_int_equal(console_session_store_sign_on_add(db, "c", "vc", t + 3, t + 100, 3), 0);
	assert_int_equal(console_session_store_sign_on_add(db, "d", "vd", t + 4, t + 100, 3), 0);
	assert_int_equal(console_session_store_sign_on_take(db, "a", t + 5, v, sizeof v),
	                 AL_E_NOTFOUND);
	assert_int_equal(console_session_store_sign_on_take(db, "b", t + 5, v, sizeof v), 0);
	assert_string_equal(v, "vb");
	assert_int_equal(console_session_store_sign_on_take(db, "d", t + 5, v, sizeof v), 0);
	assert_string_equal(v, "vd");
	testdb_close(db, dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(cookie_parse),    cmocka_unit_test(which_requests),
	    cmocka_unit_test(unknown_session), cmocka_unit_test(session_rows),
	    cmocka_unit_test(sign_on_rows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
