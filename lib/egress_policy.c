/* Egress policy decisions (issue 14): host patterns, request targets, address classes,
 * the operator's policy file and the environment's `networking`. Everything here is pure
 * so it can be unit-tested and fuzzed; the proxy (src/worker/egress.c) owns the sockets. */
#include "egress_policy.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cfg.h"
#include "err.h"
#include "xalloc.h"

/* Documented in docs/lib/egress_policy.md; each still needs the operator's allowlist. */
const char *const egress_package_hosts[] = {
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "crates.io",
    "static.crates.io",
    "index.crates.io",
    "proxy.golang.org",
    "sum.golang.org",
    "rubygems.org",
    "repo.maven.apache.org",
    "repo1.maven.org",
    "deb.debian.org",
    "security.debian.org",
    "archive.ubuntu.com",
    "security.ubuntu.com",
    NULL,
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- addresses ---- */

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool
egress_addr_is_v4(const struct egress_addr *a)
{
	return memcmp(a->a, v4_prefix, 12) == 0;
}

int
egress_addr_parse(const char *s, struct egress_addr *out)
{
	struct in_addr v4;
	if (s == NULL || strlen(s) > 45 || strchr(s, '%') != NULL)
		return AL_E_INVAL;
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, &v4) == 1) {
		memcpy(out->a, v4_prefix, 12);
		memcpy(out->a + 12, &v4, 4);
		return 0;
	}
	/* an IPv4-mapped form lands in v4_prefix by itself: one representation */
	if (inet_pton(AF_INET6, s, out->a) == 1)
		return 0;
	return AL_E_INVAL;
}

void
egress_addr_format(const struct egress_addr *a, char *out, size_t outlen)
{
	if (egress_addr_is_v4(a))
		inet_ntop(AF_INET, a->a + 12, out, (socklen_t)outlen);
	else
		inet_ntop(AF_INET6, a->a, out, (socklen_t)outlen);
}

