// Hostile HTTP/1.x clients against the tunnel ingress (lib/http + tunnel_ingress.c), with
// a real `airlock gateway` and a node upstream that records every request it receives.
// Raw bytes over TCP: smuggling framings, pipelining behind chunked and broken-off
// answers, Expect: 100-continue, odd Host headers, HEAD, half-close, a client that never
// reads, credentials, HTTP/1.0. After every scenario a normal request still works.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { makeEdgeCert } from './lib/edge_cert.mjs';

const BIN = process.env.AIRLOCK_BIN;
let tmp, srv, gateway, tunnel, tunnel2, ingressPort, upSrv, upPort, HOST;
const seen = new Map(); // x-probe → what the upstream received
let probeSeq = 0;
const probe = () => `p${process.pid}-${++probeSeq}`;

// ---- the upstream: records method, url, headers and body by the x-probe header ----
function upstreamHandler(req, res) {
  const chunks = [];
  const id = req.headers['x-probe'] ?? `none-${++probeSeq}`;
  const rec = { method: req.method, url: req.url, headers: req.headers, body: null, count: 0,
    closed: false, written: 0, finished: false };
  const prev = seen.get(id);
  rec.count = prev ? prev.count + 1 : 1;
  seen.set(id, rec);
  res.on('close', () => { rec.closed = !res.writableFinished; });
  req.on('data', (d) => chunks.push(d));
  req.on('end', () => {
    rec.body = Buffer.concat(chunks);
    const p = req.url.split('?')[0];
    if (p === '/echo') {
      const out = JSON.stringify({ method: req.method, url: req.url, body: rec.body.toString() });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    } else if (p === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let i = 0;
      const tick = () => {
        if (i === 3) return res.end();
        res.write(`data: event ${i++}\n\n`);
        setTimeout(tick, 5);
      };
      tick();
    } else if (p === '/head') {
      // HEAD: node sends no body; one variant announces a length, one does not.
      const hdr = { 'content-type': 'text/plain' };
      if (req.url.includes('len')) hdr['content-length'] = '11';
      res.writeHead(200, hdr);
      res.end(req.method === 'HEAD' ? undefined : 'hello world');
    } else if (p === '/break') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial answer ');
      setTimeout(() => req.socket.destroy(), 50);
    } else if (p === '/hold') {
      // never answers: the scenario watches for the request's connection to close
    } else if (p === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const block = Buffer.alloc(64 << 10, 0x61);
      const total = 256 << 20;
      const pump = () => {
        while (rec.written < total && !res.destroyed) {
          rec.written += block.length;
          if (!res.write(block)) return res.once('drain', pump);
        }
        if (!res.destroyed) {
          rec.finished = true;
          res.end();
        }
      };
      pump();
    } else {
      res.writeHead(404).end();
    }
  });
}

// ---- raw client ----

// One TCP connection: writes each piece of `parts` (Buffers/strings; a function is called
// with the bytes so far and the socket and may write), collects everything until the
// server closes, `until(bytes)` is true, or the guard runs out (ended: 'guard').
function raw(port, parts, { until, halfClose = false, guard = 10000, noRead = false } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const got = [];
    let done = false;
    const finish = (ended) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      sock.destroy();
      resolve({ bytes: Buffer.concat(got), ended, sock });
    };
    const t = setTimeout(() => finish('guard'), guard);
    sock.on('connect', async () => {
      try {
        for (const p of parts) {
          if (typeof p === 'function') await p(sock, () => Buffer.concat(got));
          else sock.write(p);
        }
        if (halfClose) sock.end();
      } catch (e) {
        finish(`client step failed: ${e.message}`);
      }
    });
    if (noRead) sock.pause();
    sock.on('data', (d) => {
      got.push(d);
      if (until && until(Buffer.concat(got))) finish('until');
    });
    sock.on('end', () => finish('end'));
    sock.on('close', () => finish('close'));
    sock.on('error', (e) => finish(e.code === 'ECONNRESET' ? 'reset' : e.code));
  });
}

