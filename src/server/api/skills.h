/* /v1/skills (skills.c): what other modules of the API layer call. */
#ifndef AL_SERVER_SKILLS_H
#define AL_SERVER_SKILLS_H

#include <jansson.h>

#include "api.h"

/* The body hook's part for POST /v1/skills and POST /v1/skills/{id}/versions. */
bool skills_upload_hook(struct server *srv, struct http_request *req, struct http_body_sink *sink);
/* Every custom skill of a validated skills[] list (path names it in messages) exists, at
 * the version it names: 0, or replies 400 itself and returns AL_E_INVAL. */
int skills_check_refs(struct api_call *c, const json_t *skills, const char *path);

#endif
