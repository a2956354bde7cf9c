/* The server's audit log: the append-only file (lib/audit_chain's audit_file), an
 * in-memory index of record offsets for GET /v1/audit_events, and the helpers the emit
 * points call. See audit.h and docs/server/audit.md. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent_identity.h"
#include "api.h"
#include "audit.h"
#include "audit_store.h"
#include "err.h"
#include "event_store.h"
#include "events.h"
#include "db.h"
#include "log.h"
#include "loop.h"
#include "routes.h"
#include "server.h"
#include "session_store.h"
#include "util.h"
#include "validate.h"
#include "xalloc.h"

#define RETRY_MS 1000 /* a broken log is tried again at most this often */

struct idlist {
	char **v;
	size_t n, cap;
};

struct audit_log {
	struct audit_file f;
	uint64_t base_seq; /* seq of off[0] */
	uint64_t *off;     /* byte offset of each record's line */
	size_t n, cap;
	/* the server's state around the file */
	uint64_t written, failed, lost; /* lost: failures since the last good write */
	bool broken;
	uint64_t retry_at_ms;
	struct server *srv;
	struct loop_timer *outbox_timer;
	/* outbox rows appended without a sync (deleted after the next), and at start the rows
	 * a crash left that are in the file already */
	int64_t *moved, *seen;
	size_t nmoved, capmoved, nseen;
	/* The agent loop's records live in their tool uses' event rows until synced here (by
	 * event id): appended without a sync (cleared after the next), waiting for a retry
	 * after a failed append (in order), and at start those a crash left that are in the
	 * file already. */
	struct idlist ev_moved, ev_retry, ev_seen;
	/* the records of the transaction in progress, appended once it commits */
	struct staged {
		char *event_id;
		struct audit_text t;
	} * staged;
	size_t nstaged, capstaged;
	/* AUDIT_EV_FLAG: whether event rows may hold records (committed), or set in the
	 * transaction in progress; a start after a clean stop skips the scan for them */
	bool ev_flag, ev_flag_tx;
	/* records of requests without a valid credential, this second, and those left out */
	uint64_t unauth_window_ms, unauth_suppressed;
	unsigned unauth_in_window;
	int64_t unauth_since_us;
	uint64_t cp_seq, cp_at_ms; /* the last checkpoint's own seq, and when */
};

#define OUTBOX_POLL_MS 1000
#define AUDIT_EV_FLAG "audit_records_in_events" /* a seqs row (db_seq_set) */
#define AUDIT_CHECKPOINT_EVERY 1000             /* records between checkpoints at most, */
#define AUDIT_CHECKPOINT_MS 60000               /* or a minute when any were written */
#define OUTBOX_BATCH 64

static void staged_drop(struct audit_log *lg, size_t from);

static void
idlist_push(struct idlist *l, const char *id)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = xstrdup(id);
}

static bool
idlist_has(const struct idlist *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], id) == 0)
			return true;
	return false;
}

/* Drops the first n ids (all: n = l->n). */
static void
idlist_drop(struct idlist *l, size_t n)
{
	if (n == 0)
		return; /* an empty list may have no array: memmove(NULL, ...) is undefined */
	for (size_t i = 0; i < n; i++)
		free(l->v[i]);
	memmove(l->v, l->v + n, (l->n - n) * sizeof(*l->v));
	l->n -= n;
}

static void
idlist_free(struct idlist *l)
{
	idlist_drop(l, l->n);
	free(l->v);
	l->v = NULL;
	l->cap = 0;
}

static void
index_push(struct audit_log *lg, uint64_t off)
{
	if (lg->n == lg->cap) {
		lg->cap = lg->cap ? lg->cap * 2 : 1024;
		lg->off = xreallocarray(lg->off, lg->cap, sizeof(*lg->off));
	}
	lg->off[lg->n++] = off;
}

/* Reads the line at off (without its '\n') into b; AL_E_IO on a short or failed read. */
static int
read_line(struct audit_log *lg, size_t i, struct buf *b)
{
	uint64_t start = lg->off[i];
	uint64_t end = i + 1 < lg->n ? lg->off[i + 1] : lg->f.size;
	if (end <= start || end - start > AUDIT_LINE_MAX + 1)
		return AL_E_IO;
	size_t len = (size_t)(end - start);
	char *wp;
	buf_reset(b);
	if (buf_reserve(b, len + 1, &wp) != 0)
		return AL_E_IO;
	if (pread(lg->f.fd, wp, len, (off_t)start) != (ssize_t)len || wp[len - 1] != '\n')
		return AL_E_IO;
	wp[len - 1] = '\0';
	buf_commit(b, len - 1);
	return 0;
}

/* One pass over the file at open: the offset of every line, and the first record's seq
 * (records are consecutive, so seq = base_seq + index). */
