/* Fuzzes the work-secret decoder (src/worker/worker_api.c): base64url or standard
 * alphabet, padding optional, JSON inside; any input yields a token or NULL, and a token
 * is always a non-empty NUL-free string that was present in the decoded JSON. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "worker.h"
#include "xalloc.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *tok = wapi_sessions_token((const char *)data, size);
	if (tok != NULL) {
		if (tok[0] == '\0')
			abort();
		secret_free(tok);
	}
	return 0;
}