// Parses HTTP/1.x responses from bytes. heads[i] says response i answers a HEAD.
// Each: {status, version, headers (lower-case names → value, repeated joined by ','),
// framing ('length'|'chunked'|'close'|'none'), body, complete, lastChunk}.
function parseResponses(bytes, heads = []) {
  const out = [];
  let off = 0;
  while (off < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const lines = bytes.subarray(off, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/(1\.[01]) (\d{3})/.exec(lines[0]);
    assert.ok(m, `status line: ${JSON.stringify(lines[0])}`);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      const n = l.slice(0, i).toLowerCase(), v = l.slice(i + 1).trim();
      headers[n] = headers[n] !== undefined ? `${headers[n]},${v}` : v;
    }
    const r = { status: Number(m[2]), version: m[1], headers, body: Buffer.alloc(0), complete: false,
      lastChunk: false };
    off = end + 4;
    out.push(r);
    if (r.status === 100) {
      r.framing = 'none';
      r.complete = true;
      continue;
    }
    if (heads[out.filter((x) => x.status !== 100).length - 1] || r.status === 204 || r.status === 304) {
      r.framing = 'none';
      r.complete = true;
    } else if (headers['transfer-encoding']) {
      r.framing = 'chunked';
      const body = [];
      for (;;) {
        const le = bytes.indexOf('\r\n', off);
        if (le < 0) break;
        const size = parseInt(bytes.subarray(off, le).toString('latin1'), 16);
        assert.ok(Number.isFinite(size), 'chunk size line');
        if (size === 0) {
          if (bytes.length >= le + 4) {
            r.lastChunk = true;
            r.complete = true;
            off = le + 4;
          } else off = bytes.length;
          break;
        }
        if (bytes.length < le + 2 + size + 2) {
          body.push(bytes.subarray(le + 2, Math.min(bytes.length, le + 2 + size)));
          off = bytes.length;
          break;
        }
        body.push(bytes.subarray(le + 2, le + 2 + size));
        off = le + 2 + size + 2;
      }
      r.body = Buffer.concat(body);
    } else if (headers['content-length'] !== undefined) {
      r.framing = 'length';
      const n = Number(headers['content-length']);
      r.body = bytes.subarray(off, Math.min(bytes.length, off + n));
      r.complete = r.body.length === n;
      off += r.body.length;
    } else {
      r.framing = 'close';
      r.body = bytes.subarray(off);
      off = bytes.length;
    }
  }
  return { responses: out, rest: bytes.subarray(off) };
}

// Until `n` complete final (non-100) responses can be parsed.
const responses = (n, heads) => (b) => {
  try {
    return parseResponses(b, heads).responses.filter((r) => r.status !== 100 && r.complete).length >= n;
  } catch {
    return false;
  }
};

function req(method, target, { host = HOST, key = srv.apiKey, id, body = '', extra = [], version = '1.1' } = {}) {
  const lines = [`${method} ${target} HTTP/${version}`];
  if (host !== null) lines.push(`Host: ${host}`);
  if (key !== null) lines.push(`x-api-key: ${key}`);
  if (id) lines.push(`x-probe: ${id}`);
  lines.push(...extra);
  if (body.length || method === 'POST') lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

// After each scenario: a normal request through the tunnel (both forms) still works.
async function stillServes() {
  const id = probe();
  const r = await raw(ingressPort, [req('POST', '/echo', { id, body: 'ok?' })], { until: responses(1) });
  const [res] = parseResponses(r.bytes).responses;
  assert.equal(res?.status, 200, r.bytes.toString());
  assert.equal(JSON.parse(res.body).body, 'ok?');
  const f = await fetch(`${srv.baseURL}/v1/tunnels/${tunnel.id}/routes/up/echo`, {
    method: 'POST', headers: { 'x-api-key': srv.apiKey, 'x-probe': probe() }, body: 'path form',
    signal: AbortSignal.timeout(10000) });
  assert.equal(f.status, 200);
  assert.equal((await f.json()).body, 'path form');
}

function waitFor(proc, re, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${what} not ready: ${buf}`)), 30000);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      buf += d;
      if (re.test(buf)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

async function api(method, p, body) {
  const r = await fetch(srv.baseURL + p, {
    method, headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined });
  return { status: r.status, json: await r.json() };
}

async function until(cond, what, ms = 10000) {
  for (const t0 = Date.now(); !cond();) {
    if (Date.now() - t0 > ms) assert.fail(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'airlock-ingr-'));
  const edge = makeEdgeCert(tmp);
  upSrv = http.createServer(upstreamHandler);
  await new Promise((r) => upSrv.listen(0, '127.0.0.1', r));
  upPort = upSrv.address().port;
  srv = await startServer({ env: {
    AIRLOCK_TUNNEL_LISTEN: '127.0.0.1:0', AIRLOCK_TUNNEL_INGRESS_LISTEN: '127.0.0.1:0',
    AIRLOCK_TUNNEL_TLS_CERT: edge.cert, AIRLOCK_TUNNEL_TLS_KEY: edge.key, AIRLOCK_TUNNEL_DOMAIN: 'tunnel.test',
  } });
  const edgePort = Number(/tunnel edge ready.* port=(\d+)/.exec(srv.log())[1]);
  ingressPort = Number(/tunnel ingress ready.* port=(\d+)/.exec(srv.log())[1]);
  tunnel = (await api('POST', '/v1/tunnels', { display_name: 'hostile' })).json;
  tunnel2 = (await api('POST', '/v1/tunnels', { display_name: 'other, no gateway' })).json;
  HOST = `up.${tunnel.domain}`;
  const tok = await api('POST', `/v1/tunnels/${tunnel.id}/reveal_token`);
  writeFileSync(path.join(tmp, 'token'), tok.json.tunnel_token, { mode: 0o600 });
  writeFileSync(path.join(tmp, 'gw.yaml'), [
    `server: 127.0.0.1:${edgePort}`, 'server_name: localhost',
    `server_ca_file: ${edge.ca}`, `token_file: ${path.join(tmp, 'token')}`,
    `tunnel_domain: ${tunnel.domain}`, 'routes:', `  up: http://127.0.0.1:${upPort}`,
    `  other: http://127.0.0.1:${upPort}`, 'upstream:', '  allowed_ips: [127.0.0.0/8]', '',
  ].join('\n'));
  gateway = spawn(BIN, ['gateway', '--config', path.join(tmp, 'gw.yaml')],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  await waitFor(gateway, /(Registered tunnel connection[^\n]*\n[^]*){4}/, 'gateway');
});

