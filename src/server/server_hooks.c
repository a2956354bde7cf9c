/* Module start/stop order; see server_hooks.h. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "agent.h"
#include "events.h"
#include "log.h"
#include "oidc.h"
#include "policy.h"
#include "server.h"
#include "server_hooks.h"
#include "tunnel.h"
#include "vaults.h"
#include "work.h"
#include "xalloc.h"

/* The policy file, watched: a change (inode, size or mtime) reloads it within
 * POLICY_POLL_MS, and SIGHUP reloads it at once (server_policy_reload). Polling rather
 * than inotify: a ConfigMap or an editor's rename-over lands as a new inode either way. */
#define POLICY_POLL_MS 1000

struct policy_watch {
	struct loop_timer *timer;
	struct stat seen;
};

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int
policy_load_now(struct server *s, const char *why)
{
	const char *path = s->cfg.identity.policy_file;
	struct policy *p = NULL;
	char err[600];
	struct stat st;
	if (stat(path, &st) == 0 && s->policy_watch)
		s->policy_watch->seen = st;
	int r = policy_load(path, &p, err, sizeof err);
	if (r != 0) {
		log_error(s->policy ? "policy file refused: keeping the last good policy"
		                    : "policy file refused",
		          "error", err, "trigger", why);
		return r;
	}
	policy_unref(s->policy);
	s->policy = p;
	char n[16];
	snprintf(n, sizeof n, "%zu", policy_rule_count(p));
	log_info("policy loaded", "file", path, "rules", n, "default",
	         policy_effect_name(policy_default(p)), "trigger", why);
	return 0;
}

void
server_policy_reload(struct server *s, const char *why)
{
	if (s->cfg.identity.policy_file != NULL && s->cfg.identity.policy_file[0] != '\0')
		policy_load_now(s, why);
}

static void
policy_poll(struct loop *l, void *arg)
{
	struct server *s = arg;
	struct policy_watch *w = s->policy_watch;
	struct stat st;
	w->timer = loop_timer_add(l, POLICY_POLL_MS, policy_poll, s);
	if (stat(s->cfg.identity.policy_file, &st) == 0 && !same_file(&st, &w->seen))
		policy_load_now(s, "file changed");
}

static int
policy_start(struct server *s)
{
	if (s->cfg.identity.policy_file == NULL || s->cfg.identity.policy_file[0] == '\0')
		return 0;
	s->policy_watch = xcalloc(1, sizeof(*s->policy_watch));
	int r = policy_load_now(s, "start");
	if (r != 0)
		return r;
	s->policy_watch->timer = loop_timer_add(s->loop, POLICY_POLL_MS, policy_poll, s);
	return 0;
}

static void
policy_stop(struct server *s)
{
	if (s->policy_watch)
		loop_timer_cancel(s->loop, s->policy_watch->timer);
	free(s->policy_watch);
	s->policy_watch = NULL;
	policy_unref(s->policy);
	s->policy = NULL;
}

/* OpenID Connect users, when an issuer is configured: the keys load in the background;
 * until they do, user tokens get 503 (API keys work from the start). */
static int
identity_start(struct server *s)
{
	const struct server_identity_config *ic = &s->cfg.identity;
	if (ic->oidc_issuer == NULL || ic->oidc_issuer[0] == '\0')
		return 0;
	struct oidc_config oc = {.issuer = ic->oidc_issuer,
	                         .audience = ic->oidc_audience,
	                         .groups_claim = ic->oidc_groups_claim,
	                         .ca_file = ic->oidc_ca_file,
	                         .groups_file = ic->oidc_groups_file};
	char err[600];
	int r = oidc_new(s->loop, &oc, &s->oidc, err, sizeof err);
	if (r != 0) {
		log_error("cannot enable OpenID Connect users", "error", err);
		return r;
	}
	oidc_start(s->oidc);
	log_info("OpenID Connect users enabled", "issuer", ic->oidc_issuer, "audience",
	         ic->oidc_audience);
	return 0;
}

int
server_hooks_start(struct server *s)
{
	int r;
	if ((r = policy_start(s)) != 0 || (r = identity_start(s)) != 0)
		return r;
	if ((r = vaults_init(s)) != 0 || (r = events_init(s)) != 0 || (r = work_init(s)) != 0)
		return r;
	if ((r = tunnel_start(s)) != 0)
		return r;
	/* Last: resuming sessions may emit events and enqueue work. */
	if ((r = agent_init(s)) != 0)
		return r;
	return 0;
}

void
server_hooks_stop(struct server *s)
{
	tunnel_stop(s);
	agent_shutdown(s);
	work_shutdown(s);
	events_shutdown(s);
	vaults_shutdown(s);
	oidc_free(s->oidc);
	s->oidc = NULL;
	policy_stop(s);
}
