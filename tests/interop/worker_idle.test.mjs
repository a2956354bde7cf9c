// `airlock worker poll --max-idle` releases an idle session however it became idle, so
// one idle session never keeps the worker from the next one (issue 17, blocker 1):
// a session created without a message has no history, so no session.status_idle ever
// arrives; and the same session's item, re-queued after its lease lapsed while the
// server was down, is claimed again in that state. Both used to be held until SIGTERM
// while other sessions waited with an unanswered agent.tool_use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { setupSession, collectEvents, endTurn, textOf } from './lib/session.mjs';
import { startPollWorker, waitFor } from './lib/worker.mjs';

const startWorker = (baseURL, env, envKey, workdir, maxIdle) =>
  startPollWorker({ baseURL, environmentId: env.id, envKey, workdir, args: ['--max-idle', maxIdle] });

async function itemsOf(baseURL, env, envKey, sessionId) {
  const list = await fetch(`${baseURL}/v1/environments/${env.id}/work?limit=100`, {
    headers: { authorization: `Bearer ${envKey}` },
  }).then((r) => r.json());
  return list.data.filter((w) => w.data?.id === sessionId);
}

const toolScript = [
  { content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo second-session-ran' } }] },
  { content: [{ type: 'text', text: 'done' }] },
];

async function fixture(t, serverEnv = {}) {
  const model = await startMockModel(toolScript);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'airlock-idle-'));
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-idle-wd-')));
  chmodSync(workdir, 0o711); // a root worker runs as an unprivileged user, who must reach it
  const f = { model, dataDir, workdir, workers: [], servers: [] };
  f.start = async (args = []) => {
    const srv = await startServer({
      dataDir,
      args,
      env: { AIRLOCK_MODEL_BASE_URL: model.url, ...serverEnv, ...(f.apiKey ? { AIRLOCK_API_KEY: f.apiKey } : {}) },
    });
    f.apiKey = srv.apiKey;
    f.servers.push(srv);
    return srv;
  };
  t.after(async () => {
    for (const w of f.workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    for (const s of f.servers) await s.stop();
    await model.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(workdir, { recursive: true, force: true });
  });
  return f;
}

test('a session created without a message is released after --max-idle; the next session runs', async (t) => {
  const f = await fixture(t);
  const srv = await f.start();
  const { client, env, agent, envKey, session: idle } = await setupSession(srv);
  const w = startWorker(srv.baseURL, env, envKey, f.workdir, '2s');
  f.workers.push(w);
  await waitFor(() => w.log().includes(`"work claimed"`) && w.log().includes(idle.id), 'the idle session claimed', 15000, w.log);

  // A second session with work: its tool call must not wait behind the idle one.
  const busy = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const { done } = await collectEvents(client, busy.id, endTurn, { timeoutMs: 30000 });
  await client.beta.sessions.events.send(busy.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'go' }] }],
  });
  const events = await done;
  assert.ok(events.some(endTurn), `the second session never finished its turn:\n${w.log()}`);
  const result = events.find((e) => e.type === 'user.tool_result');
  assert.equal(textOf(result?.content).trim(), 'second-session-ran', w.log());
  assert.match(w.log(), new RegExp(`session idle when claimed.*session_id=${idle.id}`));

  const items = await itemsOf(srv.baseURL, env, envKey, idle.id);
  assert.deepEqual(items.map((i) => i.state), ['stopped'], JSON.stringify(items));
  w.proc.kill('SIGTERM');
  assert.equal((await w.exited).code, 0, w.log());
});

test('an idle session re-queued after its lease lapsed during a server restart is released', async (t) => {
  const f = await fixture(t, { AIRLOCK_LEASE_TTL: '3' });
  let srv = await f.start();
  const { env, envKey, session: idle } = await setupSession(srv);
  const w = startWorker(srv.baseURL, env, envKey, f.workdir, '4s');
  f.workers.push(w);
  await waitFor(() => w.log().includes(`"work claimed"`), 'the idle session claimed', 15000, w.log);
  const first = (await itemsOf(srv.baseURL, env, envKey, idle.id))[0].id;

  // The server goes away longer than the lease TTL and comes back on the same port: the
  // item's lease has lapsed and the session (still idle, never terminated) gets a new one.
  srv.proc.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 5000));
  srv = await f.start(['--listen', `127.0.0.1:${srv.port}`]);
  await waitFor(async () => {
    const items = await itemsOf(srv.baseURL, env, envKey, idle.id);
    return items.length >= 2;
  }, 'the item re-queued', 15000, srv.log);
  const requeued = (await itemsOf(srv.baseURL, env, envKey, idle.id)).find((i) => i.id !== first);
  await waitFor(() => w.log().includes(`"work claimed" work_id=${requeued.id}`), 'the re-queued item claimed', 20000, w.log);
  // released after --max-idle (4 s), not held until a signal
  await waitFor(async () => {
    const items = await itemsOf(srv.baseURL, env, envKey, idle.id);
    return items.every((i) => i.state === 'stopped');
  }, 'every item of the idle session stopped', 15000, w.log);
  assert.match(w.log(), new RegExp(`"work item finished" work_id=${requeued.id}.*result=done`));
  assert.equal(w.proc.exitCode, null, 'the worker is still polling');
  w.proc.kill('SIGTERM');
  assert.equal((await w.exited).code, 0, w.log());
});

// The race the soak found (tests/interop/soak.test.mjs): a worker releases an idle
// session's item at the moment its user sends the next message. The message arrives while
// the item is still live, so no new item is queued for it; then the release stops the
// item, and the session waited for a worker forever (status running, its tool use never
// run). Played here step by step with the work-queue routes, the model call held by the
// script so the session is surely still running when the item stops.
test('a message that arrives while the worker releases the item gets a new item', async (t) => {
  const model = await startMockModel([
    { match: 'late', delay_ms: 3000, content: [{ type: 'text', text: 'answered late' }] },
  ]);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  t.after(async () => {
    await srv.stop();
    await model.stop();
  });
  const { client, env, envKey, session } = await setupSession(srv);
  const call = (cred, method, p, body) =>
    fetch(`${srv.baseURL}/v1/environments/${env.id}/work${p}`, {
      method,
      headers: { authorization: `Bearer ${cred}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const poll = async () => (await call(envKey, 'GET', '/poll?block_ms=500')).json();

  const item = await poll();
  assert.equal(item?.data?.id, session.id, 'the new session is queued');
  const token = JSON.parse(Buffer.from(item.secret, 'base64url')).sessions_token;
  assert.equal((await call(token, 'POST', `/${item.id}/ack`)).status, 200);

  // The user's message while the item is held: nothing new is queued yet.
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'late' }] }],
  });
  assert.equal((await itemsOf(srv.baseURL, env, envKey, session.id)).length, 1);

  // The worker's release (as `airlock worker` does at --max-idle): a forced stop.
  const stop = await call(token, 'POST', `/${item.id}/stop`, { force: true });
  assert.equal(stop.status, 200);
  assert.equal((await stop.json()).state, 'stopped');

  const next = await poll();
  assert.equal(next?.data?.id, session.id, 'the session that still has to run is queued again');
  assert.notEqual(next.id, item.id);
  assert.match(srv.log(), /work stop.*requeued=true/);
});