static bool
prefix_match(const uint8_t *a, const uint8_t *p, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	if (memcmp(a, p, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (p[full] & mask);
}

int
egress_cidr_parse(const char *s, struct egress_cidr *out)
{
	char tmp[64];
	uint64_t bits;
	size_t n = strlen(s);
	const char *slash = strchr(s, '/');
	memset(out, 0, sizeof(*out));
	if (n == 0 || n >= sizeof(tmp))
		return AL_E_INVAL;
	memcpy(tmp, s, n + 1);
	if (slash)
		tmp[slash - s] = '\0';
	if (egress_addr_parse(tmp, &out->addr) != 0)
		return AL_E_INVAL;
	bool v4 = egress_addr_is_v4(&out->addr) && strchr(tmp, ':') == NULL;
	if (slash == NULL)
		bits = v4 ? 32 : 128;
	else if (parse_uint_cstr(slash + 1, v4 ? 32 : 128, &bits) != 0)
		return AL_E_INVAL;
	out->bits = (unsigned)(v4 ? bits + 96 : bits);
	/* host bits must be zero: "10.1.2.3/8" is a typo more often than not */
	struct egress_addr z = out->addr;
	for (unsigned i = out->bits; i < 128; i++)
		z.a[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
	if (memcmp(z.a, out->addr.a, 16) != 0)
		return AL_E_INVAL;
	snprintf(out->text, sizeof(out->text), "%s", s);
	return 0;
}

bool
egress_cidr_contains(const struct egress_cidr *c, const struct egress_addr *a)
{
	return prefix_match(a->a, c->addr.a, c->bits);
}

struct range {
	const char *cidr;
	enum egress_addr_class cls;
};

/* First match wins: metadata before the link-local and private ranges holding them. */
static const struct range ranges[] = {
    {"169.254.169.254/32", EGRESS_ADDR_METADATA}, /* AWS, GCP, Azure, OpenStack… */
    {"169.254.170.2/32", EGRESS_ADDR_METADATA},   /* AWS ECS task metadata */
    {"100.100.100.200/32", EGRESS_ADDR_METADATA}, /* Alibaba Cloud */
    {"168.63.129.16/32", EGRESS_ADDR_METADATA},   /* Azure wire server */
    {"fd00:ec2::254/128", EGRESS_ADDR_METADATA},  /* AWS over IPv6 */
    {"0.0.0.0/8", EGRESS_ADDR_UNSPECIFIED},
    {"::/128", EGRESS_ADDR_UNSPECIFIED},
    {"127.0.0.0/8", EGRESS_ADDR_LOOPBACK},
    {"::1/128", EGRESS_ADDR_LOOPBACK},
    {"169.254.0.0/16", EGRESS_ADDR_LINKLOCAL},
    {"fe80::/10", EGRESS_ADDR_LINKLOCAL},
    {"10.0.0.0/8", EGRESS_ADDR_PRIVATE},
    {"172.16.0.0/12", EGRESS_ADDR_PRIVATE},
    {"192.168.0.0/16", EGRESS_ADDR_PRIVATE},
    {"100.64.0.0/10", EGRESS_ADDR_PRIVATE},
    {"198.18.0.0/15", EGRESS_ADDR_PRIVATE},
    {"fc00::/7", EGRESS_ADDR_PRIVATE},
    {"224.0.0.0/4", EGRESS_ADDR_MULTICAST},
    {"255.255.255.255/32", EGRESS_ADDR_MULTICAST},
    {"ff00::/8", EGRESS_ADDR_MULTICAST},
    {"64:ff9b::/96", EGRESS_ADDR_TRANSLATED},
    {"64:ff9b:1::/48", EGRESS_ADDR_TRANSLATED},
    {"2002::/16", EGRESS_ADDR_TRANSLATED},
    {"2001::/32", EGRESS_ADDR_TRANSLATED},
    {"::/96", EGRESS_ADDR_TRANSLATED}, /* deprecated IPv4-compatible ::a.b.c.d */
    {"240.0.0.0/4", EGRESS_ADDR_RESERVED},
    {"192.0.0.0/24", EGRESS_ADDR_RESERVED},
    {"192.0.2.0/24", EGRESS_ADDR_RESERVED},
    {"198.51.100.0/24", EGRESS_ADDR_RESERVED},
    {"203.0.113.0/24", EGRESS_ADDR_RESERVED},
    {"2001:db8::/32", EGRESS_ADDR_RESERVED},
};

enum egress_addr_class
egress_addr_classify(const struct egress_addr *a)
{
	struct egress_cidr c;
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		if (egress_cidr_parse(ranges[i].cidr, &c) == 0 && egress_cidr_contains(&c, a))
			return ranges[i].cls;
	}
	return EGRESS_ADDR_PUBLIC;
}

const char *
egress_addr_class_name(enum egress_addr_class c)
{
	switch (c) {
	case EGRESS_ADDR_PUBLIC:
		return "public";
	case EGRESS_ADDR_LOOPBACK:
		return "loopback";
	case EGRESS_ADDR_PRIVATE:
		return "private";
	case EGRESS_ADDR_LINKLOCAL:
		return "link-local";
	case EGRESS_ADDR_METADATA:
		return "cloud metadata";
	case EGRESS_ADDR_UNSPECIFIED:
		return "unspecified";
	case EGRESS_ADDR_MULTICAST:
		return "multicast or broadcast";
	case EGRESS_ADDR_TRANSLATED:
		return "translated IPv6 (NAT64, 6to4, Teredo)";
	case EGRESS_ADDR_RESERVED:
		return "reserved";
	}
	return "unknown";
}

/* ---- host names ---- */

int
egress_host_norm(const char *name, size_t len, char *out)
{
	size_t label = 0;
	bool digits_dots = true;
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > EGRESS_HOST_MAX)
		return AL_E_INVAL;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch == '.') {
			if (label == 0 || out[i - 1] == '-')
				return AL_E_INVAL;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		           ch == '_') {
			if (ch == '-' && label == 0)
				return AL_E_INVAL;
			if (++label > 63)
				return AL_E_INVAL;
			if (!(ch >= '0' && ch <= '9'))
				digits_dots = false;
		} else {
			return AL_E_INVAL;
		}
		out[i] = ch;
	}
	if (label == 0 || out[len - 1] == '-')
		return AL_E_INVAL;
	out[len] = '\0';
	/* all digits and dots: only a canonical dotted quad ("1.2.3" or "010.0.0.1" would
	 * be read by some resolvers as another address than the one we check) */
	struct in_addr a;
	/* inet_aton reads "0x7f.1" and "2130706433" as addresses too: a name a resolver
	 * would take for an address must be the canonical dotted quad */
	if (digits_dots || inet_aton(out, &a) == 1) {
		char back[INET_ADDRSTRLEN];
		if (inet_pton(AF_INET, out, &a) != 1 ||
		    inet_ntop(AF_INET, &a, back, sizeof(back)) == NULL || strcmp(back, out) != 0)
			return AL_E_INVAL;
	}
	return 0;
}

