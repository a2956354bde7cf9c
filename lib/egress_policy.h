/* Egress policy (issue 14): which hosts and addresses a sandbox may reach through the
 * worker's proxy. Pure functions, no sockets: the operator's policy file, the
 * environment's `networking`, host patterns, request targets and address classes.
 * docs/lib/egress_policy.md. */
#ifndef AL_EGRESS_POLICY_H
#define AL_EGRESS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define EGRESS_MAX_LIST 256 /* entries in any host or address list */
#define EGRESS_HOST_MAX 253 /* a DNS name without its trailing dot */
#define EGRESS_RULE_MAX 192 /* the rule text of a decision */

/* A host pattern: "api.example", "*.corp.example" (subdomains, never the apex), either with
 * ":port" (0 = any port), or an IPv4 literal. Names are lower case, without trailing dot. */
struct egress_host {
	char name[EGRESS_HOST_MAX + 1]; /* without the "*." */
	bool wildcard;
	uint16_t port;
};

struct egress_hostlist {
	struct egress_host *v;
	size_t n;
};

/* An IPv4 or IPv6 address; IPv4 (and IPv4-mapped IPv6) is held as ::ffff:a.b.c.d. */
struct egress_addr {
	uint8_t a[16];
};

struct egress_cidr {
	struct egress_addr addr;
	unsigned bits; /* over the 128-bit form: an IPv4 /8 is 104 */
	char text[64]; /* as written, for rule names */
};

struct egress_static {
	char name[EGRESS_HOST_MAX + 1];
	struct egress_addr addr;
};

/* The worker operator's file (`--egress-policy FILE`): the most any environment may open. */
struct egress_operator {
	char *file;
	bool unrestricted; /* the operator's opt-in for environments of type unrestricted */
	struct egress_hostlist allow, deny;
	struct egress_cidr *addrs;
	size_t n_addrs;
	struct egress_static *resolve;
	size_t n_resolve;
	unsigned max_connections; /* open connections per sandbox */
	/* TLS termination for credential hosts (docs/worker/egress.md): the CA (both or
	 * neither; neither = made in the worker's state dir), extra CAs origins may chain
	 * to besides the system's, and hosts never terminated (mTLS, pinning) */
	char *ca_cert_file, *ca_key_file, *origin_ca_file;
	struct egress_hostlist no_terminate;
};

enum egress_env_type { EGRESS_ENV_NONE, EGRESS_ENV_LIMITED, EGRESS_ENV_UNRESTRICTED };

/* The environment's `networking`, and the agent's MCP server hosts when it opens them. */
struct egress_env {
	enum egress_env_type type;
	struct egress_hostlist allow;
	bool allow_mcp_servers, allow_package_managers;
	struct egress_hostlist mcp;
};

struct egress_decision {
	bool allow;
	char rule[EGRESS_RULE_MAX];
};

enum egress_addr_class {
	EGRESS_ADDR_PUBLIC,
	EGRESS_ADDR_LOOPBACK,
	EGRESS_ADDR_PRIVATE,     /* RFC 1918, 100.64/10, fc00::/7, benchmark 198.18/15 */
	EGRESS_ADDR_LINKLOCAL,   /* 169.254/16, fe80::/10 */
	EGRESS_ADDR_METADATA,    /* cloud metadata services */
	EGRESS_ADDR_UNSPECIFIED, /* 0.0.0.0/8, :: */
	EGRESS_ADDR_MULTICAST,   /* 224/4, 255.255.255.255, ff00::/8 */
	EGRESS_ADDR_TRANSLATED,  /* NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32 */
	EGRESS_ADDR_RESERVED,    /* 240/4, documentation ranges */
};

/* The registry hosts `allow_package_managers` opens (NULL-terminated). */
extern const char *const egress_package_hosts[];

/* Lower-cases name[0..len), drops one trailing dot and checks it: DNS labels of
 * [a-z0-9_-] (1..63 bytes, no leading or trailing '-'), or an IPv4 literal. IPv6
 * literals, zone ids, empty labels are AL_E_INVAL. out has EGRESS_HOST_MAX + 1 bytes. */
int egress_host_norm(const char *name, size_t len, char *out);

