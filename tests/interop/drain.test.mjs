// Graceful drain on SIGTERM (docs/server/drain.md): a request whose body is still
// arriving at TERM completes, a model call in flight is answered and recorded before
// the exit, a new connection is refused, /readyz on a connection already open says 503,
// an event stream ends cleanly, and after a restart nothing acknowledged is missing.
// A drain that outlasts its timeout, or a second TERM, exits at once (still 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { allEvents } from './lib/events.mjs';
import { makeEdgeCert } from './lib/edge_cert.mjs';

const SERVER_ENV = { AIRLOCK_MODEL_API_KEY: 'mock-model-key', AIRLOCK_MODEL_RETRY_BASE_MS: '10' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A raw connection: bytes written by hand, the whole answer read until the server
// closes (the drain closes every connection after its answer).
function rawConn(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    const closed = new Promise((r) => sock.on('close', () => r(data)));
    sock.setEncoding('utf8');
    sock.on('data', (d) => (data += d));
    sock.on('error', () => {});
    sock.once('connect', () => resolve({ sock, closed, data: () => data }));
    sock.once('error', reject);
  });
}

function connectRefused(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', (e) => resolve(e.code === 'ECONNREFUSED'));
  });
}

const exited = (proc) =>
  proc.exitCode !== null || proc.signalCode !== null
    ? Promise.resolve({ code: proc.exitCode, signal: proc.signalCode })
    : new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));

