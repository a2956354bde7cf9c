/* SQLite side of the work queue tables; see work_store.h. */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "err.h"
#include "work_store.h"

int
work_store_find_token(struct db *db, const char *token_hash, struct work_token_row *out)
{
	sqlite3_stmt *st = NULL;
	int r = AL_E_NOTFOUND;
	if (db_prepare(db,
	               "SELECT w.id, w.environment_id, w.session_id FROM work w "
	               "WHERE w.token_hash = ? AND w.state != 'stopped'",
	               &st) != 0)
		return AL_E_IO;
	db_bind_text(st, 1, token_hash);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *sid = db_col_text(st, 2);
		memset(out, 0, sizeof(*out));
		snprintf(out->work_id, sizeof(out->work_id), "%s", db_col_text(st, 0));
		snprintf(out->environment_id, sizeof(out->environment_id), "%s",
		         db_col_text(st, 1));
		snprintf(out->session_id, sizeof(out->session_id), "%s", sid ? sid : "");
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}
