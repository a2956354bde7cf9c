// Two server replicas on one PostgreSQL database (run by the interop-pg suite only): the
// official SDK client drives a session through replica A while the SDK's own
// EnvironmentWorker polls and answers through replica B. The session completes its six
// tool calls; every tool result is in the history once, read back through either
// replica. (Cross-replica SSE is not built yet, docs/server/storage.md: the client reads
// the history, not a stream.) And a stream open on replica B sees, in order and once each,
// every event of a session that runs entirely on replica A (PostgreSQL LISTEN/NOTIFY).
// And a work poll held on replica B wakes when a session created on replica A queues its
// item (the same channel), not at the end of its block time.
// And the agent loop's lease: one replica makes a session's model calls even when the
// tool results arrive through the other; when the holder is SIGKILLed mid-call, the
// other takes the session over after the lease lapses and finishes the turn.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, realpathSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import { EnvironmentWorker } from '@anthropic-ai/sdk/lib/environments/worker';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { setupSession, collectEvents, endTurn } from './lib/session.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, '..', 'scripts', 'six-tools.yaml');
const skip = process.env.AIRLOCK_TEST_PG_PORT ? false : 'needs PostgreSQL (the interop-pg suite)';

async function history(client, id) {
  const out = [];
  for await (const e of client.beta.sessions.events.list(id, { limit: 1000 })) out.push(e);
  return out;
}

// A mock model with modelScript and two replicas A and B on one database (with extra
// environment env), all stopped after the test; abort ends the workers started by worker().
async function twoReplicas(t, modelScript, env = {}) {
  const model = await startMockModel(modelScript);
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-repl-')));
  const keyFile = path.join(dir, 'master.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  // The hub's safety drain of notifications is set out of reach (10 min), so everything
  // across replicas here is delivered by the LISTEN socket's watch on the loop and by the
  // notifications libpq reads along with answers (db_on_notes), or the test fails.
  const common = {
    AIRLOCK_MODEL_BASE_URL: model.url,
    AIRLOCK_MASTER_KEY_FILE: keyFile,
    AIRLOCK_NOTIFY_SWEEP_MS: '600000',
    ...env,
  };
  const a = await startServer({ env: common });
  const b = await startServer({ env: { ...common, AIRLOCK_DATABASE_URL: a.databaseURL, AIRLOCK_API_KEY: a.apiKey } });
  const abort = new AbortController();
  t.after(async () => {
    abort.abort();
    await a.stop();
    await b.stop();
    await model.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  // the SDK's EnvironmentWorker polling and answering through srv
  const worker = (srv, envId, envKey) =>
    new EnvironmentWorker({
      client: new Anthropic({ baseURL: srv.baseURL, apiKey: 'unused-by-worker' }),
      environmentId: envId,
      environmentKey: envKey,
      workdir: path.join(dir, 'work'),
      maxIdleMs: 2000,
      memorySyncIntervalMs: null,
    }).run(abort.signal).catch((e) => {
      if (!abort.signal.aborted) throw e;
    });
  return { model, a, b, abort, worker };
}

test('a session driven through replica A completes with its worker on replica B', { skip }, async (t) => {
  const { model, a, b, abort, worker } = await twoReplicas(t, script);
  const { client, env, envKey, session } = await setupSession(a);
  const viaB = new Anthropic({ baseURL: b.baseURL, apiKey: b.apiKey, maxRetries: 0 });
  assert.equal((await viaB.beta.sessions.retrieve(session.id)).id, session.id, 'B reads what A wrote');
  const running = worker(b, env.id, envKey);

  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'Exercise the six tools.' }] }],
  });
  let events = [];
  for (let i = 0; i < 300; i++) {
    events = await history(client, session.id);
    const last = events.at(-1);
    if (last?.type === 'session.status_idle' && last.stop_reason?.type === 'end_turn') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const last = events.at(-1);
  assert.equal(last?.type, 'session.status_idle', `the turn did not end: ${events.map((e) => e.type)}`);
  const uses = events.filter((e) => e.type === 'agent.tool_use');
  assert.deepEqual(uses.map((u) => u.name), ['write', 'read', 'edit', 'bash', 'glob', 'grep']);
  for (const u of uses) {
    const rs = events.filter((e) => e.type === 'user.tool_result' && e.tool_use_id === u.id);
    assert.equal(rs.length, 1, `${u.name}: ${rs.length} results`);
    assert.equal(rs[0].is_error, false, `${u.name} failed`);
  }
  const ids = events.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, 'duplicate events in history');
  // both replicas serve the same history
  assert.deepEqual((await history(viaB, session.id)).map((e) => e.id), ids);
  assert.equal((await model.requests()).length, 7, 'the model saw each step once');
  abort.abort();
  await running;
});

