/* /v1/vaults and /v1/vaults/{id}/credentials: vault and credential CRUD, the server
 * master key, AES-256-GCM sealing of credential secrets at rest, and the bearer-token
 * lookup for the MCP connector. Secrets are write-only: no response, log line or
 * stored document ever holds one. See docs/server/vaults.md. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "curl_dl.h"
#include <openssl/evp.h>

#include "api.h"
#include "err.h"
#include "log.h"
#include "routes.h"
#include "server.h"
#include "sha256.h"
#include "util.h"
#include "validate.h"
#include "vault_store.h"
#include "vaults.h"
#include "xalloc.h"

#define SEAL_VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16
#define HDR_LEN (1 + VAULTS_KEY_ID_LEN)
#define KEY_FILE_MAX 4096

/* ---- master key ---- */

static void
key_fingerprint(struct vaults_key *k)
{
	/* lib/sha256, not libcrypto: an idle server that serves plain HTTP and never encrypts
	 * a credential then never loads OpenSSL (docs/lib/tls.md). */
	static const char label[] = "airlock vault key id v1";
	uint8_t in[sizeof(label) + sizeof(k->key)], md[SHA256_LEN];
	memcpy(in, label, sizeof(label));
	memcpy(in + sizeof(label), k->key, sizeof(k->key));
	sha256(in, sizeof(in), md);
	explicit_wipe(in, sizeof(in));
	memcpy(k->id, md, VAULTS_KEY_ID_LEN);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
vaults_key_parse(const char *text, size_t len, struct vaults_key *k)
{
	unsigned char *raw = NULL;
	size_t rl = 0;
	int r = AL_E_INVAL;
	while (len > 0 &&
	       (text[0] == ' ' || text[0] == '\t' || text[0] == '\r' || text[0] == '\n')) {
		text++;
		len--;
	}
	while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r' ||
	                   text[len - 1] == '\n'))
		len--;
	if (len == 2 * VAULTS_KEY_LEN) {
		bool hex = true;
		for (size_t i = 0; i < len && hex; i++)
			hex = hexval(text[i]) >= 0;
		if (hex) {
			for (size_t i = 0; i < VAULTS_KEY_LEN; i++)
				k->key[i] = (unsigned char)(hexval(text[2 * i]) << 4 |
				                            hexval(text[2 * i + 1]));
			r = 0;
			goto out;
		}
	}
	if (len == 0 || len > 64 || base64_decode_any(text, len, &raw, &rl) != 0 ||
	    rl != VAULTS_KEY_LEN)
		goto out;
	memcpy(k->key, raw, VAULTS_KEY_LEN);
	r = 0;
out:
	if (raw) {
		explicit_wipe(raw, rl);
		free(raw);
	}
	if (r == 0)
		key_fingerprint(k);
	return r;
}

