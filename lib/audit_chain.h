/* The audit log's record format and hash chain (issue 12 item 5): one JSON object per
 * line, each carrying its sequence number, the previous record's hash and its own, so an
 * export can be checked offline (`airlock audit verify`). Pure: the caller owns storage
 * and the clock. Format and canonical form: docs/server/audit.md. */
#ifndef AL_AUDIT_CHAIN_H
#define AL_AUDIT_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "buf.h"

#define AUDIT_LINE_MAX (1u << 20) /* bytes in one record line */
#define AUDIT_HEX_LEN 65          /* 64 lower-case hex digits and a NUL */
#define AUDIT_CHECKPOINT_ACTION "audit.checkpoint"

/* What one record says; NULL strings are written as JSON null. */
struct audit_event {
	int64_t time_us;        /* CLOCK_REALTIME µs, written as RFC 3339 */
	const char *request_id; /* the API request or the loop step that caused it */
	const char *sub, *iss;  /* principal; groups as the token had them */
	const char *const *groups;
	size_t n_groups;
	const char *action;      /* "session.create", "tool.call", "auth.fail", … */
	const json_t *resources; /* object of ids {"session_id": …}; borrowed; may be NULL */
	const char *decision;    /* "allow" | "ask" | "deny", or NULL */
	const char *rule;        /* deciding policy rule id, or NULL */
	const char *outcome;     /* "ok", "error", "denied", … */
	int64_t latency_ms;
	const char *args_sha256; /* audit_args_sha256() of tool input, or NULL */
};

/* A new record object (no seq/prev/hash yet). */
json_t *audit_record_new(const struct audit_event *ev);
/* Hex SHA-256 of the canonical JSON of a tool's input: arguments are recorded by hash
 * only, never in clear (they may hold secrets or file contents). */
void audit_args_sha256(const json_t *input, char hex[AUDIT_HEX_LEN]);

/* A member of a record's resources for audit_text_build: a string when str is non-NULL
 * (invalid UTF-8 is written as null, as audit_record_new does), else the integer num. */
struct audit_member {
	const char *key;
	const char *str;
	int64_t num;
};

/* A record as canonical text, written straight from its fields: the same bytes as
 * json_dumps(audit_record_new(ev), JSON_COMPACT | JSON_SORT_KEYS), without building,
 * sorting or dumping jansson objects (the agent loop writes one per tool call, and the
 * record must cost little next to the event append it rides on). The text lacks seq, prev
 * and hash and is itself canonical (what the outbox stores); the offsets say where each
 * goes in key order, so the chain splices them in at append time. tests/unit/lib/
 * test_audit_chain.c and fuzz_audit_text hold the two builders to the same bytes. */
struct audit_text {
	struct buf b;
	size_t at_hash; /* after "decision" */
	size_t at_prev; /* after "outcome" */
	size_t at_seq;  /* after "rule" */
};

/* Builds t (initialized here) from ev. The resources are ev->resources (an object, dumped
 * canonically) or, when nres > 0, the members res (ev->resources must then be NULL; keys
 * distinct). 0, AL_E_INVAL (bad arguments) or AL_E_TOOBIG (over AUDIT_LINE_MAX); t is
 * always safe to free. */
int audit_text_build(struct audit_text *t, const struct audit_event *ev,
                     const struct audit_member *res, size_t nres);
void audit_text_free(struct audit_text *t);

/* Canonical bytes of a record: jansson JSON_COMPACT | JSON_SORT_KEYS of the object
 * without its "hash" member. Heap, NUL-terminated; *len without the NUL. NULL if rec is
 * not an object. */
char *audit_canonical(const json_t *rec, size_t *len);
/* hex SHA-256 of audit_canonical(rec); 0 or AL_E_INVAL. */
int audit_record_hash(const json_t *rec, char hex[AUDIT_HEX_LEN]);

/* The writer's state: the last record's seq and hash (seq 0 and 64 zeros before the
 * first record). A server keeps it with the log and resumes it after a restart. */
