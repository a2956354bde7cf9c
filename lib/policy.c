/* Tool policy: YAML (lib/cfg) compiled into hash indexes and bitsets; see policy.h and
 * docs/server/policy.md. A decision costs a few hash lookups and ORs of small bitsets,
 * never a scan of every rule: rules are found by principal (user, group, "anyone"), by
 * agent and by tool (exact name, or the literal prefix of a glob), and intersected. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfg.h"
#include "err.h"
#include "policy.h"
#include "xalloc.h"

#define WORDS_MAX ((POLICY_MAX_RULES + 63) / 64)
#define NAME_MAX_LEN 1024 /* bytes in a user, group or agent entry */

/* ---- a small open-addressing map: string → list of uint32 (rule indexes, glob ids
 * or a role). Keys come from the policy file only; lookups with strings from tokens or
 * the model just probe, so they cannot shape the table. FNV-1a, so a key's hash can be
 * built one byte at a time while walking a tool name's prefixes. */

#define FNV_OFF 2166136261u
#define FNV_PRIME 16777619u

struct pent {
	char *key; /* NULL: empty slot */
	uint32_t len;
	uint32_t hash;
	uint32_t *v;
	uint32_t n, cap;
};

struct pmap {
	struct pent *slot;
	uint32_t cap; /* power of two, or 0 */
	uint32_t n;
};

static inline uint32_t
fnv_step(uint32_t h, char c)
{
	return (h ^ (uint8_t)c) * FNV_PRIME;
}

static uint32_t
fnv(const char *s, size_t n)
{
	uint32_t h = FNV_OFF;
	for (size_t i = 0; i < n; i++)
		h = fnv_step(h, s[i]);
	return h;
}

static const struct pent *
pmap_find(const struct pmap *m, const char *key, size_t len, uint32_t h)
{
	if (m->cap == 0)
		return NULL;
	for (uint32_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		const struct pent *e = &m->slot[i];
		if (e->key == NULL)
			return NULL;
		if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
			return e;
	}
}

static void
pmap_grow(struct pmap *m)
{
	uint32_t ncap = m->cap ? m->cap * 2 : 16;
	struct pent *ns = xcalloc(ncap, sizeof(*ns));
	for (uint32_t i = 0; i < m->cap; i++) {
		struct pent *e = &m->slot[i];
		if (e->key == NULL)
			continue;
		uint32_t j = e->hash & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = *e;
	}
	free(m->slot);
	m->slot = ns;
	m->cap = ncap;
}

/* The entry for key, created empty if absent. */
static struct pent *
pmap_get(struct pmap *m, const char *key, size_t len)
{
	uint32_t h = fnv(key, len);
	const struct pent *f = pmap_find(m, key, len, h);
	if (f)
		return (struct pent *)f;
	if ((m->n + 1) * 2 > m->cap)
		pmap_grow(m);
	uint32_t i = h & (m->cap - 1);
	while (m->slot[i].key)
		i = (i + 1) & (m->cap - 1);
	struct pent *e = &m->slot[i];
	e->key = xstrndup(key, len);
	e->len = (uint32_t)len;
	e->hash = h;
	m->n++;
	return e;
}

/* Appends v unless it is already the last value (a rule naming a key twice). */
static void
pent_push(struct pent *e, uint32_t v)
{
	if (e->n > 0 && e->v[e->n - 1] == v)
		return;
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 4;
		e->v = xreallocarray(e->v, e->cap, sizeof(*e->v));
	}
	e->v[e->n++] = v;
}

static void
pmap_free(struct pmap *m)
{
	for (uint32_t i = 0; i < m->cap; i++) {
		free(m->slot[i].key);
		free(m->slot[i].v);
	}
	free(m->slot);
	memset(m, 0, sizeof(*m));
}

/* ---- the compiled policy */

struct prule {
	char *id;
	enum policy_effect effect;
	unsigned line;
};

/* One distinct tool glob; rules holds every rule that lists it. */
struct pglob {
	char *pat;
	uint32_t len;
	uint32_t plen;    /* literal prefix: bytes before the first metacharacter */
	bool prefix_only; /* "<prefix>*": the prefix match decides */
	struct pent rules;
};

