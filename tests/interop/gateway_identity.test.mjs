// The identity layer behind the tunnel: `airlock gateway` inside the "private network"
// lets a request through to a route marked `agent_identity` only with the airlock
// server's agent identity token, for an allowed group. End to end: a real OpenID provider
// (npm oidc-provider), the official SDK, `airlock mock-model` (a scripted stand-in for a
// model provider), the server's tunnel edge, the gateway, and an MCP server from the
// official MCP SDK behind it. Auditors' sessions reach the tool; an intern's do not, and
// neither does a request without a token sent through the tunnel ingress.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';
import { makeEdgeCert } from './lib/edge_cert.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { startIdp } from './lib/oidc_idp.mjs';
import { collect, freePort } from './lib/events.mjs';
import { startLedger } from './lib/mcp_ledger.mjs';

const BIN = process.env.AIRLOCK_BIN;
let tmp, idp, mock, srv, gateway, upstream, admin, agent, env, tunnel;

function spawnReady(args, re, what) {
  const proc = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.log = () => log;
  proc.stderr.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready: ${log}`)), 30000);
    proc.stderr.on('data', (d) => {
      log += d;
      if (re.test(log)) { clearTimeout(timer); resolve(proc); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited ${code}: ${log}`)); });
  });
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'airlock-gwid-'));
  makeEdgeCert(tmp, 'interop CA');
  idp = await startIdp({ users: { alice: { groups: ['auditors'] }, bob: { groups: ['interns'] } } });
  mock = await startMockModel({
    loop: true,
    turns: [
      { match: 'check-ledger', content: [{ type: 'tool_use', name: 'mcp__ledger__balance', input: {} }] },
      { match: 'balance', content: [{ type: 'text', text: 'done' }] },
      { content: [{ type: 'text', text: 'done' }] },
    ],
  });
  upstream = await startLedger(); // the MCP server inside the private network: no auth of its own
  const [apiPort, edgePort] = [await freePort(), await freePort()];
  const issuer = `http://127.0.0.1:${apiPort}`;
  srv = await startServer({
    args: ['--listen', `127.0.0.1:${apiPort}`],
    env: {
      AIRLOCK_OIDC_ISSUER: idp.issuer, AIRLOCK_OIDC_AUDIENCE: 'airlock',
      AIRLOCK_AGENT_IDENTITY_ISSUER: issuer,
      AIRLOCK_MODEL_BASE_URL: mock.url, AIRLOCK_MODEL_API_KEY: 'mock-model-key',
      AIRLOCK_TUNNEL_LISTEN: `127.0.0.1:${edgePort}`,
      AIRLOCK_TUNNEL_TLS_CERT: path.join(tmp, 'edge.pem'),
      AIRLOCK_TUNNEL_TLS_KEY: path.join(tmp, 'edge.key'),
      AIRLOCK_TUNNEL_DOMAIN: 'tunnel.test',
    },
  });
  for (let i = 0; i < 100 && !/identity provider keys loaded/.test(srv.log()); i++)
    await new Promise((r) => setTimeout(r, 50));
  // the issuer's files, as an operator publishes them (here: read by the gateway)
  const out = path.join(tmp, 'issuer');
  execFileSync(BIN, ['agent-identity', 'export-issuer', '--out', out], {
    env: { ...process.env, AIRLOCK_DATA_DIR: srv.dataDir, AIRLOCK_AGENT_IDENTITY_ISSUER: issuer },
  });
  const H = { 'x-api-key': srv.apiKey, 'content-type': 'application/json' };
  tunnel = await (await fetch(`${srv.baseURL}/v1/tunnels`, { method: 'POST', headers: H, body: '{}' })).json();
  const tok = await (await fetch(`${srv.baseURL}/v1/tunnels/${tunnel.id}/reveal_token`, { method: 'POST', headers: H })).json();
  const tokFile = path.join(tmp, 'tunnel.token');
  writeFileSync(tokFile, tok.tunnel_token, { mode: 0o600 });
  const gwConfig = path.join(tmp, 'gw.yaml');
  writeFileSync(gwConfig, [
    `server: 127.0.0.1:${edgePort}`,
    'server_name: localhost',
    `server_ca_file: ${path.join(tmp, 'ca.pem')}`,
    `token_file: ${tokFile}`,
    `tunnel_domain: ${tunnel.domain}`,
    'connections: 1',
    'routes:',
    `  ledger: http://127.0.0.1:${upstream.port}`,
    'upstream:',
    '  allowed_ips: [127.0.0.0/8]',
    'agent_identity:',
    `  issuer: ${issuer}`,
    `  jwks_file: ${path.join(out, '.well-known/jwks.json')}`,
    '  routes:',
    '    ledger:',
    '      allowed_groups: [auditors]',
    '',
  ].join('\n'));
  execFileSync(BIN, ['gateway', '--config', gwConfig, '--check']);
  gateway = await spawnReady(['gateway', '--config', gwConfig], /Registered tunnel connection/, 'gateway');
  admin = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  agent = await admin.beta.agents.create({
    name: 'ledger-auditor', model: 'claude-test',
    mcp_servers: [{ type: 'url', name: 'ledger', url: `https://ledger.${tunnel.domain}/mcp` }],
    tools: [{ type: 'mcp_toolset', mcp_server_name: 'ledger', default_config: { permission_policy: { type: 'always_allow' } } }],
  });
  env = await admin.beta.environments.create({ name: 'bank', config: { type: 'self_hosted' } });
});

