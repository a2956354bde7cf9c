/* Vault secrets (src/server/api/vaults.c): AES-256-GCM seal/unseal round trip and
 * tampering, master key files (generation, reuse, permissions, a missing or foreign
 * key), credential rules, vaults_bearer_for matching, and that the database files
 * never hold a plaintext token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "db.h"
#include "err.h"
#include "server.h"
#include "vaults.h"
#include "xalloc.h"

#define HEXKEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
/* The same 32 bytes as base64url and as padded standard base64. */
#define B64KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define B64PAD "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static json_t *
J(const char *s)
{
	json_error_t je;
	json_t *v = json_loads(s, JSON_DECODE_ANY, &je);
	if (v == NULL)
		fail_msg("bad test JSON %s: %s", s, je.text);
	return v;
}

static struct vaults_key
key_of(const char *text)
{
	struct vaults_key k;
	assert_int_equal(vaults_key_parse(text, strlen(text), &k), 0);
	return k;
}

/* ---- sealing ---- */

static void
test_seal_roundtrip(void **state)
{
	struct vaults_key k = key_of(HEXKEY), other = key_of(HEXKEY);
	static const char tok[] = "ghp_s3cr3t-TOKEN.value";
	unsigned char *b1 = NULL, *b2 = NULL;
	size_t l1, l2;
	char *pt = NULL;
	other.key[0] ^= 1; /* different key, same (stale) fingerprint: GCM must catch it */

	assert_int_equal(vaults_seal(&k, "vcrd_a", tok, strlen(tok), &b1, &l1), 0);
	assert_int_equal(vaults_seal(&k, "vcrd_a", tok, strlen(tok), &b2, &l2), 0);
	assert_int_equal(l1, 1 + 8 + 12 + strlen(tok) + 16);
	assert_memory_not_equal(b1, b2, l1); /* fresh nonce each time */
	assert_null(memmem(b1, l1, tok, strlen(tok)));
	assert_null(memmem(b1, l1, "s3cr3t", 6));

	assert_int_equal(vaults_unseal(&k, "vcrd_a", b1, l1, &pt), 0);
	assert_string_equal(pt, tok);
	secret_free(pt);
	pt = NULL;

	/* Bound to its owner, its key and every byte. */
	assert_int_equal(vaults_unseal(&k, "vcrd_b", b1, l1, &pt), AL_E_INVAL);
	assert_int_equal(vaults_unseal(&other, "vcrd_a", b1, l1, &pt), AL_E_INVAL);
	for (size_t i = 0; i < l1; i++) {
		b1[i] ^= 0x40;
		int r = vaults_unseal(&k, "vcrd_a", b1, l1, &pt);
		if (r == 0)
			fail_msg("flipped byte %zu still unseals", i);
		/* A flipped key id names the key, not corruption. */
		assert_int_equal(r, (i >= 1 && i <= 8) ? AL_E_AUTH : AL_E_INVAL);
		b1[i] ^= 0x40;
	}
	for (size_t n = 0; n < l1; n++)
		assert_int_not_equal(vaults_unseal(&k, "vcrd_a", b1, n, &pt), 0);
	assert_null(pt);

	struct vaults_key k2 = key_of(HEXKEY);
	k2.key[5] ^= 0xff;
	k2.id[0] ^= 0xff;
	assert_int_equal(vaults_unseal(&k2, "vcrd_a", b1, l1, &pt), AL_E_AUTH);
	free(b1);
	free(b2);
}

static void
test_key_parse(void **state)
{
	static const struct {
		const char *text;
		bool ok;
	} cases[] = {
	    {HEXKEY, true},
	    {"  " HEXKEY "\n", true},
	    {B64KEY, true},
	    {B64PAD "\r\n", true},
	    {"", false},
	    {"\n", false},
	    {HEXKEY "0", false},
	    {"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg", false}, /* 31 bytes */
	    {"not a key at all!", false},
	    {"zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", false},
	};
	struct vaults_key ref = key_of(HEXKEY);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vaults_key k;
		int r = vaults_key_parse(cases[i].text, strlen(cases[i].text), &k);
		if ((r == 0) != cases[i].ok)
			fail_msg("case %zu '%s': got %d", i, cases[i].text, r);
		if (r == 0) {
			assert_memory_equal(k.key, ref.key, VAULTS_KEY_LEN);
			assert_memory_equal(k.id, ref.id, VAULTS_KEY_ID_LEN);
		}
	}
}

