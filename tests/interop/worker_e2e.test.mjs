// airlock's own worker (`airlock worker poll`) against airlock's server and the scripted
// model: the six-tool session is checked event by event, then the worker releases the
// idle session (force-stop of its work item), and SIGTERM ends it cleanly. Its log
// never carries the environment key or a sessions token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { setupSession, collectEvents, endTurn, textOf } from './lib/session.mjs';
import { sandboxSkip } from './lib/hostprobe.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, '..', 'scripts', 'six-tools.yaml');

function startWorker(srv, env, envKey, workdir, extra = []) {
  const proc = spawn(
    process.env.AIRLOCK_BIN,
    ['worker', 'poll', '--environment-id', env.id, '--workdir', workdir, '--max-idle', '2s',
      '--log-format', 'json', ...extra],
    {
      env: { ...process.env, ANTHROPIC_ENVIRONMENT_KEY: envKey, ANTHROPIC_BASE_URL: srv.baseURL },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
  return { proc, log: () => log, exited };
}

async function waitFor(cond, what, ms = 30000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('airlock worker completes a six-tool session against airlock', { skip: sandboxSkip() }, async (t) => {
  const model = await startMockModel(script);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-wk-')));
  chmodSync(workdir, 0o711); // a root worker runs as an unprivileged user, who must reach it
  let worker;
  t.after(async () => {
    if (worker && worker.proc.exitCode === null) worker.proc.kill('SIGKILL');
    await srv.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
  });

  const { client, env, envKey, session } = await setupSession(srv);
  worker = startWorker(srv, env, envKey, workdir);

  const { done } = await collectEvents(client, session.id, endTurn, { timeoutMs: 60000 });
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'Exercise the six tools.' }] }],
  });
  const events = await done;
  assert.equal(events.at(-1).type, 'session.status_idle', worker.log());

  const uses = events.filter((e) => e.type === 'agent.tool_use');
  assert.deepEqual(uses.map((u) => u.name), ['write', 'read', 'edit', 'bash', 'glob', 'grep']);
  const results = new Map(
    events.filter((e) => e.type === 'user.tool_result').map((e) => [e.tool_use_id, e]),
  );
  const resultText = (name) => {
    const u = uses.find((x) => x.name === name);
    const r = results.get(u.id);
    assert.ok(r, `no user.tool_result for ${name} (${u.id}); worker log:\n${worker.log()}`);
    assert.equal(r.is_error, false, `${name} failed: ${textOf(r.content)}`);
    return textOf(r.content);
  };
  // each session has its own workspace, <workdir>/sessions/<session id>
  const file = path.join(workdir, 'sessions', session.id, 'notes', 'hello.txt');
  // the path form is the toolset's business (toolset_diff compares it with the SDK)
  assert.match(resultText('write'), /^wrote 24 bytes to (\/.*\/)?notes\/hello\.txt$/);
  assert.equal(resultText('read'), 'hello world\nsecond line\n');
  assert.match(resultText('edit'), /^edited .*hello\.txt \(1 replacement\(s\)\)$/);
  assert.match(resultText('bash'), /hello airlock\nsecond line\nsum=42/);
  assert.match(resultText('glob'), /notes\/hello\.txt/);
  assert.match(resultText('grep'), /hello\.txt:1:hello airlock/);
  assert.equal(readFileSync(file, 'utf8'), 'hello airlock\nsecond line\n');
  for (const u of uses) {
    const ui = events.findIndex((e) => e.id === u.id);
    const ri = events.findIndex((e) => e.type === 'user.tool_result' && e.tool_use_id === u.id);
    assert.ok(ri > ui, `result for ${u.name} before its call`);
  }
  // exactly one result per call: the dedupe never ran a call twice
  assert.equal(events.filter((e) => e.type === 'user.tool_result').length, 6);
  const messages = events.filter((e) => e.type === 'agent.message').map((e) => textOf(e.content));
  assert.equal(messages.at(-1), 'All six tools ran.');
  assert.equal((await model.requests()).length, 7);

  // idle for --max-idle: the worker force-stops the item and goes back to polling
  await waitFor(() => /work item finished/.test(worker.log()), 'the idle release');
  const list = await fetch(`${srv.baseURL}/v1/environments/${env.id}/work?limit=10`, {
    headers: { authorization: `Bearer ${envKey}` },
  }).then((r) => r.json());
  const item = list.data.find((w) => w.data?.id === session.id);
  assert.ok(item, `no work item for the session: ${JSON.stringify(list)}`);
  assert.equal(item.state, 'stopped');

  worker.proc.kill('SIGTERM');
  const { code } = await worker.exited;
  assert.equal(code, 0, worker.log());
  assert.ok(!worker.log().includes(envKey), 'environment key in the worker log');
  assert.ok(!/sk-ant-|"sessions_token"/.test(worker.log()), 'a token in the worker log');
  for (const line of worker.log().trim().split('\n')) JSON.parse(line); // --log-format json
});

