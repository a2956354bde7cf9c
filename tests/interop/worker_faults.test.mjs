// Faults around `airlock worker poll` mid tool call (a scripted bash `sleep 30` whose
// process carries a unique marker): kill -9 → the lease lapses (server TTL 3 s), the item
// is re-queued and a new worker re-runs the unanswered call and finishes the session;
// SIGTERM → the in-flight call gets an error result, the item is stopped, the worker
// exits 0 and nothing of the call survives; a second signal while draining exits at once,
// again leaving nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, realpathSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { setupSession, collectEvents, endTurn, textOf } from './lib/session.mjs';
import { sandboxSkip } from './lib/hostprobe.mjs';

function startWorker(srv, env, envKey, workdir) {
  const proc = spawn(
    process.env.AIRLOCK_BIN,
    ['worker', 'poll', '--environment-id', env.id, '--workdir', workdir, '--max-idle', '2s'],
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

function pgrep(marker) {
  try {
    return execFileSync('pgrep', ['-f', marker], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

async function workItems(srv, env, envKey, sessionId) {
  const list = await fetch(`${srv.baseURL}/v1/environments/${env.id}/work?limit=100`, {
    headers: { authorization: `Bearer ${envKey}` },
  }).then((r) => r.json());
  return list.data.filter((w) => w.data?.id === sessionId);
}

async function fixture(t, script, serverEnv = {}) {
  const marker = `airlock-fault-${randomBytes(6).toString('hex')}`;
  const model = await startMockModel(script(marker));
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url, ...serverEnv } });
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-fault-')));
  chmodSync(workdir, 0o711); // a root worker runs as an unprivileged user, who must reach it
  const workers = [];
  t.after(async () => {
    for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    try { execFileSync('pkill', ['-KILL', '-f', marker]); } catch {}
    if (srv.proc.signalCode === null) srv.proc.kill('SIGCONT');
    await srv.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
  });
  const s = await setupSession(srv);
  return { marker, model, srv, workdir, workers, ...s };
}

test('kill -9 mid-call: the lease lapses, a new worker re-runs the unanswered call and finishes', { skip: sandboxSkip() }, async (t) => {
  const f = await fixture(
    t,
    (marker) => [
      {
        content: [{
          type: 'tool_use', name: 'bash',
          // first run: mark and hang; a re-run answers at once
          input: { command: `if [ -e first-ran ]; then echo rerun-ok; else touch first-ran; (exec -a ${marker} sleep 30); echo first-finished; fi` },
        }],
      },
      { content: [{ type: 'text', text: 'recovered' }] },
    ],
    { AIRLOCK_LEASE_TTL: '3' },
  );
  const { done } = await collectEvents(f.client, f.session.id, endTurn, { timeoutMs: 90000 });
  await f.client.beta.sessions.events.send(f.session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'go' }] }],
  });
  const w1 = startWorker(f.srv, f.env, f.envKey, f.workdir);
  f.workers.push(w1);
  await waitFor(() => existsSync(path.join(f.workdir, 'sessions', f.session.id, 'first-ran')) && pgrep(f.marker) !== '', 'the call to start');
  w1.proc.kill('SIGKILL');
  await w1.exited;
  // Without the sandbox's pid namespace a kill -9'd worker cannot take its tool's process
  // tree with it (docs/worker/protocol.md): end it here so the re-run is what we observe.
  try { execFileSync('pkill', ['-KILL', '-f', f.marker]); } catch {}

  const w2 = startWorker(f.srv, f.env, f.envKey, f.workdir);
  f.workers.push(w2);
  const events = await done;
  assert.equal(events.at(-1).type, 'session.status_idle', w2.log());
  const use = events.find((e) => e.type === 'agent.tool_use');
  const results = events.filter((e) => e.type === 'user.tool_result');
  assert.equal(results.length, 1, `exactly one result: ${JSON.stringify(results)}`);
  assert.equal(results[0].tool_use_id, use.id);
  assert.equal(results[0].is_error, false);
  assert.equal(textOf(results[0].content).trim(), 'rerun-ok');
  assert.equal(textOf(events.filter((e) => e.type === 'agent.message').at(-1).content), 'recovered');
  assert.match(f.srv.log(), /work lease expired/);
  assert.match(w2.log(), new RegExp(`running tool.*tool_use_id=${use.id}`));
  // the first item was reclaimed (stopped) and the second released after --max-idle
  await waitFor(async () => {
    const items = await workItems(f.srv, f.env, f.envKey, f.session.id);
    return items.length === 2 && items.every((w) => w.state === 'stopped');
  }, 'both items stopped');
  w2.proc.kill('SIGTERM');
  assert.equal((await w2.exited).code, 0, w2.log());
});