int
egress_pattern_parse(const char *s, bool allow_port, struct egress_host *out, char *err,
                     size_t errlen)
{
	size_t n = strlen(s);
	const char *colon = memchr(s, ':', n);
	memset(out, 0, sizeof(*out));
	if (colon) {
		uint64_t port;
		if (!allow_port) {
			seterr(err, errlen, "'%.80s': no port here (host names only)", s);
			return AL_E_INVAL;
		}
		if (parse_uint_cstr(colon + 1, 65535, &port) != 0 || port == 0) {
			seterr(err, errlen, "'%.80s': the port must be 1 to 65535", s);
			return AL_E_INVAL;
		}
		out->port = (uint16_t)port;
		n = (size_t)(colon - s);
	}
	if (n >= 2 && s[0] == '*' && s[1] == '.') {
		out->wildcard = true;
		s += 2;
		n -= 2;
	}
	if (egress_host_norm(s, n, out->name) != 0 || memchr(s, '*', n) != NULL) {
		seterr(err, errlen,
		       "'%.80s': not a host name, '*.' wildcard or IPv4 address (IPv6 and "
		       "address ranges belong in allowed_addresses)",
		       s);
		return AL_E_INVAL;
	}
	struct in_addr a;
	if (out->wildcard && inet_pton(AF_INET, out->name, &a) == 1) {
		seterr(err, errlen, "'*.%.80s': a wildcard needs a name, not an address", s);
		return AL_E_INVAL;
	}
	return 0;
}

bool
egress_pattern_match(const struct egress_host *p, const char *host, uint16_t port)
{
	if (p->port != 0 && p->port != port)
		return false;
	if (!p->wildcard)
		return strcmp(p->name, host) == 0;
	size_t hn = strlen(host), pn = strlen(p->name);
	/* "*.x" is any subdomain of x, never x itself */
	return hn > pn + 1 && host[hn - pn - 1] == '.' && strcmp(host + hn - pn, p->name) == 0;
}

const struct egress_host *
egress_list_match(const struct egress_hostlist *l, const char *host, uint16_t port)
{
	for (size_t i = 0; i < l->n; i++)
		if (egress_pattern_match(&l->v[i], host, port))
			return &l->v[i];
	return NULL;
}

