/* Vault secrets at rest: the server master key (loaded or created at start and checked
 * against the sealed credentials), AES-256-GCM sealing of credential tokens, and the
 * MCP connector's lookup that unseals one. Kept apart from the vault routes and the
 * vault store, which only ever see sealed blobs.
 * See docs/server/vaults.md. */
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

#include <openssl/evp.h>

#include "err.h"
#include "log.h"
#include "sha256.h"
#include "server.h"
#include "util.h"
#include "vault_seal.h"
#include "vault_store.h"
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

int
vaults_init(struct server *s)
{
	struct vaults_key *k = xcalloc(1, sizeof(*k));
	const char *env = s->cfg.master_key_file; /* AIRLOCK_MASTER_KEY_FILE */
	char *path = NULL;
	int r;
	int64_t sealed = vault_store_count_sealed(s->db);
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
	int64_t foreign = vault_store_count_foreign(s->db, k->id, VAULTS_KEY_ID_LEN);
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

/* ---- the MCP connector's lookup ---- */

int
vaults_bearer_for(struct server *s, const json_t *vault_ids, const char *mcp_server_url,
                  char **token)
{
	char *key = NULL;
	int r = AL_E_NOTFOUND;
	*token = NULL;
	if (s->vault_key == NULL)
		return AL_E_INTERNAL;
	if (!json_is_array(vault_ids) || mcp_server_url == NULL)
		return AL_E_NOTFOUND;
	key = vault_store_url_key(mcp_server_url);
	for (size_t i = 0; i < json_array_size(vault_ids) && r == AL_E_NOTFOUND; i++) {
		const json_t *v = json_array_get(vault_ids, i);
		unsigned char *blob = NULL;
		size_t blen = 0;
		char cid[80];
		if (!json_is_string(v))
			continue;
		r = vault_store_find_secret(s->db, json_string_value(v), key, cid, sizeof(cid),
		                            &blob, &blen);
		if (r != 0)
			continue;
		r = vaults_unseal(s->vault_key, cid, blob, blen, token);
		free(blob);
		if (r != 0) {
			log_error("vault credential cannot be unsealed", "credential_id", cid,
			          "error",
			          r == AL_E_AUTH ? "sealed under another master key"
			                         : "corrupt or tampered ciphertext");
			r = AL_E_IO;
		}
	}
	free(key);
	return r;
}