const hangScript = (marker) => [
  { content: [{ type: 'tool_use', name: 'bash', input: { command: `(exec -a ${marker} sleep 30); echo not-reached` } }] },
  { content: [{ type: 'text', text: 'saw the cancellation' }] },
];

test('SIGTERM mid-call: an error result is posted, the item stopped, nothing left running', { skip: sandboxSkip() }, async (t) => {
  const f = await fixture(t, hangScript);
  const { done } = await collectEvents(f.client, f.session.id, endTurn, { timeoutMs: 60000 });
  await f.client.beta.sessions.events.send(f.session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'go' }] }],
  });
  const w = startWorker(f.srv, f.env, f.envKey, f.workdir);
  f.workers.push(w);
  await waitFor(() => pgrep(f.marker) !== '', 'the call to start');
  w.proc.kill('SIGTERM');
  const { code } = await w.exited;
  assert.equal(code, 0, w.log()); // drained in time (the hard deadline would exit 1)
  assert.equal(pgrep(f.marker), '', 'the tool process outlived the worker');

  const events = await done;
  const use = events.find((e) => e.type === 'agent.tool_use');
  const results = events.filter((e) => e.type === 'user.tool_result');
  assert.equal(results.length, 1);
  assert.equal(results[0].tool_use_id, use.id);
  assert.equal(results[0].is_error, true);
  assert.ok(!textOf(results[0].content).includes('not-reached'));
  // The worker's item is stopped, and nothing is claimed or running. Whether a fresh item
  // is queued depends on a race the test does not control: if the stop arrived while the
  // model was still answering the error result, the session still had to run and the
  // server queued one for the next worker (docs/server/work.md, Stop); if the turn had
  // already ended, none. Either way at most one more item, unclaimed.
  const items = await workItems(f.srv, f.env, f.envKey, f.session.id);
  const states = items.map((i) => i.state).sort();
  assert.ok(['stopped', 'queued,stopped'].includes(states.join()), JSON.stringify(items));
  for (const i of items.filter((w) => w.state === 'queued')) assert.equal(i.acknowledged_at, null);
});

test('second signal while draining: exits at once (130), the tool process is gone', { skip: sandboxSkip() }, async (t) => {
  const f = await fixture(t, hangScript);
  await f.client.beta.sessions.events.send(f.session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'go' }] }],
  });
  const w = startWorker(f.srv, f.env, f.envKey, f.workdir);
  f.workers.push(w);
  await waitFor(() => pgrep(f.marker) !== '', 'the call to start');
  // A frozen server keeps the drain from finishing: the error result cannot be posted.
  f.srv.proc.kill('SIGSTOP');
  w.proc.kill('SIGTERM');
  await waitFor(() => /signal received, draining/.test(w.log()), 'the first signal');
  w.proc.kill('SIGTERM');
  const { code } = await w.exited;
  f.srv.proc.kill('SIGCONT');
  assert.equal(code, 130, w.log());
  await waitFor(() => pgrep(f.marker) === '', 'no tool process left', 5000);
});