struct audit_chain {
	uint64_t seq;
	char last[AUDIT_HEX_LEN];
};

void audit_chain_init(struct audit_chain *c);
/* Continues after a stored record; AL_E_INVAL if hash is not 64 lower-case hex digits. */
int audit_chain_resume(struct audit_chain *c, uint64_t seq, const char *hash);
/* Seals rec (adds seq, prev, hash) and appends its line and '\n' to out. rec must be an
 * object without seq/prev/hash. On error (AL_E_INVAL, AL_E_TOOBIG) neither c, rec nor
 * out changed. */
int audit_chain_append(struct audit_chain *c, json_t *rec, struct buf *out);

/* The same for a record built as text: the line (with '\n') goes to out; the bytes are
 * those audit_chain_append writes for the same record. */
int audit_chain_append_text(struct audit_chain *c, const struct audit_text *t, struct buf *out);

/* An append-only JSON-lines log file: each record one write(2) with O_APPEND, then
 * fdatasync, so a record is durable before the action it records is acknowledged. */
struct audit_file {
	int fd;
	char *path;
	struct audit_chain chain;
	uint64_t size; /* bytes of complete records */
};

/* Opens or creates (mode 0600) path and resumes the chain from its last record, whose
 * own hash must match (the whole chain is `airlock audit verify`'s job). A torn last line
 * (a crash during a write, no '\n') was never acknowledged: it is cut off and *torn gets
 * its length. Errors: AL_E_INVAL (the last record does not verify) or -errno, with err. */
int audit_file_open(struct audit_file *af, const char *path, size_t *torn, char *err,
                    size_t errlen);
/* Seals rec and appends it durably. On failure (AL_E_INVAL, AL_E_TOOBIG, -errno) the file
 * is cut back to its previous size and the chain is unchanged. */
int audit_file_append(struct audit_file *af, json_t *rec);
/* The same without the fdatasync: the line is in the file but not yet durable, for a
 * caller that keeps a durable copy elsewhere until audit_file_sync (the server's outbox,
 * whose rows commit with the events they record). A sync makes every earlier line
 * durable. -errno on failure. */
int audit_file_append_nosync(struct audit_file *af, json_t *rec);
int audit_file_sync(struct audit_file *af);
/* audit_file_append (sync) or audit_file_append_nosync for a record built as text. */
int audit_file_append_text(struct audit_file *af, const struct audit_text *t, bool sync);
void audit_file_close(struct audit_file *af);

/* Signed checkpoints (next step, docs/server/audit.md): a record with action
 * "audit.checkpoint" will carry a signature by the server key over the chain head.
 * The verifier hands each one to this hook; 0 accepts it. Without a hook checkpoints are
 * chained like any record and counted as unverified. */
typedef int (*audit_checkpoint_fn)(void *ctx, const json_t *rec, const char *hash);

/* A streaming verifier: feed lines in order; the first failure sticks. */
struct audit_verify {
	uint64_t line;           /* lines read */
	uint64_t count;          /* records that verified */
	struct audit_chain head; /* seq and hash of the last good record */
	uint64_t checkpoints, checkpoints_unverified;
	audit_checkpoint_fn checkpoint; /* optional */
	void *checkpoint_ctx;
	bool failed;
	uint64_t bad_line, bad_seq; /* bad_seq 0 when the line had no readable seq */
	char msg[256];
};

void audit_verify_init(struct audit_verify *v);
/* Starts the chain after a known record (a partial export): the first line must have
 * seq + 1 and prev == hash. Without it the first record must be seq 1 with 64 zeros. */
int audit_verify_anchor(struct audit_verify *v, uint64_t seq, const char *hash);
/* One line without its '\n'. Returns 0, or AL_E_INVAL with bad_line/bad_seq/msg set. */
int audit_verify_line(struct audit_verify *v, const char *line, size_t len);
/* Every line of f; stops at the first bad one. AL_E_IO on a read error (msg says). */
int audit_verify_stream(struct audit_verify *v, FILE *f);

#endif
