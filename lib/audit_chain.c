/* Audit records, their canonical bytes, the hash chain and its verifier; see
 * audit_chain.h and docs/server/audit.md. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/uio.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>

#include "audit_chain.h"
#include "err.h"
#include "sha256.h"
#include "util.h"
#include "xalloc.h"

#define CANON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

static const char zero_hash[AUDIT_HEX_LEN] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* SHA-256 fetched once: SHA256() and EVP_sha256() look the algorithm up on every call,
 * which costs more than hashing a short record. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* Hex SHA-256 with OpenSSL's (SHA-NI or AVX2 code: several times lib/sha256's speed, and
 * the server and the audit CLI load OpenSSL anyway); lib/sha256 when OpenSSL cannot be
 * loaded, which gives the same digest. */
static void
hash_hex(const void *data, size_t len, char hex[AUDIT_HEX_LEN])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];
	unsigned int n = 0;
	EVP_MD_CTX *c = NULL;
	pthread_once(&sha256_once, sha256_fetch);
	if (sha256_md == NULL || (c = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(c, sha256_md, NULL) != 1 || EVP_DigestUpdate(c, data, len) != 1 ||
	    EVP_DigestFinal_ex(c, md, &n) != 1 || n != sizeof(md))
		sha256(data, len, md);
	EVP_MD_CTX_free(c);
	for (size_t i = 0; i < sizeof(md); i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

static json_t *
str_or_null(const char *s)
{
	json_t *j = s ? json_string(s) : NULL;
	return j ? j : json_null(); /* invalid UTF-8 is recorded as null, never dropped */
}

json_t *
audit_record_new(const struct audit_event *ev)
{
	char ts[32];
	json_t *groups = json_array();
	for (size_t i = 0; i < ev->n_groups; i++)
		json_array_append_new(groups, str_or_null(ev->groups[i]));
	time_fmt_rfc3339(ev->time_us, ts);
	json_t *rec = json_object();
	json_object_set_new(rec, "time", json_string(ts));
	json_object_set_new(rec, "request_id", str_or_null(ev->request_id));
	json_object_set_new(rec, "principal",
	                    json_pack("{s:o, s:o, s:o}", "sub", str_or_null(ev->sub), "iss",
	                              str_or_null(ev->iss), "groups", groups));
	json_object_set_new(rec, "action", str_or_null(ev->action));
	json_object_set_new(rec, "resources",
	                    ev->resources ? json_deep_copy(ev->resources) : json_object());
	json_object_set_new(rec, "decision", str_or_null(ev->decision));
	json_object_set_new(rec, "rule", str_or_null(ev->rule));
	json_object_set_new(rec, "outcome", str_or_null(ev->outcome));
	json_object_set_new(rec, "latency_ms", json_integer(ev->latency_ms));
	json_object_set_new(rec, "args_sha256", str_or_null(ev->args_sha256));
	return rec;
}

void
audit_args_sha256(const json_t *input, char hex[AUDIT_HEX_LEN])
{
	/* most inputs fit on the stack: no heap copy of the text just to hash it */
	char small[4096];
	size_t n =
	    input ? json_dumpb(input, small, sizeof(small), CANON_FLAGS | JSON_ENCODE_ANY) : 0;
	if (n > 0 && n <= sizeof(small)) {
		hash_hex(small, n, hex);
		return;
	}
	char *s = input ? json_dumps(input, CANON_FLAGS | JSON_ENCODE_ANY) : NULL;
	hash_hex(s ? s : "null", s ? strlen(s) : 4, hex);
	free(s);
}

/* ---- records as text */

/* The bytes a string takes as jansson dumps it (below), or 0 when jansson refuses it:
 * invalid UTF-8 as its json_string() judges it (utf8_check_string). One pass for both. */
/* bytes an ASCII character takes in a dumped string; 0: the first byte of a UTF-8 sequence
 * (or not one), looked at more closely */
static const uint8_t ascii_len[256] = {
    6, 6, 6, 6, 6, 6, 6, 6, 2, 2, 2, 6, 2, 2, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
    1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static size_t
str_dumped_len(const unsigned char *s, size_t n)
{
	size_t i = 0, out = 2;
	while (i < n) {
		unsigned c = s[i];
		size_t len;
		uint32_t v;
		if (ascii_len[c] != 0) {
			out += ascii_len[c];
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			len = 2;
			v = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			len = 3;
			v = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4;
			v = c & 0x07;
		} else {
			return 0; /* a continuation byte, an overlong lead, or past U+10FFFF */
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			v = v << 6 | (s[i + k] & 0x3F);
		}
		if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (len == 3 && v < 0x800) ||
		    (len == 4 && v < 0x10000))
			return 0;
		out += len;
		i += len;
	}
	return out;
}

static bool
utf8_valid(const unsigned char *s, size_t n)
{
	return str_dumped_len(s, n) != 0;
}

/* A JSON string as jansson dumps it without JSON_ENSURE_ASCII or JSON_ESCAPE_SLASH: '"' and
 * '\\' escaped, \b \f \n \r \t, other control characters as \u00XX (upper-case hex),
 * everything else raw. NULL or invalid UTF-8: null. Errors stick in *r. */
static void
put_str(struct buf *b, const char *s, int *r)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t n = s ? strlen(s) : 0, need;
	char *wp;
	if (*r != 0)
		return;
	if (s == NULL || (need = str_dumped_len((const unsigned char *)s, n)) == 0) {
		*r = buf_add(b, "null", 4);
		return;
	}
	if ((*r = buf_reserve(b, need, &wp)) != 0)
		return;
	buf_commit(b, need);
	*wp++ = '"';
	if (need == n + 2) { /* nothing to escape: the common case */
		memcpy(wp, s, n);
		wp[n] = '"';
		return;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\') {
			*wp++ = (char)c;
			continue;
		}
		*wp++ = '\\';
		switch (c) {
		case '"':
			*wp++ = '"';
			break;
		case '\\':
			*wp++ = '\\';
			break;
		case '\b':
			*wp++ = 'b';
			break;
		case '\f':
			*wp++ = 'f';
			break;
		case '\n':
			*wp++ = 'n';
			break;
		case '\r':
			*wp++ = 'r';
			break;
		case '\t':
			*wp++ = 't';
			break;
		default:
			memcpy(wp, "u00", 3);
			wp[3] = digits[c >> 4];
			wp[4] = digits[c & 15];
			wp += 5;
		}
	}
	*wp = '"';
}

