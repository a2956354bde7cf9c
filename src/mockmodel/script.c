/* Script loading, validation, turn selection and Messages API rendering for the
 * mock model (a scripted stand-in, not a model); see script.h and docs/mockmodel.md. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "buf.h"
#include "err.h"
#include "script.h"
#include "util.h"
#include "xalloc.h"

#define MM_MAX_SCRIPT_BYTES (16u << 20)
#define MM_MAX_DELAY_MS 600000
#define MM_DEFAULT_CHUNK 16
#define MM_YAML_MAX_DEPTH 64

static void __attribute__((format(printf, 3, 4)))
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- YAML → JSON ---- */

static json_t *
yaml_plain_scalar(const char *v, size_t len)
{
	if (len == 0 || (len == 1 && v[0] == '~') || (len == 4 && memcmp(v, "null", 4) == 0))
		return json_null();
	if ((len == 4 && memcmp(v, "true", 4) == 0) || (len == 4 && memcmp(v, "True", 4) == 0))
		return json_true();
	if ((len == 5 && memcmp(v, "false", 5) == 0) || (len == 5 && memcmp(v, "False", 5) == 0))
		return json_false();
	bool neg = v[0] == '-';
	uint64_t u;
	if (parse_uint(v + neg, len - neg, (uint64_t)INT64_MAX, &u) == 0)
		return json_integer(neg ? -(json_int_t)u : (json_int_t)u);
	/* Floats: only the JSON number syntax, so "1e5" and "0.5" type but "1.2.3" stays
	 * a string. jansson's own parser checks the grammar for us. */
	char *tmp = xstrndup(v, len);
	json_t *num = json_loads(tmp, JSON_DECODE_ANY, NULL);
	free(tmp);
	if (num && json_is_number(num))
		return num;
	json_decref(num);
	return json_stringn(v, len);
}

static json_t *
yaml_node_to_json(yaml_document_t *doc, yaml_node_t *n, int depth, char *err, size_t errlen)
{
	if (n == NULL || depth > MM_YAML_MAX_DEPTH) {
		errf(err, errlen, "YAML nesting too deep or broken");
		return NULL;
	}
	switch (n->type) {
	case YAML_SCALAR_NODE: {
		const char *v = (const char *)n->data.scalar.value;
		size_t len = n->data.scalar.length;
		if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
			return yaml_plain_scalar(v, len);
		return json_stringn(v, len);
	}
	case YAML_SEQUENCE_NODE: {
		json_t *a = json_array();
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top; it++) {
			json_t *e = yaml_node_to_json(doc, yaml_document_get_node(doc, *it),
			                              depth + 1, err, errlen);
			if (e == NULL) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, e);
		}
		return a;
	}
	case YAML_MAPPING_NODE: {
		json_t *o = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			if (k == NULL || k->type != YAML_SCALAR_NODE) {
				errf(err, errlen, "line %zu: mapping keys must be scalars",
				     k ? k->start_mark.line + 1 : 0);
				json_decref(o);
				return NULL;
			}
			char *key =
			    xstrndup((const char *)k->data.scalar.value, k->data.scalar.length);
			json_t *v = yaml_node_to_json(doc, yaml_document_get_node(doc, p->value),
			                              depth + 1, err, errlen);
			if (v == NULL) {
				free(key);
				json_decref(o);
				return NULL;
			}
			json_object_set_new(o, key, v);
			free(key);
		}
		return o;
	}
	default:
		errf(err, errlen, "unsupported YAML node");
		return NULL;
	}
}

int
mm_yaml_to_json(const char *text, size_t len, json_t **out, char *err, size_t errlen)
{
	yaml_parser_t p;
	yaml_document_t doc;
	int r = AL_E_INVAL;
	bool have_doc = false;

	*out = NULL;
	if (!yaml_parser_initialize(&p))
		return AL_E_INTERNAL;
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	if (!yaml_parser_load(&p, &doc)) {
		errf(err, errlen, "line %zu: %s", p.problem_mark.line + 1,
		     p.problem ? p.problem : "YAML parse error");
		goto out;
	}
	have_doc = true;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		errf(err, errlen, "empty YAML document");
		goto out;
	}
	*out = yaml_node_to_json(&doc, root, 0, err, errlen);
	if (*out == NULL)
		goto out;
	r = 0;
out:
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	return r;
}

/* ---- validation ---- */

