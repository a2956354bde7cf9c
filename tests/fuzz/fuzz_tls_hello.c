/* Fuzzes the ClientHello server-name reader (egress_sni_parse in lib/egress_policy.c),
 * which reads a sandbox's first bytes in a CONNECT tunnel. Beyond "no crash": a name it
 * returns is normalised (normalising it again gives itself), and a verdict on a prefix
 * that is not "need more" stays the verdict once more bytes follow. */
#include <stdlib.h>
#include <string.h>

#include "egress_policy.h"
#include "err.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char sni[EGRESS_HOST_MAX + 1], again[EGRESS_HOST_MAX + 1], sni2[EGRESS_HOST_MAX + 1];
	int r = egress_sni_parse(data, size, sni);
	if (r == 0 && (egress_host_norm(sni, strlen(sni), again) != 0 || strcmp(sni, again) != 0))
		abort();
	if (r != AL_E_AGAIN && size > 0) {
		/* the same bytes and a tail: whatever decided, decided on the prefix */
		uint8_t *more = malloc(size + 7);
		memcpy(more, data, size);
		memset(more + size, 0x16, 7);
		int r2 = egress_sni_parse(more, size + 7, sni2);
		free(more);
		if (r2 != r || (r == 0 && strcmp(sni, sni2) != 0))
			abort();
	}
	return 0;
}
