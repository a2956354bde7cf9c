// The agent loop's MCP connector against the official MCP reference server
// (@modelcontextprotocol/server-everything in Streamable HTTP mode), driven by the
// official SDK, with `airlock mock-model` (a scripted stand-in for a model provider)
// choosing the tool calls. A small loopback proxy sits in front of the MCP server to
// see every JSON-RPC message, to require a bearer token, and to inject failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ListToolsRequestSchema, CallToolRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { collect, freePort, allEvents, types } from './lib/events.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER_ENV = { AIRLOCK_MODEL_API_KEY: 'mock-model-key', AIRLOCK_MODEL_RETRY_BASE_MS: '10' };


// The reference server's own Streamable HTTP entry point (dist/transports/
// streamableHttp.js, PORT from the environment), bound to loopback by lib/mcp_loopback.mjs.
async function startEverything(t) {
  const port = await freePort();
  const entry = path.join(HERE, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
  const proc = spawn(process.execPath, ['--import', path.join(HERE, 'lib/mcp_loopback.mjs'), entry, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server-everything did not start: ${log}`)), 30000);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      log += d;
      if (/listening on port/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything exited ${code}: ${log}`));
    });
  });
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const done = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGKILL');
      await done;
    }
  });
  return { url: `http://127.0.0.1:${port}/mcp`, port };
}

// A loopback reverse proxy to the MCP server that records each request (method,
// JSON-RPC body, headers), can demand a bearer token, and can fail on demand.
async function startProxy(t, upstreamPort, { token } = {}) {
  const p = { seen: [], down: false, expireNext: false };
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
      p.seen.push({ method: req.method, msg, headers: { ...req.headers } });
      if (p.down) {
        req.socket.destroy();
        return;
      }
      if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="mcp"', 'content-type': 'application/json' });
        res.end('{"error":"invalid_token"}');
        return;
      }
      if (p.expireNext && req.headers['mcp-session-id']) {
        // What a server does after it forgot the MCP session (2025-11-25: 404).
        p.expireNext = false;
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}');
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
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(resolve);
  }));
  p.url = `http://127.0.0.1:${server.address().port}/mcp`;
  p.rpc = (method) => p.seen.filter((s) => s.msg?.method === method);
  return p;
}

// Collects a session's stream in the background; waitFor() resolves with the first
// collected event (from index `from`) matching pred.

const isIdle = (reason) => (e) => e.type === 'session.status_idle' && e.stop_reason?.type === reason;
const say = (client, sid, text) =>
  client.beta.sessions.events.send(sid, { events: [{ type: 'user.message', content: [{ type: 'text', text }] }] });

async function setup(t, script, { mcpUrl, policy, vault, serverName = 'everything' } = {}) {
  const mock = await startMockModel(script);
  t.after(() => mock.stop());
  const server = await startServer({ env: { ...SERVER_ENV, AIRLOCK_MODEL_BASE_URL: mock.url } });
  t.after(() => server.stop());
  const client = new Anthropic({ baseURL: server.baseURL, apiKey: server.apiKey, maxRetries: 0 });
  const toolset = { type: 'mcp_toolset', mcp_server_name: serverName };
  if (policy) toolset.default_config = { permission_policy: { type: policy } };
  const agent = await client.beta.agents.create({
    name: 'mcp-test',
    model: 'claude-test-model',
    tools: [toolset],
    mcp_servers: [{ type: 'url', name: serverName, url: mcpUrl }],
  });
  const env = await client.beta.environments.create({ name: 'e', config: { type: 'self_hosted' } });
  const params = { agent: agent.id, environment_id: env.id };
  if (vault) params.vault_ids = [await vault(client)];
  const session = await client.beta.sessions.create(params);
  const stream = collect(await client.beta.sessions.events.stream(session.id));
  t.after(() => stream.close());
  return { mock, server, client, agent, env, session, s: stream };
}