/* A key (ours: known valid) and its ':' */
static void
put_key(struct buf *b, const char *key, int *r)
{
	put_str(b, key, r);
	if (*r == 0)
		*r = buf_add(b, ":", 1);
}

static void
put_bytes(struct buf *b, const char *s, size_t n, int *r)
{
	if (*r == 0)
		*r = buf_add(b, s, n);
}

/* literal text: its length known at compile time */
#define put_raw(b, lit, r) put_bytes((b), "" lit, sizeof(lit) - 1, (r))

static void
put_int(struct buf *b, int64_t v, int *r)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	if (*r == 0)
		*r = buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* Members sorted by key as JSON_SORT_KEYS sorts (bytewise, which strcmp is). */
static int
put_members(struct buf *b, const struct audit_member *m, size_t n)
{
	const struct audit_member *sorted[16];
	int r = 0;
	if (n > sizeof(sorted) / sizeof(sorted[0]))
		return AL_E_INVAL;
	for (size_t i = 0; i < n; i++) {
		size_t k = i;
		if (m[i].key == NULL ||
		    !utf8_valid((const unsigned char *)m[i].key, strlen(m[i].key)))
			return AL_E_INVAL;
		for (; k > 0 && strcmp(sorted[k - 1]->key, m[i].key) > 0; k--)
			sorted[k] = sorted[k - 1];
		if (k > 0 && strcmp(sorted[k - 1]->key, m[i].key) == 0)
			return AL_E_INVAL; /* one key twice: jansson would keep the last */
		sorted[k] = &m[i];
	}
	put_raw(b, "{", &r);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			put_raw(b, ",", &r);
		put_key(b, sorted[i]->key, &r);
		if (sorted[i]->str)
			put_str(b, sorted[i]->str, &r);
		else
			put_int(b, sorted[i]->num, &r);
	}
	put_raw(b, "}", &r);
	return r;
}

static int
put_json(struct buf *b, const json_t *v)
{
	char *wp;
	size_t room = b->max - b->len < 512 ? b->max - b->len : 512, n;
	int r;
	if (!json_is_object(v))
		return AL_E_INVAL;
	for (;;) {
		if ((r = buf_reserve(b, room, &wp)) != 0)
			return r;
		n = json_dumpb(v, wp, room, CANON_FLAGS);
		if (n == 0)
			return AL_E_INVAL;
		if (n <= room)
			break;
		room = n; /* it said how much it needs: once more with that */
	}
	buf_commit(b, n);
	return 0;
}