struct policy {
	int refs;
	enum policy_effect def;
	enum policy_role default_role;
	size_t n_rules, words;
	struct prule *rules;
	struct pmap users, groups, agents; /* key → rule indexes */
	struct pmap tools;                 /* exact tool name → rule indexes */
	struct pmap prefixes;              /* glob literal prefix → glob ids */
	struct pmap roles;                 /* group → role (one value) */
	struct pglob *globs;
	size_t n_globs, max_prefix;
	uint64_t *any_principal, *any_agent; /* rules without users/groups, without agents */
	uint64_t *by_effect[3];
	size_t role_groups[4];
};

static const char *const effect_names[] = {"allow", "ask", "deny"};
static const char *const role_names[] = {"none", "user", "developer", "admin"};

const char *
policy_effect_name(enum policy_effect e)
{
	return (unsigned)e < 3 ? effect_names[e] : "?";
}

const char *
policy_role_name(enum policy_role r)
{
	return (unsigned)r < 4 ? role_names[r] : "?";
}

static bool
name_char(char ch)
{
	/* the Messages API's tool name alphabet: ^[A-Za-z0-9_-]{1,128}$ */
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-';
}

static bool
glob_meta(char ch)
{
	return ch == '*' || ch == '?' || ch == '[';
}

/* NULL if pattern (NUL-terminated, n bytes) is a valid tool glob, else why not. Literal
 * characters must be ones a tool name can hold, so a typo such as "mcp__ledger.*" or a
 * path is refused instead of silently matching nothing. */
static const char *
glob_check(const char *s, size_t n, char *why, size_t whylen)
{
	if (n == 0)
		return "empty tool name";
	if (n > POLICY_MAX_PATTERN)
		return "tool pattern longer than 256 bytes";
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (name_char(c) || c == '*' || c == '?')
			continue;
		if (c == '[') {
			size_t j = i + 1;
			if (j < n && s[j] == '!')
				j++;
			if (j < n && s[j] == ']')
				return "empty character class '[]'";
			while (j < n && s[j] != ']') {
				if (!name_char(s[j])) {
					snprintf(
					    why, whylen,
					    "character class holds '%c', which no tool name has",
					    s[j] >= 0x20 && s[j] < 0x7f ? s[j] : '?');
					return why;
				}
				if (j + 2 < n && s[j + 1] == '-' && s[j + 2] != ']') {
					if (!name_char(s[j + 2]))
						return "bad range in character class";
					if (s[j] > s[j + 2])
						return "reversed range in character class";
					j += 3;
				} else {
					j++;
				}
			}
			if (j >= n)
				return "unterminated '[' in tool pattern";
			i = j;
			continue;
		}
		if (c >= 0x20 && c < 0x7f)
			snprintf(why, whylen,
			         "'%c' cannot appear in a tool name (globs: * ? [abc] [a-z] [!a])",
			         c);
		else
			snprintf(why, whylen, "byte 0x%02x cannot appear in a tool name",
			         (unsigned)(uint8_t)c);
		return why;
	}
	return NULL;
}

/* p points at a validated '['; *adv gets the class length. */
static bool
class_match(const char *p, size_t *adv, char ch)
{
	size_t j = 1;
	bool neg = false, hit = false;
	if (p[j] == '!') {
		neg = true;
		j++;
	}
	while (p[j] != ']') {
		char lo = p[j], hi = lo;
		if (p[j + 1] == '-' && p[j + 2] != ']') {
			hi = p[j + 2];
			j += 3;
		} else {
			j++;
		}
		if (ch >= lo && ch <= hi)
			hit = true;
	}
	*adv = j + 1;
	return hit != neg;
}

/* Glob match of a validated, NUL-terminated pattern against s[0..n): iterative with one
 * backtrack point per '*', so O(len(p) * n) at worst, no recursion. */
static bool
glob_match(const char *p, const char *s, size_t n)
{
	size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
	while (si < n) {
		char c = p[pi];
		if (c == '*') {
			star_p = ++pi;
			star_s = si;
			continue;
		}
		if (c == '?') {
			pi++;
			si++;
			continue;
		}
		if (c == '[') {
			size_t adv;
			if (class_match(p + pi, &adv, s[si])) {
				pi += adv;
				si++;
				continue;
			}
		} else if (c != '\0' && c == s[si]) {
			pi++;
			si++;
			continue;
		}
		if (star_p == SIZE_MAX)
			return false;
		pi = star_p;
		si = ++star_s;
	}
	while (p[pi] == '*')
		pi++;
	return p[pi] == '\0';
}