// The server's /metrics text (docs/server/metrics.md), for the MCP call counters.
const metricsText = async (server) =>
  (await fetch(`${server.baseURL}/metrics`, { headers: { 'x-api-key': server.apiKey } })).text();

const echoCall = (message) => ({ content: [{ type: 'tool_use', name: 'mcp__everything__echo', input: { message } }] });


test('an always_allow MCP tool: listed, offered, called through Streamable HTTP, result to the model', async (t) => {
  const ev = await startEverything(t);
  const proxy = await startProxy(t, ev.port);
  const { mock, server, client, session, s } = await setup(
    t,
    [echoCall('hi from the model'), { match: 'Echo: hi from the model', content: [{ type: 'text', text: 'It echoed.' }] }],
    { mcpUrl: proxy.url, policy: 'always_allow' },
  );
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
  assert.deepEqual(use.input, { message: 'hi from the model' });
  assert.equal(use.evaluated_permission, 'allow');
  assert.deepEqual(use.evaluation, { type: 'always_allow' });
  assert.match(use.id, /^sevt_/);
  const res = s.events.find((e) => e.type === 'agent.mcp_tool_result');
  assert.equal(res.mcp_tool_use_id, use.id);
  assert.equal(res.is_error, false);
  assert.deepEqual(res.content, [{ type: 'text', text: 'Echo: hi from the model' }]);
  const metrics = await metricsText(server);
  assert.match(metrics, /^airlock_mcp_calls_total\{outcome="ok"\} 1$/m);
  assert.match(metrics, /^airlock_mcp_call_duration_seconds_count 1$/m);
  assert.match(metrics, /^airlock_model_requests_total\{outcome="ok"\} 2$/m);

  // The model was offered the server's tools under namespaced names, with the
  // server's own descriptions and schemas, and saw the result paired with its call.
  const reqs = await mock.requests();
  assert.equal(reqs.length, 2);
  const offered = reqs[0].body.tools;
  const echo = offered.find((x) => x.name === 'mcp__everything__echo');
  assert.ok(echo, `echo offered: ${offered.map((x) => x.name).join(', ')}`);
  assert.equal(echo.description, 'Echoes back the input string');
  assert.equal(echo.input_schema.type, 'object');
  assert.equal(echo.input_schema.properties.message.type, 'string');
  assert.ok(offered.every((x) => /^mcp__everything__[A-Za-z0-9_-]+$/.test(x.name)));
  const msgs = reqs[1].body.messages;
  const asst = msgs[msgs.length - 2];
  const user = msgs[msgs.length - 1];
  assert.deepEqual(asst.content.find((b) => b.type === 'tool_use'), {
    type: 'tool_use',
    id: use.id,
    name: 'mcp__everything__echo',
    input: { message: 'hi from the model' },
  });
  assert.equal(user.content[0].type, 'tool_result');
  assert.equal(user.content[0].tool_use_id, use.id);
  assert.deepEqual(user.content[0].content, [{ type: 'text', text: 'Echo: hi from the model' }]);

  // The wire: initialize with our protocol version, then the session id and the
  // protocol version header on every later request, notifications/initialized first.
  const init = proxy.rpc('initialize');
  assert.equal(init.length, 1);
  assert.equal(init[0].msg.params.protocolVersion, '2025-11-25');
  assert.equal(init[0].msg.params.clientInfo.name, 'airlock');
  assert.match(init[0].headers.accept, /application\/json/);
  assert.match(init[0].headers.accept, /text\/event-stream/);
  const later = proxy.seen.slice(proxy.seen.indexOf(init[0]) + 1);
  assert.equal(later[0].msg.method, 'notifications/initialized');
  assert.ok(later.length >= 3);
  for (const r of later) {
    assert.ok(r.headers['mcp-session-id'], `${r.msg?.method} carries mcp-session-id`);
    assert.equal(r.headers['mcp-protocol-version'], '2025-11-25');
  }
  assert.equal(proxy.rpc('tools/list').length, 1);
  const calls = proxy.rpc('tools/call');
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].msg.params, { name: 'echo', arguments: { message: 'hi from the model' } });
});

