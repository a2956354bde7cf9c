/* `airlock gateway`: the outbound-only MCP tunnel connector. It dials the server's tunnel
 * edge (TLS 1.3, tunnel token), keeps N connections, serves each HTTP/2 stream the edge
 * opens by relaying it to the routed upstream MCP server. See docs/gateway/overview.md. */
#ifndef AL_GATEWAY_H
#define AL_GATEWAY_H

int gateway_main(int argc, char **argv);

#endif
