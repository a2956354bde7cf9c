/* The session event log's write side and the SSE hub: appends stored through
 * event_store.c, then fanned out to the streams subscribed to the session. See
 * events.h and docs/server/events.md.
 *
 * Ordering rule: an event is committed before any stream sees it. Appends inside a
 * transaction queue their frames in `pending`; events_publish() sends them once the
 * caller has committed, so a client that opened the stream and then read history
 * sees every event at least once and de-duplicates by id.
 *
 * Several replicas on one PostgreSQL: an append notifies the others when it commits
 * (event_store_insert); each replica drains notifications as soon as they arrive (the
 * LISTEN connection's socket is watched by the loop; those libpq read along with an
 * answer are announced by db_on_notes) and sends its streams of that session what they
 * have not seen, read from the log (seq order is commit order: the log's sequence row is
 * locked until commit). Local appends take the same read, so a stream never skips an
 * event another replica committed just before. A slow timer (cfg.notify_sweep_ms)
 * drains too, in case a wake-up was missed, and rewatches the socket once a lost
 * database is back. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "db.h"
#include "doc_store.h"
#include "err.h"
#include "event_store.h"
#include "events.h"
#include "server.h"
#include "sse.h"
#include "util.h"
#include "xalloc.h"

#define HUB_BUCKETS 4096
#define HUB_CATCHUP_MAX 500 /* log rows per catch-up read */

/* One open event stream of a session, owned by the route that opened it. */
struct events_sub {
	struct events_sub *next;
	char session_id[80];
	bool delta_message;
	bool delta_thinking;
	int64_t last_seq; /* the last persisted event this stream was sent */
	const struct events_sub_ops *ops;
	void *arg;
};

struct pending_frame {
	int64_t seq;
	char *session_id;
	char *frame;
	size_t len;
};

struct sse_hub {
	struct events_sub *buckets[HUB_BUCKETS];
	size_t nstreams;
	struct pending_frame *pending;
	size_t npending;
	struct loop_timer *ping_timer;
	bool shared;                   /* other replicas write the log too (PostgreSQL) */
	struct loop_timer *note_timer; /* drains their notifications (safety) */
	struct loop_timer *note_kick;  /* a drain soon: db_on_notes fired */
	/* our dup of the LISTEN socket, watched for readability: a dup so that libpq closing
	 * its own descriptor on a reconnect never leaves the loop watching a number that an
	 * accepted client may get next (-1: none, the database is down) */
	int note_fd;
	unsigned note_fd_gen;
	unsigned db_gen; /* the connection the LISTEN is on */
	/* the work queue's wake-up for items queued on another replica */
	void (*work_queued)(struct server *s, const char *env_id);
	void (*on_remote)(struct server *s, const char *sid); /* events_on_remote_append */
};

static unsigned
bucket_of(const char *session_id)
{
	/* FNV-1a: ids are random, any decent spread will do. */
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)session_id; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % HUB_BUCKETS;
}

/* One SSE frame (lib/sse.c): `id:` for persisted events, `event:` equal to the JSON
 * type, compact JSON data. */
static char *
frame_json(const char *id, const char *type, const json_t *ev, size_t *len)
{
	struct buf b;
	char *data = json_dumps(ev, JSON_COMPACT);
	buf_init(&b, 64 * 1024 * 1024);
	if (data == NULL || sse_frame(&b, type, id, data) != 0)
		buf_reset(&b);
	free(data);
	*len = b.len;
	return buf_steal(&b);
}

/* seq > 0: a persisted event, sent once to each stream (the catch-up read and a
 * notification may both offer it) */