/* Reads and parses a key file. A key that others may read is not a secret. */
static int
key_read(const char *path, struct vaults_key *k)
{
	char buf[KEY_FILE_MAX];
	struct stat st;
	ssize_t n = 0;
	int r = AL_E_IO;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (errno != ENOENT)
			log_error("cannot open master key file", "path", path, "error",
			          strerror(errno));
		return r;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		log_error("master key file is not a regular file", "path", path);
		goto out;
	}
	if (st.st_mode & 0007) {
		log_error("master key file is accessible by others; chmod o-rwx", "path", path);
		r = AL_E_PERM;
		goto out;
	}
	size_t got = 0;
	while (got < sizeof(buf) && (n = read(fd, buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	if (n < 0) {
		log_error("cannot read master key file", "path", path, "error", strerror(errno));
		goto out;
	}
	if (got == sizeof(buf) || vaults_key_parse(buf, got, k) != 0) {
		log_error("master key file must hold 32 bytes as 64 hex digits or base64", "path",
		          path);
		r = AL_E_INVAL;
		goto out;
	}
	r = 0;
out:
	explicit_wipe(buf, sizeof(buf));
	close(fd);
	return r;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Creates path with a fresh key. Written to a temporary file and linked into place,
 * so a crash never leaves a half-written key and two servers racing on one data
 * directory agree on the winner's key (link fails with EEXIST for the loser). */
static int
key_generate(const char *dir, const char *path, struct vaults_key *k)
{
	char *tmp = xasprintf("%s/.master.key.%d", dir, (int)getpid());
	char *text = NULL;
	int fd = -1, r = AL_E_IO;
	random_bytes(k->key, sizeof(k->key));
	key_fingerprint(k);
	char *b64 = base64url_encode(k->key, sizeof(k->key));
	text = xasprintf("%s\n", b64);
	secret_free(b64);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fchmod(fd, 0600) != 0 || write_all(fd, text, strlen(text)) != 0 ||
	    fsync(fd) != 0) {
		log_error("cannot write master key file", "path", tmp, "error", strerror(errno));
		goto out;
	}
	if (link(tmp, path) != 0) {
		r = errno == EEXIST ? -EEXIST : AL_E_IO;
		if (r != -EEXIST)
			log_error("cannot create master key file", "path", path, "error",
			          strerror(errno));
		goto out;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	log_info("generated a new vault master key", "path", path);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	secret_free(text);
	if (r != 0)
		explicit_wipe(k, sizeof(*k));
	return r;
}

static int64_t
count_int(struct db *db, const char *sql, const void *blob, int blen)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;
	if (db_prepare(db, sql, &st) != 0)
		return -1;
	if (blob)
		sqlite3_bind_blob(st, 1, blob, blen, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

int
vaults_init(struct server *s)
{
	struct vaults_key *k = xcalloc(1, sizeof(*k));
	const char *env = s->cfg.master_key_file; /* AIRLOCK_MASTER_KEY_FILE */
	char *path = NULL;
	int r;
	int64_t sealed = count_int(s->db,
	                           "SELECT COUNT(*) FROM vault_credentials "
	                           "WHERE secret IS NOT NULL",
	                           NULL, 0);
	if (sealed < 0) {
		r = AL_E_IO;
		goto out;
	}
	if (env && *env) {
		path = xstrdup(env);
		if ((r = key_read(path, k)) != 0) {
			if (r == -ENOENT)
				log_error("AIRLOCK_MASTER_KEY_FILE does not exist", "path", path);
			goto out;
		}
	} else {
		path = xasprintf("%s/master.key", s->cfg.data_dir);
		r = key_read(path, k);
		if (r == -ENOENT) {
			/* A fresh key now would make every stored secret unreadable and hide
			 * the loss until the first MCP call. */
			if (sealed > 0) {
				log_error("vault master key file is missing but the database holds "
				          "sealed credentials; restore it or set "
				          "AIRLOCK_MASTER_KEY_FILE",
				          "path", path);
				r = AL_E_AUTH;
				goto out;
			}
			r = key_generate(s->cfg.data_dir, path, k);
			if (r == -EEXIST)
				r = key_read(path, k);
		}
		if (r != 0)
			goto out;
	}
	int64_t foreign = count_int(s->db,
	                            "SELECT COUNT(*) FROM vault_credentials WHERE secret IS NOT "
	                            "NULL AND substr(secret, 2, 8) != ?1",
	                            k->id, VAULTS_KEY_ID_LEN);
	if (foreign != 0) {
		if (foreign > 0)
			log_error("the vault master key is not the key the stored credentials "
			          "were sealed with; start with the original key",
			          "path", path);
		r = foreign > 0 ? AL_E_AUTH : AL_E_IO;
		goto out;
	}
	s->vault_key = k;
	k = NULL;
	r = 0;
out:
	if (k) {
		explicit_wipe(k, sizeof(*k));
		free(k);
	}
	free(path);
	return r;
}

void
vaults_shutdown(struct server *s)
{
	if (s->vault_key) {
		explicit_wipe(s->vault_key, sizeof(*s->vault_key));
		free(s->vault_key);
		s->vault_key = NULL;
	}
}

/* ---- sealing ---- */

/* The header (version, key id) is authenticated along with the owner's id. */
static int
gcm_aad(EVP_CIPHER_CTX *ctx, bool enc, const unsigned char *hdr, const char *aad)
{
	int outl;
	if (enc)
		return EVP_EncryptUpdate(ctx, NULL, &outl, hdr, HDR_LEN) == 1 &&
		               EVP_EncryptUpdate(ctx, NULL, &outl, (const unsigned char *)aad,
		                                 (int)strlen(aad)) == 1
		           ? 0
		           : AL_E_INTERNAL;
	return EVP_DecryptUpdate(ctx, NULL, &outl, hdr, HDR_LEN) == 1 &&
	               EVP_DecryptUpdate(ctx, NULL, &outl, (const unsigned char *)aad,
	                                 (int)strlen(aad)) == 1
	           ? 0
	           : AL_E_INTERNAL;
}

int
vaults_seal(const struct vaults_key *k, const char *aad, const void *pt, size_t n,
            unsigned char **blob, size_t *blob_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char *b = NULL;
	int outl = 0, fin = 0, r = AL_E_INTERNAL;
	if (n > VAULTS_MAX_TOKEN * 4 || strlen(aad) > 256)
		return AL_E_TOOBIG;
	size_t len = HDR_LEN + NONCE_LEN + n + TAG_LEN;
	b = xmalloc(len);
	b[0] = SEAL_VERSION;
	memcpy(b + 1, k->id, VAULTS_KEY_ID_LEN);
	unsigned char *nonce = b + HDR_LEN, *ct = nonce + NONCE_LEN, *tag = ct + n;
	/* Random 96-bit nonces: safe far beyond the number of secrets one server seals
	 * under one key (NIST SP 800-38D's 2^32 bound). */
	random_bytes(nonce, NONCE_LEN);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, k->key, nonce) != 1 ||
	    gcm_aad(ctx, true, b, aad) != 0 || EVP_EncryptUpdate(ctx, ct, &outl, pt, (int)n) != 1 ||
	    EVP_EncryptFinal_ex(ctx, ct + outl, &fin) != 1 || (size_t)(outl + fin) != n ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	*blob = b;
	*blob_len = len;
	b = NULL;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	free(b);
	return r;
}

int
vaults_unseal(const struct vaults_key *k, const char *aad, const unsigned char *blob,
              size_t blob_len, char **pt)
{
	EVP_CIPHER_CTX *ctx = NULL;
	char *p = NULL;
	int outl = 0, fin = 0, r = AL_E_INVAL;
	if (blob == NULL || blob_len < HDR_LEN + NONCE_LEN + TAG_LEN ||
	    blob_len > HDR_LEN + NONCE_LEN + TAG_LEN + VAULTS_MAX_TOKEN * 4 ||
	    blob[0] != SEAL_VERSION || strlen(aad) > 256)
		return AL_E_INVAL;
	if (memcmp(blob + 1, k->id, VAULTS_KEY_ID_LEN) != 0)
		return AL_E_AUTH;
	size_t n = blob_len - HDR_LEN - NONCE_LEN - TAG_LEN;
	const unsigned char *nonce = blob + HDR_LEN, *ct = nonce + NONCE_LEN, *tag = ct + n;
	p = xmalloc(n + 1);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, k->key, nonce) != 1 ||
	    gcm_aad(ctx, false, blob, aad) != 0 ||
	    EVP_DecryptUpdate(ctx, (unsigned char *)p, &outl, ct, (int)n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)tag) != 1 ||
	    EVP_DecryptFinal_ex(ctx, (unsigned char *)p + outl, &fin) != 1 ||
	    (size_t)(outl + fin) != n || memchr(p, '\0', n) != NULL)
		goto out;
	p[n] = '\0';
	*pt = p;
	p = NULL;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (p) {
		explicit_wipe(p, n + 1);
		free(p);
	}
	return r;
}

