// A rogue tunnel edge against the real `airlock gateway`: a node:tls server (TLS 1.3, ALPN
// airlock-tunnel/1) that reads the gateway's HELLO, answers READY (or not), then speaks
// hand-built HTTP/2 frames as the client and misbehaves on purpose. After every scenario
// the one gateway process must still be alive and relay a normal request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeEdgeCert } from './lib/edge_cert.mjs';
import { F, H2Peer, PREFACE, T, frame, takeHandshake, u32 } from './lib/h2peer.mjs';

const BIN = process.env.AIRLOCK_BIN;
const TOKEN = `alk_tnl_${randomBytes(24).toString('base64url')}`;
const DOMAIN = 'lbl.tunnel.test';
const HOST = `up.${DOMAIN}`; // the route "up" once the tunnel_domain is stripped
const E = { NO_ERROR: 0, PROTOCOL_ERROR: 1, FLOW_CONTROL_ERROR: 3, STREAM_CLOSED: 5, REFUSED_STREAM: 7, CANCEL: 8 };

let tmp, gw, gwLog = '', metricsPort, edgeSrv, edgePort, upSrv, upPort;
const BIG = Buffer.alloc(64 << 20);
for (let i = 0; i < BIG.length; i += 4) BIG.writeUInt32LE(i, i);
const up = { hits: new Map(), closed: [], bodies: [], sinks: [] }; // what the upstream saw
const accepted = []; // edge connections not yet taken by a scenario
let acceptWaiter = null;
let cur = null; // the edge connection the scenarios use while it lives

// HPACK integer with a 7-bit prefix (RFC 7541 5.1), H bit clear.
function hint(v) {
  if (v < 127) return [v];
  const out = [127];
  for (v -= 127; v >= 128; v = Math.floor(v / 128)) out.push((v % 128) | 128);
  out.push(v);
  return out;
}

// Every field as "literal without indexing, new name" (0x00): no state on either side.
function hpack(fields) {
  const parts = [];
  for (const [n, v] of fields) {
    const nb = Buffer.from(n), vb = Buffer.from(v);
    parts.push(Buffer.from([0x00, ...hint(nb.length)]), nb, Buffer.from(hint(vb.length)), vb);
  }
  return Buffer.concat(parts);
}

// HPACK Huffman codes of the digits (RFC 7541 Appendix B), enough to read a :status.
const HUFF_DIGITS = [['00000', '0'], ['00001', '1'], ['00010', '2'], ['011001', '3'], ['011010', '4'],
  ['011011', '5'], ['011100', '6'], ['011101', '7'], ['011110', '8'], ['011111', '9']];

function huffDigits(b) {
  let bits = '';
  for (const x of b) bits += x.toString(2).padStart(8, '0');
  let out = '';
  for (let i = 0; i < bits.length;) {
    const hit = HUFF_DIGITS.find(([code]) => bits.startsWith(code, i));
    if (!hit) {
      assert.match(bits.slice(i), /^1{0,7}$/, 'a :status value is digits');
      break;
    }
    out += hit[1];
    i += hit[0].length;
  }
  return out;
}

// The :status of a response header block. Our SETTINGS_HEADER_TABLE_SIZE is 0, so the
// gateway's encoder keeps no dynamic table: :status is the first field, either a static
// index (8..14) or a literal with the static name index 8.
const STATIC_STATUS = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };
function statusOf(block) {
  let i = 0;
  while ((block[i] & 0xe0) === 0x20) i++; // dynamic table size updates (small values)
  const b = block[i];
  if (b & 0x80) return STATIC_STATUS[b & 0x7f];
  const nameIdx = b & ((b & 0x40) ? 0x3f : 0x0f);
  assert.equal(nameIdx, 8, `response starts with :status (byte 0x${b.toString(16)})`);
  const huff = block[i + 1] & 0x80, len = block[i + 1] & 0x7f;
  const v = block.subarray(i + 2, i + 2 + len);
  return Number(huff ? huffDigits(v) : v.toString('latin1'));
}

// One edge connection as the gateway dialed it. Collects every frame; with auto on it does
// what any HTTP/2 client must (ACK SETTINGS and PING, reopen the connection window for
// response DATA) and tracks the gateway's windows for request bodies.
class Edge extends H2Peer {
  constructor(sock) {
    super(sock, 'gateway');
    this.t = Date.now();
    this.connId = `tcon_rogue${accepts}`;
    this.phase = 'hello';
    this.auto = true;
    this.nextSid = 1;
    this.connWin = 65535; // what the gateway lets us send (RFC 9113 6.9.2 defaults)
    this.initWin = 65535;
    this.maxFrame = 16384;
    this.streamWin = new Map();
    this.hello = new Promise((resolve) => { this.onHello = resolve; });
    sock.setMaxListeners(0); // send() waits on 'close' once per full write
  }

  onClose() {
    this.onHello(null);
  }

  context() {
    return `; gateway log:\n${gwLog.slice(-3000)}`;
  }

  onData() {
    if (this.phase === 'hello') {
      const hs = takeHandshake(this.buf);
      if (!hs) return;
      this.buf = hs.rest;
      this.phase = 'reply';
      this.onHello({ first: hs.first, fields: hs.fields });
    }
    if (this.phase === 'h2') this.takeFrames();
  }

