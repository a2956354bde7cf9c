/* Audit hash chain (lib/audit_chain.c): records, canonical bytes, append, and a verifier
 * that catches an edited, deleted, inserted or reordered record and names the first bad
 * one (its seq and line). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit_chain.h"
#include "err.h"
#include "util.h"

#define N_REC 6

/* A chain of N_REC records, one line each (without '\n'). */
static void
make_chain(char *lines[N_REC])
{
	struct audit_chain c;
	struct buf out;
	const char *groups[] = {"auditors", "staff"};
	audit_chain_init(&c);
	buf_init(&out, 1 << 20);
	for (int i = 0; i < N_REC; i++) {
		char args[AUDIT_HEX_LEN];
		json_t *input = json_pack("{s:s, s:i}", "command", "ls -l", "n", i);
		json_t *res = json_pack("{s:s}", "session_id", "sesn_011ABC");
		audit_args_sha256(input, args);
		struct audit_event ev = {
		    .time_us = 1765000000000000 + i,
		    .request_id = "req_1",
		    .sub = "alice",
		    .iss = "https://idp.example",
		    .groups = groups,
		    .n_groups = 2,
		    .action = i == 3 ? AUDIT_CHECKPOINT_ACTION : "tool.call",
		    .resources = res,
		    .decision = "allow",
		    .rule = "auditors-tools",
		    .outcome = "ok",
		    .latency_ms = 12,
		    .args_sha256 = args,
		};
		json_t *rec = audit_record_new(&ev);
		size_t before = out.len;
		assert_int_equal(audit_chain_append(&c, rec, &out), 0);
		assert_int_equal(c.seq, (uint64_t)i + 1);
		assert_int_equal(out.data[out.len - 1], '\n');
		lines[i] = strndup(out.data + before, out.len - before - 1);
		json_decref(rec);
		json_decref(input);
		json_decref(res);
	}
	buf_free(&out);
}

static void
free_lines(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
}

/* Runs the verifier over lines; returns 0 or the failure, with v filled. */
static int
verify(char **lines, size_t n, struct audit_verify *v)
{
	audit_verify_init(v);
	for (size_t i = 0; i < n; i++) {
		int r = audit_verify_line(v, lines[i], strlen(lines[i]));
		if (r != 0)
			return r;
	}
	return 0;
}

static void
test_format_and_canonical(void **state)
{
	char *lines[N_REC];
	make_chain(lines);
	json_error_t e;
	json_t *rec = json_loads(lines[1], 0, &e);
	assert_non_null(rec);
	assert_int_equal(json_integer_value(json_object_get(rec, "seq")), 2);
	assert_string_equal(json_string_value(json_object_get(rec, "time")),
	                    "2025-12-06T05:46:40.000001Z");
	const json_t *pr = json_object_get(rec, "principal");
	assert_string_equal(json_string_value(json_object_get(pr, "sub")), "alice");
	assert_int_equal(json_array_size(json_object_get(pr, "groups")), 2);
	assert_int_equal(json_integer_value(json_object_get(rec, "latency_ms")), 12);
	assert_string_equal(json_string_value(json_object_get(rec, "rule")), "auditors-tools");
	/* the line is the canonical form with the hash; the hash covers it without the hash */
	size_t n;
	char *canon = audit_canonical(rec, &n);
	const char *h = json_string_value(json_object_get(rec, "hash"));
	char hex[AUDIT_HEX_LEN];
	sha256_hex(canon, n, hex);
	assert_string_equal(hex, h);
	assert_null(strstr(canon, "\"hash\""));
	assert_non_null(strstr(canon, "\"action\":\"tool.call\""));
	assert_true(canon[0] == '{' && strncmp(canon, "{\"action\"", 9) == 0); /* sorted keys */
	/* prev of record 2 is the hash of record 1; record 1's prev is 64 zeros */
	json_t *r1 = json_loads(lines[0], 0, &e);
	assert_string_equal(json_string_value(json_object_get(rec, "prev")),
	                    json_string_value(json_object_get(r1, "hash")));
	assert_string_equal(json_string_value(json_object_get(r1, "prev")),
	                    "0000000000000000000000000000000000000000000000000000000000000000");
	/* the arguments are there only as a hash */
	assert_null(strstr(lines[0], "ls -l"));
	free(canon);
	json_decref(rec);
	json_decref(r1);

	/* append refuses a sealed record and changes nothing */
	struct audit_chain c;
	struct buf out;
	audit_chain_init(&c);
	buf_init(&out, 64);
	json_t *sealed = json_loads(lines[0], 0, &e);
	assert_int_equal(audit_chain_append(&c, sealed, &out), AL_E_INVAL);
	json_t *big = json_pack("{s:s}", "action", "x");
	assert_int_equal(audit_chain_append(&c, big, &out), AL_E_TOOBIG); /* 64-byte buffer */
	assert_int_equal(c.seq, 0);
	assert_int_equal(out.len, 0);
	assert_null(json_object_get(big, "seq"));
	json_decref(sealed);
	json_decref(big);
	buf_free(&out);
	free_lines(lines, N_REC);
}