/* ---- validation ---- */

static bool
is_loopback_host(const char *host)
{
	struct in_addr a4;
	if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
		return true;
	return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

int
vaults_check_url(const char *url, const char *path, struct verr *e)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *user = NULL, *frag = NULL;
	size_t len = strlen(url);
	int r = AL_E_INVAL;
	if (len == 0 || len > VAULTS_MAX_URL) {
		r = verr_set(e, "%s: must be 1 to %d bytes", path, VAULTS_MAX_URL);
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f) {
			r = verr_set(e,
			             "%s: must be printable ASCII without spaces (encode "
			             "international names and spaces)",
			             path);
			goto out;
		}
	bool https = strncasecmp(url, "https://", 8) == 0;
	if (!https && strncasecmp(url, "http://", 7) != 0) {
		r = verr_set(e, "%s: must be an absolute https:// URL", path);
		goto out;
	}
	/* libcurl would read "https:///x" as host "x"; no server means that. */
	if (url[https ? 8 : 7] == '/') {
		r = verr_set(e, "%s: not a valid absolute URL (no host)", path);
		goto out;
	}
	if ((u = curl_url()) == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		r = verr_set(e, "%s: not a valid absolute URL", path);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		/* It would be returned in every response and sent in clear to logs of
		 * proxies; the token belongs in auth.token. */
		r = verr_set(e, "%s: must not contain user information (user:password@)", path);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
		r = verr_set(e, "%s: must not contain a fragment (#...)", path);
		goto out;
	}
	if (!https && !is_loopback_host(host)) {
		r = verr_set(e,
		             "%s: must use https (plain http is accepted only for loopback "
		             "hosts)",
		             path);
		goto out;
	}
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(frag);
	curl_url_cleanup(u);
	return r;
}

/* Matching key: the URL without one trailing slash, so ".../mcp" and ".../mcp/" name
 * the same server. */
static char *
url_key(const char *url)
{
	size_t n = strlen(url);
	if (n > 0 && url[n - 1] == '/')
		n--;
	return xstrndup(url, n);
}

static size_t
utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* A string of 1..255 characters without NUL. */
static int
check_display_name(const json_t *v, const char *path, struct verr *e)
{
	if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)))
		return verr_set(e, "%s: must be a string", path);
	size_t n = utf8_chars(json_string_value(v));
	if (n < 1 || n > VAULTS_MAX_DISPLAY_NAME)
		return verr_set(e, "%s: must be 1 to %d characters", path, VAULTS_MAX_DISPLAY_NAME);
	return 0;
}

/* Tokens go into an Authorization header: visible ASCII only, so a token can never
 * split or add a header. The message never repeats the token. */
