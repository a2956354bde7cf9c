// Several replicas on one PostgreSQL (issue 13, "Benchmarks"; driven by
// bench/replicas_bench.sh, which starts the database and the replicas):
//  1. events appended per second through the API (POST /v1/sessions/{id}/events, one
//     user.message per request, keep-alive) by C concurrent clients, each on its own
//     session: all clients on replica A, then the same clients spread over A, B and C.
//     Rounds alternate (1, 3, 1, 3) so drift on a shared machine hits both alike; the
//     ratio is the summed rate with 3 replicas over the summed rate with 1.
//     The append path is the full one a client takes: validation, the event row, the
//     work item, pg_notify, commit, publish and the loop's wake. The replicas' model URL
//     is a server that accepts and never answers, so each session's first message parks
//     its loop on a model call (as during a long model turn) and the later messages are
//     appended without the loop doing anything with them.
//  2. SSE delivery latency: one session with a stream open on A and one on B; E
//     user.message events sent one at a time on A (a random 0-20 ms pause between them,
//     so the sends do not lock onto B's 20 ms notification drain); for each, the time
//     from the send to its arrival on each stream. Same replica (A's stream) is the
//     baseline, measured on the same events. Target: cross-replica p99 <= 50 ms.
// usage: node bench/replicas_bench.mjs URL_A,URL_B,URL_C API_KEY [CLIENTS] [SECONDS] [EVENTS]
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const urls = (process.argv[2] ?? '').split(',').filter(Boolean);
const key = process.argv[3] ?? 'benchkey';
const CLIENTS = Number(process.argv[4] ?? 24);
const SECONDS = Number(process.argv[5] ?? 5);
const EVENTS = Number(process.argv[6] ?? 500);
if (urls.length !== 3) {
  console.error('usage: replicas_bench.mjs URL_A,URL_B,URL_C API_KEY [CLIENTS] [SECONDS] [EVENTS]');
  process.exit(2);
}
const agents = new Map(urls.map((u) => [u, new http.Agent({ keepAlive: true, maxSockets: CLIENTS + 4 })]));

