// A rogue gateway against the server's tunnel edge: real TLS 1.3 + ALPN airlock-tunnel/1,
// the text HELLO, then hand-built HTTP/2 frames (node:http2 cannot misbehave on purpose).
// Frames for streams the edge never opened (or another connection owns), resets, malformed
// answers, oversized frames, floods, garbage and bad handshakes must give clear errors, be
// counted in the tunnel metrics (--tunnel-metrics-listen), and never take the server down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { makeEdgeCert } from './lib/edge_cert.mjs';
import { F, H2Peer, PREFACE, T, frame, takeHandshake, u32 } from './lib/h2peer.mjs';

const PROTOCOL_ERROR = 1;
const INTERNAL_ERROR = 2;

let tmp, srv, ca, edgePort, metricsPort;

async function api(method, p, body) {
  const r = await fetch(srv.baseURL + p, {
    method,
    headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10000),
  });
  return { status: r.status, json: await r.json() };
}

// A fresh tunnel per scenario: the edge then has exactly one live connection to place
// the scenario's stream on, whatever state the previous scenario's connection is in.
async function newTunnel(name) {
  const created = await api('POST', '/v1/tunnels', { display_name: name });
  assert.equal(created.status, 200);
  const tok = await api('POST', `/v1/tunnels/${created.json.id}/reveal_token`);
  assert.equal(tok.status, 200);
  return { id: created.json.id, token: tok.json.tunnel_token };
}

// HPACK (RFC 7541): ":status: 200" is static index 8 (0x88); other fields as literals
// without indexing with a literal name (0x00, 7-bit lengths: short strings only).
function hpack(status200, fields) {
  const parts = status200 ? [Buffer.from([0x88])] : [];
  for (const [n, v] of fields)
    parts.push(Buffer.from([0x00, n.length]), Buffer.from(n), Buffer.from([v.length]), Buffer.from(v));
  return Buffer.concat(parts);
}

// One rogue gateway connection. Collects every frame the edge sends. With h2 it speaks
// HTTP/2 as far as any server must (its SETTINGS first, right after READY and before
// ACKing the edge's, then SETTINGS and PING ACKs) and does nothing else on its own.
class Rogue extends H2Peer {
  constructor(sock, h2) {
    super(sock, 'edge');
    this.h2 = h2;
    this.phase = 'reply';
    this.badPreface = false;
    this.reply = new Promise((resolve) => { this.onReply = resolve; });
  }

  onClose() {
    this.onReply(null);
  }

  onData() {
    if (this.phase === 'reply') {
      const hs = takeHandshake(this.buf);
      if (!hs) return;
      this.buf = hs.rest;
      const m = /^AIRLOCK-TUNNEL\/1 (\d{3}) (.*)$/.exec(hs.first);
      this.phase = 'preface';
      if (this.h2 && m && m[1] === '200') this.send(frame(T.SETTINGS, 0, 0));
      this.onReply({ line: hs.first, status: m ? Number(m[1]) : 0, reason: m ? m[2] : '', fields: hs.fields });
    }
    if (this.phase === 'preface') {
      if (this.buf.length < PREFACE.length) return;
      this.badPreface = !this.buf.subarray(0, PREFACE.length).equals(PREFACE);
      this.buf = this.buf.subarray(PREFACE.length);
      this.phase = 'frames';
    }
    this.takeFrames();
  }

  onFrame(f) {
    this.frames.push(f);
    if (this.h2 && f.type === T.SETTINGS && !(f.flags & F.ACK)) this.send(frame(T.SETTINGS, F.ACK, 0));
    if (this.h2 && f.type === T.PING && !(f.flags & F.ACK)) this.send(frame(T.PING, F.ACK, 0, f.payload));
    this.wake(f);
  }

  send(b) {
    if (!this.isClosed) this.sock.write(b);
  }

  end() {
    this.sock.destroy();
  }
}

function hello(token) {
  return `AIRLOCK-TUNNEL/1\r\nToken: ${token}\r\nGateway-Id: gw_rogue\r\n` +
    'Connection-Index: 0\r\nVersion: airlock/0.1.0\r\n\r\n';
}