void
egress_hostlist_free(struct egress_hostlist *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int
egress_hostlist_add(struct egress_hostlist *l, const char *s, bool allow_port, char *err,
                    size_t errlen)
{
	struct egress_host h;
	int r;
	if (l->n >= EGRESS_MAX_LIST) {
		seterr(err, errlen, "more than %d entries", EGRESS_MAX_LIST);
		return AL_E_TOOBIG;
	}
	if ((r = egress_pattern_parse(s, allow_port, &h, err, errlen)) != 0)
		return r;
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = h;
	return 0;
}

static void
pattern_text(const struct egress_host *h, char *out, size_t outlen)
{
	if (h->port)
		snprintf(out, outlen, "%s%s:%u", h->wildcard ? "*." : "", h->name, h->port);
	else
		snprintf(out, outlen, "%s%s", h->wildcard ? "*." : "", h->name);
}

/* ---- request targets ---- */

int
egress_authority_parse(const char *s, size_t len, uint16_t default_port, char *host, size_t hostlen,
                       uint16_t *port, bool *is_ip)
{
	const char *hp = s, *pp = NULL;
	size_t hn = len;
	uint64_t pv;
	char tmp[EGRESS_HOST_MAX + 1];
	*is_ip = false;
	if (len == 0 || hostlen < EGRESS_HOST_MAX + 1)
		return AL_E_INVAL;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);
		struct egress_addr a;
		if (close == NULL || (size_t)(close - s) - 1 >= 46)
			return AL_E_INVAL;
		memcpy(tmp, s + 1, (size_t)(close - s) - 1);
		tmp[close - s - 1] = '\0';
		/* zone ids ("%eth0", "%25eth0") name an interface of the worker: refused */
		if (strchr(tmp, ':') == NULL || egress_addr_parse(tmp, &a) != 0)
			return AL_E_INVAL;
		egress_addr_format(&a, host, hostlen);
		*is_ip = true;
		if ((size_t)(close - s) + 1 < len) {
			if (close[1] != ':')
				return AL_E_INVAL;
			pp = close + 2;
		}
	} else {
		const char *colon = memchr(s, ':', len);
		if (colon) {
			hn = (size_t)(colon - s);
			pp = colon + 1;
		}
		if (egress_host_norm(hp, hn, host) != 0)
			return AL_E_INVAL;
		struct in_addr a4;
		*is_ip = inet_pton(AF_INET, host, &a4) == 1;
	}
	if (pp) {
		if (parse_uint(pp, len - (size_t)(pp - s), 65535, &pv) != 0 || pv == 0)
			return AL_E_INVAL;
		*port = (uint16_t)pv;
	} else if (default_port) {
		*port = default_port;
	} else {
		return AL_E_INVAL;
	}
	return 0;
}

int
egress_url_parse(const char *s, size_t len, char *host, size_t hostlen, uint16_t *port,
                 const char **path, size_t *path_len)
{
	static const char scheme[] = "http://";
	bool is_ip;
	size_t i, n = sizeof(scheme) - 1;
	if (len < n || strncasecmp(s, scheme, n) != 0)
		return AL_E_INVAL;
	for (i = n; i < len && s[i] != '/' && s[i] != '?' && s[i] != '#'; i++)
		if (s[i] == '@') /* userinfo: a second host name to confuse checks with */
			return AL_E_INVAL;
	if (egress_authority_parse(s + n, i - n, 80, host, hostlen, port, &is_ip) != 0)
		return AL_E_INVAL;
	if (i == len || s[i] != '/') {
		*path = "/";
		*path_len = 1;
	} else {
		*path = s + i;
		*path_len = len - i;
	}
	return 0;
}

/* ---- TLS ClientHello server name ---- */

#define HELLO_MAX 16384

struct rd {
	const uint8_t *p;
	size_t n, off;
};

static bool
rd_take(struct rd *r, size_t k, const uint8_t **out)
{
	if (r->n - r->off < k)
		return false;
	if (out)
		*out = r->p + r->off;
	r->off += k;
	return true;
}

static bool
rd_u(struct rd *r, size_t bytes, size_t *v)
{
	const uint8_t *q;
	if (!rd_take(r, bytes, &q))
		return false;
	*v = 0;
	for (size_t i = 0; i < bytes; i++)
		*v = (*v << 8) | q[i];
	return true;
}

/* A vector with a length prefix of `bytes`: *sub reads its body. */
static bool
rd_vec(struct rd *r, size_t bytes, struct rd *sub)
{
	size_t len;
	const uint8_t *q;
	if (!rd_u(r, bytes, &len) || !rd_take(r, len, &q))
		return false;
	*sub = (struct rd){q, len, 0};
	return true;
}