async function setup(t, script, args, extraEnv = {}) {
  const mock = await startMockModel(script);
  t.after(() => mock.stop());
  const dataDir = mkdtempSync(path.join(tmpdir(), 'airlock-drain-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = { ...SERVER_ENV, AIRLOCK_MODEL_BASE_URL: mock.url, ...extraEnv };
  const srv = await startServer({ env, dataDir, args });
  t.after(() => srv.stop());
  const client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
  const agent = await client.beta.agents.create({ name: 'd', model: 'claude-test-model', tools: [] });
  const environment = await client.beta.environments.create({ name: 'd', config: { type: 'self_hosted' } });
  const session = await client.beta.sessions.create({ agent: agent.id, environment_id: environment.id });
  return { mock, srv, env, dataDir, client, agent, environment, session };
}

const say = (client, sid, text) =>
  client.beta.sessions.events.send(sid, {
    events: [{ type: 'user.message', content: [{ type: 'text', text }] }],
  });

test('TERM drains: in-flight work finishes and is kept, new connections are refused', async (t) => {
  const { mock, srv, env, dataDir, client, agent, environment, session } = await setup(
    t,
    [{ delay_ms: 1500, content: [{ type: 'text', text: 'answered during the drain' }] }],
    ['--drain-timeout', '20s'],
  );

  // an event stream open on the session, read raw to see how it ends
  const sse = await rawConn(srv.port);
  sse.sock.write(
    `GET /v1/sessions/${session.id}/events/stream HTTP/1.1\r\nhost: x\r\nx-api-key: ${srv.apiKey}\r\n\r\n`,
  );
  // a model call in flight: the mock holds its answer for 1.5 s
  await say(client, session.id, 'take your time');
  while ((await mock.requests()).length < 1) await sleep(20);
  // a request whose body is still arriving, and a readiness probe whose head is
  const body = JSON.stringify({ agent: agent.id, environment_id: environment.id, title: 'made while draining' });
  const upload = await rawConn(srv.port);
  upload.sock.write(
    `POST /v1/sessions HTTP/1.1\r\nhost: x\r\nx-api-key: ${srv.apiKey}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`,
  );
  const probe = await rawConn(srv.port);
  probe.sock.write('GET /readyz HTTP/1.1\r\nhost: x\r\n');
  // a stream and a long-poll whose heads are still arriving: opened during the drain,
  // neither may hold it (the stream would last until the timeout)
  const late = await rawConn(srv.port);
  late.sock.write(`GET /v1/sessions/${session.id}/events/stream HTTP/1.1\r\nhost: x\r\nx-api-key: ${srv.apiKey}\r\n`);
  const envKey = (await (await fetch(`${srv.baseURL}/v1/environments/${environment.id}/keys`, {
    method: 'POST', headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' }, body: '{}',
  })).json()).key;
  // its queue is emptied first, so the poll would wait its whole block_ms
  const drainQueue = await fetch(`${srv.baseURL}/v1/environments/${environment.id}/work/poll`, { headers: { authorization: `Bearer ${envKey}` } });
  assert.equal(drainQueue.status, 200);
  await drainQueue.text();
  const poll = await rawConn(srv.port);
  poll.sock.write(`GET /v1/environments/${environment.id}/work/poll?block_ms=999 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${envKey}\r\n`);
  await sleep(100); // both heads parsed before the signal

  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  const exit = exited(srv.proc);
  let refused = false;
  for (let i = 0; i < 50 && !refused; i++) {
    refused = await connectRefused(srv.port);
    if (!refused) await sleep(20);
  }
  assert.ok(refused, 'a new connection after TERM is refused');

  // the stream ends cleanly: the connection closes after whole frames, no reset
  const frames = await sse.closed;
  assert.match(frames, /^HTTP\/1\.1 200/);
  assert.ok(frames.endsWith('\n\n'), `the stream ends on a frame boundary: ${JSON.stringify(frames.slice(-80))}`);
  const streamed = [...frames.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]));
  assert.ok(streamed.some((e) => e.type === 'user.message'), 'the stream carried the events before TERM');

  probe.sock.write('\r\n');
  const ready = await probe.closed;
  assert.match(ready, /^HTTP\/1\.1 503/, `readyz while draining: ${ready}`);
  assert.match(ready, /draining/);

  late.sock.write('\r\n');
  const lateAnswer = await late.closed;
  assert.match(lateAnswer, /^HTTP\/1\.1 503/, `a stream asked for while draining: ${lateAnswer.slice(0, 300)}`);
  assert.match(lateAnswer, /shutting down; reconnect/);
  const p0 = Date.now();
  poll.sock.write('\r\n');
  const polled = await poll.closed;
  assert.match(polled, /^HTTP\/1\.1 200/);
  assert.ok(polled.endsWith('null'), `no work: ${polled.slice(-40)}`);
  assert.ok(Date.now() - p0 < 900, 'a poll made while draining is answered at once, not held');

  upload.sock.write(body.slice(10));
  const made = await upload.closed;
  assert.match(made, /^HTTP\/1\.1 200/, `the upload in flight completes: ${made.slice(0, 200)}`);
  assert.match(made, /connection: close/i, 'and its connection is closed after the answer');
  const created = JSON.parse(made.slice(made.indexOf('\r\n\r\n') + 4));

  const { code, signal } = await exit;
  assert.equal(code, 0, `exit status (signal ${signal}): ${srv.log().slice(-800)}`);
  assert.ok(Date.now() - t0 >= 1000, 'the exit waited for the model call in flight');
  assert.match(srv.log(), /shutting down: draining" signal=TERM drain_timeout_s=20/);
  assert.match(srv.log(), /drained: exiting/);

  // nothing acknowledged is missing after a restart (and the answer that came during
  // the drain was recorded, not redone: the mock is asked nothing more)
  const again = await startServer({ env: { ...env, AIRLOCK_API_KEY: srv.apiKey }, dataDir });
  t.after(() => again.stop());
  const c2 = new Anthropic({ baseURL: again.baseURL, apiKey: again.apiKey, maxRetries: 0 });
  const hist = await allEvents(c2, session.id);
  const msg = hist.find((e) => e.type === 'agent.message');
  assert.ok(msg, `the answer in flight at TERM is in the log: ${hist.map((e) => e.type).join(', ')}`);
  assert.equal(msg.content[0].text, 'answered during the drain');
  assert.ok(hist.some((e) => e.type === 'session.status_idle'), 'the turn ended before the exit');
  for (const e of streamed) assert.ok(hist.some((h) => h.id === e.id), `${e.type} ${e.id} kept`);
  assert.equal((await c2.beta.sessions.retrieve(session.id)).status, 'idle');
  assert.equal((await c2.beta.sessions.retrieve(created.id)).title, 'made while draining');
  assert.equal((await mock.requests()).length, 1);
});

test('a drain that outlasts its timeout exits 0, and the next server resumes the session', async (t) => {
  const { mock, srv, env, dataDir, client, session } = await setup(
    t,
    [
      { delay_ms: 60000, content: [{ type: 'text', text: 'never delivered' }] },
      { content: [{ type: 'text', text: 'answered by the next server' }] },
    ],
    ['--drain-timeout', '1s'],
  );
  await say(client, session.id, 'slow one');
  while ((await mock.requests()).length < 1) await sleep(20);
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  const { code } = await exited(srv.proc);
  const took = Date.now() - t0;
  assert.equal(code, 0);
  assert.ok(took >= 900 && took < 10000, `exited after the 1 s timeout (${took} ms)`);
  assert.match(srv.log(), /drain timed out: exiting with work in flight.*agent_calls=1/);

  const again = await startServer({ env: { ...env, AIRLOCK_API_KEY: srv.apiKey }, dataDir });
  t.after(() => again.stop());
  const c2 = new Anthropic({ baseURL: again.baseURL, apiKey: again.apiKey, maxRetries: 0 });
  let hist = [];
  for (let i = 0; i < 200 && !hist.some((e) => e.type === 'agent.message'); i++) {
    await sleep(50);
    hist = await allEvents(c2, session.id);
  }
  const msg = hist.find((e) => e.type === 'agent.message');
  assert.equal(msg?.content[0].text, 'answered by the next server', hist.map((e) => e.type).join(', '));
});

test('the tunnel ingress stops taking connections too; a second TERM exits at once', async (t) => {
  const certs = mkdtempSync(path.join(tmpdir(), 'airlock-drain-edge-'));
  t.after(() => rmSync(certs, { recursive: true, force: true }));
  const edge = makeEdgeCert(certs);
  const { mock, srv, client, session } = await setup(
    t,
    [{ delay_ms: 60000, content: [{ type: 'text', text: 'never delivered' }] }],
    ['--drain-timeout', '60s'],
    {
      AIRLOCK_TUNNEL_LISTEN: '127.0.0.1:0', AIRLOCK_TUNNEL_INGRESS_LISTEN: '127.0.0.1:0',
      AIRLOCK_TUNNEL_TLS_CERT: edge.cert, AIRLOCK_TUNNEL_TLS_KEY: edge.key,
    },
  );
  const ingressPort = Number(/tunnel ingress ready.* port=(\d+)/.exec(srv.log())[1]);
  assert.equal(await connectRefused(ingressPort), false, 'the ingress takes connections before TERM');
  await say(client, session.id, 'slow one');
  while ((await mock.requests()).length < 1) await sleep(20);
  srv.proc.kill('SIGTERM');
  await sleep(300);
  assert.equal(srv.proc.exitCode, null, 'still draining after the first TERM');
  assert.equal(await connectRefused(ingressPort), true, 'the ingress refuses new connections while draining');
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  const { code } = await exited(srv.proc);
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 3000, 'the second TERM ends it at once');
  assert.match(srv.log(), /second signal: exiting without waiting for the drain/);
});

test('a bad drain timeout is a usage error', async () => {
  for (const bad of ['0', 'soon', '2h']) {
    await assert.rejects(startServer({ args: ['--drain-timeout', bad] }), /exited 2: .*--drain-timeout: must be a duration/s);
  }
  await assert.rejects(
    startServer({ env: { AIRLOCK_DRAIN_TIMEOUT: '0' } }),
    /exited 2: .*AIRLOCK_DRAIN_TIMEOUT: must be a duration/s,
  );
});
