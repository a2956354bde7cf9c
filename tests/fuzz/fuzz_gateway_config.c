/* libFuzzer target: the gateway's YAML config loader and route lookup. Any input must
 * give either a config or a `name:line: message` error, never a crash or a leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "gateway_config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gateway_config c;
	char err[512];
	if (gateway_config_parse((const char *)data, size, "fuzz.yaml", &c, err, sizeof(err)) !=
	    0) {
		/* errors always carry the file name and a line */
		if (strncmp(err, "fuzz.yaml:", 10) != 0)
			__builtin_trap();
		return 0;
	}
	for (size_t i = 0; i < c.nroutes; i++)
		(void)gateway_config_route(&c, c.routes[i].name);
	(void)gateway_config_route(&c, "x.y.z:443");
	gateway_config_free(&c);
	return 0;
}
