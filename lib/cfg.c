/* YAML → jansson with line numbers; see cfg.h and docs/lib/cfg.md. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "buf.h"
#include "cfg.h"
#include "err.h"
#include "net.h"
#include "xalloc.h"

#define CFG_MAX_DEPTH 32
#define CFG_MAX_NODES 100000

static void
note_line(struct cfg *c, const json_t *node, unsigned line)
{
	c->nodes = xreallocarray(c->nodes, c->n + 1, sizeof(*c->nodes));
	c->lines = xreallocarray(c->lines, c->n + 1, sizeof(*c->lines));
	c->nodes[c->n] = node;
	c->lines[c->n] = line;
	c->n++;
}

unsigned
cfg_line(const struct cfg *c, const json_t *node)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->nodes[i] == node)
			return c->lines[i];
	return 0;
}

static int verr(struct cfg *c, unsigned line, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static int
verr(struct cfg *c, unsigned line, const char *fmt, va_list ap)
{
	char msg[400];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(c->err, sizeof(c->err), "%s:%u: %s", c->name ? c->name : "config", line, msg);
	return AL_E_INVAL;
}

static int err_at(struct cfg *c, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
err_at(struct cfg *c, unsigned line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = verr(c, line, fmt, ap);
	va_end(ap);
	return r;
}

int
cfg_error(struct cfg *c, const json_t *node, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = verr(c, cfg_line(c, node), fmt, ap);
	va_end(ap);
	return r;
}

/* Recursive descent over libyaml events; depth and node count bounded. */
static int parse_node(struct cfg *c, yaml_parser_t *p, yaml_event_t *first, int depth,
                      json_t **out);

static int
next_event(struct cfg *c, yaml_parser_t *p, yaml_event_t *ev)
{
	if (!yaml_parser_parse(p, ev))
		return err_at(c, (unsigned)p->problem_mark.line + 1, "%s",
		              p->problem ? p->problem : "YAML syntax error");
	return 0;
}

static int
parse_node(struct cfg *c, yaml_parser_t *p, yaml_event_t *ev, int depth, json_t **out)
{
	unsigned line = (unsigned)ev->start_mark.line + 1;
	int r;
	if (depth > CFG_MAX_DEPTH || c->n > CFG_MAX_NODES)
		return err_at(c, line, "configuration nested too deeply or too large");
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return err_at(c, line, "aliases are not supported in configuration");
	case YAML_SCALAR_EVENT: {
		if (ev->data.scalar.anchor)
			return err_at(c, line, "anchors are not supported in configuration");
		const char *v = (const char *)ev->data.scalar.value;
		size_t len = ev->data.scalar.length;
		json_t *j;
		/* A plain "~"/"null"/empty scalar is null; quoted ones stay strings. */
		if (ev->data.scalar.plain_implicit &&
		    (len == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0))
			j = json_null();
		else
			j = json_stringn(v, len);
		if (j == NULL)
			return err_at(c, line, "value is not valid UTF-8");
		note_line(c, j, line);
		*out = j;
		return 0;
	}
	case YAML_SEQUENCE_START_EVENT: {
		json_t *arr = json_array();
		note_line(c, arr, line);
		for (;;) {
			yaml_event_t e;
			if ((r = next_event(c, p, &e)) != 0)
				goto arr_fail;
			if (e.type == YAML_SEQUENCE_END_EVENT) {
				yaml_event_delete(&e);
				break;
			}
			json_t *item = NULL;
			r = parse_node(c, p, &e, depth + 1, &item);
			yaml_event_delete(&e);
			if (r != 0)
				goto arr_fail;
			json_array_append_new(arr, item);
		}
		*out = arr;
		return 0;
	arr_fail:
		json_decref(arr);
		return r;
	}
	case YAML_MAPPING_START_EVENT: {
		json_t *obj = json_object();
		note_line(c, obj, line);
		for (;;) {
			yaml_event_t k, v;
			if ((r = next_event(c, p, &k)) != 0)
				goto obj_fail;
			if (k.type == YAML_MAPPING_END_EVENT) {
				yaml_event_delete(&k);
				break;
			}
			unsigned kline = (unsigned)k.start_mark.line + 1;
			if (k.type != YAML_SCALAR_EVENT) {
				yaml_event_delete(&k);
				r = err_at(c, kline, "mapping keys must be plain strings");
				goto obj_fail;
			}
			char *key =
			    xstrndup((const char *)k.data.scalar.value, k.data.scalar.length);
			yaml_event_delete(&k);
			if (json_object_get(obj, key)) {
				r = err_at(c, kline, "duplicate key '%s'", key);
				free(key);
				goto obj_fail;
			}
			if ((r = next_event(c, p, &v)) != 0) {
				free(key);
				goto obj_fail;
			}
			json_t *val = NULL;
			r = parse_node(c, p, &v, depth + 1, &val);
			yaml_event_delete(&v);
			if (r != 0) {
				free(key);
				goto obj_fail;
			}
			json_object_set_new(obj, key, val);
			free(key);
		}
		*out = obj;
		return 0;
	obj_fail:
		json_decref(obj);
		return r;
	}
	default:
		return err_at(c, line, "unexpected YAML construct");
	}
}