static int
check_token(const json_t *v, const char *path, struct verr *e)
{
	if (!json_is_string(v))
		return verr_set(e, "%s: must be a string", path);
	size_t n = json_string_length(v);
	const unsigned char *p = (const unsigned char *)json_string_value(v);
	if (n < 1 || n > VAULTS_MAX_TOKEN)
		return verr_set(e, "%s: must be 1 to %d bytes", path, VAULTS_MAX_TOKEN);
	for (size_t i = 0; i < n; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return verr_set(e,
			                "%s: must be visible ASCII characters (no spaces or "
			                "control characters)",
			                path);
	return 0;
}

/* auth.type values this server refuses, with the reason. */
static int
check_auth_type(const json_t *auth, const char **type, struct verr *e)
{
	const json_t *t = json_is_object(auth) ? json_object_get(auth, "type") : NULL;
	if (!json_is_object(auth))
		return verr_set(e, "auth: must be an object");
	if (!json_is_string(t))
		return verr_set(e, "auth.type: Field required ('static_bearer')");
	*type = json_string_value(t);
	if (strcmp(*type, "mcp_oauth") == 0)
		return verr_set(e, "auth.type: mcp_oauth credentials are not supported by a "
		                   "self-hosted server; store the token as a static_bearer "
		                   "credential");
	if (strcmp(*type, "environment_variable") == 0)
		return verr_set(e, "auth.type: environment_variable credentials need the worker "
		                   "egress proxy, which is not enabled on this server; use "
		                   "static_bearer for MCP servers");
	if (strcmp(*type, "static_bearer") != 0)
		return verr_set(e, "auth.type: must be 'static_bearer' (also known: mcp_oauth, "
		                   "environment_variable)");
	return 0;
}

/* ---- storage ---- */

static json_t *
vault_load(struct db *db, const char *id, int *err)
{
	return db_load_doc(db, "vaults", id, err);
}

static json_t *
cred_load(struct db *db, const char *vault_id, const char *id, int *err)
{
	sqlite3_stmt *st = NULL;
	json_t *doc = NULL;
	*err = AL_E_NOTFOUND;
	if (db_prepare(db, "SELECT doc FROM vault_credentials WHERE id = ?1 AND vault_id = ?2",
	               &st) != 0) {
		*err = AL_E_IO;
		return NULL;
	}
	db_bind_text(st, 1, id);
	db_bind_text(st, 2, vault_id);
	if (sqlite3_step(st) == SQLITE_ROW && (doc = db_col_json(st, 0)) != NULL)
		*err = 0;
	sqlite3_finalize(st);
	return doc;
}

static bool
is_archived(const json_t *doc)
{
	return !json_is_null(json_object_get(doc, "archived_at"));
}

/* Runs sql with ?1 = a, ?2 = b (text), ?3 = doc (JSON text), ?4 = n. */
static int
exec4(struct db *db, const char *sql, const char *a, const char *b, const json_t *doc, int64_t n)
{
	sqlite3_stmt *st = NULL;
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	int r = AL_E_IO;
	if (db_prepare(db, sql, &st) != 0)
		goto out;
	db_bind_text(st, 1, a);
	db_bind_text(st, 2, b);
	db_bind_text(st, 3, text);
	sqlite3_bind_int64(st, 4, n);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		r = 0;
	else if (rc == SQLITE_CONSTRAINT)
		r = AL_E_CONFLICT;
	else
		log_error("vault statement failed", "error", sqlite3_errmsg(db->h));
out:
	sqlite3_finalize(st);
	free(text);
	return r;
}

static void
set_times(json_t *doc, int64_t now, bool created, bool archived)
{
	if (created)
		json_object_set_new(doc, "created_at", api_time(now));
	json_object_set_new(doc, "updated_at", api_time(now));
	if (archived)
		json_object_set_new(doc, "archived_at", api_time(now));
}

/* Loads a vault for an operation; e says why not. */
static json_t *
vault_get(struct db *db, const char *vault_id, int *err, struct verr *e)
{
	json_t *v = vault_load(db, vault_id, err);
	if (v == NULL)
		verr_set(e, *err == AL_E_NOTFOUND ? "vault %s not found" : "cannot load vault %s",
		         vault_id);
	return v;
}

int
vaults_create(struct server *s, const char *display_name, const json_t *metadata, json_t **doc,
              struct verr *e)
{
	struct db *db = s->db;
	sqlite3_stmt *st = NULL;
	json_t *d = NULL, *dn = json_string(display_name ? display_name : "");
	char *id = NULL, *text = NULL;
	int r;
	if (dn == NULL) {
		r = verr_set(e, "display_name: must be valid UTF-8");
		goto out;
	}
	if ((r = check_display_name(dn, "display_name", e)) != 0)
		goto out;
	id = id_new("vlt_");
	int64_t now = now_real_us();
	d = json_pack("{s:s, s:s, s:O, s:o}", "type", "vault", "id", id, "display_name", dn,
	              "metadata", metadata ? json_deep_copy(metadata) : json_object());
	set_times(d, now, true, false);
	json_object_set_new(d, "archived_at", json_null());
	text = json_dumps(d, JSON_COMPACT);
	r = AL_E_IO;
	if (db_begin(db) != 0)
		goto io;
	int64_t seq = db_next_seq(db, "vaults");
	if (seq < 0 || db_prepare(db,
	                          "INSERT INTO vaults(id, seq, created_at, archived_at, doc) "
	                          "VALUES (?1, ?2, ?3, NULL, ?4)",
	                          &st) != 0) {
		db_rollback(db);
		goto io;
	}
	db_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_int64(st, 3, now);
	db_bind_text(st, 4, text);
	if (sqlite3_step(st) != SQLITE_DONE || db_commit(db) != 0) {
		db_rollback(db);
		goto io;
	}
	log_info("vault created", "vault_id", id);
	*doc = d;
	d = NULL;
	r = 0;
	goto out;
io:
	verr_set(e, "cannot store vault");
out:
	sqlite3_finalize(st);
	json_decref(d);
	json_decref(dn);
	free(text);
	free(id);
	return r;
}

/* Inside the caller's transaction: the vault may take one more live credential for
 * this URL key. */
static int
room_for(struct db *db, const char *vault_id, const char *key, struct verr *e)
{
	sqlite3_stmt *st = NULL;
	int64_t live = 0;
	char dup[80] = "";
	if (db_prepare(db,
	               "SELECT COUNT(*), MAX(CASE WHEN url_key = ?2 THEN id END) FROM "
	               "vault_credentials WHERE vault_id = ?1 AND archived_at IS NULL",
	               &st) != 0) {
		verr_set(e, "cannot check credentials");
		return AL_E_IO;
	}
	db_bind_text(st, 1, vault_id);
	db_bind_text(st, 2, key);
	if (sqlite3_step(st) == SQLITE_ROW) {
		live = sqlite3_column_int64(st, 0);
		if (db_col_text(st, 1))
			snprintf(dup, sizeof(dup), "%s", db_col_text(st, 1));
	}
	sqlite3_finalize(st);
	if (dup[0]) {
		verr_set(e,
		         "vault %s already has a live credential for this mcp_server_url (%s); "
		         "archive or delete it first, or update its token",
		         vault_id, dup);
		return AL_E_CONFLICT;
	}
	if (live >= VAULTS_MAX_CREDENTIALS)
		return verr_set(e, "vault %s already holds %d live credentials, the maximum",
		                vault_id, VAULTS_MAX_CREDENTIALS);
	return 0;
}

int
vaults_credential_create(struct server *s, const char *vault_id, const json_t *auth,
                         const json_t *display_name, const json_t *metadata, json_t **doc,
                         struct verr *e)
{
	static const char *const bearer_keys[] = {"type", "mcp_server_url", "token", NULL};
	struct db *db = s->db;
	sqlite3_stmt *st = NULL;
	json_t *vault = NULL, *d = NULL;
	const char *type = NULL, *url;
	const json_t *u, *tok;
	char *id = NULL, *key = NULL, *text = NULL;
	unsigned char *blob = NULL;
	size_t blen = 0;
	int r;
	if ((vault = vault_get(db, vault_id, &r, e)) == NULL)
		goto out;
	if (is_archived(vault)) {
		r = verr_set(e, "vault %s is archived; archived vaults are read-only", vault_id);
		goto out;
	}
	if ((r = check_auth_type(auth, &type, e)) != 0 ||
	    (r = validate_only_keys(auth, "auth", bearer_keys, e)) != 0)
		goto out;
	u = json_object_get(auth, "mcp_server_url");
	tok = json_object_get(auth, "token");
	if (!json_is_string(u)) {
		r = verr_set(e, "auth.mcp_server_url: Field required (an https URL)");
		goto out;
	}
	if (tok == NULL) {
		r = verr_set(e, "auth.token: Field required");
		goto out;
	}
	url = json_string_value(u);
	if ((r = vaults_check_url(url, "auth.mcp_server_url", e)) != 0 ||
	    (r = check_token(tok, "auth.token", e)) != 0)
		goto out;
	if (display_name && !json_is_null(display_name) &&
	    (r = check_display_name(display_name, "display_name", e)) != 0)
		goto out;
	if (s->vault_key == NULL) {
		r = AL_E_INTERNAL;
		verr_set(e, "vault master key not loaded");
		goto out;
	}
	key = url_key(url);
	id = id_new("vcrd_");
	int64_t now = now_real_us();
	d = json_pack("{s:s, s:s, s:s, s:o, s:o, s:{s:s, s:s}}", "type", "vault_credential", "id",
	              id, "vault_id", vault_id, "display_name",
	              display_name ? json_deep_copy(display_name) : json_null(), "metadata",
	              metadata ? json_deep_copy(metadata) : json_object(), "auth", "type",
	              "static_bearer", "mcp_server_url", url);
	set_times(d, now, true, false);
	json_object_set_new(d, "archived_at", json_null());
	text = json_dumps(d, JSON_COMPACT);
	if ((r = vaults_seal(s->vault_key, id, json_string_value(tok), json_string_length(tok),
	                     &blob, &blen)) != 0) {
		verr_set(e, "cannot seal credential");
		goto out;
	}
	if ((r = db_begin(db)) != 0) {
		verr_set(e, "cannot store credential");
		goto out;
	}
	if ((r = room_for(db, vault_id, key, e)) != 0) {
		db_rollback(db);
		goto out;
	}
	int64_t seq = db_next_seq(db, "vault_credentials");
	r = AL_E_IO;
	if (seq >= 0 &&
	    db_prepare(db,
	               "INSERT INTO vault_credentials(id, vault_id, seq, auth_type, url_key, "
	               "created_at, archived_at, secret, doc) "
	               "VALUES (?1, ?2, ?3, 'static_bearer', ?4, ?5, NULL, ?6, ?7)",
	               &st) == 0) {
		db_bind_text(st, 1, id);
		db_bind_text(st, 2, vault_id);
		sqlite3_bind_int64(st, 3, seq);
		db_bind_text(st, 4, key);
		sqlite3_bind_int64(st, 5, now);
		sqlite3_bind_blob(st, 6, blob, (int)blen, SQLITE_TRANSIENT);
		db_bind_text(st, 7, text);
		int rc = sqlite3_step(st);
		/* The partial unique index backs room_for against a concurrent writer. */
		r = rc == SQLITE_DONE ? 0 : rc == SQLITE_CONSTRAINT ? AL_E_CONFLICT : AL_E_IO;
	}
	if (r == 0)
		r = db_commit(db);
	if (r != 0) {
		db_rollback(db);
		verr_set(e,
		         r == AL_E_CONFLICT ? "vault %s already has a live credential for this "
		                              "mcp_server_url"
		                            : "cannot store credential in vault %s",
		         vault_id);
		goto out;
	}
	log_info("vault credential created", "vault_id", vault_id, "credential_id", id);
	*doc = d;
	d = NULL;
out:
	sqlite3_finalize(st);
	json_decref(vault);
	json_decref(d);
	free(blob);
	free(text);
	free(key);
	free(id);
	return r;
}

int
vaults_credential_archive(struct server *s, const char *vault_id, const char *credential_id,
                          json_t **doc, struct verr *e)
{
	json_t *vault = NULL, *d = NULL;
	int r;
	if ((vault = vault_get(s->db, vault_id, &r, e)) == NULL)
		goto out;
	if ((d = cred_load(s->db, vault_id, credential_id, &r)) == NULL) {
		verr_set(e, "credential %s not found in vault %s", credential_id, vault_id);
		goto out;
	}
	if (!is_archived(d)) {
		int64_t now = now_real_us();
		set_times(d, now, false, true);
		/* The secret goes with the archive: an archived credential is never used
		 * again, so keeping even its ciphertext only adds exposure. */
		if ((r = exec4(s->db,
		               "UPDATE vault_credentials SET doc = ?3, archived_at = ?4, "
		               "secret = NULL WHERE id = ?1 AND vault_id = ?2",
		               credential_id, vault_id, d, now)) != 0) {
			verr_set(e, "cannot archive credential");
			goto out;
		}
		log_info("vault credential archived", "vault_id", vault_id, "credential_id",
		         credential_id);
	}
	*doc = d;
	d = NULL;
	r = 0;
out:
	json_decref(vault);
	json_decref(d);
	return r;
}

int
vaults_archive(struct server *s, const char *vault_id, json_t **doc, struct verr *e)
{
	struct db *db = s->db;
	json_t *d = NULL;
	int r;
	if ((d = vault_get(db, vault_id, &r, e)) == NULL)
		goto out;
	if (!is_archived(d)) {
		int64_t now = now_real_us();
		char ts[32];
		time_fmt_rfc3339(now, ts);
		set_times(d, now, false, true);
		if ((r = db_begin(db)) != 0 ||
		    (r = exec4(db, "UPDATE vaults SET doc = ?3, archived_at = ?4 WHERE id = ?1",
		               vault_id, NULL, d, now)) != 0 ||
		    (r = exec4(db,
		               "UPDATE vault_credentials SET archived_at = ?4, secret = NULL, "
		               "doc = json_set(doc, '$.archived_at', ?2, '$.updated_at', ?2) "
		               "WHERE vault_id = ?1 AND archived_at IS NULL",
		               vault_id, ts, NULL, now)) != 0 ||
		    (r = db_commit(db)) != 0) {
			db_rollback(db);
			verr_set(e, "cannot archive vault");
			r = AL_E_IO;
			goto out;
		}
		log_info("vault archived", "vault_id", vault_id);
	}
	*doc = d;
	d = NULL;
	r = 0;
out:
	json_decref(d);
	return r;
}

/* ---- the MCP connector's lookup ---- */

int
vaults_bearer_for(struct server *s, const json_t *vault_ids, const char *mcp_server_url,
                  char **token)
{
	sqlite3_stmt *st = NULL;
	char *key = NULL;
	int r = AL_E_NOTFOUND;
	*token = NULL;
	if (s->vault_key == NULL)
		return AL_E_INTERNAL;
	if (!json_is_array(vault_ids) || mcp_server_url == NULL)
		return AL_E_NOTFOUND;
	key = url_key(mcp_server_url);
	if (db_prepare(s->db,
	               "SELECT c.id, c.secret FROM vault_credentials c JOIN vaults v "
	               "ON v.id = c.vault_id WHERE c.vault_id = ?1 AND c.url_key = ?2 "
	               "AND c.auth_type = 'static_bearer' AND c.archived_at IS NULL "
	               "AND v.archived_at IS NULL AND c.secret IS NOT NULL LIMIT 1",
	               &st) != 0) {
		r = AL_E_IO;
		goto out;
	}
	for (size_t i = 0; i < json_array_size(vault_ids) && r == AL_E_NOTFOUND; i++) {
		const json_t *v = json_array_get(vault_ids, i);
		if (!json_is_string(v))
			continue;
		sqlite3_reset(st);
		db_bind_text(st, 1, json_string_value(v));
		db_bind_text(st, 2, key);
		if (sqlite3_step(st) != SQLITE_ROW)
			continue;
		const char *cid = db_col_text(st, 0);
		r = vaults_unseal(s->vault_key, cid ? cid : "", sqlite3_column_blob(st, 1),
		                  (size_t)sqlite3_column_bytes(st, 1), token);
		if (r != 0) {
			log_error("vault credential cannot be unsealed", "credential_id", cid,
			          "error",
			          r == AL_E_AUTH ? "sealed under another master key"
			                         : "corrupt or tampered ciphertext");
			r = AL_E_IO;
		}
	}
out:
	sqlite3_finalize(st);
	free(key);
	return r;
}

/* ---- HTTP handlers ---- */

static void
reply_status(struct api_call *c, int r, const struct verr *e)
{
	switch (r) {
	case AL_E_INVAL:
		api_reply_error(c, 400, "invalid_request_error", NULL, "%s", e->msg);
		break;
	case AL_E_NOTFOUND:
		api_reply_error(c, 404, "not_found_error", NULL, "%s", e->msg);
		break;
	case AL_E_CONFLICT:
		api_reply_error(c, 409, "invalid_request_error", NULL, "%s", e->msg);
		break;
	default:
		api_reply_err(c, r, e->msg[0] ? e->msg : "vault storage error");
		break;
	}
}

/* metadata of the body: absent or null → NULL (keep / empty); else a validated copy
 * (a patch over base when base is given). Replies itself on failure. */
static int
body_metadata(struct api_call *c, json_t *base, json_t **out)
{
	json_t *v = json_object_get(c->body, "metadata");
	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	return api_metadata(c, v, base, base != NULL, out);
}

static void
create_vault(struct api_call *c)
{
	static const char *const allowed[] = {"display_name", "metadata", NULL};
	struct verr e = {{0}};
	json_t *meta = NULL, *doc = NULL, *dn;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	dn = json_object_get(c->body, "display_name");
	if (dn == NULL || json_is_null(dn)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "display_name: Field required");
		return;
	}
	if (check_display_name(dn, "display_name", &e) != 0) {
		validate_reply(c, &e);
		return;
	}
	if (body_metadata(c, NULL, &meta) != 0)
		return;
	if ((r = vaults_create(c->srv, json_string_value(dn), meta, &doc, &e)) != 0)
		reply_status(c, r, &e);
	else
		api_reply_json(c, 200, doc);
	json_decref(meta);
}