test('always_ask (the MCP default): confirm runs the tool, deny records an error result and runs nothing', async (t) => {
  const ev = await startEverything(t);
  const proxy = await startProxy(t, ev.port);
  const { client, session, s, agent } = await setup(
    t,
    [
      { match: 'first', ...echoCall('allowed') },
      { match: 'Echo: allowed', content: [{ type: 'text', text: 'done one' }] },
      { match: 'second', ...echoCall('denied') },
      { match: 'denied permission', content: [{ type: 'text', text: 'done two' }] },
    ],
    { mcpUrl: proxy.url },
  );
  assert.deepEqual(agent.tools[0].default_config.permission_policy, { type: 'always_ask' });

  await say(client, session.id, 'first');
  const idle = await s.waitFor(isIdle('requires_action'), 0, 'requires_action');
  const use = s.events.find((e) => e.type === 'agent.mcp_tool_use');
  assert.equal(use.evaluated_permission, 'ask');
  assert.deepEqual(use.evaluation, { type: 'always_ask' });
  assert.deepEqual(idle.stop_reason.event_ids, [use.id]);
  assert.equal(proxy.rpc('tools/call').length, 0, 'nothing runs before the confirmation');
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.tool_confirmation', tool_use_id: use.id, result: 'allow' }],
  });
  const res = await s.waitFor((e) => e.type === 'agent.mcp_tool_result', 0, 'result');
  assert.equal(res.mcp_tool_use_id, use.id);
  assert.equal(res.is_error, false);
  assert.deepEqual(res.content, [{ type: 'text', text: 'Echo: allowed' }]);
  let n = s.events.length;
  await s.waitFor(isIdle('end_turn'), s.events.indexOf(res), 'end of the first turn');

  n = s.events.length;
  await say(client, session.id, 'second');
  await s.waitFor(isIdle('requires_action'), n, 'second requires_action');
  const use2 = s.events.slice(n).find((e) => e.type === 'agent.mcp_tool_use');
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.tool_confirmation', tool_use_id: use2.id, result: 'deny', deny_message: 'not now' }],
  });
  const res2 = await s.waitFor((e) => e.type === 'agent.mcp_tool_result' && e.mcp_tool_use_id === use2.id, n, 'denial');
  assert.equal(res2.is_error, true);
  assert.deepEqual(res2.content, [{ type: 'text', text: 'The user denied permission to use echo: not now' }]);
  await s.waitFor(isIdle('end_turn'), s.events.indexOf(res2), 'end of the second turn');
  assert.equal(proxy.rpc('tools/call').length, 1, 'the denied call never reached the server');
  assert.equal(proxy.rpc('initialize').length, 1, 'one MCP session for the whole airlock session');
});

test('an unreachable MCP server: session.error mcp_connection_failed_error, and the session goes on', async (t) => {
  const dead = await freePort();
  const { mock, client, session, s } = await setup(t, [{ content: [{ type: 'text', text: 'no tools today' }] }], {
    mcpUrl: `http://127.0.0.1:${dead}/mcp`,
    policy: 'always_allow',
  });
  await say(client, session.id, 'hello');
  await s.waitFor(isIdle('end_turn'), 0, 'end of turn');
  const err = s.events.find((e) => e.type === 'session.error');
  assert.equal(err.error.type, 'mcp_connection_failed_error');
  assert.equal(err.error.mcp_server_name, 'everything');
  assert.equal(err.error.retry_status.type, 'exhausted');
  assert.match(err.error.message, /cannot reach the MCP server/);
  assert.ok(types(s.events).includes('agent.message'));
  const reqs = await mock.requests();
  assert.equal(reqs.length, 1);
  assert.equal(reqs[0].body.tools, undefined, 'no MCP tools offered when listing failed');
});