int
audit_text_build(struct audit_text *t, const struct audit_event *ev, const struct audit_member *res,
                 size_t nres)
{
	struct buf *b = &t->b;
	char ts[32];
	int r = 0;
	char *wp;
	memset(t, 0, sizeof(*t));
	buf_init(b, AUDIT_LINE_MAX);
	if (nres > 0 && ev->resources != NULL)
		return AL_E_INVAL;
	if ((r = buf_reserve(b, 1024, &wp)) != 0) /* most records: one allocation */
		return r;
	/* keys in byte order; "hash", "prev" and "seq" go in the gaps noted */
	put_raw(b, "{\"action\":", &r);
	put_str(b, ev->action, &r);
	put_raw(b, ",\"args_sha256\":", &r);
	put_str(b, ev->args_sha256, &r);
	put_raw(b, ",\"decision\":", &r);
	put_str(b, ev->decision, &r);
	put_raw(b, ",", &r);
	t->at_hash = b->len;
	put_raw(b, "\"latency_ms\":", &r);
	put_int(b, ev->latency_ms, &r);
	put_raw(b, ",\"outcome\":", &r);
	put_str(b, ev->outcome, &r);
	put_raw(b, ",", &r);
	t->at_prev = b->len;
	put_raw(b, "\"principal\":{\"groups\":[", &r);
	for (size_t i = 0; i < ev->n_groups; i++) {
		if (i > 0)
			put_raw(b, ",", &r);
		put_str(b, ev->groups[i], &r);
	}
	put_raw(b, "],\"iss\":", &r);
	put_str(b, ev->iss, &r);
	put_raw(b, ",\"sub\":", &r);
	put_str(b, ev->sub, &r);
	put_raw(b, "},\"request_id\":", &r);
	put_str(b, ev->request_id, &r);
	put_raw(b, ",\"resources\":", &r);
	if (r == 0) {
		if (nres > 0)
			r = put_members(b, res, nres);
		else if (ev->resources)
			r = put_json(b, ev->resources);
		else
			r = buf_add(b, "{}", 2);
	}
	put_raw(b, ",\"rule\":", &r);
	put_str(b, ev->rule, &r);
	put_raw(b, ",", &r);
	t->at_seq = b->len;
	time_fmt_rfc3339(ev->time_us, ts);
	put_raw(b, "\"time\":", &r);
	put_str(b, ts, &r);
	put_raw(b, "}", &r);
	return r;
}

void
audit_text_free(struct audit_text *t)
{
	buf_free(&t->b);
}

char *
audit_canonical(const json_t *rec, size_t *len)
{
	if (!json_is_object(rec))
		return NULL;
	json_t *tmp = json_copy((json_t *)rec); /* shallow: members are shared, not copied */
	json_object_del(tmp, "hash");
	char *s = json_dumps(tmp, CANON_FLAGS);
	json_decref(tmp);
	if (s && len)
		*len = strlen(s);
	return s;
}

int
audit_record_hash(const json_t *rec, char hex[AUDIT_HEX_LEN])
{
	size_t n;
	char *s = audit_canonical(rec, &n);
	if (s == NULL)
		return AL_E_INVAL;
	hash_hex(s, n, hex);
	free(s);
	return 0;
}

