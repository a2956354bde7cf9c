/* libFuzzer target: the tunnel HELLO/READY handshake parser shared by the edge and the
 * gateway. The first byte picks the message kind; a parsed message must re-serialize
 * and parse back to the same fields. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "fuzz.h"
#include "tunnel_proto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tunnel_msg m, m2;
	struct buf b;
	if (size < 1)
		return 0;
	bool reply = data[0] & 1;
	int n = tunnel_msg_parse((const char *)data + 1, size - 1, reply, &m);
	if (n < 0 || n == 0)
		return 0;
	if ((size_t)n > size - 1)
		__builtin_trap();
	buf_init(&b, 16384);
	if (tunnel_msg_write(&m, reply, &b) == 0) {
		int n2 = tunnel_msg_parse(b.data, b.len, reply, &m2);
		if (n2 <= 0 || m2.nf != m.nf || m2.status != m.status)
			__builtin_trap();
		for (size_t i = 0; i < m.nf; i++)
			if (strcmp(m.f[i].name, m2.f[i].name) != 0 ||
			    strcmp(m.f[i].value, m2.f[i].value) != 0)
				__builtin_trap();
	}
	buf_free(&b);
	return 0;
}
