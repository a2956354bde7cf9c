/* SQLite side of the sessions table; see session_store.h. */
#include <stdio.h>

#include "db.h"
#include "err.h"
#include "session_store.h"

int
session_store_state(struct db *db, const char *session_id, struct session_state *out)
{
	sqlite3_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db, "SELECT environment_id, status, archived_at FROM sessions WHERE id = ?",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, session_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(out->environment_id, sizeof(out->environment_id), "%s",
		         db_col_text(st, 0));
		snprintf(out->status, sizeof(out->status), "%s", db_col_text(st, 1));
		out->archived = sqlite3_column_type(st, 2) != SQLITE_NULL;
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

int64_t
session_store_count_for_environment(struct db *db, const char *environment_id)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	if (db_prepare(db, "SELECT COUNT(*) FROM sessions WHERE environment_id = ?", &st) != 0)
		return -1;
	db_bind_text(st, 1, environment_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}
