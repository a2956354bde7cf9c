/* libFuzzer target: the tunnel CA certificate check (src/server/tunnel/tunnel_cert.c) on
 * whatever an API caller uploads as ca_certificate_pem. Accepted input must have a
 * 64-hex fingerprint; refused input a message. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "tunnel_cert.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tunnel_cert_info info;
	char err[256] = "";
	/* a fixed clock: the corpus's certificates stay valid, or expired, for good */
	int r = tunnel_cert_check((const char *)data, size, 1800000000, &info, err, sizeof(err));
	if (r == 0 && strlen(info.fingerprint) != 64)
		__builtin_trap();
	if (r != 0 && (r != AL_E_INVAL || err[0] == '\0'))
		__builtin_trap();
	return 0;
}