// TLS + ALPN, then the raw handshake text; returns the rogue and the edge's reply.
async function dial(handshake, h2 = false) {
  const sock = tls.connect({
    host: '127.0.0.1', port: edgePort, servername: 'localhost', ca,
    ALPNProtocols: ['airlock-tunnel/1'], minVersion: 'TLSv1.3',
  });
  await new Promise((resolve, reject) => {
    sock.once('secureConnect', resolve);
    sock.once('error', reject);
  });
  assert.equal(sock.alpnProtocol, 'airlock-tunnel/1');
  const r = new Rogue(sock, h2);
  sock.write(handshake);
  const reply = await Promise.race([r.reply, new Promise((_, reject) =>
    setTimeout(() => reject(new Error('no handshake reply')), 10000).unref())]);
  return { r, reply };
}

// A registered rogue that has done its part of the HTTP/2 start: the edge's preface and
// SETTINGS read, our SETTINGS sent and theirs ACKed (by the Rogue class).
async function rogueGateway(tunnel) {
  const { r, reply } = await dial(hello(tunnel.token), true);
  assert.ok(reply, 'edge answered the HELLO');
  assert.equal(reply.status, 200, reply.line);
  assert.equal(reply.fields['Tunnel-Id'], tunnel.id);
  assert.match(reply.fields['Connection-Id'] ?? '', /^tcon_/);
  const s = await r.waitFrame((f) => f.type === T.SETTINGS && !(f.flags & F.ACK), 'edge SETTINGS');
  assert.ok(s, 'edge sent SETTINGS');
  assert.equal(r.badPreface, false, 'edge sent the HTTP/2 client preface');
  await r.waitFrame((f) => f.type === T.SETTINGS && (f.flags & F.ACK), 'edge SETTINGS ACK');
  r.connId = reply.fields['Connection-Id'];
  return r;
}

// An ingress request through the path form; resolves to {status, text, json}.
function ingress(tunnel, body) {
  return fetch(`${srv.baseURL}/v1/tunnels/${tunnel.id}/routes/rogue/mcp`, {
    method: 'POST',
    headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(15000),
  }).then(async (res) => {
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON: left null for the asserts */ }
    return { status: res.status, text, json };
  });
}

// The edge's request on `sid`, complete (END_STREAM seen); returns its DATA bytes.
async function requestOn(r, sid) {
  const h = await r.waitFrame((f) => f.type === T.HEADERS && f.sid === sid, `HEADERS on ${sid}`);
  assert.ok(h, `edge opened stream ${sid} (frames: ${r.frames.map((f) => `${f.type}/${f.sid}`)})`);
  const last = await r.waitFrame((f) => f.sid === sid && (f.type === T.DATA || f.type === T.HEADERS) &&
    (f.flags & F.END_STREAM), `END_STREAM on ${sid}`);
  assert.ok(last, `edge finished the request on stream ${sid}`);
  return Buffer.concat(r.frames.filter((f) => f.sid === sid && f.type === T.DATA).map((f) => f.payload));
}

let nextId = 1;
const ping = () => `{"jsonrpc":"2.0","id":${nextId++},"method":"ping"}`;

// A fresh tunnel, one rogue gateway on it, and an ingress request the edge has opened
// as stream 1 and sent in full: the point where each misbehaviour starts.
async function inFlight(name, reqBody = ping()) {
  const tunnel = await newTunnel(name);
  const r = await rogueGateway(tunnel);
  const pending = ingress(tunnel, reqBody);
  const got = await requestOn(r, 1);
  return { tunnel, r, pending, got };
}

function answerHead(r, sid, length) {
  r.send(frame(T.HEADERS, F.END_HEADERS, sid,
    hpack(true, [['content-type', 'application/json'], ['content-length', String(length)]])));
}

function answer(r, sid, body) {
  answerHead(r, sid, body.length);
  r.send(frame(T.DATA, F.END_STREAM, sid, Buffer.from(body)));
}

// After a stream error (not a connection error) the same connection takes the next
// request: stream 3, answered correctly, reaches the client.
async function connectionCarriesOn(tunnel, r) {
  const next = ingress(tunnel, ping());
  await requestOn(r, 3);
  answer(r, 3, '{"again":true}');
  const res = await next;
  assert.equal(res.status, 200, res.text);
  assert.equal(res.text, '{"again":true}');
  assert.equal(r.isClosed, false);
}

async function metrics() {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return res.text();
}

