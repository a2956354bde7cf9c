/* Gateway YAML config: libyaml's document API, a fixed schema walked by hand so every
 * unknown key and bad value gets `file:line: message`; see gateway_config.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "buf.h"
#include "err.h"
#include "gateway_config.h"
#include "jose.h"
#include "net.h"
#include "xalloc.h"

#define CONFIG_MAX_BYTES (1 << 20)
#define MAX_ROUTES 256
#define MAX_CIDRS 256

struct ctx {
	yaml_document_t *doc;
	const char *name;
	char *err;
	size_t errlen;
	struct gateway_config *cfg;
	struct gateway_identity_rule *rule; /* the agent_identity route being read */
};

static int fail(struct ctx *x, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct ctx *x, const yaml_node_t *n, const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(x->err, x->errlen, "%s:%zu: %s", x->name, n ? n->start_mark.line + 1 : 1, msg);
	return AL_E_INVAL;
}

static const char *
scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *
kind_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "!!map";
	case YAML_SEQUENCE_NODE:
		return "!!seq";
	default:
		return "!!str";
	}
}

static int
want_string(struct ctx *x, const yaml_node_t *v, const char *key, char **out)
{
	const char *s = scalar(v);
	if (s == NULL)
		return fail(x, v, "%s: cannot unmarshal %s into string", key, kind_name(v));
	if (strlen(s) > 4096 || memchr(s, '\n', strlen(s)))
		return fail(x, v, "%s: value too long or multi-line", key);
	free(*out);
	*out = xstrdup(s);
	return 0;
}

static int
want_bool(struct ctx *x, const yaml_node_t *v, const char *key, bool *out)
{
	const char *s = scalar(v);
	if (s && (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0))
		*out = true;
	else if (s &&
	         (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0))
		*out = false;
	else
		return fail(x, v, "%s: must be true or false", key);
	return 0;
}

int
gateway_cidr_parse(const char *s, struct gateway_cidr *out)
{
	char a[64];
	const char *slash = strchr(s, '/');
	size_t al = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t bits;
	memset(out, 0, sizeof(*out));
	if (al == 0 || al >= sizeof(a))
		return AL_E_INVAL;
	memcpy(a, s, al);
	a[al] = '\0';
	if (inet_pton(AF_INET, a, out->addr) == 1) {
		out->family = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, a, out->addr) == 1) {
		out->family = AF_INET6;
		bits = 128;
	} else
		return AL_E_INVAL;
	if (slash) {
		uint64_t b;
		if (parse_uint_cstr(slash + 1, bits, &b) != 0)
			return AL_E_INVAL;
		bits = b;
	}
	out->bits = (unsigned)bits;
	return 0;
}

/* "scheme://host:port" and nothing else: no path, no user info, no query. */
static bool
upstream_valid(const char *u, bool *https)
{
	const char *rest;
	if (strncasecmp(u, "http://", 7) == 0) {
		*https = false;
		rest = u + 7;
	} else if (strncasecmp(u, "https://", 8) == 0) {
		*https = true;
		rest = u + 8;
	} else
		return false;
	const char *colon;
	if (rest[0] == '[') {
		const char *rb = strchr(rest, ']');
		if (rb == NULL || rb == rest + 1 || rb[1] != ':')
			return false;
		colon = rb + 1;
	} else {
		colon = strrchr(rest, ':');
		if (colon == NULL || colon == rest)
			return false;
		for (const char *p = rest; p < colon; p++) {
			char c = *p;
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
				return false;
		}
	}
	uint64_t port;
	return parse_uint_cstr(colon + 1, 65535, &port) == 0 && port > 0;
}

static void
lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + 32);
}

