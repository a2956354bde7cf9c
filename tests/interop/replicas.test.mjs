// Two server replicas on one PostgreSQL database (run by the interop-pg suite only): the
// official SDK client drives a session through replica A while the SDK's own
// EnvironmentWorker polls and answers through replica B. The session completes its six
// tool calls; every tool result is in the history once, read back through either
// replica. (Cross-replica SSE is not built yet, docs/server/storage.md: the client reads
// the history, not a stream.) And a stream open on replica B sees, in order and once each,
// every event of a session that runs entirely on replica A (PostgreSQL LISTEN/NOTIFY).
// And a work poll held on replica B wakes when a session created on replica A queues its
// item (the same channel), not at the end of its block time.
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

test('a session driven through replica A completes with its worker on replica B', { skip }, async (t) => {
  const model = await startMockModel(script);
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-repl-')));
  const keyFile = path.join(dir, 'master.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const a = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url, AIRLOCK_MASTER_KEY_FILE: keyFile } });
  const b = await startServer({
    env: { AIRLOCK_MODEL_BASE_URL: model.url, AIRLOCK_MASTER_KEY_FILE: keyFile,
      AIRLOCK_DATABASE_URL: a.databaseURL, AIRLOCK_API_KEY: a.apiKey },
  });
  const workdir = path.join(dir, 'work');
  const abort = new AbortController();
  t.after(async () => {
    abort.abort();
    await a.stop();
    await b.stop();
    await model.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const { client, env, envKey, session } = await setupSession(a);
  const viaB = new Anthropic({ baseURL: b.baseURL, apiKey: b.apiKey, maxRetries: 0 });
  assert.equal((await viaB.beta.sessions.retrieve(session.id)).id, session.id, 'B reads what A wrote');
  const worker = new EnvironmentWorker({
    client: new Anthropic({ baseURL: b.baseURL, apiKey: 'unused-by-worker' }),
    environmentId: env.id,
    environmentKey: envKey,
    workdir,
    maxIdleMs: 2000,
    memorySyncIntervalMs: null,
  });
  const running = worker.run(abort.signal).catch((e) => {
    if (!abort.signal.aborted) throw e;
  });

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
  const model = await startMockModel(script);
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-repl-')));
  const keyFile = path.join(dir, 'master.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const a = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url, AIRLOCK_MASTER_KEY_FILE: keyFile } });
  const b = await startServer({
    env: { AIRLOCK_MODEL_BASE_URL: model.url, AIRLOCK_MASTER_KEY_FILE: keyFile,
      AIRLOCK_DATABASE_URL: a.databaseURL, AIRLOCK_API_KEY: a.apiKey },
  });
  const abort = new AbortController();
  t.after(async () => {
    abort.abort();
    await a.stop();
    await b.stop();
    await model.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const { client, env, envKey, session } = await setupSession(a);
  const viaB = new Anthropic({ baseURL: b.baseURL, apiKey: b.apiKey, maxRetries: 0 });
  const worker = new EnvironmentWorker({
    client: new Anthropic({ baseURL: a.baseURL, apiKey: 'unused-by-worker' }),
    environmentId: env.id,
    environmentKey: envKey,
    workdir: path.join(dir, 'work'),
    maxIdleMs: 2000,
    memorySyncIntervalMs: null,
  });
  const running = worker.run(abort.signal).catch((e) => {
    if (!abort.signal.aborted) throw e;
  });
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
