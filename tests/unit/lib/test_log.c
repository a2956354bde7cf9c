/* lib/log: JSON lines carry typed values under typed keys, and never lose a value that does
 * not fit its key's type. Each case captures one log line from stderr and parses it. */
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

#include "log.h"

/* Runs one log_info with key k = v and returns the parsed line (caller decrefs). */
static json_t *
log_line(const char *k, const char *v)
{
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	log_info("event", k, v);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	char line[4096];
	assert_non_null(fgets(line, sizeof(line), tmp));
	fclose(tmp);
	json_error_t e;
	json_t *o = json_loads(line, 0, &e);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "msg")), "event");
	return o;
}

static void
assert_integer_field(const char *k, const char *v, json_int_t want)
{
	json_t *o = log_line(k, v);
	json_t *x = json_object_get(o, k);
	assert_true(json_is_integer(x));
	assert_int_equal(json_integer_value(x), want);
	json_decref(o);
}

static void
assert_string_field(const char *k, const char *v)
{
	json_t *o = log_line(k, v);
	json_t *x = json_object_get(o, k);
	assert_true(json_is_string(x));
	assert_string_equal(json_string_value(x), v);
	json_decref(o);
}

static void
numbers_under_number_keys(void **state)
{
	(void)state;
	assert_integer_field("status", "200", 200);
	assert_integer_field("port", "0", 0);
	assert_integer_field("bytes", "123456789012345", 123456789012345LL);
	assert_integer_field("exit_status", "-1", -1);
	json_t *o = log_line("ms", "12.500");
	assert_true(json_is_real(json_object_get(o, "ms")));
	assert_true(json_real_value(json_object_get(o, "ms")) == 12.5);
	json_decref(o);
}

static void
non_numbers_stay_strings(void **state)
{
	(void)state;
	assert_string_field("status", "-");               /* the client left before an answer */
	assert_string_field("status", "007");             /* leading zero: not as written */
	assert_string_field("port", "1e3");               /* no exponents */
	assert_string_field("bytes", "1234567890123456"); /* past a double's exact range */
	assert_string_field("ms", "1.");
	assert_string_field("ms", ".5");
	assert_string_field("index", "");
	assert_string_field("status", "200 ");
	assert_string_field("session_id", "12345"); /* ids are strings whatever they look like */
	assert_string_field("request_id", "true");
}

static void
booleans_under_boolean_keys(void **state)
{
	(void)state;
	json_t *o = log_line("force", "true");
	assert_true(json_is_true(json_object_get(o, "force")));
	json_decref(o);
	o = log_line("requeued", "false");
	assert_true(json_is_false(json_object_get(o, "requeued")));
	json_decref(o);
	assert_string_field("spare", "yes");
	assert_string_field("force", "TRUE");
}

static void
text_format_unchanged(void **state)
{
	(void)state;
	log_setup(LOG_FMT_TEXT, LOG_LVL_INFO, "test");
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	int saved = dup(STDERR_FILENO);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	log_info("event", "status", "200", "force", "true");
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	char line[4096];
	assert_non_null(fgets(line, sizeof(line), tmp));
	fclose(tmp);
	assert_non_null(strstr(line, "test: event status=200 force=true"));
	log_setup(LOG_FMT_JSON, LOG_LVL_INFO, "test");
}

int
main(void)
{
	log_setup(LOG_FMT_JSON, LOG_LVL_INFO, "test");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(numbers_under_number_keys),
	    cmocka_unit_test(non_numbers_stay_strings),
	    cmocka_unit_test(booleans_under_boolean_keys),
	    cmocka_unit_test(text_format_unchanged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