/* ---- compiling */

static void
bit_set(uint64_t *b, uint32_t i)
{
	b[i >> 6] |= (uint64_t)1 << (i & 63);
}

static void
bits_or_list(uint64_t *b, const struct pent *e)
{
	for (uint32_t i = 0; i < e->n; i++)
		bit_set(b, e->v[i]);
}

static const json_t *
at(const json_t *node, const json_t *fallback)
{
	/* jansson's null is one shared object, so its recorded line is the first null's
	 * anywhere in the file: point at the enclosing node instead. */
	return node == NULL || json_is_null(node) ? fallback : node;
}

/* Index of s in names[0..n), or -1. */
static int
name_index(const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static bool
id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > POLICY_MAX_ID)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i]) && s[i] != '.' && s[i] != ':')
			return false;
	return true;
}

/* rule[key]: absent → *out NULL; else a non-empty list of non-empty strings. */
static int
get_names(struct cfg *c, const json_t *obj, const char *key, const char *ctx, const json_t **out)
{
	const json_t *v = json_object_get(obj, key);
	size_t i;
	const json_t *item;
	*out = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_array(v) || json_array_size(v) == 0)
		return cfg_error(c, at(v, obj),
		                 "%s%s: must be a non-empty list (omit the key to match any)", ctx,
		                 key);
	if (json_array_size(v) > POLICY_MAX_LIST)
		return cfg_error(c, v, "%s%s: more than %d entries", ctx, key, POLICY_MAX_LIST);
	json_array_foreach(v, i, item)
	{
		if (!json_is_string(item) || json_string_length(item) == 0)
			return cfg_error(c, at(item, v), "%s%s: entries must be non-empty strings",
			                 ctx, key);
		if (json_string_length(item) > NAME_MAX_LEN)
			return cfg_error(c, item, "%s%s: entry longer than %d bytes", ctx, key,
			                 NAME_MAX_LEN);
		if (memchr(json_string_value(item), '\0', json_string_length(item)))
			return cfg_error(c, item, "%s%s: entry holds a NUL byte", ctx, key);
	}
	*out = v;
	return 0;
}

static void
index_names(struct pmap *m, const json_t *list, uint32_t rule)
{
	size_t i;
	const json_t *item;
	json_array_foreach(list, i, item)
	{
		pent_push(pmap_get(m, json_string_value(item), json_string_length(item)), rule);
	}
}

static void
index_tool(struct policy *p, struct pmap *glob_ids, const char *pat, size_t n, uint32_t rule)
{
	size_t plen = 0;
	while (plen < n && !glob_meta(pat[plen]))
		plen++;
	if (plen == n) {
		pent_push(pmap_get(&p->tools, pat, n), rule);
		return;
	}
	struct pent *g = pmap_get(glob_ids, pat, n);
	if (g->n == 0) { /* first use of this pattern */
		p->globs = xreallocarray(p->globs, p->n_globs + 1, sizeof(*p->globs));
		struct pglob *gl = &p->globs[p->n_globs];
		memset(gl, 0, sizeof(*gl));
		gl->pat = xstrndup(pat, n);
		gl->len = (uint32_t)n;
		gl->plen = (uint32_t)plen;
		gl->prefix_only = pat[plen] == '*' && plen + 1 == n;
		pent_push(g, (uint32_t)p->n_globs);
		pent_push(pmap_get(&p->prefixes, pat, plen), (uint32_t)p->n_globs);
		if (plen > p->max_prefix)
			p->max_prefix = plen;
		p->n_globs++;
	}
	pent_push(&p->globs[g->v[0]].rules, rule);
}