int
cfg_parse(struct cfg *c, const char *name, const char *text, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int r = AL_E_INVAL;
	bool have_doc = false;

	memset(c, 0, sizeof(*c));
	c->name = xstrdup(name ? name : "config");
	if (!yaml_parser_initialize(&p))
		return AL_E_INTERNAL;
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	for (;;) {
		if ((r = next_event(c, &p, &ev)) != 0)
			goto out;
		yaml_event_type_t t = ev.type;
		if (t == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (t == YAML_DOCUMENT_START_EVENT && have_doc) {
			unsigned line = (unsigned)ev.start_mark.line + 1;
			yaml_event_delete(&ev);
			r = err_at(c, line, "only one YAML document is allowed");
			goto out;
		}
		if (t == YAML_DOCUMENT_START_EVENT) {
			have_doc = true;
			yaml_event_delete(&ev);
			continue;
		}
		if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		json_t *node = NULL;
		r = parse_node(c, &p, &ev, 0, &node);
		yaml_event_delete(&ev);
		if (r != 0)
			goto out;
		if (json_is_null(node)) {
			json_decref(node);
			continue;
		}
		if (!json_is_object(node) || c->root) {
			r = cfg_error(c, node, "the configuration must be one mapping of keys");
			json_decref(node);
			goto out;
		}
		c->root = node;
	}
	if (c->root == NULL) {
		c->root = json_object();
		note_line(c, c->root, 1);
	}
	r = 0;
out:
	yaml_parser_delete(&p);
	return r;
}

int
cfg_load(struct cfg *c, const char *path)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[8192];
	size_t n;
	memset(c, 0, sizeof(*c));
	if (f == NULL) {
		snprintf(c->err, sizeof(c->err), "%s: %s", path, strerror(errno));
		return -errno;
	}
	buf_init(&b, 1 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_add(&b, chunk, n) != 0) {
			fclose(f);
			buf_free(&b);
			snprintf(c->err, sizeof(c->err), "%s: larger than 1 MiB", path);
			return AL_E_TOOBIG;
		}
	}
	fclose(f);
	int r = cfg_parse(c, path, b.data ? b.data : "", b.len);
	buf_free(&b);
	return r;
}

void
cfg_free(struct cfg *c)
{
	json_decref(c->root);
	free(c->nodes);
	free(c->lines);
	free(c->name);
	c->root = NULL;
	c->nodes = NULL;
	c->lines = NULL;
	c->name = NULL;
	c->n = 0;
}

/* Writes the dotted path from cur to target into out[at..] ("sandbox", "routes[2].name");
 * false when target is not below cur. Depth is bounded by the parser's. */
static bool
path_below(const json_t *cur, const json_t *target, char *out, size_t len, size_t at)
{
	const char *k;
	json_t *v;
	size_t i;
	int n;
	if (cur == target) {
		out[at < len ? at : len - 1] = '\0';
		return true;
	}
	if (json_is_object(cur)) {
		json_object_foreach((json_t *)cur, k, v)
		{
			n = snprintf(out + at, len - at, "%s%s", at ? "." : "", k);
			if (n > 0 && (size_t)n < len - at &&
			    path_below(v, target, out, len, at + n))
				return true;
		}
	} else if (json_is_array(cur)) {
		json_array_foreach((json_t *)cur, i, v)
		{
			n = snprintf(out + at, len - at, "[%zu]", i);
			if (n > 0 && (size_t)n < len - at &&
			    path_below(v, target, out, len, at + n))
				return true;
		}
	}
	out[at < len ? at : len - 1] = '\0';
	return false;
}