after(async () => {
  if (gateway && gateway.exitCode === null) gateway.kill('SIGTERM');
  if (srv) await srv.stop();
  upSrv?.closeAllConnections();
  upSrv?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---- 1. smuggling ----

// Each framing is refused with 400 and the connection closes; neither the request nor
// anything hidden in its body reaches the upstream.
async function refused(head, what) {
  const id = probe(), hidden = probe();
  const smuggled = req('POST', '/echo', { id: hidden, body: 'smuggled' });
  const bytes = head(id, smuggled);
  const r = await raw(ingressPort, [bytes]);
  const { responses: rs } = parseResponses(r.bytes);
  assert.equal(rs.length, 1, `${what}: one answer (${r.bytes.toString()})`);
  assert.equal(rs[0].status, 400, `${what}: ${r.bytes.toString()}`);
  assert.equal(r.ended, 'end', `${what}: the connection closes`);
  assert.equal(seen.get(id), undefined, `${what}: never forwarded`);
  assert.equal(seen.get(hidden), undefined, `${what}: nothing smuggled`);
}

test('1. smuggling framings get 400 and reach nothing', async () => {
  const h = (id, extra) => [`POST /echo HTTP/1.1`, `Host: ${HOST}`, `x-api-key: ${srv.apiKey}`,
    `x-probe: ${id}`, ...extra].join('\r\n');
  await refused((id, s) => `${h(id, ['Content-Length: 4', 'Transfer-Encoding: chunked'])}\r\n\r\n` +
    `0\r\n\r\n${s}`, 'Content-Length and Transfer-Encoding');
  await refused((id, s) => `${h(id, ['Transfer-Encoding: chunked', 'Content-Length: 4'])}\r\n\r\n` +
    `0\r\n\r\n${s}`, 'Transfer-Encoding then Content-Length');
  await refused((id, s) => `${h(id, ['Content-Length: 0', `Content-Length: ${s.length}`])}\r\n\r\n${s}`,
    'two different Content-Lengths');
  await refused((id, s) => `${h(id, ['Content-Length: 0, 5'])}\r\n\r\n${s}`, 'a Content-Length list');
  await refused((id, s) => `${h(id, ['Transfer-Encoding: gzip, chunked'])}\r\n\r\n` +
    `${s.length.toString(16)}\r\n${s}\r\n0\r\n\r\n`, 'Transfer-Encoding: gzip, chunked');
  await refused((id, s) => `${h(id, ['Transfer-Encoding: chunked, identity'])}\r\n\r\n` +
    `0\r\n\r\n${s}`, 'chunked not last');
  await refused((id, s) => `${h(id, ['Content-Length: 0', ' 5'])}\r\n\r\n${s}`,
    'obs-fold continuing Content-Length');
  await refused((id, s) => `${h(id, ['x-folded: a', ' b', 'Content-Length: 0'])}\r\n\r\n${s}`,
    'obs-fold header');
  await refused((id, s) => `${h(id, ['Content-Length: 0']).replaceAll('\r\n', '\n')}\n\n${s}`,
    'bare LF line endings');
  await refused((id, s) => `${h(id, ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'])}\r\n\r\n` +
    `0\r\n\r\n${s}`, 'two Transfer-Encoding lines');
  await refused((id, s) => `${h(id, ['Content-Length : 0'])}\r\n\r\n${s}`, 'space before the colon');
  await refused((id, s) => `${h(id, ['Content-Length: +0'])}\r\n\r\n${s}`, 'a signed Content-Length');
  await stillServes();
});

// Pieces written one by one with a pause between, so the server reads them apart.
const paced = (pieces, ms = 30) => pieces.map((b) => async (sock) => {
  sock.setNoDelay(true);
  sock.write(b);
  await new Promise((r) => setTimeout(r, ms));
});

test('1a. obs-fold split across reads is refused; a head split byte by byte is not', async () => {
  const h = (id) => `POST /echo HTTP/1.1\r\nHost: ${HOST}\r\nx-api-key: ${srv.apiKey}\r\nx-probe: ${id}\r\n`;
  for (const cut of [['x-folded: a', '\r\n b\r\n'], ['x-folded: a', '\r\n ', 'b\r\n'],
    ['x-folded: a', '\r\n', ' ', 'b\r\n'], ['x-folded: a\r', '\n b\r\n']]) {
    const id = probe();
    const r = await raw(ingressPort, [h(id), ...paced(cut), 'Content-Length: 0\r\n\r\n']);
    const { responses: rs } = parseResponses(r.bytes);
    assert.equal(rs[0]?.status, 400, `${JSON.stringify(cut)}: ${r.bytes.toString()}`);
    assert.equal(seen.get(id), undefined);
  }
  const id = probe();
  const whole = Buffer.from(`${h(id)}x-long: ${'v'.repeat(5)} w\r\nContent-Length: 2\r\n\r\n{}`);
  const r = await raw(ingressPort, paced([...whole].map((b) => Buffer.from([b])), 3), { until: responses(1) });
  const [res] = parseResponses(r.bytes).responses;
  assert.equal(res?.status, 200, r.bytes.toString());
  assert.equal(seen.get(id).headers['x-long'], 'vvvvv w');
});

test('1b. plain chunked request body reaches the upstream once, decoded', async () => {
  const id = probe();
  const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
  const r = await raw(ingressPort, [`POST /echo HTTP/1.1\r\nHost: ${HOST}\r\nx-api-key: ${srv.apiKey}\r\n` +
    `x-probe: ${id}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n${body.slice(0, 5)}\r\n` +
    `${(body.length - 5).toString(16)}\r\n${body.slice(5)}\r\n0\r\n\r\n`], { until: responses(1) });
  const [res] = parseResponses(r.bytes).responses;
  assert.equal(res.status, 200, r.bytes.toString());
  assert.equal(JSON.parse(res.body).body, body);
  assert.equal(seen.get(id).count, 1);
  assert.equal(seen.get(id).headers['transfer-encoding'], undefined, 'hop-by-hop header not forwarded');
  assert.equal(seen.get(id).headers['content-length'], String(body.length));
});

test('1c. trailers of a chunked request never become request headers', async () => {
  const id = probe();
  const r = await raw(ingressPort, [`POST /echo HTTP/1.1\r\nHost: ${HOST}\r\nx-api-key: ${srv.apiKey}\r\n` +
    `x-probe: ${id}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nx-trailer-a: 1\r\n` +
    `authorization: Bearer injected\r\nx-trailer-b: 2\r\n\r\n`], { until: responses(1) });
  const [res] = parseResponses(r.bytes).responses;
  assert.equal(res.status, 200, r.bytes.toString());
  const h = seen.get(id).headers;
  assert.equal(h['x-trailer-a'], undefined, JSON.stringify(h));
  assert.equal(h.authorization, undefined, JSON.stringify(h));
  assert.equal(h['x-trailer-b'], undefined, JSON.stringify(h));
  await stillServes();
});

// ---- 2. pipelining ----

test('2. pipelined: chunked SSE answer then buffered JSON, in order, one connection', async () => {
  const a = probe(), b = probe();
  const r = await raw(ingressPort, [req('POST', '/sse', { id: a, body: '{}' }) +
    req('POST', '/echo', { id: b, body: 'second' })], { until: responses(2) });
  assert.equal(r.ended, 'until', `both answers before any close: ${r.bytes.toString()}`);
  const { responses: rs, rest } = parseResponses(r.bytes);
  assert.equal(rs.length, 2);
  assert.equal(rs[0].framing, 'chunked');
  assert.equal(rs[0].lastChunk, true);
  assert.equal(rs[0].headers['content-type'], 'text/event-stream');
  assert.equal(rs[0].body.toString(), 'data: event 0\n\ndata: event 1\n\ndata: event 2\n\n');
  assert.equal(rs[1].framing, 'length');
  assert.equal(JSON.parse(rs[1].body).body, 'second');
  assert.equal(rest.length, 0);
  assert.equal(seen.get(a).count, 1);
  assert.equal(seen.get(b).count, 1);

  // The same on the API port (path form), three deep, the third asking to close: a
  // fourth behind it is never read.
  const base = `/v1/tunnels/${tunnel.id}/routes/up`;
  const ids = [probe(), probe(), probe(), probe()];
  const p = await raw(srv.port, [req('POST', `${base}/sse`, { host: '127.0.0.1', id: ids[0], body: '{}' }) +
    req('POST', `${base}/echo`, { host: '127.0.0.1', id: ids[1], body: 'two' }) +
    req('POST', `${base}/sse`, { host: '127.0.0.1', id: ids[2], body: '{}', extra: ['Connection: close'] }) +
    req('POST', `${base}/echo`, { host: '127.0.0.1', id: ids[3], body: 'four' })]);
  assert.equal(p.ended, 'end', 'closed after the third, as asked');
  const q = parseResponses(p.bytes);
  assert.deepEqual(q.responses.map((x) => [x.status, x.framing, x.complete]),
    [[200, 'chunked', true], [200, 'length', true], [200, 'chunked', true]], p.bytes.toString());
  assert.equal(q.responses[2].body.toString(), 'data: event 0\n\ndata: event 1\n\ndata: event 2\n\n');
  assert.equal(JSON.parse(q.responses[1].body).body, 'two');
  assert.equal(q.rest.length, 0);
  assert.equal(seen.get(ids[3]), undefined, 'nothing read after Connection: close');
  await stillServes();
});

test('2b. a request pipelined behind a broken-off answer is never answered or forwarded', async () => {
  const a = probe(), b = probe();
  const r = await raw(ingressPort, [req('GET', '/break', { id: a }) +
    req('POST', '/echo', { id: b, body: 'behind' })]);
  assert.ok(['end', 'reset'].includes(r.ended), `connection ends: ${r.ended}`);
  const { responses: rs } = parseResponses(r.bytes);
  assert.equal(rs.length, 1, r.bytes.toString());
  assert.equal(rs[0].framing, 'chunked');
  assert.equal(rs[0].lastChunk, false, 'no last chunk: the client sees the break');
  assert.match(rs[0].body.toString(), /^(partial answer )?$/);
  assert.equal(seen.get(b), undefined, 'the pipelined request never went upstream');
  await stillServes();
});

// ---- 3. Expect: 100-continue ----

test('3. Expect: 100-continue: 100 first, then the body reaches the upstream', async () => {
  const id = probe();
  const head = `POST /echo HTTP/1.1\r\nHost: ${HOST}\r\nx-api-key: ${srv.apiKey}\r\nx-probe: ${id}\r\n` +
    'Expect: 100-continue\r\nContent-Length: 9\r\n\r\n';
  let sawContinue = false;
  const r = await raw(ingressPort, [head, async (sock, sofar) => {
    // The client waits for the interim answer before it sends the body (as it may).
    await until(() => sofar().length > 0, '100 Continue', 5000).catch(() => {});
    sawContinue = /^HTTP\/1\.1 100 /.test(sofar().toString());
    sock.write('after 100');
  }], { until: responses(1) });
  assert.ok(sawContinue, `interim 100 before the body: ${r.bytes.toString()}`);
  const rs = parseResponses(r.bytes).responses.filter((x) => x.status !== 100);
  assert.equal(rs[0].status, 200);
  assert.equal(JSON.parse(rs[0].body).body, 'after 100');
  assert.equal(seen.get(id).headers.expect, undefined, 'the expectation was met here, not forwarded');

  // A client that sends the body at once (curl after its 1 s wait) gets one final answer.
  const id2 = probe();
  const r2 = await raw(ingressPort, [req('POST', '/echo', { id: id2, body: 'eager', extra: ['Expect: 100-continue'] })],
    { until: responses(1) });
  const fin = parseResponses(r2.bytes).responses.filter((x) => x.status !== 100);
  assert.equal(fin[0].status, 200);
  assert.equal(JSON.parse(fin[0].body).body, 'eager');
  assert.equal(seen.get(id2).count, 1);
  await stillServes();
});

// ---- 4. Host form ----

async function hostCase(host, { extra = [], target = '/echo', want }) {
  const id = probe();
  const lines = [`POST ${target} HTTP/1.1`];
  if (host !== null) lines.push(`Host: ${host}`);
  lines.push(`x-api-key: ${srv.apiKey}`, `x-probe: ${id}`, ...extra, 'Content-Length: 2', '', '{}');
  const r = await raw(ingressPort, [lines.join('\r\n')], { until: responses(1) });
  const [res] = parseResponses(r.bytes).responses;
  assert.ok(res, `${host}: an answer (${r.bytes.toString()})`);
  if (want === 200) {
    assert.equal(res.status, 200, `${host}: ${res.body}`);
    assert.equal(seen.get(id).count, 1);
    assert.equal(seen.get(id).headers.host, `127.0.0.1:${upPort}`, 'upstream gets its own Host');
  } else {
    assert.equal(res.status, want, `${host} ${extra}: ${r.bytes.toString()}`);
    assert.equal(seen.get(id), undefined, `${host}: not forwarded`);
  }
  return res;
}

test('4. Host form: ports, case, trailing dot, duplicates, absolute form, odd routes', async () => {
  await hostCase(`${HOST}:8443`, { want: 200 });
  await hostCase(HOST.toUpperCase(), { want: 200 });
  await hostCase(`Up.${tunnel.domain.toUpperCase()}:1`, { want: 200 });
  // An FQDN with its root dot is not a name we issue: refused, not guessed at.
  await hostCase(`${HOST}.`, { want: 404 });
  // Two Host headers are ambiguous (RFC 9112 3.2): whichever one a proxy in front
  // used, routing by the other would reach a different tunnel.
  await hostCase(HOST, { extra: [`Host: up.${tunnel2.domain}`], want: 400 });
  await hostCase(`up.${tunnel2.domain}`, { extra: [`Host: ${HOST}`], want: 400 });
  await hostCase(null, { want: 404 });
  await hostCase('', { want: 404 });
  // Absolute form naming another host than Host: refused, never routed by either.
  await hostCase(HOST, { target: `http://other.${tunnel.domain}/echo`, want: 400 });
  await hostCase(HOST, { target: `http://${HOST}/echo`, want: 400 });
  // Routes: percent-encoding and dot segments are never decoded into another route.
  const bad = await hostCase(`u%70.${tunnel.domain}`, { want: 400 });
  assert.match(bad.body.toString(), /invalid route/);
  await hostCase(`..${tunnel.domain}`, { want: 404 });
  await hostCase(`.${HOST}`, { want: 404 });
  await hostCase(`up.x.${tunnel.domain}`, { want: 404 });
  for (const odd of [`${HOST}@evil.example`, `evil.example@${HOST}`, `${HOST}/x`, `${HOST}:80:80`,
    '[::1]', `up .${tunnel.domain}`, `up\t.${tunnel.domain}`, `${'a'.repeat(70)}.${tunnel.domain}`,
    `other.${tunnel.domain.replace('.', '..')}`]) {
    const id = probe();
    const r = await raw(ingressPort, [req('POST', '/echo', { host: odd, id, body: '{}' })], { until: responses(1) });
    const [res] = parseResponses(r.bytes).responses;
    assert.ok(res && res.status >= 400 && res.status < 500, `${JSON.stringify(odd)}: ${r.bytes.toString()}`);
    assert.equal(seen.get(id), undefined, `${JSON.stringify(odd)}: not forwarded`);
  }
  // The other tunnel has no gateway: its own name gets its own 503, never this tunnel.
  await hostCase(`up.${tunnel2.domain}`, { want: 503 });
  // Path form: an encoded or dot-segment route or id is refused, not routed elsewhere.
  for (const p of [`/v1/tunnels/${tunnel.id}/routes/u%70/echo`, `/v1/tunnels/${tunnel.id}/routes/../echo`,
    `/v1/tunnels/${tunnel.id}/routes/%2e%2e/up/echo`, `/v1/tunnels/${tunnel2.id}/../${tunnel.id}/routes/up/echo`]) {
    const id = probe();
    const r = await raw(srv.port, [req('POST', p, { host: '127.0.0.1', id, body: '{}' })], { until: responses(1) });
    const [res] = parseResponses(r.bytes).responses;
    assert.ok(res && res.status >= 400 && res.status < 500, `${p}: ${r.bytes.toString()}`);
    assert.equal(seen.get(id), undefined, `${p}: not forwarded`);
  }
  // Dot segments in the upstream path stay the upstream's business, on the same route.
  const id = probe();
  const r = await raw(ingressPort, [req('POST', '/x/../echo', { id, body: '{}' })], { until: responses(1) });
  assert.equal(parseResponses(r.bytes).responses[0].status, 404);
  assert.equal(seen.get(id).url, '/x/../echo');
  await stillServes();
});

// ---- 5. HEAD ----

test('5. HEAD through the tunnel: no body bytes, no last chunk, next request answered', async () => {
  for (const target of ['/head', '/head?len']) {
    const a = probe(), b = probe();
    const r = await raw(ingressPort, [req('HEAD', target, { id: a }) + req('POST', '/echo', { id: b, body: 'next' })],
      { until: responses(2, [true]) });
    const { responses: rs, rest } = parseResponses(r.bytes, [true]);
    assert.equal(rs[0].status, 200, r.bytes.toString());
    assert.equal(rs[0].headers['transfer-encoding'], undefined, `${target}: HEAD answer not chunked`);
    if (target === '/head?len') assert.equal(rs[0].headers['content-length'], '11');
    // The next bytes are the next answer's status line: no body, no "0\r\n\r\n".
    const headEnd = r.bytes.indexOf('\r\n\r\n') + 4;
    assert.equal(r.bytes.indexOf('HTTP/1.1 ', 1), headEnd,
      `${target}: no body, no chunk terminator: ${JSON.stringify(r.bytes.toString())}`);
    assert.equal(rs.length, 2, `${target}: the connection carries the next request (${r.ended})`);
    assert.equal(JSON.parse(rs[1].body).body, 'next');
    assert.equal(rest.length, 0);
  }
  await stillServes();
});

// ---- 6. half-close ----

// A FIN from the client while its request is in flight reads as the client leaving (as
// nginx does by default): the upstream request is cancelled, not finished for nobody.
// An idle SSE listener whose client went away must not hold an upstream stream.
test('6. half-close before the answer cancels the upstream request', async () => {
  const id = probe();
  // The FIN follows once the upstream holds the request (a FIN sent with the request
  // may cancel it before it is forwarded at all).
  const res = await raw(ingressPort, [req('POST', '/hold', { id, body: '{}' }),
    () => until(() => seen.get(id)?.body, 'request reaches the upstream')], { halfClose: true });
  assert.equal(res.ended, 'end');
  assert.equal(res.bytes.length, 0, 'no answer to a client that left');
  await until(() => seen.get(id).closed, 'upstream sees its request cancelled');
  await stillServes();
});

// ---- 7. a client that never reads ----

function rssKiB() {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))[1]);
}