static int
parse_routes(struct ctx *x, yaml_node_t *v)
{
	if (v->type != YAML_MAPPING_NODE)
		return fail(x, v, "routes: cannot unmarshal %s into map[string]string",
		            kind_name(v));
	for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
		yaml_node_t *u = yaml_document_get_node(x->doc, p->value);
		const char *ks = scalar(k), *us = scalar(u);
		if (ks == NULL || *ks == '\0' || strlen(ks) > 253)
			return fail(x, k, "routes: keys must be host names");
		/* a name no Host header can carry would never match: refuse it, with its line */
		if (ks[strspn(ks,
		              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")])
			return fail(
			    x, k,
			    "routes: \"%.64s\" is not a host name (letters, digits, '-', '_', "
			    "'.')",
			    ks);
		if (us == NULL)
			return fail(x, u, "routes: cannot unmarshal %s into string", kind_name(u));
		bool https = false;
		if (!upstream_valid(us, &https))
			return fail(x, u,
			            "route \"%s\": invalid upstream (must be scheme://host:port)",
			            ks);
		if (x->cfg->nroutes >= MAX_ROUTES)
			return fail(x, k, "routes: at most %d", MAX_ROUTES);
		char *name = xstrdup(ks);
		lower(name);
		for (size_t i = 0; i < x->cfg->nroutes; i++)
			if (strcmp(x->cfg->routes[i].name, name) == 0) {
				free(name);
				return fail(x, k, "route \"%s\": duplicate", ks);
			}
		x->cfg->routes =
		    xreallocarray(x->cfg->routes, x->cfg->nroutes + 1, sizeof(*x->cfg->routes));
		struct gateway_route *r = &x->cfg->routes[x->cfg->nroutes++];
		r->name = name;
		r->upstream = xstrdup(us);
		size_t sl = https ? 5 : 4;
		for (size_t i = 0; i < sl; i++)
			r->upstream[i] = (char)(r->upstream[i] | 0x20);
		r->https = https;
	}
	return 0;
}

typedef int section_fn(struct ctx *x, const char *key, yaml_node_t *v);

/* Walks a mapping, handing each key to fn; fn returns 1 for an unknown key. */
static int
walk(struct ctx *x, yaml_node_t *m, const char *where, section_fn *fn)
{
	if (m->type != YAML_MAPPING_NODE)
		return fail(x, m, "%s: cannot unmarshal %s into a mapping", where, kind_name(m));
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(x->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(x->doc, p->value);
		const char *ks = scalar(k);
		if (ks == NULL)
			return fail(x, k, "%s: keys must be strings", where);
		int r = fn(x, ks, v);
		if (r == 1)
			return fail(x, k, "unknown key \"%s%s%s\"", where[0] ? where : "",
			            where[0] ? "." : "", ks);
		if (r != 0)
			return r;
	}
	return 0;
}

static int
sec_upstream_tls(struct ctx *x, const char *k, yaml_node_t *v)
{
	if (strcmp(k, "ca_file") == 0)
		return want_string(x, v, "upstream.tls.ca_file", &x->cfg->upstream_ca_file);
	if (strcmp(k, "include_system_cas") == 0)
		return want_bool(x, v, "upstream.tls.include_system_cas",
		                 &x->cfg->include_system_cas);
	return 1;
}

static int
sec_upstream(struct ctx *x, const char *k, yaml_node_t *v)
{
	if (strcmp(k, "allowed_ips") == 0) {
		if (v->type != YAML_SEQUENCE_NODE)
			return fail(x, v, "upstream.allowed_ips: cannot unmarshal %s into []string",
			            kind_name(v));
		for (yaml_node_item_t *i = v->data.sequence.items.start;
		     i < v->data.sequence.items.top; i++) {
			yaml_node_t *e = yaml_document_get_node(x->doc, *i);
			struct gateway_cidr cidr;
			const char *s = scalar(e);
			if (s == NULL || gateway_cidr_parse(s, &cidr) != 0)
				return fail(x, e, "upstream.allowed_ips: invalid CIDR \"%s\"",
				            s ? s : "");
			if (x->cfg->nallowed >= MAX_CIDRS)
				return fail(x, e, "upstream.allowed_ips: at most %d", MAX_CIDRS);
			x->cfg->allowed =
			    xreallocarray(x->cfg->allowed, x->cfg->nallowed + 1, sizeof(cidr));
			x->cfg->allowed[x->cfg->nallowed++] = cidr;
		}
		if (x->cfg->nallowed == 0)
			return fail(x, v, "upstream.allowed_ips: empty list");
		return 0;
	}
	if (strcmp(k, "disable_ip_validation") == 0)
		return want_bool(x, v, "upstream.disable_ip_validation",
		                 &x->cfg->disable_ip_validation);
	if (strcmp(k, "tls") == 0)
		return walk(x, v, "upstream.tls", sec_upstream_tls);
	return 1;
}

static int
sec_tls(struct ctx *x, const char *k, yaml_node_t *v)
{
	/* The inner TLS server certificate and key (the reference proxy's fields). */
	if (strcmp(k, "cert_file") == 0)
		return want_string(x, v, "tls.cert_file", &x->cfg->tls_cert_file);
	if (strcmp(k, "key_file") == 0)
		return want_string(x, v, "tls.key_file", &x->cfg->tls_key_file);
	return 1;
}

/* A list of names (agents, users, groups) for an identity rule. */
static int
want_names(struct ctx *x, yaml_node_t *v, const char *key, char ***out, size_t *n)
{
	if (v->type != YAML_SEQUENCE_NODE)
		return fail(x, v, "%s: cannot unmarshal %s into []string", key, kind_name(v));
	for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top;
	     i++) {
		yaml_node_t *e = yaml_document_get_node(x->doc, *i);
		const char *s = scalar(e);
		if (s == NULL || s[0] == '\0' || strlen(s) > 256)
			return fail(x, e, "%s: entries are non-empty names of at most 256 bytes",
			            key);
		if (*n >= MAX_ROUTES)
			return fail(x, e, "%s: at most %d", key, MAX_ROUTES);
		*out = xreallocarray(*out, *n + 1, sizeof(**out));
		(*out)[(*n)++] = xstrdup(s);
	}
	if (*n == 0)
		return fail(x, v, "%s: empty list (omit the key to allow any)", key);
	return 0;
}

static int
sec_aid_rule(struct ctx *x, const char *k, yaml_node_t *v)
{
	struct gateway_identity_rule *r = x->rule;
	if (strcmp(k, "allowed_agents") == 0)
		return want_names(x, v, "agent_identity.routes.allowed_agents", &r->agents,
		                  &r->nagents);
	if (strcmp(k, "allowed_users") == 0)
		return want_names(x, v, "agent_identity.routes.allowed_users", &r->users,
		                  &r->nusers);
	if (strcmp(k, "allowed_groups") == 0)
		return want_names(x, v, "agent_identity.routes.allowed_groups", &r->groups,
		                  &r->ngroups);
	return 1;
}

static int
sec_aid(struct ctx *x, const char *k, yaml_node_t *v)
{
	struct gateway_config *c = x->cfg;
	if (strcmp(k, "issuer") == 0)
		return want_string(x, v, "agent_identity.issuer", &c->aid_issuer);
	if (strcmp(k, "jwks_file") == 0) {
		c->aid_jwks_line = (unsigned)v->start_mark.line + 1;
		return want_string(x, v, "agent_identity.jwks_file", &c->aid_jwks_file);
	}
	if (strcmp(k, "routes") != 0)
		return 1;
	if (v->type != YAML_MAPPING_NODE)
		return fail(x, v, "agent_identity.routes: a mapping of route names");
	for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *rk = yaml_document_get_node(x->doc, p->key);
		yaml_node_t *rv = yaml_document_get_node(x->doc, p->value);
		const char *name = scalar(rk);
		if (name == NULL || name[0] == '\0' || strlen(name) > 253)
			return fail(x, rk, "agent_identity.routes: keys are route names");
		if (c->naid_rules >= MAX_ROUTES)
			return fail(x, rk, "agent_identity.routes: at most %d", MAX_ROUTES);
		c->aid_rules =
		    xreallocarray(c->aid_rules, c->naid_rules + 1, sizeof(*c->aid_rules));
		struct gateway_identity_rule *r = &c->aid_rules[c->naid_rules++];
		memset(r, 0, sizeof(*r));
		r->route = xstrdup(name);
		lower(r->route);
		r->line = (unsigned)rk->start_mark.line + 1;
		/* `ledger: {}` requires a valid token and restricts nothing further */
		if (rv->type == YAML_SCALAR_NODE && scalar(rv)[0] == '\0')
			continue;
		x->rule = r;
		int e = walk(x, rv, "agent_identity.routes.<route>", sec_aid_rule);
		x->rule = NULL;
		if (e != 0)
			return e;
	}
	return 0;
}