static void
test_check_url(void **state)
{
	static const struct {
		const char *url;
		const char *err; /* NULL: accepted */
	} cases[] = {
	    {"https://mcp.example.com/mcp", NULL},
	    {"https://mcp.example.com", NULL},
	    {"HTTPS://mcp.example.com:8443/a/b?x=1", NULL},
	    {"https://[2001:db8::1]/mcp", NULL},
	    {"http://127.0.0.1:8080/mcp", NULL},
	    {"http://localhost/mcp", NULL},
	    {"http://[::1]:9/mcp", NULL},
	    {"http://example.com/mcp", "plain http is accepted only for loopback"},
	    {"http://10.0.0.1/mcp", "plain http"},
	    {"http://127.0.0.1.evil.test/mcp", "plain http"},
	    {"ftp://example.com/", "absolute https:// URL"},
	    {"mcp.example.com/mcp", "absolute https:// URL"},
	    {"/mcp", "absolute https:// URL"},
	    {"", "1 to 2048 bytes"},
	    {"https://user:pw@example.com/mcp", "user information"},
	    {"https://example.com/mcp#frag", "fragment"},
	    {"https://exa mple.com/", "printable ASCII"},
	    {"https://example.com/\n", "printable ASCII"},
	    {"https://bücher.example/", "printable ASCII"},
	    {"https:///path", "not a valid absolute URL"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct verr e = {{0}};
		int r = vaults_check_url(cases[i].url, "auth.mcp_server_url", &e);
		if (cases[i].err == NULL && r != 0)
			fail_msg("case %zu '%s' rejected: %s", i, cases[i].url, e.msg);
		if (cases[i].err && (r != AL_E_INVAL || strstr(e.msg, cases[i].err) == NULL ||
		                     strncmp(e.msg, "auth.mcp_server_url: ", 21) != 0))
			fail_msg("case %zu '%s': got %d '%s', want '%s'", i, cases[i].url, r, e.msg,
			         cases[i].err);
	}
	char *longurl = xmalloc(2100);
	memcpy(longurl, "https://e.test/", 15);
	memset(longurl + 15, 'a', 2100 - 16);
	longurl[2099] = '\0';
	struct verr e;
	assert_int_equal(vaults_check_url(longurl, "u", &e), AL_E_INVAL);
	free(longurl);
}

/* ---- a server on a scratch data directory ---- */

struct fx {
	char dir[64];
	struct server s;
};

static void
fx_open(struct fx *f)
{
	assert_int_equal(db_open(f->dir, &f->s.db), 0);
	assert_int_equal(vaults_init(&f->s), 0);
}

static void
fx_close(struct fx *f)
{
	vaults_shutdown(&f->s);
	db_close(f->s.db);
	f->s.db = NULL;
}

static int
fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/airlock-vaults-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->s.cfg.data_dir = f->dir;
	f->s.cfg.master_key_file = NULL;
	fx_open(f);
	*state = f;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	fx_close(f);
	f->s.cfg.master_key_file = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static char *
new_vault(struct fx *f, const char *name)
{
	struct verr e = {{0}};
	json_t *doc = NULL;
	if (vaults_create(&f->s, name, NULL, &doc, &e) != 0)
		fail_msg("vault create: %s", e.msg);
	char *id = xstrdup(json_string_value(json_object_get(doc, "id")));
	json_decref(doc);
	return id;
}

/* Creates a static_bearer credential; returns its id or NULL with *r set. */
static char *
new_cred(struct fx *f, const char *vault, const char *url, const char *token, int *r,
         struct verr *e)
{
	json_t *auth = json_pack("{s:s, s:s, s:s}", "type", "static_bearer", "mcp_server_url", url,
	                         "token", token);
	json_t *doc = NULL;
	char *id = NULL;
	*r = vaults_credential_create(&f->s, vault, auth, NULL, NULL, &doc, e);
	if (*r == 0) {
		char *text = json_dumps(doc, JSON_COMPACT);
		/* Short test tokens ("t") occur in any document by chance. */
		if ((strlen(token) >= 6 && strstr(text, token)) ||
		    json_object_get(json_object_get(doc, "auth"), "token"))
			fail_msg("credential document holds the token: %s", text);
		free(text);
		id = xstrdup(json_string_value(json_object_get(doc, "id")));
	}
	json_decref(doc);
	json_decref(auth);
	return id;
}

static char *
must_cred(struct fx *f, const char *vault, const char *url, const char *token)
{
	struct verr e = {{0}};
	int r;
	char *id = new_cred(f, vault, url, token, &r, &e);
	if (id == NULL)
		fail_msg("credential %s: %d %s", url, r, e.msg);
	return id;
}

static void
expect_bearer(struct fx *f, const char *ids_json, const char *url, const char *want)
{
	json_t *ids = J(ids_json);
	char *tok = NULL;
	int r = vaults_bearer_for(&f->s, ids, url, &tok);
	if (want == NULL && r != AL_E_NOTFOUND)
		fail_msg("%s %s: want NOTFOUND, got %d (%s)", ids_json, url, r, tok ? tok : "-");
	if (want && (r != 0 || strcmp(tok, want) != 0))
		fail_msg("%s %s: want %s, got %d (%s)", ids_json, url, want, r, tok ? tok : "-");
	secret_free(tok);
	json_decref(ids);
}

static void
test_bearer_for(void **state)
{
	struct fx *f = *state;
	char ids[256];
	char *a = new_vault(f, "Alice"), *b = new_vault(f, "Bob");
	char *ca = must_cred(f, a, "https://mcp.a.test/mcp", "tokA");
	free(must_cred(f, b, "https://mcp.a.test/mcp/", "tokB"));
	free(must_cred(f, b, "http://127.0.0.1:8080/x", "tokC"));

	snprintf(ids, sizeof(ids), "[\"%s\", \"%s\"]", a, b);
	expect_bearer(f, ids, "https://mcp.a.test/mcp", "tokA");
	expect_bearer(f, ids, "https://mcp.a.test/mcp/", "tokA"); /* trailing slash ignored */
	expect_bearer(f, ids, "http://127.0.0.1:8080/x", "tokC");
	expect_bearer(f, ids, "http://127.0.0.1:8080/x/", "tokC");
	expect_bearer(f, ids, "https://mcp.a.test/mcp//", NULL); /* only one slash */
	expect_bearer(f, ids, "https://mcp.a.test/MCP", NULL);   /* exact otherwise */
	expect_bearer(f, ids, "https://other.test/mcp", NULL);
	snprintf(ids, sizeof(ids), "[\"%s\", \"%s\"]", b, a);
	expect_bearer(f, ids, "https://mcp.a.test/mcp", "tokB"); /* first vault wins */
	snprintf(ids, sizeof(ids), "[7, null, \"vlt_nope\", \"%s\"]", a);
	expect_bearer(f, ids, "https://mcp.a.test/mcp", "tokA");
	expect_bearer(f, "[]", "https://mcp.a.test/mcp", NULL);
	expect_bearer(f, "{}", "https://mcp.a.test/mcp", NULL);
	char *tok = NULL;
	assert_int_equal(vaults_bearer_for(&f->s, NULL, "https://mcp.a.test/mcp", &tok),
	                 AL_E_NOTFOUND);
	assert_null(tok);

	/* Archived credentials and vaults never match. */
	struct verr e = {{0}};
	json_t *doc = NULL;
	assert_int_equal(vaults_credential_archive(&f->s, a, ca, &doc, &e), 0);
	assert_false(json_is_null(json_object_get(doc, "archived_at")));
	json_decref(doc);
	snprintf(ids, sizeof(ids), "[\"%s\", \"%s\"]", a, b);
	expect_bearer(f, ids, "https://mcp.a.test/mcp", "tokB");
	assert_int_equal(vaults_archive(&f->s, b, &doc, &e), 0);
	json_decref(doc);
	expect_bearer(f, ids, "https://mcp.a.test/mcp", NULL);
	expect_bearer(f, ids, "http://127.0.0.1:8080/x", NULL);

	/* The URL of an archived credential is free again. */
	free(must_cred(f, a, "https://mcp.a.test/mcp/", "tokA2"));
	expect_bearer(f, ids, "https://mcp.a.test/mcp", "tokA2");
	free(ca);
	free(a);
	free(b);
}

/* environment_variable (issue 14): name, value, networking and placement rules; the
 * stored document has no value; one live credential per name; the value comes back
 * only through vaults_env_secrets, and an MCP lookup never finds it. */
static void
test_env_credentials(void **state)
{
	struct fx *f = *state;
#define ENV_OK "\"networking\":{\"type\":\"limited\",\"allowed_hosts\":[\"api.test\"]}"
	static const struct {
		const char *auth;
		int r;
		const char *msg;
	} cases[] = {
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"1X\",\"secret_value\":"
	     "\"v\"," ENV_OK "}",
	     AL_E_INVAL, "auth.secret_name: must be an environment variable name"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"ANTHROPIC_API_KEY\","
	     "\"secret_value\":\"v\"," ENV_OK "}",
	     AL_E_INVAL, "is reserved in the sandbox"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"HTTPS_PROXY\","
	     "\"secret_value\":\"v\"," ENV_OK "}",
	     AL_E_INVAL, "is reserved in the sandbox"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"K\",\"secret_value\":\"v\"}",
	     AL_E_INVAL, "auth.networking: Field required"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"K\",\"secret_value\":\"a\\r\\nX-"
	     "Evil: "
	     "1\"," ENV_OK "}",
	     AL_E_INVAL, "auth.secret_value: must be visible ASCII"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"K\",\"secret_value\":\"v\","
	     "\"networking\":{\"type\":\"limited\",\"allowed_hosts\":[\"api.test:443\"]}}",
	     AL_E_INVAL, "auth.networking.allowed_hosts[0]: 'api.test:443': no port"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"K\",\"secret_value\":\"v\","
	     "\"networking\":{\"type\":\"limited\",\"allowed_hosts\":[]}}",
	     AL_E_INVAL, "must be a list of 1 to 16 hosts"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"K\",\"secret_value\":\"v\","
	     "\"networking\":{\"type\":\"limited\",\"allowed_hosts\":[\"fd00::1\"]}}",
	     AL_E_INVAL, "auth.networking.allowed_hosts[0]"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"K\",\"secret_value\":"
	     "\"v\"," ENV_OK ",\"injection_location\":{\"header\":\"yes\"}}",
	     AL_E_INVAL, "header and body are booleans"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"K\",\"secret_value\":"
	     "\"v\"," ENV_OK ",\"token\":\"t\"}",
	     AL_E_INVAL, "auth.token: Extra inputs are not permitted"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"LEDGER\",\"secret_value\":"
	     "\"s3cr3t-value\"," ENV_OK "}",
	     0, NULL},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"LEDGER\",\"secret_value\":"
	     "\"v2\"," ENV_OK "}",
	     AL_E_CONFLICT, "already has a live credential for secret_name LEDGER"},
	};