/* The key as the file spells it from the top ("sandbox.memory_mb", not "memory_mb"), so a
 * message tells `tls.cert_file` from `tunnel.tls.cert_file`. Only on the error path. */
static const char *
full_key(const struct cfg *c, const json_t *obj, const char *key, char *out, size_t len)
{
	char at[200];
	if (obj == c->root || !path_below(c->root, obj, at, sizeof(at), 0) || at[0] == '\0')
		snprintf(out, len, "%s", key);
	else
		snprintf(out, len, "%s.%s", at, key);
	return out;
}

int
cfg_only_keys(struct cfg *c, const json_t *obj, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			if (strcmp(k, allowed[i]) == 0)
				ok = true;
		if (!ok) {
			char fk[256];
			return cfg_error(c, v, "unknown key '%s'",
			                 full_key(c, obj, k, fk, sizeof(fk)));
		}
	}
	return 0;
}

int
cfg_get_str(struct cfg *c, const json_t *obj, const char *key, char **out)
{
	json_t *v = json_object_get(obj, key);
	char fk[256];
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return cfg_error(c, v, "%s: must be a string",
		                 full_key(c, obj, key, fk, sizeof(fk)));
	free(*out);
	*out = xstrdup(json_string_value(v));
	return 0;
}

int
cfg_get_uint(struct cfg *c, const json_t *obj, const char *key, uint64_t min, uint64_t max,
             uint64_t *out)
{
	json_t *v = json_object_get(obj, key);
	char fk[256];
	uint64_t x;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || parse_uint_cstr(json_string_value(v), max, &x) != 0 || x < min)
		return cfg_error(c, v, "%s: must be an integer from %llu to %llu",
		                 full_key(c, obj, key, fk, sizeof(fk)), (unsigned long long)min,
		                 (unsigned long long)max);
	*out = x;
	return 0;
}

int
cfg_get_seconds(struct cfg *c, const json_t *obj, const char *key, uint64_t min, uint64_t max,
                uint64_t *out)
{
	json_t *v = json_object_get(obj, key);
	char fk[256];
	uint64_t ms;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || parse_duration_ms(json_string_value(v), max * 1000, &ms) != 0 ||
	    ms % 1000 != 0 || ms / 1000 < min)
		return cfg_error(c, v,
		                 "%s: must be a duration from %llus to %llus (90, 90s, 5m, 1h)",
		                 full_key(c, obj, key, fk, sizeof(fk)), (unsigned long long)min,
		                 (unsigned long long)max);
	*out = ms / 1000;
	return 0;
}

int
cfg_get_bool(struct cfg *c, const json_t *obj, const char *key, bool *out)
{
	json_t *v = json_object_get(obj, key);
	char fk[256];
	if (v == NULL || json_is_null(v))
		return 0;
	const char *s = json_is_string(v) ? json_string_value(v) : "";
	if (strcmp(s, "true") == 0)
		*out = true;
	else if (strcmp(s, "false") == 0)
		*out = false;
	else
		return cfg_error(c, v, "%s: must be true or false",
		                 full_key(c, obj, key, fk, sizeof(fk)));
	return 0;
}

int
cfg_get_listen(struct cfg *c, const json_t *obj, const char *key, char **out)
{
	json_t *v = json_object_get(obj, key);
	char fk[256];
	if (json_is_string(v) && !net_addr_valid(json_string_value(v)))
		return cfg_error(c, v, "%s: must be host:port (127.0.0.1:8400, [::1]:8400, :8400)",
		                 full_key(c, obj, key, fk, sizeof(fk)));
	return cfg_get_str(c, obj, key, out); /* absent, null, or not a string */
}

int
cfg_get_map(struct cfg *c, const json_t *obj, const char *key, const json_t **out)
{
	json_t *v = json_object_get(obj, key);
	char fk[256];
	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return cfg_error(c, v, "%s: must be a mapping",
		                 full_key(c, obj, key, fk, sizeof(fk)));
	*out = v;
	return 0;
}
