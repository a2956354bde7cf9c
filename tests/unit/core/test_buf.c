/* struct buf bounds, parse_uint and parse_duration_ms edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"

static void
test_add_within_max(void **state)
{
	struct buf b;
	buf_init(&b, 8);
	assert_int_equal(buf_add(&b, "abcd", 4), 0);
	assert_int_equal(buf_add(&b, "efgh", 4), 0);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "abcdefgh");
	/* one past the cap fails and appends nothing */
	assert_int_equal(buf_add(&b, "x", 1), AL_E_TOOBIG);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "abcdefgh");
	buf_free(&b);
}

static void
test_addf_and_consume(void **state)
{
	struct buf b;
	buf_init(&b, 1024);
	assert_int_equal(buf_addf(&b, "%s-%d", "x", 42), 0);
	assert_string_equal(b.data, "x-42");
	buf_consume(&b, 2);
	assert_string_equal(b.data, "42");
	buf_consume(&b, 10);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_addf(&b, "%1100d", 1), AL_E_TOOBIG);
	assert_int_equal(b.len, 0);
	char *s = buf_steal(&b);
	assert_string_equal(s, "");
	free(s);
}

static void
test_parse_uint(void **state)
{
	uint64_t v;
	static const struct {
		const char *in;
		uint64_t max;
		int ok;
		uint64_t want;
	} cases[] = {
	    {"0", 10, 1, 0},
	    {"10", 10, 1, 10},
	    {"11", 10, 0, 0},
	    {"", 10, 0, 0},
	    {"-1", 10, 0, 0},
	    {"+1", 10, 0, 0},
	    {" 1", 10, 0, 0},
	    {"1a", 10, 0, 0},
	    {"18446744073709551615", UINT64_MAX, 1, UINT64_MAX},
	    {"18446744073709551616", UINT64_MAX, 0, 0},
	    {"999", 999, 1, 999},
	    {"5", 3, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse_uint_cstr(cases[i].in, cases[i].max, &v);
		if (cases[i].ok) {
			assert_int_equal(r, 0);
			assert_true(v == cases[i].want);
		} else {
			assert_int_equal(r, AL_E_INVAL);
		}
	}
}

/* The one duration syntax (docs/cli.md): bare seconds or Go-style units, bounded. */
static void
test_parse_duration(void **state)
{
	uint64_t v;
	static const struct {
		const char *in;
		uint64_t max_ms;
		int ok;
		uint64_t want_ms;
	} cases[] = {
	    {"90", 600000, 1, 90000},
	    {"0", 600000, 1, 0},
	    {"90s", 600000, 1, 90000},
	    {"1500ms", 600000, 1, 1500},
	    {"5m", 600000, 1, 300000},
	    {"1m30s", 600000, 1, 90000},
	    {"1h", 3600000, 1, 3600000},
	    {"2h", 3600000, 0, 0},
	    {"601", 600000, 0, 0},
	    {"601s", 600000, 0, 0},
	    {"", 600000, 0, 0},
	    {"s", 600000, 0, 0},
	    {"10x", 600000, 0, 0},
	    {"-5s", 600000, 0, 0},
	    {"5 s", 600000, 0, 0},
	    {"1.5s", 600000, 0, 0},
	    {"99999999999999999999h", UINT64_MAX, 0, 0},
	    {"3000000000000000h", UINT64_MAX, 0, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = parse_duration_ms(cases[i].in, cases[i].max_ms, &v);
		if (cases[i].ok) {
			assert_int_equal(r, 0);
			assert_true(v == cases[i].want_ms);
		} else {
			assert_int_equal(r, AL_E_INVAL);
		}
	}
}

static void
test_str(void **state)
{
	struct str s = str_from("hello");
	assert_true(str_eq(s, "hello"));
	assert_false(str_eq(s, "hell"));
	assert_true(str_has_prefix(s, "he"));
	assert_false(str_has_prefix(s, "hello!"));
	char *d = str_dup((struct str){"abc", 2});
	assert_string_equal(d, "ab");
	free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_add_within_max),
	    cmocka_unit_test(test_addf_and_consume),
	    cmocka_unit_test(test_parse_uint),
	    cmocka_unit_test(test_parse_duration),
	    cmocka_unit_test(test_str),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