static void
hub_send(struct server *s, const char *session_id, int64_t seq, const char *frame, size_t len,
         const char *delta_kind)
{
	struct events_sub *st = s->hub->buckets[bucket_of(session_id)];
	while (st) {
		struct events_sub *next = st->next; /* a failed write closes later, not now */
		if (strcmp(st->session_id, session_id) == 0 && seq > 0 && seq <= st->last_seq) {
			st = next;
			continue;
		}
		if (strcmp(st->session_id, session_id) == 0) {
			if (seq > 0)
				st->last_seq = seq;
			bool want =
			    delta_kind == NULL ||
			    (strcmp(delta_kind, "agent.message") == 0 && st->delta_message) ||
			    (strcmp(delta_kind, "agent.thinking") == 0 && st->delta_thinking);
			if (want)
				st->ops->write(st->arg, frame, len);
		}
		st = next;
	}
}

const char *
events_answer_key(const json_t *ev, const char *type)
{
	if (strcmp(type, "user.tool_result") == 0 || strcmp(type, "user.tool_confirmation") == 0 ||
	    strcmp(type, "agent.tool_result") == 0)
		return json_string_value(json_object_get(ev, "tool_use_id"));
	if (strcmp(type, "user.custom_tool_result") == 0)
		return json_string_value(json_object_get(ev, "custom_tool_use_id"));
	if (strcmp(type, "agent.mcp_tool_result") == 0)
		return json_string_value(json_object_get(ev, "mcp_tool_use_id"));
	return NULL;
}

const char *
events_ensure_id(json_t *ev)
{
	if (!json_is_string(json_object_get(ev, "id"))) {
		char *id = id_new("sevt_");
		json_object_set_new(ev, "id", json_string(id));
		free(id);
	}
	return json_string_value(json_object_get(ev, "id"));
}

int
events_append_tx(struct server *s, const char *session_id, json_t *ev, bool processed)
{
	return events_append_audited_tx(s, session_id, ev, processed, NULL);
}

int
events_append_audited_tx(struct server *s, const char *session_id, json_t *ev, bool processed,
                         const char *audit)
{
	int r;
	const char *type = json_string_value(json_object_get(ev, "type"));
	if (type == NULL)
		return AL_E_INVAL;
	events_ensure_id(ev);
	int64_t now = now_real_us();
	json_object_set_new(ev, "processed_at", processed ? doc_store_time(now) : json_null());
	const char *id = json_string_value(json_object_get(ev, "id"));
	struct event_row row = {.id = id,
	                        .session_id = session_id,
	                        .type = type,
	                        .created_at = now,
	                        .processed_at = processed ? now : 0,
	                        .answers = events_answer_key(ev, type),
	                        .doc = ev,
	                        .audit = audit};
	int64_t seq = 0;
	if ((r = event_store_insert(s->db, &row, &seq)) != 0)
		return r;
	struct sse_hub *h = s->hub;
	if (h) {
		h->pending = xreallocarray(h->pending, h->npending + 1, sizeof(*h->pending));
		struct pending_frame *pf = &h->pending[h->npending++];
		pf->seq = seq;
		pf->session_id = xstrdup(session_id);
		pf->frame = frame_json(id, type, ev, &pf->len);
	}
	return 0;
}

struct catchup {
	struct server *s;
	const char *session_id;
	unsigned rows;
	int64_t last;
};

static void
catchup_row(void *arg, int64_t seq, json_t *doc)
{
	struct catchup *cu = arg;
	const char *id = json_string_value(json_object_get(doc, "id"));
	const char *type = json_string_value(json_object_get(doc, "type"));
	size_t len;
	cu->rows++;
	cu->last = seq;
	if (id == NULL || type == NULL)
		return;
	char *f = frame_json(id, type, doc, &len);
	hub_send(cu->s, cu->session_id, seq, f, len, NULL);
	free(f);
}

