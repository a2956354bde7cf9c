/* Fuzzes the egress policy parsers (lib/egress_policy.c): the input is an operator policy
 * file; an optional tail after a line "#targets" holds request targets (one a line: a
 * CONNECT authority or an absolute http:// URL) decided against it. Beyond "no crash": a
 * parsed host is normalised (parsing it again gives itself) and a decision always names
 * its rule. */
#include <stdlib.h>
#include <string.h>

#include "egress_policy.h"
#include "fuzz.h"

static void
decide(const struct egress_operator *op, const struct egress_env *env, const char *line, size_t n)
{
	char host[EGRESS_HOST_MAX + 1], again[EGRESS_HOST_MAX + 1];
	uint16_t port;
	bool ip;
	const char *path;
	size_t plen;
	struct egress_decision d;
	struct egress_addr a;
	if (egress_authority_parse(line, n, 0, host, sizeof(host), &port, &ip) != 0 &&
	    egress_url_parse(line, n, host, sizeof(host), &port, &path, &plen) != 0)
		return;
	if (port == 0)
		abort();
	if (!ip && (egress_host_norm(host, strlen(host), again) != 0 || strcmp(host, again) != 0))
		abort();
	egress_decide_host(op, env, host, port, &d);
	if (d.rule[0] == '\0')
		abort();
	if (egress_operator_resolve(op, host, &a) || egress_addr_parse(host, &a) == 0) {
		egress_decide_addr(op, &a, NULL, 0, &d);
		if (d.rule[0] == '\0')
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char mark[] = "\n#targets\n";
	const char *text = (const char *)data;
	size_t ylen = size;
	const char *tail = NULL;
	struct egress_operator *op = NULL;
	struct egress_env env = {.type = EGRESS_ENV_UNRESTRICTED};
	char err[512];
	const char *m =
	    size >= sizeof(mark) - 1 ? memmem(text, size, mark, sizeof(mark) - 1) : NULL;
	if (m) {
		ylen = (size_t)(m - text);
		tail = m + sizeof(mark) - 1;
	}
	if (egress_operator_parse("fuzz.yaml", text, ylen, &op, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			abort();
		return 0;
	}
	env.allow = op->allow; /* the environment asks for what the operator allows */
	for (const char *p = tail, *end = text + size; p && p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		decide(op, &env, p, n);
		env.type =
		    env.type == EGRESS_ENV_LIMITED ? EGRESS_ENV_UNRESTRICTED : EGRESS_ENV_LIMITED;
		p += n + 1;
	}
	egress_operator_free(op);
	return 0;
}
