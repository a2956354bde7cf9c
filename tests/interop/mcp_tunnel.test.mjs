// An agent session whose scripted model (`airlock mock-model`) calls an MCP tool THROUGH
// an airlock tunnel: the agent's mcp_servers url is the tunnel URL
// (https://everything.<label>.<tunnel_domain>/mcp), `airlock gateway` relays to a small
// loopback proxy that demands a bearer token and records every request, and the proxy
// forwards to @modelcontextprotocol/server-everything. The token comes from a vault
// static_bearer credential. Faults: the gateway killed mid-call, the server restarted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';
import { makeEdgeCert } from './lib/edge_cert.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { collect, freePort, allEvents, types } from './lib/events.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.AIRLOCK_BIN;
const TOKEN = `tok_${randomBytes(24).toString('hex')}`;
const SERVER_ENV = { AIRLOCK_MODEL_API_KEY: 'mock-model-key', AIRLOCK_MODEL_RETRY_BASE_MS: '10' };

let tmp, everything, proxy, edgePort, srvEnv;


// Spawns a process and resolves once its stderr matches re; log() has all of stderr.
function spawnReady(cmd, args, opts, re, what) {
  const proc = spawn(cmd, args, { ...opts, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.log = () => log;
  proc.stderr.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready: ${log}`)), 30000);
    proc.stderr.on('data', (d) => {
      log += d;
      if (re.test(log)) {
        clearTimeout(timer);
        resolve(proc);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited ${code}: ${log}`));
    });
  });
}

async function stopProc(p, sig = 'SIGTERM') {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((resolve) => p.once('exit', resolve));
  p.kill(sig);
  await done;
}

const count = (s, re) => (s.match(re) ?? []).length;

async function until(cond, what, ms = 30000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// The upstream's front door: records method, JSON-RPC body and headers of every request,
// refuses anything without the vault's bearer token (401), and tells the test when a
// tools/call arrives (onCall) so it can break things mid-call.
async function startProxy(upstreamPort) {
  const p = { seen: [], onCall: null };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let msg = null;
      try {
        msg = body.length ? JSON.parse(body.toString('utf8')) : null;
      } catch {
        msg = null;
      }
      p.seen.push({ method: req.method, url: req.url, msg, headers: { ...req.headers } });
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        const body401 = '{"error":"invalid_token"}';
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="mcp"', 'content-type': 'application/json',
          'content-length': body401.length });
        res.end(body401);
        return;
      }
      const headers = { ...req.headers, host: `127.0.0.1:${upstreamPort}` };
      const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy());
      up.end(body);
      if (msg?.method === 'tools/call' && p.onCall) p.onCall(msg);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  p.server = server;
  p.port = server.address().port;
  p.rpc = (method) => p.seen.filter((s) => s.msg?.method === method);
  return p;
}

// Collects a session's stream in the background; waitFor() resolves with the first
// collected event (from index `from`) matching pred.

const isIdle = (reason) => (e) => e.type === 'session.status_idle' && e.stop_reason?.type === reason;
const say = (client, sid, text) =>
  client.beta.sessions.events.send(sid, { events: [{ type: 'user.message', content: [{ type: 'text', text }] }] });
const echoCall = (message) => ({ content: [{ type: 'tool_use', name: 'mcp__everything__echo', input: { message } }] });