  onFrame(f) {
    if (f.type !== T.DATA) this.frames.push(f); // DATA is summed per stream, not kept
    else {
      const s = this.stream(f.sid);
      s.data.push(f.payload);
      if (f.flags & F.END_STREAM) s.end = true;
      // As the real edge: both windows reopen as the bytes are taken. A body that fills
      // the stream window exactly otherwise never gets its (empty) END_STREAM frame.
      if (this.auto && f.payload.length) {
        const wu = [frame(T.WINDOW_UPDATE, 0, 0, u32(f.payload.length))];
        if (!s.end) wu.push(frame(T.WINDOW_UPDATE, 0, f.sid, u32(f.payload.length)));
        this.send(Buffer.concat(wu));
      }
    }
    if (f.type === T.SETTINGS && !(f.flags & F.ACK)) {
      for (let i = 0; i + 6 <= f.payload.length; i += 6) {
        const id = f.payload.readUInt16BE(i), v = f.payload.readUInt32BE(i + 2);
        if (id === 4) {
          for (const [k, w] of this.streamWin) this.streamWin.set(k, w + v - this.initWin);
          this.initWin = v;
        }
        if (id === 5) this.maxFrame = v;
        if (id === 3) this.maxStreams = v;
      }
      if (this.auto) this.send(frame(T.SETTINGS, F.ACK, 0));
    }
    if (f.type === T.PING && !(f.flags & F.ACK) && this.auto) this.send(frame(T.PING, F.ACK, 0, f.payload));
    if (f.type === T.WINDOW_UPDATE) {
      const inc = f.payload.readUInt32BE(0) & 0x7fffffff;
      if (f.sid === 0) this.connWin += inc;
      else this.streamWin.set(f.sid, (this.streamWin.get(f.sid) ?? this.initWin) + inc);
    }
    if (f.type === T.HEADERS) {
      const s = this.stream(f.sid);
      if (s.status === undefined) s.status = statusOf(f.payload);
      if (f.flags & F.END_STREAM) s.end = true;
    }
    if (f.type === T.RST_STREAM) this.stream(f.sid).rst = f.payload.readUInt32BE(0);
    this.wake(f);
  }

  stream(sid) {
    this.streams ??= new Map();
    if (!this.streams.has(sid)) this.streams.set(sid, { data: [] });
    return this.streams.get(sid);
  }

  send(b) {
    if (this.isClosed) return Promise.resolve();
    if (this.sock.write(b)) return Promise.resolve();
    return new Promise((resolve) => {
      this.sock.once('drain', resolve);
      this.sock.once('close', resolve);
    });
  }

  // READY (or any reply text), then the client preface and our SETTINGS in the same write,
  // as the real edge does: the gateway must hand the bytes after READY to nghttp2.
  ready(reply = readyText('200 OK', this.connId), h2 = true) {
    this.phase = 'h2';
    const settings = Buffer.concat([
      Buffer.from([0, 1]), u32(0), // HEADER_TABLE_SIZE 0: see statusOf
      Buffer.from([0, 2]), u32(0), // ENABLE_PUSH 0
      Buffer.from([0, 4]), u32(4 << 20), // INITIAL_WINDOW_SIZE 4 MiB, as the edge
    ]);
    return this.send(Buffer.concat([Buffer.from(reply),
      h2 ? Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0, settings)]) : Buffer.alloc(0)]));
  }

  // Opens a stream with a request; returns its id.
  request({ method = 'GET', path: p = '/hello', authority = HOST, end = true, fields, extra = [] } = {}) {
    const sid = this.nextSid;
    this.nextSid += 2;
    const block = hpack(fields ?? [[':method', method], [':scheme', 'https'], [':authority', authority],
      [':path', p], ...extra]);
    this.send(frame(T.HEADERS, F.END_HEADERS | (end ? F.END_STREAM : 0), sid, block));
    return sid;
  }

  // A request body within the gateway's windows (waits for WINDOW_UPDATE as a client must).
  async body(sid, data, end = true) {
    let off = 0;
    while (off < data.length || (end && off === 0 && data.length === 0)) {
      if (this.stream(sid).rst !== undefined) return; // reset: stop, as a client must
      const win = Math.min(this.connWin, this.streamWin.get(sid) ?? this.initWin);
      const n = Math.min(data.length - off, win, this.maxFrame);
      if (n <= 0 && data.length > 0) {
        const f = await this.waitFrame((x) => x.type === T.WINDOW_UPDATE && !x.seenBy?.has(sid) &&
          (x.seenBy = (x.seenBy ?? new Set()).add(sid)), 'WINDOW_UPDATE').catch(() => null);
        if (f === null || this.isClosed || this.stream(sid).rst !== undefined || this.stream(sid).end) return;
        continue;
      }
      this.connWin -= n;
      this.streamWin.set(sid, (this.streamWin.get(sid) ?? this.initWin) - n);
      const last = off + n === data.length;
      await this.send(frame(T.DATA, last && end ? F.END_STREAM : 0, sid, data.subarray(off, off + n)));
      off += n;
      if (data.length === 0) break;
    }
  }

  // The answer on sid: resolves once it ended (END_STREAM) or was reset.
  async response(sid, what = `answer on stream ${sid}`) {
    const done = (f) => f.sid === sid && (f.type === T.RST_STREAM || this.stream(sid).end) ||
      (f.type === T.GOAWAY);
    const s = this.stream(sid);
    if (!(s.end || s.rst !== undefined)) await this.waitFrame(done, what);
    return { status: s.status, body: Buffer.concat(s.data).toString(), rst: s.rst, end: !!s.end };
  }

  end() {
    this.sock.destroy();
  }
}

function readyText(status, connId) {
  return `AIRLOCK-TUNNEL/1 ${status}\r\nTunnel-Id: tnl_rogue\r\nConnection-Id: ${connId}\r\n` +
    `Tunnel-Domain: ${DOMAIN}\r\n\r\n`;
}

let accepts = 0;
function nextConn(ms = 15000) {
  if (accepted.length) return Promise.resolve(accepted.shift());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      acceptWaiter = null;
      reject(new Error(`the gateway did not dial again; its log:\n${gwLog.slice(-3000)}`));
    }, ms);
    acceptWaiter = (e) => {
      clearTimeout(timer);
      resolve(e);
    };
  });
}