test('a server that fails mid-session: the call gets an error result, session.error, the turn continues', async (t) => {
  const ev = await startEverything(t);
  const proxy = await startProxy(t, ev.port);
  const { server, client, session, s } = await setup(
    t,
    [
      { match: 'warm up', content: [{ type: 'text', text: 'ready' }] },
      { match: 'call it', ...echoCall('into the void') },
      { match: 'failed', content: [{ type: 'text', text: 'the tool is down' }] },
    ],
    { mcpUrl: proxy.url, policy: 'always_allow' },
  );
  await say(client, session.id, 'warm up');
  await s.waitFor(isIdle('end_turn'), 0, 'first turn');
  proxy.down = true;
  const n = s.events.length;
  await say(client, session.id, 'call it');
  await s.waitFor(isIdle('end_turn'), n, 'second turn');
  const tail = s.events.slice(n);
  assert.deepEqual(
    types(tail).filter((x) => x.startsWith('agent.') || x === 'session.error'),
    ['agent.mcp_tool_use', 'session.error', 'agent.mcp_tool_result', 'agent.message'],
  );
  const err = tail.find((e) => e.type === 'session.error');
  assert.equal(err.error.type, 'mcp_connection_failed_error');
  assert.equal(err.error.mcp_server_name, 'everything');
  const res = tail.find((e) => e.type === 'agent.mcp_tool_result');
  assert.equal(res.is_error, true);
  assert.match(res.content[0].text, /MCP server 'everything' failed/);
  const metrics = await metricsText(server);
  assert.match(metrics, /^airlock_mcp_calls_total\{outcome="connection"\} 1$/m);
  assert.match(metrics, /^airlock_mcp_calls_total\{outcome="ok"\} 0$/m);
});

test('a stale MCP session (404) is initialized again once and the call goes through', async (t) => {
  const ev = await startEverything(t);
  const proxy = await startProxy(t, ev.port);
  const { client, session, s } = await setup(
    t,
    [
      { match: 'one', ...echoCall('one') },
      { match: 'Echo: one', content: [{ type: 'text', text: 'ok one' }] },
      { match: 'two', ...echoCall('two') },
      { match: 'Echo: two', content: [{ type: 'text', text: 'ok two' }] },
    ],
    { mcpUrl: proxy.url, policy: 'always_allow' },
  );
  await say(client, session.id, 'one');
  await s.waitFor(isIdle('end_turn'), 0, 'first turn');
  proxy.expireNext = true;
  const n = s.events.length;
  await say(client, session.id, 'two');
  await s.waitFor(isIdle('end_turn'), n, 'second turn');
  const res = s.events.slice(n).find((e) => e.type === 'agent.mcp_tool_result');
  assert.equal(res.is_error, false);
  assert.deepEqual(res.content, [{ type: 'text', text: 'Echo: two' }]);
  assert.equal(proxy.rpc('initialize').length, 2);
  assert.ok(!types(s.events).includes('session.error'));
});

test('an interrupt cancels the MCP call in flight with notifications/cancelled', async (t) => {
  const ev = await startEverything(t);
  const proxy = await startProxy(t, ev.port);
  const { client, session, s } = await setup(
    t,
    [{ content: [{ type: 'tool_use', name: 'mcp__everything__trigger-long-running-operation', input: { duration: 30, steps: 3 } }] }],
    { mcpUrl: proxy.url, policy: 'always_allow' },
  );
  await say(client, session.id, 'take your time');
  const use = await s.waitFor((e) => e.type === 'agent.mcp_tool_use', 0, 'call');
  assert.equal(use.name, 'trigger-long-running-operation');
  // Wait until the call reached the server, then interrupt.
  for (let i = 0; i < 200 && proxy.rpc('tools/call').length === 0; i++) await new Promise((r) => setTimeout(r, 25));
  const call = proxy.rpc('tools/call')[0];
  assert.ok(call, 'the call reached the server');
  await client.beta.sessions.events.send(session.id, { events: [{ type: 'user.interrupt' }] });
  await s.waitFor(isIdle('end_turn'), 0, 'idle after the interrupt');
  for (let i = 0; i < 200 && proxy.rpc('notifications/cancelled').length === 0; i++) await new Promise((r) => setTimeout(r, 25));
  const cancel = proxy.rpc('notifications/cancelled');
  assert.equal(cancel.length, 1);
  assert.equal(cancel[0].msg.params.requestId, call.msg.id);
  assert.ok(!types(s.events).includes('agent.mcp_tool_result'), 'a cancelled call records no result');
});

