/* SQLite side of the vault tables; see vault_store.h. */
#include "db.h"
#include "vault_store.h"

int
vault_store_list(struct db *db, const char *scope_id, const struct doc_list *q,
                 struct doc_page *out)
{
	(void)scope_id;
	return doc_store_page(db, "vaults", NULL, NULL, q, out);
}

int
vault_store_list_credentials(struct db *db, const char *vault_id, const struct doc_list *q,
                             struct doc_page *out)
{
	return doc_store_page(db, "vault_credentials", "vault_id", vault_id, q, out);
}
