// The official MCP TypeScript SDK client (Streamable HTTP) reaching the official
// "everything" MCP server through an airlock tunnel: real TLS edge with a throwaway CA,
// `airlock gateway`, and both ingress forms. Tools, resources, prompts and progress
// notifications (SSE) must work exactly as they do direct. With AIRLOCK_TUNNEL_INNER_TLS=1
// (tunnel_inner_conformance.test.mjs) every exchange runs inside inner TLS: a customer CA
// registered on the tunnel, the gateway holding a certificate it signed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync, rmSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startServer } from './lib/server.mjs';
import { makeEdgeCert, makeInnerCert } from './lib/edge_cert.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.AIRLOCK_BIN;
const INNER = process.env.AIRLOCK_TUNNEL_INNER_TLS === '1';
let tmp, srv, upstream, gateway, tunnel, edgePort, ingressPort, upPort;

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function waitFor(proc, re, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${what} not ready: ${buf}`)), 30000);
    const on = (d) => {
      buf += d;
      const m = re.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', on);
  });
}

async function api(method, p, body) {
  const r = await fetch(srv.baseURL + p, {
    method,
    headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, json: await r.json() };
}

async function connect(url, headers) {
  const client = new Client({ name: 'airlock-tunnel-interop', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return client;
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'airlock-tunnel-'));
  makeEdgeCert(tmp, 'interop CA');

  upPort = await freePort();
  upstream = spawn(process.execPath,
    [path.join(here, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'),
      'streamableHttp'],
    { env: { ...process.env, PORT: String(upPort) }, stdio: ['ignore', 'ignore', 'pipe'] });
  await waitFor(upstream, /listening on port/, 'everything server');

  srv = await startServer({
    env: {
      AIRLOCK_TUNNEL_LISTEN: '127.0.0.1:0',
      AIRLOCK_TUNNEL_TLS_CERT: path.join(tmp, 'edge.pem'),
      AIRLOCK_TUNNEL_TLS_KEY: path.join(tmp, 'edge.key'),
      AIRLOCK_TUNNEL_INGRESS_LISTEN: '127.0.0.1:0',
      AIRLOCK_TUNNEL_DOMAIN: 'tunnel.test',
    },
  });
  edgePort = Number(/tunnel edge ready.* port=(\d+)/.exec(srv.log())[1]);
  ingressPort = Number(/tunnel ingress ready.* port=(\d+)/.exec(srv.log())[1]);

  const created = await api('POST', '/v1/tunnels', { display_name: 'interop' });
  assert.equal(created.status, 200);
  tunnel = created.json;
  const tok = await api('POST', `/v1/tunnels/${tunnel.id}/reveal_token`);
  writeFileSync(path.join(tmp, 'token'), tok.json.tunnel_token, { mode: 0o600 });
  let tls = [];
  if (INNER) {
    const inner = makeInnerCert(tmp, tunnel.domain);
    const reg = await api('POST', `/v1/tunnels/${tunnel.id}/certificates`,
      { ca_certificate_pem: readFileSync(inner.ca, 'utf8') });
    assert.equal(reg.status, 200, JSON.stringify(reg.json));
    tls = ['tls:', `  cert_file: ${inner.cert}`, `  key_file: ${inner.key}`];
  }
  writeFileSync(path.join(tmp, 'gw.yaml'), [
    `server: 127.0.0.1:${edgePort}`,
    'server_name: localhost',
    `server_ca_file: ${path.join(tmp, 'ca.pem')}`,
    `token_file: ${path.join(tmp, 'token')}`,
    `tunnel_domain: ${tunnel.domain}`,
    'routes:',
    `  everything: http://127.0.0.1:${upPort}`,
    'upstream:',
    '  allowed_ips: [127.0.0.0/8]',
    ...tls,
    '',
  ].join('\n'));
  gateway = spawn(BIN, ['gateway', '--config', path.join(tmp, 'gw.yaml')],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  await waitFor(gateway, /(Registered tunnel connection[^\n]*\n[^]*){4}/, 'gateway');
});

after(async () => {
  for (const p of [gateway, upstream]) if (p && p.exitCode === null) p.kill('SIGTERM');
  if (srv) await srv.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('path-form ingress: initialize, tools, resources, prompts', async () => {
  const url = `${srv.baseURL}/v1/tunnels/${tunnel.id}/routes/everything/mcp`;
  const client = await connect(url, { 'x-api-key': srv.apiKey });
  const info = client.getServerVersion();
  assert.ok(info && info.name, 'server info arrives through the tunnel');
  const tools = await client.listTools();
  const names = tools.tools.map((t) => t.name);
  assert.ok(names.includes('echo'), `echo tool listed: ${names}`);
  const r = await client.callTool({ name: 'echo', arguments: { message: 'through the tunnel ✓' } });
  assert.match(r.content[0].text, /through the tunnel ✓/);
  const sum = await client.callTool({ name: 'get-sum', arguments: { a: 20, b: 22 } });
  assert.match(sum.content[0].text, /42/);
  const res = await client.listResources();
  assert.ok(res.resources.length > 0, 'resources listed');
  const prompts = await client.listPrompts();
  assert.ok(prompts.prompts.length > 0, 'prompts listed');
  await client.close();
});

test('progress notifications stream over SSE through the tunnel', async () => {
  const client = await connect(`${srv.baseURL}/v1/tunnels/${tunnel.id}/routes/everything/mcp`,
    { 'x-api-key': srv.apiKey });
  const progress = [];
  const r = await client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress) });
  assert.deepEqual(progress, [1, 2, 3], 'every progress notification relayed in order');
  assert.match(r.content[0].text, /Long running operation completed/);
  await client.close();
});

