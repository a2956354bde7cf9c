/* SQLite side of the sessions table; see session_store.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "doc_store.h"
#include "err.h"
#include "session_store.h"
#include "util.h"
#include "xalloc.h"

json_t *
session_store_get(struct db *db, const char *id, int *err)
{
	return db_load_doc(db, "sessions", id, err);
}

int
session_store_put(struct db *db, const char *id, const json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	int r = doc_store_change_one(db, "UPDATE sessions SET doc = ?2, status = ?3 WHERE id = ?1",
	                             id, text, json_string_value(json_object_get(doc, "status")));
	free(text);
	return r;
}

int
session_store_owner(struct db *db, const char *session_id, struct session_owner *o)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	memset(o, 0, sizeof(*o));
	if (db_prepare(db,
	               "SELECT owner_iss, owner_sub, owner_email, owner_groups FROM sessions "
	               "WHERE id = ?",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	if (db_step(st) == DB_ROW) {
		const char *iss = db_col_text(st, 0), *sub = db_col_text(st, 1);
		const char *email = db_col_text(st, 2);
		o->sub = sub ? xstrdup(sub) : NULL;
		o->iss = iss ? xstrdup(iss) : NULL;
		o->email = email ? xstrdup(email) : NULL;
		o->apikey = iss == NULL; /* API-key sessions record "apikey:<id>", no issuer */
		json_t *g = db_col_json(st, 3);
		size_t i;
		json_t *v;
		o->groups = xcalloc(json_array_size(g) + 1, sizeof(*o->groups));
		json_array_foreach(g, i, v)
		{
			if (json_is_string(v))
				o->groups[o->ngroups++] = xstrdup(json_string_value(v));
		}
		json_decref(g);
		r = 0;
	}
	db_finalize(st);
	return r;
}

void
session_owner_free(struct session_owner *o)
{
	for (size_t i = 0; i < o->ngroups; i++)
		free(o->groups[i]);
	free(o->groups);
	free(o->sub);
	free(o->iss);
	free(o->email);
	memset(o, 0, sizeof(*o));
}

bool
session_store_owned_by(struct db *db, const char *session_id, const char *iss, const char *sub)
{
	return doc_store_exists(
	    db, "SELECT 1 FROM sessions WHERE id = ? AND owner_iss = ? AND owner_sub = ?",
	    session_id, iss, sub, NULL);
}

int
session_store_set_status(struct db *db, const char *session_id, const char *status)
{
	int err;
	json_t *doc = session_store_get(db, session_id, &err);
	if (doc == NULL)
		return err;
	json_object_set_new(doc, "status", json_string(status));
	json_object_set_new(doc, "updated_at", doc_store_time(now_real_us()));
	err = session_store_put(db, session_id, doc);
	json_decref(doc);
	return err;
}

static void
add_int(json_t *dst, const char *key, const json_t *v)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return;
	json_int_t cur = json_integer_value(json_object_get(dst, key));
	json_object_set_new(dst, key, json_integer(cur + json_integer_value(v)));
}

int
session_store_add_usage(struct db *db, const char *session_id, const json_t *usage)
{
	int err;
	json_t *doc = session_store_get(db, session_id, &err);
	if (doc == NULL)
		return err;
	json_t *u = json_object_get(doc, "usage");
	if (!json_is_object(u)) {
		u = json_object();
		json_object_set_new(doc, "usage", u);
	}
	add_int(u, "input_tokens", json_object_get(usage, "input_tokens"));
	add_int(u, "output_tokens", json_object_get(usage, "output_tokens"));
	add_int(u, "cache_read_input_tokens", json_object_get(usage, "cache_read_input_tokens"));
	/* The Messages API reports cache writes both as a total and split by TTL; the
	 * session keeps the split, counting an unsplit total as 5-minute writes. */
	const json_t *cc = json_object_get(usage, "cache_creation");
	const json_t *cct = json_object_get(usage, "cache_creation_input_tokens");
	if (json_is_object(cc) || (json_is_integer(cct) && json_integer_value(cct) > 0)) {
		json_t *dst = json_object_get(u, "cache_creation");
		if (!json_is_object(dst)) {
			dst = json_object();
			json_object_set_new(u, "cache_creation", dst);
		}
		if (json_is_object(cc)) {
			add_int(dst, "ephemeral_5m_input_tokens",
			        json_object_get(cc, "ephemeral_5m_input_tokens"));
			add_int(dst, "ephemeral_1h_input_tokens",
			        json_object_get(cc, "ephemeral_1h_input_tokens"));
		} else {
			add_int(dst, "ephemeral_5m_input_tokens", cct);
		}
	}
	const json_t *stu = json_object_get(usage, "server_tool_use");
	if (json_is_object(stu)) {
		json_t *dst = json_object_get(u, "server_tool_use");
		if (!json_is_object(dst)) {
			dst = json_object();
			json_object_set_new(u, "server_tool_use", dst);
		}
		add_int(dst, "web_fetch_requests", json_object_get(stu, "web_fetch_requests"));
		add_int(dst, "web_search_requests", json_object_get(stu, "web_search_requests"));
	}
	json_object_set_new(doc, "updated_at", doc_store_time(now_real_us()));
	err = session_store_put(db, session_id, doc);
	json_decref(doc);
	return err;
}