// The next dial from the gateway, its HELLO checked, READY answered, SETTINGS exchanged.
async function register() {
  const e = await nextConn();
  const h = await e.hello;
  assert.ok(h, 'the gateway sent a HELLO');
  assert.equal(h.first, 'AIRLOCK-TUNNEL/1');
  assert.equal(h.fields.Token, TOKEN, 'HELLO carries the token from token_file');
  assert.equal(h.fields['Connection-Index'], '0');
  assert.match(h.fields['Gateway-Id'] ?? '', /^gw_/);
  await e.ready();
  await e.waitFrame((f) => f.type === T.SETTINGS && !(f.flags & F.ACK), 'gateway SETTINGS');
  await e.waitFrame((f) => f.type === T.SETTINGS && (f.flags & F.ACK), 'gateway SETTINGS ACK');
  assert.equal(e.maxStreams, 4096);
  assert.equal(e.initWin, 1 << 20);
  return e;
}

// The current connection, or the next one once the gateway has redialed.
async function conn() {
  if (cur === null || cur.isClosed) cur = await register();
  return cur;
}

async function metrics() {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  const m = {};
  for (const line of (await res.text()).split('\n')) {
    const [k, v] = line.split(' ');
    if (k && !k.startsWith('#')) m[k.replace(/^airlock_gateway_/, '')] = Number(v);
  }
  return m;
}

async function until(what, ok, tries = 200) {
  let last;
  for (let i = 0; i < tries; i++) {
    last = await ok();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}; gateway log:\n${gwLog.slice(-3000)}`);
}

function logLines(from = 0) {
  return gwLog.slice(from).split('\n').filter(Boolean).map((l) => {
    try { return JSON.parse(l); } catch { return { msg: l }; }
  });
}

async function waitLog(pred, from, what) {
  return until(`the gateway log shows ${what}`, () => logLines(from).find(pred));
}

function rssKiB() {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${gw.pid}/status`, 'utf8'))[1]);
}

// The invariant of every scenario: the process lives and relays a normal GET (on the
// current connection, or on the one it redials).
async function gatewayServes() {
  assert.equal(gw.exitCode, null, `gateway exited: ${gwLog.slice(-2000)}`);
  assert.equal(gw.signalCode, null, 'gateway not killed by a signal');
  const e = await conn();
  const hits = up.hits.get('/hello') ?? 0;
  const r = await e.response(e.request());
  assert.equal(r.status, 200, JSON.stringify(r));
  assert.equal(r.body, 'hello from upstream\n');
  assert.equal(up.hits.get('/hello'), hits + 1);
  return e;
}

before(async () => {
  assert.ok(BIN, 'AIRLOCK_BIN is set (run through meson test)');
  tmp = mkdtempSync(path.join(tmpdir(), 'airlock-redge-'));
  const c = makeEdgeCert(tmp, 'rogue edge CA');
  upSrv = http.createServer((req, res) => {
    const p = req.url.split('?')[0];
    up.hits.set(p, (up.hits.get(p) ?? 0) + 1);
    if (p === '/slow') { // streams until the gateway goes away
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const t = setInterval(() => res.write('data: tick\n\n'), 20);
      res.on('close', () => { clearInterval(t); up.closed.push(p); });
      return;
    }
    if (p === '/big') { // 64 MiB of a known pattern, written as fast as the gateway takes it
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length });
      up.bigWritten = 0;
      const more = () => {
        while (up.bigWritten < BIG.length) {
          const n = Math.min(256 << 10, BIG.length - up.bigWritten);
          const ok = res.write(BIG.subarray(up.bigWritten, up.bigWritten + n));
          up.bigWritten += n;
          if (!ok) return res.once('drain', more);
        }
        res.end();
      };
      return more();
    }
    if (p === '/delay') { // answers after 300 ms
      setTimeout(() => res.end('late answer\n'), 300);
      return;
    }
    if (p === '/sink') { // reads nothing and never answers, until the gateway goes away
      req.pause();
      up.sinks.push(req);
      res.on('close', () => up.closed.push(p));
      return;
    }
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const b = Buffer.concat(chunks);
      if (p === '/echo') {
        up.bodies.push(b.length);
        res.writeHead(201, { 'content-type': 'application/octet-stream', 'content-length': b.length });
        return res.end(b);
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('hello from upstream\n');
    });
  });
  await new Promise((r) => upSrv.listen(0, '127.0.0.1', r));
  upPort = upSrv.address().port;
  edgeSrv = tls.createServer({
    key: readFileSync(c.key), cert: readFileSync(c.cert),
    ALPNProtocols: ['airlock-tunnel/1'], minVersion: 'TLSv1.3',
  }, (sock) => {
    accepts++;
    const e = new Edge(sock);
    if (acceptWaiter) {
      const w = acceptWaiter;
      acceptWaiter = null;
      w(e);
    } else accepted.push(e);
  });
  await new Promise((r) => edgeSrv.listen(0, '127.0.0.1', r));
  edgePort = edgeSrv.address().port;
  writeFileSync(path.join(tmp, 'token'), `${TOKEN}\n`);
  const cfg = path.join(tmp, 'gw.yaml');
  writeFileSync(cfg, [
    `server: 127.0.0.1:${edgePort}`,
    'server_name: localhost',
    `server_ca_file: ${c.ca}`,
    `token_file: ${path.join(tmp, 'token')}`,
    'connections: 1',
    'metrics_listen: 127.0.0.1:0',
    `tunnel_domain: ${DOMAIN}`,
    'shutdown_timeout: 1s',
    'routes:',
    `  up: http://127.0.0.1:${upPort}`,
    'upstream:',
    '  allowed_ips: [127.0.0.0/8]',
    '',
  ].join('\n'));
  gw = spawn(BIN, ['gateway', '--config', cfg, '--log-format', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  gw.stderr.on('data', (d) => { gwLog += d; });
  const line = await until('the gateway logs its metrics port',
    () => logLines().find((l) => l.msg === 'metrics listening'));
  metricsPort = Number(line.port);
  assert.ok(metricsPort > 0);
});