function request(base, method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(`${base}${path}`, {
      method,
      agent: agents.get(base),
      headers: { 'x-api-key': key, 'content-type': 'application/json',
        ...(data ? { 'content-length': Buffer.byteLength(data) } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        if (res.statusCode >= 300) reject(new Error(`${method} ${path} on ${base}: ${res.statusCode} ${text.slice(0, 200)}`));
        else resolve(text ? JSON.parse(text) : null);
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

const message = (text) => ({ events: [{ type: 'user.message', content: [{ type: 'text', text }] }] });

let envId, agentId;
async function newSession(base) {
  if (!envId) {
    envId = (await request(base, 'POST', '/v1/environments', { name: 'bench', config: { type: 'self_hosted' } })).id;
    agentId = (await request(base, 'POST', '/v1/agents', { name: 'bench', model: 'claude-bench' })).id;
  }
  return (await request(base, 'POST', '/v1/sessions', { agent: agentId, environment_id: envId })).id;
}

// ---- 1. append throughput ----
async function round(nReplicas) {
  const targets = Array.from({ length: CLIENTS }, (_, i) => urls[i % nReplicas]);
  const sessions = await Promise.all(targets.map((u) => newSession(u)));
  // first message: parks each session's loop on the silent model, outside the timing
  await Promise.all(sessions.map((s, i) => request(targets[i], 'POST', `/v1/sessions/${s}/events`, message('warm-up'))));
  let count = 0;
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  await Promise.all(sessions.map(async (s, i) => {
    for (let n = 0; performance.now() < end; n++) {
      await request(targets[i], 'POST', `/v1/sessions/${s}/events`, message(`m${n}`));
      count++;
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  return { count, secs };
}

const totals = { 1: { count: 0, secs: 0 }, 3: { count: 0, secs: 0 } };
for (const n of [1, 3, 1, 3]) {
  const r = await round(n);
  totals[n].count += r.count;
  totals[n].secs += r.secs;
  console.log(`append round, ${n} replica${n > 1 ? 's' : ''}: ${r.count} events in ${r.secs.toFixed(2)} s = ${(r.count / r.secs).toFixed(0)}/s`);
}
const rate1 = totals[1].count / totals[1].secs;
const rate3 = totals[3].count / totals[3].secs;
console.log(`events appended/s (${CLIENTS} clients, 2 rounds each): 1 replica=${rate1.toFixed(0)} 3 replicas=${rate3.toFixed(0)}  3/1 = ${(rate3 / rate1).toFixed(2)}x`);

// ---- 2. SSE delivery latency, same replica vs across replicas ----
function openStream(base, sid, onEvent) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}/v1/sessions/${sid}/events/stream`, {
      headers: { 'x-api-key': key, accept: 'text/event-stream' },
    }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`stream on ${base}: ${res.statusCode}`));
        return;
      }
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        const now = performance.now();
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
          if (!data) continue;
          let ev;
          try { ev = JSON.parse(data); } catch { continue; }
          if (ev.type === 'user.message') onEvent(ev.content?.[0]?.text, now);
        }
      });
      resolve(req);
    });
    req.on('error', reject);
  });
}

const [A, B] = urls;
const sid = await newSession(A);
const arrivals = { A: new Map(), B: new Map() };
const waiters = new Map();
function arrived(which, text, now) {
  if (!arrivals[which].has(text)) arrivals[which].set(text, now);
  const w = waiters.get(text);
  if (w && arrivals.A.has(text) && arrivals.B.has(text)) {
    waiters.delete(text);
    w();
  }
}
const sA = await openStream(A, sid, (t, now) => arrived('A', t, now));
const sB = await openStream(B, sid, (t, now) => arrived('B', t, now));

async function sendAndWait(text) {
  const both = new Promise((resolve, reject) => {
    waiters.set(text, resolve);
    setTimeout(() => reject(new Error(`${text} did not reach both streams in 10 s`)), 10000).unref();
  });
  const t0 = performance.now();
  await request(A, 'POST', `/v1/sessions/${sid}/events`, message(text));
  const tAck = performance.now();
  await both;
  return { t0, tAck };
}
// the streams are registered once a first event reaches both
await sendAndWait('lat-warm-up');
const same = [], cross = [], crossAfterAck = [], ack = [];
for (let i = 0; i < EVENTS; i++) {
  await new Promise((r) => setTimeout(r, Math.random() * 20));
  const text = `lat-${i}`;
  const { t0, tAck } = await sendAndWait(text);
  same.push(arrivals.A.get(text) - t0);
  cross.push(arrivals.B.get(text) - t0);
  crossAfterAck.push(arrivals.B.get(text) - tAck);
  ack.push(tAck - t0);
}
sA.destroy();
sB.destroy();
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const f = (x) => x.toFixed(2);
console.log(`SSE delivery, send on A -> frame received (${EVENTS} events, ms):`);
console.log(`  same replica (stream on A)  p50=${f(pct(same, 50))} p99=${f(pct(same, 99))} max=${f(Math.max(...same))}`);
console.log(`  cross replica (stream on B) p50=${f(pct(cross, 50))} p99=${f(pct(cross, 99))} max=${f(Math.max(...cross))}`);
console.log(`  (B after A's answer p50=${f(pct(crossAfterAck, 50))} p99=${f(pct(crossAfterAck, 99))}; the send's answer p50=${f(pct(ack, 50))})`);
console.log(`  cross/same: p50 ${(pct(cross, 50) / pct(same, 50)).toFixed(2)}x  p99 ${(pct(cross, 99) / pct(same, 99)).toFixed(2)}x;` +
  `  cross p99 vs 50 ms target = ${(pct(cross, 99) / 50).toFixed(2)}x`);
for (const a of agents.values()) a.destroy();
