// Inner TLS through an airlock tunnel (the server's ingress/MCP client ↔ the gateway,
// verified against the tunnel's registered CAs): the edge's relaying code never holds
// the MCP messages (a marker in an answer is absent from the bytes the edge relayed, and
// present for a tunnel without inner TLS in the same run); CA rotation and a gateway
// certificate reload leave an open SSE stream running; a certificate from an
// unregistered CA, a gateway without a certificate, a gateway that requires inner TLS
// reached without it, and a tunnel whose CAs are all archived each fail with a clear
// error. The official "everything" MCP server is the upstream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startServer } from './lib/server.mjs';
import { makeEdgeCert, makeInnerCert } from './lib/edge_cert.mjs';
import { freePort } from './lib/events.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.AIRLOCK_BIN;
let tmp, srv, upstream, upPort, edgePort, capture, metricsPort;
const gateways = [];

// Resolves once the process's stderr matches re (a bounded wait).
function waitFor(proc, re, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not seen: ${proc.log}`)), 30000);
    const check = () => {
      const m = re.exec(proc.log);
      if (m) {
        clearTimeout(timer);
        proc.stderr.off('data', check);
        resolve(m);
      }
    };
    proc.stderr.on('data', check);
    check();
  });
}

async function until(what, fn) {
  for (let i = 0; i < 100; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function api(method, p, body) {
  const r = await fetch(srv.baseURL + p, {
    method,
    headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, json: await r.json() };
}

async function newTunnel(name) {
  const t = (await api('POST', '/v1/tunnels', { display_name: name })).json;
  const tok = await api('POST', `/v1/tunnels/${t.id}/reveal_token`);
  writeFileSync(path.join(tmp, `${name}.token`), tok.json.tunnel_token, { mode: 0o600 });
  return t;
}

async function registerCA(t, caFile) {
  const r = await api('POST', `/v1/tunnels/${t.id}/certificates`,
    { ca_certificate_pem: readFileSync(caFile, 'utf8') });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json;
}

// Starts a gateway for tunnel t; tls: {cert, key} or null.
async function startGateway(name, t, tls) {
  const cfg = path.join(tmp, `${name}.yaml`);
  writeFileSync(cfg, [
    `server: 127.0.0.1:${edgePort}`,
    'server_name: localhost',
    `server_ca_file: ${path.join(tmp, 'ca.pem')}`,
    `token_file: ${path.join(tmp, `${name}.token`)}`,
    'connections: 1',
    `tunnel_domain: ${t.domain}`,
    'routes:',
    `  everything: http://127.0.0.1:${upPort}`,
    'upstream:',
    '  allowed_ips: [127.0.0.0/8]',
    ...(tls ? ['tls:', `  cert_file: ${tls.cert}`, `  key_file: ${tls.key}`] : []),
    '',
  ].join('\n'));
  const gw = spawn(BIN, ['gateway', '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  gw.log = '';
  gw.stderr.setEncoding('utf8');
  gw.stderr.on('data', (d) => { gw.log += d; });
  gateways.push(gw);
  await waitFor(gw, /Registered tunnel connection/, `gateway ${name}`);
  return gw;
}

async function connect(t) {
  const client = new Client({ name: 'airlock-inner-tls', version: '1.0.0' });
  const url = `${srv.baseURL}/v1/tunnels/${t.id}/routes/everything/mcp`;
  await client.connect(new StreamableHTTPClientTransport(new URL(url),
    { requestInit: { headers: { 'x-api-key': srv.apiKey } } }));
  return client;
}

// One JSON-RPC initialize straight through the path-form ingress, on a connection of its
// own (undici's pool once reused a connection here while the server was closing it).
function rawInit(t) {
  const u = new URL(`${srv.baseURL}/v1/tunnels/${t.id}/routes/everything/mcp`);
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
    protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: false,
      headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json',
        accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'airlock-inner-'));
  makeEdgeCert(tmp, 'edge CA');
  capture = path.join(tmp, 'edge-capture.bin');
  upPort = await freePort();
  upstream = spawn(process.execPath,
    [path.join(here, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js'),
      'streamableHttp'],
    { env: { ...process.env, PORT: String(upPort) }, stdio: ['ignore', 'ignore', 'pipe'] });
  upstream.log = '';
  upstream.stderr.setEncoding('utf8');
  upstream.stderr.on('data', (d) => { upstream.log += d; });
  await waitFor(upstream, /listening on port/, 'everything server');
  srv = await startServer({
    env: {
      AIRLOCK_TUNNEL_LISTEN: '127.0.0.1:0',
      AIRLOCK_TUNNEL_TLS_CERT: path.join(tmp, 'edge.pem'),
      AIRLOCK_TUNNEL_TLS_KEY: path.join(tmp, 'edge.key'),
      AIRLOCK_TUNNEL_DOMAIN: 'tunnel.test',
      AIRLOCK_TEST_EDGE_CAPTURE: capture,
    },
    args: ['--tunnel-metrics-listen', '127.0.0.1:0'],
  });
  edgePort = Number(/tunnel edge ready.* port=(\d+)/.exec(srv.log())[1]);
  metricsPort = Number(/tunnel metrics listening.* port=(\d+)/.exec(srv.log())?.[1]);
});