/* Sends the session's streams what the log holds past the oldest of their positions. */
static void
catch_up(struct server *s, const char *session_id)
{
	int64_t from = -1;
	for (struct events_sub *st = s->hub->buckets[bucket_of(session_id)]; st; st = st->next)
		if (strcmp(st->session_id, session_id) == 0 && (from < 0 || st->last_seq < from))
			from = st->last_seq;
	if (from < 0)
		return; /* no stream of it here */
	struct catchup cu = {.s = s, .session_id = session_id, .last = from};
	do {
		cu.rows = 0;
		if (event_store_after(s->db, session_id, cu.last, HUB_CATCHUP_MAX, catchup_row,
		                      &cu) != 0)
			return; /* the next notification or reconnect retries */
	} while (cu.rows == HUB_CATCHUP_MAX);
}

void
events_publish(struct server *s)
{
	struct sse_hub *h = s->hub;
	if (h == NULL)
		return;
	/* Swap out first: a write may close a stream whose owner appends more. */
	struct pending_frame *p = h->pending;
	size_t n = h->npending;
	h->pending = NULL;
	h->npending = 0;
	for (size_t i = 0; i < n; i++) {
		if (h->shared)
			catch_up(s, p[i].session_id);
		else
			hub_send(s, p[i].session_id, p[i].seq, p[i].frame, p[i].len, NULL);
		free(p[i].session_id);
		free(p[i].frame);
	}
	free(p);
}

void
events_discard(struct server *s)
{
	struct sse_hub *h = s->hub;
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->npending; i++) {
		free(h->pending[i].session_id);
		free(h->pending[i].frame);
	}
	free(h->pending);
	h->pending = NULL;
	h->npending = 0;
}

int
events_append(struct server *s, const char *session_id, json_t *ev, bool processed)
{
	int r;
	if ((r = db_begin(s->db)) != 0)
		return r;
	if ((r = events_append_tx(s, session_id, ev, processed)) != 0 ||
	    (r = db_commit(s->db)) != 0) {
		db_rollback(s->db);
		events_discard(s);
		return r;
	}
	events_publish(s);
	return 0;
}

int
events_mark_processed_tx(struct server *s, const char *event_id)
{
	return event_store_mark_processed(s->db, event_id, now_real_us());
}

void
events_delta_start(struct server *s, const char *session_id, const char *event_id,
                   const char *event_type)
{
	if (s->hub == NULL)
		return;
	json_t *o = json_pack("{s:s, s:{s:s, s:s}}", "type", "event_start", "event", "type",
	                      event_type, "id", event_id);
	size_t len;
	char *f = frame_json(NULL, "event_start", o, &len);
	hub_send(s, session_id, 0, f, len, event_type);
	free(f);
	json_decref(o);
}

void
events_delta_text(struct server *s, const char *session_id, const char *event_id, unsigned index,
                  const char *text)
{
	if (s->hub == NULL)
		return;
	json_t *o = json_pack("{s:s, s:s, s:{s:s, s:I, s:{s:s, s:s}}}", "type", "event_delta",
	                      "event_id", event_id, "delta", "type", "content_delta", "index",
	                      (json_int_t)index, "content", "type", "text", "text", text);
	size_t len;
	char *f = frame_json(NULL, "event_delta", o, &len);
	hub_send(s, session_id, 0, f, len, "agent.message");
	free(f);
	json_decref(o);
}

json_t *
events_get(struct server *s, const char *session_id, const char *event_id)
{
	return event_store_get(s->db, session_id, event_id);
}

json_t *
events_find_answer(struct server *s, const char *session_id, const char *tool_use_id,
                   const char *answer_type)
{
	return event_store_find_answer(s->db, session_id, tool_use_id, answer_type);
}

struct events_sub *
events_subscribe(struct server *s, const char *session_id, bool delta_message, bool delta_thinking,
                 const struct events_sub_ops *ops, void *arg)
{
	struct events_sub *st = xcalloc(1, sizeof(*st));
	snprintf(st->session_id, sizeof(st->session_id), "%s", session_id);
	st->delta_message = delta_message;
	st->delta_thinking = delta_thinking;
	st->ops = ops;
	st->arg = arg;
	/* a stream starts at the log's end, as it does on one server: history is a list */
	if (s->hub->shared)
		event_store_last_seq(s->db, session_id, &st->last_seq);
	unsigned b = bucket_of(session_id);
	st->next = s->hub->buckets[b];
	s->hub->buckets[b] = st;
	s->hub->nstreams++;
	return st;
}