// One stack per test: a server with the tunnel edge on a fixed port (so a restarted
// server is found again by the same gateway), a tunnel, a gateway, an agent whose MCP
// server is the tunnel URL, and a session with a vault holding the upstream's token.
async function stack(t, script) {
  const mock = await startMockModel(script);
  t.after(() => mock.stop());
  const dataDir = mkdtempSync(path.join(tmp, 'data-'));
  // A fixed API key: the restarted server must accept the same one.
  const env = { ...SERVER_ENV, ...srvEnv, AIRLOCK_MODEL_BASE_URL: mock.url,
    AIRLOCK_API_KEY: `test_${randomBytes(16).toString('hex')}` };
  const st = { mock, dataDir, env };
  st.server = await startServer({ env, dataDir });
  st.apiKey = st.server.apiKey;
  t.after(() => st.server.stop());
  st.client = new Anthropic({ baseURL: st.server.baseURL, apiKey: st.apiKey, maxRetries: 0 });
  const tr = await fetch(`${st.server.baseURL}/v1/tunnels`, {
    method: 'POST',
    headers: { 'x-api-key': st.apiKey, 'content-type': 'application/json' },
    body: '{"display_name":"agent tunnel"}',
  });
  assert.equal(tr.status, 200);
  st.tunnel = await tr.json();
  const tok = await fetch(`${st.server.baseURL}/v1/tunnels/${st.tunnel.id}/reveal_token`, {
    method: 'POST',
    headers: { 'x-api-key': st.apiKey },
  });
  const tokFile = path.join(dataDir, 'tunnel.token');
  writeFileSync(tokFile, (await tok.json()).tunnel_token, { mode: 0o600 });
  st.gwConfig = path.join(dataDir, 'gw.yaml');
  writeFileSync(st.gwConfig, [
    `server: 127.0.0.1:${edgePort}`,
    'server_name: localhost',
    `server_ca_file: ${path.join(tmp, 'ca.pem')}`,
    `token_file: ${tokFile}`,
    `tunnel_domain: ${st.tunnel.domain}`,
    'routes:',
    `  everything: http://127.0.0.1:${proxy.port}`,
    'upstream:',
    '  allowed_ips: [127.0.0.0/8]',
    '',
  ].join('\n'));
  st.gwLogs = [];
  st.startGateway = async () => {
    st.gateway = await spawnReady(BIN, ['gateway', '--config', st.gwConfig], {},
      /(Registered tunnel connection[^\n]*\n[^]*){4}/, 'gateway');
    st.gwLogs.push(st.gateway.log);
  };
  await st.startGateway();
  t.after(() => stopProc(st.gateway, 'SIGKILL'));

  st.mcpUrl = `https://everything.${st.tunnel.domain}/mcp`;
  const agent = await st.client.beta.agents.create({
    name: 'tunnel-agent',
    model: 'claude-test-model',
    tools: [{ type: 'mcp_toolset', mcp_server_name: 'everything', default_config: { permission_policy: { type: 'always_allow' } } }],
    mcp_servers: [{ type: 'url', name: 'everything', url: st.mcpUrl }],
  });
  const environment = await st.client.beta.environments.create({ name: 'e', config: { type: 'self_hosted' } });
  const vault = await st.client.beta.vaults.create({ display_name: 'tunnel upstream' });
  await st.client.beta.vaults.credentials.create(vault.id, {
    auth: { type: 'static_bearer', mcp_server_url: st.mcpUrl, token: TOKEN },
  });
  st.session = await st.client.beta.sessions.create({ agent: agent.id, environment_id: environment.id, vault_ids: [vault.id] });
  st.s = collect(await st.client.beta.sessions.events.stream(st.session.id));
  t.after(() => st.s.close());
  // Everything that must never hold the token.
  st.leakCheck = async () => {
    const seen = JSON.stringify([await allEvents(st.client, st.session.id), st.s.events, await mock.requests()]);
    assert.ok(!seen.includes(TOKEN) && !seen.includes(TOKEN.slice(4, 24)), 'token in events or model requests');
    assert.ok(!st.server.log().includes(TOKEN.slice(4, 24)), 'token in the server log');
    for (const log of st.gwLogs) assert.ok(!log().includes(TOKEN.slice(4, 24)), 'token in the gateway log');
  };
  return st;
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'airlock-mcptun-'));
  makeEdgeCert(tmp, 'interop CA');

  const upPort = await freePort();
  everything = await spawnReady(process.execPath,
    ['--import', path.join(HERE, 'lib/mcp_loopback.mjs'),
      path.join(HERE, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'), 'streamableHttp'],
    { env: { ...process.env, PORT: String(upPort) } }, /listening on port/, 'server-everything');
  proxy = await startProxy(upPort);
  edgePort = await freePort();
  srvEnv = {
    AIRLOCK_TUNNEL_LISTEN: `127.0.0.1:${edgePort}`,
    AIRLOCK_TUNNEL_TLS_CERT: path.join(tmp, 'edge.pem'),
    AIRLOCK_TUNNEL_TLS_KEY: path.join(tmp, 'edge.key'),
    AIRLOCK_TUNNEL_DOMAIN: 'tunnel.test',
  };
});

