// airlock's worker runs the model's bash inside the session's sandbox: the scripted
// model's bash calls report what they see (uid, pid 1, host files, network, the worker's
// ANTHROPIC_* env) and the test checks each; file tools and bash share the workspace.
// Then kill -9 of the worker mid-call: nothing of the sandbox keeps running, and the
// next worker start sweeps the journal record and cgroups left behind. Needs root (the
// sandbox's cgroups on this host) and a host where sandboxes can be made
// (lib/hostprobe.mjs); skipped with the reason otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, realpathSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { setupSession, collectEvents, endTurn, textOf } from './lib/session.mjs';
import { sandboxSkip } from './lib/hostprobe.mjs';

const root = process.getuid() === 0;

function startWorker(srv, env, envKey, workdir, stateDir, extraEnv = {}) {
  const proc = spawn(
    process.env.AIRLOCK_BIN,
    ['worker', 'poll', '--environment-id', env.id, '--workdir', workdir, '--max-idle', '2s'],
    {
      env: {
        ...process.env,
        ANTHROPIC_ENVIRONMENT_KEY: envKey,
        ANTHROPIC_BASE_URL: srv.baseURL,
        ANTHROPIC_CANARY: 'worker-env-must-not-leak',
        AIRLOCK_SANDBOX_STATE_DIR: stateDir,
        ...extraEnv,
      },
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

async function fixture(t, turns) {
  const model = await startMockModel(turns);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-sbw-')));
  chmodSync(workdir, 0o711); // the worker drops root, and must reach it
  const stateDir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-sbstate-')));
  const workers = [];
  t.after(async () => {
    for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    await srv.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });
  const s = await setupSession(srv);
  return { model, srv, workdir, stateDir, workers, ...s };
}

test('bash runs in the session sandbox; file tools and bash share the workspace', { skip: (!root && 'needs root') || sandboxSkip() }, async (t) => {
  // a host file outside the workspace, readable by anyone on the host
  const outside = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-sbout-')));
  chmodSync(outside, 0o755);
  writeFileSync(path.join(outside, 'secret'), 'host-secret\n', { mode: 0o644 });
  t.after(() => rmSync(outside, { recursive: true, force: true }));
  const probe = [
    'echo "uid=$(id -u) gid=$(id -g)"',
    'echo "init=$(tr "\\0" " " </proc/1/cmdline | sed "s/ *$//")"',
    `if cat ${outside}/secret >/dev/null 2>&1; then echo outside=readable; else echo outside=denied; fi`,
    'if cat /etc/shadow >/dev/null 2>&1; then echo shadow=readable; else echo shadow=denied; fi',
    'echo "netdev=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\\n" " ")"',
    'echo "sys=$(ls /sys/class/net 2>/dev/null | tr "\\n" " ")"',
    'echo "anthropic=$(env | grep -c ^ANTHROPIC_)"',
    'echo "procs=$(ls -d /proc/[0-9]* | wc -l)"',
    'echo "pwd=$(pwd)"',
  ].join('; ');
  const f = await fixture(t, [
    { content: [{ type: 'tool_use', name: 'bash', input: { command: probe } }] },
    { content: [{ type: 'tool_use', name: 'write', input: { file_path: 'from-tool.txt', content: 'tool\n' } }] },
    { content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo bash >> from-tool.txt && echo made-by-bash > from-bash.txt && cat from-tool.txt' } }] },
    { content: [{ type: 'tool_use', name: 'edit', input: { file_path: 'from-bash.txt', old_string: 'made', new_string: 'edited' } }] },
    { content: [{ type: 'tool_use', name: 'grep', input: { pattern: 'edited', path: '.' } }] },
    // 40 MiB into a 32 MiB workspace: the session's own filesystem fills, not the host's
    { content: [{ type: 'tool_use', name: 'bash', input: { command: 'dd if=/dev/zero of=big bs=1M count=40 2>&1 | grep -c "No space left"; rm -f big; grep " $(pwd) " /proc/self/mountinfo | grep -c ext4' } }] },
    { content: [{ type: 'tool_use', name: 'write', input: { file_path: 'big2', content: 'x'.repeat(1 << 16) } }] },
    // a background job's later output stays out of the next call (each call its own pipe)
    { content: [{ type: 'tool_use', name: 'bash', input: { command: '(sleep 0.3; echo LEAK) & echo bg-started' } }] },
    { content: [{ type: 'tool_use', name: 'bash', input: { command: 'sleep 0.8; echo after-bg' } }] },
    { content: [{ type: 'text', text: 'probed' }] },
  ]);
  const { done } = await collectEvents(f.client, f.session.id, endTurn, { timeoutMs: 60000 });
  await f.client.beta.sessions.events.send(f.session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'probe' }] }],
  });
  const w = startWorker(f.srv, f.env, f.envKey, f.workdir, f.stateDir, { AIRLOCK_SANDBOX_WORKSPACE_MB: '32' });
  f.workers.push(w);
  const events = await done;
  assert.equal(events.at(-1).type, 'session.status_idle', w.log());
  const uses = events.filter((e) => e.type === 'agent.tool_use');
  const results = new Map(events.filter((e) => e.type === 'user.tool_result').map((e) => [e.tool_use_id, e]));
  const out = (i) => {
    const r = results.get(uses[i].id);
    assert.ok(r, `no result for call ${i}; worker log:\n${w.log()}`);
    assert.equal(r.is_error, false, `call ${i} failed: ${textOf(r.content)}\n${w.log()}`);
    return textOf(r.content);
  };
  const seen = Object.fromEntries(out(0).trim().split('\n').map((l) => {
    const k = l.indexOf('=');
    return [l.slice(0, k), l.slice(k + 1).trim()];
  }));
  // the one uid inside (its own host uid outside: the kill -9 test checks that)
  assert.equal(seen.uid, '1000 gid=1000', out(0));
  assert.equal(seen.init, 'airlock-sandbox-init', out(0));
  assert.equal(seen.outside, 'denied', out(0));
  assert.equal(seen.shadow, 'denied', out(0));
  assert.equal(seen.netdev, 'lo', out(0));
  assert.equal(seen.sys, '', out(0));
  assert.equal(seen.anthropic, '0', out(0));
  // pid 1, the shell, and the probe's own commands: no host or worker process
  assert.ok(Number(seen.procs) <= 6, out(0));
  // the session's own workspace, at its host path
  assert.equal(seen.pwd, path.join(f.workdir, 'sessions', f.session.id), out(0));
  assert.match(w.log(), /tools run in per-session sandboxes/);
  assert.match(w.log(), /monitor: sandbox created/);
  // host-side file tools and sandboxed bash read and write each other's files
  assert.equal(out(2), 'tool\nbash');
  assert.match(out(3), /^edited .*from-bash\.txt \(1 replacement\(s\)\)$/);
  assert.equal(readFileSync(path.join(f.workdir, 'sessions', f.session.id, 'from-bash.txt'), 'utf8'), 'edited-by-bash\n');
  assert.match(out(4), /from-bash\.txt:1:edited-by-bash/);
  // the quota (issue 11, finding 6): ENOSPC inside, the workspace an ext4 of its own
  assert.equal(out(5), '1\n1', out(5));
  assert.match(out(6), /^wrote 65536 bytes to /); // the file tools write there too
  assert.equal(out(7), 'bg-started');
  assert.equal(out(8), 'after-bg');
  assert.ok(!w.log().includes('worker-env-must-not-leak'));
  // the session ends for good (deleted while the worker still holds it, before its 2 s
  // idle release): its workspace goes, no later session can find its files
  const ws = path.join(f.workdir, 'sessions', f.session.id);
  assert.ok(existsSync(ws));
  await f.client.beta.sessions.delete(f.session.id);
  // renamed aside at once, emptied in the background: nothing left after a moment
  await waitFor(() => readdirSync(path.join(f.workdir, 'sessions')).length === 0,
    'the ended session\'s workspace to go', 10000);
  await waitFor(() => /the ended session's workspace is removed/.test(w.log()), 'the removal logged');
  w.proc.kill('SIGTERM');
  assert.equal((await w.exited).code, 0, w.log());
  // the sandbox went with the session: no record, no cgroup of this state dir
  assert.deepEqual(readdirSync(path.join(f.stateDir, 'sandboxes')), []);
});