/* A pattern of an allowed_hosts / denied_hosts list. err gets what is wrong. */
int egress_pattern_parse(const char *s, bool allow_port, struct egress_host *out, char *err,
                         size_t errlen);
bool egress_pattern_match(const struct egress_host *p, const char *host, uint16_t port);
/* The first matching entry, or NULL. host must be normalised. */
const struct egress_host *egress_list_match(const struct egress_hostlist *l, const char *host,
                                            uint16_t port);
void egress_hostlist_free(struct egress_hostlist *l);
/* Appends pattern text (checked, allow_port) to l; at most EGRESS_MAX_LIST entries. */
int egress_hostlist_add(struct egress_hostlist *l, const char *s, bool allow_port, char *err,
                        size_t errlen);

/* A request target's authority: "host:port", "[v6]:port", or "host" when default_port is
 * not 0. The host comes back normalised (IPv6 literals in their compressed form,
 * IPv4-mapped ones as IPv4); *is_ip says it was a literal. Zone ids ("%eth0", "%25eth0")
 * are AL_E_INVAL. */
int egress_authority_parse(const char *s, size_t len, uint16_t default_port, char *host,
                           size_t hostlen, uint16_t *port, bool *is_ip);
/* An absolute-form HTTP target "http://authority/path?query": authority as above with
 * port 80 by default; *path points into s (never empty: "/" when absent). */
int egress_url_parse(const char *s, size_t len, char *host, size_t hostlen, uint16_t *port,
                     const char **path, size_t *path_len);

/* "10.0.0.1", "::1", "::ffff:10.0.0.1" (→ IPv4). Zone ids refused. */
int egress_addr_parse(const char *s, struct egress_addr *out);
/* "10.20.0.0/16", "fd00::/8", or a bare address (one host). */
int egress_cidr_parse(const char *s, struct egress_cidr *out);
bool egress_cidr_contains(const struct egress_cidr *c, const struct egress_addr *a);
bool egress_addr_is_v4(const struct egress_addr *a);
void egress_addr_format(const struct egress_addr *a, char *out, size_t outlen);
enum egress_addr_class egress_addr_classify(const struct egress_addr *a);
const char *egress_addr_class_name(enum egress_addr_class c);

/* The server name (SNI) of a TLS ClientHello at the start of a CONNECT tunnel's client
 * bytes, for the check that it names the CONNECT target (no domain fronting). Reads
 * handshake records (type 22) until the ClientHello is whole (≤ 16 KiB). Returns 0 with
 * the name normalised into sni (EGRESS_HOST_MAX + 1 bytes), AL_E_AGAIN when more bytes
 * are needed, AL_E_NOTFOUND for a whole hello without SNI, AL_E_UNSUPPORTED when the
 * bytes are not TLS (an opaque tunnel), AL_E_PROTO for a malformed hello or name. */
int egress_sni_parse(const uint8_t *p, size_t n, char *sni);

/* Operator file: YAML (lib/cfg), errors "FILE:LINE: key: message" in err. */
int egress_operator_parse(const char *name, const char *text, size_t len,
                          struct egress_operator **out, char *err, size_t errlen);
int egress_operator_load(const char *path, struct egress_operator **out, char *err, size_t errlen);
void egress_operator_free(struct egress_operator *op);
/* The static address of name from `resolve:`, or false. */
bool egress_operator_resolve(const struct egress_operator *op, const char *host,
                             struct egress_addr *out);

/* An environment's `networking` object (the reference shape). NULL or absent = NONE.
 * err names the field ("allowed_hosts[2]: ..."), prefixed by ctx. */
int egress_env_parse(const json_t *networking, const char *ctx, struct egress_env *out, char *err,
                     size_t errlen);
void egress_env_free(struct egress_env *e);

/* Effective policy for a host: environment ∩ operator. op NULL = no network. deny wins. */
void egress_decide_host(const struct egress_operator *op, const struct egress_env *env,
                        const char *host, uint16_t port, struct egress_decision *d);
/* Whether the resolved address may be dialled: metadata, link-local, unspecified,
 * multicast, translated and reserved addresses never; loopback, private ranges and the
 * worker's own addresses (own, n_own) only when allowed_addresses lists them. */
void egress_decide_addr(const struct egress_operator *op, const struct egress_addr *a,
                        const struct egress_addr *own, size_t n_own, struct egress_decision *d);

#endif
