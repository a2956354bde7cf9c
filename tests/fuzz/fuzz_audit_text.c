/* Differential: a record built as text (audit_text_build, the agent loop's path) must be
 * byte for byte what jansson writes for the same record (audit_record_new + json_dumps),
 * before and after the chain seals it, whatever bytes the fields hold (control
 * characters, quotes, broken or 4-byte UTF-8). The input is the fields, split at NUL. */
#include <stdlib.h>
#include <string.h>

#include "audit_chain.h"
#include "fuzz.h"

#define NFIELDS 12

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *f[NFIELDS] = {0};
	memcpy(copy, data, size);
	copy[size] = '\0';
	size_t nf = 0;
	for (char *p = copy; nf < NFIELDS && p <= copy + size; p += strlen(p) + 1)
		f[nf++] = p;
	const char *groups[2] = {f[8], f[9]};
	struct audit_event ev = {
	    .time_us = size * 1000003LL - 5000000000LL, /* before and after 1970 */
	    .action = f[0],
	    .args_sha256 = f[1],
	    .decision = f[2],
	    .outcome = f[3],
	    .sub = f[4],
	    .iss = f[5],
	    .request_id = f[6],
	    .rule = f[7],
	    .groups = groups,
	    .n_groups = f[9]   ? 2
	                : f[8] ? 1
	                       : 0,
	    .latency_ms = (int64_t)size - 3,
	};
	/* members: distinct keys of ours, values from the input; one integer */
	struct audit_member m[] = {
	    {.key = "session_id", .str = f[10] ? f[10] : ""},
	    {.key = "tool", .str = f[11] ? f[11] : ""},
	    {.key = "outbox_id", .num = (int64_t)size * -7},
	};
	json_t *res = json_object();
	for (size_t i = 0; i < 3; i++) {
		json_t *v = m[i].str ? json_string(m[i].str) : json_integer(m[i].num);
		json_object_set_new(res, m[i].key, v ? v : json_null());
	}
	ev.resources = res;
	json_t *rec = audit_record_new(&ev);
	char *want = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	struct audit_text t;
	ev.resources = NULL;
	if (audit_text_build(&t, &ev, m, 3) != 0 || want == NULL || strcmp(t.b.data, want) != 0)
		abort();
	struct audit_chain c1, c2;
	struct buf b1, b2;
	audit_chain_init(&c1);
	c2 = c1;
	buf_init(&b1, AUDIT_LINE_MAX + 1);
	buf_init(&b2, AUDIT_LINE_MAX + 1);
	if (audit_chain_append(&c1, rec, &b1) != 0 || audit_chain_append_text(&c2, &t, &b2) != 0 ||
	    b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0)
		abort();
	buf_free(&b1);
	buf_free(&b2);
	audit_text_free(&t);
	free(want);
	json_decref(rec);
	json_decref(res);
	free(copy);
	return 0;
}
