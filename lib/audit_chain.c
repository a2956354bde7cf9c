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

#include "audit_chain.h"
#include "err.h"
#include "util.h"
#include "xalloc.h"

#define CANON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

static const char zero_hash[AUDIT_HEX_LEN] =
    "0000000000000000000000000000000000000000000000000000000000000000";

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
	char *s = input ? json_dumps(input, CANON_FLAGS | JSON_ENCODE_ANY) : NULL;
	sha256_hex(s ? s : "null", s ? strlen(s) : 4, hex);
	free(s);
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
	sha256_hex(s, n, hex);
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

static int
file_append(struct audit_file *af, json_t *rec, bool sync)
{
	struct audit_chain next = af->chain;
	struct buf b;
	int r;
	buf_init(&b, AUDIT_LINE_MAX + 1);
	if ((r = audit_chain_append(&next, rec, &b)) != 0)
		goto out;
	ssize_t n = write(af->fd, b.data, b.len);
	if (n != (ssize_t)b.len || (sync && fdatasync(af->fd) != 0)) {
		r = n < 0 || n == (ssize_t)b.len ? -errno : -ENOSPC;
		/* a partial line would glue itself to the next record: cut it off */
		if (ftruncate(af->fd, (off_t)af->size) != 0)
			r = -errno;
		json_object_del(rec, "seq");
		json_object_del(rec, "prev");
		json_object_del(rec, "hash");
		goto out;
	}
	af->chain = next;
	af->size += b.len;
	r = 0;
out:
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
