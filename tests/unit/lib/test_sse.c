/* SSE parser and frame writer: table-driven cases, each also fed split at every byte
 * boundary and byte by byte, since network reads cut streams anywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "sse.h"

/* Events are recorded as "event|id|data;" so one string comparison checks a case. */
struct rec {
	struct buf out;
	int fail_after; /* callback returns AL_E_CLOSED after this many events; -1 never */
	int count;
};

static int
record(const struct sse_event *ev, void *arg)
{
	struct rec *r = arg;
	buf_add(&r->out, ev->event.p, ev->event.len);
	buf_add(&r->out, "|", 1);
	buf_add(&r->out, ev->id.p, ev->id.len);
	buf_add(&r->out, "|", 1);
	buf_add(&r->out, ev->data.p, ev->data.len);
	buf_add(&r->out, ";", 1);
	r->count++;
	if (r->fail_after >= 0 && r->count >= r->fail_after)
		return AL_E_CLOSED;
	return 0;
}

struct tcase {
	const char *name;
	const char *in;
	const char *want;
	int want_err;
};

static const struct tcase cases[] = {
    {"basic", "event: a\ndata: {\"x\":1}\n\n", "a||{\"x\":1};", 0},
    {"crlf", "event: a\r\ndata: 1\r\n\r\n", "a||1;", 0},
    {"cr only", "event: a\rdata: 1\r\r", "a||1;", 0},
    {"mixed ends", "event: a\r\ndata: 1\rdata: 2\n\r\n", "a||1\n2;", 0},
    {"multi data", "data: a\ndata: b\ndata:\n\n", "||a\nb\n;", 0},
    {"no space", "event:x\ndata:y\n\n", "x||y;", 0},
    {"two spaces keep one", "data:  y\n\n", "|| y;", 0},
    {"id", "id: sevt_1\nevent: t\ndata: d\n\n", "t|sevt_1|d;", 0},
    {"id not carried", "id: 1\ndata: a\n\ndata: b\n\n", "|1|a;||b;", 0},
    {"comment ignored", ": ping\n\n:x\nevent: e\ndata: 1\n\n", "e||1;", 0},
    {"unknown fields", "retry: 10\nfoo: bar\nevent: e\nbaz\ndata: 1\n\n", "e||1;", 0},
    {"field without colon", "data\n\n", "||;", 0},
    {"event without data", "event: ping\n\n", "ping||;", 0},
    {"empty frames skipped", "\n\n\nid: 3\n\n", "", 0},
    {"unterminated last", "event: a\ndata: 1\n", "", 0},
    {"bom stripped",
     "\xEF\xBB\xBF"
     "data: 1\n\n",
     "||1;", 0},
    {"colon in value", "data: a:b: c\n\n", "||a:b: c;", 0},
    {"last event wins", "event: a\nevent: b\ndata: 1\n\n", "b||1;", 0},
    {"line too long", "data: 0123456789012345678901234567890123456789\n\n", "", AL_E_TOOBIG},
    {"event too big", "data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n", "", AL_E_TOOBIG},
    {"nul in id ignored", "id: a\0b\ndata: 1\n\n", "||1;", 0},
};

/* in may contain NULs: lengths come from sizeof at the table, so we use a length map. */
static size_t
case_len(const struct tcase *c)
{
	if (strcmp(c->name, "nul in id ignored") == 0)
		return 17;
	return strlen(c->in);
}

static int
run_split(const struct tcase *c, size_t n, size_t cut, size_t step, struct rec *r)
{
	struct sse_parser p;
	sse_parser_init(&p, 32, 24, record, r);
	int err = 0;
	if (step == 0) {
		err = sse_parser_feed(&p, c->in, cut);
		if (err == 0)
			err = sse_parser_feed(&p, c->in + cut, n - cut);
	} else {
		for (size_t i = 0; i < n && err == 0; i++)
			err = sse_parser_feed(&p, c->in + i, 1);
	}
	sse_parser_free(&p);
	return err;
}

static void
test_table(void **state)
{
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const struct tcase *c = &cases[k];
		size_t n = case_len(c);
		for (size_t cut = 0; cut <= n + 1; cut++) {
			struct rec r = {.fail_after = -1};
			buf_init(&r.out, 4096);
			int err =
			    cut <= n ? run_split(c, n, cut, 0, &r) : run_split(c, n, 0, 1, &r);
			if (err != c->want_err ||
			    strcmp(r.out.data ? r.out.data : "", c->want) != 0) {
				print_error("case '%s' cut %zu: err %d want %d, got '%s'\n",
				            c->name, cut, err, c->want_err,
				            r.out.data ? r.out.data : "");
				fail();
			}
			buf_free(&r.out);
		}
	}
}

static void
test_callback_stops(void **state)
{
	struct rec r = {.fail_after = 1};
	buf_init(&r.out, 4096);
	struct sse_parser p;
	sse_parser_init(&p, 0, 0, record, &r);
	const char *in = "data: 1\n\ndata: 2\n\n";
	assert_int_equal(sse_parser_feed(&p, in, strlen(in)), AL_E_CLOSED);
	assert_string_equal(r.out.data, "||1;");
	/* sticky: the parser does not resume after a failure */
	assert_int_equal(sse_parser_feed(&p, "data: 3\n\n", 9), AL_E_CLOSED);
	assert_int_equal(r.count, 1);
	sse_parser_free(&p);
	buf_free(&r.out);
}

static void
test_comments_counted(void **state)
{
	struct rec r = {.fail_after = -1};
	buf_init(&r.out, 4096);
	struct sse_parser p;
	sse_parser_init(&p, 0, 0, record, &r);
	assert_int_equal(sse_parser_feed(&p, ": ping\n\n: ping\r\n\r\n", 18), 0);
	assert_int_equal(p.comments, 2);
	assert_int_equal(r.count, 0);
	sse_parser_free(&p);
	buf_free(&r.out);
}

static void
test_frame_roundtrip(void **state)
{
	struct buf b;
	buf_init(&b, 4096);
	assert_int_equal(sse_frame(&b, "agent.message", "sevt_1", "{\"type\":\"agent.message\"}"),
	                 0);
	assert_string_equal(
	    b.data, "id: sevt_1\nevent: agent.message\ndata: {\"type\":\"agent.message\"}\n\n");
	buf_reset(&b);
	assert_int_equal(sse_frame(&b, "x", NULL, "a\nb\r\nc"), 0);
	assert_string_equal(b.data, "event: x\ndata: a\ndata: b\ndata: c\n\n");

	struct rec r = {.fail_after = -1};
	buf_init(&r.out, 4096);
	struct sse_parser p;
	sse_parser_init(&p, 0, 0, record, &r);
	assert_int_equal(sse_parser_feed(&p, b.data, b.len), 0);
	assert_string_equal(r.out.data, "x||a\nb\nc;");
	sse_parser_free(&p);
	buf_free(&r.out);

	buf_reset(&b);
	assert_int_equal(sse_frame(&b, "bad\nname", NULL, "{}"), AL_E_INVAL);
	assert_int_equal(sse_frame(&b, "ok", "bad\rid", "{}"), AL_E_INVAL);
	assert_int_equal(b.len, 0);
	buf_free(&b);

	/* all or nothing when the buffer is full */
	buf_init(&b, 20);
	assert_int_equal(sse_frame(&b, "e", NULL, "{\"long\":\"value over twenty\"}"), AL_E_TOOBIG);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_callback_stops),
	    cmocka_unit_test(test_comments_counted),
	    cmocka_unit_test(test_frame_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