int
session_store_loop_state_get(struct db *db, const char *session_id, json_t **state)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	*state = NULL;
	if (db_prepare(db, "SELECT loop_state FROM sessions WHERE id = ?", &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	if (db_step(st) == DB_ROW) {
		*state = db_col_json(st, 0);
		r = 0;
	}
	db_finalize(st);
	return r;
}

int
session_store_loop_state_set(struct db *db, const char *session_id, const json_t *state)
{
	char *text = state ? json_dumps(state, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	int r = doc_store_change_one(db, "UPDATE sessions SET loop_state = ? WHERE id = ?", text,
	                             session_id, NULL);
	free(text);
	return r;
}

int
session_store_list_active(struct db *db, char ***ids, size_t *n)
{
	struct db_stmt *st = NULL;
	char **v = NULL;
	size_t cnt = 0;
	if (db_prepare(db,
	               "SELECT id FROM sessions WHERE status IN ('running', 'rescheduling') "
	               "ORDER BY seq",
	               &st) != 0)
		return AL_E_IO;
	while (db_step(st) == DB_ROW) {
		v = xreallocarray(v, cnt + 1, sizeof(*v));
		v[cnt++] = xstrdup(db_col_text(st, 0));
	}
	db_finalize(st);
	*ids = v;
	*n = cnt;
	return 0;
}

int
session_store_state(struct db *db, const char *session_id, struct session_state *out)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db, "SELECT environment_id, status, archived_at FROM sessions WHERE id = ?",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	if (db_step(st) == DB_ROW) {
		snprintf(out->environment_id, sizeof(out->environment_id), "%s",
		         db_col_text(st, 0));
		snprintf(out->status, sizeof(out->status), "%s", db_col_text(st, 1));
		out->archived = !db_col_is_null(st, 2);
		r = 0;
	}
	db_finalize(st);
	return r;
}

bool
session_store_open(struct db *db, const char *session_id)
{
	return doc_store_exists(db,
	                        "SELECT 1 FROM sessions WHERE id = ? AND status != "
	                        "'terminated' AND archived_at IS NULL",
	                        session_id, NULL, NULL, NULL);
}

int64_t
session_store_count_for_environment(struct db *db, const char *environment_id)
{
	struct db_stmt *st = NULL;
	int64_t n = 0;
	if (db_prepare(db, "SELECT COUNT(*) FROM sessions WHERE environment_id = ?", &st) != 0)
		return -1;
	db_bind_text(st, 1, environment_id);
	if (db_step(st) == DB_ROW)
		n = db_col_int64(st, 0);
	db_finalize(st);
	return n;
}

int
session_store_insert(struct db *db, const struct session_new *n)
{
	struct db_stmt *st = NULL;
	char *text = json_dumps(n->doc, JSON_COMPACT);
	int r = AL_E_IO;
	int64_t seq = db_next_seq(db, "sessions");
	if (seq < 0 ||
	    db_prepare(db,
	               "INSERT INTO sessions(id, seq, environment_id, agent_id, agent_version, "
	               "status, created_at, archived_at, doc, owner_iss, owner_sub, owner_groups, "
	               "owner_email) VALUES (?, ?, ?, ?, ?, 'idle', ?, NULL, ?, ?, ?, ?, ?)",
	               &st) != 0)
		goto out;
	db_bind_text(st, 1, n->id);
	db_bind_int64(st, 2, seq);
	db_bind_text(st, 3, n->environment_id);
	db_bind_text(st, 4, n->agent_id);
	db_bind_int64(st, 5, n->agent_version);
	db_bind_int64(st, 6, n->created_at);
	db_bind_text(st, 7, text);
	db_bind_text(st, 8, n->owner_iss);
	db_bind_text(st, 9, n->owner_sub);
	db_bind_text(st, 10, n->owner_groups);
	db_bind_text(st, 11, n->owner_email);
	if (db_step(st) == DB_DONE)
		r = 0;
out:
	db_finalize(st);
	free(text);
	return r;
}

int
session_store_archive(struct db *db, const char *id, const json_t *doc, int64_t now)
{
	struct db_stmt *st = NULL;
	int r;
	if ((r = session_store_put(db, id, doc)) != 0)
		return r;
	if (db_prepare(db, "UPDATE sessions SET archived_at = ? WHERE id = ?", &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, now);
	db_bind_text(st, 2, id);
	r = db_step(st) == DB_DONE ? 0 : AL_E_IO;
	db_finalize(st);
	return r;
}

int
session_store_delete(struct db *db, const char *id)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare(db, "DELETE FROM sessions WHERE id = ?", &st) != 0)
		return r;
	db_bind_text(st, 1, id);
	if (db_step(st) == DB_DONE)
		r = 0;
	db_finalize(st);
	return r;
}

