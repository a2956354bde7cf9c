/* Agent identity checks at the gateway (gateway_identity.h). The token's audience is the
 * MCP server URL the airlock server dialled, so its host must be this request's host: a
 * token minted for one route cannot be replayed against another. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "err.h"
#include "gateway_identity.h"
#include "jose.h"

const char *
gateway_identity_token(const char *hdrs, size_t len)
{
	const char *bearer = NULL;
	for (size_t off = 0; off < len;) {
		const char *line = hdrs + off;
		off += strlen(line) + 1;
		if (strncmp(line, "x-agent-identity: ", 18) == 0)
			return line + 18;
		if (strncmp(line, "authorization: ", 15) == 0 &&
		    strncasecmp(line + 15, "Bearer ", 7) == 0)
			bearer = line + 22;
	}
	return bearer;
}

/* Host of a URL, lower-cased, without port or userinfo; false when it has none. */
static bool
url_host(const char *url, char *out, size_t outlen)
{
	const char *p = strstr(url, "://");
	if (p == NULL)
		return false;
	p += 3;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	size_t h =
	    p[0] == '[' ? (size_t)((const char *)memchr(p, ']', n) - p) + 1 : strcspn(p, ":");
	if (h > n)
		h = n;
	if (h == 0 || h >= outlen)
		return false;
	for (size_t i = 0; i < h; i++)
		out[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] | 0x20 : p[i]);
	out[h] = '\0';
	return true;
}

static bool
listed(char *const *list, size_t n, const char *v)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		if (strcmp(list[i], v) == 0)
			return true;
	return false;
}

int
gateway_identity_check(const struct gateway_config *c, const struct gateway_identity_rule *r,
                       const char *host, const char *token, int64_t now, char *why, size_t whylen)
{
	int status = 401;
	json_t *p = NULL;
	char err[200];
	if (token == NULL) {
		snprintf(why, whylen, "agent identity required: send the airlock server's token");
		return 401;
	}
	if (jose_verify(token, strlen(token), c->aid_keys, JOSE_ALGS_ALL, &p, err, sizeof err) !=
	    0) {
		snprintf(why, whylen, "agent identity refused: %s", err);
		goto out;
	}
	/* the server's tokens live 300 s; a little skew either way */
	struct jose_claims_rules rules = {
	    .iss = c->aid_issuer, .now = now, .skew = 30, .require_exp = true, .max_lifetime = 300};
	if (jose_check_claims(p, &rules, err, sizeof err) != 0) {
		snprintf(why, whylen, "agent identity refused: %s", err);
		goto out;
	}
	char want[256], got[256];
	const char *aud = json_string_value(json_object_get(p, "aud"));
	size_t hl = strcspn(host, ":");
	if (host[0] == '[')
		hl = strcspn(host, "]") + 1;
	if (hl >= sizeof want) {
		snprintf(why, whylen, "agent identity refused: bad host");
		goto out;
	}
	for (size_t i = 0; i < hl; i++)
		want[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] | 0x20 : host[i]);
	want[hl] = '\0';
	if (aud == NULL || !url_host(aud, got, sizeof got) || strcmp(got, want) != 0) {
		snprintf(why, whylen, "agent identity refused: the token is for another server");
		goto out;
	}
	status = 403;
	const json_t *agent = json_object_get(p, "agent");
	const char *agent_id = json_string_value(json_object_get(agent, "id"));
	const char *agent_name = json_string_value(json_object_get(agent, "name"));
	if (r->nagents > 0 && !listed(r->agents, r->nagents, agent_id) &&
	    !listed(r->agents, r->nagents, agent_name)) {
		snprintf(why, whylen, "agent %.100s is not allowed on this route",
		         agent_id ? agent_id : "?");
		goto out;
	}
	const json_t *who = json_object_get(p, "on_behalf_of");
	if (r->nusers > 0 || r->ngroups > 0) {
		bool ok =
		    listed(r->users, r->nusers, json_string_value(json_object_get(who, "sub"))) ||
		    listed(r->users, r->nusers, json_string_value(json_object_get(who, "email")));
		size_t i;
		const json_t *g;
		json_array_foreach(json_object_get(who, "groups"), i, g) ok |=
		    listed(r->groups, r->ngroups, json_string_value(g));
		if (!ok) {
			snprintf(why, whylen,
			         "the user this agent acts for is not allowed on this route");
			goto out;
		}
	}
	status = 0;
out:
	json_decref(p);
	return status;
}
