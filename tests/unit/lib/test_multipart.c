/* multipart/form-data parser: table-driven bodies, each also fed split at every byte
 * boundary and byte by byte (network reads cut bodies anywhere), the boundary header
 * grammar, limits, callbacks that refuse, and a large part that must pass through in
 * window-sized pieces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "multipart.h"

/* Parts are recorded as "name|filename|type|data;" (filename "-" when absent, a NUL
 * in data as \0). */
struct rec {
	struct buf out;
	size_t max_chunk;
	int refuse_begin_at; /* part_begin of this index returns AL_E_PERM; -1 never */
	size_t data_bytes;
	bool record_data;
};

static int
rec_begin(const struct multipart_part *p, void *arg)
{
	struct rec *r = arg;
	if (r->refuse_begin_at >= 0 && (size_t)r->refuse_begin_at == p->index)
		return AL_E_PERM;
	buf_addf(&r->out, "%s|%s|%s|", p->name, p->filename ? p->filename : "-", p->content_type);
	return 0;
}

static int
rec_data(const char *d, size_t n, void *arg)
{
	struct rec *r = arg;
	if (n > r->max_chunk)
		r->max_chunk = n;
	r->data_bytes += n;
	for (size_t i = 0; r->record_data && i < n; i++) /* NUL recorded as \0 */
		buf_add(&r->out, d[i] ? &d[i] : "\\0", d[i] ? 1 : 2);
	return 0;
}

static int
rec_end(void *arg)
{
	struct rec *r = arg;
	buf_add(&r->out, ";", 1);
	return 0;
}

static const struct multipart_cb rec_cb = {rec_begin, rec_data, rec_end};

struct tcase {
	const char *name;
	const char *in;
	size_t len;       /* bodies may hold NUL bytes */
	const char *want; /* parts recorded, when err is 0 */
	int err;          /* from feed or finish */
};

#define CD "Content-Disposition: form-data; "
#define B(s) s, sizeof(s) - 1
static const struct tcase cases[] = {
    {"one field", B("--XyZ\r\n" CD "name=\"a\"\r\n\r\nhello\r\n--XyZ--\r\n"),
     "a|-|text/plain|hello;", 0},
    {"file with type",
     B("--XyZ\r\n" CD
       "name=\"file\"; filename=\"r.bin\"\r\nContent-Type: application/octet-stream\r\n"
       "\r\n\x01\x02\r\n\x00z\r\n--XyZ--"),
     "file|r.bin|application/octet-stream|\x01\x02\r\n\\0z;", 0},
    {"two parts", B("--XyZ\r\n" CD "name=a\r\n\r\n1\r\n--XyZ\r\n" CD "name=b\r\n\r\n\r\n--XyZ--"),
     "a|-|text/plain|1;b|-|text/plain|;", 0},
    {"preamble and epilogue",
     B("ignored\r\n--XyZ\r\n" CD "name=a\r\n\r\nx\r\n--XyZ--\r\nepilogue --XyZ junk"),
     "a|-|text/plain|x;", 0},
    {"padding after boundary", B("--XyZ  \t\r\n" CD "name=a\r\n\r\nx\r\n--XyZ--"),
     "a|-|text/plain|x;", 0},
    {"near-boundary data", B("--XyZ\r\n" CD "name=a\r\n\r\n\r\n--XyY\r\n-XyZ--XyZ\r\n--XyZ--"),
     "a|-|text/plain|\r\n--XyY\r\n-XyZ--XyZ;", 0},
    {"escaped quote in filename",
     B("--XyZ\r\n" CD "name=\"f\"; filename=\"a\\\"b.txt\"\r\n\r\nq\r\n--XyZ--"),
     "f|a\"b.txt|text/plain|q;", 0},
    {"backslash kept (WHATWG)",
     B("--XyZ\r\n" CD "name=\"f\"; filename=\"a\\..\\x\"\r\n\r\nq\r\n--XyZ--"),
     "f|a\\..\\x|text/plain|q;", 0},
    {"header names any case",
     B("--XyZ\r\ncontent-DISPOSITION: Form-Data; NAME=\"a\"\r\nX-Other: 1\r\n\r\nv\r\n--XyZ--"),
     "a|-|text/plain|v;", 0},
    {"filename* ignored", B("--XyZ\r\n" CD "name=f; filename*=UTF-8''x.txt\r\n\r\nv\r\n--XyZ--"),
     "f|-|text/plain|v;", 0},
    {"binary cte accepted",
     B("--XyZ\r\n" CD "name=a\r\nContent-Transfer-Encoding: binary\r\n\r\nv\r\n--XyZ--"),
     "a|-|text/plain|v;", 0},
    {"no parts at all", B("--XyZ--\r\n"), "", 0},
    /* malformed */
    {"truncated in data", B("--XyZ\r\n" CD "name=a\r\n\r\nhello"), NULL, AL_E_INVAL},
    {"truncated in headers", B("--XyZ\r\n" CD "name=a\r\n"), NULL, AL_E_INVAL},
    {"truncated before close", B("--XyZ\r\n" CD "name=a\r\n\r\nx\r\n--XyZ"), NULL, AL_E_INVAL},
    {"empty body", B(""), NULL, AL_E_INVAL},
    {"wrong boundary", B("--abc\r\n" CD "name=a\r\n\r\nx\r\n--abc--"), NULL, AL_E_INVAL},
    {"junk after boundary", B("--XyZ junk\r\n" CD "name=a\r\n\r\nx\r\n--XyZ--"), NULL, AL_E_INVAL},
    {"boundary prefix of longer", B("--XyZ\r\n" CD "name=a\r\n\r\nx\r\n--XyZW\r\n--XyZ--"), NULL,
     AL_E_INVAL},
    {"no disposition", B("--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--"), NULL,
     AL_E_INVAL},
    {"no headers", B("--XyZ\r\n\r\nx\r\n--XyZ--"), NULL, AL_E_INVAL},
    {"not form-data", B("--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--XyZ--"),
     NULL, AL_E_INVAL},
    {"no name", B("--XyZ\r\n" CD "filename=\"a\"\r\n\r\nx\r\n--XyZ--"), NULL, AL_E_INVAL},
    {"two names", B("--XyZ\r\n" CD "name=a; name=b\r\n\r\nx\r\n--XyZ--"), NULL, AL_E_INVAL},
    {"two dispositions", B("--XyZ\r\n" CD "name=a\r\n" CD "name=b\r\n\r\nx\r\n--XyZ--"), NULL,
     AL_E_INVAL},
    {"unterminated quote", B("--XyZ\r\n" CD "name=\"a\r\n\r\nx\r\n--XyZ--"), NULL, AL_E_INVAL},
    {"control char in filename", B("--XyZ\r\n" CD "name=a; filename=\"a\x01\"\r\n\r\nx\r\n--XyZ--"),
     NULL, AL_E_INVAL},
    {"NUL in headers", B("--XyZ\r\n" CD "name=a\r\nX: \0\r\n\r\nx\r\n--XyZ--"), NULL, AL_E_INVAL},
    {"folded header", B("--XyZ\r\n" CD "name=a\r\n more\r\n\r\nx\r\n--XyZ--"), NULL, AL_E_INVAL},
    {"bare LF in headers", B("--XyZ\r\n" CD "name=a\nX: y\r\n\r\nx\r\n--XyZ--"), NULL, AL_E_INVAL},
    {"base64 cte refused",
     B("--XyZ\r\n" CD "name=a\r\nContent-Transfer-Encoding: base64\r\n\r\neA==\r\n--XyZ--"), NULL,
     AL_E_INVAL},
    {"header without colon", B("--XyZ\r\n" CD "name=a\r\nbogus\r\n\r\nx\r\n--XyZ--"), NULL,
     AL_E_INVAL},
};