static void
test_verify_ok_and_resume(void **state)
{
	char *lines[N_REC];
	make_chain(lines);
	struct audit_verify v;
	assert_int_equal(verify(lines, N_REC, &v), 0);
	assert_int_equal(v.count, N_REC);
	assert_int_equal(v.head.seq, N_REC);
	assert_int_equal(v.checkpoints, 1);
	assert_int_equal(v.checkpoints_unverified, 1);
	/* a partial export, anchored at the record before it */
	json_error_t e;
	json_t *r2 = json_loads(lines[1], 0, &e);
	audit_verify_init(&v);
	assert_int_equal(audit_verify_anchor(&v, 2, json_string_value(json_object_get(r2, "hash"))),
	                 0);
	for (int i = 2; i < N_REC; i++)
		assert_int_equal(audit_verify_line(&v, lines[i], strlen(lines[i])), 0);
	/* without the anchor the same tail is refused: records 1..2 are missing */
	assert_int_equal(verify(lines + 2, N_REC - 2, &v), AL_E_INVAL);
	assert_int_equal(v.bad_line, 1);
	assert_int_equal(v.bad_seq, 3);
	/* a writer resumed from the last record continues the chain */
	json_t *last = json_loads(lines[N_REC - 1], 0, &e);
	struct audit_chain c;
	struct buf out;
	buf_init(&out, 1 << 16);
	assert_int_equal(
	    audit_chain_resume(&c, N_REC, json_string_value(json_object_get(last, "hash"))), 0);
	json_t *rec = json_pack("{s:s}", "action", "policy.reload");
	assert_int_equal(audit_chain_append(&c, rec, &out), 0);
	char *all[N_REC + 1];
	memcpy(all, lines, sizeof(lines));
	out.data[out.len - 1] = '\0';
	all[N_REC] = out.data;
	assert_int_equal(verify(all, N_REC + 1, &v), 0);
	assert_int_equal(v.count, N_REC + 1);
	assert_int_equal(audit_chain_resume(&c, 1, "abc"), AL_E_INVAL);
	json_decref(rec);
	json_decref(last);
	json_decref(r2);
	buf_free(&out);
	free_lines(lines, N_REC);
}

static int
reject_all(void *ctx, const json_t *rec, const char *hash)
{
	(*(int *)ctx)++;
	return -1;
}