int
session_store_list(struct db *db, const struct session_list_query *q,
                   int (*fn)(void *arg, int64_t seq, json_t *doc), void *arg)
{
	struct db_stmt *st = NULL;
	char sql[1400];
	int r = 0;
	/* the JSON filters in each engine's functions, side by side */
	bool pg = db_dialect(db) == DB_DIALECT_PG;
	snprintf(sql, sizeof(sql),
	         "SELECT seq, doc FROM sessions WHERE (?1 <> 0 OR archived_at IS NULL) "
	         "AND created_at BETWEEN ?2 AND ?3 AND (?4 IS NULL OR agent_id = ?4) "
	         "AND (?5 = 0 OR agent_version = ?5) "
	         "AND (?6 IS NULL OR EXISTS (%s)) "
	         "AND (?7 IS NULL OR %s = ?7) "
	         "AND (?8 = 0 OR status IN (%s)) "
	         "AND (?10 = 0 OR seq %s ?11) "
	         "AND (?13 IS NULL OR (owner_iss = ?13 AND owner_sub = ?14)) "
	         "AND (?15 IS NULL OR environment_id = ?15) "
	         "ORDER BY seq %s LIMIT ?12",
	         pg ? "SELECT 1 FROM jsonb_array_elements(CAST(doc AS jsonb) -> 'resources') r "
	              "WHERE r ->> 'memory_store_id' = ?6"
	            : "SELECT 1 FROM json_each(doc, '$.resources') r "
	              "WHERE json_extract(r.value, '$.memory_store_id') = ?6",
	         pg ? "CAST(doc AS jsonb) ->> 'deployment_id'"
	            : "json_extract(doc, '$.deployment_id')",
	         pg ? "SELECT jsonb_array_elements_text(CAST(?9 AS jsonb))"
	            : "SELECT value FROM json_each(?9)",
	         q->walk_desc ? "<" : ">", q->walk_desc ? "DESC" : "ASC");
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, q->include_archived);
	db_bind_int64(st, 2, q->created_lo);
	db_bind_int64(st, 3, q->created_hi);
	db_bind_text(st, 4, q->agent_id);
	db_bind_int64(st, 5, q->agent_version);
	db_bind_text(st, 6, q->memory_store_id);
	db_bind_text(st, 7, q->deployment_id);
	db_bind_int64(st, 8, q->statuses_json != NULL);
	db_bind_text(st, 9, q->statuses_json);
	db_bind_int64(st, 10, q->has_cursor);
	db_bind_int64(st, 11, q->bound);
	db_bind_int64(st, 12, (int64_t)q->limit);
	db_bind_text(st, 13, q->owner_iss);
	db_bind_text(st, 14, q->owner_sub);
	db_bind_text(st, 15, q->environment_id);
	while (db_step(st) == DB_ROW) {
		json_t *doc = db_col_json(st, 1);
		if (doc == NULL)
			continue;
		if ((r = fn(arg, db_col_int64(st, 0), doc)) != 0)
			break;
	}
	db_finalize(st);
	return r;
}