#undef ENV_OK
	char *v = new_vault(f, "env");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct verr e = {{0}};
		json_t *auth = J(cases[i].auth), *doc = NULL;
		int r = vaults_credential_create(&f->s, v, auth, NULL, NULL, &doc, &e);
		if (r != cases[i].r || (cases[i].msg && strstr(e.msg, cases[i].msg) == NULL))
			fail_msg("case %zu: got %d '%s', want %d '%s'", i, r, e.msg, cases[i].r,
			         cases[i].msg ? cases[i].msg : "");
		assert_null(strstr(e.msg, "X-Evil"));
		if (r == 0) {
			char *text = json_dumps(doc, JSON_COMPACT);
			assert_null(strstr(text, "s3cr3t"));
			assert_non_null(strstr(
			    text, "\"injection_location\":{\"header\":true,\"body\":false}"));
			free(text);
		}
		json_decref(doc);
		json_decref(auth);
	}
	json_t *ids = json_pack("[s]", v), *data = NULL;
	assert_int_equal(vaults_env_secrets(&f->s, ids, &data), 0);
	assert_int_equal(json_array_size(data), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(data, 0), "value")),
	                    "s3cr3t-value");
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(data, 0), "secret_name")), "LEDGER");
	json_decref(data);
	/* the MCP connector's lookup is static_bearer only: an env key never matches */
	char ids_json[128];
	snprintf(ids_json, sizeof(ids_json), "[\"%s\"]", v);
	expect_bearer(f, ids_json, "env:LEDGER", NULL);
	json_decref(ids);
	free(v);
}