void
events_unsubscribe(struct server *s, struct events_sub *target)
{
	struct events_sub **pp = &s->hub->buckets[bucket_of(target->session_id)];
	while (*pp) {
		if (*pp == target) {
			*pp = target->next;
			s->hub->nstreams--;
			break;
		}
		pp = &(*pp)->next;
	}
	free(target);
}

/* The hub drops a subscription itself: the owner is told to end its stream. */
static void
sub_end(struct events_sub *st)
{
	const struct events_sub_ops *ops = st->ops;
	void *arg = st->arg;
	free(st);
	ops->end(arg);
}

static void
ping_all(struct loop *l, void *arg)
{
	struct server *s = arg;
	static const char ping[] = "event: ping\ndata: {\"type\":\"ping\"}\n\n";
	s->hub->ping_timer = loop_timer_add(l, s->cfg.sse_ping_ms, ping_all, s);
	for (size_t b = 0; b < HUB_BUCKETS; b++)
		for (struct events_sub *st = s->hub->buckets[b]; st; st = st->next)
			st->ops->write(st->arg, ping, sizeof(ping) - 1);
}

void
events_close_streams(struct server *s, const char *session_id)
{
	struct events_sub **pp = &s->hub->buckets[bucket_of(session_id)];
	while (*pp) {
		struct events_sub *st = *pp;
		if (strcmp(st->session_id, session_id) != 0) {
			pp = &st->next;
			continue;
		}
		*pp = st->next;
		s->hub->nstreams--;
		sub_end(st);
	}
}

size_t
events_stream_count(struct server *s)
{
	return s->hub ? s->hub->nstreams : 0;
}

void
events_close_all_streams(struct server *s)
{
	if (s->hub == NULL)
		return;
	for (size_t b = 0; b < HUB_BUCKETS; b++) {
		while (s->hub->buckets[b]) {
			struct events_sub *st = s->hub->buckets[b];
			s->hub->buckets[b] = st->next;
			s->hub->nstreams--;
			sub_end(st);
		}
	}
}

struct notes {
	json_t *sids; /* sessions with new events */
	json_t *envs; /* environments with newly queued work */
};

static void
note_collect(void *arg, const char *payload)
{
	struct notes *n = arg;
	size_t k = strlen(EVENTS_NOTE_WORK);
	if (strncmp(payload, EVENTS_NOTE_WORK, k) == 0)
		json_array_append_new(n->envs, json_string(payload + k));
	else
		json_array_append_new(n->sids, json_string(payload));
}

static void note_readable(struct loop *l, int fd, int mask, void *arg);

static void
note_unwatch(struct server *s)
{
	struct sse_hub *h = s->hub;
	if (h->note_fd < 0)
		return;
	loop_fd_del(s->loop, h->note_fd);
	close(h->note_fd);
	h->note_fd = -1;
}

/* Watches the LISTEN connection's current socket, unless already watched: after a
 * reconnect (a new generation) the old dup is dropped and the new socket dup'ed. */
static void
note_watch(struct server *s)
{
	struct sse_hub *h = s->hub;
	unsigned gen = db_generation(s->db);
	if (h->note_fd >= 0 && h->note_fd_gen == gen)
		return;
	note_unwatch(s);
	int sock = db_listen_socket(s->db);
	if (sock < 0)
		return; /* down: the safety timer tries again */
	int fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (loop_fd_set(s->loop, fd, LOOP_READ, note_readable, s) != 0) {
		close(fd);
		return;
	}
	h->note_fd = fd;
	h->note_fd_gen = gen;
}

/* Other replicas' appends: each notification names a session; queued work names its
 * environment. After a reconnect some may be lost, so every stream catches up then and
 * the work queue rechecks its held polls. Collected first, acted on after: the actions
 * use the same connection. */