static int
sec_top(struct ctx *x, const char *k, yaml_node_t *v)
{
	struct gateway_config *c = x->cfg;
	if (strcmp(k, "server") == 0) {
		/* checked here for its line; start_checks repeats it for --server */
		int r = want_string(x, v, k, &c->server);
		const char *colon = r == 0 ? strrchr(c->server, ':') : NULL;
		if (r == 0 && (colon == NULL || colon == c->server || !net_addr_valid(c->server) ||
		               strcmp(colon + 1, "0") == 0))
			return fail(x, v, "server: must be host:port (the tunnel edge)");
		return r;
	}
	if (strcmp(k, "server_name") == 0)
		return want_string(x, v, k, &c->server_name);
	if (strcmp(k, "server_ca_file") == 0)
		return want_string(x, v, k, &c->server_ca_file);
	if (strcmp(k, "server_pin") == 0) {
		int r = want_string(x, v, k, &c->server_pin);
		if (r == 0 &&
		    (strncmp(c->server_pin, "sha256//", 8) != 0 || strlen(c->server_pin) != 8 + 44))
			return fail(x, v,
			            "server_pin: must be sha256//<base64 of the SPKI SHA-256>");
		return r;
	}
	if (strcmp(k, "token_file") == 0)
		return want_string(x, v, k, &c->token_file);
	if (strcmp(k, "metrics_listen") == 0) {
		int r = want_string(x, v, k, &c->metrics_listen);
		if (r == 0 && !net_addr_valid(c->metrics_listen))
			return fail(x, v, "metrics_listen: must be host:port (127.0.0.1:9090)");
		return r;
	}
	if (strcmp(k, "listen_addr") == 0)
		return want_string(x, v, k, &c->listen_addr);
	if (strcmp(k, "tunnel_domain") == 0) {
		int r = want_string(x, v, k, &c->tunnel_domain);
		if (r == 0) {
			lower(c->tunnel_domain);
			while (c->tunnel_domain[0] == '.')
				memmove(c->tunnel_domain, c->tunnel_domain + 1,
				        strlen(c->tunnel_domain));
		}
		return r;
	}
	if (strcmp(k, "connections") == 0) {
		uint64_t n;
		const char *s = scalar(v);
		if (s == NULL || parse_uint_cstr(s, 16, &n) != 0 || n < 1)
			return fail(x, v, "connections: must be an integer from 1 to 16");
		c->connections = (unsigned)n;
		return 0;
	}
	if (strcmp(k, "shutdown_timeout") == 0) {
		const char *s = scalar(v);
		uint64_t ms;
		if (s == NULL || parse_duration_ms(s, 24ULL * 3600000, &ms) != 0)
			return fail(x, v, "shutdown_timeout: invalid duration (e.g. 30s, 1m)");
		c->shutdown_timeout_ms = (unsigned)ms;
		return 0;
	}
	if (strcmp(k, "log_level") == 0) {
		const char *s = scalar(v);
		if (s == NULL || log_parse_level(s, &c->log_level) != 0)
			return fail(x, v, "log_level: must be debug, info, warn or error");
		return 0;
	}
	if (strcmp(k, "routes") == 0)
		return parse_routes(x, v);
	if (strcmp(k, "upstream") == 0)
		return walk(x, v, "upstream", sec_upstream);
	if (strcmp(k, "tls") == 0)
		return walk(x, v, "tls", sec_tls);
	if (strcmp(k, "agent_identity") == 0)
		return walk(x, v, "agent_identity", sec_aid);
	return 1;
}