int
egress_sni_parse(const uint8_t *p, size_t n, char *sni)
{
	uint8_t hs[HELLO_MAX];
	size_t hn = 0, off = 0, need = 0;
	if (n == 0)
		return AL_E_AGAIN;
	if (p[0] != 22)
		return AL_E_UNSUPPORTED;
	/* the handshake bytes of consecutive records, until the ClientHello is whole */
	for (;;) {
		if (n - off < 5)
			return AL_E_AGAIN;
		size_t rl = ((size_t)p[off + 3] << 8) | p[off + 4];
		if (p[off] != 22 || p[off + 1] != 3 || rl == 0 || rl > 16384 + 256)
			return AL_E_PROTO;
		if (n - off - 5 < rl)
			return AL_E_AGAIN;
		if (hn + rl > sizeof(hs))
			return AL_E_PROTO;
		memcpy(hs + hn, p + off + 5, rl);
		hn += rl;
		off += 5 + rl;
		if (hn >= 4) {
			if (hs[0] != 1) /* client_hello */
				return AL_E_PROTO;
			need = 4 + (((size_t)hs[1] << 16) | ((size_t)hs[2] << 8) | hs[3]);
			if (need > sizeof(hs))
				return AL_E_PROTO;
			if (hn >= need)
				break;
		}
	}
	struct rd r = {hs + 4, need - 4, 0}, v, exts;
	size_t ver;
	if (!rd_u(&r, 2, &ver) || !rd_take(&r, 32, NULL) || !rd_vec(&r, 1, &v) ||
	    !rd_vec(&r, 2, &v) || !rd_vec(&r, 1, &v))
		return AL_E_PROTO;
	if (r.off == r.n)
		return AL_E_NOTFOUND; /* no extensions at all */
	if (!rd_vec(&r, 2, &exts) || r.off != r.n)
		return AL_E_PROTO;
	bool found = false;
	while (exts.off < exts.n) {
		size_t type;
		struct rd ext, list, name;
		if (!rd_u(&exts, 2, &type) || !rd_vec(&exts, 2, &ext))
			return AL_E_PROTO;
		if (type != 0)
			continue;
		if (found || !rd_vec(&ext, 2, &list) || ext.off != ext.n)
			return AL_E_PROTO; /* two server_name extensions: which one is meant? */
		found = true;
		size_t nt;
		if (!rd_u(&list, 1, &nt) || nt != 0 || !rd_vec(&list, 2, &name) ||
		    list.off != list.n)
			return AL_E_PROTO; /* one host_name, as RFC 6066 allows */
		if (name.n == 0 || memchr(name.p, '\0', name.n) != NULL ||
		    egress_host_norm((const char *)name.p, name.n, sni) != 0)
			return AL_E_PROTO;
	}
	return found ? 0 : AL_E_NOTFOUND;
}

/* ---- operator file ---- */

static const json_t *
node_at(const json_t *v, const json_t *parent)
{
	return v ? v : parent;
}

static int
get_list(struct cfg *c, const json_t *root, const char *key, bool allow_port,
         struct egress_hostlist *l)
{
	json_t *v = json_object_get(root, key), *item;
	size_t i;
	char err[256];
	if (v == NULL)
		return 0;
	if (!json_is_array(v))
		return cfg_error(c, node_at(v, root), "%s: must be a list of host names", key);
	if (json_array_size(v) > EGRESS_MAX_LIST)
		return cfg_error(c, v, "%s: more than %d entries", key, EGRESS_MAX_LIST);
	json_array_foreach(v, i, item)
	{
		if (!json_is_string(item))
			return cfg_error(c, node_at(item, v), "%s[%zu]: must be a string", key, i);
		if (egress_hostlist_add(l, json_string_value(item), allow_port, err, sizeof(err)) !=
		    0)
			return cfg_error(c, item, "%s[%zu]: %s", key, i, err);
	}
	return 0;
}

