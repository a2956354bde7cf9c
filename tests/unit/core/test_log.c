/* Logging: one line per event, text quoting that keeps a hostile value on one line,
 * JSON that parses, and the level filter. stderr is redirected to a pipe. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"

static char out[8192];

/* Runs fn with stderr captured into out. */
static void
capture(void (*fn)(void))
{
	int p[2], saved = dup(STDERR_FILENO);
	assert_int_equal(pipe(p), 0);
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	ssize_t n = read(p[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
}

static void
emit_text(void)
{
	log_setup(LOG_FMT_TEXT, LOG_LVL_INFO, "test");
	log_debug("hidden", "k", "v");
	log_info("work acked", "work_id", "work_1", "peer", "a b\n\"c\"=d");
}

static void
test_text(void **state)
{
	capture(emit_text);
	/* exactly one line: the debug event was filtered, the newline in the value escaped */
	assert_null(strstr(out, "hidden"));
	assert_non_null(strchr(out, '\n'));
	assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
	assert_non_null(strstr(out, "info  test: \"work acked\" work_id=work_1 "));
	assert_non_null(strstr(out, "peer=\"a b\\x0a\\\"c\\\"=d\""));
}

static void
emit_json(void)
{
	log_setup(LOG_FMT_JSON, LOG_LVL_DEBUG, "test");
	log_warn("lease expired", "work_id", "work_2", "requeued", "true");
}

static void
test_json(void **state)
{
	capture(emit_json);
	json_error_t e;
	json_t *o = json_loads(out, 0, &e);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
	assert_string_equal(json_string_value(json_object_get(o, "msg")), "lease expired");
	assert_string_equal(json_string_value(json_object_get(o, "work_id")), "work_2");
	assert_string_equal(json_string_value(json_object_get(o, "component")), "test");
	json_decref(o);
}

static void
test_parse(void **state)
{
	enum log_format f;
	enum log_level l;
	assert_int_equal(log_parse_format("json", &f), 0);
	assert_int_equal(f, LOG_FMT_JSON);
	assert_int_equal(log_parse_format("xml", &f), -1);
	assert_int_equal(log_parse_level("warn", &l), 0);
	assert_int_equal(l, LOG_LVL_WARN);
	assert_int_equal(log_parse_level("loud", &l), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_text),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
