/* Public documents under /.well-known/: the agent identity JWKS (and its discovery
 * document), served without credentials so receivers can fetch the keys from the server
 * itself when the issuer URL points here (docs/server/agent-identity.md). 404 when agent
 * identity is off. */
#include "agent_identity.h"
#include "api.h"
#include "routes.h"
#include "server.h"

static void
serve(struct api_call *c, json_t *(*doc)(const struct agent_identity *))
{
	if (c->srv->agent_identity == NULL) {
		api_reply_error(c, 404, "not_found_error", NULL, "agent identity is not enabled");
		return;
	}
	api_reply_json(c, 200, doc(c->srv->agent_identity));
}

static void
get_jwks(struct api_call *c)
{
	serve(c, agent_identity_jwks);
}

static void
get_discovery(struct api_call *c)
{
	serve(c, agent_identity_discovery);
}

const struct api_route wellknown_routes[] = {
    {"GET", "/.well-known/jwks.json", API_PUBLIC, get_jwks},
    {"GET", "/.well-known/openid-configuration", API_PUBLIC, get_discovery},
    {NULL, NULL, 0, NULL},
};