after(async () => {
  if (gateway && gateway.exitCode === null) {
    const done = new Promise((r) => gateway.once('exit', r));
    gateway.kill('SIGKILL');
    await done;
  }
  await srv?.stop();
  await upstream?.stop();
  await mock?.stop();
  await idp?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function runAs(user) {
  const c = new Anthropic({ baseURL: srv.baseURL, apiKey: null, authToken: await idp.token(user), maxRetries: 0 });
  const s = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const ev = collect(await c.beta.sessions.events.stream(s.id));
  await c.beta.sessions.events.send(s.id, { events: [{ type: 'user.message', content: [{ type: 'text', text: 'check-ledger' }] }] });
  return { s, ev };
}

test('an auditor\'s session reaches the MCP server through the gateway with its token', async () => {
  const before = upstream.seen.length;
  const { ev } = await runAs('alice');
  const r = await ev.waitFor((e) => e.type === 'agent.mcp_tool_result', 0, 'the MCP result');
  assert.notEqual(r.is_error, true, JSON.stringify(r));
  assert.match(JSON.stringify(r.content), /balance: 42/);
  ev.close();
  const reached = upstream.seen.slice(before);
  assert.ok(reached.length >= 2);
  for (const q of reached) assert.ok(q.headers['x-agent-identity'], 'the token travels to the upstream too');
});

test('an intern\'s session is refused at the gateway: nothing reaches the MCP server', async () => {
  const before = upstream.seen.length;
  const { ev } = await runAs('bob');
  // the catalog cannot be listed: the model is answered without the tool, or the call errors
  await ev.waitFor((e) => e.type === 'session.error' || e.type === 'agent.mcp_tool_result' ||
    (e.type === 'agent.tool_use' && e.evaluated_permission === 'deny') || e.type === 'agent.message', 0, 'an outcome');
  ev.close();
  assert.equal(upstream.seen.length, before, 'no request reached the upstream');
  // the gateway's stderr reaches us through a pipe, maybe after the session moved on
  for (let i = 0; i < 100 && !/request refused: agent identity/.test(gateway.log()); i++)
    await new Promise((r) => setTimeout(r, 50));
  assert.match(gateway.log(), /request refused: agent identity.*status=403.*not allowed/);
});

test('a request through the tunnel ingress without a token is refused with 401', async () => {
  const before = upstream.seen.length;
  const r = await fetch(`${srv.baseURL}/v1/tunnels/${tunnel.id}/routes/ledger/mcp`, {
    method: 'POST',
    headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  assert.equal(r.status, 401);
  assert.match(await r.text(), /agent identity required/);
  assert.equal(upstream.seen.length, before);
});