test('a bearer-protected server: the vault credential is sent and never shows; without it, mcp_authentication_failed_error', async (t) => {
  const ev = await startEverything(t);
  const token = `tok_${randomBytes(24).toString('hex')}`;
  const proxy = await startProxy(t, ev.port, { token });
  const { mock, server, client, session, s, agent, env } = await setup(
    t,
    [
      { match: 'with the key', ...echoCall('authorized') },
      { match: 'Echo: authorized', content: [{ type: 'text', text: 'authorized ok' }] },
      { match: 'without a key', content: [{ type: 'text', text: 'no tools' }] },
    ],
    {
      mcpUrl: proxy.url,
      policy: 'always_allow',
      vault: async (c) => {
        const v = await c.beta.vaults.create({ display_name: 'mcp test' });
        await c.beta.vaults.credentials.create(v.id, { auth: { type: 'static_bearer', mcp_server_url: proxy.url, token } });
        return v.id;
      },
    },
  );
  await say(client, session.id, 'with the key');
  await s.waitFor(isIdle('end_turn'), 0, 'authorized turn');
  const res = s.events.find((e) => e.type === 'agent.mcp_tool_result');
  assert.equal(res.is_error, false);
  assert.deepEqual(res.content, [{ type: 'text', text: 'Echo: authorized' }]);
  assert.ok(proxy.seen.length >= 4);
  for (const r of proxy.seen) assert.equal(r.headers.authorization, `Bearer ${token}`);

  // The same agent in a session without the vault: refused, and said so.
  const bare = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const s2 = collect(await client.beta.sessions.events.stream(bare.id));
  t.after(() => s2.close());
  const before = proxy.seen.length;
  await say(client, bare.id, 'without a key');
  await s2.waitFor(isIdle('end_turn'), 0, 'unauthorized turn');
  const err = s2.events.find((e) => e.type === 'session.error');
  assert.equal(err.error.type, 'mcp_authentication_failed_error');
  assert.equal(err.error.mcp_server_name, 'everything');
  assert.match(err.error.message, /401/);
  assert.ok(proxy.seen.slice(before).every((r) => r.headers.authorization === undefined));
  assert.equal((await mock.requests()).at(-1).body.tools, undefined);

  // The token is in no event of either session, no model request, and no server log line.
  const everything = JSON.stringify([
    await allEvents(client, session.id),
    await allEvents(client, bare.id),
    s.events,
    s2.events,
    await mock.requests(),
  ]);
  assert.ok(!everything.includes(token), 'token leaked into events or model requests');
  assert.ok(!server.log().includes(token), 'token leaked into the server log');
  assert.ok(!everything.includes(token.slice(4, 20)));
});