static const char *const default_private[] = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                              "fc00::/7", NULL};

int
gateway_config_parse(const char *text, size_t len, const char *name, struct gateway_config *out,
                     char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	bool have_doc = false;
	struct ctx x = {.doc = &doc, .name = name, .err = err, .errlen = errlen, .cfg = out};
	int r = AL_E_INVAL;
	memset(out, 0, sizeof(*out));
	out->connections = 4;
	out->shutdown_timeout_ms = 30000;
	out->log_level = LOG_LVL_INFO;
	if (len > CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "%s:1: file larger than %d bytes", name, CONFIG_MAX_BYTES);
		goto out;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "%s:%zu: %s", name, parser.problem_mark.line + 1,
		         parser.problem ? parser.problem : "invalid YAML");
		yaml_parser_delete(&parser);
		goto out;
	}
	have_doc = true;
	yaml_parser_delete(&parser);
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		snprintf(err, errlen, "%s:1: empty configuration", name);
		goto out;
	}
	if ((r = walk(&x, root, "", sec_top)) != 0)
		goto out;
	r = AL_E_INVAL;
	if (out->server == NULL) {
		fail(&x, root, "server: required (the tunnel edge, host:port)");
		goto out;
	}
	if (out->nroutes == 0) {
		fail(&x, root, "routes: at least one route is required");
		goto out;
	}
	if ((out->tls_cert_file == NULL) != (out->tls_key_file == NULL)) {
		fail(&x, root, "tls.cert_file and tls.key_file go together (the inner TLS pair)");
		goto out;
	}
	if (out->disable_ip_validation && out->nallowed > 0) {
		fail(&x, root,
		     "upstream.allowed_ips and upstream.disable_ip_validation are "
		     "mutually exclusive");
		goto out;
	}
	for (size_t i = 0; i < out->nroutes; i++)
		if (out->routes[i].https && out->upstream_ca_file == NULL &&
		    !out->include_system_cas) {
			fail(&x, root,
			     "route \"%s\": https upstreams need upstream.tls.ca_file or "
			     "upstream.tls.include_system_cas",
			     out->routes[i].name);
			goto out;
		}
	if (out->naid_rules > 0 || out->aid_issuer || out->aid_jwks_file) {
		if (out->aid_issuer == NULL || out->aid_jwks_file == NULL) {
			fail(&x, root,
			     "agent_identity: issuer and jwks_file are both required (the airlock "
			     "server's identity.agent_identity.issuer and its exported jwks.json)");
			goto out;
		}
		for (size_t i = 0; i < out->naid_rules; i++) {
			bool known = false;
			for (size_t j = 0; j < out->nroutes && !known; j++)
				known = strcmp(out->routes[j].name, out->aid_rules[i].route) == 0;
			if (!known) {
				snprintf(
				    err, errlen,
				    "%s:%u: agent_identity.routes: \"%s\" is not a key of routes",
				    name, out->aid_rules[i].line, out->aid_rules[i].route);
				goto out;
			}
		}
	}
	if (out->nallowed == 0 && !out->disable_ip_validation)
		for (size_t i = 0; default_private[i]; i++) {
			out->allowed =
			    xreallocarray(out->allowed, out->nallowed + 1, sizeof(*out->allowed));
			gateway_cidr_parse(default_private[i], &out->allowed[out->nallowed++]);
		}
	r = 0;