after(async () => {
  await stopProc(everything, 'SIGKILL');
  if (proxy) {
    proxy.server.closeAllConnections();
    proxy.server.close();
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('an agent calls an MCP tool through the tunnel with a vault bearer token, event by event', async (t) => {
  const st = await stack(t, [
    echoCall('hi through the tunnel'),
    { match: 'Echo: hi through the tunnel', content: [{ type: 'text', text: 'It echoed.' }] },
  ]);
  const { client, session, s, mock } = st;
  const seen0 = proxy.seen.length;
  await say(client, session.id, 'use the echo tool');
  await s.waitFor(isIdle('end_turn'), 0, 'end of turn');

  assert.deepEqual(types(s.events), [
    'user.message',
    'session.status_running',
    'span.model_request_start',
    'agent.mcp_tool_use',
    'span.model_request_end',
    'session.usage',
    'agent.mcp_tool_result',
    'span.model_request_start',
    'agent.message',
    'span.model_request_end',
    'session.usage',
    'session.status_idle',
  ]);
  const use = s.events.find((e) => e.type === 'agent.mcp_tool_use');
  assert.equal(use.name, 'echo');
  assert.equal(use.mcp_server_name, 'everything');
  assert.deepEqual(use.input, { message: 'hi through the tunnel' });
  assert.equal(use.evaluated_permission, 'allow');
  const res = s.events.find((e) => e.type === 'agent.mcp_tool_result');
  assert.equal(res.mcp_tool_use_id, use.id);
  assert.equal(res.is_error, false);
  assert.deepEqual(res.content, [{ type: 'text', text: 'Echo: hi through the tunnel' }]);
  assert.equal(s.events.find((e) => e.type === 'agent.message').content[0].text, 'It echoed.');
  assert.ok(!types(s.events).includes('session.error'));

  // The model was offered the tunnel server's tools and saw the result with its call.
  const reqs = await mock.requests();
  assert.equal(reqs.length, 2);
  assert.ok(reqs[0].body.tools.some((x) => x.name === 'mcp__everything__echo'));
  const last = reqs[1].body.messages.at(-1);
  assert.equal(last.content[0].type, 'tool_result');
  assert.equal(last.content[0].tool_use_id, use.id);
  assert.deepEqual(last.content[0].content, [{ type: 'text', text: 'Echo: hi through the tunnel' }]);

  // The wire behind the gateway: the full MCP exchange arrived, every request with the
  // vault's token (the proxy refuses others with 401), none with the airlock key, and the
  // upstream saw the gateway's plain-HTTP hop (no tunnel host leaks into the path).
  const mine = proxy.seen.slice(seen0);
  assert.deepEqual(mine.slice(0, 2).map((r) => r.msg?.method), ['initialize', 'notifications/initialized']);
  assert.equal(mine.filter((r) => r.msg?.method === 'tools/list').length, 1);
  const calls = mine.filter((r) => r.msg?.method === 'tools/call');
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].msg.params, { name: 'echo', arguments: { message: 'hi through the tunnel' } });
  for (const r of mine) {
    assert.equal(r.headers.authorization, `Bearer ${TOKEN}`, `${r.msg?.method} carries the vault token`);
    assert.equal(r.headers['x-api-key'], undefined);
    assert.ok(!JSON.stringify(r.headers).includes(st.apiKey), 'airlock key reached the upstream');
  }
  for (const r of mine.slice(1)) assert.ok(r.headers['mcp-session-id'], 'session id through the tunnel');
  await st.leakCheck();
});

test('gateway killed mid-call: error result and mcp_connection_failed_error, the session goes on; after a server restart the gateway reconnects and calls work again', async (t) => {
  const st = await stack(t, [
    { match: 'warm up', content: [{ type: 'text', text: 'ready' }] },
    { match: 'slow one', content: [{ type: 'tool_use', name: 'mcp__everything__trigger-long-running-operation', input: { duration: 30, steps: 3 } }] },
    { match: "MCP server 'everything' failed", content: [{ type: 'text', text: 'the tunnel broke' }] },
    { match: 'still there', content: [{ type: 'text', text: 'yes' }] },
    { match: 'after restart', ...echoCall('back again') },
    { match: 'Echo: back again', content: [{ type: 'text', text: 'works again' }] },
  ]);
  const { client, session, s } = st;
  await say(client, session.id, 'warm up');
  await s.waitFor(isIdle('end_turn'), 0, 'first turn (tools listed)');

  // Kill -9 the gateway as soon as the slow call reaches the upstream.
  let killed = null;
  proxy.onCall = (msg) => {
    if (msg.params?.name !== 'trigger-long-running-operation' || killed) return;
    killed = Date.now();
    st.gateway.kill('SIGKILL');
  };
  t.after(() => { proxy.onCall = null; });
  let n = s.events.length;
  await say(client, session.id, 'slow one');
  await s.waitFor(isIdle('end_turn'), n, 'turn with the broken call');
  assert.ok(killed, 'the call reached the upstream before the kill');
  const tail = s.events.slice(n);
  assert.deepEqual(
    types(tail).filter((x) => x.startsWith('agent.') || x === 'session.error'),
    ['agent.mcp_tool_use', 'session.error', 'agent.mcp_tool_result', 'agent.message'],
  );
  const err = tail.find((e) => e.type === 'session.error');
  assert.equal(err.error.type, 'mcp_connection_failed_error');
  assert.equal(err.error.mcp_server_name, 'everything');
  assert.equal(err.error.retry_status.type, 'exhausted');
  const res = tail.find((e) => e.type === 'agent.mcp_tool_result');
  assert.equal(res.is_error, true);
  assert.match(res.content[0].text, /MCP server 'everything' failed/);
  assert.equal(tail.find((e) => e.type === 'agent.message').content[0].text, 'the tunnel broke');

  // The session is still usable while the gateway is down (no MCP call in this turn).
  n = s.events.length;
  await say(client, session.id, 'still there');
  await s.waitFor(isIdle('end_turn'), n, 'turn without the gateway');
  assert.equal(s.events.slice(n).find((e) => e.type === 'agent.message').content[0].text, 'yes');

  // The gateway comes back (its supervisor restarts it), then the server is killed -9
  // and restarted under it: the gateway redials by itself (1, 2, 4 s … backoff) and the
  // session's next MCP call works with no operator action.
  await st.startGateway();
  s.close();
  await stopProc(st.server.proc, 'SIGKILL');
  st.server = await startServer({ env: st.env, dataDir: st.dataDir, args: [] });
  const gwLog = st.gateway.log;
  const before = count(gwLog(), /Registered tunnel connection/g);
  await until(() => count(st.server.log(), /registered tunnel connection/g) >= 1, 'the gateway to redial the restarted server');
  await until(() => count(gwLog(), /Registered tunnel connection/g) >= before + 4, 'all four connections back');
  const client2 = new Anthropic({ baseURL: st.server.baseURL, apiKey: st.apiKey, maxRetries: 0 });
  const s2 = collect(await client2.beta.sessions.events.stream(session.id));
  t.after(() => s2.close());
  const seen0 = proxy.seen.length;
  await say(client2, session.id, 'after restart');
  await s2.waitFor(isIdle('end_turn'), 0, 'turn after the restart');
  const res2 = s2.events.find((e) => e.type === 'agent.mcp_tool_result');
  assert.ok(res2, `a tool result after the restart: ${types(s2.events).join(', ')}`);
  assert.equal(res2.is_error, false);
  assert.deepEqual(res2.content, [{ type: 'text', text: 'Echo: back again' }]);
  assert.ok(!types(s2.events).includes('session.error'));
  assert.equal(s2.events.find((e) => e.type === 'agent.message').content[0].text, 'works again');
  const after = proxy.seen.slice(seen0);
  assert.ok(after.some((r) => r.msg?.method === 'tools/call'), 'the call reached the upstream');
  for (const r of after) assert.equal(r.headers.authorization, `Bearer ${TOKEN}`);
  st.client = client2;
  st.s = s2;
  await st.leakCheck();
});

// Raw HTTP/1.1 to the API port so the exact request target reaches the server (fetch
// would normalise it) and the connection header of the answer is visible.
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
function rawRequest(port, method, target, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent: keepAlive }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('path-form ingress forwards any upstream path, raw, and keeps small answers keep-alive', async (t) => {
  const st = await stack(t, [{ content: [{ type: 'text', text: 'unused' }] }]);
  const port = new URL(st.server.baseURL).port;
  const base = `/v1/tunnels/${st.tunnel.id}/routes/everything`;
  const auth = { 'x-api-key': st.apiKey, authorization: `Bearer ${TOKEN}` };
  const seen = () => proxy.seen.at(-1);
  const cases = [
    ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource/mcp'],
    ['/deep/a%2Fb/c%3Fd?e=f&g=%2F', '/deep/a%2Fb/c%3Fd?e=f&g=%2F'],
    ['/mcp?x=1', '/mcp?x=1'],
  ];
  for (const [suffix, upstreamPath] of cases) {
    const n = proxy.seen.length;
    const r = await rawRequest(port, 'GET', base + suffix, auth);
    assert.equal(proxy.seen.length, n + 1, `${suffix} reached the upstream`);
    assert.equal(proxy.seen.at(-1).url, upstreamPath);
    assert.notEqual(r.status, 401, 'the upstream bearer token passes through');
  }
  // The MCP endpoint itself still works through the path form (JSON-RPC over POST).
  const init = await rawRequest(port, 'POST', `${base}/mcp`, {
    ...auth, 'content-type': 'application/json', accept: 'application/json, text/event-stream',
  }, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
    protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }));
  assert.equal(init.status, 200);
  assert.match(init.data, /"serverInfo"/);
  assert.equal(seen().msg.method, 'initialize');
  // A small answer with a length (here the proxy's 401 JSON) keeps the connection open;
  // the upstream's body and status arrive unchanged.
  const denied = await rawRequest(port, 'POST', `${base}/mcp`, { 'x-api-key': st.apiKey, 'content-type': 'application/json' }, '{}');
  assert.equal(denied.status, 401);
  assert.equal(denied.data, '{"error":"invalid_token"}');
  assert.equal(denied.headers['content-length'], String(denied.data.length));
  assert.equal(denied.headers.connection, 'keep-alive');
  assert.equal(denied.headers['www-authenticate'], 'Bearer realm="mcp"');
  assert.match(denied.headers['request-id'], /^req_/);
  // Bodies pass through unparsed: a JSON-RPC batch (an array) and a non-JSON body reach
  // the upstream as sent (the server once parsed them and refused both with 400).
  const batch = await rawRequest(port, 'POST', `${base}/mcp`, { 'x-api-key': st.apiKey, 'content-type': 'application/json' },
    '[{"jsonrpc":"2.0","id":1,"method":"ping"}]');
  assert.equal(batch.status, 401);
  assert.deepEqual(seen().msg, [{ jsonrpc: '2.0', id: 1, method: 'ping' }]);
  const before = proxy.seen.length;
  const text = await rawRequest(port, 'POST', `${base}/upload`, { 'x-api-key': st.apiKey, 'content-type': 'text/plain' }, 'not json {');
  assert.equal(text.status, 401);
  assert.equal(proxy.seen.length, before + 1);
  assert.equal(seen().url, '/upload');
  // No path after the route, or an encoded route name: refused by the server itself.
  const n = proxy.seen.length;
  assert.equal((await rawRequest(port, 'GET', `${base}/`, auth)).status, 404);
  assert.equal((await rawRequest(port, 'GET', `/v1/tunnels/${st.tunnel.id}/routes/every%74hing/mcp`, auth)).status, 400);
  assert.equal(proxy.seen.length, n, 'nothing reached the upstream');
  keepAlive.destroy();
});