async function metric(name) {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
}

after(async () => {
  for (const p of [...gateways, upstream]) if (p && p.exitCode === null) p.kill('SIGKILL');
  if (srv) await srv.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('the edge relays ciphertext: a marker in an MCP answer never crosses it readable', async () => {
  const inner = await newTunnel('sealed');
  const keys = makeInnerCert(tmp, inner.domain, 'sealed');
  await registerCA(inner, keys.ca);
  await startGateway('sealed', inner, keys);
  const plain = await newTunnel('open');
  await startGateway('open', plain, null);

  const sealedMarker = `SEALED-${randomBytes(12).toString('hex')}`;
  const openMarker = `OPEN-${randomBytes(12).toString('hex')}`;
  const a = await connect(inner);
  const ra = await a.callTool({ name: 'echo', arguments: { message: sealedMarker } });
  assert.match(ra.content[0].text, new RegExp(sealedMarker), 'the answer arrives whole');
  await a.close();
  const b = await connect(plain);
  const rb = await b.callTool({ name: 'echo', arguments: { message: openMarker } });
  assert.match(rb.content[0].text, new RegExp(openMarker));
  await b.close();

  // one session carries exchange after exchange: HTTP/1.1 keep-alive inside TLS, so the
  // 20 calls below cost no handshake (HEAD and 204-style answers keep the framing)
  const sessions = await metric('airlock_tunnel_inner_sessions_total');
  const reused = await metric('airlock_tunnel_inner_reused_total');
  const c = await connect(inner);
  for (let i = 0; i < 20; i++) {
    const r = await c.callTool({ name: 'echo', arguments: { message: `${sealedMarker}-${i}` } });
    assert.match(r.content[0].text, new RegExp(`${sealedMarker}-${i}`));
  }
  const head = await fetch(`${srv.baseURL}/v1/tunnels/${inner.id}/routes/everything/mcp`,
    { method: 'HEAD', headers: { 'x-api-key': srv.apiKey } });
  const direct = await fetch(`http://127.0.0.1:${upPort}/mcp`, { method: 'HEAD' });
  assert.equal(head.status, direct.status, 'HEAD answers as direct');
  await c.callTool({ name: 'echo', arguments: { message: 'after HEAD' } });
  await c.close();
  assert.ok(await metric('airlock_tunnel_inner_sessions_total') - sessions <= 2,
    'at most a session or two for 22 sequential exchanges');
  assert.ok(await metric('airlock_tunnel_inner_reused_total') - reused >= 20,
    'exchanges reuse the waiting session');

  const relayed = readFileSync(capture);
  assert.ok(relayed.length > 0, 'the edge capture holds the relayed bytes');
  // control: without inner TLS the same hook sees the MCP answer in the clear
  assert.ok(relayed.includes(openMarker), 'plain tunnel: marker visible to the edge');
  assert.ok(!relayed.includes(sealedMarker), 'inner TLS: marker never in the edge capture');
  assert.match(srv.log(), /test hook: the tunnel edge appends every byte it relays/);
});

test('CA rotation and a gateway certificate reload keep an open SSE stream', async () => {
  const t = await newTunnel('rotate');
  const k1 = makeInnerCert(tmp, t.domain, 'rot1');
  const k2 = makeInnerCert(tmp, t.domain, 'rot2');
  const ca1 = await registerCA(t, k1.ca);
  // the gateway reads its pair from fixed paths; rotation rewrites them and sends SIGHUP
  const live = { cert: path.join(tmp, 'rot-live.pem'), key: path.join(tmp, 'rot-live.key') };
  copyFileSync(k1.cert, live.cert);
  copyFileSync(k1.key, live.key);
  const gw = await startGateway('rotate', t, live);

  const client = await connect(t);
  const progress = [];
  let rotated = false;
  const call = client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 4, steps: 4 } },
    undefined,
    { onprogress: (p) => progress.push({ p: p.progress, rotated }), timeout: 30000 });
  await until('the first progress event', () => progress.length >= 1);
  // rotate while the stream is open: add CA 2 (two live), deploy cert 2, archive CA 1
  await registerCA(t, k2.ca);
  copyFileSync(k2.cert, live.cert);
  copyFileSync(k2.key, live.key);
  gw.kill('SIGHUP');
  await waitFor(gw, /configuration reloaded/, 'gateway reload');
  const arch = await api('POST', `/v1/tunnels/${t.id}/certificates/${ca1.id}/archive`);
  assert.equal(arch.status, 200);
  rotated = true;
  // a new exchange now runs on certificate 2 while the first stream is still open
  const other = await connect(t);
  const r2 = await other.callTool({ name: 'echo', arguments: { message: 'after rotation' } });
  assert.match(r2.content[0].text, /after rotation/);
  await other.close();
  const r = await call;
  assert.match(r.content[0].text, /Long running operation completed/);
  assert.deepEqual(progress.map((x) => x.p), [1, 2, 3, 4], 'no event lost across rotation');
  assert.ok(progress.some((x) => x.rotated), 'events arrived after the rotation');
  await client.close();

  // a pair that does not load is refused at reload; the running certificate stays
  writeFileSync(live.cert, 'not a certificate\n');
  gw.kill('SIGHUP');
  await waitFor(gw, /reload failed; keeping the running configuration[^\n]*tls.cert_file/,
    'refused reload');
  assert.equal((await rawInit(t)).status, 200, 'certificate 2 still serves');

  // the old CA archived and certificate 1 redeployed: refused, with the reason logged
  copyFileSync(k1.cert, live.cert);
  copyFileSync(k1.key, live.key);
  gw.kill('SIGHUP');
  await until('second reload', () => gw.log.match(/configuration reloaded/g)?.length >= 2);
  // sessions waiting between exchanges end at the reload; a new one must verify
  let bad;
  await until('a new session refused', async () => (bad = await rawInit(t)).status === 502);
  assert.match(bad.text, /inner TLS with the gateway failed/);
  await until('the server log line', () =>
    /inner TLS with the gateway failed.*certificate verify failed/.test(srv.log()));
});

