/* The memory sync's three-way decision (src/worker/memsync.c) as a table: every
 * combination of local, baseline and remote content (absent, the baseline's, another),
 * with what the SDK worker's rules want for it; and the store directory names taken from
 * mount paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "memsync.h"

#define A "aaaa"
#define B "bbbb"
#define C "cccc"

static void
test_decide_table(void **st)
{
	static const struct {
		const char *l, *b, *r;
		enum memsync_action want;
	} rows[] = {
	    /* nothing anywhere, or all the same */
	    {NULL, NULL, NULL, MEMSYNC_NONE},
	    {A, A, A, MEMSYNC_NONE},
	    /* only here */
	    {A, NULL, NULL, MEMSYNC_CREATE},
	    {B, A, A, MEMSYNC_UPDATE},
	    {NULL, A, A, MEMSYNC_DELETE},
	    /* only in the store */
	    {NULL, NULL, A, MEMSYNC_PULL},
	    {A, A, B, MEMSYNC_PULL},
	    {A, A, NULL, MEMSYNC_REMOVE_LOCAL},
	    /* both, to the same end */
	    {B, A, B, MEMSYNC_ADOPT},
	    {A, NULL, A, MEMSYNC_ADOPT},
	    {NULL, A, NULL, MEMSYNC_NONE},
	    /* both, differently: the store wins */
	    {B, A, C, MEMSYNC_CONFLICT_PULL},
	    {A, NULL, B, MEMSYNC_CONFLICT_PULL},
	    {NULL, A, B, MEMSYNC_CONFLICT_PULL},
	    /* deleted in the store, edited here: the file is the only copy */
	    {B, A, NULL, MEMSYNC_RECREATE},
	};
	(void)st;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		enum memsync_action got = memsync_decide(rows[i].l, rows[i].b, rows[i].r);
		if (got != rows[i].want)
			fail_msg("row %zu (%s, %s, %s): %s, want %s", i,
			         rows[i].l ? rows[i].l : "-", rows[i].b ? rows[i].b : "-",
			         rows[i].r ? rows[i].r : "-", memsync_action_name(got),
			         memsync_action_name(rows[i].want));
	}
}

static void
test_dir_name(void **st)
{
	char out[129];
	(void)st;
	assert_true(memsync_dir_name("/mnt/memory/user-prefs", "memstore_1", out, sizeof(out)));
	assert_string_equal(out, "user-prefs");
	/* unusable last segments fall back to the id */
	assert_true(memsync_dir_name("/mnt/memory/..", "memstore_1", out, sizeof(out)));
	assert_string_equal(out, "memstore_1");
	assert_true(memsync_dir_name("/mnt/memory/", "memstore_1", out, sizeof(out)));
	assert_string_equal(out, "memstore_1");
	assert_true(memsync_dir_name("/mnt/memory/a b", "memstore_1", out, sizeof(out)));
	assert_string_equal(out, "memstore_1");
	assert_true(memsync_dir_name(NULL, "memstore_2", out, sizeof(out)));
	assert_string_equal(out, "memstore_2");
	/* neither usable */
	assert_false(memsync_dir_name("/x/..", "../etc", out, sizeof(out)));
	assert_false(memsync_dir_name(NULL, NULL, out, sizeof(out)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decide_table),
	    cmocka_unit_test(test_dir_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