static bool
is_uint_in(const json_t *v, json_int_t lo, json_int_t hi)
{
	return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static bool
key_in(const char *k, const char *const *allowed)
{
	for (; *allowed; allowed++)
		if (strcmp(k, *allowed) == 0)
			return true;
	return false;
}

static int
check_keys(const json_t *o, const char *const *allowed, const char *what, size_t i, char *err,
           size_t errlen)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v)
	{
		if (!key_in(k, allowed)) {
			errf(err, errlen, "turn %zu: unknown key '%s' in %s", i, k, what);
			return AL_E_INVAL;
		}
	}
	return 0;
}

static int
check_block(const json_t *b, size_t i, size_t j, char *err, size_t errlen)
{
	static const char *const text_keys[] = {"type", "text", NULL};
	static const char *const thinking_keys[] = {"type", "thinking", "signature", NULL};
	static const char *const redacted_keys[] = {"type", "data", NULL};
	static const char *const tool_keys[] = {"type", "id", "name", "input", NULL};
	const char *type = json_string_value(json_object_get(b, "type"));

	if (!json_is_object(b) || type == NULL) {
		errf(err, errlen, "turn %zu: content[%zu] must be an object with a type", i, j);
		return AL_E_INVAL;
	}
	if (strcmp(type, "text") == 0) {
		if (!json_is_string(json_object_get(b, "text")))
			goto missing;
		return check_keys(b, text_keys, "a text block", i, err, errlen);
	}
	if (strcmp(type, "thinking") == 0) {
		const json_t *sig = json_object_get(b, "signature");
		if (!json_is_string(json_object_get(b, "thinking")) ||
		    (sig && !json_is_string(sig)))
			goto missing;
		return check_keys(b, thinking_keys, "a thinking block", i, err, errlen);
	}
	if (strcmp(type, "redacted_thinking") == 0) {
		if (!json_is_string(json_object_get(b, "data")))
			goto missing;
		return check_keys(b, redacted_keys, "a redacted_thinking block", i, err, errlen);
	}
	if (strcmp(type, "tool_use") == 0) {
		const json_t *in = json_object_get(b, "input");
		const json_t *id = json_object_get(b, "id");
		if (!json_is_string(json_object_get(b, "name")) || (in && !json_is_object(in)) ||
		    (id && !json_is_string(id)))
			goto missing;
		return check_keys(b, tool_keys, "a tool_use block", i, err, errlen);
	}
	errf(err, errlen,
	     "turn %zu: content[%zu]: type '%s' is not text, thinking, redacted_thinking "
	     "or tool_use",
	     i, j, type);
	return AL_E_INVAL;
missing:
	errf(err, errlen, "turn %zu: content[%zu]: %s block has a missing or mistyped field", i, j,
	     type);
	return AL_E_INVAL;
}

static int
check_error(const json_t *e, size_t i, char *err, size_t errlen)
{
	static const char *const keys[] = {
	    "status",         "type",       "message",      "retry_after",
	    "retry_after_ms", "mid_stream", "should_retry", NULL};
	if (!json_is_object(e) || !is_uint_in(json_object_get(e, "status"), 400, 599) ||
	    !json_is_string(json_object_get(e, "type"))) {
		errf(err, errlen, "turn %zu: error needs status (400..599) and type", i);
		return AL_E_INVAL;
	}
	const json_t *m = json_object_get(e, "message"), *ra = json_object_get(e, "retry_after"),
	             *ram = json_object_get(e, "retry_after_ms"),
	             *ms = json_object_get(e, "mid_stream"),
	             *sr = json_object_get(e, "should_retry");
	if ((m && !json_is_string(m)) || (ra && !is_uint_in(ra, 0, 86400)) ||
	    (ram && !is_uint_in(ram, 0, 86400000)) || (ms && !json_is_boolean(ms)) ||
	    (sr && !json_is_boolean(sr))) {
		errf(err, errlen, "turn %zu: error has a mistyped field", i);
		return AL_E_INVAL;
	}
	return check_keys(e, keys, "error", i, err, errlen);
}