static void
get_vault(struct api_call *c)
{
	struct verr e = {{0}};
	int r;
	json_t *doc = vault_get(c->srv->db, c->params[0], &r, &e);
	if (doc == NULL)
		reply_status(c, r, &e);
	else
		api_reply_json(c, 200, doc);
}

static void
update_vault(struct api_call *c)
{
	static const char *const allowed[] = {"display_name", "metadata", NULL};
	const char *id = c->params[0];
	struct verr e = {{0}};
	json_t *cur = NULL, *doc = NULL, *meta = NULL, *dn;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if ((cur = vault_get(c->srv->db, id, &r, &e)) == NULL) {
		reply_status(c, r, &e);
		return;
	}
	if (is_archived(cur)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "vault %s is archived; archived vaults are read-only", id);
		goto out;
	}
	doc = json_deep_copy(cur);
	/* display_name is required on a vault: null means "leave it". */
	dn = json_object_get(c->body, "display_name");
	if (dn && !json_is_null(dn)) {
		if (check_display_name(dn, "display_name", &e) != 0) {
			validate_reply(c, &e);
			goto out;
		}
		json_object_set(doc, "display_name", dn);
	}
	if (body_metadata(c, json_object_get(cur, "metadata"), &meta) != 0)
		goto out;
	if (meta)
		json_object_set(doc, "metadata", meta);
	if (!json_equal(doc, cur)) {
		int64_t now = now_real_us();
		set_times(doc, now, false, false);
		if ((r = exec4(c->srv->db, "UPDATE vaults SET doc = ?3 WHERE id = ?1", id, NULL,
		               doc, 0)) != 0) {
			api_reply_err(c, r, "cannot store vault");
			goto out;
		}
	}
	api_reply_json(c, 200, doc);
	doc = NULL;