static int
compile_roles(struct cfg *c, struct policy *p, const json_t *roles)
{
	static const char *const keys[] = {"admin", "developer", "user", NULL};
	int r;
	if ((r = cfg_only_keys(c, roles, keys)) != 0)
		return r;
	const char *key;
	const json_t *kv;
	/* in file order, so a conflict is reported where the reader meets it */
	json_object_foreach((json_t *)roles, key, kv)
	{
		int role = name_index(key, role_names, 4); /* cfg_only_keys: one of three */
		const json_t *list;
		size_t i;
		const json_t *item;
		(void)kv;
		if ((r = get_names(c, roles, key, "roles: ", &list)) != 0)
			return r;
		json_array_foreach(list, i, item)
		{
			struct pent *e =
			    pmap_get(&p->roles, json_string_value(item), json_string_length(item));
			if (e->n == 0) {
				pent_push(e, (uint32_t)role);
			} else if (e->v[0] == (uint32_t)role) {
				return cfg_error(c, item, "roles: %s: group '%s' listed twice",
				                 role_names[role], json_string_value(item));
			} else {
				/* a group in two roles: say so rather than pick one */
				return cfg_error(
				    c, item,
				    "roles: group '%s' is already mapped to %s (a group "
				    "maps to one role)",
				    json_string_value(item), role_names[e->v[0]]);
			}
			p->role_groups[role]++;
		}
	}
	return 0;
}

static int
compile_rule(struct cfg *c, struct policy *p, struct pmap *ids, struct pmap *glob_ids,
             const json_t *rule, size_t idx)
{
	static const char *const keys[] = {"id",     "effect", "description", "users",
	                                   "groups", "agents", "tools",       NULL};
	char ctx[POLICY_MAX_ID + 16];
	int r;
	if (!json_is_object(rule))
		return cfg_error(c, rule, "rules: each rule must be a mapping");
	unsigned line = cfg_line(c, rule);
	const json_t *id = json_object_get(rule, "id");
	if (id == NULL)
		return cfg_error(c, rule, "rules: rule %zu has no id", idx + 1);
	if (!json_is_string(id) || !id_ok(json_string_value(id)))
		return cfg_error(
		    c, at(id, rule),
		    "rules: id must be 1 to %d characters of A-Z a-z 0-9 _ - . :", POLICY_MAX_ID);
	const char *idv = json_string_value(id);
	if (strcmp(idv, "default") == 0)
		return cfg_error(c, id, "rules: id 'default' is reserved for the default decision");
	snprintf(ctx, sizeof(ctx), "rule '%s': ", idv);
	struct pent *seen = pmap_get(ids, idv, strlen(idv));
	if (seen->n > 0)
		return cfg_error(c, id, "rules: duplicate id '%s' (first used on line %u)", idv,
		                 p->rules[seen->v[0]].line);
	pent_push(seen, (uint32_t)idx);

	const json_t *k;
	const char *key;
	json_object_foreach((json_t *)rule, key, k)
	{
		(void)k;
		bool ok = false;
		for (size_t i = 0; keys[i]; i++)
			ok = ok || strcmp(key, keys[i]) == 0;
		if (!ok)
			return cfg_error(c, at(k, rule), "%sunknown key '%s'", ctx, key);
	}
	const json_t *eff = json_object_get(rule, "effect");
	struct prule *pr = &p->rules[idx];
	pr->line = line;
	pr->id = xstrdup(idv);
	if (eff == NULL)
		return cfg_error(c, rule, "%seffect: missing (allow, ask or deny)", ctx);
	int e = json_is_string(eff) ? name_index(json_string_value(eff), effect_names, 3) : -1;
	if (e < 0)
		return cfg_error(c, at(eff, rule), "%seffect: must be allow, ask or deny", ctx);
	pr->effect = (enum policy_effect)e;
	const json_t *desc = json_object_get(rule, "description");
	if (desc && !json_is_string(desc))
		return cfg_error(c, at(desc, rule), "%sdescription: must be a string", ctx);

	const json_t *users, *groups, *agents, *tools;
	if ((r = get_names(c, rule, "users", ctx, &users)) != 0 ||
	    (r = get_names(c, rule, "groups", ctx, &groups)) != 0 ||
	    (r = get_names(c, rule, "agents", ctx, &agents)) != 0 ||
	    (r = get_names(c, rule, "tools", ctx, &tools)) != 0)
		return r;
	if (tools == NULL)
		return cfg_error(c, rule, "%stools: missing (a list of tool names or globs)", ctx);
	size_t i;
	const json_t *t;
	char why[128];
	json_array_foreach(tools, i, t)
	{
		const char *msg =
		    glob_check(json_string_value(t), json_string_length(t), why, sizeof(why));
		if (msg)
			return cfg_error(c, t, "%stools: '%.64s': %s", ctx, json_string_value(t),
			                 msg);
	}

	uint32_t ri = (uint32_t)idx;
	bit_set(p->by_effect[pr->effect], ri);
	if (users == NULL && groups == NULL)
		bit_set(p->any_principal, ri);
	if (users)
		index_names(&p->users, users, ri);
	if (groups)
		index_names(&p->groups, groups, ri);
	if (agents)
		index_names(&p->agents, agents, ri);
	else
		bit_set(p->any_agent, ri);
	json_array_foreach(tools, i, t)
	{
		index_tool(p, glob_ids, json_string_value(t), json_string_length(t), ri);
	}
	return 0;
}