// One sample's value: `name` or `name{labels}` exactly; undefined when absent.
function sample(text, name, labels = '') {
  const want = labels ? `${name}{${labels}}` : name;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    if (sp > 0 && line.slice(0, sp).trim() === want) return Number(line.slice(sp + 1));
  }
  return undefined;
}

// The edge may count a moment after the connection closes: wait (bounded) for a sample
// that satisfies ok.
async function metricBecomes(name, labels, ok, what) {
  let v;
  for (let i = 0; i < 100; i++) {
    v = sample(await metrics(), name, labels);
    if (v !== undefined && ok(v)) return v;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.fail(`${name}{${labels}} is ${v}, expected ${what}`);
}

// A counter absent before (never incremented yet) counts as 0; after, it must be there.
function counterRises(name, labels, before) {
  return metricBecomes(name, labels, (v) => v > (before ?? 0), `more than ${before ?? 0}`);
}

async function waitLog(re, from, what) {
  for (let i = 0; i < 100; i++) {
    if (re.test(srv.log().slice(from))) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.fail(`server log does not name ${what}: ${srv.log().slice(from)}`);
}

async function serverStillServes() {
  assert.equal(srv.proc.exitCode, null, 'server process still running');
  assert.equal(srv.proc.signalCode, null, 'server process not killed by a signal');
  const list = await api('GET', '/v1/tunnels');
  assert.equal(list.status, 200);
  assert.ok(Array.isArray(list.json.data), 'GET /v1/tunnels still answers');
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'airlock-rogue-'));
  makeEdgeCert(tmp, 'rogue CA');
  ca = readFileSync(path.join(tmp, 'ca.pem'));
  srv = await startServer({
    env: {
      AIRLOCK_TUNNEL_LISTEN: '127.0.0.1:0',
      AIRLOCK_TUNNEL_TLS_CERT: path.join(tmp, 'edge.pem'),
      AIRLOCK_TUNNEL_TLS_KEY: path.join(tmp, 'edge.key'),
      AIRLOCK_TUNNEL_DOMAIN: 'tunnel.test',
    },
    args: ['--tunnel-metrics-listen', '127.0.0.1:0'],
  });
  // startServer takes the first "listening ... port=" line, which can be the tunnel
  // metrics listener's: the API port is read from the API listener's own line.
  const apiLine = /server: listening .*port=(\d+)/;
  for (let i = 0; i < 100 && !apiLine.test(srv.log()); i++)
    await new Promise((res) => setTimeout(res, 50));
  srv.port = Number(apiLine.exec(srv.log())?.[1]);
  assert.ok(srv.port > 0, `server logs its API port: ${srv.log()}`);
  srv.baseURL = `http://127.0.0.1:${srv.port}`;
  edgePort = Number(/tunnel edge ready.* port=(\d+)/.exec(srv.log())[1]);
  metricsPort = Number(/tunnel metrics listening.* port=(\d+)/.exec(srv.log())?.[1]);
  assert.ok(metricsPort > 0, `server logs its tunnel metrics port: ${srv.log()}`);
});

