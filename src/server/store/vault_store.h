/* The vaults and vault_credentials tables. The only place with SQL on them
 * (docs/server/storage.md); secrets arrive here sealed (vault_seal.c) and leave sealed. */
#ifndef AL_SERVER_VAULT_STORE_H
#define AL_SERVER_VAULT_STORE_H

#include "doc_store.h"

struct db;

/* A page of vaults (scope_id unused). */
int vault_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                     struct doc_page *out);
/* A page of one vault's credentials (scope_id: the vault id). */
int vault_store_list_credentials(struct db *db, const char *vault_id, const struct doc_list *q,
                                 struct doc_page *out);

#endif