test('7. a client that never reads a 256 MiB answer, then closes: bounded, upstream cancelled', async () => {
  const id = probe();
  const base = rssKiB();
  let sock;
  const r = raw(ingressPort, [(s) => { sock = s; s.write(req('GET', '/big', { id })); }],
    { noRead: true, guard: 20000 });
  await until(() => seen.get(id)?.written > 0, 'upstream starts writing');
  // Wait until the upstream is held back (its writes stop advancing for 10 polls).
  let last = -1, still = 0;
  await until(() => {
    const w = seen.get(id).written;
    still = w === last ? still + 1 : 0;
    last = w;
    return still >= 10;
  }, 'back-pressure reaches the upstream', 15000);
  const rec = seen.get(id);
  assert.equal(rec.finished, false);
  assert.equal(rec.closed, false, 'a stalled client is waited for, not cut off');
  assert.ok(rec.written < 64 << 20, `upstream held back: ${rec.written} bytes written`);
  const rss = rssKiB();
  assert.ok(rss - base < 48 * 1024, `server RSS grew ${rss - base} KiB for a stalled client`);
  sock.destroy();
  await r;
  await until(() => rec.closed, 'upstream sees its request cancelled');
  await stillServes();
});

// ---- 8. credentials ----

test('8. credentials: 401s, and the airlock key never reaches the upstream', async () => {
  const cases = [
    { key: 'wrong', want: 401 },
    { key: null, want: 401 },
    { key: '', want: 401 },
    { key: null, target: `/echo?x-api-key=${srv.apiKey}`, want: 401 },
    { key: null, target: `/echo?api_key=${srv.apiKey}`, want: 401 },
    { key: null, extra: [`Authorization: Bearer ${srv.apiKey}`], want: 200 },
    { key: '', extra: [`Authorization: Bearer ${srv.apiKey}`], want: 200 },
    { key: null, extra: [`Authorization: Basic ${Buffer.from(`x:${srv.apiKey}`).toString('base64')}`], want: 401 },
    { key: srv.apiKey, extra: ['Authorization: Bearer upstream-token'], want: 200, auth: 'Bearer upstream-token' },
    { key: srv.apiKey, extra: [`Authorization: Bearer ${srv.apiKey}`], want: 200 },
    { key: srv.apiKey, extra: [`X-API-KEY: ${srv.apiKey}`], want: 200 },
  ];
  for (const c of cases) {
    const id = probe();
    const target = c.target ?? '/echo';
    for (const [port, t, host] of [[ingressPort, target, HOST],
      [srv.port, `/v1/tunnels/${tunnel.id}/routes/up${target}`, '127.0.0.1']]) {
      const r = await raw(port, [req('POST', t, { host, key: c.key, id, body: '{}', extra: c.extra ?? [] })],
        { until: responses(1) });
      const [res] = parseResponses(r.bytes).responses;
      assert.equal(res?.status, c.want, `${JSON.stringify(c)} on ${t}: ${r.bytes.toString()}`);
    }
    const up = seen.get(id);
    if (c.want !== 200) {
      assert.equal(up, undefined, `${JSON.stringify(c)}: not forwarded`);
      continue;
    }
    assert.equal(up.count, 2);
    const all = JSON.stringify(up.headers) + up.url;
    assert.ok(!all.includes(srv.apiKey), `the airlock key reached the upstream: ${all}`);
    assert.equal(up.headers.authorization, c.auth);
  }
  await stillServes();
});