test('a gateway certificate from an unregistered CA is refused with a clear error', async () => {
  const t = await newTunnel('rogue');
  const registered = makeInnerCert(tmp, t.domain, 'reg');
  const rogue = makeInnerCert(tmp, t.domain, 'rogue');
  await registerCA(t, registered.ca);
  const gw = await startGateway('rogue', t, rogue);
  void gw;
  const before = srv.log().length;
  const r = await rawInit(t);
  assert.equal(r.status, 502);
  assert.match(r.text, /inner TLS with the gateway failed/);
  await until('the refusal in the server log', () => /inner TLS with the gateway failed[^\n]*certificate verify failed: unable to get local issuer certificate/.test(srv.log().slice(before)));
  assert.doesNotMatch(gw.log, /upstream request/, 'nothing was forwarded');
});

test('a gateway certificate with a key type outside the rule is refused, though its CA is registered', async () => {
  const t = await newTunnel('weak');
  // Ed25519: TLS 1.3 and OpenSSL's security level take it, the reference's rule (RSA or
  // ECDSA) does not
  const k = makeInnerCert(tmp, t.domain, 'weak', ['ed25519']);
  await registerCA(t, k.ca);
  await startGateway('weak', t, k);
  const before = srv.log().length;
  const r = await rawInit(t);
  assert.equal(r.status, 502);
  await until('the refusal in the server log', () => /the gateway's certificate key is refused[^\n]*key type ED25519 is not allowed/.test(srv.log().slice(before)));
});

test('no live certificate, a gateway without one, a gateway that requires one', async () => {
  // CAs registered, all archived: the tunnel refuses traffic until one is added
  const t = await newTunnel('empty');
  const k = makeInnerCert(tmp, t.domain, 'empty');
  const ca = await registerCA(t, k.ca);
  await startGateway('empty', t, k);
  assert.equal((await rawInit(t)).status, 200);
  await api('POST', `/v1/tunnels/${t.id}/certificates/${ca.id}/archive`);
  const none = await rawInit(t);
  assert.equal(none.status, 503);
  assert.match(none.text, /no active certificate/);

  // a CA registered but the gateway has no tls: it answers in plain; the server refuses
  const u = await newTunnel('nocert');
  await registerCA(u, makeInnerCert(tmp, u.domain, 'nocert').ca);
  await startGateway('nocert', u, null);
  const before = srv.log().length;
  const r = await rawInit(u);
  assert.equal(r.status, 502);
  await until('the gateway refusal in the server log', () =>
    /inner TLS refused by the gateway[^\n]*421[^\n]*no tls.cert_file/.test(srv.log().slice(before)));

  // the gateway has a certificate, the tunnel none: plain requests are refused by it
  const v = await newTunnel('strict');
  await startGateway('strict', v, makeInnerCert(tmp, v.domain, 'strict'));
  const s = await rawInit(v);
  assert.equal(s.status, 421);
  assert.match(s.text, /inner TLS required: this gateway has tls.cert_file set/);
});
