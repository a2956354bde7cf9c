/* SQLite side of the tunnels table; see tunnel_store.h. */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "tunnel_store.h"
#include "xalloc.h"

#define TUNNEL_COLS "id, seq, display_name, domain, created_at, archived_at"

static void
row_read(struct db_stmt *st, struct tunnel_row *t)
{
	const char *dn = db_col_text(st, 2);
	memset(t, 0, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "%s", db_col_text(st, 0));
	t->seq = db_col_int64(st, 1);
	if (dn) {
		t->has_display_name = true;
		snprintf(t->display_name, sizeof(t->display_name), "%s", dn);
	}
	snprintf(t->domain, sizeof(t->domain), "%s", db_col_text(st, 3));
	t->created_at = db_col_int64(st, 4);
	t->archived_at = db_col_is_null(st, 5) ? 0 : db_col_int64(st, 5);
}

int
tunnel_store_get(struct db *db, const char *id, struct tunnel_row *out)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db, "SELECT " TUNNEL_COLS " FROM tunnels WHERE id = ?", &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	if (db_step(st) == DB_ROW) {
		row_read(st, out);
		r = 0;
	}
	db_finalize(st);
	return r;
}

int
tunnel_store_insert(struct db *db, const struct tunnel_new *t)
{
	struct db_stmt *st = NULL;
	int r;
	if ((r = db_begin(db)) != 0)
		return r;
	int64_t seq = db_next_seq(db, "tunnels");
	if (seq < 0 ||
	    db_prepare(db,
	               "INSERT INTO tunnels (id, seq, display_name, domain, created_at, token_id, "
	               "token, token_hash) VALUES (?,?,?,?,?,?,?,?)",
	               &st) != 0) {
		db_rollback(db);
		return AL_E_IO;
	}
	db_bind_text(st, 1, t->id);
	db_bind_int64(st, 2, seq);
	db_bind_text(st, 3, t->display_name);
	db_bind_text(st, 4, t->domain);
	db_bind_int64(st, 5, t->created_at);
	db_bind_text(st, 6, t->token_id);
	db_bind_text(st, 7, t->token);
	db_bind_text(st, 8, t->token_hash);
	r = db_step(st) == DB_DONE ? 0 : AL_E_IO;
	db_finalize(st);
	if (r != 0) {
		db_rollback(db);
		return r;
	}
	return db_commit(db);
}

int
tunnel_store_list(struct db *db, const struct doc_list *q,
                  int (*fn)(void *arg, const struct tunnel_row *t), void *arg, bool *more)
{
	struct db_stmt *st = NULL;
	struct tunnel_row t;
	unsigned n = 0;
	int r = 0;
	char sql[512];
	*more = false;
	snprintf(sql, sizeof(sql),
	         "SELECT " TUNNEL_COLS " FROM tunnels WHERE (? <> 0 OR archived_at IS NULL) "
	         "AND (? = 0 OR seq %s ?) ORDER BY seq %s LIMIT ?",
	         q->desc ? "<" : ">", q->desc ? "DESC" : "ASC");
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, q->include_archived);
	db_bind_int64(st, 2, q->has_cursor);
	db_bind_int64(st, 3, q->after_seq);
	db_bind_int64(st, 4, (int)q->limit + 1);
	while (db_step(st) == DB_ROW) {
		if (n == q->limit) {
			*more = true;
			break;
		}
		row_read(st, &t);
		n++;
		if ((r = fn(arg, &t)) != 0)
			break;
	}
	db_finalize(st);
	return r;
}