static void
test_verify_catches_tampering(void **state)
{
	char *lines[N_REC];
	char *t[N_REC + 1];
	struct audit_verify v;
	make_chain(lines);

	/* edited: one field of record 3 */
	memcpy(t, lines, sizeof(lines));
	char *ed = strdup(lines[2]);
	char *p = strstr(ed, "\"outcome\":\"ok\"");
	assert_non_null(p);
	memcpy(p + 11, "no", 2);
	t[2] = ed;
	assert_int_equal(verify(t, N_REC, &v), AL_E_INVAL);
	assert_int_equal(v.bad_line, 3);
	assert_int_equal(v.bad_seq, 3);
	assert_non_null(strstr(v.msg, "edited"));
	assert_int_equal(v.count, 2);
	free(ed);

	/* edited and re-hashed: the next record's prev no longer matches */
	json_error_t e;
	json_t *r = json_loads(lines[2], 0, &e);
	json_object_set_new(r, "outcome", json_string("error"));
	char hex[AUDIT_HEX_LEN];
	audit_record_hash(r, hex);
	json_object_set_new(r, "hash", json_string(hex));
	char *rehashed = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
	t[2] = rehashed;
	assert_int_equal(verify(t, N_REC, &v), AL_E_INVAL);
	assert_int_equal(v.bad_line, 4);
	assert_int_equal(v.bad_seq, 4);
	assert_non_null(strstr(v.msg, "prev does not match the hash of seq 3"));
	json_decref(r);

	/* deleted: record 3 removed */
	memcpy(t, lines, sizeof(lines));
	memmove(t + 2, t + 3, (N_REC - 3) * sizeof(char *));
	assert_int_equal(verify(t, N_REC - 1, &v), AL_E_INVAL);
	assert_int_equal(v.bad_line, 3);
	assert_int_equal(v.bad_seq, 4);
	assert_non_null(strstr(v.msg, "expected seq 3, found 4: records are missing"));

	/* inserted: a copy of record 2 after record 4 */
	memcpy(t, lines, sizeof(lines));
	memmove(t + 5, t + 4, (N_REC - 4) * sizeof(char *));
	t[4] = lines[1];
	assert_int_equal(verify(t, N_REC + 1, &v), AL_E_INVAL);
	assert_int_equal(v.bad_line, 5);
	assert_int_equal(v.bad_seq, 2);
	assert_non_null(
	    strstr(v.msg, "expected seq 5, found 2: the record is out of order or repeated"));

	/* inserted: a forged record with its own good hash, seq 5 and prev = hash of 4; the
	 * chain breaks at the genuine seq 5 that follows it */
	json_t *r4 = json_loads(lines[3], 0, &e);
	json_t *forged = json_pack("{s:s, s:I, s:s}", "action", "tool.call", "seq", (json_int_t)5,
	                           "prev", json_string_value(json_object_get(r4, "hash")));
	audit_record_hash(forged, hex);
	json_object_set_new(forged, "hash", json_string(hex));
	char *fl = json_dumps(forged, JSON_COMPACT | JSON_SORT_KEYS);
	t[4] = fl;
	assert_int_equal(verify(t, N_REC + 1, &v), AL_E_INVAL);
	assert_int_equal(v.bad_line, 6);
	assert_int_equal(v.bad_seq, 5);
	free(fl);
	json_decref(forged);
	json_decref(r4);

	/* a rewritten seq (renumbered to hide a deletion) breaks the record's own hash */
	memcpy(t, lines, sizeof(lines));
	memmove(t + 2, t + 3, (N_REC - 3) * sizeof(char *));
	char *renum = strdup(t[2]);
	p = strstr(renum, "\"seq\":4");
	assert_non_null(p);
	p[6] = '3';
	t[2] = renum;
	assert_int_equal(verify(t, N_REC - 1, &v), AL_E_INVAL);
	assert_int_equal(v.bad_line, 3);
	assert_int_equal(v.bad_seq, 3);
	assert_non_null(strstr(v.msg, "edited"));
	free(renum);

	/* reordered: records 4 and 5 swapped */
	memcpy(t, lines, sizeof(lines));
	t[3] = lines[4];
	t[4] = lines[3];
	assert_int_equal(verify(t, N_REC, &v), AL_E_INVAL);
	assert_int_equal(v.bad_line, 4);
	assert_int_equal(v.bad_seq, 5);
	assert_non_null(strstr(v.msg, "expected seq 4, found 5"));

	/* the first record replaced by the second: it needs 64 zeros as prev */
	memcpy(t, lines, sizeof(lines));
	assert_int_equal(verify(t + 1, N_REC - 1, &v), AL_E_INVAL);
	assert_int_equal(v.bad_line, 1);

	/* not JSON, blank, missing fields, duplicate keys: named by line, seq unknown */
	const char *bad[] = {"{\"seq\":1",
	                     "",
	                     "[1,2]",
	                     "{\"seq\":\"1\"}",
	                     "{\"seq\":1,\"seq\":1}",
	                     "{\"seq\":1,\"prev\":\"00\",\"hash\":\"00\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(t, lines, sizeof(lines));
		t[2] = (char *)bad[i];
		assert_int_equal(verify(t, N_REC, &v), AL_E_INVAL);
		assert_int_equal(v.bad_line, 3);
		/* sticky: later good lines do not clear it */
		assert_int_equal(audit_verify_line(&v, lines[0], strlen(lines[0])), AL_E_INVAL);
		assert_int_equal(v.bad_line, 3);
	}

	/* a checkpoint hook that refuses names the checkpoint record */
	int calls = 0;
	audit_verify_init(&v);
	v.checkpoint = reject_all;
	v.checkpoint_ctx = &calls;
	int rr = 0;
	for (int i = 0; i < N_REC && rr == 0; i++)
		rr = audit_verify_line(&v, lines[i], strlen(lines[i]));
	assert_int_equal(rr, AL_E_INVAL);
	assert_int_equal(calls, 1);
	assert_int_equal(v.bad_seq, 4);
	free(rehashed);
	free_lines(lines, N_REC);
}