static int
compile(struct cfg *c, struct policy **out)
{
	static const char *const keys[] = {"default", "default_role", "roles", "rules", NULL};
	struct policy *p = xcalloc(1, sizeof(*p));
	struct pmap ids = {0}, glob_ids = {0};
	int r;
	p->refs = 1;
	if ((r = cfg_only_keys(c, c->root, keys)) != 0)
		goto out;
	const json_t *v = json_object_get(c->root, "default");
	int k = v && json_is_string(v) ? name_index(json_string_value(v), effect_names, 3) : -1;
	if (v && k < 0) {
		r = cfg_error(c, at(v, c->root), "default: must be allow, deny or ask");
		goto out;
	}
	p->def = v ? (enum policy_effect)k : POLICY_DENY;
	v = json_object_get(c->root, "default_role");
	k = v && json_is_string(v) ? name_index(json_string_value(v), role_names, 4) : -1;
	if (v && k < 0) {
		r = cfg_error(c, at(v, c->root),
		              "default_role: must be none, user, developer or admin");
		goto out;
	}
	p->default_role = v ? (enum policy_role)k : POLICY_ROLE_USER;
	const json_t *roles;
	if ((r = cfg_get_map(c, c->root, "roles", &roles)) != 0)
		goto out;
	if (roles && (r = compile_roles(c, p, roles)) != 0)
		goto out;
	const json_t *rules = json_object_get(c->root, "rules");
	if (rules && !json_is_null(rules) && !json_is_array(rules)) {
		r = cfg_error(c, rules, "rules: must be a list of rules");
		goto out;
	}
	p->n_rules = json_array_size(rules);
	if (p->n_rules > POLICY_MAX_RULES) {
		r = cfg_error(c, rules, "rules: more than %d rules", POLICY_MAX_RULES);
		goto out;
	}
	p->words = (p->n_rules + 63) / 64;
	p->rules = xcalloc(p->n_rules ? p->n_rules : 1, sizeof(*p->rules));
	p->any_principal = xcalloc(p->words + 1, sizeof(uint64_t));
	p->any_agent = xcalloc(p->words + 1, sizeof(uint64_t));
	for (int e = 0; e < 3; e++)
		p->by_effect[e] = xcalloc(p->words + 1, sizeof(uint64_t));
	for (size_t i = 0; i < p->n_rules; i++)
		if ((r = compile_rule(c, p, &ids, &glob_ids, json_array_get(rules, i), i)) != 0)
			goto out;
	*out = p;
	p = NULL;
	r = 0;
out:
	pmap_free(&ids);
	pmap_free(&glob_ids);
	policy_unref(p);
	return r;
}

static int
finish(struct cfg *c, int r, struct policy **out, char *err, size_t errlen)
{
	struct policy *p = NULL;
	if (r == 0)
		r = compile(c, &p);
	if (r != 0)
		snprintf(err, errlen, "%s", c->err[0] ? c->err : al_strerror(r));
	else
		*out = p;
	cfg_free(c);
	return r;
}

int
policy_parse(const char *name, const char *text, size_t len, struct policy **out, char *err,
             size_t errlen)
{
	struct cfg c;
	int r = cfg_parse(&c, name, text, len);
	return finish(&c, r, out, err, errlen);
}

int
policy_load(const char *path, struct policy **out, char *err, size_t errlen)
{
	struct cfg c;
	int r = cfg_load(&c, path);
	return finish(&c, r, out, err, errlen);
}

int
policy_file_open(struct policy_file *f, const char *path)
{
	memset(f, 0, sizeof(*f));
	f->path = xstrdup(path);
	int r = policy_file_poll(f, true);
	return r < 0 ? r : 0;
}