out:
	if (have_doc)
		yaml_document_delete(&doc);
	if (r != 0)
		gateway_config_free(out);
	return r;
}

/* Reads a whole file into b (bounded by b's maximum). 0, or an error with why set to
 * "path: reason". */
static int
read_bounded(const char *path, struct buf *b, char *why, size_t whylen)
{
	int r = AL_E_INVAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return AL_E_IO;
	}
	for (;;) {
		char *wp;
		if (buf_reserve(b, 65536, &wp) != 0) {
			snprintf(why, whylen, "%s: larger than %zu bytes", path, b->max);
			r = AL_E_TOOBIG;
			goto out;
		}
		ssize_t n = read(fd, wp, 65536);
		if (n < 0) {
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
			r = AL_E_IO;
			goto out;
		}
		if (n == 0)
			break;
		buf_commit(b, (size_t)n);
	}
	r = 0;
out:
	close(fd);
	return r;
}

/* The issuer's public keys (airlock agent-identity export-issuer's jwks.json), read with
 * the configuration so --check and SIGHUP see them too. */
static int
load_jwks(struct gateway_config *c, const char *cfgpath, char *err, size_t errlen)
{
	char why[256], jerr[200];
	struct buf b;
	buf_init(&b, JOSE_MAX_JWKS);
	int r = read_bounded(c->aid_jwks_file, &b, why, sizeof why);
	if (r == 0 && (r = jose_jwks_parse(b.data ? b.data : "", b.len, &c->aid_keys, jerr,
	                                   sizeof jerr)) != 0)
		snprintf(why, sizeof why, "%s: %s", c->aid_jwks_file, jerr);
	buf_free(&b);
	if (r != 0)
		snprintf(err, errlen, "%s:%u: agent_identity.jwks_file: %s", cfgpath,
		         c->aid_jwks_line, why);
	return r;
}