static void
test_credential_rules(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *auth; /* JSON */
		int r;
		const char *msg;
	} cases[] = {
	    {"{\"type\":\"mcp_oauth\",\"mcp_server_url\":\"https://x.test/"
	     "\",\"access_token\":\"t\"}",
	     AL_E_INVAL, "not supported by a self-hosted server"},
	    {"{\"type\":\"environment_variable\",\"secret_name\":\"K\",\"secret_value\":\"v\","
	     "\"networking\":{\"type\":\"unrestricted\"}}",
	     AL_E_INVAL, "auth.networking.type: must be 'limited'"},
	    {"{\"type\":\"basic\"}", AL_E_INVAL, "auth.type: must be 'static_bearer'"},
	    {"{\"mcp_server_url\":\"https://x.test/\",\"token\":\"t\"}", AL_E_INVAL,
	     "auth.type: Field required"},
	    {"[]", AL_E_INVAL, "auth: must be an object"},
	    {"{\"type\":\"static_bearer\",\"token\":\"t\"}", AL_E_INVAL,
	     "auth.mcp_server_url: Field required"},
	    {"{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://x.test/\"}", AL_E_INVAL,
	     "auth.token: Field required"},
	    {"{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://x.test/\",\"token\":\"\"}",
	     AL_E_INVAL, "auth.token: must be 1 to"},
	    {"{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://x.test/"
	     "\",\"token\":\"a\\r\\nX-Evil: "
	     "1\"}",
	     AL_E_INVAL, "auth.token: must be visible ASCII"},
	    {"{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://x.test/\",\"token\":5}",
	     AL_E_INVAL, "auth.token: must be a string"},
	    {"{\"type\":\"static_bearer\",\"mcp_server_url\":\"http://x.test/\",\"token\":\"t\"}",
	     AL_E_INVAL, "auth.mcp_server_url: must use https"},
	    {"{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://x.test/\",\"token\":\"t\","
	     "\"extra\":1}",
	     AL_E_INVAL, "auth.extra: Extra inputs are not permitted"},
	    {"{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://dup.test/"
	     "mcp\",\"token\":\"t\"}",
	     0, NULL},
	    {"{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://dup.test/"
	     "mcp\",\"token\":\"t\"}",
	     AL_E_CONFLICT, "already has a live credential"},
	    {"{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://dup.test/mcp/"
	     "\",\"token\":\"t\"}",
	     AL_E_CONFLICT, "already has a live credential"},
	    {"{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://dup.test/mcp/x\",\"token\":"
	     "\"t\"}",
	     0, NULL},
	};
	char *v = new_vault(f, "rules");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct verr e = {{0}};
		json_t *auth = J(cases[i].auth), *doc = NULL;
		int r = vaults_credential_create(&f->s, v, auth, NULL, NULL, &doc, &e);
		if (r != cases[i].r || (cases[i].msg && strstr(e.msg, cases[i].msg) == NULL))
			fail_msg("case %zu: got %d '%s', want %d '%s'", i, r, e.msg, cases[i].r,
			         cases[i].msg ? cases[i].msg : "");
		if (r == 0)
			assert_string_equal(json_string_value(json_object_get(
			                        json_object_get(doc, "auth"), "type")),
			                    "static_bearer");
		/* Errors never repeat a token. */
		assert_null(strstr(e.msg, "X-Evil"));
		json_decref(doc);
		json_decref(auth);
	}

	/* Display names, vault existence and state, and the live-credential cap. */
	struct verr e = {{0}};
	json_t *auth = J("{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://n.test/\","
	                 "\"token\":\"t\"}"),
	       *doc = NULL, *longname = json_string("");
	char name[300];
	memset(name, 'n', 256);
	name[256] = '\0';
	json_decref(longname);
	longname = json_string(name);
	assert_int_equal(vaults_credential_create(&f->s, v, auth, longname, NULL, &doc, &e),
	                 AL_E_INVAL);
	assert_non_null(strstr(e.msg, "display_name: must be 1 to 255"));
	assert_int_equal(vaults_credential_create(&f->s, "vlt_missing", auth, NULL, NULL, &doc, &e),
	                 AL_E_NOTFOUND);
	assert_int_equal(vaults_create(&f->s, "", NULL, &doc, &e), AL_E_INVAL);
	assert_int_equal(vaults_create(&f->s, name, NULL, &doc, &e), AL_E_INVAL);
	name[255] = '\0';
	assert_int_equal(vaults_create(&f->s, name, NULL, &doc, &e), 0);
	json_decref(doc);

	char *full = new_vault(f, "full");
	for (int i = 0; i < VAULTS_MAX_CREDENTIALS; i++) {
		char url[64];
		snprintf(url, sizeof(url), "https://s%d.test/mcp", i);
		free(must_cred(f, full, url, "cap-token-value"));
	}
	int r;
	assert_null(new_cred(f, full, "https://one-more.test/", "t", &r, &e));
	assert_int_equal(r, AL_E_INVAL);
	assert_non_null(strstr(e.msg, "live credentials, the maximum"));

	assert_int_equal(vaults_archive(&f->s, full, &doc, &e), 0);
	json_decref(doc);
	assert_null(new_cred(f, full, "https://after.test/", "t", &r, &e));
	assert_int_equal(r, AL_E_INVAL);
	assert_non_null(strstr(e.msg, "is archived"));
	json_decref(auth);
	json_decref(longname);
	free(full);
	free(v);
}