int
policy_file_poll(struct policy_file *f, bool force)
{
	struct stat st;
	struct policy *next = NULL;
	/* stat before reading: a change made while we read shows as a new identity on the
	 * next poll, so it is never missed (at worst read twice) */
	if (stat(f->path, &st) != 0) {
		int r = -errno;
		bool again = f->tried && f->ino == 0;
		snprintf(f->err, sizeof(f->err), "%s: %s", f->path, strerror(errno));
		f->tried = true;
		f->dev = f->ino = f->size = 0;
		f->mtime_ns = 0;
		return again && !force ? 0 : r;
	}
	long long mt = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	if (!force && f->tried && f->dev == (unsigned long long)st.st_dev &&
	    f->ino == (unsigned long long)st.st_ino && f->size == (unsigned long long)st.st_size &&
	    f->mtime_ns == mt)
		return 0;
	f->tried = true;
	f->dev = (unsigned long long)st.st_dev;
	f->ino = (unsigned long long)st.st_ino;
	f->size = (unsigned long long)st.st_size;
	f->mtime_ns = mt;
	int r = policy_load(f->path, &next, f->err, sizeof(f->err));
	if (r != 0)
		return r;
	struct policy *old = f->cur;
	f->cur = next;
	f->err[0] = '\0';
	policy_unref(old);
	return 1;
}

struct policy *
policy_file_get(const struct policy_file *f)
{
	return policy_ref(f->cur);
}

void
policy_file_close(struct policy_file *f)
{
	policy_unref(f->cur);
	free(f->path);
	memset(f, 0, sizeof(*f));
}

struct policy *
policy_ref(struct policy *p)
{
	if (p)
		__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
	return p;
}

void
policy_unref(struct policy *p)
{
	if (p == NULL || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < p->n_rules; i++)
		free(p->rules[i].id);
	free(p->rules);
	pmap_free(&p->users);
	pmap_free(&p->groups);
	pmap_free(&p->agents);
	pmap_free(&p->tools);
	pmap_free(&p->prefixes);
	pmap_free(&p->roles);
	for (size_t i = 0; i < p->n_globs; i++) {
		free(p->globs[i].pat);
		free(p->globs[i].rules.v);
	}
	free(p->globs);
	free(p->any_principal);
	free(p->any_agent);
	for (int e = 0; e < 3; e++)
		free(p->by_effect[e]);
	free(p);
}

/* ---- deciding */

static void
or_key(const struct pmap *m, const char *s, uint64_t *bits)
{
	if (s == NULL || m->n == 0)
		return;
	size_t n = strlen(s);
	const struct pent *e = pmap_find(m, s, n, fnv(s, n));
	if (e)
		bits_or_list(bits, e);
}

/* Rules that apply to this principal and agent, whatever the tool. Returns false when
 * there are none, so callers skip the tool lookup. */
static bool
applicable(const struct policy *p, const struct policy_principal *who,
           const struct policy_agent *agent, uint64_t *pa)
{
	uint64_t ab[WORDS_MAX];
	uint64_t any = 0;
	memcpy(pa, p->any_principal, p->words * sizeof(uint64_t));
	if (who) {
		or_key(&p->users, who->sub, pa);
		or_key(&p->users, who->email, pa);
		for (size_t i = 0; i < who->n_groups && p->groups.n > 0; i++)
			or_key(&p->groups, who->groups[i], pa);
	}
	memcpy(ab, p->any_agent, p->words * sizeof(uint64_t));
	if (agent) {
		or_key(&p->agents, agent->id, ab);
		if (agent->name && (agent->id == NULL || strcmp(agent->name, agent->id) != 0))
			or_key(&p->agents, agent->name, ab);
	}
	for (size_t w = 0; w < p->words; w++) {
		pa[w] &= ab[w];
		any |= pa[w];
	}
	return any != 0;
}

/* Rules whose tools match this name, restricted to pa. */
static void
tool_rules(const struct policy *p, const char *tool, const uint64_t *pa, uint64_t *m)
{
	size_t n = strlen(tool);
	uint32_t h = FNV_OFF;
	memset(m, 0, p->words * sizeof(uint64_t));
	for (size_t i = 0;; i++) {
		if (i <= p->max_prefix && p->n_globs > 0) {
			const struct pent *e = pmap_find(&p->prefixes, tool, i, h);
			for (uint32_t k = 0; e && k < e->n; k++) {
				const struct pglob *g = &p->globs[e->v[k]];
				if (g->prefix_only || glob_match(g->pat + i, tool + i, n - i))
					bits_or_list(m, &g->rules);
			}
		}
		if (i == n)
			break;
		h = fnv_step(h, tool[i]);
	}
	const struct pent *e = pmap_find(&p->tools, tool, n, h);
	if (e)
		bits_or_list(m, e);
	for (size_t w = 0; w < p->words; w++)
		m[w] &= pa[w];
}

