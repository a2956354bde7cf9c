// MCP tunnel throughput and latency on loopback. One process runs the upstream (a
// keep-alive HTTP server answering a JSON-RPC-sized POST) and the load generator; the
// same load runs direct to the upstream (baseline) and through the tunnel (API-port
// ingress → edge → HTTP/2 → gateway → upstream), so the ratio is what the tunnel costs.
// Then N idle SSE streams are held through the tunnel to weigh memory per stream.
// usage: node tunnel_bench.mjs  (env: BASE, TID, KEY, UP_PORT_FILE, GW_PID, SRV_PID, SECONDS, CONC, IDLE)
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';

const secs = Number(process.env.SECONDS ?? 5);
const conc = Number(process.env.CONC ?? 32);
const idle = Number(process.env.IDLE ?? 1000);
const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call',
  params: { name: 'echo', arguments: { message: 'x'.repeat(900) } } });
const held = [];

const up = http.createServer((req, res) => {
  if (req.url.includes('hold')) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(': open\n\n');
    held.push(res);
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const b = Buffer.concat(chunks);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length });
    res.end(b);
  });
});
up.keepAliveTimeout = 60000;
await new Promise((r) => up.listen(0, '127.0.0.1', r));
writeFileSync(process.env.UP_PORT_FILE, String(up.address().port));
// wait for the shell to start the gateway with this port
while (!process.env.GO_FILE || readFileSync(process.env.GO_FILE, 'utf8').trim() !== 'go')
  await new Promise((r) => setTimeout(r, 100));

const agent = new http.Agent({ keepAlive: true, maxSockets: conc });

function one(url, headers) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers,
      'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6)
        : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function load(name, url, headers) {
  const lat = [];
  const end = Date.now() + secs * 1000;
  let errors = 0;
  await Promise.all(Array.from({ length: conc }, async () => {
    while (Date.now() < end) {
      try { lat.push(await one(url, headers)); } catch { errors++; }
    }
  }));
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  const r = { name, rps: lat.length / secs, p50: q(0.5), p99: q(0.99), errors };
  console.log(`${name.padEnd(8)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  errors ${errors}`);
  return r;
}

function rss(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) / 1024;
}

const upURL = `http://127.0.0.1:${up.address().port}/mcp`;
const tunURL = `${process.env.BASE}/v1/tunnels/${process.env.TID}/routes/bench/mcp`;
console.log(`${body.length}-byte POST, ${conc} concurrent keep-alive clients, ${secs} s each`);
await load('warmup', tunURL, { 'x-api-key': process.env.KEY });
const d = await load('direct', upURL, {});
const t = await load('tunnel', tunURL, { 'x-api-key': process.env.KEY });
console.log(`tunnel/direct: throughput ${(t.rps / d.rps).toFixed(2)}x  p50 ${(t.p50 / d.p50).toFixed(2)}x  p99 ${(t.p99 / d.p99).toFixed(2)}x`);

// Idle streams: RSS of gateway and server before and with N open SSE streams.
const GW = Number(readFileSync(process.env.GW_PID_FILE, 'utf8'));
const g0 = rss(GW), s0 = rss(process.env.SRV_PID);
const holdAgent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const reqs = [];
await Promise.all(Array.from({ length: idle }, () => new Promise((resolve, reject) => {
  const req = http.request(`${process.env.BASE}/v1/tunnels/${process.env.TID}/routes/bench/mcp?hold`,
    { method: 'GET', agent: holdAgent, headers: { 'x-api-key': process.env.KEY } }, (res) => {
      res.once('data', () => resolve());
    });
  req.on('error', reject);
  req.end();
  reqs.push(req);
})));
const g1 = rss(GW), s1 = rss(process.env.SRV_PID);
console.log(`idle SSE streams through the tunnel: ${idle}`);
console.log(`gateway RSS ${g0.toFixed(1)} → ${g1.toFixed(1)} MiB (${((g1 - g0) * 1024 / idle).toFixed(1)} KiB/stream); ` +
  `server RSS ${s0.toFixed(1)} → ${s1.toFixed(1)} MiB (${((s1 - s0) * 1024 / idle).toFixed(1)} KiB/stream)`);
for (const r of reqs) r.destroy();
for (const r of held) r.destroy();
up.close();
process.exit(0);
