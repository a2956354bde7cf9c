// GET /metrics (docs/server/metrics.md): the exposition is read by the official
// Prometheus Python client's parser (Debian python3-prometheus-client; npm's
// parse-prometheus-text-format drops the labels of labelled histograms, so it cannot
// check ours) and by a strict line check of our own (the client is lenient: it takes
// "name 2 3 4" as 2), and the values are compared with what the test did:
// requests by route family and status class, the latency histogram, sessions by status,
// work per environment, held polls, open event streams, the database probe. Auth: a
// server API key on the API listener; none on metrics.listen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parser as promql } from '@prometheus-io/lezer-promql';
import { startServer } from './lib/server.mjs';
import { setupSession } from './lib/session.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { allEvents } from './lib/events.mjs';
import { makeEdgeCert } from './lib/edge_cert.mjs';
import net from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)\})? (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?|\+Inf|-Inf|NaN)$/;

// Text format 0.0.4, strictly: every sample belongs to the family whose TYPE came last,
// a family's samples are contiguous and typed once, counters end in _total, histogram
// buckets rise to +Inf == _count, no series twice. Returns {name: [{labels, value}]}.
function strictParse(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map();
  const seen = new Set();
  let cur = null;
  for (const line of text.slice(0, -1).split('\n')) {
    let m;
    if ((m = /^# HELP (\S+) (.+)$/.exec(line))) {
      assert.match(m[1], NAME, line);
      assert.ok(!families.has(m[1]), `family ${m[1]} appears twice`);
      continue;
    }
    if ((m = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line))) {
      assert.ok(!families.has(m[1]), `TYPE twice for ${m[1]}`);
      cur = { name: m[1], type: m[2], samples: [] };
      families.set(m[1], cur);
      if (m[2] === 'counter') assert.match(m[1], /_total$/, `counter ${m[1]} ends in _total`);
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
    m = SAMPLE.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    assert.ok(cur, `sample before any TYPE: ${line}`);
    const [, name, lab = '', value] = m;
    const allowed =
      cur.type === 'histogram' ? [`${cur.name}_bucket`, `${cur.name}_sum`, `${cur.name}_count`] : [cur.name];
    assert.ok(allowed.includes(name), `${name} outside its family ${cur.name}`);
    const key = `${name}{${lab}}`;
    assert.ok(!seen.has(key), `series twice: ${key}`);
    seen.add(key);
    const labels = {};
    for (const p of lab.match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? []) {
      const i = p.indexOf('=');
      labels[p.slice(0, i)] = p.slice(i + 2, -1);
    }
    cur.samples.push({ name, labels, value: Number(value === '+Inf' ? Infinity : value) });
  }
  const out = {};
  for (const f of families.values()) {
    if (f.type === 'histogram') {
      const byFam = new Map();
      for (const s of f.samples) {
        const k = s.labels.family;
        if (!byFam.has(k)) byFam.set(k, { buckets: [], sum: null, count: null });
        const h = byFam.get(k);
        if (s.name.endsWith('_bucket')) h.buckets.push([s.labels.le, s.value]);
        else if (s.name.endsWith('_sum')) h.sum = s.value;
        else h.count = s.value;
      }
      for (const [k, h] of byFam) {
        let prev = -1;
        let prevLe = -Infinity;
        for (const [le, v] of h.buckets) {
          const n = le === '+Inf' ? Infinity : Number(le);
          assert.ok(n > prevLe, `${f.name}{family=${k}}: le ${le} after ${prevLe}`);
          assert.ok(v >= prev, `${f.name}{family=${k}}: bucket ${le} fell`);
          prevLe = n;
          prev = v;
        }
        assert.equal(h.buckets.at(-1)?.[0], '+Inf', `${f.name}{family=${k}} ends with +Inf`);
        assert.equal(h.buckets.at(-1)[1], h.count, `${f.name}{family=${k}}: +Inf == _count`);
        assert.ok(h.sum >= 0, `${f.name}{family=${k}}: _sum present`);
      }
    }
    out[f.name] = f.samples;
  }
  return out;
}

// The official client's reading of text: {code: 0, families} or {code: 77} (not
// installed) or {code: 3, stderr} (refused). Debian's module belongs to /usr/bin/python3.
function officialParse(text) {
  const py = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(py, [path.join(import.meta.dirname, 'lib', 'prom_parse.py')], { input: text, encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr, families: r.status === 0 ? JSON.parse(r.stdout) : null };
}
const OFFICIAL_MISSING = officialParse('').code === 77;
const ON_PG = Boolean(process.env.AIRLOCK_TEST_PG_PORT);

const value = (m, name, labels = {}) => {
  const s = (m[name] ?? []).find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
};

async function scrape(srv, { key = srv.apiKey, url = `${srv.baseURL}/metrics` } = {}) {
  const r = await fetch(url, { headers: key ? { 'x-api-key': key } : {} });
  const text = await r.text();
  return { status: r.status, type: r.headers.get('content-type'), text };
}

let exposition = null; // the first test's scrape, for the official parser's test

test('GET /metrics: a server key, the text format, and values that follow what the server did', async (t) => {
  const srv = await startServer({ args: ['--metrics-listen', '127.0.0.1:0'] });
  t.after(() => srv.stop());
  const side = /metrics listening".*?port=(\d+)/.exec(srv.log());
  assert.ok(side, `metrics listener logged: ${srv.log()}`);
  const sideURL = `http://127.0.0.1:${side[1]}/metrics`;

  // auth on the API listener: none and an environment key are refused
  assert.equal((await scrape(srv, { key: null })).status, 401);
  const { env, envKey, client, agent } = await setupSession(srv);
  const r403 = await fetch(`${srv.baseURL}/metrics`, { headers: { authorization: `Bearer ${envKey}` } });
  assert.equal(r403.status, 403, 'an environment key may not read metrics');

  // what we count on: 3 unmatched 404s, one 400 on sessions, two more sessions
  for (let i = 0; i < 3; i++) await fetch(`${srv.baseURL}/v1/nothing-here-${i}`, { headers: { 'x-api-key': srv.apiKey } });
  const bad = await fetch(`${srv.baseURL}/v1/sessions`, {
    method: 'POST',
    headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body: '{"agent": 7}',
  });
  assert.equal(bad.status, 400);
  await client.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  await client.beta.sessions.create({ agent: agent.id, environment_id: env.id });

  const a = await scrape(srv);
  assert.equal(a.status, 200);
  assert.equal(a.type, 'text/plain; version=0.0.4; charset=utf-8');
  const m = strictParse(a.text);
  exposition = a.text;
  // interop-pg-metrics runs this file with the servers on PostgreSQL (with-postgres.sh)
  assert.equal(value(m, 'airlock_database_info', { engine: ON_PG ? 'postgresql' : 'sqlite' }), 1);

  assert.equal(value(m, 'airlock_http_requests_total', { family: 'unmatched', status_class: '4xx' }), 3);
  assert.equal(value(m, 'airlock_http_requests_total', { family: 'sessions', status_class: '4xx' }), 1);
  assert.ok(value(m, 'airlock_http_requests_total', { family: 'sessions', status_class: '2xx' }) >= 3);
  assert.equal(value(m, 'airlock_http_requests_total', { family: 'metrics', status_class: '4xx' }), 2);
  assert.equal(value(m, 'airlock_sessions', { status: 'idle' }), 3, 'three sessions, all idle');
  assert.equal(value(m, 'airlock_sessions', { status: 'running' }), 0);
  // each session start queues one work item for the environment, none polled yet
  assert.equal(value(m, 'airlock_work_queue_depth', { environment_id: env.id }), 3);
  assert.equal(value(m, 'airlock_work_leased', { environment_id: env.id }), 0);
  assert.equal(value(m, 'airlock_database_up'), 1);
  assert.ok(value(m, 'airlock_database_ping_seconds') >= 0);
  assert.equal(value(m, 'airlock_event_streams'), 0);
  assert.equal(value(m, 'airlock_tunnel_connections'), 0);
  assert.ok(value(m, 'process_resident_memory_bytes') > 0);

  // a poll takes one item: one less queued, one leased
  const poll = await fetch(`${srv.baseURL}/v1/environments/${env.id}/work/poll`, {
    headers: { authorization: `Bearer ${envKey}` },
  });
  assert.equal(poll.status, 200);
  assert.ok((await poll.json())?.id, 'the poll got an item');
  let b = strictParse((await scrape(srv)).text);
  assert.equal(value(b, 'airlock_work_queue_depth', { environment_id: env.id }), 2);
  assert.equal(value(b, 'airlock_work_leased', { environment_id: env.id }), 1);

  // an open event stream and a held long-poll are gauges while they last
  const sessions = await client.beta.sessions.list();
  const sid = sessions.data[0].id;
  const ac = new AbortController();
  const sse = await fetch(`${srv.baseURL}/v1/sessions/${sid}/events/stream`, {
    headers: { 'x-api-key': srv.apiKey },
    signal: ac.signal,
  });
  assert.equal(sse.status, 200);
  b = strictParse((await scrape(srv)).text);
  assert.equal(value(b, 'airlock_event_streams'), 1);
  ac.abort();
  let streams = 1;
  for (let i = 0; i < 50 && streams !== 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    streams = value(strictParse((await scrape(srv)).text), 'airlock_event_streams');
  }
  assert.equal(streams, 0, 'the stream is gone from the gauge once its client left');

  const empty = await client.beta.environments.create({ name: 'idle', config: { type: 'self_hosted' } });
  const ek = await (
    await fetch(`${srv.baseURL}/v1/environments/${empty.id}/keys`, {
      method: 'POST',
      headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
      body: '{}',
    })
  ).json();
  let pollers = 0;
  for (let i = 0; i < 5 && pollers !== 1; i++) {
    const held = fetch(`${srv.baseURL}/v1/environments/${empty.id}/work/poll?block_ms=999`, {
      headers: { authorization: `Bearer ${ek.key}` },
    });
    await new Promise((r) => setTimeout(r, 100));
    pollers = value(strictParse((await scrape(srv)).text), 'airlock_work_pollers');
    await (await held).text();
  }
  assert.equal(pollers, 1, 'a held long-poll shows in airlock_work_pollers');

  // metrics.listen: the same families without a credential; nothing else is served there
  const s1 = await scrape(srv, { key: null, url: sideURL });
  assert.equal(s1.status, 200);
  assert.equal(s1.type, 'text/plain; version=0.0.4; charset=utf-8');
  assert.deepEqual(Object.keys(strictParse(s1.text)).sort(), Object.keys(m).sort());
  assert.equal((await fetch(sideURL.replace('/metrics', '/v1/sessions'))).status, 404);
  assert.equal((await fetch(sideURL, { method: 'POST', body: 'x' })).status, 405);

  // the database gone under the server: the probe says so (and readyz agrees); on
  // PostgreSQL the lost connection is integration-postgres_faults' case
  if (!ON_PG) {
    rmSync(path.join(srv.dataDir, 'airlock.db'));
    const c = strictParse((await scrape(srv, { key: null, url: sideURL })).text);
    assert.equal(value(c, 'airlock_database_up'), 0);
    assert.equal((await fetch(`${srv.baseURL}/readyz`)).status, 503);
  }
});

test('the official Prometheus client parses the exposition to the same families and values', {
  skip: OFFICIAL_MISSING && 'python3-prometheus-client is not installed (tools/deps.sh installs it)',
}, () => {
  assert.ok(exposition, 'the first test scraped');
  const p = officialParse(exposition);
  assert.equal(p.code, 0, `refused: ${p.stderr}`);
  const mine = strictParse(exposition);
  // the client names a counter's family without _total; its samples keep it
  const names = p.families.map((f) => (f.type === 'counter' ? `${f.name}_total` : f.name)).sort();
  assert.deepEqual(names, Object.keys(mine).sort());
  for (const f of p.families) {
    const key = f.type === 'counter' ? `${f.name}_total` : f.name;
    assert.equal(f.samples.length, mine[key].length, `${key}: sample count`);
    for (const s of f.samples) {
      const v = value(mine, key, s.labels);
      const got = mine[key].find(
        (x) => x.name === s.name && JSON.stringify(Object.entries(x.labels).sort()) === JSON.stringify(Object.entries(s.labels).sort()),
      );
      assert.ok(got, `${s.name}${JSON.stringify(s.labels)} in the strict reading (${v})`);
      assert.equal(got.value, s.value === '+Inf' ? Infinity : s.value, `${s.name}${JSON.stringify(s.labels)}`);
    }
  }
  // and it refuses what is not the format (the check can fail)
  assert.equal(officialParse('airlock_x{a="1"} not-a-number\n').code, 3);
});

// deploy/prometheus/airlock-rules.yaml against Prometheus' own PromQL grammar (npm
// @prometheus-io/lezer-promql, pinned) and against the server's real exposition: every
// expression parses, names only metrics the server exports, and matches or groups only
// by labels those metrics carry (or the ones Prometheus adds: instance, job; le on buckets).
test('the example alerting rules parse and name only metrics and labels the server exports', () => {
  assert.ok(exposition, 'the first test scraped');
  const fams = strictParse(exposition);
  const labelsOf = new Map();
  for (const [name, samples] of Object.entries(fams))
    for (const smp of samples) {
      if (!labelsOf.has(smp.name)) labelsOf.set(smp.name, new Set());
      for (const l of Object.keys(smp.labels)) labelsOf.get(smp.name).add(l);
    }
  const file = path.join(import.meta.dirname, '..', '..', 'deploy', 'prometheus', 'airlock-rules.yaml');
  const rules = parseYaml(readFileSync(file, 'utf8')).groups.flatMap((g) => g.rules);
  assert.ok(rules.length >= 5);
  const parse = (expr) => {
    const out = { errors: [], metrics: [], labels: [] };
    const tree = promql.parse(expr);
    tree.iterate({
      enter: (n) => {
        if (n.type.isError) out.errors.push(n.from);
        else if (n.name === 'Identifier') out.metrics.push(expr.slice(n.from, n.to));
        else if (n.name === 'LabelName') out.labels.push(expr.slice(n.from, n.to));
      },
    });
    return out;
  };
  // the grammar check can fail: a broken matcher is caught
  assert.ok(parse('rate(airlock_http_requests_total{status_class="5xx"[5m])').errors.length > 0);
  for (const r of rules) {
    assert.match(r.alert, /^Airlock[A-Za-z]+$/);
    assert.ok(r.labels?.severity && r.annotations?.summary, `${r.alert}: severity and summary`);
    const p = parse(r.expr);
    assert.deepEqual(p.errors, [], `${r.alert}: PromQL syntax at ${p.errors} in ${r.expr}`);
    assert.ok(p.metrics.length > 0, `${r.alert}: names a metric`);
    const have = new Set(['instance', 'job']);
    for (const m of p.metrics) {
      assert.ok(labelsOf.has(m), `${r.alert}: ${m} is not in the server's exposition`);
      for (const l of labelsOf.get(m)) have.add(l);
    }
    for (const l of p.labels) assert.ok(have.has(l), `${r.alert}: label ${l} is not on ${p.metrics.join(', ')}`);
  }
});

test('model calls are counted by outcome and timed', async (t) => {
  const mock = await startMockModel([
    { content: [{ type: 'text', text: 'fine' }] },
    { error: { status: 400, type: 'invalid_request_error', message: 'refused' } },
    { delay_ms: 60000, content: [{ type: 'text', text: 'never delivered' }] },
  ]);
  t.after(() => mock.stop());
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: mock.url, AIRLOCK_MODEL_API_KEY: 'k' } });
  t.after(() => srv.stop());
  const { client, session } = await setupSession(srv, { agent: { tools: [] } });
  const say = (text) => client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text }] }],
  });
  const idles = async (n) => {
    for (let i = 0; i < 400; i++) {
      if ((await allEvents(client, session.id)).filter((e) => e.type === 'session.status_idle').length >= n) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.fail(`${n} idle events never came`);
  };
  await say('one');
  await idles(1);
  await say('two');
  await idles(2);
  await say('three');
  while ((await mock.requests()).length < 3) await new Promise((r) => setTimeout(r, 20));
  await client.beta.sessions.events.send(session.id, { events: [{ type: 'user.interrupt' }] });
  await idles(3);
  const m = strictParse((await scrape(srv)).text);
  assert.equal(value(m, 'airlock_model_requests_total', { outcome: 'ok' }), 1);
  assert.equal(value(m, 'airlock_model_requests_total', { outcome: 'error' }), 1);
  assert.equal(value(m, 'airlock_model_requests_total', { outcome: 'retryable_error' }), 0);
  assert.equal(value(m, 'airlock_model_requests_total', { outcome: 'cancelled' }), 1);
  const hist = m.airlock_model_request_duration_seconds;
  assert.equal(hist.find((x) => x.name.endsWith('_count')).value, 3);
  assert.equal(hist.find((x) => x.labels.le === '+Inf').value, 3);
  assert.ok(hist.find((x) => x.name.endsWith('_sum')).value > 0);
});