out:
	json_decref(cur);
	json_decref(doc);
	json_decref(meta);
}

static void
archive_vault(struct api_call *c)
{
	struct verr e = {{0}};
	json_t *doc = NULL;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((r = vaults_archive(c->srv, c->params[0], &doc, &e)) != 0)
		reply_status(c, r, &e);
	else
		api_reply_json(c, 200, doc);
}

static void
delete_vault(struct api_call *c)
{
	const char *id = c->params[0];
	struct db *db = c->srv->db;
	struct verr e = {{0}};
	json_t *doc;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((doc = vault_get(db, id, &r, &e)) == NULL) {
		reply_status(c, r, &e);
		return;
	}
	json_decref(doc);
	/* Sessions may still name the vault in vault_ids: that is how access is revoked
	 * (the connector finds no credential any more). */
	if ((r = db_begin(db)) != 0 ||
	    (r = exec4(db, "DELETE FROM vault_credentials WHERE vault_id = ?1", id, NULL, NULL,
	               0)) != 0 ||
	    (r = exec4(db, "DELETE FROM vaults WHERE id = ?1", id, NULL, NULL, 0)) != 0 ||
	    (r = db_commit(db)) != 0) {
		db_rollback(db);
		api_reply_err(c, AL_E_IO, "cannot delete vault");
		return;
	}
	log_info("vault deleted", "vault_id", id);
	api_reply_json(c, 200, json_pack("{s:s, s:s}", "id", id, "type", "vault_deleted"));
}

