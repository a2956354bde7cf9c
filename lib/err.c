/* Names for enum al_err and errno values, for logs and error envelopes. */
#include <string.h>

#include "err.h"

static const char *const al_err_names[] = {
    [AL_E_INTERNAL - AL_E_INTERNAL] = "internal error",
    [AL_E_INVAL - AL_E_INTERNAL] = "invalid input",
    [AL_E_TOOBIG - AL_E_INTERNAL] = "input too large",
    [AL_E_PROTO - AL_E_INTERNAL] = "protocol error",
    [AL_E_AUTH - AL_E_INTERNAL] = "authentication failed",
    [AL_E_PERM - AL_E_INTERNAL] = "permission denied",
    [AL_E_NOTFOUND - AL_E_INTERNAL] = "not found",
    [AL_E_CONFLICT - AL_E_INTERNAL] = "conflict",
    [AL_E_PRECOND - AL_E_INTERNAL] = "precondition failed",
    [AL_E_IO - AL_E_INTERNAL] = "I/O error",
    [AL_E_TIMEOUT - AL_E_INTERNAL] = "timed out",
    [AL_E_AGAIN - AL_E_INTERNAL] = "try again",
    [AL_E_UNSUPPORTED - AL_E_INTERNAL] = "not supported",
    [AL_E_CLOSED - AL_E_INTERNAL] = "closed",
};

const char *
al_strerror(int err)
{
	if (err == 0)
		return "success";
	if (err >= AL_E_INTERNAL && err < AL_E__END)
		return al_err_names[err - AL_E_INTERNAL];
	if (err < 0 && err > -4096)
		return strerror(-err);
	return "unknown error";
}