/* Remembers the live tunnel id's current token hash as retired (tunnel_retired_tokens). */
static int
retire_token(struct db *db, const char *id, int64_t now)
{
	struct db_stmt *st = NULL;
	int r;
	if (db_prepare(db,
	               "INSERT INTO tunnel_retired_tokens (token_hash, tunnel_id, retired_at) "
	               "SELECT token_hash, id, ? FROM tunnels WHERE id = ? AND archived_at IS NULL "
	               "ON CONFLICT (token_hash) DO NOTHING",
	               &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, now);
	db_bind_text(st, 2, id);
	r = db_step(st) == DB_DONE ? 0 : AL_E_IO;
	db_finalize(st);
	return r;
}

int
tunnel_store_archive(struct db *db, const char *id, int64_t now)
{
	struct db_stmt *st = NULL;
	int r;
	if ((r = db_begin(db)) != 0)
		return r;
	if ((r = retire_token(db, id, now)) != 0)
		goto out;
	/* The token column is wiped too: an archived tunnel's token is dead for good. */
	if ((r = db_prepare(
	         db,
	         "UPDATE tunnels SET archived_at = ?, token = '', token_hash = 'archived:' || id "
	         "WHERE id = ? AND archived_at IS NULL",
	         &st)) != 0)
		goto out;
	db_bind_int64(st, 1, now);
	db_bind_text(st, 2, id);
	r = db_step(st) == DB_DONE ? 0 : AL_E_IO;
	db_finalize(st);
out:
	if (r == 0)
		return db_commit(db);
	db_rollback(db);
	return r;
}

int
tunnel_store_token(struct db *db, const char *id, char *token_id, size_t token_id_len, char **token,
                   bool *archived)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	*token = NULL;
	if (db_prepare(db, "SELECT token_id, token, archived_at FROM tunnels WHERE id = ?", &st) !=
	    0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	if (db_step(st) == DB_ROW) {
		snprintf(token_id, token_id_len, "%s", db_col_text(st, 0));
		*token = xstrdup(db_col_text(st, 1));
		*archived = !db_col_is_null(st, 2);
		r = 0;
	}
	db_finalize(st);
	return r;
}

int
tunnel_store_rotate(struct db *db, const char *id, const char *token_id, const char *token,
                    const char *token_hash, int64_t now)
{
	struct db_stmt *st = NULL;
	int r;
	if ((r = db_begin(db)) != 0)
		return r;
	if ((r = retire_token(db, id, now)) != 0)
		goto out;
	if ((r = db_prepare(db,
	                    "UPDATE tunnels SET token_id = ?, token = ?, token_hash = ?, "
	                    "rotated_at = ? WHERE id = ? AND archived_at IS NULL",
	                    &st)) != 0)
		goto out;
	db_bind_text(st, 1, token_id);
	db_bind_text(st, 2, token);
	db_bind_text(st, 3, token_hash);
	db_bind_int64(st, 4, now);
	db_bind_text(st, 5, id);
	r = db_step(st) == DB_DONE && db_changes(db) == 1 ? 0 : AL_E_IO;
	db_finalize(st);
out:
	if (r == 0)
		return db_commit(db);
	db_rollback(db);
	return r;
}

int
tunnel_store_retired_token(struct db *db, const char *token_hash, char *tunnel_id, size_t len,
                           bool *archived)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db,
	               "SELECT r.tunnel_id, t.archived_at FROM tunnel_retired_tokens r "
	               "JOIN tunnels t ON t.id = r.tunnel_id WHERE r.token_hash = ?",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, token_hash);
	if (db_step(st) == DB_ROW) {
		snprintf(tunnel_id, len, "%s", db_col_text(st, 0));
		*archived = !db_col_is_null(st, 1);
		r = 0;
	}
	db_finalize(st);
	return r;
}

/* The live tunnel id that sql (one of ours, one bound value) finds. */
static int
find_live(struct db *db, const char *sql, const char *value, char *tunnel_id, size_t len)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, value);
	if (db_step(st) == DB_ROW) {
		snprintf(tunnel_id, len, "%s", db_col_text(st, 0));
		r = 0;
	}
	db_finalize(st);
	return r;
}

int
tunnel_store_find_token(struct db *db, const char *token_hash, char *tunnel_id, size_t len)
{
	return find_live(db, "SELECT id FROM tunnels WHERE token_hash = ? AND archived_at IS NULL",
	                 token_hash, tunnel_id, len);
}