after(async () => {
  if (srv) await srv.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('DATA on a stream the edge never opened: connection error, 502, server lives', async () => {
  const m0 = await metrics();
  const errs0 = sample(m0, 'airlock_tunnel_protocol_errors_total');
  const ingressErrs0 = sample(m0, 'airlock_tunnel_ingress_errors_total');
  const logFrom = srv.log().length;
  const { r, pending } = await inFlight('rogue-unowned');
  const live = await metricBecomes('airlock_tunnel_connections', '', (v) => v >= 1, 'at least 1');
  r.send(frame(T.DATA, 0, 3, Buffer.from('not yours')));
  // A connection error (RFC 9113 5.1: DATA on an idle stream): the edge says why in a
  // GOAWAY before it closes.
  const goaway = await r.waitFrame((f) => f.type === T.GOAWAY, 'GOAWAY');
  assert.ok(goaway, 'GOAWAY before the close');
  assert.equal(goaway.payload.readUInt32BE(4), PROTOCOL_ERROR, 'GOAWAY(PROTOCOL_ERROR)');
  await r.waitClosed();
  const res = await pending;
  assert.equal(res.status, 502, res.text);
  assert.equal(res.json?.type, 'error', res.text);
  assert.equal(res.json.error.type, 'api_error');
  assert.match(res.json.error.message, /tunnel/);
  await serverStillServes();
  await waitLog(new RegExp(`protocol error.*connection_id=${r.connId}`), logFrom,
    'the protocol error with the connection');
  await counterRises('airlock_tunnel_protocol_errors_total', '', errs0);
  await counterRises('airlock_tunnel_ingress_errors_total', '', ingressErrs0);
  await metricBecomes('airlock_tunnel_connections', '', (v) => v < live, `less than ${live}`);
});

test('HEADERS on a stream the edge never opened: connection error, 502, server lives', async () => {
  const errs0 = sample(await metrics(), 'airlock_tunnel_protocol_errors_total');
  const { r, pending } = await inFlight('rogue-unowned-headers');
  r.send(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, hpack(true, [])));
  await r.waitClosed();
  const goaway = r.frames.find((f) => f.type === T.GOAWAY);
  assert.ok(goaway, 'GOAWAY before the close');
  assert.equal(goaway.payload.readUInt32BE(4), PROTOCOL_ERROR, 'GOAWAY(PROTOCOL_ERROR)');
  const res = await pending;
  assert.equal(res.status, 502, res.text);
  assert.equal(res.json?.error?.type, 'api_error', res.text);
  await serverStillServes();
  await counterRises('airlock_tunnel_protocol_errors_total', '', errs0);
});

test('a correct answer from the same hand-built gateway reaches the client', async () => {
  const streams0 = sample(await metrics(), 'airlock_tunnel_streams_total');
  const reqBody = `{"jsonrpc":"2.0","id":0,"method":"ping","nonce":"${randomBytes(8).toString('hex')}"}`;
  const { tunnel, r, pending, got } = await inFlight('rogue-valid', reqBody);
  assert.equal(got.toString(), reqBody, 'the edge forwarded the request body unchanged');
  const body = '{"jsonrpc":"2.0","id":3,"result":{"from":"rogue"}}';
  answer(r, 1, body);
  const res = await pending;
  assert.equal(res.status, 200, res.text);
  assert.equal(res.text, body);
  assert.equal(r.isClosed, false, 'the edge keeps a well-behaved connection open');
  await counterRises('airlock_tunnel_streams_total', '', streams0);
  assert.equal(srv.log().includes(tunnel.token), false, 'the tunnel token is never logged');
  r.end();
});

test('RST_STREAM from the gateway: 502 for that request, the connection carries on', async () => {
  const resets0 = sample(await metrics(), 'airlock_tunnel_stream_resets_total');
  const { tunnel, r, pending } = await inFlight('rogue-reset');
  r.send(frame(T.RST_STREAM, 0, 1, u32(INTERNAL_ERROR)));
  const res = await pending;
  assert.equal(res.status, 502, res.text);
  assert.equal(res.json?.error?.type, 'api_error', res.text);
  await counterRises('airlock_tunnel_stream_resets_total', '', resets0);
  await connectionCarriesOn(tunnel, r);
  assert.equal(r.frames.some((f) => f.type === T.GOAWAY), false, 'no GOAWAY for a stream reset');
  r.end();
  await serverStillServes();
});

test('garbage instead of HTTP/2 after READY: closed and counted', async () => {
  const tunnel = await newTunnel('rogue-garbage');
  const errs0 = sample(await metrics(), 'airlock_tunnel_protocol_errors_total');
  const { r, reply } = await dial(hello(tunnel.token));
  assert.equal(reply?.status, 200, reply?.line);
  r.send(randomBytes(4096));
  await r.waitClosed();
  await counterRises('airlock_tunnel_protocol_errors_total', '', errs0);
  await serverStillServes();
});

test('HELLO with a wrong token: 401 refusal, closed, counted as auth failure', async () => {
  const auth0 = sample(await metrics(), 'airlock_tunnel_handshake_failures_total', 'reason="auth"');
  const logFrom = srv.log().length;
  const bogus = `alk_tnl_${randomBytes(32).toString('base64url').slice(0, 43)}`;
  const { r, reply } = await dial(hello(bogus));
  assert.ok(reply, 'edge answered before closing');
  assert.equal(reply.status, 401, reply.line);
  assert.equal(reply.reason, 'unknown tunnel token (not issued by this server)');
  await r.waitClosed();
  assert.equal(r.frames.length, 0, 'no HTTP/2 for a refused gateway');
  await counterRises('airlock_tunnel_handshake_failures_total', 'reason="auth"', auth0);
  await waitLog(/invalid tunnel token/, logFrom, 'the refusal');
  assert.equal(srv.log().slice(logFrom).includes(bogus), false, 'the token is never logged');
});

test('malformed HELLO: 400 refusal, counted as a protocol handshake failure', async () => {
  const proto0 = sample(await metrics(), 'airlock_tunnel_handshake_failures_total', 'reason="protocol"');
  const { r, reply } = await dial('AIRLOCK-TUNNEL/1\r\nbad field name!: x\r\n\r\n');
  assert.ok(reply, 'edge answered before closing');
  assert.equal(reply.status, 400, reply.line);
  await r.waitClosed();
  await counterRises('airlock_tunnel_handshake_failures_total', 'reason="protocol"', proto0);
  await serverStillServes();
});

test('a second connection of the same tunnel sends frames on the first one\'s stream', async () => {
  const tunnel = await newTunnel('rogue-hijack');
  const errs0 = sample(await metrics(), 'airlock_tunnel_protocol_errors_total');
  const a = await rogueGateway(tunnel);
  const b = await rogueGateway(tunnel);
  const reqBody = ping();
  const pending = ingress(tunnel, reqBody);
  // Stream ids are per connection: whichever connection the edge placed the request on
  // owns stream 1, the other has no stream 1 at all.
  const first = await Promise.race([a, b].map((r) =>
    r.waitFrame((f) => f.type === T.HEADERS && f.sid === 1, 'HEADERS on 1').then(() => r)));
  const owner = first, thief = first === a ? b : a;
  await requestOn(owner, 1);
  answerHead(thief, 1, 11);
  thief.send(frame(T.DATA, F.END_STREAM, 1, Buffer.from('{"stolen":1}')));
  const goaway = await thief.waitFrame((f) => f.type === T.GOAWAY, 'GOAWAY to the thief');
  assert.ok(goaway, 'GOAWAY before the close');
  assert.equal(goaway.payload.readUInt32BE(4), PROTOCOL_ERROR, 'GOAWAY(PROTOCOL_ERROR)');
  await thief.waitClosed();
  await counterRises('airlock_tunnel_protocol_errors_total', '', errs0);
  // The owner's request is untouched by the other connection's frames.
  answer(owner, 1, '{"owner":true}');
  const res = await pending;
  assert.equal(res.status, 200, res.text);
  assert.equal(res.text, '{"owner":true}');
  assert.equal(owner.isClosed, false, 'the well-behaved connection stays up');
  owner.end();
});

test('response HEADERS without :status: that stream is reset, 502, connection lives', async () => {
  const { tunnel, r, pending } = await inFlight('rogue-nostatus');
  const before = await metrics();
  const invalidBefore = sample(before, 'airlock_tunnel_invalid_frames_total');
  const errsBefore = sample(before, 'airlock_tunnel_protocol_errors_total');
  r.send(frame(T.HEADERS, F.END_HEADERS, 1, hpack(false, [['content-type', 'text/plain']])));
  const rst = await r.waitFrame((f) => f.type === T.RST_STREAM && f.sid === 1, 'RST_STREAM on 1');
  assert.ok(rst, 'the edge resets the malformed stream');
  assert.equal(rst.payload.readUInt32BE(0), PROTOCOL_ERROR, 'RST_STREAM(PROTOCOL_ERROR)');
  const res = await pending;
  assert.equal(res.status, 502, res.text);
  assert.equal(res.json?.error?.type, 'api_error', res.text);
  await counterRises('airlock_tunnel_invalid_frames_total', '', invalidBefore);
  await connectionCarriesOn(tunnel, r);
  // A stream error ends no connection: not a protocol error of the connection, and a
  // real one later on the same connection is still logged and counted.
  const errsMid = sample(await metrics(), 'airlock_tunnel_protocol_errors_total');
  assert.equal(errsMid ?? 0, errsBefore ?? 0, 'a stream error is not a connection error');
  r.send(frame(T.DATA, 0, 99, Buffer.from('x')));
  await r.waitClosed();
  await counterRises('airlock_tunnel_protocol_errors_total', '', errsMid);
  r.end();
});

test('more DATA than the response content-length: 502, never a 200', async () => {
  const { r, pending } = await inFlight('rogue-length');
  answerHead(r, 1, 5);
  r.send(frame(T.DATA, F.END_STREAM, 1, Buffer.from('0123456789')));
  const res = await pending.catch((e) => ({ status: 0, text: String(e) }));
  assert.notEqual(res.status, 200, `a body longer than its content-length passed: ${res.text}`);
  assert.equal(res.status, 502, res.text);
  r.end();
});

test('the gateway drops the connection mid-body: the client never sees a complete answer', async () => {
  const { r, pending } = await inFlight('rogue-midbody');
  answerHead(r, 1, 100);
  r.send(frame(T.DATA, 0, 1, Buffer.from('{"partial":')));
  r.sock.end(); /* after the queued DATA, unlike destroy() */
  // A 502, or a streamed 200 whose body then fails (status 0 here): never a 200 that
  // reads to a clean end with 11 of its 100 bytes.
  const res = await pending.catch((e) => ({ status: 0, text: String(e) }));
  assert.notEqual(res.status, 200, `truncated answer delivered as 200: ${res.text}`);
  await serverStillServes();
});

// An answer without content-length is relayed as it comes and ends with the client's
// connection. When it breaks off, that end must not look like a clean one: the ingress
// resets the client's connection, and the client's read of the body fails.
function streamedHead(r, sid) {
  r.send(frame(T.HEADERS, F.END_HEADERS, sid, hpack(true, [['content-type', 'application/octet-stream']])));
}

for (const [how, breakOff] of [
  ['RST_STREAM', (r) => r.send(frame(T.RST_STREAM, 0, 1, u32(INTERNAL_ERROR)))],
  ['a dropped connection', (r) => r.sock.end()],
]) {
  test(`a streamed answer (no content-length) broken off by ${how}: the client's read fails`, async () => {
    const { r, pending } = await inFlight(`rogue-cut-${how.length}`);
    streamedHead(r, 1);
    r.send(frame(T.DATA, 0, 1, Buffer.from('{"partial":')));
    breakOff(r);
    const res = await pending.catch((e) => ({ status: 0, text: String(e) }));
    assert.equal(res.status, 0, `broken answer read to a clean end: ${res.status} ${res.text}`);
    await serverStillServes();
  });
}

// ... and a streamed answer that ends properly (END_STREAM) still reads to its end.
test('a streamed answer (no content-length) that ends with END_STREAM reads whole', async () => {
  const { r, pending } = await inFlight('rogue-streamed-ok');
  streamedHead(r, 1);
  r.send(frame(T.DATA, 0, 1, Buffer.from('{"whole":')));
  r.send(frame(T.DATA, F.END_STREAM, 1, Buffer.from('true}')));
  const res = await pending;
  assert.equal(res.status, 200, res.text);
  assert.equal(res.text, '{"whole":true}');
});

test('a frame over the edge\'s MAX_FRAME_SIZE: GOAWAY(FRAME_SIZE_ERROR)', async () => {
  const tunnel = await newTunnel('rogue-bigframe');
  const errs0 = sample(await metrics(), 'airlock_tunnel_protocol_errors_total');
  const r = await rogueGateway(tunnel);
  // Only the header: the edge must judge the length before waiting for 2 MiB.
  const h = frame(T.DATA, 0, 1).subarray(0, 9);
  h.writeUIntBE(2 << 20, 0, 3);
  r.send(h);
  const goaway = await r.waitFrame((f) => f.type === T.GOAWAY, 'GOAWAY');
  assert.ok(goaway, 'GOAWAY before the close');
  assert.equal(goaway.payload.readUInt32BE(4), 6 /* FRAME_SIZE_ERROR */);
  await r.waitClosed();
  await counterRises('airlock_tunnel_protocol_errors_total', '', errs0);
});

test('PUSH_PROMISE with push disabled: GOAWAY(PROTOCOL_ERROR)', async () => {
  const errs0 = sample(await metrics(), 'airlock_tunnel_protocol_errors_total');
  const { r, pending } = await inFlight('rogue-push');
  r.send(frame(5 /* PUSH_PROMISE */, F.END_HEADERS, 1, Buffer.concat([u32(2),
    hpack(false, [[':method', 'GET'], [':path', '/'], [':scheme', 'https'], [':authority', 'x']])])));
  const goaway = await r.waitFrame((f) => f.type === T.GOAWAY, 'GOAWAY');
  assert.ok(goaway, 'GOAWAY before the close');
  assert.equal(goaway.payload.readUInt32BE(4), PROTOCOL_ERROR);
  await r.waitClosed();
  const res = await pending;
  assert.equal(res.status, 502, res.text);
  await counterRises('airlock_tunnel_protocol_errors_total', '', errs0);
});

test('TLS without ALPN airlock-tunnel/1: closed, counted as a TLS handshake failure', async () => {
  const tls0 = sample(await metrics(), 'airlock_tunnel_handshake_failures_total', 'reason="tls"');
  const sock = tls.connect({ host: '127.0.0.1', port: edgePort, servername: 'localhost', ca,
    ALPNProtocols: ['h2'], minVersion: 'TLSv1.3' });
  sock.on('error', () => {});
  const r = new Rogue(sock, false);
  await new Promise((resolve) => sock.once('secureConnect', resolve).once('close', resolve));
  sock.write(hello('alk_tnl_x'));
  await r.waitClosed();
  assert.equal(await r.reply, null, 'no handshake reply without the ALPN');
  await counterRises('airlock_tunnel_handshake_failures_total', 'reason="tls"', tls0);
});

test('a HELLO over 4096 bytes: 400 refusal, counted as a protocol handshake failure', async () => {
  const proto0 = sample(await metrics(), 'airlock_tunnel_handshake_failures_total', 'reason="protocol"');
  // Eight well-formed fields (the most allowed) of 500 bytes each, and no end: only the
  // 4096-byte bound can refuse it, and it must do so without waiting for more.
  let text = 'AIRLOCK-TUNNEL/1\r\n';
  for (let i = 0; i < 8; i++) text += `X-Pad-${i}: ${'a'.repeat(500)}\r\n`;
  assert.ok(text.length > 4096);
  const { r, reply } = await dial(text);
  assert.ok(reply, 'edge answered before closing');
  assert.equal(reply.status, 400, reply.line);
  await r.waitClosed();
  await counterRises('airlock_tunnel_handshake_failures_total', 'reason="protocol"', proto0);
});

test('GOAWAY(NO_ERROR, last stream 0) from the gateway: 503 retry, no new streams there', async () => {
  const { tunnel, r, pending } = await inFlight('rogue-goaway');
  // The gateway processed nothing: stream 1 was refused and may be retried elsewhere.
  r.send(frame(T.GOAWAY, 0, 0, Buffer.concat([u32(0), u32(0)])));
  const res = await pending;
  assert.equal(res.status, 503, res.text);
  assert.equal(res.json?.error?.type, 'overloaded_error', res.text);
  // A draining connection gets no new stream: with no other connection, no gateway.
  const again = await ingress(tunnel, ping());
  assert.equal(again.status, 503, again.text);
  assert.match(again.json?.error?.message ?? '', /no gateway/);
  assert.equal(r.frames.some((f) => f.type === T.HEADERS && f.sid === 3), false,
    'no stream opened on a draining connection');
  r.end();
  await serverStillServes();
});

test('a PING flood: answered in full or cut off as flooding, and the server keeps serving', async () => {
  const tunnel = await newTunnel('rogue-pingflood');
  const errs0 = sample(await metrics(), 'airlock_tunnel_protocol_errors_total');
  const logFrom = srv.log().length;
  const r = await rogueGateway(tunnel);
  const n = 50000;
  const ping = frame(T.PING, 0, 0, Buffer.alloc(8));
  r.send(Buffer.concat(Array(n).fill(ping)));
  // Both are correct: an edge that flushes between reads ACKs every PING; one that reads
  // ahead queues ACKs until nghttp2's flood limit ends the connection. A hang is not.
  const acks = () => r.frames.filter((f) => f.type === T.PING && (f.flags & F.ACK)).length;
  for (let i = 0; i < 200 && !r.isClosed && acks() < n; i++)
    await new Promise((res) => setTimeout(res, 50));
  assert.ok(r.isClosed || acks() === n, `neither all PINGs ACKed (${acks()}) nor closed`);
  if (r.isClosed) {
    await waitLog(new RegExp(`protocol error.*connection_id=${r.connId}.*[Ff]lood`), logFrom,
      'the flood');
    await counterRises('airlock_tunnel_protocol_errors_total', '', errs0);
  }
  r.end();
  await serverStillServes();
});
