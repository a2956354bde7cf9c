// tunnel.test.mjs again with inner TLS on: the MCP SDK client, both ingress forms, SSE
// progress, the conformance suite (same results direct and through the tunnel) and the
// inspector CLI, each exchange a TLS session from the server to the gateway.
process.env.AIRLOCK_TUNNEL_INNER_TLS = '1';
await import('./tunnel.test.mjs');