static int
check_turn(const json_t *t, size_t i, char *err, size_t errlen)
{
	static const char *const keys[] = {"content",  "stop_reason",    "usage",      "match",
	                                   "delay_ms", "chunk_delay_ms", "chunk_size", "error",
	                                   "model",    "comment",        NULL};
	static const char *const stops[] = {
	    "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", NULL};
	static const char *const usage_keys[] = {"input_tokens", "output_tokens",
	                                         "cache_read_input_tokens",
	                                         "cache_creation_input_tokens", NULL};
	int r;

	if (!json_is_object(t)) {
		errf(err, errlen, "turn %zu: must be an object", i);
		return AL_E_INVAL;
	}
	if ((r = check_keys(t, keys, "the turn", i, err, errlen)) != 0)
		return r;
	const json_t *content = json_object_get(t, "content"), *error = json_object_get(t, "error");
	if (error) {
		if (content) {
			errf(err, errlen, "turn %zu: a turn has content or error, not both", i);
			return AL_E_INVAL;
		}
		if ((r = check_error(error, i, err, errlen)) != 0)
			return r;
	} else {
		if (!json_is_array(content)) {
			errf(err, errlen, "turn %zu: content must be a list of blocks", i);
			return AL_E_INVAL;
		}
		for (size_t j = 0; j < json_array_size(content); j++)
			if ((r = check_block(json_array_get(content, j), i, j, err, errlen)) != 0)
				return r;
	}
	const json_t *sr = json_object_get(t, "stop_reason");
	if (sr && (!json_is_string(sr) || !key_in(json_string_value(sr), stops))) {
		errf(err, errlen,
		     "turn %zu: stop_reason must be one of end_turn, max_tokens, "
		     "stop_sequence, tool_use, pause_turn, refusal",
		     i);
		return AL_E_INVAL;
	}
	const json_t *u = json_object_get(t, "usage");
	if (u) {
		const char *k;
		json_t *v;
		if (!json_is_object(u)) {
			errf(err, errlen, "turn %zu: usage must be an object", i);
			return AL_E_INVAL;
		}
		json_object_foreach((json_t *)u, k, v)
		{
			if (!key_in(k, usage_keys) || !is_uint_in(v, 0, INT32_MAX)) {
				errf(err, errlen, "turn %zu: usage.%s: unknown or not a count", i,
				     k);
				return AL_E_INVAL;
			}
		}
	}
	const json_t *m = json_object_get(t, "match"), *md = json_object_get(t, "model");
	if ((m && !json_is_string(m)) || (md && !json_is_string(md))) {
		errf(err, errlen, "turn %zu: match and model must be strings", i);
		return AL_E_INVAL;
	}
	const json_t *d = json_object_get(t, "delay_ms"),
	             *cd = json_object_get(t, "chunk_delay_ms"),
	             *cs = json_object_get(t, "chunk_size");
	if ((d && !is_uint_in(d, 0, MM_MAX_DELAY_MS)) ||
	    (cd && !is_uint_in(cd, 0, MM_MAX_DELAY_MS)) || (cs && !is_uint_in(cs, 1, 1 << 20))) {
		errf(err, errlen,
		     "turn %zu: delay_ms/chunk_delay_ms must be 0..%d, chunk_size 1..1048576", i,
		     MM_MAX_DELAY_MS);
		return AL_E_INVAL;
	}
	return 0;
}

int
mm_script_from_json(const json_t *doc, struct mm_script **out, char *err, size_t errlen)
{
	const json_t *turns = doc;
	bool loop = false;
	int r;

	*out = NULL;
	if (json_is_object(doc)) {
		static const char *const keys[] = {"turns", "loop", "comment", NULL};
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)doc, k, v)
		{
			if (!key_in(k, keys)) {
				errf(err, errlen, "unknown top-level key '%s' (turns, loop)", k);
				return AL_E_INVAL;
			}
		}
		turns = json_object_get(doc, "turns");
		const json_t *l = json_object_get(doc, "loop");
		if (l && !json_is_boolean(l)) {
			errf(err, errlen, "loop must be true or false");
			return AL_E_INVAL;
		}
		loop = json_is_true(l);
	}
	if (!json_is_array(turns) || json_array_size(turns) == 0 ||
	    json_array_size(turns) > MM_MAX_TURNS) {
		errf(err, errlen,
		     "the script must be a list of 1..%d turns (or {\"turns\": [...]})",
		     MM_MAX_TURNS);
		return AL_E_INVAL;
	}
	for (size_t i = 0; i < json_array_size(turns); i++)
		if ((r = check_turn(json_array_get(turns, i), i, err, errlen)) != 0)
			return r;
	struct mm_script *s = xcalloc(1, sizeof(*s));
	s->turns = json_deep_copy(turns);
	s->used = xcalloc(json_array_size(turns), sizeof(bool));
	s->loop = loop;
	*out = s;
	return 0;
}