static int
operator_compile(struct cfg *c, struct egress_operator *op)
{
	static const char *const keys[] = {"allowed_hosts",
	                                   "denied_hosts",
	                                   "allowed_addresses",
	                                   "resolve",
	                                   "unrestricted",
	                                   "max_connections",
	                                   "ca_cert_file",
	                                   "ca_key_file",
	                                   "origin_ca_file",
	                                   "no_terminate",
	                                   NULL};
	const json_t *root = c->root, *res = NULL;
	json_t *v, *item;
	size_t i;
	uint64_t maxc = 64;
	int r;
	if ((r = cfg_only_keys(c, root, keys)) != 0 ||
	    (r = get_list(c, root, "allowed_hosts", true, &op->allow)) != 0 ||
	    (r = get_list(c, root, "denied_hosts", true, &op->deny)) != 0 ||
	    (r = cfg_get_bool(c, root, "unrestricted", &op->unrestricted)) != 0 ||
	    (r = cfg_get_uint(c, root, "max_connections", 1, 4096, &maxc)) != 0 ||
	    (r = cfg_get_map(c, root, "resolve", &res)) != 0 ||
	    (r = cfg_get_str(c, root, "ca_cert_file", &op->ca_cert_file)) != 0 ||
	    (r = cfg_get_str(c, root, "ca_key_file", &op->ca_key_file)) != 0 ||
	    (r = cfg_get_str(c, root, "origin_ca_file", &op->origin_ca_file)) != 0 ||
	    (r = get_list(c, root, "no_terminate", false, &op->no_terminate)) != 0)
		return r;
	if ((op->ca_cert_file == NULL) != (op->ca_key_file == NULL))
		return cfg_error(c, root,
		                 "ca_cert_file and ca_key_file go together (neither: the "
		                 "worker makes its own CA)");
	op->max_connections = (unsigned)maxc;
	if ((v = json_object_get(root, "allowed_addresses")) != NULL) {
		if (!json_is_array(v))
			return cfg_error(c, v,
			                 "allowed_addresses: must be a list of addresses or "
			                 "CIDR ranges");
		if (json_array_size(v) > EGRESS_MAX_LIST)
			return cfg_error(c, v, "allowed_addresses: more than %d entries",
			                 EGRESS_MAX_LIST);
		op->addrs = xcalloc(json_array_size(v) + 1, sizeof(*op->addrs));
		json_array_foreach(v, i, item)
		{
			if (!json_is_string(item) ||
			    egress_cidr_parse(json_string_value(item), &op->addrs[i]) != 0)
				return cfg_error(
				    c, node_at(item, v),
				    "allowed_addresses[%zu]: not an address or CIDR range "
				    "(\"10.20.0.0/16\", \"fd00::/8\"; host bits zero, no "
				    "zone id)",
				    i);
			op->n_addrs++;
		}
	}
	if (res) {
		const char *k;
		if (json_object_size(res) > EGRESS_MAX_LIST)
			return cfg_error(c, res, "resolve: more than %d entries", EGRESS_MAX_LIST);
		op->resolve = xcalloc(json_object_size(res) + 1, sizeof(*op->resolve));
		json_object_foreach((json_t *)res, k, item)
		{
			struct egress_static *e = &op->resolve[op->n_resolve];
			struct in_addr a4;
			if (egress_host_norm(k, strlen(k), e->name) != 0 ||
			    inet_pton(AF_INET, e->name, &a4) == 1)
				return cfg_error(c, item, "resolve: '%.80s' is not a host name", k);
			if (!json_is_string(item) ||
			    egress_addr_parse(json_string_value(item), &e->addr) != 0)
				return cfg_error(
				    c, item, "resolve.%.80s: must be one IPv4 or IPv6 address", k);
			op->n_resolve++;
		}
	}
	return 0;
}

static int
operator_finish(struct cfg *c, int r, struct egress_operator **out, char *err, size_t errlen)
{
	struct egress_operator *op = xcalloc(1, sizeof(*op));
	if (r == 0)
		r = operator_compile(c, op);
	if (r != 0) {
		seterr(err, errlen, "%s", c->err[0] ? c->err : al_strerror(r));
		egress_operator_free(op);
	} else {
		op->file = xstrdup(c->name ? c->name : "");
		*out = op;
	}
	cfg_free(c);
	return r;
}

int
egress_operator_parse(const char *name, const char *text, size_t len, struct egress_operator **out,
                      char *err, size_t errlen)
{
	struct cfg c;
	int r = cfg_parse(&c, name, text, len);
	return operator_finish(&c, r, out, err, errlen);
}

int
egress_operator_load(const char *path, struct egress_operator **out, char *err, size_t errlen)
{
	struct cfg c;
	int r = cfg_load(&c, path);
	return operator_finish(&c, r, out, err, errlen);
}

void
egress_operator_free(struct egress_operator *op)
{
	if (op == NULL)
		return;
	free(op->file);
	egress_hostlist_free(&op->allow);
	egress_hostlist_free(&op->deny);
	free(op->addrs);
	free(op->resolve);
	free(op->ca_cert_file);
	free(op->ca_key_file);
	free(op->origin_ca_file);
	egress_hostlist_free(&op->no_terminate);
	free(op);
}

