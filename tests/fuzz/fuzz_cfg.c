/* Fuzzes the YAML config loader (lib/cfg.c) and its typed getters. */
#include <stdint.h>
#include <stdlib.h>

#include "cfg.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg c;
	if (cfg_parse(&c, "fuzz.yaml", (const char *)data, size) == 0) {
		char *s = NULL;
		uint64_t u = 0;
		bool b = false;
		const json_t *m = NULL;
		static const char *const keys[] = {"listen", "tls", "log", NULL};
		cfg_get_str(&c, c.root, "listen", &s);
		cfg_get_uint(&c, c.root, "lease_ttl_seconds", 1, 600, &u);
		cfg_get_bool(&c, c.root, "enabled", &b);
		if (cfg_get_map(&c, c.root, "tls", &m) == 0 && m)
			cfg_get_str(&c, m, "cert_file", &s);
		cfg_only_keys(&c, c.root, keys);
		free(s);
	}
	cfg_free(&c);
	return 0;
}