// A server on the official MCP SDK's own Streamable HTTP transport in JSON-response
// mode (no SSE), whose tools/list pages two tools at a time.
async function startPagedServer(t) {
  const tools = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'].map((name) => ({
    name,
    description: `the ${name} tool`,
    inputSchema: { type: 'object', properties: { n: { type: 'number' } } },
  }));
  tools.push({ name: 'dotted.name', description: 'needs a sanitized model name', inputSchema: { type: 'object' } });
  const mcp = new Server({ name: 'paged', version: '1.0.0' }, { capabilities: { tools: {} } });
  const cursors = [];
  mcp.setRequestHandler(ListToolsRequestSchema, async (req) => {
    const cursor = req.params?.cursor;
    cursors.push(cursor ?? null);
    const start = cursor ? Number(cursor) : 0;
    const page = tools.slice(start, start + 2);
    return start + 2 < tools.length ? { tools: page, nextCursor: String(start + 2) } : { tools: page };
  });
  mcp.setRequestHandler(CallToolRequestSchema, async (req) => {
    if (req.params.name === 'epsilon') return { content: [{ type: 'text', text: 'epsilon failed' }], isError: true };
    return { content: [{ type: 'text', text: `${req.params.name}(${JSON.stringify(req.params.arguments)})` }] };
  });
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomBytes(8).toString('hex'), enableJsonResponse: true });
  await mcp.connect(transport);
  const contentTypes = [];
  const server = http.createServer((req, res) => {
    const writeHead = res.writeHead.bind(res);
    res.writeHead = (status, ...rest) => {
      const h = rest.find((x) => x && typeof x === 'object');
      contentTypes.push(String(res.getHeader('content-type') ?? h?.['content-type'] ?? h?.['Content-Type'] ?? ''));
      return writeHead(status, ...rest);
    };
    transport.handleRequest(req, res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await mcp.close();
  });
  return { url: `http://127.0.0.1:${server.address().port}/mcp`, cursors, contentTypes };
}

test('JSON replies, tools/list pagination, sanitized names and isError results (official MCP SDK server)', async (t) => {
  const paged = await startPagedServer(t);
  const { mock, client, session, s } = await setup(
    t,
    [
      {
        match: 'go',
        content: [
          { type: 'tool_use', name: 'mcp__paged__gamma', input: { n: 3 } },
          { type: 'tool_use', name: 'mcp__paged__epsilon', input: {} },
        ],
      },
      { match: 'epsilon failed', content: [{ type: 'text', text: 'done' }] },
    ],
    { mcpUrl: paged.url, policy: 'always_allow', serverName: 'paged' },
  );
  await say(client, session.id, 'go');
  await s.waitFor(isIdle('end_turn'), 0, 'end of turn');
  assert.deepEqual(paged.cursors, [null, '2', '4']);
  assert.ok(paged.contentTypes.some((c) => c.startsWith('application/json')));
  assert.ok(!paged.contentTypes.some((c) => c.startsWith('text/event-stream')), 'JSON-only server');

  const reqs = await mock.requests();
  const names = reqs[0].body.tools.map((x) => x.name);
  assert.deepEqual(names.slice(0, 5), ['mcp__paged__alpha', 'mcp__paged__beta', 'mcp__paged__gamma', 'mcp__paged__delta', 'mcp__paged__epsilon']);
  assert.equal(names.length, 6);
  assert.match(names[5], /^mcp__paged__dotted_name_[0-9a-f]{8}$/);

  const uses = s.events.filter((e) => e.type === 'agent.mcp_tool_use');
  assert.deepEqual(uses.map((u) => [u.name, u.mcp_server_name]), [['gamma', 'paged'], ['epsilon', 'paged']]);
  const results = s.events.filter((e) => e.type === 'agent.mcp_tool_result');
  assert.deepEqual(results.map((r) => r.mcp_tool_use_id), uses.map((u) => u.id), 'run one at a time, in order');
  assert.deepEqual(results[0].content, [{ type: 'text', text: 'gamma({"n":3})' }]);
  assert.equal(results[0].is_error, false);
  assert.deepEqual(results[1].content, [{ type: 'text', text: 'epsilon failed' }]);
  assert.equal(results[1].is_error, true);
  assert.ok(!types(s.events).includes('session.error'), 'a tool error is not a connection error');
  const last = reqs[1].body.messages.at(-1);
  assert.deepEqual(last.content.map((b) => [b.type, b.tool_use_id, b.is_error ?? false]), [
    ['tool_result', uses[0].id, false],
    ['tool_result', uses[1].id, true],
  ]);
});