test('with the tunnel edge on, its families are in /metrics too, equal to its own listener', async (t) => {
  const certs = mkdtempSync(path.join(tmpdir(), 'airlock-metrics-edge-'));
  t.after(() => rmSync(certs, { recursive: true, force: true }));
  const edge = makeEdgeCert(certs);
  const srv = await startServer({ env: {
    AIRLOCK_TUNNEL_LISTEN: '127.0.0.1:0', AIRLOCK_TUNNEL_METRICS_LISTEN: '127.0.0.1:0',
    AIRLOCK_TUNNEL_TLS_CERT: edge.cert, AIRLOCK_TUNNEL_TLS_KEY: edge.key,
  } });
  t.after(() => srv.stop());
  const edgePort = Number(/tunnel edge ready.* port=(\d+)/.exec(srv.log())[1]);
  const edgeMetrics = `http://127.0.0.1:${/tunnel metrics listening.* port=(\d+)/.exec(srv.log())[1]}/metrics`;
  // a client that speaks no TLS: one handshake failure, reason tls
  await new Promise((resolve) => {
    const c = net.connect(edgePort, '127.0.0.1', () => c.end('GET / HTTP/1.1\r\n\r\n'));
    c.on('close', resolve);
    c.on('error', resolve);
  });
  let m;
  for (let i = 0; i < 100; i++) {
    m = strictParse((await scrape(srv)).text);
    if (value(m, 'airlock_tunnel_handshake_failures_total', { reason: 'tls' }) === 1) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(value(m, 'airlock_tunnel_handshake_failures_total', { reason: 'tls' }), 1);
  assert.equal(value(m, 'airlock_tunnel_connections'), 0);
  const own = strictParse(await (await fetch(edgeMetrics)).text());
  for (const [name, samples] of Object.entries(own)) assert.deepEqual(m[name], samples, name);
});

test('metrics.listen that cannot be bound stops the start with a clear error', async () => {
  await assert.rejects(
    startServer({ args: ['--metrics-listen', 'not-an-address'] }),
    /cannot listen for metrics.*not-an-address/s,
  );
});