static int
index_build(struct audit_log *lg, char *err, size_t errlen)
{
	char chunk[65536];
	uint64_t pos = 0, line_start = 0;
	bool at_start = true;
	while (pos < lg->f.size) {
		size_t want =
		    lg->f.size - pos < sizeof(chunk) ? (size_t)(lg->f.size - pos) : sizeof(chunk);
		ssize_t n = pread(lg->f.fd, chunk, want, (off_t)pos);
		if (n <= 0) {
			snprintf(err, errlen, "%s: read error while indexing", lg->f.path);
			return AL_E_IO;
		}
		for (ssize_t k = 0; k < n; k++) {
			if (at_start) {
				index_push(lg, line_start);
				at_start = false;
			}
			if (chunk[k] == '\n') {
				line_start = pos + (uint64_t)k + 1;
				at_start = true;
			}
		}
		pos += (uint64_t)n;
	}
	lg->base_seq = 1;
	if (lg->n > 0) {
		struct buf b;
		buf_init(&b, AUDIT_LINE_MAX + 2);
		int r = read_line(lg, 0, &b);
		json_t *rec = r == 0 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
		json_int_t seq = json_integer_value(json_object_get(rec, "seq"));
		json_decref(rec);
		buf_free(&b);
		if (seq <= 0 || (uint64_t)seq + lg->n - 1 != lg->f.chain.seq) {
			snprintf(err, errlen,
			         "%s: records are not consecutive (first seq %lld, %zu lines, last "
			         "seq %llu): run airlock audit verify",
			         lg->f.path, (long long)seq, lg->n,
			         (unsigned long long)lg->f.chain.seq);
			return AL_E_INVAL;
		}
		lg->base_seq = (uint64_t)seq;
	}
	return 0;
}

int
audit_log_open(const char *path, struct audit_log **out, char *err, size_t errlen)
{
	struct audit_log *lg = xcalloc(1, sizeof(*lg));
	size_t torn = 0;
	int r = audit_file_open(&lg->f, path, &torn, err, errlen);
	if (r != 0) {
		lg->f.fd = -1;
		goto out;
	}
	if (torn > 0) {
		char n[24];
		snprintf(n, sizeof n, "%zu", torn);
		log_warn("audit log: cut a torn last line (a write interrupted by a crash)", "file",
		         path, "bytes", n);
	}
	if ((r = index_build(lg, err, errlen)) != 0)
		goto out;
	*out = lg;
	lg = NULL;
out:
	audit_log_free(lg);
	return r;
}

void
audit_log_free(struct audit_log *lg)
{
	if (lg == NULL)
		return;
	if (lg->f.path)
		audit_file_close(&lg->f);
	free(lg->off);
	free(lg->moved);
	free(lg->seen);
	idlist_free(&lg->ev_moved);
	idlist_free(&lg->ev_retry);
	idlist_free(&lg->ev_seen);
	staged_drop(lg, 0);
	free(lg->staged);
	free(lg);
}

/* Appends a record object (rec) or one built as text (t) and indexes its line. */
static int
log_append(struct audit_log *lg, json_t *rec, const struct audit_text *t, bool sync)
{
	uint64_t at = lg->f.size;
	int r = t      ? audit_file_append_text(&lg->f, t, sync)
	        : sync ? audit_file_append(&lg->f, rec)
	               : audit_file_append_nosync(&lg->f, rec);
	if (r == 0) {
		if (lg->n == 0)
			lg->base_seq = lg->f.chain.seq;
		index_push(lg, at);
	}
	return r;
}

int
audit_log_append(struct audit_log *lg, json_t *rec)
{
	return log_append(lg, rec, NULL, true);
}

int
audit_log_append_lazy(struct audit_log *lg, json_t *rec)
{
	return log_append(lg, rec, NULL, false);
}

uint64_t
audit_log_count(const struct audit_log *lg)
{
	return lg->n;
}

/* ---- queries ---- */

static bool
json_str_is(const json_t *v, const char *want)
{
	const char *s = json_string_value(v);
	return s != NULL && strcmp(s, want) == 0;
}

bool
audit_query_match(const struct audit_query *q, const json_t *rec)
{
	if (q->action && !json_str_is(json_object_get(rec, "action"), q->action))
		return false;
	if (q->principal &&
	    !json_str_is(json_object_get(json_object_get(rec, "principal"), "sub"), q->principal))
		return false;
	if (q->session_id &&
	    !json_str_is(json_object_get(json_object_get(rec, "resources"), "session_id"),
	                 q->session_id))
		return false;
	if (q->time_lo != INT64_MIN || q->time_hi != INT64_MAX) {
		const char *ts = json_string_value(json_object_get(rec, "time"));
		int64_t t;
		if (ts == NULL || time_parse_rfc3339(ts, &t) != 0 || t < q->time_lo ||
		    t > q->time_hi)
			return false;
	}
	return true;
}