int
gateway_config_load(const char *path, struct gateway_config *out, char *err, size_t errlen)
{
	struct buf b;
	char why[300];
	buf_init(&b, CONFIG_MAX_BYTES);
	memset(out, 0, sizeof(*out));
	int r = read_bounded(path, &b, why, sizeof why);
	if (r == AL_E_TOOBIG)
		snprintf(err, errlen, "%s:1: file larger than %d bytes", path, CONFIG_MAX_BYTES);
	else if (r != 0)
		snprintf(err, errlen, "%s", why);
	if (r != 0) {
		r = AL_E_INVAL;
		goto out;
	}
	r = gateway_config_parse(b.data ? b.data : "", b.len, path, out, err, errlen);
	if (r == 0 && out->aid_jwks_file != NULL && (r = load_jwks(out, path, err, errlen)) != 0)
		gateway_config_free(out);
out:
	buf_free(&b);
	return r;
}

void
gateway_config_free(struct gateway_config *c)
{
	free(c->server);
	free(c->server_name);
	free(c->server_ca_file);
	free(c->server_pin);
	free(c->token_file);
	free(c->metrics_listen);
	free(c->tunnel_domain);
	free(c->listen_addr);
	for (size_t i = 0; i < c->nroutes; i++) {
		free(c->routes[i].name);
		free(c->routes[i].upstream);
	}
	free(c->routes);
	free(c->allowed);
	free(c->upstream_ca_file);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->aid_issuer);
	free(c->aid_jwks_file);
	jose_keyset_free(c->aid_keys);
	for (size_t i = 0; i < c->naid_rules; i++) {
		struct gateway_identity_rule *r = &c->aid_rules[i];
		free(r->route);
		for (size_t j = 0; j < r->nagents; j++)
			free(r->agents[j]);
		for (size_t j = 0; j < r->nusers; j++)
			free(r->users[j]);
		for (size_t j = 0; j < r->ngroups; j++)
			free(r->groups[j]);
		free(r->agents);
		free(r->users);
		free(r->groups);
	}
	free(c->aid_rules);
	memset(c, 0, sizeof(*c));
}

const struct gateway_identity_rule *
gateway_config_identity_rule(const struct gateway_config *c, const struct gateway_route *r)
{
	for (size_t i = 0; r != NULL && i < c->naid_rules; i++)
		if (strcmp(c->aid_rules[i].route, r->name) == 0)
			return &c->aid_rules[i];
	return NULL;
}

const struct gateway_route *
gateway_config_route(const struct gateway_config *c, const char *host)
{
	char h[256];
	size_t hl = strlen(host);
	if (hl == 0 || hl >= sizeof(h))
		return NULL;
	memcpy(h, host, hl + 1);
	lower(h);
	/* Strip a port (not inside an IPv6 literal). */
	char *colon = strrchr(h, ':');
	if (colon && h[0] != '[')
		*colon = '\0';
	for (size_t i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].name, h) == 0)
			return &c->routes[i];
	if (c->tunnel_domain) {
		size_t dl = strlen(c->tunnel_domain), l = strlen(h);
		if (l > dl + 1 && h[l - dl - 1] == '.' &&
		    strcmp(h + l - dl, c->tunnel_domain) == 0) {
			h[l - dl - 1] = '\0';
			for (size_t i = 0; i < c->nroutes; i++)
				if (strcmp(c->routes[i].name, h) == 0)
					return &c->routes[i];
		}
	}
	return NULL;
}

static bool
cidr_match(const struct gateway_cidr *n, int family, const unsigned char *a)
{
	if (n->family != family)
		return false;
	unsigned full = n->bits / 8, rem = n->bits % 8;
	if (memcmp(n->addr, a, full) != 0)
		return false;
	if (rem == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rem));
	return (n->addr[full] & mask) == (a[full] & mask);
}

bool
gateway_config_ip_allowed(const struct gateway_config *c, const struct sockaddr *sa)
{
	unsigned char a[16];
	int fam;
	if (c->disable_ip_validation)
		return true;
	if (sa->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		fam = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) { /* judge ::ffff:a.b.c.d as a.b.c.d */
			memcpy(a, a6->s6_addr + 12, 4);
			fam = AF_INET;
		} else {
			memcpy(a, a6->s6_addr, 16);
			fam = AF_INET6;
		}
	} else
		return false;
	for (size_t i = 0; i < c->nallowed; i++)
		if (cidr_match(&c->allowed[i], fam, a))
			return true;
	return false;
}