int
mm_script_load(const char *path, struct mm_script **out, char *err, size_t errlen)
{
	int r = AL_E_INVAL, fd = -1;
	struct buf b;
	json_t *doc = NULL;
	char sub[400];

	buf_init(&b, MM_MAX_SCRIPT_BYTES);
	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		errf(err, errlen, "%s: %s", path, strerror(errno));
		r = -errno;
		goto out;
	}
	for (;;) {
		char *wp;
		if (buf_reserve(&b, 65536, &wp) != 0) {
			errf(err, errlen, "%s: larger than %u bytes", path, MM_MAX_SCRIPT_BYTES);
			r = AL_E_TOOBIG;
			goto out;
		}
		ssize_t n = read(fd, wp, 65536);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			errf(err, errlen, "%s: %s", path, strerror(errno));
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		buf_commit(&b, (size_t)n);
	}
	size_t plen = strlen(path);
	bool yaml = (plen > 5 && strcmp(path + plen - 5, ".yaml") == 0) ||
	            (plen > 4 && strcmp(path + plen - 4, ".yml") == 0);
	sub[0] = '\0';
	if (yaml) {
		if (mm_yaml_to_json(b.data ? b.data : "", b.len, &doc, sub, sizeof(sub)) != 0) {
			errf(err, errlen, "%s: %s", path, sub);
			goto out;
		}
	} else {
		json_error_t je;
		doc = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &je);
		if (doc == NULL) {
			errf(err, errlen, "%s:%d: %s", path, je.line, je.text);
			goto out;
		}
	}
	if ((r = mm_script_from_json(doc, out, sub, sizeof(sub))) != 0) {
		errf(err, errlen, "%s: %s", path, sub);
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	json_decref(doc);
	buf_free(&b);
	return r;
}

void
mm_script_free(struct mm_script *s)
{
	if (s == NULL)
		return;
	json_decref(s->turns);
	free(s->used);
	free(s);
}

/* ---- selection ---- */

static void
add_text(struct buf *b, const char *t)
{
	if (b->len)
		buf_add(b, "\n", 1);
	buf_add_str(b, t);
}

static void
add_blocks_text(struct buf *b, const json_t *content, int depth)
{
	if (json_is_string(content)) {
		add_text(b, json_string_value(content));
		return;
	}
	if (!json_is_array(content) || depth > 2)
		return;
	size_t i;
	json_t *blk;
	json_array_foreach(content, i, blk)
	{
		const char *type = json_string_value(json_object_get(blk, "type"));
		if (type == NULL)
			continue;
		if (strcmp(type, "text") == 0 && json_is_string(json_object_get(blk, "text")))
			add_text(b, json_string_value(json_object_get(blk, "text")));
		else if (strcmp(type, "tool_result") == 0)
			add_blocks_text(b, json_object_get(blk, "content"), depth + 1);
	}
}

char *
mm_last_user_text(const json_t *request)
{
	struct buf b;
	const json_t *msgs = json_object_get(request, "messages");
	buf_init(&b, 4u << 20);
	for (size_t i = json_array_size(msgs); i > 0; i--) {
		const json_t *m = json_array_get(msgs, i - 1);
		const char *role = json_string_value(json_object_get(m, "role"));
		if (role && strcmp(role, "user") == 0) {
			add_blocks_text(&b, json_object_get(m, "content"), 0);
			break;
		}
	}
	return buf_steal(&b);
}

/* First unused turn of the kind asked: with a "match" found in text, or without one. */
static const json_t *
pick_pass(struct mm_script *s, const char *text, bool matched, size_t *idx)
{
	for (size_t i = 0; i < json_array_size(s->turns); i++) {
		const json_t *t = json_array_get(s->turns, i);
		const char *m = json_string_value(json_object_get(t, "match"));
		if (s->used[i] || (matched ? (m == NULL || strstr(text, m) == NULL) : m != NULL))
			continue;
		s->used[i] = true;
		*idx = i;
		return t;
	}
	return NULL;
}

const json_t *
mm_script_pick(struct mm_script *s, const json_t *request, size_t *idx)
{
	char *text = mm_last_user_text(request);
	const json_t *found = NULL;

	for (int round = 0; round < 2 && found == NULL; round++) {
		/* A turn whose match fits wins over the next plain turn in order. */
		if ((found = pick_pass(s, text, true, idx)) == NULL)
			found = pick_pass(s, text, false, idx);
		if (found || !s->loop)
			break;
		/* Looping scripts start over once nothing is left for this request. */
		memset(s->used, 0, json_array_size(s->turns) * sizeof(bool));
	}
	free(text);
	return found;
}

