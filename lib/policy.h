/* The tool policy: which principal may use which tool of which agent (issue 12). A
 * policy file (YAML, docs/server/policy.md) is compiled once into an immutable, indexed
 * object; decisions and tool-list filtering only read it, so a reload builds a new
 * object and swaps the pointer, and calls in flight keep the one they started with.
 * Role-independent: the server applies it to sessions, the gateway can reuse it. */
#ifndef AL_POLICY_H
#define AL_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#define POLICY_MAX_RULES 10000 /* rules in one file */
#define POLICY_MAX_LIST 1000   /* entries in one rule's tools/groups/users/agents */
#define POLICY_MAX_PATTERN 256 /* bytes in one tool glob */
#define POLICY_MAX_ID 64       /* bytes in a rule id */

/* Ordered by precedence: a larger value wins when several rules match. */
enum policy_effect {
	POLICY_ALLOW = 0,
	POLICY_ASK = 1,
	POLICY_DENY = 2,
};

/* API roles (issue 12 item 2), ordered: a larger value includes the smaller ones. */
enum policy_role {
	POLICY_ROLE_NONE = 0, /* may not use the API (default_role: none) */
	POLICY_ROLE_USER = 1,
	POLICY_ROLE_DEVELOPER = 2,
	POLICY_ROLE_ADMIN = 3,
};

/* Who asks. An OIDC user has sub (and maybe email) and groups; an API-key principal
 * is evaluated as sub "apikey:<key id>" with no groups and has the admin role
 * (docs/decisions.md). Everything is borrowed for the duration of the call. */
struct policy_principal {
	const char *sub;   /* OIDC subject, or "apikey:<key id>"; may be NULL */
	const char *email; /* may be NULL */
	const char *const *groups;
	size_t n_groups;
	bool apikey; /* an API-key principal (role admin) */
};

/* The agent a session runs; either field may be NULL. Rules name agents by id or name. */
struct policy_agent {
	const char *id;
	const char *name;
};

struct policy_decision {
	enum policy_effect effect;
	/* id of the deciding rule (the first rule, in file order, with the winning effect),
	 * or "default". Points into the policy: valid while the caller holds it. */
	const char *rule;
	unsigned line; /* line of that rule in the file; 0 for the default */
};

struct policy;

/* Compiles policy text (name is used in messages). Returns 0 with a new policy in
 * *out (one reference), or AL_E_INVAL/AL_E_TOOBIG with "name:line: message" in err;
 * *out is never touched on failure, so a caller's current policy stays in force. */
int policy_parse(const char *name, const char *text, size_t len, struct policy **out, char *err,
                 size_t errlen);
/* Same for a file (at most 1 MiB); errors name the path. */
int policy_load(const char *path, struct policy **out, char *err, size_t errlen);

/* A policy file kept current (issue 12: "hot-reloaded on change or SIGHUP; a bad file
 * keeps the last good policy"). The server polls it from a timer and forces a reload
 * on SIGHUP; decisions take policy_file_get() and drop it when done. */
struct policy_file {
	char *path;
	struct policy *cur; /* the last good policy; NULL until one loads */
	/* identity of the version last tried (good or refused): dev, inode, size, mtime */
	unsigned long long dev, ino, size;
	long long mtime_ns;
	bool tried;
	char err[600]; /* why the last try was refused, "FILE:LINE: message" */
};

/* Loads path for the first time. 0, or an error with f->err set (f stays usable: a
 * later poll may succeed). */
int policy_file_open(struct policy_file *f, const char *path);
/* Reloads when the file changed since the last try, or always with force. Returns 1 when
 * a new policy is in force, 0 when nothing changed, or an error with f->err set and the
 * current policy kept; a refused version is not retried until the file changes again. */
int policy_file_poll(struct policy_file *f, bool force);
/* The policy in force (a new reference; NULL before the first good load). */
struct policy *policy_file_get(const struct policy_file *f);
void policy_file_close(struct policy_file *f);

/* Reference counting (atomic), so a reload can swap the server's pointer while a
 * decision elsewhere still holds the old object. unref accepts NULL. */
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

/* The decision for one tool name as the model sees it ("bash", "mcp__ledger__post"):
 * deny beats ask beats allow among matching rules; no matching rule → the default. */
void policy_decide(const struct policy *p, const struct policy_principal *who,
                   const struct policy_agent *agent, const char *tool, struct policy_decision *out);

/* The same decision, plus the indexes (file order) of every matching rule: up to max
 * of them in matched[]; returns how many rules matched in all. */
size_t policy_explain(const struct policy *p, const struct policy_principal *who,
                      const struct policy_agent *agent, const char *tool,
                      struct policy_decision *out, size_t *matched, size_t max);

/* Tool-list filtering for what a session is offered: keep[i] is true unless names[i] is
 * denied (an `ask` tool is offered; its calls wait for confirmation). The principal
 * and agent are resolved once for the whole list. Returns how many are kept. */
size_t policy_filter_tools(const struct policy *p, const struct policy_principal *who,
                           const struct policy_agent *agent, const char *const *names, size_t n,
                           bool *keep);

/* The principal's API role: admin for API keys, else the highest role any of its groups
 * maps to under `roles`, else default_role (user unless the file says none). */
enum policy_role policy_role(const struct policy *p, const struct policy_principal *who);

/* Read-only views for summaries and explanations. */
size_t policy_rule_count(const struct policy *p);
const char *policy_rule_id(const struct policy *p, size_t i);
enum policy_effect policy_rule_effect(const struct policy *p, size_t i);
unsigned policy_rule_line(const struct policy *p, size_t i);
enum policy_effect policy_default(const struct policy *p);
/* How many groups map to role r under `roles`. */
size_t policy_role_groups(const struct policy *p, enum policy_role r);

const char *policy_effect_name(enum policy_effect e); /* "allow", "ask", "deny" */
const char *policy_role_name(enum policy_role r);     /* "none", "user", "developer", "admin" */

#endif