/* ---- the agent loop's lease (docs/server/agent-loop.md, "One replica per session") ---- */

bool
session_store_lease_shared(struct db *db)
{
	return db_dialect(db) == DB_DIALECT_PG;
}

/* One parameter of a lease statement: text, or the int64 where t is NULL. */
struct lease_arg {
	const char *t; /* text, or NULL for the int */
	int64_t i;
};

/* Runs one UPDATE with args bound to its placeholders in order: 1 when it changed a
 * row, 0 when none, AL_E_IO. */
static int
lease_update(struct db *db, const char *sql, const struct lease_arg *args, int nargs)
{
	struct db_stmt *st = NULL;
	int r = AL_E_IO;
	if (db_prepare_cached(db, sql, &st) != 0)
		return AL_E_IO;
	for (int k = 0; k < nargs; k++) {
		if (args[k].t)
			db_bind_text(st, k + 1, args[k].t);
		else
			db_bind_int64(st, k + 1, args[k].i);
	}
	if (db_step(st) == DB_DONE)
		r = db_changes(db) > 0;
	db_cached_done(db, st);
	return r;
}

int
session_store_lease_take(struct db *db, const char *session_id, const char *owner, int64_t now,
                         int64_t until)
{
	if (!session_store_lease_shared(db))
		return 1; /* one server: the lease is ours without a write */
	/* One statement decides between racing replicas: the row is ours when nobody holds
	 * it, we do, or the holder's lease has lapsed. */
	const struct lease_arg a[] = {
	    {owner, 0}, {NULL, until}, {session_id, 0}, {owner, 0}, {NULL, now}};
	return lease_update(db,
	                    "UPDATE sessions SET loop_owner = ?, loop_lease_until = ? "
	                    "WHERE id = ? AND (loop_owner IS NULL OR loop_owner = ? "
	                    "OR loop_lease_until < ?)",
	                    a, 5);
}

int
session_store_lease_renew(struct db *db, const char *owner, int64_t until)
{
	if (!session_store_lease_shared(db))
		return 0;
	/* one statement for every session this replica runs; a lease another replica has
	 * taken over has another owner and stays theirs */
	const struct lease_arg a[] = {{NULL, until}, {owner, 0}};
	int r =
	    lease_update(db, "UPDATE sessions SET loop_lease_until = ? WHERE loop_owner = ?", a, 2);
	return r < 0 ? r : 0;
}

int
session_store_lease_release(struct db *db, const char *session_id, const char *owner,
                            int64_t seen_events)
{
	if (!session_store_lease_shared(db))
		return 1;
	/* Only when the log has not grown since the step read it: an event another replica
	 * appended meanwhile found the lease held and left the step to us. */
	const struct lease_arg a[] = {
	    {session_id, 0}, {owner, 0}, {session_id, 0}, {NULL, seen_events}};
	return lease_update(db,
	                    "UPDATE sessions SET loop_owner = NULL, loop_lease_until = NULL "
	                    "WHERE id = ? AND loop_owner = ? AND "
	                    "(SELECT COUNT(*) FROM events WHERE session_id = ?) = ?",
	                    a, 4);
}

int
session_store_lease_expire_all(struct db *db, const char *owner)
{
	/* lapsed at once: the next replica's scan takes the sessions over */
	return session_store_lease_renew(db, owner, 0);
}

int
session_store_lease_orphans(struct db *db, int64_t now, unsigned max, char ***ids, size_t *n)
{
	struct db_stmt *st = NULL;
	char **v = NULL;
	size_t cnt = 0;
	*ids = NULL;
	*n = 0;
	if (db_prepare_cached(
	        db,
	        "SELECT id FROM sessions WHERE status IN ('running', 'rescheduling') "
	        "AND (loop_owner IS NULL OR loop_lease_until < ?) ORDER BY seq LIMIT ?",
	        &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, now);
	db_bind_int64(st, 2, max);
	while (db_step(st) == DB_ROW) {
		v = xreallocarray(v, cnt + 1, sizeof(*v));
		v[cnt++] = xstrdup(db_col_text(st, 0));
	}
	db_cached_done(db, st);
	*ids = v;
	*n = cnt;
	return 0;
}
