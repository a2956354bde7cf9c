// A small MCP server on loopback built with the official MCP SDK (stateless Streamable
// HTTP, JSON answers): one tool, `balance`, answering "balance: 42". gate(req) may refuse
// a request before the SDK sees it (return false after answering it); every request that
// reaches the SDK is recorded in `seen` with its headers. Shared by the agent identity
// tests.
import http from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ListToolsRequestSchema, CallToolRequestSchema } from '@modelcontextprotocol/sdk/types.js';

export async function startLedger({ gate } = {}) {
  const seen = [];
  const server = http.createServer(async (req, res) => {
    if (gate && !(await gate(req, res))) return;
    seen.push({ method: req.method, headers: { ...req.headers } });
    const s = new Server({ name: 'ledger', version: '1.0.0' }, { capabilities: { tools: {} } });
    s.setRequestHandler(ListToolsRequestSchema, async () => ({
      tools: [{ name: 'balance', description: 'account balance', inputSchema: { type: 'object', properties: {} } }],
    }));
    s.setRequestHandler(CallToolRequestSchema, async () => ({ content: [{ type: 'text', text: 'balance: 42' }] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await s.connect(transport);
    res.on('close', () => { transport.close(); s.close(); });
    transport.handleRequest(req, res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    stop: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}