/* ---- rendering ---- */

json_t *
mm_turn_content(const json_t *turn)
{
	json_t *c = json_deep_copy(json_object_get(turn, "content"));
	size_t i;
	json_t *b;
	if (c == NULL)
		return json_array();
	json_array_foreach(c, i, b)
	{
		const char *type = json_string_value(json_object_get(b, "type"));
		if (strcmp(type, "tool_use") == 0) {
			if (json_object_get(b, "id") == NULL) {
				char *id = id_new("toolu_");
				json_object_set_new(b, "id", json_string(id));
				free(id);
			}
			if (json_object_get(b, "input") == NULL)
				json_object_set_new(b, "input", json_object());
		} else if (strcmp(type, "thinking") == 0 &&
		           json_object_get(b, "signature") == NULL) {
			json_object_set_new(b, "signature", json_string("mock-signature"));
		}
	}
	return c;
}

const char *
mm_turn_stop_reason(const json_t *turn, const json_t *content)
{
	const char *sr = json_string_value(json_object_get(turn, "stop_reason"));
	size_t i;
	json_t *b;
	if (sr)
		return sr;
	json_array_foreach(content, i, b)
	{
		if (strcmp(json_string_value(json_object_get(b, "type")), "tool_use") == 0)
			return "tool_use";
	}
	return "end_turn";
}

static size_t
block_bytes(const json_t *b)
{
	const char *type = json_string_value(json_object_get(b, "type"));
	if (strcmp(type, "text") == 0)
		return json_string_length(json_object_get(b, "text"));
	if (strcmp(type, "thinking") == 0)
		return json_string_length(json_object_get(b, "thinking"));
	if (strcmp(type, "tool_use") == 0) {
		char *s = json_dumps(json_object_get(b, "input"), JSON_COMPACT);
		size_t n = s ? strlen(s) : 0;
		free(s);
		return n + json_string_length(json_object_get(b, "name"));
	}
	return 0;
}

json_t *
mm_turn_usage(const json_t *turn, const json_t *content)
{
	const json_t *u = json_object_get(turn, "usage");
	size_t out = 0, i;
	json_t *b;
	/* Roughly four bytes a token: deterministic, so tests can predict totals. */
	json_array_foreach(content, i, b) out += block_bytes(b) / 4 + 1;
	json_t *r =
	    json_pack("{s:I, s:I, s:I, s:I}", "input_tokens", (json_int_t)10,
	              "cache_creation_input_tokens", (json_int_t)0, "cache_read_input_tokens",
	              (json_int_t)0, "output_tokens", (json_int_t)out);
	if (json_is_object(u))
		json_object_update(r, (json_t *)u);
	return r;
}

static void
frames_push(struct mm_frames *f, const char *event, json_t *data)
{
	char *js = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	f->v = xreallocarray(f->v, f->n + 1, sizeof(*f->v));
	f->v[f->n++] = xasprintf("event: %s\ndata: %s\n\n", event, js ? js : "{}");
	free(js);
}

void
mm_frames_free(struct mm_frames *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i]);
	free(f->v);
	f->v = NULL;
	f->n = 0;
}

/* Cuts s into pieces of about `chunk` bytes without splitting a UTF-8 sequence. */
static void
push_chunks(struct mm_frames *f, size_t index, const char *delta_type, const char *field,
            const char *s, size_t len, size_t chunk)
{
	size_t off = 0;
	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;
		while (off + n < len && ((unsigned char)s[off + n] & 0xC0) == 0x80)
			n++;
		json_t *d = json_pack("{s:s, s:s%}", "type", delta_type, field, s + off, n);
		frames_push(f, "content_block_delta",
		            json_pack("{s:s, s:I, s:o}", "type", "content_block_delta", "index",
		                      (json_int_t)index, "delta", d));
		off += n;
	}
}

static json_t *
message_head(const char *msg_id, const char *model, json_t *content, json_t *stop_reason,
             json_t *usage)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:n, s:o}", "id", msg_id, "type",
	                 "message", "role", "assistant", "model", model, "content", content,
	                 "stop_reason", stop_reason, "stop_sequence", "usage", usage);
}

static json_t *
start_usage(const json_t *usage)
{
	json_t *u = json_deep_copy(usage);
	/* Like the real API: message_start reports input, message_delta the final output. */
	json_object_set_new(u, "output_tokens", json_integer(1));
	return u;
}