static void
list_vaults(struct api_call *c)
{
	validate_list_docs(c, vault_store_list, NULL);
}

static void
create_credential(struct api_call *c)
{
	static const char *const allowed[] = {"auth", "display_name", "metadata", NULL};
	struct verr e = {{0}};
	json_t *meta = NULL, *doc = NULL, *auth;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if ((auth = json_object_get(c->body, "auth")) == NULL) {
		api_reply_error(c, 400, "invalid_request_error", NULL, "auth: Field required");
		return;
	}
	if (body_metadata(c, NULL, &meta) != 0)
		return;
	if ((r = vaults_credential_create(c->srv, c->params[0], auth,
	                                  json_object_get(c->body, "display_name"), meta, &doc,
	                                  &e)) != 0)
		reply_status(c, r, &e);
	else
		api_reply_json(c, 200, doc);
	json_decref(meta);
}

/* Loads vault and credential for a credential route; replies 404 itself. */
static json_t *
cred_for_route(struct api_call *c, json_t **vault)
{
	struct verr e = {{0}};
	json_t *d;
	int r;
	*vault = NULL;
	if ((*vault = vault_get(c->srv->db, c->params[0], &r, &e)) == NULL) {
		reply_status(c, r, &e);
		return NULL;
	}
	if ((d = cred_load(c->srv->db, c->params[0], c->params[1], &r)) == NULL) {
		json_decref(*vault);
		*vault = NULL;
		if (r == AL_E_NOTFOUND)
			api_reply_error(c, 404, "not_found_error", NULL,
			                "credential %s not found in vault %s", c->params[1],
			                c->params[0]);
		else
			api_reply_err(c, r, "cannot load credential");
	}
	return d;
}

static void
get_credential(struct api_call *c)
{
	json_t *vault, *d = cred_for_route(c, &vault);
	json_decref(vault);
	if (d)
		api_reply_json(c, 200, d);
}

static void
list_credentials(struct api_call *c)
{
	struct verr e = {{0}};
	int r;
	json_t *vault = vault_get(c->srv->db, c->params[0], &r, &e);
	if (vault == NULL) {
		reply_status(c, r, &e);
		return;
	}
	json_decref(vault);
	validate_list_docs(c, vault_store_list_credentials, c->params[0]);
}

/* auth of an update: {type (must match), token?}. *tok is the new token or NULL. */
static int
update_auth(const json_t *auth, const json_t *cur_auth, const json_t **tok, struct verr *e)
{
	static const char *const keys[] = {"type", "token", NULL};
	const char *cur_type = json_string_value(json_object_get(cur_auth, "type"));
	const json_t *t = json_object_get(auth, "type");
	*tok = NULL;
	if (!json_is_object(auth))
		return verr_set(e, "auth: must be an object");
	if (!json_is_string(t))
		return verr_set(e, "auth.type: Field required ('%s')", cur_type ? cur_type : "?");
	if (cur_type == NULL || strcmp(json_string_value(t), cur_type) != 0)
		return verr_set(e,
		                "auth.type: a credential's type cannot change (this one is "
		                "'%s')",
		                cur_type ? cur_type : "?");
	if (json_object_get(auth, "mcp_server_url"))
		return verr_set(e, "auth.mcp_server_url: immutable; archive this credential and "
		                   "create a new one");
	if (validate_only_keys(auth, "auth", keys, e) != 0)
		return AL_E_INVAL;
	const json_t *v = json_object_get(auth, "token");
	if (v && !json_is_null(v)) {
		if (check_token(v, "auth.token", e) != 0)
			return AL_E_INVAL;
		*tok = v;
	}
	return 0;
}