static bool
hex64(const char *s)
{
	if (s == NULL || strlen(s) != 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

void
audit_chain_init(struct audit_chain *c)
{
	c->seq = 0;
	memcpy(c->last, zero_hash, AUDIT_HEX_LEN);
}

int
audit_chain_resume(struct audit_chain *c, uint64_t seq, const char *hash)
{
	if (!hex64(hash) || seq > (uint64_t)INT64_MAX - 1)
		return AL_E_INVAL;
	c->seq = seq;
	memcpy(c->last, hash, AUDIT_HEX_LEN);
	return 0;
}

int
audit_chain_append(struct audit_chain *c, json_t *rec, struct buf *out)
{
	char hex[AUDIT_HEX_LEN];
	char *line = NULL;
	int r = AL_E_INVAL;
	if (!json_is_object(rec) || json_object_get(rec, "seq") || json_object_get(rec, "prev") ||
	    json_object_get(rec, "hash"))
		return AL_E_INVAL;
	json_object_set_new(rec, "seq", json_integer((json_int_t)(c->seq + 1)));
	json_object_set_new(rec, "prev", json_string(c->last));
	if ((r = audit_record_hash(rec, hex)) != 0)
		goto out;
	json_object_set_new(rec, "hash", json_string(hex));
	line = json_dumps(rec, CANON_FLAGS);
	r = AL_E_INVAL;
	if (line == NULL)
		goto out;
	size_t n = strlen(line);
	r = AL_E_TOOBIG;
	if (n > AUDIT_LINE_MAX || out->len + n + 1 > out->max)
		goto out;
	if ((r = buf_add(out, line, n)) != 0 || (r = buf_add(out, "\n", 1)) != 0)
		goto out; /* cannot happen after the room check */
	c->seq++;
	memcpy(c->last, hex, AUDIT_HEX_LEN);
	r = 0;
out:
	if (r != 0) {
		json_object_del(rec, "seq");
		json_object_del(rec, "prev");
		json_object_del(rec, "hash");
	}
	free(line);
	return r;
}

#define HASH_MEMBER_LEN (sizeof("\"hash\":\"\",") - 1 + 64)

int
audit_chain_append_text(struct audit_chain *c, const struct audit_text *t, struct buf *out)
{
	const char *text = t->b.data;
	char prev[sizeof("\"prev\":\"\",") + 64], seq[48], hex[AUDIT_HEX_LEN];
	char *wp;
	int r;
	if (text == NULL || t->at_hash == 0 || t->at_hash > t->at_prev || t->at_prev > t->at_seq ||
	    t->at_seq >= t->b.len)
		return AL_E_INVAL;
	int np = snprintf(prev, sizeof prev, "\"prev\":\"%s\",", c->last);
	int ns = snprintf(seq, sizeof seq, "\"seq\":%llu,", (unsigned long long)c->seq + 1);
	size_t canon = t->b.len + (size_t)np + (size_t)ns; /* the bytes the hash covers */
	size_t line = canon + HASH_MEMBER_LEN;
	if (line > AUDIT_LINE_MAX || out->len + line + 1 > out->max)
		return AL_E_TOOBIG;
	if ((r = buf_reserve(out, line + 1, &wp)) != 0)
		return r;
	/* the canonical bytes first, behind room for the hash member, then hashed in place;
	 * the part before the hash's place moves forward and the member goes in behind it */
	char *p = wp + HASH_MEMBER_LEN;
	memcpy(p, text, t->at_prev);
	p += t->at_prev;
	memcpy(p, prev, (size_t)np);
	p += np;
	memcpy(p, text + t->at_prev, t->at_seq - t->at_prev);
	p += t->at_seq - t->at_prev;
	memcpy(p, seq, (size_t)ns);
	p += ns;
	memcpy(p, text + t->at_seq, t->b.len - t->at_seq);
	hash_hex(wp + HASH_MEMBER_LEN, canon, hex);
	memmove(wp, wp + HASH_MEMBER_LEN, t->at_hash);
	p = wp + t->at_hash;
	memcpy(p, "\"hash\":\"", 8);
	memcpy(p + 8, hex, 64);
	memcpy(p + 72, "\",", 2);
	wp[line] = '\n';
	buf_commit(out, line + 1);
	c->seq++;
	memcpy(c->last, hex, AUDIT_HEX_LEN);
	return 0;
}

/* ---- verifying */

void
audit_verify_init(struct audit_verify *v)
{
	memset(v, 0, sizeof(*v));
	audit_chain_init(&v->head);
}

int
audit_verify_anchor(struct audit_verify *v, uint64_t seq, const char *hash)
{
	return audit_chain_resume(&v->head, seq, hash);
}

static int fail(struct audit_verify *v, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct audit_verify *v, uint64_t seq, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
	va_end(ap);
	v->failed = true;
	v->bad_line = v->line;
	v->bad_seq = seq;
	return AL_E_INVAL;
}

int
audit_verify_line(struct audit_verify *v, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *rec = NULL;
	char hex[AUDIT_HEX_LEN];
	int r;
	if (v->failed)
		return AL_E_INVAL;
	v->line++;
	if (len == 0) {
		r = fail(v, 0, "empty line (expected record seq %llu)",
		         (unsigned long long)v->head.seq + 1);
		goto out;
	}
	if (len > AUDIT_LINE_MAX) {
		r = fail(v, 0, "record longer than %u bytes", AUDIT_LINE_MAX);
		goto out;
	}
	rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(rec)) {
		r = fail(v, 0, "not a JSON object: %s", rec ? "another JSON value" : jerr.text);
		goto out;
	}
	json_t *jseq = json_object_get(rec, "seq");
	const char *prev = json_string_value(json_object_get(rec, "prev"));
	const char *hash = json_string_value(json_object_get(rec, "hash"));
	if (!json_is_integer(jseq) || json_integer_value(jseq) < 1) {
		r = fail(v, 0, "seq: missing or not a positive integer");
		goto out;
	}
	uint64_t seq = (uint64_t)json_integer_value(jseq);
	if (!hex64(prev) || !hex64(hash)) {
		r = fail(v, seq, "prev and hash must be 64 lower-case hex digits");
		goto out;
	}
	if (audit_record_hash(rec, hex) != 0 || strcmp(hex, hash) != 0) {
		r = fail(v, seq,
		         "hash does not match the record's content (the record was edited)");
		goto out;
	}
	uint64_t want = v->head.seq + 1;
	if (seq > want) {
		r = fail(v, seq,
		         "expected seq %llu, found %llu: records are missing (deleted) or out of "
		         "order",
		         (unsigned long long)want, (unsigned long long)seq);
		goto out;
	}
	if (seq < want) {
		r = fail(v, seq,
		         "expected seq %llu, found %llu: the record is out of order or repeated",
		         (unsigned long long)want, (unsigned long long)seq);
		goto out;
	}
	if (strcmp(prev, v->head.last) != 0) {
		if (v->head.seq == 0)
			r = fail(v, seq, "the first record's prev must be 64 zeros");
		else
			r = fail(v, seq,
			         "prev does not match the hash of seq %llu (a record before it was "
			         "replaced or inserted)",
			         (unsigned long long)v->head.seq);
		goto out;
	}
	const char *action = json_string_value(json_object_get(rec, "action"));
	if (action && strcmp(action, AUDIT_CHECKPOINT_ACTION) == 0) {
		v->checkpoints++;
		if (v->checkpoint == NULL)
			v->checkpoints_unverified++;
		else if (v->checkpoint(v->checkpoint_ctx, rec, hash) != 0) {
			r = fail(v, seq, "checkpoint signature does not verify");
			goto out;
		}
	}
	v->head.seq = seq;
	memcpy(v->head.last, hash, AUDIT_HEX_LEN);
	v->count++;
	r = 0;
out:
	json_decref(rec);
	return r;
}

int
audit_verify_stream(struct audit_verify *v, FILE *f)
{
	/* Lines are split here rather than with getline so one endless line cannot grow
	 * memory past AUDIT_LINE_MAX. */
	struct buf b;
	char chunk[65536];
	size_t n;
	int r = 0;
	buf_init(&b, AUDIT_LINE_MAX + 1);
	while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		size_t off = 0;
		while (r == 0 && off < n) {
			char *nl = memchr(chunk + off, '\n', n - off);
			size_t take = nl ? (size_t)(nl - (chunk + off)) : n - off;
			if (buf_add(&b, chunk + off, take) != 0) {
				/* fails with "record longer than …" without reading it */
				r = audit_verify_line(v, "", AUDIT_LINE_MAX + 1);
				break;
			}
			off += take;
			if (nl) {
				r = audit_verify_line(v, b.data ? b.data : "", b.len);
				buf_reset(&b);
				off++;
			}
		}
	}
	if (r == 0 && ferror(f)) {
		snprintf(v->msg, sizeof(v->msg), "read error: %s", strerror(errno));
		r = AL_E_IO;
	} else if (r == 0 && b.len > 0) {
		r = audit_verify_line(v, b.data, b.len); /* a last line without '\n' */
	}
	buf_free(&b);
	return r;
}