bool
egress_operator_resolve(const struct egress_operator *op, const char *host, struct egress_addr *out)
{
	for (size_t i = 0; op && i < op->n_resolve; i++) {
		if (strcmp(op->resolve[i].name, host) == 0) {
			*out = op->resolve[i].addr;
			return true;
		}
	}
	return false;
}

/* ---- the environment's networking ---- */

static int
env_list(const json_t *arr, const char *ctx, const char *key, struct egress_hostlist *l, char *err,
         size_t errlen)
{
	json_t *item;
	size_t i;
	char e[256];
	if (!json_is_array(arr)) {
		seterr(err, errlen, "%s.%s: must be a list of host names", ctx, key);
		return AL_E_INVAL;
	}
	if (json_array_size(arr) > EGRESS_MAX_LIST) {
		seterr(err, errlen, "%s.%s: at most %d entries", ctx, key, EGRESS_MAX_LIST);
		return AL_E_INVAL;
	}
	json_array_foreach(arr, i, item)
	{
		if (!json_is_string(item)) {
			seterr(err, errlen, "%s.%s[%zu]: must be a string", ctx, key, i);
			return AL_E_INVAL;
		}
		if (egress_hostlist_add(l, json_string_value(item), true, e, sizeof(e)) != 0) {
			seterr(err, errlen, "%s.%s[%zu]: %s", ctx, key, i, e);
			return AL_E_INVAL;
		}
	}
	return 0;
}

int
egress_env_parse(const json_t *nw, const char *ctx, struct egress_env *out, char *err,
                 size_t errlen)
{
	const char *k;
	json_t *v;
	int r = AL_E_INVAL;
	memset(out, 0, sizeof(*out));
	if (nw == NULL || json_is_null(nw))
		return 0;
	if (!json_is_object(nw)) {
		seterr(err, errlen, "%s: must be an object", ctx);
		return AL_E_INVAL;
	}
	const char *type = json_string_value(json_object_get(nw, "type"));
	if (type == NULL) {
		seterr(err, errlen, "%s.type: Field required ('limited' or 'unrestricted')", ctx);
		return AL_E_INVAL;
	}
	if (strcmp(type, "unrestricted") == 0) {
		out->type = EGRESS_ENV_UNRESTRICTED;
	} else if (strcmp(type, "limited") == 0) {
		out->type = EGRESS_ENV_LIMITED;
	} else {
		seterr(err, errlen, "%s.type: must be 'limited' or 'unrestricted'", ctx);
		return AL_E_INVAL;
	}
	json_object_foreach((json_t *)nw, k, v)
	{
		if (strcmp(k, "type") == 0)
			continue;
		if (out->type == EGRESS_ENV_LIMITED && strcmp(k, "allowed_hosts") == 0) {
			if ((r = env_list(v, ctx, k, &out->allow, err, errlen)) != 0)
				goto out;
		} else if (out->type == EGRESS_ENV_LIMITED &&
		           (strcmp(k, "allow_mcp_servers") == 0 ||
		            strcmp(k, "allow_package_managers") == 0)) {
			if (!json_is_boolean(v)) {
				seterr(err, errlen, "%s.%s: must be a boolean", ctx, k);
				r = AL_E_INVAL;
				goto out;
			}
			if (k[6] == 'm')
				out->allow_mcp_servers = json_is_true(v);
			else
				out->allow_package_managers = json_is_true(v);
		} else {
			seterr(err, errlen, "%s.%.64s: Extra inputs are not permitted", ctx, k);
			r = AL_E_INVAL;
			goto out;
		}
	}
	r = 0;
out:
	if (r != 0)
		egress_env_free(out);
	return r;
}

void
egress_env_free(struct egress_env *e)
{
	egress_hostlist_free(&e->allow);
	egress_hostlist_free(&e->mcp);
}

/* ---- decisions ---- */