int
audit_log_query(struct audit_log *lg, const struct audit_query *q, json_t **data,
                uint64_t *next_seq)
{
	uint64_t max_scan = q->max_scan ? q->max_scan : AUDIT_QUERY_MAX_SCAN;
	uint64_t scanned = 0;
	struct buf b;
	int r = 0;
	json_t *arr = json_array();
	*next_seq = 0;
	buf_init(&b, AUDIT_LINE_MAX + 2);
	if (lg->n == 0)
		goto out;
	/* i: the next index to read, in page order */
	uint64_t last = lg->base_seq + lg->n - 1;
	int64_t i;
	if (q->desc) {
		uint64_t from = q->has_cursor ? q->after_seq - 1 : last;
		if (q->has_cursor && q->after_seq <= lg->base_seq)
			goto out;
		if (from > last)
			from = last;
		i = (int64_t)(from - lg->base_seq);
	} else {
		uint64_t from = q->has_cursor ? q->after_seq + 1 : lg->base_seq;
		if (from < lg->base_seq)
			from = lg->base_seq;
		if (from > last)
			goto out;
		i = (int64_t)(from - lg->base_seq);
	}
	for (; i >= 0 && (uint64_t)i < lg->n; i += q->desc ? -1 : 1) {
		uint64_t seq = lg->base_seq + (uint64_t)i;
		if (json_array_size(arr) == q->limit || scanned == max_scan) {
			/* more may follow: the cursor resumes after the last record looked at */
			*next_seq = q->desc ? seq + 1 : seq - 1;
			break;
		}
		scanned++;
		if ((r = read_line(lg, (size_t)i, &b)) != 0)
			goto out;
		json_t *rec = json_loadb(b.data, b.len, 0, NULL);
		if (rec == NULL) {
			r = AL_E_IO;
			goto out;
		}
		if (audit_query_match(q, rec))
			json_array_append(arr, rec);
		json_decref(rec);
	}
	r = 0;
out:
	buf_free(&b);
	if (r != 0) {
		json_decref(arr);
		arr = NULL;
	}
	*data = arr;
	return r;
}

/* ---- the server's log ---- */

struct outbox_batch {
	size_t n;
	int64_t id[OUTBOX_BATCH];
	json_t *rec[OUTBOX_BATCH];
};

static int
outbox_collect(void *arg, int64_t id, json_t *rec)
{
	struct outbox_batch *b = arg;
	b->id[b->n] = id;
	b->rec[b->n++] = json_incref(rec);
	return 0;
}

static int audit_append_record(struct server *s, json_t *rec, const char *action, bool sync);
static int append_done(struct server *s, int r, const char *action, const char *request_id);

