/* `airlock gateway` configuration: YAML accepting the reference mcp-proxy's fields plus
 * ours, validated at load with `file:line: message` errors; route lookup by host and the
 * upstream address allow-list (SSRF). Reference: docs/gateway/config.md. */
#ifndef AL_GATEWAY_CONFIG_H
#define AL_GATEWAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "log.h"

struct gateway_route {
	char *name;     /* lower-case key: bare subdomain or full host name */
	char *upstream; /* "http://10.0.0.5:8080" as written (normalized lower-case scheme) */
	bool https;
};

/* Agent identity required on one route (ours, docs/gateway/config.md): who may pass. An
 * empty list does not restrict; agents and principals must both pass when both are set. */
struct gateway_identity_rule {
	char *route; /* a key of routes */
	char **agents, **users, **groups;
	size_t nagents, nusers, ngroups;
	unsigned line;
};

struct jose_keyset;

struct gateway_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
};

struct gateway_config {
	/* ours */
	char *server;         /* edge "host:port" (required) */
	char *server_name;    /* TLS name to verify; default: host part of server */
	char *server_ca_file; /* CA bundle for the edge; default: system store */
	char *server_pin;     /* optional "sha256//<base64 SPKI hash>" */
	char *token_file;     /* else AIRLOCK_TUNNEL_TOKEN */
	unsigned connections; /* 1..16, default 4 */
	char *metrics_listen; /* "127.0.0.1:20241"; NULL: off */
	/* reference mcp-proxy */
	char *tunnel_domain;
	char *tls_cert_file; /* inner TLS server certificate (chain) and key; both or neither */
	char *tls_key_file;
	struct gateway_route *routes;
	size_t nroutes;
	struct gateway_cidr *allowed;
	size_t nallowed;
	bool disable_ip_validation;
	char *upstream_ca_file;
	bool include_system_cas;
	unsigned shutdown_timeout_ms; /* default 30 s */
	enum log_level log_level;
	char *listen_addr; /* accepted for compatibility; the gateway listens on nothing */
	/* agent identity (ours): the airlock server's issuer and public keys, and the routes
	 * that require its token */
	char *aid_issuer;
	char *aid_jwks_file;
	unsigned aid_jwks_line;
	struct jose_keyset *aid_keys; /* loaded by gateway_config_load from aid_jwks_file */
	struct gateway_identity_rule *aid_rules;
	size_t naid_rules;
};

/* Parses YAML text; name is used in error messages. On failure err holds
 * "name:line: message" and the return is AL_E_INVAL. */
int gateway_config_parse(const char *text, size_t len, const char *name, struct gateway_config *out,
                         char *err, size_t errlen);
int gateway_config_load(const char *path, struct gateway_config *out, char *err, size_t errlen);
void gateway_config_free(struct gateway_config *c);

/* Route for a request host (port ignored): exact name first, then the name with
 * ".<tunnel_domain>" stripped. NULL: "no route for host". */
const struct gateway_route *gateway_config_route(const struct gateway_config *c, const char *host);
/* The agent identity rule of a route, NULL when the route does not require a token. */
const struct gateway_identity_rule *gateway_config_identity_rule(const struct gateway_config *c,
                                                                 const struct gateway_route *r);
/* Whether a resolved upstream address may be dialed. */
bool gateway_config_ip_allowed(const struct gateway_config *c, const struct sockaddr *sa);
/* Parses "10.0.0.0/8", "fd00::/8" or a bare address. */
int gateway_cidr_parse(const char *s, struct gateway_cidr *out);

#endif