test('a stream on replica B sees every event of a session run on replica A', { skip }, async (t) => {
  const { a, b, abort, worker } = await twoReplicas(t, script);
  const { client, env, envKey, session } = await setupSession(a);
  const viaB = new Anthropic({ baseURL: b.baseURL, apiKey: b.apiKey, maxRetries: 0 });
  const running = worker(a, env.id, envKey);
  const { done } = await collectEvents(viaB, session.id, endTurn, { timeoutMs: 60000 });
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'Exercise the six tools.' }] }],
  });
  const events = (await done).filter((e) => e.id);
  const streamed = events.map((e) => e.id);
  const all = (await history(client, session.id)).map((e) => e.id);
  assert.equal(events[0]?.type, 'user.message', `replica B's stream began with ${events[0]?.type}`);
  assert.equal(new Set(streamed).size, streamed.length, 'an event streamed twice');
  // everything the turn wrote from the message on, in the log's order, none missing
  assert.deepEqual(streamed, all.slice(all.indexOf(streamed[0])));
  assert.ok(streamed.length >= 20, `replica B's stream saw ${streamed.length} events`);
  abort.abort();
  await running;
});

test('a poll held on replica B wakes when a session created on replica A queues work', { skip }, async (t) => {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-repl-')));
  const keyFile = path.join(dir, 'master.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const a = await startServer({ env: { AIRLOCK_MASTER_KEY_FILE: keyFile } });
  const b = await startServer({
    env: { AIRLOCK_MASTER_KEY_FILE: keyFile, AIRLOCK_DATABASE_URL: a.databaseURL, AIRLOCK_API_KEY: a.apiKey },
  });
  t.after(async () => {
    await a.stop();
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const client = new Anthropic({ baseURL: a.baseURL, apiKey: a.apiKey, maxRetries: 0 });
  const env = await client.beta.environments.create({ name: 'wake', config: { type: 'self_hosted' } });
  const ag = await client.beta.agents.create({ name: 'wake', model: 'claude-e2e' });
  const kr = await fetch(`${a.baseURL}/v1/environments/${env.id}/keys`, {
    method: 'POST',
    headers: { 'x-api-key': a.apiKey, 'content-type': 'application/json' },
    body: '{"name":"wake"}',
  });
  assert.equal(kr.status, 200);
  const envKey = (await kr.json()).key;

  const blockMs = 999; // the most a poll may ask for
  const held = fetch(`${b.baseURL}/v1/environments/${env.id}/work/poll?block_ms=${blockMs}`, {
    headers: { authorization: `Bearer ${envKey}` },
  }).then(async (r) => ({ status: r.status, body: await r.json(), at: performance.now() }));
  // the poll must be held on B (queue empty) before the work exists, or it would not wait
  let pollers = 0;
  for (let i = 0; i < 50 && pollers !== 1; i++) {
    const m = await (await fetch(`${b.baseURL}/metrics`, { headers: { 'x-api-key': b.apiKey } })).text();
    pollers = Number(/^airlock_work_pollers (\d+)$/m.exec(m)?.[1]);
    if (pollers !== 1) await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(pollers, 1, 'the poll is held on replica B');
  const session = await client.beta.sessions.create({ agent: ag.id, environment_id: env.id });
  const queuedAt = performance.now(); // committed on A: the create answered
  const got = await held;
  const wakeMs = got.at - queuedAt;
  console.log(`# wake delay on replica B: ${wakeMs.toFixed(1)} ms (block_ms ${blockMs})`);
  assert.equal(got.status, 200);
  assert.equal(got.body?.data?.id, session.id, `B's poll answered ${JSON.stringify(got.body)}`);
  // generous: the notification is drained every 20 ms; without it the poll would hold
  // to its full block time
  assert.ok(wakeMs < blockMs / 2, `B's poll woke ${wakeMs.toFixed(1)} ms after the work was queued`);
});

// "model call" lines a replica logged for one session (the agent loop logs each call).
function callsOn(srv, sessionId) {
  return srv.log().split('\n').filter((l) => l.includes('model call') && l.includes(sessionId)).length;
}

async function until(cond, what, ms = 30000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('one replica runs a session; a SIGKILLed holder is taken over after the lease lapses', { skip }, async (t) => {
  const { model, a, b, abort, worker } = await twoReplicas(t, [
    { content: [{ type: 'tool_use', name: 'write', input: { file_path: 'a.txt', content: 'one\n' } }] },
    { delay_ms: 60000, content: [{ type: 'text', text: 'lost with the killed replica' }] },
    { content: [{ type: 'text', text: 'answered after the takeover' }] },
  ], { AIRLOCK_LOOP_LEASE_MS: '3000' });
  const { client, env, envKey, session } = await setupSession(a);
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'write, then answer' }] }],
  });
  await until(async () => (await model.requests()).length >= 1, 'the first model call');
  // whichever replica took the lease made the call; the tool result goes through the
  // other one, whose loop must leave the next call to the holder
  const [holder, other] = callsOn(a, session.id) ? [a, b] : [b, a];
  assert.equal(callsOn(other, session.id), 0, 'both replicas called the model');
  const running = worker(other, env.id, envKey);
  await until(async () => (await model.requests()).length >= 2, 'the second (held) model call');
  // give a wrongly woken second replica time to call too, then check it did not
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await model.requests()).length, 2, 'a model call was made twice');
  assert.equal(callsOn(holder, session.id), 2);
  assert.equal(callsOn(other, session.id), 0, 'the replica without the lease called the model');

  holder.proc.kill('SIGKILL');
  await new Promise((r) => holder.proc.once('exit', r));
  const viaOther = new Anthropic({ baseURL: other.baseURL, apiKey: a.apiKey, maxRetries: 0 });
  let hist = [];
  await until(async () => {
    hist = await history(viaOther, session.id);
    const last = hist.at(-1);
    return last?.type === 'session.status_idle' && last.stop_reason?.type === 'end_turn';
  }, 'the turn to end on the surviving replica');
  assert.match(other.log(), /taking over session/);
  assert.equal((await model.requests()).length, 3, 'the model saw each call once (plus the lost one)');
  const ids = hist.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, 'duplicate events in history');
  const uses = hist.filter((e) => e.type === 'agent.tool_use');
  assert.equal(uses.length, 1);
  const results = hist.filter((e) => e.type === 'user.tool_result');
  assert.equal(results.length, 1, `${results.length} tool results`);
  assert.equal(results[0].tool_use_id, uses[0].id);
  const ends = hist.filter((e) => e.type === 'span.model_request_end').map((e) => e.is_error);
  assert.deepEqual(ends, [false, true, false], 'the killed call is closed as failed, once');
  const msgs = hist.filter((e) => e.type === 'agent.message');
  assert.deepEqual(msgs.map((m) => m.content[0].text), ['answered after the takeover']);
  abort.abort();
  await running;
});
