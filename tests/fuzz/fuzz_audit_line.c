/* Fuzzes the audit chain verifier (lib/audit_chain.c) with export lines, and checks one
 * property of the writer: any JSON object the verifier has parsed, once sealed by
 * audit_chain_append, must verify — canonical bytes survive a dump and a re-parse, or an
 * honest log would fail its own audit. */
#include <stdlib.h>
#include <string.h>

#include "audit_chain.h"
#include "fuzz.h"

static void
seal_and_verify(const char *line, size_t len)
{
	json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(rec)) {
		json_decref(rec);
		return;
	}
	json_object_del(rec, "seq");
	json_object_del(rec, "prev");
	json_object_del(rec, "hash");
	struct audit_chain c;
	struct buf out;
	audit_chain_init(&c);
	buf_init(&out, 4u << 20);
	if (audit_chain_append(&c, rec, &out) == 0) {
		if (audit_chain_append(&c, rec, &out) == 0)
			abort(); /* a sealed record is refused a second time */
		struct audit_verify v;
		audit_verify_init(&v);
		char *nl = memchr(out.data, '\n', out.len);
		if (nl == NULL || audit_verify_line(&v, out.data, (size_t)(nl - out.data)) != 0)
			abort();
	}
	buf_free(&out);
	json_decref(rec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *end = s + size;
	struct audit_verify v;
	audit_verify_init(&v);
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = nl ? (size_t)(nl - s) : (size_t)(end - s);
		audit_verify_line(&v, s, len);
		seal_and_verify(s, len);
		s += len + 1;
	}
	/* the same bytes as a stream */
	FILE *f = size ? fmemopen((void *)data, size, "r") : NULL;
	if (f) {
		audit_verify_init(&v);
		audit_verify_stream(&v, f);
		fclose(f);
	}
	return 0;
}