test('airlock worker holds "ask" calls until confirmed; deny runs nothing', { skip: sandboxSkip() }, async (t) => {
  const model = await startMockModel(script);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-wk-')));
  chmodSync(workdir, 0o711); // a root worker runs as an unprivileged user, who must reach it
  let worker;
  t.after(async () => {
    if (worker && worker.proc.exitCode === null) worker.proc.kill('SIGKILL');
    await srv.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
  });
  const { client, env, envKey, session } = await setupSession(srv, { toolsetPolicy: 'always_ask' });
  worker = startWorker(srv, env, envKey, workdir);
  const answered = new Set();
  const { done } = await collectEvents(
    client,
    session.id,
    (ev, evs) => {
      if (ev.type === 'session.status_idle' && ev.stop_reason?.type === 'requires_action') {
        for (const id of ev.stop_reason.event_ids) {
          if (answered.has(id)) continue;
          answered.add(id);
          const use = evs.find((e) => e.id === id);
          // nothing may have run before the confirmation
          assert.ok(!evs.some((e) => e.type === 'user.tool_result' && e.tool_use_id === id));
          const result = use?.name === 'bash' ? 'deny' : 'allow';
          client.beta.sessions.events.send(session.id, {
            events: [{ type: 'user.tool_confirmation', tool_use_id: id, result }],
          });
        }
      }
      return endTurn(ev);
    },
    { timeoutMs: 60000 },
  );
  await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'Exercise the six tools.' }] }],
  });
  const events = await done;
  const uses = events.filter((e) => e.type === 'agent.tool_use');
  assert.deepEqual(uses.map((u) => u.name), ['write', 'read', 'edit', 'bash', 'glob', 'grep']);
  for (const u of uses) assert.equal(u.evaluated_permission, 'ask');
  const ran = events.filter((e) => e.type === 'user.tool_result').map((e) => e.tool_use_id);
  const bash = uses.find((u) => u.name === 'bash');
  assert.equal(ran.length, 5, worker.log());
  assert.ok(!ran.includes(bash.id), 'a denied call ran');
  for (const u of uses) {
    if (u === bash) continue;
    const ci = events.findIndex((e) => e.type === 'user.tool_confirmation' && e.tool_use_id === u.id);
    const ri = events.findIndex((e) => e.type === 'user.tool_result' && e.tool_use_id === u.id);
    assert.ok(ci >= 0 && ri > ci, `result for ${u.name} before its confirmation`);
  }
});

test('airlock worker stops on a fatal poll error and with a bad key', { skip: sandboxSkip() }, async (t) => {
  const srv = await startServer();
  t.after(() => srv.stop());
  const { env } = await setupSession(srv);
  const w = startWorker(srv, env, 'not-a-key', '.');
  const { code } = await w.exited;
  assert.equal(code, 1, w.log());
  assert.match(w.log(), /poll failed permanently/);
  assert.ok(!w.log().includes('not-a-key'));
});
