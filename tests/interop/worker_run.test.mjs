// `airlock worker run` (one item given by --session-id/--work-id/--work-secret-file, with
// the secret file's mode check) and `airlock worker poll --on-work SCRIPT` (environment,
// the work JSON with its secret on stdin, stdout merged into stderr, the script runs
// `airlock worker run` with the secret it extracted; SIGTERM to the script's process group,
// SIGKILL after the grace; a second signal kills everything at once; a script that cannot
// start stops the poller). Against airlock's server and the scripted mock model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, readFileSync, rmSync, realpathSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { setupSession, collectEvents, endTurn, textOf } from './lib/session.mjs';
import { sandboxSkip } from './lib/hostprobe.mjs';

const BIN = process.env.AIRLOCK_BIN;

// Two user turns, each one bash call and a closing text.
const script = [
  { content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo run-$((40+2))' } }] },
  { content: [{ type: 'text', text: 'first done' }] },
  { content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo again-$((6*7))' } }] },
  { content: [{ type: 'text', text: 'second done' }] },
];

function startAirlock(args, env) {
  const proc = spawn(BIN, ['worker', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let out = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (log += d));
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
  return { proc, log: () => log, out: () => out, exited };
}

// Environment without any ANTHROPIC_* variable of the test runner's own.
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ANTHROPIC_')) env[k] = v;
  return { ...env, ...extra };
}

async function waitFor(cond, what, ms = 30000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function pollItem(srv, env, envKey) {
  for (let i = 0; i < 50; i++) {
    const r = await fetch(`${srv.baseURL}/v1/environments/${env.id}/work/poll?block_ms=999`, {
      headers: { authorization: `Bearer ${envKey}`, 'anthropic-worker-id': 'test' },
    });
    const body = await r.json();
    if (body && body.id) return body;
  }
  throw new Error('no work item');
}

async function ack(srv, env, envKey, wid) {
  const r = await fetch(`${srv.baseURL}/v1/environments/${env.id}/work/${wid}/ack`, {
    method: 'POST',
    headers: { authorization: `Bearer ${envKey}` },
  });
  assert.equal(r.status, 200);
}

async function workItem(srv, env, envKey, wid) {
  const list = await fetch(`${srv.baseURL}/v1/environments/${env.id}/work?limit=100`, {
    headers: { authorization: `Bearer ${envKey}` },
  }).then((r) => r.json());
  return list.data.find((w) => w.id === wid);
}

function pgrep(marker) {
  try {
    return execFileSync('pgrep', ['-f', marker], { encoding: 'utf8' }).trim();
  } catch {
    return ''; // exit 1: nothing matched
  }
}

async function oneTurn(client, sessionId, text) {
  const { done } = await collectEvents(client, sessionId, endTurn, { timeoutMs: 60000 });
  await client.beta.sessions.events.send(sessionId, {
    events: [{ type: 'user.message', content: [{ type: 'text', text }] }],
  });
  return done;
}

test('worker run: one item from --work-secret-file; world-readable refused, 0600 and 0440 accepted', { skip: sandboxSkip() }, async (t) => {
  const model = await startMockModel(script);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-wrun-')));
  chmodSync(dir, 0o755); // a root worker runs tools as nobody, who must reach the workdir
  const workdir = path.join(dir, 'wd');
  mkdirSync(workdir);
  const procs = [];
  t.after(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await srv.stop();
    await model.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const { client, env, envKey, session } = await setupSession(srv);
  // Only the sessions token goes in: no environment key in the run's environment.
  const runEnv = cleanEnv({ ANTHROPIC_BASE_URL: srv.baseURL });
  const runArgs = (wid, file) => [
    'run', '--environment-id', env.id, '--session-id', session.id, '--work-id', wid,
    '--work-secret-file', file, '--workdir', workdir, '--max-idle', '1s', '--log-format', 'json',
  ];

  // A world-readable secret file is refused before anything else happens.
  const open = path.join(dir, 'open.secret');
  writeFileSync(open, 'c2VjcmV0\n');
  chmodSync(open, 0o644);
  let w = startAirlock(runArgs('work_x', open), runEnv);
  procs.push(w.proc);
  let r = await w.exited;
  assert.equal(r.code, 2, w.log());
  assert.match(w.log(), /open\.secret: must not be world-readable or -writable \(chmod 600\)/);
  chmodSync(open, 0o602);
  w = startAirlock(runArgs('work_x', open), runEnv);
  procs.push(w.proc);
  r = await w.exited;
  assert.equal(r.code, 2, 'world-writable must be refused too');

  for (const [turn, mode, want] of [
    ['first', 0o600, 'run-42'],
    ['second', 0o440, 'again-42'],
  ]) {
    // The session's item (created with the session, then re-queued by the second
    // message once the first run stopped its item).
    const eventsP = oneTurn(client, session.id, turn);
    const item = await pollItem(srv, env, envKey);
    assert.equal(item.data.id, session.id);
    await ack(srv, env, envKey, item.id);
    const file = path.join(dir, `${turn}.secret`);
    writeFileSync(file, `${item.secret}\n`, { mode: 0o600 });
    chmodSync(file, mode);
    w = startAirlock(runArgs(item.id, file), runEnv);
    procs.push(w.proc);
    const events = await eventsP;
    const use = events.find((e) => e.type === 'agent.tool_use');
    const res = events.find((e) => e.type === 'user.tool_result' && e.tool_use_id === use?.id);
    assert.ok(res, `no result (mode ${mode.toString(8)}); worker log:\n${w.log()}`);
    assert.equal(res.is_error, false);
    assert.equal(textOf(res.content).trim(), want);
    // idle for --max-idle: run stops its item and exits 0
    r = await w.exited;
    assert.equal(r.code, 0, w.log());
    assert.equal((await workItem(srv, env, envKey, item.id)).state, 'stopped');
    assert.ok(!w.log().includes(item.secret), 'secret in the log');
    for (const line of w.log().trim().split('\n')) JSON.parse(line);
  }
});

test('worker poll --on-work: environment, work JSON with secret on stdin, stdout to stderr, run inside', { skip: sandboxSkip() }, async (t) => {
  const model = await startMockModel(script.slice(0, 2));
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-onwork-')));
  chmodSync(dir, 0o755); // a root worker runs tools as nobody, who must reach the workdir
  mkdirSync(path.join(dir, 'wd'));
  let poller;
  t.after(async () => {
    if (poller && poller.proc.exitCode === null) poller.proc.kill('SIGKILL');
    await srv.stop();
    await model.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const { client, env, envKey, session } = await setupSession(srv);
  const onWork = path.join(dir, 'on-work.sh');
  writeFileSync(
    onWork,
    `#!/bin/bash
set -eu
d=${dir}
cat >"$d/stdin.json"
env | grep '^ANTHROPIC_' | sort >"$d/env.txt" || true
echo "on-work stdout line for $ANTHROPIC_WORK_ID"
umask 077
jq -r '.secret // empty' <"$d/stdin.json" >"$d/secret"
# the sandboxed run gets the sessions token only
unset ANTHROPIC_ENVIRONMENT_KEY
exec "${BIN}" worker run --work-secret-file "$d/secret" --workdir "$d/wd" --max-idle 1s
`,
    { mode: 0o755 },
  );
  const eventsP = oneTurn(client, session.id, 'go');
  poller = startAirlock(
    ['poll', '--environment-id', env.id, '--on-work', onWork],
    cleanEnv({ ANTHROPIC_ENVIRONMENT_KEY: envKey, ANTHROPIC_BASE_URL: srv.baseURL }),
  );
  const events = await eventsP;
  const res = events.find((e) => e.type === 'user.tool_result');
  assert.ok(res, poller.log());
  assert.equal(textOf(res.content).trim(), 'run-42');

  const work = JSON.parse(readFileSync(path.join(dir, 'stdin.json'), 'utf8'));
  assert.equal(work.data.id, session.id);
  assert.equal(work.data.type, 'session');
  assert.ok(typeof work.secret === 'string' && work.secret.length > 20, 'stdin carries the secret');
  const envVars = Object.fromEntries(
    readFileSync(path.join(dir, 'env.txt'), 'utf8').trim().split('\n').map((l) => {
      const i = l.indexOf('=');
      return [l.slice(0, i), l.slice(i + 1)];
    }),
  );
  assert.equal(envVars.ANTHROPIC_WORK_ID, work.id);
  assert.equal(envVars.ANTHROPIC_SESSION_ID, session.id);
  assert.equal(envVars.ANTHROPIC_ENVIRONMENT_ID, env.id);
  assert.equal(envVars.ANTHROPIC_ENVIRONMENT_KEY, envKey);
  assert.equal(envVars.ANTHROPIC_BASE_URL, srv.baseURL);
  assert.equal(envVars.ANTHROPIC_WORK_SECRET, undefined, 'no ANTHROPIC_WORK_SECRET is set');

  // The run inside stops the item after --max-idle; the script then exits 0.
  await waitFor(() => /on-work script exited.*status=0/.test(poller.log()), 'the script to exit');
  assert.equal((await workItem(srv, env, envKey, work.id)).state, 'stopped');
  // stdout merged into stderr: nothing on the poller's stdout
  assert.match(poller.log(), new RegExp(`on-work stdout line for ${work.id}`));
  assert.equal(poller.out(), '');
  assert.ok(!poller.log().includes(work.secret), 'secret in the log');

  poller.proc.kill('SIGTERM');
  assert.equal((await poller.exited).code, 0, poller.log());
});

// A script that ignores SIGTERM, with a child: the poller SIGTERMs the script's process
// group, then SIGKILLs it after --on-work-grace; with a second signal it kills at once.
function stubbornScript(dir, marker) {
  const p = path.join(dir, `${marker}.sh`);
  writeFileSync(
    p,
    `#!/bin/bash
trap '' TERM
echo "stubborn started"
(exec -a ${marker}-child sleep 300) &
wait
`,
    { mode: 0o755 },
  );
  return p;
}

test('worker poll --on-work: SIGTERM, then SIGKILL after the grace, to the whole process group', { skip: sandboxSkip() }, async (t) => {
  const srv = await startServer();
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-onwork-')));
  const marker = `airlock-onwork-${randomBytes(6).toString('hex')}`;
  let poller;
  t.after(async () => {
    if (poller && poller.proc.exitCode === null) poller.proc.kill('SIGKILL');
    try { execFileSync('pkill', ['-KILL', '-f', marker]); } catch {}
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const { env, envKey } = await setupSession(srv);
  poller = startAirlock(
    ['poll', '--environment-id', env.id, '--on-work', stubbornScript(dir, marker), '--on-work-grace', '2s'],
    cleanEnv({ ANTHROPIC_ENVIRONMENT_KEY: envKey, ANTHROPIC_BASE_URL: srv.baseURL }),
  );
  await waitFor(() => /stubborn started/.test(poller.log()) && pgrep(`${marker}-child`) !== '', 'the script');
  poller.proc.kill('SIGTERM');
  const { code } = await poller.exited;
  assert.equal(code, 0, poller.log());
  // 137 = killed by SIGKILL: the TERM was ignored, the grace ran out
  assert.match(poller.log(), /on-work script exited"? status=137/, poller.log());
  await waitFor(() => pgrep(marker) === '', 'no process of the script left', 5000);
});

test('worker poll --on-work: a second signal kills the scripts and exits at once', { skip: sandboxSkip() }, async (t) => {
  const srv = await startServer();
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-onwork-')));
  const marker = `airlock-onwork-${randomBytes(6).toString('hex')}`;
  let poller;
  t.after(async () => {
    if (poller && poller.proc.exitCode === null) poller.proc.kill('SIGKILL');
    try { execFileSync('pkill', ['-KILL', '-f', marker]); } catch {}
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const { env, envKey } = await setupSession(srv);
  poller = startAirlock(
    ['poll', '--environment-id', env.id, '--on-work', stubbornScript(dir, marker), '--on-work-grace', '10m'],
    cleanEnv({ ANTHROPIC_ENVIRONMENT_KEY: envKey, ANTHROPIC_BASE_URL: srv.baseURL }),
  );
  await waitFor(() => /stubborn started/.test(poller.log()) && pgrep(`${marker}-child`) !== '', 'the script');
  poller.proc.kill('SIGTERM');
  await waitFor(() => /signal received, draining/.test(poller.log()), 'the first signal');
  poller.proc.kill('SIGTERM');
  const { code } = await poller.exited;
  assert.equal(code, 130, poller.log()); // not the grace's path (which would wait 10 minutes)
  await waitFor(() => pgrep(marker) === '', 'no process of the script left', 5000);
});

test('worker poll --on-work: a script that cannot start stops the poller', { skip: sandboxSkip() }, async (t) => {
  const srv = await startServer();
  t.after(() => srv.stop());
  const { env, envKey } = await setupSession(srv);
  const w = startAirlock(
    ['poll', '--environment-id', env.id, '--on-work', '/nonexistent/on-work.sh'],
    cleanEnv({ ANTHROPIC_ENVIRONMENT_KEY: envKey, ANTHROPIC_BASE_URL: srv.baseURL }),
  );
  const { code } = await w.exited;
  assert.equal(code, 1, w.log());
  assert.match(w.log(), /on-work script cannot start, stopping/);
});