static void decide(struct egress_decision *d, bool allow, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
decide(struct egress_decision *d, bool allow, const char *fmt, ...)
{
	va_list ap;
	d->allow = allow;
	va_start(ap, fmt);
	vsnprintf(d->rule, sizeof(d->rule), fmt, ap);
	va_end(ap);
}

static bool
env_allows(const struct egress_env *env, const char *host, uint16_t port, char *why, size_t whylen)
{
	const struct egress_host *h = egress_list_match(&env->allow, host, port);
	char pat[EGRESS_HOST_MAX + 16];
	if (h) {
		pattern_text(h, pat, sizeof(pat));
		snprintf(why, whylen, "the environment's allowed_hosts entry '%s'", pat);
		return true;
	}
	if (env->allow_mcp_servers && (h = egress_list_match(&env->mcp, host, port)) != NULL) {
		snprintf(why, whylen, "allow_mcp_servers (the agent's MCP server %s)", h->name);
		return true;
	}
	if (env->allow_package_managers) {
		for (size_t i = 0; egress_package_hosts[i]; i++) {
			if (strcmp(egress_package_hosts[i], host) == 0) {
				snprintf(why, whylen, "allow_package_managers");
				return true;
			}
		}
	}
	return false;
}

void
egress_decide_host(const struct egress_operator *op, const struct egress_env *env, const char *host,
                   uint16_t port, struct egress_decision *d)
{
	const struct egress_host *h;
	char pat[EGRESS_HOST_MAX + 16], why[EGRESS_RULE_MAX];
	if (op == NULL) {
		decide(d, false, "the worker's policy (no --egress-policy: no network)");
		return;
	}
	if (env == NULL || env->type == EGRESS_ENV_NONE) {
		decide(d, false, "the environment's networking (none configured)");
		return;
	}
	/* deny wins, whoever allows */
	if ((h = egress_list_match(&op->deny, host, port)) != NULL) {
		pattern_text(h, pat, sizeof(pat));
		decide(d, false, "the worker's denied_hosts entry '%s'", pat);
		return;
	}
	if (env->type == EGRESS_ENV_LIMITED && !env_allows(env, host, port, why, sizeof(why))) {
		decide(d, false, "the environment's allowed_hosts");
		return;
	}
	if (env->type == EGRESS_ENV_UNRESTRICTED)
		snprintf(why, sizeof(why), "the environment's networking 'unrestricted'");
	if ((h = egress_list_match(&op->allow, host, port)) != NULL) {
		pattern_text(h, pat, sizeof(pat));
		decide(d, true, "%s and the worker's allowed_hosts entry '%s'", why, pat);
		return;
	}
	if (op->unrestricted) {
		decide(d, true, "%s (the worker allows any host)", why);
		return;
	}
	decide(d, false, "the worker's allowed_hosts (%s)", op->file ? op->file : "");
}

void
egress_decide_addr(const struct egress_operator *op, const struct egress_addr *a,
                   const struct egress_addr *own, size_t n_own, struct egress_decision *d)
{
	enum egress_addr_class cls = egress_addr_classify(a);
	char txt[64];
	egress_addr_format(a, txt, sizeof(txt));
	switch (cls) {
	case EGRESS_ADDR_METADATA:
	case EGRESS_ADDR_LINKLOCAL:
	case EGRESS_ADDR_UNSPECIFIED:
	case EGRESS_ADDR_MULTICAST:
	case EGRESS_ADDR_TRANSLATED:
	case EGRESS_ADDR_RESERVED:
		decide(d, false, "the address rules (%s is %s, never dialled)", txt,
		       egress_addr_class_name(cls));
		return;
	default:
		break;
	}
	for (size_t i = 0; op && i < op->n_addrs; i++) {
		if (egress_cidr_contains(&op->addrs[i], a)) {
			decide(d, true, "the worker's allowed_addresses entry %s",
			       op->addrs[i].text);
			return;
		}
	}
	for (size_t i = 0; i < n_own; i++) {
		if (memcmp(own[i].a, a->a, 16) == 0) {
			decide(d, false, "the address rules (%s is the worker's own address)", txt);
			return;
		}
	}
	if (cls != EGRESS_ADDR_PUBLIC) {
		decide(d, false, "the address rules (%s is %s and not in allowed_addresses)", txt,
		       egress_addr_class_name(cls));
		return;
	}
	decide(d, true, "the address rules (%s is public)", txt);
}