static int
run(const char *boundary, const char *in, size_t len, const size_t *cuts, size_t ncuts,
    struct rec *r, const struct multipart_limits *lim)
{
	buf_init(&r->out, 1 << 24);
	r->max_chunk = 0;
	r->data_bytes = 0;
	r->record_data = true;
	struct multipart *m = multipart_new(boundary, lim, &rec_cb, r);
	assert_non_null(m);
	int err = 0;
	size_t off = 0;
	for (size_t i = 0; i <= ncuts && err == 0; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		err = multipart_feed(m, in + off, to - off);
		off = to;
	}
	if (err == 0)
		err = multipart_finish(m);
	if (err != 0)
		assert_true(multipart_error(m)[0] != '\0');
	multipart_free(m);
	return err;
}

static void
check_case(const struct tcase *c, const size_t *cuts, size_t ncuts)
{
	struct rec r = {.refuse_begin_at = -1};
	int err = run("XyZ", c->in, c->len, cuts, ncuts, &r, NULL);
	if (err != c->err)
		fail_msg("%s: err %d, want %d", c->name, err, c->err);
	if (c->err == 0 && (r.out.len != strlen(c->want) ||
	                    (r.out.len > 0 && memcmp(r.out.data, c->want, r.out.len) != 0)))
		fail_msg("%s: got '%.*s' want '%s'", c->name, (int)r.out.len, r.out.data, c->want);
	buf_free(&r.out);
}

static void
test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *c = &cases[i];
		size_t n = c->len;
		check_case(c, NULL, 0);
		for (size_t k = 1; k < n; k++) /* two pieces, cut everywhere */
			check_case(c, &k, 1);
		size_t *all = malloc(n * sizeof(*all) + 1); /* byte by byte */
		for (size_t k = 1; k < n; k++)
			all[k - 1] = k;
		check_case(c, all, n ? n - 1 : 0);
		free(all);
	}
}

