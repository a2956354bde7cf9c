/* The console's files, built into the binary by tools/embed_assets.py (meson runs it
 * over src/server/console/assets/), so a server on a closed network serves them. */
#ifndef AL_SERVER_CONSOLE_ASSETS_H
#define AL_SERVER_CONSOLE_ASSETS_H

#include <stddef.h>

struct console_asset {
	const char *name; /* base name: "index.html", "app.js" */
	const unsigned char *data;
	size_t len;
};

extern const struct console_asset console_assets[];
extern const size_t console_assets_count;

#endif
