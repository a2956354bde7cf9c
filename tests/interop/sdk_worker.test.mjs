// The official SDK's own EnvironmentWorker (unmodified, with its agent toolset) polls
// airlock's work queue and completes a session whose scripted model calls bash, write,
// read, edit, glob and grep. The transcript is checked event by event, and the
// persisted history must match what the stream delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import { EnvironmentWorker } from '@anthropic-ai/sdk/lib/environments/worker';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { setupSession, collectEvents, endTurn, textOf } from './lib/session.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, '..', 'scripts', 'six-tools.yaml');

test('SDK EnvironmentWorker completes a six-tool session against airlock', async (t) => {
  const model = await startMockModel(script);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-sdkw-')));
  const abort = new AbortController();
  t.after(async () => {
    abort.abort();
    await srv.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
  });

  const { client, env, envKey, session } = await setupSession(srv);
  const workerClient = new Anthropic({ baseURL: srv.baseURL, apiKey: 'unused-by-worker' });
  const worker = new EnvironmentWorker({
    client: workerClient,
    environmentId: env.id,
    environmentKey: envKey,
    workdir,
    maxIdleMs: 2000,
    memorySyncIntervalMs: null,
  });
  const running = worker.run(abort.signal).catch((e) => {
    if (!abort.signal.aborted) throw e;
  });

  const { done } = await collectEvents(client, session.id, endTurn, { timeoutMs: 60000 });
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'Exercise the six tools.' }] }],
  });
  const events = await done;
  const types = events.map((e) => e.type);
  assert.ok(types.includes('session.status_running'), `no status_running in ${types}`);
  assert.equal(events.at(-1).type, 'session.status_idle');

  const uses = events.filter((e) => e.type === 'agent.tool_use');
  assert.deepEqual(uses.map((u) => u.name), ['write', 'read', 'edit', 'bash', 'glob', 'grep']);
  for (const u of uses) {
    assert.equal(u.evaluated_permission, 'allow');
    assert.deepEqual(u.evaluation, { type: 'always_allow' });
  }
  const results = new Map(
    events.filter((e) => e.type === 'user.tool_result').map((e) => [e.tool_use_id, e]),
  );
  const resultText = (name) => {
    const u = uses.find((x) => x.name === name);
    const r = results.get(u.id);
    assert.ok(r, `no user.tool_result for ${name} (${u.id})`);
    assert.equal(r.is_error, false, `${name} failed: ${textOf(r.content)}`);
    return textOf(r.content);
  };
  const file = path.join(workdir, 'notes', 'hello.txt');
  // The SDK names the path as the model gave it.
  assert.equal(resultText('write'), 'wrote 24 bytes to notes/hello.txt');
  assert.equal(resultText('read'), 'hello world\nsecond line\n');
  assert.match(resultText('edit'), /^edited .*hello\.txt \(1 replacement\(s\)\)$/);
  assert.match(resultText('bash'), /hello airlock\nsecond line\nsum=42/);
  assert.match(resultText('glob'), /notes\/hello\.txt/);
  assert.match(resultText('grep'), /hello\.txt:1:hello airlock/);
  assert.equal(readFileSync(file, 'utf8'), 'hello airlock\nsecond line\n');

  // Each result came after its call, and the turn ended with the scripted text.
  for (const u of uses) {
    const ui = events.findIndex((e) => e.id === u.id);
    const ri = events.findIndex((e) => e.type === 'user.tool_result' && e.tool_use_id === u.id);
    assert.ok(ri > ui, `result for ${u.name} before its call`);
  }
  const messages = events.filter((e) => e.type === 'agent.message').map((e) => textOf(e.content));
  assert.equal(messages.at(-1), 'All six tools ran.');

  // History holds the same events, in the same order, each exactly once.
  const history = [];
  for await (const e of client.beta.sessions.events.list(session.id, { limit: 1000 })) history.push(e);
  const streamedIds = events.filter((e) => e.id).map((e) => e.id);
  const historyIds = history.map((e) => e.id);
  assert.equal(new Set(historyIds).size, historyIds.length, 'duplicate ids in history');
  assert.deepEqual(historyIds.filter((id) => streamedIds.includes(id)), streamedIds);

  // The model saw every tool result it was owed.
  const reqs = await model.requests();
  assert.equal(reqs.length, 7);

  abort.abort();
  await running;
});