/* Reads a whole file (empty when absent). */
static unsigned char *
slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *p = NULL;
	*n = 0;
	if (fp == NULL)
		return xcalloc(1, 1);
	fseek(fp, 0, SEEK_END);
	long sz = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	p = xmalloc((size_t)sz + 1);
	*n = fread(p, 1, (size_t)sz, fp);
	fclose(fp);
	return p;
}

static void
assert_not_in_files(struct fx *f, const char *needle)
{
	static const char *const names[] = {"airlock.db", "airlock.db-wal", "airlock.db-shm"};
	for (size_t i = 0; i < 3; i++) {
		char path[128];
		size_t n;
		snprintf(path, sizeof(path), "%s/%s", f->dir, names[i]);
		unsigned char *p = slurp(path, &n);
		if (memmem(p, n, needle, strlen(needle)))
			fail_msg("%s holds the plaintext token", path);
		free(p);
	}
}

static void
test_no_plaintext_on_disk(void **state)
{
	struct fx *f = *state;
	static const char *const toks[] = {"PLAINTEXT-needle-0123456789",
	                                   "another.secret_token~XYZ"};
	char *v = new_vault(f, "disk");
	char *c1 = must_cred(f, v, "https://d1.test/mcp", toks[0]);
	free(must_cred(f, v, "https://d2.test/mcp", toks[1]));
	assert_not_in_files(f, toks[0]);
	assert_not_in_files(f, toks[1]);
	/* And after the WAL is folded into the main file. */
	assert_int_equal(db_exec(f->s.db, "PRAGMA wal_checkpoint(TRUNCATE)"), 0);
	assert_not_in_files(f, toks[0]);
	assert_not_in_files(f, toks[1]);

	/* The sealed form is there, and it is what the connector gets back. */
	char ids[128];
	snprintf(ids, sizeof(ids), "[\"%s\"]", v);
	expect_bearer(f, ids, "https://d1.test/mcp", toks[0]);

	/* Archiving purges the sealed secret. */
	struct verr e = {{0}};
	json_t *doc = NULL;
	assert_int_equal(vaults_credential_archive(&f->s, v, c1, &doc, &e), 0);
	json_decref(doc);
	struct db_stmt *st = NULL;
	assert_int_equal(db_prepare(f->s.db,
	                            "SELECT secret IS NULL FROM vault_credentials "
	                            "WHERE id = ?",
	                            &st),
	                 0);
	db_bind_text(st, 1, c1);
	assert_int_equal(db_step(st), DB_ROW);
	assert_int_equal(db_col_int(st, 0), 1);
	db_finalize(st);
	free(c1);
	free(v);
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_master_key_files(void **state)
{
	struct fx *f = *state;
	char path[128], alt[128], moved[128], ids[128];
	struct stat st;
	snprintf(path, sizeof(path), "%s/master.key", f->dir);
	snprintf(alt, sizeof(alt), "%s/other.key", f->dir);
	snprintf(moved, sizeof(moved), "%s/moved.key", f->dir);

	/* Generated on first start: 0600, 32 bytes of base64url. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	size_t n;
	unsigned char *text = slurp(path, &n);
	struct vaults_key k;
	assert_int_equal(vaults_key_parse((char *)text, n, &k), 0);
	assert_memory_equal(k.key, f->s.vault_key->key, VAULTS_KEY_LEN);
	free(text);

	char *v = new_vault(f, "keys");
	free(must_cred(f, v, "https://k.test/mcp", "tok-k"));
	snprintf(ids, sizeof(ids), "[\"%s\"]", v);

	/* A restart reuses the key. */
	fx_close(f);
	fx_open(f);
	expect_bearer(f, ids, "https://k.test/mcp", "tok-k");
	fx_close(f);

	/* A missing key file is not silently replaced while sealed secrets exist. */
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(db_open(f->dir, &f->s.db), 0);
	assert_int_equal(vaults_init(&f->s), AL_E_AUTH);
	assert_int_not_equal(access(path, F_OK), 0);

	/* Another key is refused. */
	write_file(alt, HEXKEY "\n", 0600);
	f->s.cfg.master_key_file = alt;
	assert_int_equal(vaults_init(&f->s), AL_E_AUTH);
	/* A key others can read is refused; so is a missing or malformed file. */
	assert_int_equal(chmod(moved, 0644), 0);
	f->s.cfg.master_key_file = moved;
	assert_int_equal(vaults_init(&f->s), AL_E_PERM);
	write_file(alt, "short\n", 0600);
	f->s.cfg.master_key_file = alt;
	assert_int_equal(vaults_init(&f->s), AL_E_INVAL);
	f->s.cfg.master_key_file = "/nonexistent/airlock.key";
	assert_int_not_equal(vaults_init(&f->s), 0);
	assert_null(f->s.vault_key);

	/* The original key from master_key_file (AIRLOCK_MASTER_KEY_FILE) opens the secrets again.
	 */
	assert_int_equal(chmod(moved, 0640), 0);
	f->s.cfg.master_key_file = moved;
	assert_int_equal(vaults_init(&f->s), 0);
	expect_bearer(f, ids, "https://k.test/mcp", "tok-k");
	free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seal_roundtrip),
	    cmocka_unit_test(test_key_parse),
	    cmocka_unit_test(test_check_url),
	    cmocka_unit_test_setup_teardown(test_bearer_for, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_credential_rules, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_env_credentials, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_no_plaintext_on_disk, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_master_key_files, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
