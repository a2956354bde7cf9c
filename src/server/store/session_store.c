/* SQLite side of the sessions table; see session_store.h. */
#include "db.h"
#include "session_store.h"

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