/* ---- the log file */

/* Resumes af->chain from the last record held in tail (the file's last bytes, ending
 * with '\n'; complete: whether tail starts at the file's start). */
static int
resume_from(struct audit_file *af, const char *tail, size_t n, bool complete, char *err,
            size_t errlen)
{
	size_t end = n - 1, start = end;
	while (start > 0 && tail[start - 1] != '\n')
		start--;
	if (start == 0 && !complete) {
		snprintf(err, errlen, "%s: the last line is longer than a record may be", af->path);
		return AL_E_INVAL;
	}
	struct audit_verify v;
	audit_verify_init(&v);
	json_t *rec = json_loadb(tail + start, end - start, JSON_REJECT_DUPLICATES, NULL);
	json_int_t seq = json_integer_value(json_object_get(rec, "seq"));
	/* anchored at what the record claims, so only its own hash is checked here */
	if (seq > 0)
		audit_verify_anchor(&v, (uint64_t)seq - 1,
		                    json_string_value(json_object_get(rec, "prev")));
	json_decref(rec);
	if (seq <= 0 || audit_verify_line(&v, tail + start, end - start) != 0) {
		snprintf(err, errlen, "%s: the last record does not verify: %s", af->path,
		         seq <= 0 ? "no seq" : v.msg);
		return AL_E_INVAL;
	}
	af->chain = v.head;
	return 0;
}