// fetch() may not set Host, node:http may: the host-routed ingress form.
function hostPost(host, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: ingressPort, path: '/mcp', method: 'POST',
      headers: { host, 'x-api-key': srv.apiKey, 'content-type': 'application/json',
        accept: 'application/json, text/event-stream' },
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, data }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('host-form ingress: initialize by route host name', async () => {
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: {
    protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
  const r = await hostPost(`everything.${tunnel.domain}`, init);
  assert.equal(r.status, 200);
  assert.ok(r.headers['mcp-session-id'], 'session id header passes through');
  assert.match(r.data, /"serverInfo"/);
  const miss = await hostPost(`nosuchroute.${tunnel.domain}`, init);
  assert.equal(miss.status, 404);
  assert.match(miss.data, /no route "nosuchroute" in this gateway's routes/);
});

test('wrong API key is refused before the tunnel', async () => {
  const r = await fetch(`${srv.baseURL}/v1/tunnels/${tunnel.id}/routes/everything/mcp`, {
    method: 'POST',
    headers: { 'x-api-key': 'wrong', 'content-type': 'application/json' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });
  assert.equal(r.status, 401);
});

// The conformance runner cannot send headers, so a local pass-through adds the server
// API key and forwards (streaming both ways) to the path-form ingress.
function keyProxy() {
  const target = new URL(`${srv.baseURL}/v1/tunnels/${tunnel.id}/routes/everything/mcp`);
  const p = http.createServer((req, res) => {
    const up = http.request({ host: target.hostname, port: target.port, method: req.method,
      path: target.pathname + (req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : ''),
      headers: { ...req.headers, host: target.host, 'x-api-key': srv.apiKey } }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return new Promise((resolve) => p.listen(0, '127.0.0.1', () => resolve(p)));
}

// Asynchronous: the key proxy runs in this process and must keep serving meanwhile.
async function conformance(url, out) {
  try {
    await promisify(execFile)(process.execPath, [path.join(here,
      'node_modules/@modelcontextprotocol/conformance/dist/index.js'), 'server', '--url', url,
    '-o', out], { timeout: 240000 });
  } catch (e) {
    if (e.code !== 1) throw e; /* exit 1: some scenarios failed, as they do direct */
  }
}

// scenario → sorted "check-id:STATUS" list, from the runner's checks.json files.
function results(dir) {
  const r = {};
  for (const d of readdirSync(dir)) {
    const scen = d.replace(/^server-/, '').replace(/-\d{4}-.*$/, '');
    const checks = JSON.parse(readFileSync(path.join(dir, d, 'checks.json'), 'utf8'));
    r[scen] = checks.filter((c) => c.status !== 'INFO').map((c) => `${c.id}:${c.status}`).sort();
  }
  return r;
}

test('MCP conformance server suite: same results direct and through the tunnel', async () => {
  const proxy = await keyProxy();
  const direct = path.join(tmp, 'conf-direct');
  const tunneled = path.join(tmp, 'conf-tunnel');
  await conformance(`http://127.0.0.1:${upPort}/mcp`, direct);
  await conformance(`http://127.0.0.1:${proxy.address().port}/mcp`, tunneled);
  proxy.close();
  const a = results(direct), b = results(tunneled);
  assert.ok(Object.keys(a).length >= 20, `direct run produced results: ${Object.keys(a)}`);
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort(), 'same scenarios ran');
  for (const k of Object.keys(a))
    assert.deepEqual(b[k], a[k], `scenario ${k}: direct and tunnel differ`);
});

test('MCP inspector CLI (--transport http) through the tunnel', () => {
  // inspector-cli 1.0.3 finds its own package.json relative to the working directory.
  const cwd = path.join(here, 'node_modules/@modelcontextprotocol/inspector-cli/build');
  const cli = path.join(cwd, 'index.js');
  const url = `${srv.baseURL}/v1/tunnels/${tunnel.id}/routes/everything/mcp`;
  const run = (...args) => JSON.parse(execFileSync(process.execPath, [cli, url, '--transport',
    'http', '--header', `x-api-key: ${srv.apiKey}`, ...args], { encoding: 'utf8', timeout: 60000, cwd }));
  const list = run('--method', 'tools/list');
  assert.ok(list.tools.some((t) => t.name === 'echo'), 'tools/list through the tunnel');
  const call = run('--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'message=hi from inspector');
  assert.match(call.content[0].text, /hi from inspector/);
});
