/* Query-string parsing: bracket keys, escapes, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "http.h"

static void
test_brackets_and_repeats(void **state)
{
	struct query q;
	assert_int_equal(query_parse("types%5B%5D=a&types[]=b&limit=5&x", &q), 0);
	assert_int_equal(q.n, 4);
	assert_string_equal(q.params[0].key, "types[]");
	assert_string_equal(q.params[0].value, "a");
	assert_string_equal(q.params[1].key, "types[]");
	assert_string_equal(q.params[1].value, "b");
	assert_string_equal(query_get(&q, "limit"), "5");
	assert_string_equal(query_get(&q, "x"), "");
	assert_null(query_get(&q, "nope"));
	query_free(&q);
}

static void
test_escapes(void **state)
{
	struct query q;
	assert_int_equal(query_parse("a=b+c%20d&created_at%5Bgte%5D=2026-01-01T00%3A00%3A00Z", &q),
	                 0);
	assert_string_equal(query_get(&q, "a"), "b c d");
	assert_string_equal(query_get(&q, "created_at[gte]"), "2026-01-01T00:00:00Z");
	query_free(&q);
	/* bad escapes and NUL are refused, not truncated */
	assert_int_equal(query_parse("a=%zz", &q), AL_E_INVAL);
	assert_int_equal(query_parse("a=%4", &q), AL_E_INVAL);
	assert_int_equal(query_parse("a=%00", &q), AL_E_INVAL);
}

static void
test_param_cap(void **state)
{
	struct query q;
	char big[300 * 4 + 1];
	size_t n = 0;
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "a=1&");
	assert_int_equal(query_parse(big, &q), AL_E_INVAL);
	assert_int_equal(query_parse("", &q), 0);
	assert_int_equal(q.n, 0);
	query_free(&q);
}

static void
test_url_decode_path(void **state)
{
	char *out = NULL;
	assert_int_equal(url_decode("/v1/a+b%2F", 10, false, &out), 0);
	assert_string_equal(out, "/v1/a+b/");
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_brackets_and_repeats),
	    cmocka_unit_test(test_escapes),
	    cmocka_unit_test(test_param_cap),
	    cmocka_unit_test(test_url_decode_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