static void
test_verify_stream(void **state)
{
	char *lines[N_REC];
	make_chain(lines);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	for (int i = 0; i < N_REC; i++)
		fprintf(f, "%s%s", lines[i], i == N_REC - 1 ? "" : "\n"); /* no final '\n' */
	fclose(f);
	struct audit_verify v;
	audit_verify_init(&v);
	f = fmemopen(buf, len, "r");
	assert_int_equal(audit_verify_stream(&v, f), 0);
	fclose(f);
	assert_int_equal(v.count, N_REC);
	/* one endless line stops at the bound */
	size_t big = AUDIT_LINE_MAX + 10;
	char *huge = malloc(big);
	memset(huge, 'x', big);
	audit_verify_init(&v);
	f = fmemopen(huge, big, "r");
	assert_int_equal(audit_verify_stream(&v, f), AL_E_INVAL);
	fclose(f);
	assert_int_equal(v.bad_line, 1);
	assert_non_null(strstr(v.msg, "longer than"));
	free(huge);
	free(buf);
	free_lines(lines, N_REC);
}

static json_t *
simple_record(int i)
{
	return json_pack("{s:s, s:i}", "action", "tool.call", "latency_ms", i);
}

static void
verify_file(const char *path, uint64_t want_count)
{
	struct audit_verify v;
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	audit_verify_init(&v);
	int r = audit_verify_stream(&v, f);
	fclose(f);
	if (r != 0)
		fail_msg("%s:%llu: %s", path, (unsigned long long)v.bad_line, v.msg);
	assert_int_equal(v.count, want_count);
}

static void
test_audit_file(void **state)
{
	char dir[] = "/tmp/audit-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64], err[600];
	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	struct audit_file af;
	size_t torn;
	struct stat st;

	assert_int_equal(audit_file_open(&af, path, &torn, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	for (int i = 0; i < 3; i++) {
		json_t *rec = simple_record(i);
		assert_int_equal(audit_file_append(&af, rec), 0);
		json_decref(rec);
	}
	audit_file_close(&af);
	verify_file(path, 3);

	/* reopened: the chain resumes after seq 3 */
	assert_int_equal(audit_file_open(&af, path, &torn, err, sizeof(err)), 0);
	assert_int_equal(torn, 0);
	assert_int_equal(af.chain.seq, 3);
	json_t *rec = simple_record(3);
	assert_int_equal(audit_file_append(&af, rec), 0);
	json_decref(rec);
	audit_file_close(&af);
	verify_file(path, 4);

	/* a crash in the middle of a write: the torn line is cut, the chain goes on */
	FILE *f = fopen(path, "ab");
	fputs("{\"action\":\"tool.call\",\"latency", f);
	fclose(f);
	assert_int_equal(audit_file_open(&af, path, &torn, err, sizeof(err)), 0);
	assert_int_equal(torn, 30);
	assert_int_equal(af.chain.seq, 4);
	rec = simple_record(4);
	assert_int_equal(audit_file_append(&af, rec), 0);
	json_decref(rec);
	audit_file_close(&af);
	verify_file(path, 5);

	/* a short write (the file size limit standing in for a full disk): cut back, the
	 * chain unchanged, and the next append fits on the good records */
	assert_int_equal(audit_file_open(&af, path, &torn, err, sizeof(err)), 0);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)af.size + 10;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rec = simple_record(5);
	int r = audit_file_append(&af, rec);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_true(r < 0);
	assert_null(json_object_get(rec, "seq"));
	assert_int_equal(af.chain.seq, 5);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, af.size);
	assert_int_equal(audit_file_append(&af, rec), 0);
	json_decref(rec);
	audit_file_close(&af);
	verify_file(path, 6);

	/* records built as text go between jansson ones; the chain verifies throughout */
	assert_int_equal(audit_file_open(&af, path, &torn, err, sizeof(err)), 0);
	for (int i = 0; i < 4; i++) {
		struct audit_event ev = {.time_us = 1765000000000000 + i, .action = "tool.call"};
		struct audit_member m[] = {{.key = "outbox_id", .num = i}};
		struct audit_text t;
		assert_int_equal(audit_text_build(&t, &ev, m, 1), 0);
		assert_int_equal(audit_file_append_text(&af, &t, i % 2 == 0), 0);
		audit_text_free(&t);
		rec = simple_record(i);
		assert_int_equal(audit_file_append(&af, rec), 0);
		json_decref(rec);
	}
	assert_int_equal(audit_file_sync(&af), 0);
	audit_file_close(&af);
	verify_file(path, 14);

	/* a last record edited: not appended to */
	f = fopen(path, "ab");
	fputs("{\"action\":\"x\",\"seq\":14,\"prev\":\"00\",\"hash\":\"00\"}\n", f);
	fclose(f);
	assert_int_equal(audit_file_open(&af, path, &torn, err, sizeof(err)), AL_E_INVAL);
	assert_non_null(strstr(err, "the last record does not verify"));
	assert_int_equal(af.fd, -1);

	/* a directory is not a log */
	assert_true(audit_file_open(&af, dir, &torn, err, sizeof(err)) < 0);
	unlink(path);
	rmdir(dir);
}

