// Three replicas on one PostgreSQL behind a round-robin proxy (issue 13's proof): the
// official SDK drives 30 sessions through the proxy, so each session's requests, stream
// and worker calls land on any replica; airlock workers and the SDK's EnvironmentWorker
// poll through it too. Ten seconds in, one replica is killed with SIGKILL. Every session
// must still complete: no lost, duplicated or stuck event, tool use or turn
// (tests/interop/lib/soak.mjs says how each is judged). Runs in the interop-pg suite only
// (tests/interop/with-postgres.sh starts the database).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, realpathSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { startRoundRobin } from './lib/rrproxy.mjs';
import { runSoak, soakScript, startMockModel } from './lib/soak.mjs';
import { sandboxSkip } from './lib/hostprobe.mjs';

const skip = process.env.AIRLOCK_TEST_PG_PORT ? false : 'needs PostgreSQL (run through tests/interop/with-postgres.sh)';

test('three replicas behind a round-robin, one killed mid-run: no lost, duplicated or stuck session', { skip }, async (t) => {
  const model = await startMockModel(soakScript);
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-soakrepl-')));
  const keyFile = path.join(dir, 'master.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  // A short loop lease so the killed replica's sessions are taken over within seconds.
  const common = { AIRLOCK_MODEL_BASE_URL: model.url, AIRLOCK_MASTER_KEY_FILE: keyFile, AIRLOCK_LOOP_LEASE_MS: '3000' };
  const a = await startServer({ env: common });
  const shared = { ...common, AIRLOCK_DATABASE_URL: a.databaseURL, AIRLOCK_API_KEY: a.apiKey };
  const b = await startServer({ env: shared });
  const c = await startServer({ env: shared });
  const lb = await startRoundRobin([a, b, c]);
  t.after(async () => {
    await lb.close();
    for (const s of [a, b, c]) await s.stop();
    await model.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const sandboxed = sandboxSkip() === false;
  const r = await runSoak({
    servers: [{ baseURL: lb.url, apiKey: a.apiKey }],
    sessions: 30,
    durationMs: 25000,
    airlockWorkers: 2,
    sdkWorkers: 1,
    sandboxed,
    thinkMs: 1000,
    faults: [{ atMs: 10000, what: 'SIGKILL replica C', run: () => c.proc.kill('SIGKILL') }],
  });
  t.diagnostic(`soak, 3 replicas (one killed at 10 s): ${r.sessions} sessions, ${r.turns} turns, ` +
    `${r.toolCalls} tool calls, ${r.events} events in ${r.elapsedS.toFixed(1)} s; ${r.streamErrors} ` +
    `streams broke and resumed (${r.caughtUp} events read from the history on resume); ` +
    `${r.failedSends} sends refused and retried; tool round trip p50 ${r.roundTripMs.p50?.toFixed(1)} ms ` +
    `p99 ${r.roundTripMs.p99?.toFixed(1)} ms; workers sandboxed: ${sandboxed}`);
  assert.equal(c.proc.signalCode, 'SIGKILL', 'the replica was killed');
  assert.deepEqual(r.problems, [], r.workerLogs());
  assert.equal(r.sessionsWithoutTurn, 0, r.workerLogs());
  assert.ok(r.toolCalls >= r.sessions, `${r.toolCalls} tool calls for ${r.sessions} sessions`);
  // The replicas that lived saw the work: both served requests (their access logs).
  for (const s of [a, b]) assert.match(s.log(), /method=POST route=\/v1\/sessions\/\{\}\/events/, 'each live replica served sends');
});
