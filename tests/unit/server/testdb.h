/* A server database in a fresh temporary directory for a unit test, and its removal
 * (the directory holds only the database's files). Include after <cmocka.h>. */
#ifndef AL_TEST_TESTDB_H
#define AL_TEST_TESTDB_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "db.h"

/* dir: a mkdtemp template, e.g. char dir[] = "/tmp/airlock-x-XXXXXX". */
static inline struct db *
testdb_open(char *dir)
{
	struct db *db = NULL;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(db_open(dir, &db), 0);
	return db;
}

static inline void
testdb_close(struct db *db, const char *dir)
{
	db_close(db);
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		char f[256];
		if (e->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "%s/%s", dir, e->d_name);
		unlink(f);
	}
	if (d)
		closedir(d);
	assert_int_equal(rmdir(dir), 0);
}

#endif
