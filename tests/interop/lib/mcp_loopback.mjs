// Preloaded (node --import) into @modelcontextprotocol/server-everything so its
// Streamable HTTP entry point, which listens on every interface, binds 127.0.0.1 only:
// interop tests stay on loopback. Owner: tests/interop/mcp_connector.test.mjs.
import http from 'node:http';

const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    const cb = args.find((a) => typeof a === 'function');
    return listen.call(this, Number(args[0]), '127.0.0.1', cb);
  }
  return listen.apply(this, args);
};
