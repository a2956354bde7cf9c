/* The tunnels table: MCP tunnels, their domain and connector token. The only place with
 * SQL on tunnels (docs/server/storage.md). Only token_hash authenticates; the plaintext
 * token is kept for reveal and wiped when the tunnel is archived. */
#ifndef AL_SERVER_TUNNEL_STORE_H
#define AL_SERVER_TUNNEL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "doc_store.h"

struct db;

struct tunnel_row {
	char id[80];
	int64_t seq;
	bool has_display_name;
	char display_name[256];
	char domain[256];
	int64_t created_at;
	int64_t archived_at; /* 0 while live */
};

/* What a new tunnel is stored with; token is the connector token, token_hash its
 * SHA-256 (hex). */
struct tunnel_new {
	const char *id;
	const char *display_name; /* may be NULL */
	const char *domain;
	int64_t created_at;
	const char *token_id;
	const char *token;
	const char *token_hash;
};

/* 0, AL_E_NOTFOUND or AL_E_IO. */
int tunnel_store_get(struct db *db, const char *id, struct tunnel_row *out);
/* Adds a tunnel at the next list position, in one transaction. */
int tunnel_store_insert(struct db *db, const struct tunnel_new *t);
/* Calls fn for each tunnel of the page q asks for (include_archived, cursor, limit,
 * order; no time filter); *more: another page follows. */
int tunnel_store_list(struct db *db, const struct doc_list *q,
                      int (*fn)(void *arg, const struct tunnel_row *t), void *arg, bool *more);
/* Archives a live tunnel and wipes its token for good. 0 (also when it was archived
 * already) or AL_E_IO. */
int tunnel_store_archive(struct db *db, const char *id, int64_t now);
/* The current token of a tunnel: *token is a heap copy for secret_free. *archived tells
 * an archived tunnel (its token is gone). 0, AL_E_NOTFOUND or AL_E_IO. */
int tunnel_store_token(struct db *db, const char *id, char *token_id, size_t token_id_len,
                       char **token, bool *archived);
/* Replaces a live tunnel's token: the old one opens no new connection from now on.
 * 0 or AL_E_IO (also when the tunnel is gone or archived). */
int tunnel_store_rotate(struct db *db, const char *id, const char *token_id, const char *token,
                        const char *token_hash, int64_t now);
/* The live tunnel whose token has this hash / which serves this domain:
 * 0 (tunnel_id filled), AL_E_NOTFOUND or AL_E_IO. */
int tunnel_store_find_token(struct db *db, const char *token_hash, char *tunnel_id, size_t len);
int tunnel_store_find_domain(struct db *db, const char *domain, char *tunnel_id, size_t len);
/* The tunnel whose rotation or archive retired this token hash; *archived says whether
 * the tunnel is archived now. 0, AL_E_NOTFOUND (never one of ours) or AL_E_IO. */
int tunnel_store_retired_token(struct db *db, const char *token_hash, char *tunnel_id, size_t len,
                               bool *archived);
/* The tunnel's domain ("" when unknown, or archived with live_only). 0 or AL_E_IO. */
int tunnel_store_domain(struct db *db, const char *id, bool live_only, char *domain, size_t len);

/* ---- tunnel_certificates: the customer CAs that inner TLS trusts ---- */
#define TUNNEL_CERTS_LIVE_MAX 2

struct tunnel_cert_row {
	char id[48];
	char tunnel_id[80];
	int64_t seq;
	char fingerprint[65];
	int64_t expires_at; /* 0: does not expire */
	int64_t created_at;
	int64_t archived_at; /* 0 while live */
};

struct tunnel_cert_new {
	const char *id;
	const char *tunnel_id;
	const char *pem;
	const char *fingerprint;
	int64_t expires_at;
	int64_t created_at;
};

enum tunnel_cert_refusal {
	TUNNEL_CERT_OK,
	TUNNEL_CERT_TUNNEL_ARCHIVED,
	TUNNEL_CERT_FULL,      /* TUNNEL_CERTS_LIVE_MAX live already */
	TUNNEL_CERT_DUPLICATE, /* the same certificate is live on the tunnel */
};

/* Adds a certificate in one transaction with its checks: 0, AL_E_NOTFOUND (no tunnel),
 * AL_E_CONFLICT (*why says which) or AL_E_IO. */
int tunnel_store_cert_insert(struct db *db, const struct tunnel_cert_new *c,
                             enum tunnel_cert_refusal *why);
/* 0, AL_E_NOTFOUND (no such certificate on that tunnel) or AL_E_IO. */
int tunnel_store_cert_get(struct db *db, const char *tunnel_id, const char *id,
                          struct tunnel_cert_row *out);
/* A page of one tunnel's certificates, as tunnel_store_list. */
int tunnel_store_cert_list(struct db *db, const char *tunnel_id, const struct doc_list *q,
                           int (*fn)(void *arg, const struct tunnel_cert_row *c), void *arg,
                           bool *more);
/* Archives a live certificate (no-op when archived already). 0 or AL_E_IO. */
int tunnel_store_cert_archive(struct db *db, const char *tunnel_id, const char *id, int64_t now);
/* Calls fn with the PEM of each live certificate of the tunnel; *ever counts every
 * certificate it ever had, archived ones included. 0 or AL_E_IO (or fn's error). */
int tunnel_store_cert_live(struct db *db, const char *tunnel_id,
                           int (*fn)(void *arg, const char *pem, const char *fingerprint),
                           void *arg, unsigned *ever);

#endif