after(async () => {
  for (const e of accepted) e.end();
  cur?.end();
  if (gw && gw.exitCode === null) {
    gw.kill('SIGKILL');
    await new Promise((r) => gw.once('exit', r));
  }
  edgeSrv?.close();
  upSrv?.closeAllConnections?.();
  upSrv?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('1. sanity: a GET on stream 1 comes back as HEADERS + DATA from the upstream', async () => {
  const m0 = await metrics();
  const e = await gatewayServes();
  assert.equal(e.streams.get(1)?.status, 200, 'the first request is stream 1');
  const m = await metrics();
  assert.equal(m.ha_connections, 1);
  assert.equal(m.requests_total, m0.requests_total + 1);
  assert.ok(logLines().some((l) => l.msg === 'Registered tunnel connection' && l.connection_id?.startsWith('tcon_rogue')));
  // A POST body within the windows reaches the upstream whole.
  const body = randomBytes(300 * 1024);
  const sid = e.request({ method: 'POST', path: '/echo', end: false });
  await e.body(sid, body);
  const r = await e.response(sid);
  assert.equal(r.status, 201);
  assert.equal(up.bodies.at(-1), body.length);
});

test('2. unknown :authority: local 404 naming the route, counted and logged', async () => {
  const e = await conn();
  const m0 = await metrics();
  const from = gwLog.length;
  const hits = [...up.hits.values()].reduce((a, b) => a + b, 0);
  const r = await e.response(e.request({ authority: 'nope.example' }));
  assert.equal(r.status, 404);
  assert.equal(r.body, 'no route "nope" in this gateway\'s routes\n');
  const m = await metrics();
  assert.equal(m.no_route_total, m0.no_route_total + 1);
  assert.equal(m.requests_total, m0.requests_total + 1);
  assert.equal([...up.hits.values()].reduce((a, b) => a + b, 0), hits, 'the upstream was not called');
  await waitLog((l) => l.msg === 'no route for host' && l.host === 'nope.example', from, 'the host');
  await gatewayServes();
});

test('3. malformed pseudo-headers: stream reset or 400, the connection carries on', async () => {
  const e = await conn();
  const base = [[':method', 'GET'], [':scheme', 'https'], [':authority', HOST]];
  // Malformed per RFC 9113 8.3: nghttp2 resets these before the gateway sees a request.
  for (const [what, fields] of [
    ['no :path', base],
    ['no :method', [[':scheme', 'https'], [':authority', HOST], [':path', '/hello']]],
    ['unknown pseudo-header', [...base, [':path', '/hello'], [':bogus', 'x']]],
    ['pseudo-header after a regular one', [[':method', 'GET'], ['x-a', '1'], [':path', '/hello'], [':scheme', 'https']]],
    ['two :path', [...base, [':path', '/hello'], [':path', '/hello']]],
    ['upper-case name', [...base, [':path', '/hello'], ['X-Upper', '1']]],
    ['CR LF in a value', [...base, [':path', '/hello'], ['x-inject', 'a\r\nx-evil: 1']]],
    ['connection-specific header', [...base, [':path', '/hello'], ['connection', 'close']]],
    ['NUL in a value', [...base, [':path', '/hello'], ['x-nul', 'a\0b']]],
    ['space in a name', [...base, [':path', '/hello'], ['x bad', '1']]],
    ['space in :path', [...base, [':path', '/hello HTTP/1.1']]],
    ['space in :method', [[':method', 'GET /x'], [':scheme', 'https'], [':authority', HOST], [':path', '/hello']]],
  ]) {
    const r = await e.response(e.request({ fields }), what);
    assert.equal(r.rst, E.PROTOCOL_ERROR, `${what}: RST_STREAM(PROTOCOL_ERROR), got ${JSON.stringify(r)}`);
  }
  // Well-formed HTTP/2 that the gateway itself cannot forward: a 400 of its own.
  for (const [what, fields] of [
    ['CONNECT (no :path)', [[':method', 'CONNECT'], [':authority', HOST]]],
    ['asterisk-form :path', [[':method', 'OPTIONS'], [':scheme', 'https'], [':authority', HOST], [':path', '*']]],
  ]) {
    const r = await e.response(e.request({ fields }), what);
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r)}`);
    assert.match(r.body, /^bad request: :method and an origin-form :path are required/);
  }
  assert.equal(e.isClosed, false, 'no connection error for a stream error');
  assert.equal(e.frames.some((f) => f.type === T.GOAWAY), false);
  await gatewayServes();
  assert.equal(cur, e, 'the same connection serves the next request');
});

test('4. a header block over 64 KiB (in CONTINUATION frames): 431, connection lives', async () => {
  const e = await conn();
  const extra = [];
  for (let i = 0; i < 70; i++) extra.push([`x-pad-${i}`, 'v'.repeat(1000)]);
  const block = hpack([[':method', 'GET'], [':scheme', 'https'], [':authority', HOST], [':path', '/hello'], ...extra]);
  assert.ok(block.length > 64 * 1024);
  const sid = e.nextSid;
  e.nextSid += 2;
  const parts = [];
  for (let off = 0; off < block.length; off += 16384) parts.push(block.subarray(off, off + 16384));
  parts.forEach((p, i) => e.send(frame(i === 0 ? T.HEADERS : T.CONTINUATION,
    (i === 0 ? F.END_STREAM : 0) | (i === parts.length - 1 ? F.END_HEADERS : 0), sid, p)));
  const hits = up.hits.get('/hello') ?? 0;
  const r = await e.response(sid);
  // nghttp2 does not enforce the advertised limit itself; the gateway's 64 KiB header
  // buffer does, with a local answer.
  assert.equal(r.status, 431, JSON.stringify(r));
  assert.equal(r.body, 'request header fields too large\n');
  assert.equal(up.hits.get('/hello') ?? 0, hits, 'the upstream was not called');
  // 101 small headers: under the byte limit, over the gateway's count limit.
  const many = [];
  for (let i = 0; i < 101; i++) many.push([`x-n-${i}`, '1']);
  const r2 = await e.response(e.request({ extra: many }));
  assert.equal(r2.status, 431, JSON.stringify(r2));
  assert.equal(e.isClosed, false);
  await gatewayServes();
});

test('4b. a CONTINUATION flood (CVE-2024-27316 style): connection dropped with the reason, serves on', async () => {
  const e = await conn();
  const from = gwLog.length;
  const sid = e.nextSid;
  e.nextSid += 2;
  const one = hpack([['x-c', '1']]);
  const parts = [frame(T.HEADERS, F.END_STREAM, sid, hpack([[':method', 'GET'], [':scheme', 'https'],
    [':authority', HOST], [':path', '/hello']]))];
  for (let i = 0; i < 100000; i++) parts.push(frame(T.CONTINUATION, 0, sid, one));
  parts.push(frame(T.CONTINUATION, F.END_HEADERS, sid, one));
  await e.send(Buffer.concat(parts));
  // nghttp2 (1.52.0-1+deb12u3 carries the CVE-2024-28182 fix) ends the connection.
  await e.waitClosed();
  const l = await waitLog((x) => x.msg === 'tunnel connection lost' && x.connection_id === e.connId,
    from, 'the lost connection');
  assert.match(l.error, /^HTTP\/2: Too many CONTINUATION frames/);
  assert.ok(rssKiB() < RSS_CAP_KIB);
  await gatewayServes();
});

test('5. a request body over REQ_BODY_MAX (32 MiB): 413, the upstream never called', async () => {
  const e = await conn();
  const m0 = await metrics();
  const echoes = up.hits.get('/echo') ?? 0;
  const sid = e.request({ method: 'POST', path: '/echo', end: false });
  // A body that does not end: the gateway must answer before it does.
  const sending = e.body(sid, Buffer.alloc(40 << 20, 0x61), false);
  const r = await e.response(sid);
  await sending;
  assert.equal(r.status, 413, JSON.stringify({ ...r, body: r.body.slice(0, 100) }));
  assert.equal(r.body, 'request body too large\n');
  // The answer is complete before the request: RST_STREAM(NO_ERROR) says stop sending
  // (RFC 9113 8.1), and the stream is gone on both sides.
  await e.waitFrame((f) => f.type === T.RST_STREAM && f.sid === sid, 'RST_STREAM after the 413');
  assert.equal(e.stream(sid).rst, E.NO_ERROR);
  await until('the stream is freed', async () => (await metrics()).active_streams === 0);
  assert.equal(up.hits.get('/echo') ?? 0, echoes, 'the upstream never saw the request');
  assert.equal((await metrics()).request_errors_total, m0.request_errors_total + 1);
  // DATA the edge had in flight when the reset came is dropped, not a connection error.
  await gatewayServes();
  assert.equal(cur, e, 'the same connection carries on');
  assert.equal(e.frames.some((f) => f.type === T.GOAWAY), false);
});

// nghttp2 answers these with a connection error (GOAWAY) where RFC 9113 also allows a
// stream error: the gateway must say why in its log and dial again.
async function connectionError(send, code, name, detail) {
  const e = await conn();
  const m0 = await metrics();
  const from = gwLog.length;
  await send(e);
  const g = await e.waitFrame((f) => f.type === T.GOAWAY, 'GOAWAY');
  assert.ok(g, 'GOAWAY before the close');
  assert.equal(g.payload.readUInt32BE(4), code, `GOAWAY code (${g.payload.subarray(8)})`);
  await e.waitClosed();
  const l = await waitLog((x) => x.msg === 'tunnel connection lost' && x.connection_id === e.connId,
    from, 'the lost connection');
  assert.ok(l.error.startsWith(`sent GOAWAY(${name})`), l.error);
  assert.match(l.error, detail);
  await gatewayServes();
  assert.notEqual(cur, e, 'a new connection');
  assert.ok((await metrics()).reconnects_total > m0.reconnects_total);
}

test('7a. DATA after END_STREAM (answer still streaming): GOAWAY(STREAM_CLOSED), upstream aborted', async () => {
  up.closed.length = 0;
  let sid;
  await connectionError(async (e) => {
    sid = e.request({ path: '/slow' });
    await e.waitFrame((f) => f.type === T.HEADERS && f.sid === sid, 'the /slow head');
    e.send(frame(T.DATA, 0, sid, Buffer.from('late')));
  }, E.STREAM_CLOSED, 'STREAM_CLOSED', /half-closed/);
  await until('the upstream sees the stream end', () => up.closed.includes('/slow'));
  assert.equal((await metrics()).active_streams, 0);
});

test('7b. DATA on a stream that never opened: GOAWAY(PROTOCOL_ERROR)', async () => {
  await connectionError((e) => e.send(frame(T.DATA, 0, e.nextSid + 100, Buffer.from('never opened'))),
    E.PROTOCOL_ERROR, 'PROTOCOL_ERROR', /idle/);
});

test('7c. DATA on a stream that has closed: GOAWAY(STREAM_CLOSED)', async () => {
  await connectionError(async (e) => {
    const done = e.request();
    await e.response(done);
    e.send(frame(T.DATA, 0, done, Buffer.from('after the end')));
  }, E.STREAM_CLOSED, 'STREAM_CLOSED', /stream closed/);
});

test('8. RST_STREAM(CANCEL) mid-answer: the gateway aborts the upstream request', async () => {
  const e = await conn();
  up.closed.length = 0;
  const sid = e.request({ path: '/slow' });
  await e.waitFrame((f) => f.type === T.HEADERS && f.sid === sid, 'the /slow head');
  await until('some of the answer arrived', () => e.stream(sid).data.length >= 2);
  assert.equal((await metrics()).active_streams, 1);
  e.send(frame(T.RST_STREAM, 0, sid, u32(E.CANCEL)));
  await until('the upstream sees its socket closed', () => up.closed.includes('/slow'));
  await until('the stream is gone', async () => (await metrics()).active_streams === 0);
  await gatewayServes();
});

// A flood ends either fully answered or cut off as flooding; both are bounded. What is
// not: a crash, a hang, or memory that grows with the flood.
const RSS_CAP_KIB = 200 * 1024;

test('9a. 5,000 streams opened at once, answers unread: 4096 held, the 4097th is a connection error', async () => {
  const e = await conn();
  const hits = up.hits.get('/echo') ?? 0;
  e.sock.pause(); // read nothing the gateway sends
  const open = (n) => {
    const hdrs = [];
    for (let i = 0; i < n; i++) {
      hdrs.push(frame(T.HEADERS, F.END_HEADERS, e.nextSid, hpack([[':method', 'POST'], [':scheme', 'https'],
        [':authority', HOST], [':path', `/echo?i=${i}`]])));
      e.nextSid += 2;
    }
    return e.send(Buffer.concat(hdrs));
  };
  // Requests without END_STREAM: each holds a stream and its request state.
  await open(4096);
  await until('the gateway holds the streams', async () => (await metrics()).active_streams === 4096);
  const rss = rssKiB();
  assert.ok(rss < RSS_CAP_KIB, `VmRSS ${rss} KiB with 4096 open streams`);
  const from = gwLog.length;
  await open(904);
  e.sock.resume();
  // Past the acknowledged MAX_CONCURRENT_STREAMS nghttp2 ends the connection (RFC 9113
  // 5.1.2 allows that or REFUSED_STREAM); every stream it held is freed with it.
  const g = await e.waitFrame((f) => f.type === T.GOAWAY, 'GOAWAY');
  assert.ok(g, 'GOAWAY before the close');
  assert.equal(g.payload.readUInt32BE(4), E.PROTOCOL_ERROR);
  await e.waitClosed();
  const l = await waitLog((x) => x.msg === 'tunnel connection lost' && x.connection_id === e.connId,
    from, 'the lost connection');
  assert.match(l.error, /^sent GOAWAY\(PROTOCOL_ERROR\): .*max concurrent streams exceeded/);
  await until('the streams are freed', async () => (await metrics()).active_streams === 0);
  assert.equal(up.hits.get('/echo') ?? 0, hits, 'no request without END_STREAM went upstream');
  assert.ok(rssKiB() < RSS_CAP_KIB);
  await gatewayServes();
});

// Ten POSTs to p with 24 MiB bodies (ended or not), sent one after the other; resolves
// once the gateway has read them all (a GET behind them is answered).
async function tenBigBodies(e, p, end) {
  const chunk = Buffer.alloc(24 << 20, 0x62);
  const sids = [];
  for (let i = 0; i < 10; i++) {
    const sid = e.request({ method: 'POST', path: p, end: false });
    sids.push(sid);
    await e.body(sid, chunk, end);
  }
  await e.response(e.request());
  return { sids, chunk };
}

// Flow control does not bound what the gateway buffers: it reopens its windows as bytes
// arrive and holds a request body until END_STREAM (REQ_BODY_MAX each). Bodies on many
// streams that never end must not add up without limit.
test('9b. large request bodies on 10 streams that never end: memory bounded', async () => {
  const e = await conn();
  const hits = up.hits.get('/echo') ?? 0;
  const { sids, chunk } = await tenBigBodies(e, '/echo', false);
  const rss = rssKiB();
  assert.ok(rss < RSS_CAP_KIB, `VmRSS ${rss} KiB holding 10 unfinished 24 MiB bodies`);
  // 64 MiB per connection: two bodies fit, each further one is refused as it crosses the
  // cap (and its bytes freed), so the first two can still finish.
  for (const [i, sid] of sids.entries()) {
    if (i < 2) {
      assert.equal(e.stream(sid).status, undefined, `stream ${sid} held`);
      continue;
    }
    const r = await e.response(sid);
    assert.equal(r.status, 503, `stream ${sid}: ${JSON.stringify(r)}`);
    assert.equal(r.body, 'gateway busy: too many request bytes buffered\n');
    await e.waitFrame((f) => f.type === T.RST_STREAM && f.sid === sid, `RST_STREAM(NO_ERROR) on ${sid}`);
    assert.equal(e.stream(sid).rst, E.NO_ERROR, 'the edge is told to stop sending');
  }
  await e.body(sids[0], Buffer.alloc(0));
  const done = await e.response(sids[0]);
  assert.equal(done.status, 201);
  assert.equal(up.bodies.at(-1), chunk.length, 'a held body reaches the upstream whole');
  e.send(frame(T.RST_STREAM, 0, sids[1], u32(E.CANCEL)));
  await until('the streams are freed', async () => (await metrics()).active_streams === 0);
  assert.equal(up.hits.get('/echo') ?? 0, hits + 1, 'only the finished request went upstream');
  await gatewayServes();
  assert.equal(cur, e, 'the same connection carries on');
  assert.equal(e.frames.some((f) => f.type === T.GOAWAY), false);
});

// ... nor once the requests have ended and wait for an upstream that does not read them:
// a body handed to the upstream client is still the gateway's memory.
test('9c. large finished requests to an upstream that reads nothing: memory bounded', async () => {
  const e = await conn();
  up.closed.length = 0;
  const { sids } = await tenBigBodies(e, '/sink', true);
  const rss = rssKiB();
  assert.ok(rss < RSS_CAP_KIB, `VmRSS ${rss} KiB holding 10 24 MiB requests for /sink`);
  const refused = sids.filter((sid) => e.stream(sid).status === 503);
  assert.ok(refused.length >= 7, `most were refused: ${refused.length}`);
  for (const sid of sids) if (!refused.includes(sid)) e.send(frame(T.RST_STREAM, 0, sid, u32(E.CANCEL)));
  await until('the streams are freed', async () => (await metrics()).active_streams === 0);
  // The upstream reads again: a closed connection shows as EOF behind the unread bytes.
  for (const r of up.sinks) r.resume();
  await until('the upstream requests are aborted', () => up.closed.length === sids.length - refused.length);
  await gatewayServes();
  assert.equal(cur, e, 'the same connection carries on');
});

for (const [what, one] of [
  ['SETTINGS', frame(T.SETTINGS, 0, 0)],
  ['PING', frame(T.PING, 0, 0, Buffer.alloc(8))],
]) {
  test(`9. a ${what} flood with the answers unread: ACKed or cut off as a flood, memory bounded`, async () => {
    const e = await conn();
    const from = gwLog.length;
    const n = 100000;
    e.sock.pause();
    await e.send(Buffer.concat(Array(n).fill(one)));
    // Either nghttp2's flood guard ends the connection, or every frame gets its ACK (which
    // we do not read yet): give it up to 2 s to do either before looking at its memory.
    for (let i = 0; i < 40 && !e.isClosed && !logLines(from).some((l) => l.connection_id === e.connId); i++)
      await new Promise((r) => setTimeout(r, 50));
    const rss = rssKiB();
    assert.ok(rss < RSS_CAP_KIB, `VmRSS ${rss} KiB after the flood`);
    e.sock.resume();
    const acks = () => e.frames.filter((f) => f.type === one[3] && (f.flags & F.ACK)).length;
    await until('all ACKed or closed', () => e.isClosed || acks() >= n);
    if (e.isClosed) {
      await waitLog((l) => l.msg === 'tunnel connection lost' && l.connection_id === e.connId &&
        /[Ff]lood/.test(l.error ?? ''), from, 'the flood as the reason');
    }
    await gatewayServes();
  });
}

test('6. DATA past the 1 MiB stream window without waiting for WINDOW_UPDATE', async () => {
  const e = await conn();
  const body = randomBytes(4 << 20);
  const sid = e.request({ method: 'POST', path: '/echo', end: false });
  // Four 1 MiB frames (the gateway's MAX_FRAME_SIZE) in one write, windows ignored.
  const frames = [];
  for (let off = 0; off < body.length; off += 1 << 20)
    frames.push(frame(T.DATA, off + (1 << 20) >= body.length ? F.END_STREAM : 0, sid, body.subarray(off, off + (1 << 20))));
  await e.send(Buffer.concat(frames));
  const r = await e.response(sid);
  const g = e.frames.find((f) => f.type === T.GOAWAY);
  if (r.rst !== undefined) assert.equal(r.rst, E.FLOW_CONTROL_ERROR);
  else if (g) assert.equal(g.payload.readUInt32BE(4), E.FLOW_CONTROL_ERROR);
  else {
    assert.equal(r.status, 201, JSON.stringify({ ...r, body: r.body.length }));
    assert.equal(up.bodies.at(-1), body.length, 'the upstream got the whole body');
  }
  await gatewayServes();
});

// The edge cannot overrun the gateway's receive windows (above), but it can break flow
// control the other way: a WINDOW_UPDATE that lifts the gateway's send window past
// 2^31-1 (RFC 9113 6.9.1). On a stream that resets the stream, on the connection it is
// a connection error.
test('6b. WINDOW_UPDATE past 2^31-1: RST_STREAM / GOAWAY(FLOW_CONTROL_ERROR), upstream aborted', async () => {
  const e = await conn();
  up.closed.length = 0;
  const sid = e.request({ path: '/slow' });
  await e.waitFrame((f) => f.type === T.HEADERS && f.sid === sid, 'the /slow head');
  e.send(frame(T.WINDOW_UPDATE, 0, sid, u32(0x7fffffff)));
  const rst = await e.waitFrame((f) => f.type === T.RST_STREAM && f.sid === sid, 'RST_STREAM');
  assert.equal(rst.payload.readUInt32BE(0), E.FLOW_CONTROL_ERROR);
  await until('the upstream request is aborted', () => up.closed.includes('/slow'));
  await gatewayServes();
  assert.equal(cur, e, 'a stream error only');
  await connectionError((x) => x.send(frame(T.WINDOW_UPDATE, 0, 0, u32(0x7fffffff))),
    E.FLOW_CONTROL_ERROR, 'FLOW_CONTROL_ERROR', /^sent GOAWAY\(FLOW_CONTROL_ERROR\)$/);
});

// GOAWAY from the edge (it drains, or it gives up on us): streams it already opened
// finish, then the gateway dials again and logs what the edge said. The reason text is
// the edge's bytes: only printable ASCII reaches the log.
test('12. GOAWAY from the edge: running stream finishes, reason logged (sanitised), redial', async () => {
  const e = await conn();
  const from = gwLog.length;
  const sid = e.request({ path: '/delay' });
  const debug = Buffer.concat([Buffer.from('going away\nx-evil: 1 '), Buffer.from([0xff, 0x00]), Buffer.from('end')]);
  // Last stream 0: the gateway (the HTTP/2 server) opens no streams of its own.
  e.send(frame(T.GOAWAY, 0, 0, Buffer.concat([u32(0), u32(E.PROTOCOL_ERROR), debug])));
  const r = await e.response(sid);
  assert.equal(r.status, 200, 'a stream opened before the GOAWAY is answered');
  assert.equal(r.body, 'late answer\n');
  await e.waitClosed();
  const l = await waitLog((x) => x.msg === 'tunnel connection lost' && x.connection_id === e.connId,
    from, 'the lost connection');
  assert.equal(l.error, 'edge sent GOAWAY(PROTOCOL_ERROR): going away?x-evil: 1 ??end');
  assert.equal(gwLog.slice(from).includes('\nx-evil'), false, 'no line injected into the log');
  await gatewayServes();
  assert.notEqual(cur, e);
});

// An edge that stops granting window mid-answer (a client that stopped reading): the
// gateway must pause the upstream instead of buffering the answer, and resume it when
// the window reopens, with the bytes intact.
test('13. a large answer stalled by a zero window, then reopened: upstream paused, answer whole', async () => {
  const e = await conn();
  const rss0 = rssKiB();
  // New streams start with no window: the answer's HEADERS pass, no DATA does.
  const acks = () => e.frames.filter((f) => f.type === T.SETTINGS && (f.flags & F.ACK)).length;
  const acks0 = acks();
  e.send(frame(T.SETTINGS, 0, 0, Buffer.concat([Buffer.from([0, 4]), u32(0)])));
  await until('the zero window is acknowledged', () => acks() > acks0);
  const sid = e.request({ path: '/big' });
  await e.waitFrame((f) => f.type === T.HEADERS && f.sid === sid, 'the /big head');
  // Wait (bounded) until the upstream stops writing: it is paused, or done.
  let last = -1;
  for (let i = 0; i < 60 && up.bigWritten !== last; i++) {
    last = up.bigWritten;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(up.bigWritten < BIG.length, `the upstream was paused (${up.bigWritten} bytes written)`);
  const rss = rssKiB();
  assert.ok(rss - rss0 < 32 * 1024, `VmRSS grew ${rss - rss0} KiB while the answer was stalled`);
  assert.equal(e.stream(sid).data.length, 0, 'no DATA without window');
  // Reopen: the stream's window, and new streams' default again.
  e.send(frame(T.SETTINGS, 0, 0, Buffer.concat([Buffer.from([0, 4]), u32(4 << 20)])));
  const r = await e.response(sid, 'the whole /big answer');
  assert.equal(r.status, 200);
  const got = Buffer.concat(e.stream(sid).data);
  assert.equal(got.length, BIG.length);
  assert.ok(got.equals(BIG), 'the answer arrived intact and in order');
  e.streams.delete(sid);
  await gatewayServes();
  assert.equal(cur, e);
});

// Makes the gateway dial again: the edge hangs up the current connection.
async function hangUp() {
  const e = await conn();
  const from = gwLog.length;
  e.end();
  if (cur === e) cur = null;
  await waitLog((l) => l.msg === 'tunnel connection lost' && l.connection_id === e.connId &&
    l.error === 'closed by edge', from, 'the closed connection');
}

// Tests 10 and 11 run as one chain of dials: the backoff grows with each failed one
// (1, 2, 4 s ±20 %), so the chain is what shows it; the gateway serves again at the end.
let chained = null; // the dial after the last failure in the chain

// Sends a bad reply on an accepted dial; returns the next dial and the "failed" line.
async function badDial(e, send, minGap) {
  assert.ok(await e.hello, 'a HELLO first');
  const from = gwLog.length;
  const t0 = Date.now();
  await send(e);
  await e.waitClosed();
  const l = await waitLog((x) => (x.msg === 'tunnel connection failed' || x.msg === 'tunnel connection lost' ||
    x.msg === 'edge refused the tunnel token') && x.error !== 'closed by edge', from, 'why the dial failed');
  const next = await nextConn();
  // A lower bound only: the timer cannot fire early, a slow machine only adds to it.
  assert.ok(next.t - t0 >= minGap, `redialed after ${next.t - t0} ms, backoff ≥ ${minGap} ms`);
  assert.equal(gw.exitCode, null, 'the gateway lives');
  return { next, l };
}

test('10. garbage after READY instead of the preface: clear error, redial with backoff', async () => {
  await hangUp();
  const m0 = await metrics();
  const e = await nextConn();
  const { next, l } = await badDial(e, async (x) => {
    await x.ready(readyText('200 OK', x.connId), false);
    await x.send(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\n\r\n'), randomBytes(4096)]));
  }, 750);
  assert.equal(l.msg, 'tunnel connection lost', 'READY registered the connection');
  assert.equal(l.connection_id, e.connId);
  assert.match(l.error, /^HTTP\/2: .*magic/i);
  assert.ok((await metrics()).reconnects_total >= m0.reconnects_total + 1);
  chained = next;
});

test('11. bad handshake replies: clear errors, retried with growing backoff, never a crash', async () => {
  assert.ok(chained, 'test 10 left the next dial');
  const pad = Array.from({ length: 8 }, (_, i) => `X-Pad-${i}: ${'a'.repeat(500)}\r\n`).join('');
  let e = chained;
  for (const [what, reply, why, minGap] of [
    ['a wrong status line', 'HTTP/1.1 200 OK\r\nServer: not-an-edge\r\n\r\n', /^malformed handshake reply/, 1500],
    ['a reply over 4096 bytes', `AIRLOCK-TUNNEL/1 200 OK\r\n${pad}`, /^handshake reply over 4096 bytes$/, 3000],
  ]) {
    const { next, l } = await badDial(e, (x) => x.send(reply), minGap);
    assert.equal(l.msg, 'tunnel connection failed', what);
    assert.match(l.error, why, what);
    e = next;
  }
  accepted.unshift(e);
  await gatewayServes();
});

test('11b. a 401 refusal: logged with its reason, retried, never a crash', async () => {
  await hangUp();
  const from = gwLog.length;
  const { next, l } = await badDial(await nextConn(),
    (x) => x.send('AIRLOCK-TUNNEL/1 401 invalid tunnel token\r\n\r\n'), 1500);
  // one line per refused attempt: the reason, and when the next dial comes
  assert.equal(l.msg, 'edge refused the tunnel token');
  assert.equal(l.status, 401);
  assert.equal(l.reason, 'invalid tunnel token');
  assert.equal(typeof l.retry_ms, 'number');
  assert.equal(logLines(from).filter((x) => x.msg === 'tunnel connection failed').length, 0,
    'no second line for the same refusal');
  accepted.unshift(next);
  await gatewayServes();
});
