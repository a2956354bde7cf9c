/* The skills and skill_versions tables and the bundles behind them (docs/server/skills.md):
 * the only SQL on skills and the only code under <data_dir>/skills/. A version's bundle is
 * one ustar archive, synced and renamed into place before its row commits. */
#ifndef AL_SERVER_SKILL_STORE_H
#define AL_SERVER_SKILL_STORE_H

#include <stdint.h>

#include <jansson.h>

#include "doc_store.h"

struct db;

/* Creates <data_dir>/skills/ (0700) and removes bundles whose version row is gone. */
int skill_store_init(struct db *db, const char *data_dir);
/* Syncs fd (the temporary archive at tmp), renames it to the version's bundle and syncs
 * the directory. Closes fd either way; unlinks tmp on failure. */
int skill_store_publish(const char *data_dir, int fd, const char *tmp, const char *skill_id,
                        const char *version_id);
/* Opens a version's bundle for reading. AL_E_NOTFOUND, AL_E_IO. */
int skill_store_open(const char *data_dir, const char *skill_id, const char *version_id, int *fd);
void skill_store_unlink(const char *data_dir, const char *skill_id, const char *version_id);

/* A version row (and, for a new skill, the skill row) in one transaction; the skill's
 * latest_version_id and updated_at follow. skill_doc NULL: the skill exists. */
struct skill_version_new {
	const char *skill_id, *version_id;
	const json_t *skill_doc;   /* new skill, or NULL */
	const json_t *version_doc; /* the version's wire document */
	int64_t now;
	uint64_t size;
	const char *sha256;
};
/* 0, AL_E_NOTFOUND (the skill is gone), AL_E_IO. */
int skill_store_add_version(struct db *db, const struct skill_version_new *n);

json_t *skill_store_get(struct db *db, const char *id, int *err);
int skill_store_list(struct db *db, const char *source, const struct doc_list *q,
                     struct doc_page *out);
/* Deletes the skill and its versions in one transaction: 0, AL_E_NOTFOUND, AL_E_IO. The
 * caller unlinks the bundles after (skill_store_unlink_all). */
int skill_store_delete(struct db *db, const char *id);
void skill_store_unlink_all(const char *data_dir, const char *skill_id);

/* version "latest" means the skill's latest_version_id. */
json_t *skill_store_version_get(struct db *db, const char *skill_id, const char *version, int *err);
int skill_store_version_list(struct db *db, const char *skill_id, const struct doc_list *q,
                             struct doc_page *out);
/* Deletes one version; the skill's latest becomes the newest left ("" when none). 0,
 * AL_E_NOTFOUND, AL_E_IO. */
int skill_store_version_delete(struct db *db, const char *skill_id, const char *version_id,
                               int64_t now);

/* The system-prompt text that lists the custom skills of an agent's skills[] (name,
 * description, where the worker puts them), or NULL when none resolves. Heap string. */
char *skill_store_prompt(struct db *db, const json_t *skills);

#endif