// ---- 9. HTTP/1.0 ----

test('9. an HTTP/1.0 client gets a close-delimited streamed answer', async () => {
  const id = probe();
  const r = await raw(ingressPort, [req('POST', '/sse', { id, body: '{}', version: '1.0' })]);
  assert.equal(r.ended, 'end', 'the answer ends with the connection');
  const { responses: rs } = parseResponses(r.bytes);
  assert.equal(rs.length, 1);
  assert.equal(rs[0].framing, 'close', r.bytes.toString());
  assert.equal(rs[0].body.toString(), 'data: event 0\n\ndata: event 1\n\ndata: event 2\n\n');
  // A buffered answer to HTTP/1.0 carries its length and also closes (no keep-alive asked).
  const r2 = await raw(ingressPort, [req('POST', '/echo', { id: probe(), body: 'x', version: '1.0' })]);
  assert.equal(r2.ended, 'end');
  const [b] = parseResponses(r2.bytes).responses;
  assert.equal(b.framing, 'length');
  assert.equal(JSON.parse(b.body).body, 'x');
  // Path form too.
  const r3 = await raw(srv.port, [req('POST', `/v1/tunnels/${tunnel.id}/routes/up/sse`,
    { host: '127.0.0.1', id: probe(), body: '{}', version: '1.0' })]);
  assert.equal(r3.ended, 'end');
  const [c] = parseResponses(r3.bytes).responses;
  assert.equal(c.framing, 'close', r3.bytes.toString());
  assert.equal(c.body.toString(), 'data: event 0\n\ndata: event 1\n\ndata: event 2\n\n');
  await stillServes();
});