static bool
id_in(const int64_t *ids, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static void
moved_push(struct audit_log *lg, int64_t id)
{
	if (lg->nmoved == lg->capmoved) {
		lg->capmoved = lg->capmoved ? 2 * lg->capmoved : 64;
		lg->moved = xreallocarray(lg->moved, lg->capmoved, sizeof(*lg->moved));
	}
	lg->moved[lg->nmoved++] = id;
}

/* Appends one outbox record without a sync of its own: its row stays (a durable copy)
 * until outbox_flush has synced the file. */
static int
outbox_append(struct audit_log *lg, int64_t id, json_t *rec)
{
	json_t *res = json_object_get(rec, "resources");
	if (!json_is_object(res)) {
		log_warn("audit outbox: dropping a record that is not an audit record");
	} else if (!id_in(lg->seen, lg->nseen, id)) {
		json_object_set_new(res, "via", json_string("outbox"));
		json_object_set_new(res, "outbox_id", json_integer(id));
		json_object_del(rec, "seq");
		json_object_del(rec, "prev");
		json_object_del(rec, "hash");
		int r = audit_append_record(
		    lg->srv, rec, json_string_value(json_object_get(rec, "action")), false);
		if (r != 0)
			return r; /* logged; the row waits for the next drain */
	}
	moved_push(lg, id);
	return 0;
}

/* The agent loop's record, staged as text: the bytes its event row holds, appended
 * without reading them back. */
static int
outbox_append_staged(struct audit_log *lg, const struct staged *st)
{
	int r =
	    append_done(lg->srv, log_append(lg, NULL, &st->t, false), "tool.call", st->event_id);
	if (r != 0)
		return r; /* logged; it waits in its row for the next drain */
	idlist_push(&lg->ev_moved, st->event_id);
	return 0;
}

/* Appends the records that wait in event rows (a failed append, or a crash), oldest
 * first, from their rows; the first that cannot be written stops it, so order is kept.
 * Those found in the file at start are only marked moved. */
static void
ev_drain(struct audit_log *lg)
{
	size_t done = 0;
	for (; done < lg->ev_retry.n; done++) {
		const char *id = lg->ev_retry.v[done];
		char *text = NULL;
		json_t *rec = NULL;
		int r = 0;
		if (!idlist_has(&lg->ev_seen, id)) {
			r = event_store_get_audit(lg->srv->db, id, &text);
			if (r == AL_E_NOTFOUND)
				continue; /* nothing there (any more) */
			rec = r == 0 ? json_loads(text, 0, NULL) : NULL;
			if (r == 0 && !json_is_object(rec))
				log_warn(
				    "audit: dropping an event row's record that is not a record",
				    "event_id", id);
			else if (r == 0)
				r = audit_append_record(lg->srv, rec, "tool.call", false);
			else
				log_warn("audit: cannot read an event row's record", "event_id",
				         id);
		}
		if (r == 0)
			idlist_push(&lg->ev_moved, id);
		json_decref(rec);
		free(text);
		if (r != 0)
			break;
	}
	idlist_drop(&lg->ev_retry, done);
}

/* Moves the records that wait in event rows (ev_drain), then the outbox rows not moved
 * yet (other processes' records) into the log, oldest first; the first that cannot be
 * written stops it, so order is kept. */
static void
outbox_drain(struct audit_log *lg)
{
	int64_t after = 0;
	ev_drain(lg);
	for (;;) {
		struct outbox_batch b = {0};
		if (audit_store_outbox_list(lg->srv->db, after, OUTBOX_BATCH, outbox_collect, &b) !=
		    0)
			log_warn("audit outbox: cannot read", "file", lg->f.path);
		bool stop = false;
		for (size_t i = 0; i < b.n; i++) {
			after = b.id[i];
			if (!stop && !id_in(lg->moved, lg->nmoved, b.id[i]))
				stop = outbox_append(lg, b.id[i], b.rec[i]) != 0;
			json_decref(b.rec[i]);
		}
		if (stop || b.n < OUTBOX_BATCH)
			break;
	}
}

/* Makes the moved records durable in the log, then deletes their rows (one transaction).
 * Never inside a caller's transaction: from the timer and at close. */
static void
outbox_flush(struct audit_log *lg)
{
	struct server *s = lg->srv;
	/* no record left in an event row: a start needs no scan for them */
	bool clear_flag = lg->ev_flag && lg->ev_retry.n == 0;
	if (lg->nmoved == 0 && lg->ev_moved.n == 0 && !clear_flag)
		return;
	int r = audit_file_sync(&lg->f);
	if (r != 0) {
		log_error("AUDIT LOG SYNC FAILED: outbox records stay in the database", "file",
		          lg->f.path, "error", al_strerror(r));
		return;
	}
	if ((r = db_begin(s->db)) == 0) {
		for (size_t i = 0; i < lg->nmoved && r == 0; i++)
			r = audit_store_outbox_delete(s->db, lg->moved[i]);
		for (size_t i = 0; i < lg->ev_moved.n && r == 0; i++) {
			r = event_store_set_audit(s->db, lg->ev_moved.v[i], NULL);
			if (r == AL_E_NOTFOUND)
				r = 0; /* its session was deleted (after a flush: audit_settle) */
		}
		if (r == 0 && clear_flag)
			r = db_seq_set(s->db, AUDIT_EV_FLAG, 0);
		if (r == 0)
			r = db_commit(s->db);
		if (r != 0)
			db_rollback(s->db);
	}
	if (r != 0) {
		/* they are in the log: after a restart the file says so (outbox_id) */
		log_warn("audit outbox: cannot delete moved records; kept until the next try");
		return;
	}
	lg->nmoved = 0;
	lg->nseen = 0; /* every row seen at start is gone now */
	idlist_drop(&lg->ev_moved, lg->ev_moved.n);
	idlist_drop(&lg->ev_seen, lg->ev_seen.n);
	if (clear_flag)
		lg->ev_flag = false;
}

/* Anyone can send requests without a valid credential, and each record is a synced
 * write: past AUDIT_UNAUTH_PER_SEC a second they are counted, not written, and one record
 * says how many (unauth_summary), so a flood costs bounded disk work and still shows. */
static bool
unauth_admit(struct audit_log *lg)
{
	uint64_t now = now_mono_ms();
	if (now - lg->unauth_window_ms >= 1000) {
		lg->unauth_window_ms = now;
		lg->unauth_in_window = 0;
	}
	if (lg->unauth_in_window < AUDIT_UNAUTH_PER_SEC) {
		lg->unauth_in_window++;
		return true;
	}
	if (lg->unauth_suppressed++ == 0)
		lg->unauth_since_us = now_real_us();
	return false;
}

static void
unauth_summary(struct audit_log *lg)
{
	if (lg->unauth_suppressed == 0 || lg->srv == NULL)
		return;
	char since[32];
	time_fmt_rfc3339(lg->unauth_since_us, since);
	json_t *res = json_pack("{s:I, s:s}", "suppressed", (json_int_t)lg->unauth_suppressed,
	                        "since", since);
	struct audit_event e = {
	    .action = "auth.fail", .decision = "deny", .outcome = "suppressed", .resources = res};
	if (audit_emit(lg->srv, &e) == 0)
		lg->unauth_suppressed = 0;
	json_decref(res);
}

/* A checkpoint: a record naming the chain's head (the record before it) with a JWS over
 * {iss, seq, hash, iat} signed by the agent-identity key when it is on (verifiers use the
 * JWKS the server publishes): someone who rewrites the log after it, or cuts its tail,
 * cannot produce a signed head that matches. Unsigned (outcome "unsigned") without a key. */
static void
checkpoint(struct audit_log *lg, const char *trigger)
{
	struct server *s = lg->srv;
	struct audit_chain head = lg->f.chain;
	if (head.seq == 0 || head.seq == lg->cp_seq)
		return; /* nothing since the last one */
	json_t *res = json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)head.seq, "hash", head.last,
	                        "trigger", trigger);
	char *jws = NULL;
	if (s->agent_identity) {
		json_t *pl =
		    json_pack("{s:s, s:I, s:s, s:I}", "iss",
		              agent_identity_issuer(s->agent_identity), "seq", (json_int_t)head.seq,
		              "hash", head.last, "iat", (json_int_t)(now_real_us() / 1000000));
		jws = agent_identity_sign(s->agent_identity, pl);
		json_decref(pl);
		if (jws)
			json_object_set_new(res, "jws", json_string(jws));
	}
	struct audit_event e = {.action = AUDIT_CHECKPOINT_ACTION,
	                        .outcome = jws ? "signed" : "unsigned",
	                        .resources = res};
	if (audit_emit(s, &e) == 0) {
		lg->cp_seq = lg->f.chain.seq;
		lg->cp_at_ms = now_mono_ms();
	}
	free(jws);
	json_decref(res);
}