static void
test_boundary(void **state)
{
	(void)state;
	static const struct {
		const char *ct, *want;
	} ok[] = {
	    {"multipart/form-data; boundary=abc", "abc"},
	    {"Multipart/Form-Data;boundary=\"a b'()+_,-./:=?\"", "a b'()+_,-./:=?"},
	    {"multipart/form-data; charset=utf-8; boundary=----formdata-undici-0123",
	     "----formdata-undici-0123"},
	    {"multipart/form-data; "
	     "boundary=1234567890123456789012345678901234567890123456789012345678901234567890",
	     "1234567890123456789012345678901234567890123456789012345678901234567890"},
	};
	static const char *const bad[] = {
	    NULL,
	    "",
	    "application/json",
	    "multipart/mixed; boundary=abc",
	    "multipart/form-data",
	    "multipart/form-data; boundary=",
	    "multipart/form-data; boundary=\"\"",
	    "multipart/form-data; boundary=\"ends in space \"",
	    "multipart/form-data; boundary=\"bad\x01\"",
	    "multipart/form-data; boundary=\"semi;colon\"",
	    "multipart/form-data; boundary=a; boundary=b",
	    "multipart/form-data; "
	    "boundary=12345678901234567890123456789012345678901234567890123456789012345678901",
	};
	char out[MULTIPART_MAX_BOUNDARY + 1];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(multipart_boundary(ok[i].ct, out, sizeof(out)), 0);
		assert_string_equal(out, ok[i].want);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (multipart_boundary(bad[i], out, sizeof(out)) != AL_E_INVAL)
			fail_msg("accepted bad[%zu] %s", i, bad[i] ? bad[i] : "(null)");
}

static void
test_limits(void **state)
{
	(void)state;
	struct rec r = {.refuse_begin_at = -1};
	struct multipart_limits lim = {.max_parts = 2, .max_header_bytes = 64, .max_preamble = 8};
	const char *three = "--b\r\n" CD "name=a\r\n\r\n\r\n--b\r\n" CD
	                    "name=a\r\n\r\n\r\n--b\r\n" CD "name=a\r\n\r\n\r\n--b--";
	assert_int_equal(run("b", three, strlen(three), NULL, 0, &r, &lim), AL_E_TOOBIG);
	buf_free(&r.out);
	/* a header block over the limit fails even though no terminator ever comes */
	struct buf big;
	buf_init(&big, 1 << 20);
	buf_add_str(&big, "--b\r\n" CD "name=a\r\nX-Long: ");
	for (int i = 0; i < 100; i++)
		buf_add_str(&big, "xxxxxxxxxx");
	assert_int_equal(run("b", big.data, big.len, NULL, 0, &r, &lim), AL_E_TOOBIG);
	buf_free(&r.out);
	buf_free(&big);
	const char *pre = "0123456789--b\r\n" CD "name=a\r\n\r\n\r\n--b--";
	assert_int_equal(run("b", pre, strlen(pre), NULL, 0, &r, &lim), AL_E_INVAL);
	buf_free(&r.out);
	/* a callback's refusal comes back unchanged, and sticks */
	r.refuse_begin_at = 1;
	const char *two = "--b\r\n" CD "name=a\r\n\r\n\r\n--b\r\n" CD "name=a\r\n\r\n\r\n--b--";
	assert_int_equal(run("b", two, strlen(two), NULL, 0, &r, NULL), AL_E_PERM);
	buf_free(&r.out);
	assert_null(multipart_new("", NULL, &rec_cb, &r));
}

/* 8 MiB of data full of near-misses of the delimiter passes through whole, in pieces
 * no larger than the window: the parser never holds a part. */
static void
test_large_part(void **state)
{
	(void)state;
	const size_t n = 8u << 20;
	struct buf body;
	buf_init(&body, n + 4096);
	buf_add_str(&body, "--bnd\r\n" CD "name=file; filename=big\r\n\r\n");
	size_t data_off = body.len;
	unsigned seed = 1;
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		char ch = "\r\n-bnd"[(seed >> 16) % 6];
		buf_add(&body, &ch, 1);
	}
	/* the random bytes may spell the delimiter by chance: replace those spots */
	for (char *p; (p = memmem(body.data + data_off, n, "\r\n--bnd", 7)) != NULL;)
		p[2] = 'x';
	buf_add_str(&body, "\r\n--bnd--\r\n");
	struct rec r = {.refuse_begin_at = -1};
	size_t cuts[64];
	for (size_t i = 0; i < 64; i++)
		cuts[i] = (i + 1) * (body.len / 65) + i % 7;
	assert_int_equal(run("bnd", body.data, body.len, cuts, 64, &r, NULL), 0);
	assert_int_equal(r.data_bytes, n);
	assert_true(r.max_chunk <= 65536 + 8192 + 4);
	const char *rec_data_start = strchr(r.out.data, '|');
	assert_non_null(rec_data_start);
	size_t head = strlen("file|big|text/plain|");
	assert_int_equal(r.out.len, head + n + 1);
	assert_memory_equal(r.out.data + head, body.data + data_off, n);
	buf_free(&r.out);
	buf_free(&body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_boundary),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_large_part),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