int
audit_file_open(struct audit_file *af, const char *path, size_t *torn, char *err, size_t errlen)
{
	struct stat st;
	char *tail = NULL;
	int r;
	memset(af, 0, sizeof(*af));
	af->path = xstrdup(path);
	*torn = 0;
	audit_chain_init(&af->chain);
	af->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (af->fd < 0 || fstat(af->fd, &st) != 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* enough for a torn line and the record before it */
	uint64_t size = (uint64_t)st.st_size;
	size_t want = size > 2 * (AUDIT_LINE_MAX + 1) ? 2 * (AUDIT_LINE_MAX + 1) : (size_t)size;
	tail = xmalloc(want + 1);
	if (pread(af->fd, tail, want, (off_t)(size - want)) != (ssize_t)want) {
		r = -EIO;
		snprintf(err, errlen, "%s: read error", path);
		goto out;
	}
	size_t keep = want; /* bytes of tail up to and with the last '\n' */
	while (keep > 0 && tail[keep - 1] != '\n')
		keep--;
	if (keep == 0 && want < size) {
		r = AL_E_INVAL;
		snprintf(err, errlen, "%s: does not end with a record", path);
		goto out;
	}
	if (keep < want) {
		/* a torn last line: its write was cut by a crash, so never acknowledged */
		if (ftruncate(af->fd, (off_t)(size - (want - keep))) != 0 ||
		    fdatasync(af->fd) != 0) {
			r = -errno;
			snprintf(err, errlen, "%s: cannot cut the torn last line: %s", path,
			         strerror(errno));
			goto out;
		}
		*torn = want - keep;
	}
	af->size = size - (want - keep);
	if (keep > 0 && (r = resume_from(af, tail, keep, want == size, err, errlen)) != 0)
		goto out;
	r = 0;
out:
	free(tail);
	if (r != 0)
		audit_file_close(af);
	return r;
}

/* Writes a sealed line (b) and moves the chain to next; on failure the file is cut back
 * and the chain stays. */
static int
file_write(struct audit_file *af, const struct buf *b, const struct audit_chain *next, bool sync)
{
	ssize_t n = write(af->fd, b->data, b->len);
	if (n != (ssize_t)b->len || (sync && fdatasync(af->fd) != 0)) {
		int r = n < 0 || n == (ssize_t)b->len ? -errno : -ENOSPC;
		/* a partial line would glue itself to the next record: cut it off */
		if (ftruncate(af->fd, (off_t)af->size) != 0)
			r = -errno;
		return r;
	}
	af->chain = *next;
	af->size += b->len;
	return 0;
}

static int
file_append(struct audit_file *af, json_t *rec, bool sync)
{
	struct audit_chain next = af->chain;
	struct buf b;
	int r;
	buf_init(&b, AUDIT_LINE_MAX + 1);
	if ((r = audit_chain_append(&next, rec, &b)) != 0)
		goto out;
	if ((r = file_write(af, &b, &next, sync)) != 0) {
		json_object_del(rec, "seq");
		json_object_del(rec, "prev");
		json_object_del(rec, "hash");
	}
out:
	buf_free(&b);
	return r;
}

int
audit_file_append_text(struct audit_file *af, const struct audit_text *t, bool sync)
{
	struct audit_chain next = af->chain;
	struct buf b;
	int r;
	buf_init(&b, AUDIT_LINE_MAX + 1);
	if ((r = audit_chain_append_text(&next, t, &b)) == 0)
		r = file_write(af, &b, &next, sync);
	buf_free(&b);
	return r;
}

int
audit_file_append(struct audit_file *af, json_t *rec)
{
	return file_append(af, rec, true);
}

int
audit_file_append_nosync(struct audit_file *af, json_t *rec)
{
	return file_append(af, rec, false);
}

int
audit_file_sync(struct audit_file *af)
{
	return fdatasync(af->fd) != 0 ? -errno : 0;
}

void
audit_file_close(struct audit_file *af)
{
	if (af->fd >= 0)
		close(af->fd);
	free(af->path);
	af->fd = -1;
	af->path = NULL;
}
