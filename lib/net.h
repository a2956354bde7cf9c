/* Listening sockets from "host:port" strings, shared by every listener we own (API,
 * tunnel edge, ingress, metrics). */
#ifndef AL_NET_H
#define AL_NET_H

#include <stdbool.h>

/* Binds and listens on "127.0.0.1:8400", "[::1]:0", "0.0.0.0:443" or ":8400" (all
 * addresses); non-blocking, close-on-exec, SO_REUSEADDR. *port receives the bound port
 * (useful with port 0). Returns 0, AL_E_INVAL for a malformed address, or -errno. */
int net_listen_tcp(const char *addr, int *fd, int *port);
/* Whether addr has the form net_listen_tcp takes (host:port, port 0..65535), without
 * resolving the host: configuration loaders check it where they can say file:line. */
bool net_addr_valid(const char *addr);
/* Whether a "host:port" listen address is loopback-only (127.x, [::1], localhost): the
 * listeners that refuse plain HTTP or non-local peers elsewhere ask this. */
bool net_addr_is_loopback(const char *addr);

#endif