static void
outbox_tick(struct loop *l, void *arg)
{
	struct audit_log *lg = arg;
	lg->outbox_timer = loop_timer_add(l, OUTBOX_POLL_MS, outbox_tick, lg);
	unauth_summary(lg);
	outbox_drain(lg);
	outbox_flush(lg);
	uint64_t since = lg->f.chain.seq - lg->cp_seq;
	if (lg->cp_at_ms == 0)
		lg->cp_at_ms = now_mono_ms(); /* the first minute counts from start */
	if (since >= AUDIT_CHECKPOINT_EVERY ||
	    (since > 0 && now_mono_ms() - lg->cp_at_ms >= AUDIT_CHECKPOINT_MS))
		checkpoint(lg, "periodic");
}

struct outbox_rows {
	int64_t *ids;
	size_t n;
	int64_t oldest_us; /* the earliest record time among them */
};

static void
oldest(int64_t *oldest_us, const json_t *rec)
{
	int64_t t;
	const char *ts = json_string_value(json_object_get(rec, "time"));
	if (ts && time_parse_rfc3339(ts, &t) == 0 && t < *oldest_us)
		*oldest_us = t;
}

static int
outbox_row(void *arg, int64_t id, json_t *rec)
{
	struct outbox_rows *o = arg;
	o->ids = xreallocarray(o->ids, o->n + 1, sizeof(*o->ids));
	o->ids[o->n++] = id;
	oldest(&o->oldest_us, rec);
	return 0;
}

/* An event row that still holds its record: to be appended by the drain (ev_retry, in
 * log order) unless the file has it already. */
static int
event_row(void *arg, const char *event_id, const char *text)
{
	void **a = arg;
	struct audit_log *lg = a[0];
	json_t *rec = json_loads(text, 0, NULL);
	oldest(a[1], rec);
	json_decref(rec);
	idlist_push(&lg->ev_retry, event_id);
	return 0;
}

/* After a crash, outbox rows and event rows' records may already be in the file
 * (appended, not yet cleared): the records that carry their outbox_id, or the tool.call
 * records naming their event (request_id). They were appended after the rows were made,
 * so reading back from the end until a record a minute older than the oldest row finds
 * them all (clocks that step back by more than that are not covered). */
#define OUTBOX_RECOVER_SLACK_US (60 * 1000000LL)
static int
outbox_recover(struct audit_log *lg, char *err, size_t errlen)
{
	struct outbox_rows o = {.oldest_us = INT64_MAX};
	struct buf b;
	int r = 0;
	buf_init(&b, AUDIT_LINE_MAX + 2);
	int64_t after = 0;
	size_t before;
	do { /* every row: the table holds about a second's worth */
		before = o.n;
		if (audit_store_outbox_list(lg->srv->db, after, 1024, outbox_row, &o) != 0) {
			snprintf(err, errlen, "cannot read the audit outbox");
			r = AL_E_IO;
			goto out;
		}
		if (o.n > 0)
			after = o.ids[o.n - 1];
	} while (o.n - before == 1024);
	/* the agent loop's records still in event rows: looked for only when the last run
	 * stopped before its flush cleared the flag (a scan of the events table) */
	int64_t flag = 0;
	void *arg[2] = {lg, &o.oldest_us};
	if (db_seq_get(lg->srv->db, AUDIT_EV_FLAG, &flag) != 0 ||
	    (flag != 0 && event_store_audit_pending(lg->srv->db, event_row, arg) != 0)) {
		snprintf(err, errlen, "cannot read the audit records held in events");
		r = AL_E_IO;
		goto out;
	}
	lg->ev_flag = flag != 0;
	for (size_t i = lg->n;
	     o.n + lg->ev_retry.n > 0 && i-- > 0 && lg->n - i <= AUDIT_QUERY_MAX_SCAN;) {
		if ((r = read_line(lg, i, &b)) != 0) {
			snprintf(err, errlen, "%s: read error", lg->f.path);
			goto out;
		}
		json_t *rec = json_loadb(b.data, b.len, 0, NULL);
		json_t *oid = json_object_get(json_object_get(rec, "resources"), "outbox_id");
		const char *ts = json_string_value(json_object_get(rec, "time"));
		int64_t t = INT64_MAX;
		if (ts)
			time_parse_rfc3339(ts, &t);
		if (json_is_integer(oid) && id_in(o.ids, o.n, json_integer_value(oid))) {
			lg->seen = xreallocarray(lg->seen, lg->nseen + 1, sizeof(*lg->seen));
			lg->seen[lg->nseen++] = json_integer_value(oid);
		}
		/* an event row's record: a tool.call through the outbox naming its event */
		const char *rid = json_string_value(json_object_get(rec, "request_id"));
		const char *act = json_string_value(json_object_get(rec, "action"));
		if (oid == NULL && rid && act && strcmp(act, "tool.call") == 0 &&
		    idlist_has(&lg->ev_retry, rid) && !idlist_has(&lg->ev_seen, rid))
			idlist_push(&lg->ev_seen, rid);
		json_decref(rec);
		if (t < o.oldest_us - OUTBOX_RECOVER_SLACK_US)
			break;
	}
out:
	free(o.ids);
	buf_free(&b);
	return r;
}

static void
staged_free(struct staged *st)
{
	audit_text_free(&st->t);
	free(st->event_id);
	st->event_id = NULL;
}