void
mm_render_stream(const json_t *turn, const json_t *content, const char *msg_id, const char *model,
                 struct mm_frames *out)
{
	json_t *usage = mm_turn_usage(turn, content);
	const json_t *cs = json_object_get(turn, "chunk_size");
	size_t chunk = cs ? (size_t)json_integer_value(cs) : MM_DEFAULT_CHUNK;
	size_t i;
	json_t *b;

	frames_push(
	    out, "message_start",
	    json_pack("{s:s, s:o}", "type", "message_start", "message",
	              message_head(msg_id, model, json_array(), json_null(), start_usage(usage))));
	frames_push(out, "ping", json_pack("{s:s}", "type", "ping"));
	json_array_foreach(content, i, b)
	{
		const char *type = json_string_value(json_object_get(b, "type"));
		json_t *start;
		if (strcmp(type, "text") == 0)
			start = json_pack("{s:s, s:s}", "type", "text", "text", "");
		else if (strcmp(type, "thinking") == 0)
			start = json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking", "",
			                  "signature", "");
		else if (strcmp(type, "tool_use") == 0)
			start = json_pack("{s:s, s:O, s:O, s:o}", "type", "tool_use", "id",
			                  json_object_get(b, "id"), "name",
			                  json_object_get(b, "name"), "input", json_object());
		else
			start = json_deep_copy(b);
		frames_push(out, "content_block_start",
		            json_pack("{s:s, s:I, s:o}", "type", "content_block_start", "index",
		                      (json_int_t)i, "content_block", start));
		if (strcmp(type, "text") == 0) {
			const json_t *t = json_object_get(b, "text");
			push_chunks(out, i, "text_delta", "text", json_string_value(t),
			            json_string_length(t), chunk);
		} else if (strcmp(type, "thinking") == 0) {
			const json_t *t = json_object_get(b, "thinking");
			push_chunks(out, i, "thinking_delta", "thinking", json_string_value(t),
			            json_string_length(t), chunk);
			json_t *d = json_pack("{s:s, s:O}", "type", "signature_delta", "signature",
			                      json_object_get(b, "signature"));
			frames_push(out, "content_block_delta",
			            json_pack("{s:s, s:I, s:o}", "type", "content_block_delta",
			                      "index", (json_int_t)i, "delta", d));
		} else if (strcmp(type, "tool_use") == 0) {
			char *js = json_dumps(json_object_get(b, "input"), JSON_COMPACT);
			if (js && strcmp(js, "{}") != 0)
				push_chunks(out, i, "input_json_delta", "partial_json", js,
				            strlen(js), chunk);
			free(js);
		}
		frames_push(
		    out, "content_block_stop",
		    json_pack("{s:s, s:I}", "type", "content_block_stop", "index", (json_int_t)i));
	}
	frames_push(out, "message_delta",
	            json_pack("{s:s, s:{s:s, s:n}, s:O}", "type", "message_delta", "delta",
	                      "stop_reason", mm_turn_stop_reason(turn, content), "stop_sequence",
	                      "usage", usage));
	frames_push(out, "message_stop", json_pack("{s:s}", "type", "message_stop"));
	json_decref(usage);
}

void
mm_render_stream_error(const json_t *turn, const char *msg_id, const char *model,
                       struct mm_frames *out)
{
	json_t *empty = json_array();
	json_t *usage = mm_turn_usage(turn, empty);
	frames_push(out, "message_start",
	            json_pack("{s:s, s:o}", "type", "message_start", "message",
	                      message_head(msg_id, model, empty, json_null(), start_usage(usage))));
	frames_push(out, "ping", json_pack("{s:s}", "type", "ping"));
	json_t *body = mm_render_error_body(json_object_get(turn, "error"), NULL);
	frames_push(out, "error", body);
	json_decref(usage);
}

json_t *
mm_render_message(const json_t *turn, const json_t *content, const char *msg_id, const char *model)
{
	return message_head(msg_id, model, json_deep_copy(content),
	                    json_string(mm_turn_stop_reason(turn, content)),
	                    mm_turn_usage(turn, content));
}

json_t *
mm_render_error_body(const json_t *error, const char *request_id)
{
	const char *type = json_string_value(json_object_get(error, "type"));
	const char *msg = json_string_value(json_object_get(error, "message"));
	char dflt[160];
	if (msg == NULL) {
		snprintf(dflt, sizeof(dflt), "mock-model: scripted %s", type);
		msg = dflt;
	}
	json_t *o = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type,
	                      "message", msg);
	if (request_id)
		json_object_set_new(o, "request_id", json_string(request_id));
	return o;
}
