/* buf_init_secret: no block that held the secret is handed back to malloc unwiped.
 * Linked with -Wl,--wrap=free,--wrap=realloc (tests/unit/core/meson.build): every
 * free() and realloc() made by lib code in this binary is seen here, and a block that
 * still holds the marker when it is released counts as a leak. The plain-buf cases
 * show the detector sees the leak it is meant to catch. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "buf.h"
#include "xalloc.h"

static const char MARK[] = "sk-test-7f3a9c1e5b2d4860";

void __real_free(void *p);
void *__real_realloc(void *p, size_t n);
void __wrap_free(void *p);
void *__wrap_realloc(void *p, size_t n);

static int leaked_free, leaked_realloc;

static bool
holds_mark(void *p)
{
	/* from its 5th byte: a reused buffer (jansson's lexer) overwrites the first few */
	return p && memmem(p, malloc_usable_size(p), MARK + 4, sizeof(MARK) - 5) != NULL;
}

void
__wrap_free(void *p)
{
	if (holds_mark(p))
		leaked_free++;
	__real_free(p);
}

/* a realloc of a block with the marker may move it and free the old block as it is */
void *
__wrap_realloc(void *p, size_t n)
{
	if (holds_mark(p))
		leaked_realloc++;
	return __real_realloc(p, n);
}

static int
reset_counts(void **state)
{
	leaked_free = leaked_realloc = 0;
	return 0;
}

/* the marker first, then growth from 64 bytes to 1 MiB (many moves) */
static void
fill(struct buf *b)
{
	char chunk[4096];
	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(buf_add(b, MARK, sizeof(MARK) - 1), 0);
	for (int i = 0; i < 256; i++)
		assert_int_equal(buf_add(b, chunk, sizeof(chunk)), 0);
}

static void
test_plain_buf_leaks(void **state)
{
	struct buf b;
	buf_init(&b, 2u << 20);
	fill(&b);
	assert_true(leaked_realloc > 0);
	buf_free(&b);
	assert_int_equal(leaked_free, 1);
}

static void
test_secret_grow_and_free(void **state)
{
	struct buf b;
	buf_init_secret(&b, 2u << 20);
	fill(&b);
	assert_int_equal(b.len, sizeof(MARK) - 1 + 256 * 4096);
	assert_memory_equal(b.data, MARK, sizeof(MARK) - 1);
	assert_int_equal(leaked_realloc, 0);
	buf_free(&b);
	assert_int_equal(leaked_free, 0);
	assert_int_equal(leaked_realloc, 0);
}

static void
test_secret_reserve_commit(void **state)
{
	struct buf b;
	char *wp;
	buf_init_secret(&b, 1u << 20);
	assert_int_equal(buf_add_str(&b, MARK), 0);
	assert_int_equal(buf_reserve(&b, 100000, &wp), 0);
	memset(wp, 'y', 100000);
	buf_commit(&b, 100000);
	assert_memory_equal(b.data, MARK, sizeof(MARK) - 1);
	assert_int_equal(b.data[b.len - 1], 'y');
	buf_free(&b);
	assert_int_equal(leaked_free + leaked_realloc, 0);
}

/* consumed and reset bytes leave no copy behind in the block that stays (buf_reset
 * and memmove alone keep most of it) */
static void
test_secret_consume_reset(void **state)
{
	const char *tail = MARK + 4; /* the NUL after the kept bytes overwrote [3] */
	size_t tl = sizeof(MARK) - 5;
	struct buf b;
	buf_init_secret(&b, 1024);
	assert_int_equal(buf_addf(&b, "%sxyz", MARK), 0);
	buf_consume(&b, sizeof(MARK) - 1);
	assert_string_equal(b.data, "xyz");
	assert_null(memmem(b.data, b.cap + 1, tail, tl));
	buf_reset(&b);
	assert_int_equal(buf_add_str(&b, MARK), 0);
	buf_reset(&b);
	assert_null(memmem(b.data, b.cap + 1, tail, tl));
	buf_free(&b);
	assert_int_equal(leaked_free + leaked_realloc, 0);
}

/* the same consume on a plain buf keeps the bytes: the check above can fail */
static void
test_plain_consume_keeps(void **state)
{
	struct buf b;
	buf_init(&b, 1024);
	assert_int_equal(buf_addf(&b, "%sxyz", MARK), 0);
	buf_consume(&b, sizeof(MARK) - 1);
	assert_non_null(memmem(b.data, b.cap + 1, MARK + 4, sizeof(MARK) - 5));
	buf_reset(&b);
	assert_int_equal(buf_add_str(&b, MARK), 0);
	buf_reset(&b);
	assert_non_null(memmem(b.data, b.cap + 1, MARK + 4, sizeof(MARK) - 5));
	buf_free(&b);
}

/* What the server and the worker give jansson: its own blocks (the lexer's buffer, the
 * strings it copies) are wiped when it frees them. Control: with plain free, a parsed
 * document leaves the secret in freed blocks even after the value is wiped in place. */
static int
parse_and_drop(void)
{
	char doc[128];
	snprintf(doc, sizeof(doc), "{\"data\":[{\"value\":\"%s\"}]}", MARK);
	json_t *j = json_loads(doc, 0, NULL);
	explicit_wipe(doc, sizeof(doc));
	assert_non_null(j);
	json_t *v = json_object_get(json_array_get(json_object_get(j, "data"), 0), "value");
	assert_string_equal(json_string_value(v), MARK);
	explicit_wipe((void *)json_string_value(v), json_string_length(v)); /* as the worker */
	json_decref(j);
	return leaked_free + leaked_realloc;
}

static void
test_jansson_wipe_free(void **state)
{
	json_set_alloc_funcs(malloc, free);
	assert_true(parse_and_drop() > 0);
	leaked_free = leaked_realloc = 0;
	json_set_alloc_funcs(malloc, wipe_free);
	assert_int_equal(parse_and_drop(), 0);
	json_set_alloc_funcs(malloc, free);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_plain_buf_leaks, reset_counts),
	    cmocka_unit_test_setup(test_secret_grow_and_free, reset_counts),
	    cmocka_unit_test_setup(test_secret_reserve_commit, reset_counts),
	    cmocka_unit_test_setup(test_secret_consume_reset, reset_counts),
	    cmocka_unit_test_setup(test_plain_consume_keeps, reset_counts),
	    cmocka_unit_test_setup(test_jansson_wipe_free, reset_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
