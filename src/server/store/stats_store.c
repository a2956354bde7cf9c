/* The operator's aggregates; see stats_store.h. Plain SQL both engines take (CASE, not
 * SQLite's SUM over a boolean). */
#include <stdbool.h>
#include <stdio.h>

#include "db.h"
#include "err.h"
#include "stats_store.h"

int
stats_store_sessions_by_status(struct db *db, void (*fn)(void *arg, const char *status, int64_t n),
                               void *arg)
{
	struct db_stmt *st = NULL;
	int rc;
	if (db_prepare(db,
	               "SELECT status, count(*) FROM sessions WHERE archived_at IS NULL "
	               "GROUP BY status ORDER BY status",
	               &st) != 0)
		return AL_E_IO;
	while ((rc = db_step(st)) == DB_ROW) {
		const char *status = db_col_text(st, 0);
		if (status != NULL)
			fn(arg, status, db_col_int64(st, 1));
	}
	db_finalize(st);
	return rc == DB_DONE ? 0 : AL_E_IO;
}

int
stats_store_work_by_environment(struct db *db, unsigned max,
                                void (*fn)(void *arg, const char *environment_id, int64_t queued,
                                           int64_t leased),
                                void *arg, bool *more)
{
	struct db_stmt *st = NULL;
	unsigned n = 0;
	int rc;
	*more = false;
	if (db_prepare(db,
	               "SELECT environment_id, "
	               "  COALESCE(SUM(CASE WHEN state = 'queued' AND delivered_at IS NULL "
	               "    THEN 1 ELSE 0 END), 0), "
	               "  COALESCE(SUM(CASE WHEN state = 'queued' AND delivered_at IS NULL "
	               "    THEN 0 ELSE 1 END), 0) "
	               "FROM work WHERE state IN ('queued', 'starting', 'active', 'stopping') "
	               "GROUP BY environment_id ORDER BY environment_id LIMIT ?",
	               &st) != 0)
		return AL_E_IO;
	db_bind_int64(st, 1, (int64_t)max + 1);
	while ((rc = db_step(st)) == DB_ROW) {
		const char *env = db_col_text(st, 0);
		if (++n > max) {
			*more = true;
			continue;
		}
		if (env != NULL)
			fn(arg, env, db_col_int64(st, 1), db_col_int64(st, 2));
	}
	db_finalize(st);
	return rc == DB_DONE ? 0 : AL_E_IO;
}