int
tunnel_store_find_domain(struct db *db, const char *domain, char *tunnel_id, size_t len)
{
	return find_live(db, "SELECT id FROM tunnels WHERE domain = ? AND archived_at IS NULL",
	                 domain, tunnel_id, len);
}

int
tunnel_store_domain(struct db *db, const char *id, bool live_only, char *domain, size_t len)
{
	struct db_stmt *st = NULL;
	domain[0] = '\0';
	if (db_prepare(db,
	               live_only ? "SELECT domain FROM tunnels WHERE id = ? AND archived_at IS NULL"
	                         : "SELECT domain FROM tunnels WHERE id = ?",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	if (db_step(st) == DB_ROW)
		snprintf(domain, len, "%s", db_col_text(st, 0));
	db_finalize(st);
	return 0;
}

/* ---- tunnel_certificates ---- */

#define CERT_COLS "id, tunnel_id, seq, fingerprint, expires_at, created_at, archived_at"

static void
cert_read(struct db_stmt *st, struct tunnel_cert_row *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", db_col_text(st, 0));
	snprintf(c->tunnel_id, sizeof(c->tunnel_id), "%s", db_col_text(st, 1));
	c->seq = db_col_int64(st, 2);
	snprintf(c->fingerprint, sizeof(c->fingerprint), "%s", db_col_text(st, 3));
	c->expires_at = db_col_is_null(st, 4) ? 0 : db_col_int64(st, 4);
	c->created_at = db_col_int64(st, 5);
	c->archived_at = db_col_is_null(st, 6) ? 0 : db_col_int64(st, 6);
}

/* One integer from a query with one text parameter; -1 on error. */
static int64_t
count_one(struct db *db, const char *sql, const char *a, const char *b)
{
	struct db_stmt *st = NULL;
	int64_t n = -1;
	if (db_prepare(db, sql, &st) != 0)
		return -1;
	db_bind_text(st, 1, a);
	if (b)
		db_bind_text(st, 2, b);
	if (db_step(st) == DB_ROW)
		n = db_col_int64(st, 0);
	db_finalize(st);
	return n;
}

int
tunnel_store_cert_insert(struct db *db, const struct tunnel_cert_new *c,
                         enum tunnel_cert_refusal *why)
{
	struct db_stmt *st = NULL;
	int r;
	*why = TUNNEL_CERT_OK;
	if ((r = db_begin(db)) != 0)
		return r;
	/* The checks and the insert share the transaction: two concurrent uploads cannot
	 * both pass the two-live limit. */
	int64_t live =
	    count_one(db,
	              "SELECT CASE WHEN archived_at IS NULL THEN 1 ELSE 0 END FROM tunnels "
	              "WHERE id = ?",
	              c->tunnel_id, NULL);
	int64_t nlive = count_one(db,
	                          "SELECT count(*) FROM tunnel_certificates WHERE tunnel_id = ? "
	                          "AND archived_at IS NULL",
	                          c->tunnel_id, NULL);
	int64_t ndup = count_one(db,
	                         "SELECT count(*) FROM tunnel_certificates WHERE tunnel_id = ? "
	                         "AND fingerprint = ? AND archived_at IS NULL",
	                         c->tunnel_id, c->fingerprint);
	if (nlive < 0 || ndup < 0) {
		r = AL_E_IO;
		goto fail;
	}
	if (live < 0) { /* no row */
		r = AL_E_NOTFOUND;
		goto fail;
	}
	if (live == 0 || ndup > 0 || nlive >= TUNNEL_CERTS_LIVE_MAX) {
		*why = live == 0  ? TUNNEL_CERT_TUNNEL_ARCHIVED
		       : ndup > 0 ? TUNNEL_CERT_DUPLICATE
		                  : TUNNEL_CERT_FULL;
		r = AL_E_CONFLICT;
		goto fail;
	}
	int64_t seq = db_next_seq(db, "tunnel_certificates");
	if (seq < 0 || db_prepare(db,
	                          "INSERT INTO tunnel_certificates (id, tunnel_id, seq, pem, "
	                          "fingerprint, expires_at, created_at) VALUES (?,?,?,?,?,?,?)",
	                          &st) != 0) {
		r = AL_E_IO;
		goto fail;
	}
	db_bind_text(st, 1, c->id);
	db_bind_text(st, 2, c->tunnel_id);
	db_bind_int64(st, 3, seq);
	db_bind_text(st, 4, c->pem);
	db_bind_text(st, 5, c->fingerprint);
	if (c->expires_at)
		db_bind_int64(st, 6, c->expires_at);
	else
		db_bind_null(st, 6);
	db_bind_int64(st, 7, c->created_at);
	r = db_step(st) == DB_DONE ? 0 : AL_E_IO;
	db_finalize(st);
	if (r != 0)
		goto fail;
	return db_commit(db);
fail:
	db_rollback(db);
	return r;
}

int
tunnel_store_cert_get(struct db *db, const char *tunnel_id, const char *id,
                      struct tunnel_cert_row *out)
{
	struct db_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(
	        db, "SELECT " CERT_COLS " FROM tunnel_certificates WHERE id = ? AND tunnel_id = ?",
	        &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, id);
	db_bind_text(st, 2, tunnel_id);
	if (db_step(st) == DB_ROW) {
		cert_read(st, out);
		r = 0;
	}
	db_finalize(st);
	return r;
}

int
tunnel_store_cert_list(struct db *db, const char *tunnel_id, const struct doc_list *q,
                       int (*fn)(void *arg, const struct tunnel_cert_row *c), void *arg, bool *more)
{
	struct db_stmt *st = NULL;
	struct tunnel_cert_row c;
	unsigned n = 0;
	int r = 0;
	char sql[512];
	*more = false;
	snprintf(sql, sizeof(sql),
	         "SELECT " CERT_COLS " FROM tunnel_certificates WHERE tunnel_id = ? AND "
	         "(? <> 0 OR archived_at IS NULL) AND (? = 0 OR seq %s ?) ORDER BY seq %s LIMIT ?",
	         q->desc ? "<" : ">", q->desc ? "DESC" : "ASC");
	if (db_prepare(db, sql, &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, tunnel_id);
	db_bind_int64(st, 2, q->include_archived);
	db_bind_int64(st, 3, q->has_cursor);
	db_bind_int64(st, 4, q->after_seq);
	db_bind_int64(st, 5, (int)q->limit + 1);
	while (db_step(st) == DB_ROW) {
		if (n == q->limit) {
			*more = true;
			break;
		}
		cert_read(st, &c);
		n++;
		if ((r = fn(arg, &c)) != 0)
			break;
	}
	db_finalize(st);
	return r;
}

int
tunnel_store_cert_archive(struct db *db, const char *tunnel_id, const char *id, int64_t now)
{
	struct db_stmt *st = NULL;
	int r;
	if (db_prepare(db,
	               "UPDATE tunnel_certificates SET archived_at = ? WHERE id = ? AND "
	               "tunnel_id = ? AND archived_at IS NULL",
	               &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, now);
	db_bind_text(st, 2, id);
	db_bind_text(st, 3, tunnel_id);
	r = db_step(st) == DB_DONE ? 0 : AL_E_IO;
	db_finalize(st);
	return r;
}

int
tunnel_store_cert_live(struct db *db, const char *tunnel_id,
                       int (*fn)(void *arg, const char *pem, const char *fingerprint), void *arg,
                       unsigned *ever)
{
	struct db_stmt *st = NULL;
	int r = 0;
	int64_t n = count_one(db, "SELECT count(*) FROM tunnel_certificates WHERE tunnel_id = ?",
	                      tunnel_id, NULL);
	if (n < 0)
		return AL_E_IO;
	*ever = (unsigned)n;
	if (db_prepare(db,
	               "SELECT pem, fingerprint FROM tunnel_certificates WHERE tunnel_id = ? AND "
	               "archived_at IS NULL ORDER BY seq",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, tunnel_id);
	while (r == 0 && db_step(st) == DB_ROW)
		r = fn(arg, db_col_text(st, 0), db_col_text(st, 1));
	db_finalize(st);
	return r;
}
