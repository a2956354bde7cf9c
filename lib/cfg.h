/* YAML configuration files, loaded into a jansson tree with the line of every node
 * kept aside, so validators can say `file:line: message` (style.md §3). Scalars stay
 * strings; cfg_get_* convert with bounds. Anchors, aliases and tags are refused:
 * config is data a person writes, and aliases make it hard to read. */
#ifndef AL_CFG_H
#define AL_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct cfg {
	char *name;   /* file name for messages */
	json_t *root; /* mapping at top level (object) */
	/* line of each node, keyed by node pointer */
	const json_t **nodes;
	unsigned *lines;
	size_t n;
	char err[512]; /* last error, "file:line: message" */
};

/* Parses text (name for messages). Returns 0 or AL_E_INVAL with c->err set. An empty
 * document gives an empty mapping. */
int cfg_parse(struct cfg *c, const char *name, const char *text, size_t len);
int cfg_load(struct cfg *c, const char *path); /* file ≤ 1 MiB */
void cfg_free(struct cfg *c);

unsigned cfg_line(const struct cfg *c, const json_t *node);
/* Sets c->err to "file:line: <fmt>" for node and returns AL_E_INVAL. */
int cfg_error(struct cfg *c, const json_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fails on a key of obj outside allowed (NULL-terminated): "unknown key 'x'". */
int cfg_only_keys(struct cfg *c, const json_t *obj, const char *const *allowed);
/* Typed getters on obj[key]: absent leaves *out unchanged and returns 0. */
int cfg_get_str(struct cfg *c, const json_t *obj, const char *key, char **out);
int cfg_get_uint(struct cfg *c, const json_t *obj, const char *key, uint64_t min, uint64_t max,
                 uint64_t *out);
/* A duration in whole seconds, written as every duration is (docs/cli.md): 90, "90s",
 * "5m", "1h", "1m30s"; min..max seconds. */
int cfg_get_seconds(struct cfg *c, const json_t *obj, const char *key, uint64_t min, uint64_t max,
                    uint64_t *out);
int cfg_get_bool(struct cfg *c, const json_t *obj, const char *key, bool *out);
/* A listen address, host:port as net_listen_tcp takes it (127.0.0.1:8400, [::1]:0, :443). */
int cfg_get_listen(struct cfg *c, const json_t *obj, const char *key, char **out);
/* obj[key] must be a mapping (or absent: *out = NULL). */
int cfg_get_map(struct cfg *c, const json_t *obj, const char *key, const json_t **out);

#endif
