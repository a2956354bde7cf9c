/* The mock model's script: a list of scripted assistant turns (JSON or YAML) loaded
 * and validated once, picked in order per request (optionally by matching the last
 * user text), and rendered as Messages API responses: SSE frames or one JSON body.
 * A scripted stand-in for a real model, for tests; see docs/mockmodel.md. */
#ifndef AL_MOCKMODEL_SCRIPT_H
#define AL_MOCKMODEL_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define MM_MAX_TURNS 10000

struct mm_script {
	json_t *turns; /* array of validated turn objects */
	bool *used;    /* one flag per turn */
	bool loop;     /* start over when every turn was served */
};

/* Loads FILE (".yaml"/".yml" as YAML, anything else as JSON). On error returns
 * AL_E_INVAL and writes "file: turn N: message" into err. */
int mm_script_load(const char *path, struct mm_script **out, char *err, size_t errlen);
/* Same from JSON text already parsed (the top-level list or {"turns":[...]}). */
int mm_script_from_json(const json_t *doc, struct mm_script **out, char *err, size_t errlen);
void mm_script_free(struct mm_script *s);

/* Converts a YAML document to JSON (plain scalars typed as null/bool/int/real). */
int mm_yaml_to_json(const char *text, size_t len, json_t **out, char *err, size_t errlen);

/* The text of the last user message of a Messages request: its text blocks and
 * the text inside its tool_result blocks, joined by "\n". Never NULL. */
char *mm_last_user_text(const json_t *request);

/* Marks and returns (borrowed) the turn for a request: the first unused turn whose
 * "match" is a substring of the last user text, else the first unused turn without
 * "match"; *idx gets its index. NULL when none is left (after a restart of a looping
 * script). */
const json_t *mm_script_pick(struct mm_script *s, const json_t *request, size_t *idx);

/* A turn's content with defaults filled in (tool_use ids, thinking signatures):
 * new reference. Both renderers take this, so one request sees one set of ids. */
json_t *mm_turn_content(const json_t *turn);
/* The stop_reason: the turn's, else "tool_use" when a tool_use block is present,
 * else "end_turn". */
const char *mm_turn_stop_reason(const json_t *turn, const json_t *content);
/* usage with defaults (input 10, output from content size, caches 0): new reference. */
json_t *mm_turn_usage(const json_t *turn, const json_t *content);

/* Rendered SSE frames, each a complete "event: X\ndata: {...}\n\n". */
struct mm_frames {
	char **v;
	size_t n;
};
void mm_frames_free(struct mm_frames *f);

/* Full message stream for a non-error turn (message_start, ping, block frames,
 * message_delta, message_stop). */
void mm_render_stream(const json_t *turn, const json_t *content, const char *msg_id,
                      const char *model, struct mm_frames *out);
/* message_start and ping, then an `event: error` frame (turns with error.mid_stream). */
void mm_render_stream_error(const json_t *turn, const char *msg_id, const char *model,
                            struct mm_frames *out);
/* Non-streaming Message object: new reference. */
json_t *mm_render_message(const json_t *turn, const json_t *content, const char *msg_id,
                          const char *model);
/* {"type":"error","error":{"type","message"},"request_id"}: new reference. */
json_t *mm_render_error_body(const json_t *error, const char *request_id);

#endif