static void
winner(const struct policy *p, const uint64_t *m, struct policy_decision *out)
{
	for (int e = POLICY_DENY; e >= POLICY_ALLOW; e--) {
		const uint64_t *eb = p->by_effect[e];
		for (size_t w = 0; w < p->words; w++) {
			uint64_t x = m[w] & eb[w];
			if (x) {
				size_t i = w * 64 + (size_t)__builtin_ctzll(x);
				out->effect = (enum policy_effect)e;
				out->rule = p->rules[i].id;
				out->line = p->rules[i].line;
				return;
			}
		}
	}
	out->effect = p->def;
	out->rule = "default";
	out->line = 0;
}

static void
decide_one(const struct policy *p, const uint64_t *pa, bool any, const char *tool,
           struct policy_decision *out, uint64_t *m)
{
	if (!any || tool == NULL) {
		memset(m, 0, p->words * sizeof(uint64_t));
		out->effect = p->def;
		out->rule = "default";
		out->line = 0;
		return;
	}
	tool_rules(p, tool, pa, m);
	winner(p, m, out);
}

void
policy_decide(const struct policy *p, const struct policy_principal *who,
              const struct policy_agent *agent, const char *tool, struct policy_decision *out)
{
	uint64_t pa[WORDS_MAX], m[WORDS_MAX];
	bool any = applicable(p, who, agent, pa);
	decide_one(p, pa, any, tool, out, m);
}

size_t
policy_explain(const struct policy *p, const struct policy_principal *who,
               const struct policy_agent *agent, const char *tool, struct policy_decision *out,
               size_t *matched, size_t max)
{
	uint64_t pa[WORDS_MAX], m[WORDS_MAX];
	bool any = applicable(p, who, agent, pa);
	size_t n = 0;
	decide_one(p, pa, any, tool, out, m);
	for (size_t w = 0; w < p->words; w++)
		for (uint64_t x = m[w]; x; x &= x - 1) {
			if (n < max)
				matched[n] = w * 64 + (size_t)__builtin_ctzll(x);
			n++;
		}
	return n;
}

size_t
policy_filter_tools(const struct policy *p, const struct policy_principal *who,
                    const struct policy_agent *agent, const char *const *names, size_t n,
                    bool *keep)
{
	uint64_t pa[WORDS_MAX], m[WORDS_MAX];
	bool any = applicable(p, who, agent, pa);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		struct policy_decision d;
		decide_one(p, pa, any, names[i], &d, m);
		keep[i] = d.effect != POLICY_DENY;
		kept += keep[i];
	}
	return kept;
}

enum policy_role
policy_role(const struct policy *p, const struct policy_principal *who)
{
	if (who && who->apikey)
		return POLICY_ROLE_ADMIN;
	int best = -1;
	for (size_t i = 0; who && i < who->n_groups && p->roles.n > 0; i++) {
		const char *g = who->groups[i];
		if (g == NULL)
			continue;
		size_t n = strlen(g);
		const struct pent *e = pmap_find(&p->roles, g, n, fnv(g, n));
		if (e && (int)e->v[0] > best)
			best = (int)e->v[0];
	}
	return best >= 0 ? (enum policy_role)best : p->default_role;
}

size_t
policy_rule_count(const struct policy *p)
{
	return p->n_rules;
}

const char *
policy_rule_id(const struct policy *p, size_t i)
{
	return i < p->n_rules ? p->rules[i].id : NULL;
}

enum policy_effect
policy_rule_effect(const struct policy *p, size_t i)
{
	return i < p->n_rules ? p->rules[i].effect : p->def;
}

unsigned
policy_rule_line(const struct policy *p, size_t i)
{
	return i < p->n_rules ? p->rules[i].line : 0;
}

enum policy_effect
policy_default(const struct policy *p)
{
	return p->def;
}

size_t
policy_role_groups(const struct policy *p, enum policy_role r)
{
	return (unsigned)r < 4 ? p->role_groups[r] : 0;
}
