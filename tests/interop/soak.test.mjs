// The bounded soak (issue 13; the full run is bench/soak.mjs): 40 concurrent sessions
// for 20 s against one server, two `airlock worker poll` processes (sandboxed where the
// host can make sandboxes) and the SDK's EnvironmentWorker, all on one environment.
// Every acknowledged message must end its turn, every tool use must have exactly one
// result, every listed event must have reached the session's live stream exactly once,
// and no session may be left running (tests/interop/lib/soak.mjs says how each is judged).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import { runSoak, soakScript, startMockModel } from './lib/soak.mjs';
import { sandboxSkip } from './lib/hostprobe.mjs';

test('bounded soak: no lost, duplicated or stuck session', async (t) => {
  const model = await startMockModel(soakScript);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  t.after(async () => {
    await srv.stop();
    await model.stop();
  });
  // Sandboxed workers where the host allows; the check runs either way (the soak is about
  // the server, the queue and the streams), and the report says which it was.
  const sandboxed = sandboxSkip() === false;
  const r = await runSoak({
    servers: [srv],
    sessions: 40,
    durationMs: 20000,
    airlockWorkers: 2,
    sdkWorkers: 1,
    sandboxed,
    thinkMs: 1000,
  });
  t.diagnostic(`soak: ${r.sessions} sessions, ${r.turns} turns, ${r.toolCalls} tool calls, ` +
    `${r.events} events in ${r.elapsedS.toFixed(1)} s; tool round trip p50 ${r.roundTripMs.p50?.toFixed(1)} ms ` +
    `p99 ${r.roundTripMs.p99?.toFixed(1)} ms; workers sandboxed: ${sandboxed}`);
  assert.deepEqual(r.problems, [], r.workerLogs());
  assert.equal(r.failedSends, 0, 'every message was acknowledged');
  assert.equal(r.streamErrors, 0, 'no stream broke');
  // Work moved: every session ran at least one turn, and the turns are the messages sent.
  assert.equal(r.sessionsWithoutTurn, 0, r.workerLogs());
  assert.equal(r.turns, r.sent);
  assert.ok(r.toolCalls >= r.sessions, `${r.toolCalls} tool calls for ${r.sessions} sessions`);
});
