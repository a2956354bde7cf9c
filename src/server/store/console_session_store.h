/* The console_sessions table: the web console's signed-in browsers (docs/server/console.md),
 * kept in the database so that a restarted server, or another replica behind the same load
 * balancer, knows them. A row is keyed by the SHA-256 of the cookie's value: the cookie is
 * a bearer secret and never stored as it is. And console_sign_ons: the single sign-ons in
 * progress, for the same reason. The only place with SQL on both (docs/server/storage.md). */
#ifndef AL_SERVER_CONSOLE_SESSION_STORE_H
#define AL_SERVER_CONSOLE_SESSION_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct db;

/* Who a session acts as, as the API's auth code records a principal. */
#define CONSOLE_SESSION_ENV_KEY "env_key" /* AIRLOCK_API_KEY */
#define CONSOLE_SESSION_KEY "key"         /* an issued server key */
#define CONSOLE_SESSION_USER "user"       /* a single sign-on user */

struct console_session_row {
	char kind[8];         /* one of the three above */
	char csrf[64];        /* the CSRF token the console's script sends in its header */
	char key_id[80];      /* the key's id, or "user:<sub>" */
	char key_hash[65];    /* SHA-256 of the key that signed in ("" for a user) */
	json_t *user;         /* a user's identity (console.c's shape), NULL otherwise; owned */
	int64_t created_at;   /* unix µs */
	int64_t last_seen_at; /* unix µs, written at most once a minute */
	int64_t expires_at;   /* unix µs: the latest it may live (max age, a user's token) */
};

/* Frees row->user. */
void console_session_row_reset(struct console_session_row *row);

/* Adds a session under id_hash (committed when it returns 0; AL_E_IO otherwise). */
int console_session_store_insert(struct db *db, const char *id_hash,
                                 const struct console_session_row *row);
/* The session with this hash: 0, AL_E_NOTFOUND or AL_E_IO. The caller resets out. */
int console_session_store_find(struct db *db, const char *id_hash, struct console_session_row *out);
/* Moves last_seen_at to now when it is at least min_step_us old (one write a minute
 * at most, whatever the request rate): 0 or AL_E_IO. */
int console_session_store_touch(struct db *db, const char *id_hash, int64_t now,
                                int64_t min_step_us);
/* Ends one session (sign-out, expiry, its key revoked): 0 (also when already gone) or
 * AL_E_IO. */
int console_session_store_delete(struct db *db, const char *id_hash);
/* Deletes the sessions past expires_at or idle since before idle_before, then, past
 * max_rows, the least recently seen: 0 or AL_E_IO. */
int console_session_store_sweep(struct db *db, int64_t now, int64_t idle_before, int64_t max_rows);

/* Single sign-ons in progress (the console_sign_ons table): a one-time state, keyed by
 * its SHA-256, and the PKCE verifier that goes with it. add first sweeps the expired
 * ones and, past max_rows, the oldest; then inserts: 0 or AL_E_IO. take deletes the row
 * and gives its verifier (NUL-terminated, at most verifier_len - 1 bytes): 0, or
 * AL_E_NOTFOUND when no such state is waiting or it expired (either way it is gone, so a
 * state is good once, on every replica), or AL_E_IO. */
int console_session_store_sign_on_add(struct db *db, const char *state_hash, const char *verifier,
                                      int64_t now, int64_t expires_at, int64_t max_rows);
int console_session_store_sign_on_take(struct db *db, const char *state_hash, int64_t now,
                                       char *verifier, size_t verifier_len);

#endif
