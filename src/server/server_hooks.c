/* Module start/stop order; see server_hooks.h. */
#include "agent.h"
#include "events.h"
#include "log.h"
#include "oidc.h"
#include "server.h"
#include "server_hooks.h"
#include "tunnel.h"
#include "vaults.h"
#include "work.h"

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
	if ((r = identity_start(s)) != 0)
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
}