/* ---- records built as text (audit_text_build) against audit_record_new + jansson */

/* Builds ev both ways (resources as the members m, and as the object jansson would hold)
 * and checks the text, then the sealed line on the same chain, byte for byte. */
static void
check_same(struct audit_event ev, const struct audit_member *m, size_t nm)
{
	json_t *res = json_object();
	for (size_t i = 0; i < nm; i++) {
		json_t *v = m[i].str ? json_string(m[i].str) : json_integer(m[i].num);
		json_object_set_new(res, m[i].key, v ? v : json_null());
	}
	ev.resources = res;
	json_t *rec = audit_record_new(&ev);
	char *want = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	struct audit_text tj, tm;
	assert_int_equal(audit_text_build(&tj, &ev, NULL, 0), 0); /* resources as JSON */
	ev.resources = NULL;
	assert_int_equal(audit_text_build(&tm, &ev, m, nm), 0); /* as members */
	assert_string_equal(tj.b.data, want);
	assert_string_equal(tm.b.data, want);
	/* the same line on the same chain, and the next record chains on either */
	struct audit_chain c1, c2;
	struct buf b1, b2;
	audit_chain_init(&c1);
	assert_int_equal(
	    audit_chain_resume(&c1, 41,
	                       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
	    0);
	c2 = c1;
	buf_init(&b1, AUDIT_LINE_MAX + 1);
	buf_init(&b2, AUDIT_LINE_MAX + 1);
	assert_int_equal(audit_chain_append(&c1, rec, &b1), 0);
	assert_int_equal(audit_chain_append_text(&c2, &tm, &b2), 0);
	assert_string_equal(b1.data, b2.data);
	assert_int_equal(c2.seq, 42);
	assert_string_equal(c1.last, c2.last);
	struct audit_verify v;
	audit_verify_init(&v);
	assert_int_equal(
	    audit_verify_anchor(&v, 41,
	                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
	    0);
	if (audit_verify_line(&v, b2.data, b2.len - 1) != 0)
		fail_msg("%s: %s", b2.data, v.msg);
	buf_free(&b1);
	buf_free(&b2);
	audit_text_free(&tj);
	audit_text_free(&tm);
	free(want);
	json_decref(rec);
	json_decref(res);
}

static void
test_text_same_bytes(void **state)
{
	const char *groups[] = {"auditors", "caf\xc3\xa9", "bad\xff", "\"q\"\\"};
	char args[AUDIT_HEX_LEN];
	audit_args_sha256(NULL, args);
	struct audit_event ev = {
	    .time_us = 1765000000123456,
	    .request_id = "sevt_01",
	    .sub = "alice",
	    .iss = "https://idp.example/",
	    .groups = groups,
	    .n_groups = 4,
	    .action = "tool.call",
	    .decision = "allow",
	    .rule = "auditors-tools",
	    .outcome = "dispatched",
	    .latency_ms = -7,
	    .args_sha256 = args,
	};
	struct audit_member m[] = {
	    {.key = "session_id", .str = "sesn_01"},       {.key = "type", .str = "tool_use"},
	    {.key = "tool_use_id", .str = "sevt_01"},      {.key = "tool", .str = "bash"},
	    {.key = "outbox_id", .num = 9007199254740993}, {.key = "via", .str = "outbox"},
	};
	check_same(ev, m, 6);
	/* every string that needs care, in each field: escapes, control characters (upper-case
	 * \u00XX), DEL, '/', non-ASCII and 4-byte UTF-8 raw, and what jansson refuses (bad
	 * UTF-8: an overlong, a surrogate, a stray continuation, past U+10FFFF, cut short),
	 * which both write as null */
	static const char *const odd[] = {
	    "",
	    "\"",
	    "\\",
	    "a\bb\fc\nd\re\tf",
	    "\x01\x1f\x7f",
	    "/x/",
	    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
	    "\xc0\xaf",
	    "\xed\xa0\x80",
	    "\x80",
	    "\xf4\x90\x80\x80",
	    "\xe2\x82",
	    "\xef\xbf\xbf",
	    NULL,
	};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		struct audit_event e = ev;
		e.request_id = e.sub = e.iss = e.action = e.decision = e.rule = e.outcome = odd[i];
		struct audit_member mm[] = {{.key = "session_id", .str = odd[i]},
		                            {.key = "k\n\"", .str = odd[i]},
		                            {.key = "n", .num = INT64_MIN}};
		check_same(e, mm, odd[i] ? 3 : 1);
	}
	/* random bytes in every field */
	unsigned seed = 12;
	for (int round = 0; round < 2000; round++) {
		char f[6][12];
		for (int k = 0; k < 6; k++) {
			size_t n = (size_t)(rand_r(&seed) % 11);
			for (size_t j = 0; j < n; j++) {
				int x = rand_r(&seed);
				/* mostly ASCII, some control characters and high bytes */
				f[k][j] = (char)(x % 4 == 0   ? 0x80 + x % 0x80
				                 : x % 4 == 1 ? 1 + x % 0x20
				                              : 0x20 + x % 0x60);
			}
			f[k][n] = '\0';
		}
		const char *g[] = {f[4], f[5]};
		struct audit_event e = ev;
		e.sub = f[0];
		e.request_id = f[1];
		e.groups = g;
		e.n_groups = 2;
		struct audit_member mm[] = {{.key = "session_id", .str = f[2]},
		                            {.key = "tool", .str = f[3]}};
		check_same(e, mm, 2);
	}
	/* no groups, no resources */
	ev.n_groups = 0;
	check_same(ev, NULL, 0);
	/* refused: a key twice, members with a JSON object too, and too long a record */
	struct audit_text t;
	struct audit_member twice[] = {{.key = "a", .str = "1"}, {.key = "a", .str = "2"}};
	assert_int_equal(audit_text_build(&t, &ev, twice, 2), AL_E_INVAL);
	audit_text_free(&t);
	json_t *res = json_object();
	ev.resources = res;
	assert_int_equal(audit_text_build(&t, &ev, m, 1), AL_E_INVAL);
	audit_text_free(&t);
	ev.resources = NULL;
	char *huge = malloc(AUDIT_LINE_MAX);
	memset(huge, 'x', AUDIT_LINE_MAX - 1);
	huge[AUDIT_LINE_MAX - 1] = '\0';
	ev.rule = huge;
	assert_int_equal(audit_text_build(&t, &ev, NULL, 0), AL_E_TOOBIG);
	audit_text_free(&t);
	/* one that fits as text but not with seq, prev and hash: refused at the seal */
	huge[AUDIT_LINE_MAX - 400] = '\0';
	assert_int_equal(audit_text_build(&t, &ev, NULL, 0), 0);
	struct audit_chain c;
	struct buf out;
	audit_chain_init(&c);
	buf_init(&out, 2 * AUDIT_LINE_MAX);
	assert_int_equal(audit_chain_append_text(&c, &t, &out), AL_E_TOOBIG);
	assert_int_equal(c.seq, 0);
	assert_int_equal(out.len, 0);
	buf_free(&out);
	audit_text_free(&t);
	free(huge);
	json_decref(res);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format_and_canonical),
	    cmocka_unit_test(test_verify_ok_and_resume),
	    cmocka_unit_test(test_verify_catches_tampering),
	    cmocka_unit_test(test_verify_stream),
	    cmocka_unit_test(test_audit_file),
	    cmocka_unit_test(test_text_same_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