static void
drain_notes(struct server *s)
{
	struct sse_hub *h = s->hub;
	struct notes n = {.sids = json_array(), .envs = json_array()};
	bool lost = false;
	int r = db_notifications(s->db, note_collect, &n);
	/* a socket at its end stays readable: stop watching it until the connection is
	 * back (a reconnect announces itself through db_on_notes, or the safety timer) */
	if (r != 0)
		note_unwatch(s);
	if (r == 0 && db_generation(s->db) != h->db_gen) {
		h->db_gen = db_generation(s->db);
		lost = true;
		for (size_t b = 0; b < HUB_BUCKETS; b++)
			for (struct events_sub *st = h->buckets[b]; st; st = st->next)
				json_array_append_new(n.sids, json_string(st->session_id));
	}
	size_t i;
	json_t *v;
	json_array_foreach(n.sids, i, v)
	{
		catch_up(s, json_string_value(v));
		if (h->on_remote)
			h->on_remote(s, json_string_value(v));
	}
	if (h->on_remote && lost)
		h->on_remote(s, NULL);
	if (h->work_queued) {
		if (lost)
			h->work_queued(s, NULL);
		json_array_foreach(n.envs, i, v) h->work_queued(s, json_string_value(v));
	}
	json_decref(n.sids);
	json_decref(n.envs);
	if (r == 0)
		note_watch(s);
}

static void
note_readable(struct loop *l, int fd, int mask, void *arg)
{
	(void)l;
	(void)fd;
	(void)mask;
	drain_notes(arg);
}

static void
note_kicked(struct loop *l, void *arg)
{
	struct server *s = arg;
	(void)l;
	s->hub->note_kick = NULL;
	drain_notes(s);
}

/* db_on_notes: libpq read notifications along with an answer (or reconnected); drain
 * them once the current callback is done, not in the middle of its statements. */
static void
note_arrived(void *arg)
{
	struct server *s = arg;
	if (s->hub->note_kick == NULL)
		s->hub->note_kick = loop_timer_add(s->loop, 0, note_kicked, s);
}

static void
note_tick(struct loop *l, void *arg)
{
	struct server *s = arg;
	s->hub->note_timer = loop_timer_add(l, s->cfg.notify_sweep_ms, note_tick, s);
	drain_notes(s);
}

void
events_on_work_queued(struct server *s, void (*fn)(struct server *s, const char *env_id))
{
	if (s->hub)
		s->hub->work_queued = fn;
}

void
events_on_remote_append(struct server *s, void (*fn)(struct server *s, const char *sid))
{
	if (s->hub)
		s->hub->on_remote = fn;
}

int
events_init(struct server *s)
{
	s->hub = xcalloc(1, sizeof(*s->hub));
	s->hub->note_fd = -1;
	s->hub->ping_timer = loop_timer_add(s->loop, s->cfg.sse_ping_ms, ping_all, s);
	/* SQLite answers AL_E_UNSUPPORTED: one server, nothing to hear from */
	if (db_listen(s->db, "airlock_events") == 0) {
		s->hub->shared = true;
		s->hub->db_gen = db_generation(s->db);
		s->hub->note_timer = loop_timer_add(s->loop, s->cfg.notify_sweep_ms, note_tick, s);
		db_on_notes(s->db, note_arrived, s);
		note_watch(s);
	}
	return 0;
}

void
events_shutdown(struct server *s)
{
	if (s->hub == NULL)
		return;
	events_close_all_streams(s);
	loop_timer_cancel(s->loop, s->hub->ping_timer);
	loop_timer_cancel(s->loop, s->hub->note_timer);
	loop_timer_cancel(s->loop, s->hub->note_kick);
	if (s->hub->shared)
		db_on_notes(s->db, NULL, NULL);
	note_unwatch(s);
	events_discard(s);
	free(s->hub);
	s->hub = NULL;
}