static void
staged_drop(struct audit_log *lg, size_t from)
{
	for (size_t i = from; i < lg->nstaged; i++)
		staged_free(&lg->staged[i]);
	lg->nstaged = 0;
}

/* The agent loop's records ride on its own transaction (audit_tool_uses_tx); appended
 * here from memory right after the commit. Not committed: they are gone with it. */
void
audit_outbox_move(struct server *s, bool committed)
{
	struct audit_log *lg = s->audit;
	if (lg == NULL)
		return;
	size_t i = 0;
	if (committed && lg->ev_flag_tx)
		lg->ev_flag = true;
	lg->ev_flag_tx = false;
	if (committed && lg->ev_retry.n > 0)
		ev_drain(lg); /* older records first */
	for (; committed && lg->ev_retry.n == 0 && i < lg->nstaged; i++) {
		if (outbox_append_staged(lg, &lg->staged[i]) != 0)
			break;
		staged_free(&lg->staged[i]);
	}
	/* the rest wait in their rows for the timer's drain, in order */
	for (size_t k = i; committed && k < lg->nstaged; k++)
		idlist_push(&lg->ev_retry, lg->staged[k].event_id);
	staged_drop(lg, i);
}

void
audit_outbox_flush(struct server *s)
{
	if (s->audit && s->db)
		outbox_flush(s->audit);
}

int
audit_settle(struct server *s)
{
	struct audit_log *lg = s->audit;
	if (lg == NULL || s->db == NULL)
		return 0;
	ev_drain(lg);
	outbox_flush(lg);
	return lg->ev_retry.n > 0 || lg->ev_moved.n > 0 ? AL_E_IO : 0;
}

int
audit_open(struct server *s)
{
	char err[600], *path = NULL;
	const char *p = s->cfg.audit_file;
	if (p == NULL || p[0] == '\0')
		p = path = xasprintf("%s/audit.jsonl", s->cfg.data_dir);
	int r = audit_log_open(p, &s->audit, err, sizeof err);
	if (r != 0) {
		log_error("cannot open the audit log", "error", err);
	} else {
		char n[24];
		snprintf(n, sizeof n, "%llu", (unsigned long long)s->audit->f.chain.seq);
		log_info("audit log open", "file", p, "last_seq", n);
		s->audit->srv = s;
		if (s->loop && s->db) {
			if ((r = outbox_recover(s->audit, err, sizeof err)) != 0) {
				log_error("cannot open the audit log", "error", err);
				audit_log_free(s->audit);
				s->audit = NULL;
			} else {
				outbox_tick(s->loop, s->audit);
			}
		}
	}
	free(path);
	return r;
}

void
audit_close(struct server *s)
{
	if (s->audit)
		unauth_summary(s->audit);
	if (s->audit && s->audit->outbox_timer) {
		loop_timer_cancel(s->loop, s->audit->outbox_timer);
		outbox_flush(s->audit);
	}
	if (s->audit && s->audit->srv)
		checkpoint(s->audit, "shutdown");
	audit_log_free(s->audit);
	s->audit = NULL;
}

/* The failure accounting of every append: r is the append's result, returned. */
static int
append_done(struct server *s, int r, const char *action, const char *request_id)
{
	struct audit_log *lg = s->audit;
	if (r != 0) {
		lg->failed++;
		lg->lost++;
		lg->broken = true;
		lg->retry_at_ms = now_mono_ms() + RETRY_MS;
		log_error("AUDIT LOG WRITE FAILED: the action is not in the audit log", "file",
		          lg->f.path, "action", action, "request_id", request_id, "error",
		          al_strerror(r));
		return r;
	}
	lg->written++;
	if (lg->broken) {
		lg->broken = false;
		lg->lost = 0;
	}
	return 0;
}

/* Appends a record object (the outbox rows read back) with the accounting. */
static int
audit_append_record(struct server *s, json_t *rec, const char *action, bool sync)
{
	struct audit_log *lg = s->audit;
	int r = sync ? audit_log_append(lg, rec) : audit_log_append_lazy(lg, rec);
	return append_done(s, r, action, json_string_value(json_object_get(rec, "request_id")));
}

int
audit_emit(struct server *s, const struct audit_event *e)
{
	if (s->audit == NULL)
		return 0; /* tests that build a server without the log */
	struct audit_event ev = *e;
	struct audit_text t;
	if (ev.time_us == 0)
		ev.time_us = now_real_us();
	int r = audit_text_build(&t, &ev, NULL, 0);
	if (r == 0)
		r = log_append(s->audit, NULL, &t, true);
	audit_text_free(&t);
	return append_done(s, r, e->action, e->request_id);
}

int
audit_emit_batch(struct server *s, const struct audit_event *evs, size_t n)
{
	int r = 0;
	if (s->audit == NULL)
		return 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		struct audit_event ev = evs[i];
		if (ev.time_us == 0)
			ev.time_us = now_real_us();
		json_t *rec = audit_record_new(&ev);
		r = audit_append_record(s, rec, ev.action, i + 1 == n);
		json_decref(rec);
	}
	return r;
}