// cgroup dirs of one state dir: <hierarchy>/.../airlock-<12 hex of sha256(state_dir)>/<sid>
function cgroupsOf(stateDir) {
  const inst = 'airlock-' + createHash('sha256').update(stateDir).digest('hex').slice(0, 12);
  const found = [];
  const walk = (dir, depth) => {
    if (depth > 6) return;
    let ents;
    try { ents = readdirSync(dir, { withFileTypes: true }); } catch { return; }
    for (const e of ents) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (e.name === inst) {
        for (const s of readdirSync(p, { withFileTypes: true })) if (s.isDirectory()) found.push(path.join(p, s.name));
      } else {
        walk(p, depth + 1);
      }
    }
  };
  walk('/sys/fs/cgroup', 0);
  return found;
}

test('kill -9 of the worker mid-call: no process survives, the next start sweeps the rest', { skip: (!root && 'needs root') || sandboxSkip() }, async (t) => {
  const marker = `airlock-sbkill-${randomBytes(6).toString('hex')}`;
  const f = await fixture(t, [
    { content: [{ type: 'tool_use', name: 'bash', input: { command: `touch started; (setsid bash -c "exec -a ${marker}-daemon sleep 300" &); (exec -a ${marker} sleep 300)` } }] },
    { content: [{ type: 'text', text: 'never' }] },
  ]);
  t.after(() => { try { execFileSync('pkill', ['-KILL', '-f', marker]); } catch {} });
  await f.client.beta.sessions.events.send(f.session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'hang' }] }],
  });
  const w1 = startWorker(f.srv, f.env, f.envKey, f.workdir, f.stateDir);
  f.workers.push(w1);
  await waitFor(() => pgrep(`^${marker}-daemon `) !== "" && pgrep(`^${marker} `) !== "", "the call to start");
  // each sandbox runs as its own host uid: not the worker's, not nobody's, not root's
  // (per-user kernel limits such as epoll watches are not shared; issue 11, finding 3)
  const uidOf = (pid) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  const kids = readFileSync(`/proc/${w1.proc.pid}/task/${w1.proc.pid}/children`, 'utf8').trim().split(/\s+/);
  const workerPid = kids.find((p) => !readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('airlock-sandbox-init'));
  const workerUid = uidOf(workerPid);
  const sbUid = uidOf(pgrep(`^${marker} `).split('\n')[0]);
  assert.ok(workerUid !== 0 && workerUid !== 65534, `worker uid ${workerUid}`);
  assert.ok(sbUid !== 0 && sbUid !== 65534 && sbUid !== workerUid, `sandbox uid ${sbUid}, worker ${workerUid}`);
  assert.match(w1.log(), /sandbox_uids="?one each/);
  const records = readdirSync(path.join(f.stateDir, 'sandboxes'));
  assert.equal(records.length, 1, 'one journal record while the sandbox lives');
  assert.ok(cgroupsOf(f.stateDir).length > 0, 'the sandbox has cgroups');
  w1.proc.kill('SIGKILL');
  await w1.exited;
  // pid 1 dies with the monitor (PDEATHSIG) and the kernel kills its pid namespace: the
  // setsid'd daemon too, which a process-group kill would have missed
  await waitFor(() => pgrep(marker) === '', 'the sandbox processes to die', 10000);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  assert.ok(!mounts.includes(f.workdir), 'a sandbox mount on the host');
  // the monitor was killed too: the record and cgroups stay until the next start
  assert.equal(readdirSync(path.join(f.stateDir, 'sandboxes')).length, 1);
  const leftovers = cgroupsOf(f.stateDir);

  const w2 = startWorker(f.srv, f.env, f.envKey, f.workdir, f.stateDir);
  f.workers.push(w2);
  await waitFor(() => /worker polling/.test(w2.log()), 'the second worker to start');
  // the sweep ran before the monitor answered (the lease still holds the session, so
  // the second worker has no sandbox of its own): no record, no cgroup left
  assert.deepEqual(readdirSync(path.join(f.stateDir, 'sandboxes')), [], w2.log());
  // (the second worker's own warm spare has a cgroup by now: sb-<its monitor's pid>-N)
  assert.deepEqual(cgroupsOf(f.stateDir).filter((p) => leftovers.includes(p)), []);
  w2.proc.kill('SIGKILL');
  await w2.exited;
  assert.ok(existsSync(path.join(f.workdir, 'sessions', f.session.id, 'started')));
});