static void
update_credential(struct api_call *c)
{
	static const char *const allowed[] = {"auth", "display_name", "metadata", NULL};
	const char *vid = c->params[0], *cid = c->params[1];
	struct db *db = c->srv->db;
	struct verr e = {{0}};
	sqlite3_stmt *st = NULL;
	json_t *vault = NULL, *cur = NULL, *doc = NULL, *meta = NULL, *v;
	const json_t *tok = NULL;
	unsigned char *blob = NULL;
	size_t blen = 0;
	char *text = NULL;
	int r;
	if (api_body_required(c) || api_body_only(c, allowed))
		return;
	if ((cur = cred_for_route(c, &vault)) == NULL)
		return;
	if (is_archived(vault) || is_archived(cur)) {
		api_reply_error(c, 400, "invalid_request_error", NULL,
		                "%s %s is archived; archived %s are read-only",
		                is_archived(cur) ? "credential" : "vault",
		                is_archived(cur) ? cid : vid,
		                is_archived(cur) ? "credentials" : "vaults");
		goto out;
	}
	doc = json_deep_copy(cur);
	if ((v = json_object_get(c->body, "auth")) != NULL && !json_is_null(v) &&
	    update_auth(v, json_object_get(cur, "auth"), &tok, &e) != 0) {
		validate_reply(c, &e);
		goto out;
	}
	if ((v = json_object_get(c->body, "display_name")) != NULL) {
		if (!json_is_null(v) && check_display_name(v, "display_name", &e) != 0) {
			validate_reply(c, &e);
			goto out;
		}
		json_object_set(doc, "display_name", v);
	}
	if (body_metadata(c, json_object_get(cur, "metadata"), &meta) != 0)
		goto out;
	if (meta)
		json_object_set(doc, "metadata", meta);
	if (tok == NULL && json_equal(doc, cur)) {
		api_reply_json(c, 200, cur);
		cur = NULL;
		goto out;
	}
	set_times(doc, now_real_us(), false, false);
	text = json_dumps(doc, JSON_COMPACT);
	if (tok && vaults_seal(c->srv->vault_key, cid, json_string_value(tok),
	                       json_string_length(tok), &blob, &blen) != 0) {
		api_reply_err(c, AL_E_INTERNAL, "cannot seal credential");
		goto out;
	}
	r = AL_E_IO;
	if (db_prepare(db,
	               "UPDATE vault_credentials SET doc = ?3, secret = coalesce(?4, secret) "
	               "WHERE id = ?1 AND vault_id = ?2 AND archived_at IS NULL",
	               &st) == 0) {
		db_bind_text(st, 1, cid);
		db_bind_text(st, 2, vid);
		db_bind_text(st, 3, text);
		if (blob)
			sqlite3_bind_blob(st, 4, blob, (int)blen, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, 4);
		if (sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db->h) == 1)
			r = 0;
	}
	if (r != 0) {
		api_reply_err(c, r, "cannot store credential");
		goto out;
	}
	if (tok)
		log_info("vault credential token replaced", "vault_id", vid, "credential_id", cid);
	api_reply_json(c, 200, doc);
	doc = NULL;
out:
	sqlite3_finalize(st);
	json_decref(vault);
	json_decref(cur);
	json_decref(doc);
	json_decref(meta);
	free(blob);
	free(text);
}

static void
archive_credential(struct api_call *c)
{
	struct verr e = {{0}};
	json_t *doc = NULL;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((r = vaults_credential_archive(c->srv, c->params[0], c->params[1], &doc, &e)) != 0)
		reply_status(c, r, &e);
	else
		api_reply_json(c, 200, doc);
}

static void
delete_credential(struct api_call *c)
{
	json_t *vault, *d;
	int r;
	if (api_body_only(c, (const char *const[]){NULL}))
		return;
	if ((d = cred_for_route(c, &vault)) == NULL)
		return;
	json_decref(vault);
	json_decref(d);
	if ((r = exec4(c->srv->db, "DELETE FROM vault_credentials WHERE id = ?1 AND vault_id = ?2",
	               c->params[1], c->params[0], NULL, 0)) != 0) {
		api_reply_err(c, r, "cannot delete credential");
		return;
	}
	log_info("vault credential deleted", "vault_id", c->params[0], "credential_id",
	         c->params[1]);
	api_reply_json(
	    c, 200,
	    json_pack("{s:s, s:s}", "id", c->params[1], "type", "vault_credential_deleted"));
}

/* Only mcp_oauth credentials can be validated, and this server stores none. */
static void
validate_credential(struct api_call *c)
{
	json_t *vault, *d;
	if ((d = cred_for_route(c, &vault)) == NULL)
		return;
	json_decref(vault);
	json_decref(d);
	api_reply_error(c, 400, "invalid_request_error", NULL,
	                "credential %s is not an mcp_oauth credential; mcp_oauth credentials "
	                "are not supported by a self-hosted server",
	                c->params[1]);
}

const struct api_route vaults_routes[] = {
    {"POST", "/v1/vaults", CREDS_API, create_vault},
    {"GET", "/v1/vaults", CREDS_API, list_vaults},
    {"GET", "/v1/vaults/{}", CREDS_API, get_vault},
    {"POST", "/v1/vaults/{}", CREDS_API, update_vault},
    {"DELETE", "/v1/vaults/{}", CREDS_API, delete_vault},
    {"POST", "/v1/vaults/{}/archive", CREDS_API, archive_vault},
    {"POST", "/v1/vaults/{}/credentials", CREDS_API, create_credential},
    {"GET", "/v1/vaults/{}/credentials", CREDS_API, list_credentials},
    {"GET", "/v1/vaults/{}/credentials/{}", CREDS_API, get_credential},
    {"POST", "/v1/vaults/{}/credentials/{}", CREDS_API, update_credential},
    {"DELETE", "/v1/vaults/{}/credentials/{}", CREDS_API, delete_credential},
    {"POST", "/v1/vaults/{}/credentials/{}/archive", CREDS_API, archive_credential},
    {"POST", "/v1/vaults/{}/credentials/{}/mcp_oauth_validate", CREDS_API, validate_credential},
    {NULL, NULL, 0, NULL},
};
