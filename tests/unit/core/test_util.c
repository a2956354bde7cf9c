/* Timestamps, ids, tokens, base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "err.h"
#include "util.h"

static void
test_rfc3339_roundtrip(void **state)
{
	char out[32];
	int64_t v;
	time_fmt_rfc3339(1795737600123456LL, out);
	assert_string_equal(out, "2026-11-27T00:00:00.123456Z");
	assert_int_equal(time_parse_rfc3339(out, &v), 0);
	assert_true(v == 1795737600123456LL);
	assert_int_equal(time_parse_rfc3339("2026-11-27T02:00:00+02:00", &v), 0);
	assert_true(v == 1795737600000000LL);
	assert_int_equal(time_parse_rfc3339("2026-11-27T00:00:00.5Z", &v), 0);
	assert_true(v == 1795737600500000LL);
	/* the arithmetic for years 1000..9999 against gmtime_r + strftime, around every edge:
	 * the epoch, leap days, century years, the range's ends, negative times */
	static const int64_t edges[] = {0,
	                                -1,
	                                951782400LL,
	                                951868799LL,
	                                4107542400LL,
	                                4107628800LL,
	                                -2208988800LL,
	                                -2203891200LL,
	                                -30610224000LL,
	                                -30610224001LL,
	                                253402300799LL,
	                                253402300800LL,
	                                68169600LL,
	                                1795737600LL};
	uint64_t x = 88172645463325252ULL;
	for (int i = 0; i < 200000; i++) {
		int64_t sec;
		if (i < (int)(sizeof(edges) / sizeof(edges[0])) * 3)
			sec = edges[i / 3] + (i % 3) - 1;
		else {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift */
			sec = (int64_t)(x % 300000000000ULL) - 40000000000LL;
		}
		int64_t us = sec * 1000000 + (int64_t)(x % 1000000);
		char want[64];
		time_t t = (time_t)(us / 1000000 - (us % 1000000 < 0));
		long u = (long)(((us % 1000000) + 1000000) % 1000000);
		struct tm tm;
		gmtime_r(&t, &tm);
		size_t n = strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(want + n, sizeof want - n, ".%06ldZ", u);
		time_fmt_rfc3339(us, out);
		if (strcmp(out, want) != 0)
			fail_msg("%lld: %s, want %s", (long long)us, out, want);
	}
	static const char *bad[] = {"",
	                            "2026-11-27",
	                            "2026-13-01T00:00:00Z",
	                            "2026-11-27T00:00:00",
	                            "2026-11-27T00:00:00Zjunk",
	                            "2026-11-27T25:00:00Z",
	                            "2026-11-27T00:00:00.Z"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(time_parse_rfc3339(bad[i], &v), AL_E_INVAL);
}

static void
test_ids(void **state)
{
	char *a = id_new("agent_"), *b = id_new("agent_");
	assert_int_equal(strlen(a), 6 + 24);
	assert_string_not_equal(a, b);
	assert_int_equal(id_valid(a, "agent_"), 0);
	assert_int_equal(id_valid(a, "env_"), AL_E_INVAL);
	assert_int_equal(id_valid("agent_", "agent_"), AL_E_INVAL);
	assert_int_equal(id_valid("agent_../x", "agent_"), AL_E_INVAL);
	free(a);
	free(b);
}

static void
test_base64(void **state)
{
	static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		char *e = base64url_encode(in[i], strlen(in[i]));
		unsigned char *d = NULL;
		size_t dl = 0;
		assert_int_equal(base64_decode_any(e, strlen(e), &d, &dl), 0);
		assert_int_equal(dl, strlen(in[i]));
		assert_memory_equal(d, in[i], dl);
		free(e);
		free(d);
	}
	unsigned char *d = NULL;
	size_t dl;
	/* standard alphabet with padding decodes too; junk does not */
	assert_int_equal(base64_decode_any("Zm9vYg==", 8, &d, &dl), 0);
	assert_memory_equal(d, "foob", 4);
	free(d);
	assert_int_equal(base64_decode_any("Zm9v!", 5, &d, &dl), AL_E_INVAL);
	assert_int_equal(base64_decode_any("Z", 1, &d, &dl), AL_E_INVAL);
}

static void
test_tokens_and_hash(void **state)
{
	char *t = token_new("alk_req_");
	char h[65];
	assert_int_equal(strncmp(t, "alk_req_", 8), 0);
	assert_int_equal(strlen(t), 8 + 43);
	sha256_hex("abc", 3, h);
	assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc3339_roundtrip),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_tokens_and_hash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