int
audit_outbox_add(struct db *db, const char *action, json_t *resources)
{
	char user[128];
	struct passwd *pw = getpwuid(geteuid());
	if (pw && pw->pw_name)
		snprintf(user, sizeof user, "cli:%s", pw->pw_name);
	else
		snprintf(user, sizeof user, "cli:uid %u", (unsigned)geteuid());
	struct audit_event e = {.time_us = now_real_us(),
	                        .sub = user,
	                        .action = action,
	                        .resources = resources,
	                        .outcome = "ok"};
	struct audit_text t;
	int r = audit_text_build(&t, &e, NULL, 0);
	if (r == 0)
		r = audit_store_outbox_add(db, t.b.data, NULL);
	audit_text_free(&t);
	json_decref(resources);
	return r == 0 ? 0 : AL_E_IO;
}

bool
audit_refusing(struct server *s)
{
	struct audit_log *lg = s->audit;
	if (lg == NULL || !lg->broken)
		return false;
	if (now_mono_ms() < lg->retry_at_ms)
		return true;
	/* try again with a record that says how many went missing */
	char lost[24];
	snprintf(lost, sizeof lost, "%llu", (unsigned long long)lg->lost);
	json_t *res = json_pack("{s:s}", "records_lost", lost);
	struct audit_event ev = {.action = "audit.recovered", .outcome = "ok", .resources = res};
	uint64_t before = lg->lost;
	int r = audit_emit(s, &ev);
	json_decref(res);
	if (r == 0) {
		snprintf(lost, sizeof lost, "%llu", (unsigned long long)before);
		log_warn("audit log writable again", "file", lg->f.path, "records_lost", lost);
	}
	return r != 0;
}

void
audit_get_stats(const struct server *s, struct audit_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (s->audit) {
		st->written = s->audit->written;
		st->failed = s->audit->failed;
	}
}

void
audit_principal(struct audit_event *e, const struct principal *p, char *buf, size_t len)
{
	buf[0] = '\0';
	e->sub = e->iss = NULL;
	e->groups = NULL;
	e->n_groups = 0;
	switch (p->kind) {
	case PRINCIPAL_USER:
		e->sub = p->user.sub;
		e->iss = p->user.iss;
		e->groups = (const char *const *)p->user.groups;
		e->n_groups = p->user.ngroups;
		return;
	case PRINCIPAL_API_KEY:
		/* the same name sessions record as their owner */
		snprintf(buf, len, "apikey:%s",
		         strcmp(p->key_id, "env:AIRLOCK_API_KEY") == 0 ? "AIRLOCK_API_KEY"
		                                                       : p->key_id);
		break;
	case PRINCIPAL_ENV_KEY:
		snprintf(buf, len, "envkey:%s", p->key_id);
		break;
	case PRINCIPAL_SESSION_TOKEN:
		snprintf(buf, len, "session-token:%s", p->work_id);
		break;
	default:
		return; /* nobody was recognised: an authentication failure */
	}
	e->sub = buf;
}

int
audit_api(struct api_call *c, const char *action, const char *decision, const char *outcome,
          json_t *resources)
{
	char sub[128];
	if (c->who.kind == PRINCIPAL_NONE && c->srv->audit && !unauth_admit(c->srv->audit)) {
		json_decref(resources);
		return 0;
	}
	struct audit_event e = {
	    .request_id = c->request_id,
	    .action = action,
	    .resources = resources,
	    .decision = decision,
	    .outcome = outcome,
	};
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	e.latency_ms = (int64_t)(now.tv_sec - c->t0.tv_sec) * 1000 +
	               (int64_t)(now.tv_nsec - c->t0.tv_nsec) / 1000000;
	audit_principal(&e, &c->who, sub, sizeof sub);
	int r = audit_emit(c->srv, &e);
	json_decref(resources);
	return r;
}

/* A session's records name its owner: the user who created it, or "apikey:<id>". */
static void
owner_principal(struct audit_event *e, const struct session_owner *o)
{
	if (o == NULL)
		return;
	e->sub = o->sub;
	e->iss = o->iss;
	e->groups = (const char *const *)o->groups;
	e->n_groups = o->ngroups;
}