test('two sessions of one worker: the second sees nothing of the first\'s workspace, the first finds its own again', { skip: !root && 'needs root' }, async (t) => {
  // issue 11, finding 5: all sessions used to share the workdir (B read and ran what A
  // planted). The model's commands name the workdir, so it is made before the model.
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-sb2-')));
  chmodSync(workdir, 0o711);
  const stateDir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-sb2state-')));
  const sessions = path.join(workdir, 'sessions');
  const model = await startMockModel([
    // A plants a hook and a file
    { content: [{ type: 'tool_use', name: 'bash', input: { command: 'mkdir -p .git/hooks && echo "touch /tmp/pwned" > .git/hooks/post-checkout && echo secret-of-a > planted.txt && echo planted' } }] },
    { content: [{ type: 'text', text: 'a done' }] },
    // B looks by /workspace, by A's host path and by listing the sessions dir
    { content: [{ type: 'tool_use', name: 'bash', input: { command: `ls -A /workspace; cat ${sessions}/*/planted.txt 2>/dev/null; ls ${sessions}; echo end` } }] },
    { content: [{ type: 'tool_use', name: 'read', input: { file_path: '../' } }] },
    { content: [{ type: 'text', text: 'b done' }] },
    // A again: its files are there
    { content: [{ type: 'tool_use', name: 'bash', input: { command: 'cat planted.txt' } }] },
    { content: [{ type: 'text', text: 'a again' }] },
  ]);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const workers = [];
  t.after(async () => {
    for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    await srv.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });
  const { client, env, agent, envKey, session: a } = await setupSession(srv);
  const b = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const w = startWorker(srv, env, envKey, workdir, stateDir);
  workers.push(w);
  const turn = async (s, text) => {
    const { done } = await collectEvents(client, s.id, endTurn, { timeoutMs: 60000 });
    await client.beta.sessions.events.send(s.id, { events: [{ type: 'user.message', content: [{ type: 'text', text }] }] });
    const events = await done;
    assert.equal(events.at(-1).type, 'session.status_idle', w.log());
    return events.filter((e) => e.type === 'user.tool_result').map((e) => textOf(e.content));
  };
  assert.deepEqual(await turn(a, 'plant'), ['planted']);
  const seen = await turn(b, 'look');
  // nothing of A's: an empty workspace, no planted.txt anywhere, only B's own dir inside
  assert.equal(seen[0], `${b.id}\nend`, seen[0]);
  assert.match(seen[1], /outside the session's working directory/, seen[1]);
  assert.deepEqual(await turn(a, 'again'), ['secret-of-a']);
  assert.ok(existsSync(path.join(sessions, a.id, '.git', 'hooks', 'post-checkout')));
  assert.ok(!existsSync(path.join(sessions, b.id, 'planted.txt')));
  w.proc.kill('SIGTERM');
  assert.equal((await w.exited).code, 0, w.log());
});
