/* Module start/stop order; see server_hooks.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "audit.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "agent_identity.h"
#include "oidc.h"
#include "policy.h"
#include "server.h"
#include "server_hooks.h"
#include "tunnel.h"
#include "vaults.h"
#include "work.h"
#include "xalloc.h"

/* The policy file (lib/policy's policy_file): polled every POLICY_POLL_MS for a new
 * version (inode, size, mtime: an editor's or a ConfigMap's rename-over counts) and
 * reloaded at once by server_policy_reload (SIGHUP). s->policy borrows the version in
 * force; decisions read it at each call, so a reload applies to the next one. */
#define POLICY_POLL_MS 1000

struct policy_watch {
	struct loop_timer *timer;
	struct policy_file file;
};

/* policy.reload: which file, what happened, why (a refused file's FILE:LINE message) */
static void
audit_policy(struct server *s, const char *path, const char *outcome, const char *trigger,
             const char *error)
{
	json_t *res = json_pack("{s:s, s:s}", "file", path, "trigger", trigger);
	if (error)
		json_object_set_new(res, "error", json_string(error));
	if (s->policy && strcmp(outcome, "ok") == 0)
		json_object_set_new(res, "rules",
		                    json_integer((json_int_t)policy_rule_count(s->policy)));
	struct audit_event e = {.action = "policy.reload", .outcome = outcome, .resources = res};
	audit_emit(s, &e);
	json_decref(res);
}

static void
policy_poll_now(struct server *s, bool force, const char *why)
{
	struct policy_watch *w = s->policy_watch;
	int r = policy_file_poll(&w->file, force);
	if (r == 0)
		return;
	if (r < 0) {
		log_error(w->file.cur ? "policy file refused: keeping the last good policy"
		                      : "policy file refused",
		          "error", w->file.err, "trigger", why);
		audit_policy(s, w->file.path, "refused", why, w->file.err);
		return;
	}
	s->policy = w->file.cur;
	char n[16];
	snprintf(n, sizeof n, "%zu", policy_rule_count(s->policy));
	log_info("policy loaded", "file", w->file.path, "rules", n, "default",
	         policy_effect_name(policy_default(s->policy)), "trigger", why);
	audit_policy(s, w->file.path, "ok", why, NULL);
}

void
server_policy_reload(struct server *s, const char *why)
{
	if (s->policy_watch != NULL)
		policy_poll_now(s, true, why);
}

static void
policy_poll(struct loop *l, void *arg)
{
	struct server *s = arg;
	s->policy_watch->timer = loop_timer_add(l, POLICY_POLL_MS, policy_poll, s);
	policy_poll_now(s, false, "file changed");
}

static int
policy_start(struct server *s)
{
	const char *path = s->cfg.identity.policy_file;
	if (path == NULL || path[0] == '\0')
		return 0;
	struct policy_watch *w = xcalloc(1, sizeof(*w));
	s->policy_watch = w;
	int r = policy_file_open(&w->file, path);
	if (r != 0) {
		log_error("policy file refused", "error", w->file.err, "trigger", "start");
		audit_policy(s, path, "refused", "start", w->file.err);
		return r;
	}
	s->policy = w->file.cur;
	char n[16];
	snprintf(n, sizeof n, "%zu", policy_rule_count(s->policy));
	log_info("policy loaded", "file", path, "rules", n, "default",
	         policy_effect_name(policy_default(s->policy)), "trigger", "start");
	audit_policy(s, path, "ok", "start", NULL);
	w->timer = loop_timer_add(s->loop, POLICY_POLL_MS, policy_poll, s);
	return 0;
}

static void
policy_stop(struct server *s)
{
	struct policy_watch *w = s->policy_watch;
	s->policy = NULL;
	if (w == NULL)
		return;
	loop_timer_cancel(s->loop, w->timer);
	policy_file_close(&w->file);
	free(w);
	s->policy_watch = NULL;
}

/* OpenID Connect users, when an issuer is configured: the keys load in the background;
 * until they do, user tokens get 503 (API keys work from the start). */
static int
identity_start(struct server *s)
{
	const struct server_identity_config *ic = &s->cfg.identity;
	if (ic->agent_issuer != NULL && ic->agent_issuer[0] != '\0') {
		struct agent_identity_config ac = {.issuer = ic->agent_issuer,
		                                   .key_file = ic->agent_key_file,
		                                   .previous_key_file = ic->agent_prev_key_file,
		                                   .data_dir = s->cfg.data_dir};
		char aerr[600];
		int ar = agent_identity_open(&ac, &s->agent_identity, aerr, sizeof aerr);
		if (ar != 0) {
			log_error("cannot enable agent identity", "error", aerr);
			return ar;
		}
		log_info("agent identity tokens on MCP calls", "issuer",
		         agent_identity_issuer(s->agent_identity));
	}
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
	/* First: everything after it may write audit records (a policy loaded at start). */
	if ((r = audit_open(s)) != 0)
		return r;
	if ((r = metrics_init(s)) != 0)
		return r;
	if ((r = policy_start(s)) != 0 || (r = identity_start(s)) != 0)
		return r;
	if ((r = vaults_init(s)) != 0 || (r = events_init(s)) != 0 || (r = work_init(s)) != 0)
		return r;
	if ((r = tunnel_start(s)) != 0 || (r = tunnel_ingress_start(s)) != 0)
		return r;
	/* Last: resuming sessions may emit events and enqueue work. */
	if ((r = agent_init(s)) != 0)
		return r;
	return 0;
}

void
server_hooks_stop(struct server *s)
{
	tunnel_ingress_stop(s);
	tunnel_stop(s);
	agent_shutdown(s);
	work_shutdown(s);
	events_shutdown(s);
	vaults_shutdown(s);
	oidc_free(s->oidc);
	s->oidc = NULL;
	audit_close(s); /* its last checkpoint is signed with the agent-identity key */
	agent_identity_free(s->agent_identity);
	s->agent_identity = NULL;
	policy_stop(s);
	metrics_shutdown(s);
}