int
audit_tool_use_tx(struct server *s, const char *session_id, const struct session_owner *o,
                  json_t *ev, const char **text)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	*text = NULL;
	if (s->audit == NULL || type == NULL ||
	    (strcmp(type, "agent.tool_use") != 0 && strcmp(type, "agent.mcp_tool_use") != 0 &&
	     strcmp(type, "agent.custom_tool_use") != 0))
		return 0; /* no log (tests): nobody would move the record */
	const json_t *evl = json_object_get(ev, "evaluation");
	const char *perm = json_string_value(json_object_get(ev, "evaluated_permission"));
	const char *effect = json_string_value(json_object_get(evl, "policy_effect"));
	const char *event_id = events_ensure_id(ev); /* the record names it */
	struct audit_log *lg = s->audit;
	char args[AUDIT_HEX_LEN];
	audit_args_sha256(json_object_get(ev, "input"), args);
	/* resources as members: the record is written as text, no objects built (the cost
	 * rides on every tool call's event append: docs/server/audit.md "Cost") */
	struct audit_member m[6] = {
	    {.key = "session_id", .str = session_id},
	    {.key = "type", .str = type + strlen("agent.")},
	};
	size_t nm = 2;
	static const char *const keys[][2] = {
	    {"tool_use_id", "id"}, {"tool", "name"}, {"mcp_server", "mcp_server_name"}};
	for (size_t i = 0; i < 3; i++) {
		const char *v = json_string_value(json_object_get(ev, keys[i][1]));
		if (v)
			m[nm++] = (struct audit_member){.key = keys[i][0], .str = v};
	}
	struct audit_event e = {
	    .time_us = now_real_us(),
	    .request_id = event_id,
	    .action = "tool.call",
	    .decision = perm ? perm : effect,
	    .rule = json_string_value(json_object_get(evl, "policy_rule")),
	    /* what the loop does with it next: answered at once, held for a confirmation,
	     * or handed to the worker, MCP server or client */
	    .outcome = perm && strcmp(perm, "deny") == 0  ? "denied"
	               : perm && strcmp(perm, "ask") == 0 ? "awaiting_confirmation"
	                                                  : "dispatched",
	    .args_sha256 = args,
	};
	owner_principal(&e, o);
	m[nm++] = (struct audit_member){.key = "via", .str = "outbox"};
	if (lg->nstaged == lg->capstaged) {
		lg->capstaged = lg->capstaged ? 2 * lg->capstaged : 8;
		lg->staged = xreallocarray(lg->staged, lg->capstaged, sizeof(*lg->staged));
	}
	struct staged *st = &lg->staged[lg->nstaged];
	int r = audit_text_build(&st->t, &e, m, nm);
	/* the flag first, once per flush: a crash after this commit finds the record */
	if (r == 0 && !lg->ev_flag && !lg->ev_flag_tx) {
		if ((r = db_seq_set(s->db, AUDIT_EV_FLAG, 1)) == 0)
			lg->ev_flag_tx = true;
	}
	if (r != 0) {
		audit_text_free(&st->t);
		return AL_E_IO;
	}
	st->event_id = xstrdup(event_id);
	lg->nstaged++;
	/* for the event's own row: no page of its own to write in this transaction */
	*text = st->t.b.data;
	return 0;
}

void
audit_mcp_call(struct server *s, const char *session_id, const struct session_owner *o,
               const char *server, const char *tool, const char *call_id, const char *outcome,
               int64_t latency_ms)
{
	json_t *res = json_pack("{s:s, s:s, s:s, s:s}", "session_id", session_id, "mcp_server",
	                        server, "tool", tool, "tool_use_id", call_id);
	struct audit_event e = {
	    .request_id = call_id,
	    .action = "mcp.call",
	    .resources = res,
	    .outcome = outcome,
	    .latency_ms = latency_ms,
	};
	owner_principal(&e, o);
	audit_emit(s, &e);
	json_decref(res);
}

/* ---- GET /v1/audit_events ---- */

static void
list_audit_events(struct api_call *c)
{
	struct page_req pg;
	struct time_range tr;
	json_t *data = NULL;
	uint64_t next = 0;
	if (api_page_parse(c, 20, 1000, true, &pg) != 0 || validate_query_created(c, &tr) != 0)
		return;
	if (c->srv->audit == NULL) {
		api_reply_error(c, 503, "api_error", NULL, "the audit log is not open");
		return;
	}
	struct audit_query q = {
	    .time_lo = tr.lo,
	    .time_hi = tr.hi,
	    .principal = query_get(&c->query, "principal"),
	    .session_id = query_get(&c->query, "session_id"),
	    .action = query_get(&c->query, "action"),
	    .desc = pg.desc,
	    .has_cursor = pg.has_cursor,
	    .after_seq = (uint64_t)pg.after_seq,
	    .limit = pg.limit,
	};
	if (audit_log_query(c->srv->audit, &q, &data, &next) != 0) {
		api_reply_err(c, AL_E_IO, "cannot read the audit log");
		return;
	}
	json_t *np = json_null();
	if (next != 0) {
		char *cur = api_page_cursor((int64_t)next, pg.desc);
		np = json_string(cur);
		free(cur);
	}
	api_reply_json(c, 200, json_pack("{s:o, s:o}", "data", data, "next_page", np));
}

/* Server API keys, and users whose role is admin (auth_user_may lists no lower role for
 * this route, so only admins pass). */
const struct api_route audit_routes[] = {
    {"GET", "/v1/audit_events", CREDS_API, list_audit_events},
    {NULL, NULL, 0, NULL},
};

void
audit_answers(struct api_call *c, const char *session_id, const json_t *events)
{
	size_t i;
	const json_t *ev;
	json_array_foreach(events, i, ev)
	{
		const char *type = json_string_value(json_object_get(ev, "type"));
		const char *ref = json_string_value(json_object_get(ev, "tool_use_id"));
		if (type == NULL)
			continue;
		if (strcmp(type, "user.custom_tool_result") == 0)
			ref = json_string_value(json_object_get(ev, "custom_tool_use_id"));
		json_t *res =
		    json_pack("{s:s, s:s?, s:s?}", "session_id", session_id, "tool_use_id", ref,
		              "event_id", json_string_value(json_object_get(ev, "id")));
		if (strcmp(type, "user.tool_confirmation") == 0)
			audit_api(c, "tool.confirm",
			          json_string_value(json_object_get(ev, "result")), "ok", res);
		else if (strcmp(type, "user.tool_result") == 0 ||
		         strcmp(type, "user.custom_tool_result") == 0)
			audit_api(c, "tool.result", NULL,
			          json_is_true(json_object_get(ev, "is_error")) ? "error" : "ok",
			          res);
		else
			json_decref(res);
	}
}
