// The soak at full length (issue 13; tests/interop/soak.test.mjs runs it briefly in the
// suite): 1,000 concurrent sessions, each sending a message that makes one scripted bash
// tool call, again and again for 5 minutes, against airlock's server and several
// workers, then every session's history is checked for lost, duplicated and stuck work
// (tests/interop/lib/soak.mjs says how each is judged). Prints the counts, the tool round
// trip (agent.tool_use → user.tool_result on the session's stream: queue wait included,
// so it measures the whole system under this load, not the worker alone) and the server's
// RSS before and after.
//
// Run: AIRLOCK_BIN=build/src/airlock tests/interop/run-node.sh bench/soak.mjs
//        [--sessions 1000] [--duration 300] [--workers 8] [--sdk-workers 1]
//        [--replicas 1] [--kill-one-at SECONDS] [--unsandboxed]
// --replicas N > 1 starts N servers on one database behind a round-robin proxy (every
// client and worker goes through it) and needs AIRLOCK_DATABASE_URL (a PostgreSQL URL;
// bench/soak_replicas.sh starts one): SQLite is one server's database. --kill-one-at S
// SIGKILLs the last replica S seconds in. Exit status 1 when anything was lost,
// duplicated or stuck.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const lib = (f) => pathToFileURL(path.join(here, '..', 'tests', 'interop', 'lib', f)).href;
const { startServer } = await import(lib('server.mjs'));
const { runSoak, soakScript, startMockModel } = await import(lib('soak.mjs'));
const { sandboxSkip } = await import(lib('hostprobe.mjs'));
const { startRoundRobin } = await import(lib('rrproxy.mjs'));
const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
const { randomBytes } = await import('node:crypto');
const { tmpdir } = await import('node:os');

const opt = { sessions: 1000, duration: 300, workers: 8, 'sdk-workers': 1, replicas: 1, 'kill-one-at': 0 };
let sandboxed = true;
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--unsandboxed') sandboxed = false;
  else if (a.startsWith('--') && a.slice(2) in opt && i + 1 < process.argv.length) opt[a.slice(2)] = Number(process.argv[++i]);
  else {
    console.error(`soak: unknown argument ${a}`);
    process.exit(2);
  }
}
if (opt.replicas > 1 && !process.env.AIRLOCK_DATABASE_URL) {
  console.error('soak: --replicas > 1 needs AIRLOCK_DATABASE_URL (several servers share one PostgreSQL database)');
  process.exit(2);
}
if (sandboxed && sandboxSkip() !== false) {
  console.log(`soak: workers run unsandboxed: ${sandboxSkip()}`);
  sandboxed = false;
}
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

const model = await startMockModel(soakScript);
const servers = [];
const keyDir = mkdtempSync(path.join(tmpdir(), 'airlock-soak-key-'));
const keyFile = path.join(keyDir, 'master.key');
writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
let report, lb = null, faults = [];
try {
  // every replica shares the database and the vault master key; the loop lease is short so
  // a killed replica's sessions are taken over within seconds
  const env = { AIRLOCK_MODEL_BASE_URL: model.url, AIRLOCK_API_KEY: 'soak-bench-key',
    AIRLOCK_MASTER_KEY_FILE: keyFile, AIRLOCK_LOOP_LEASE_MS: '3000' };
  for (let i = 0; i < opt.replicas; i++) servers.push(await startServer({ env }));
  if (opt.replicas > 1) lb = await startRoundRobin(servers);
  const front = lb ? [{ baseURL: lb.url, apiKey: 'soak-bench-key' }] : servers;
  const victim = servers[servers.length - 1];
  faults = opt['kill-one-at'] > 0 && opt.replicas > 1
    ? [{ atMs: opt['kill-one-at'] * 1000, what: 'SIGKILL the last replica', run: () => victim.proc.kill('SIGKILL') }]
    : [];
  const rss0 = servers.map((s) => rssKiB(s.proc.pid));
  report = await runSoak({
    servers: front,
    sessions: opt.sessions,
    durationMs: opt.duration * 1000,
    airlockWorkers: opt.workers,
    sdkWorkers: opt['sdk-workers'],
    sandboxed,
    thinkMs: 1000,
    turnTimeoutMs: 900000,
    progress: (m) => console.log(`soak: ${m}`),
    faults,
  });
  const rss1 = servers.map((s) => (s.proc.exitCode === null && s.proc.signalCode === null ? rssKiB(s.proc.pid) : 0));
  const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
  console.log(`soak: ${report.sessions} sessions on ${opt.replicas} server(s)${lb ? ' behind a round-robin' : ''}${faults.length ? ' (one SIGKILLed)' : ''}, ${opt.workers} airlock ` +
    `worker(s) (${sandboxed ? 'sandboxed' : 'unsandboxed'}) + ${opt['sdk-workers']} SDK worker(s), ${f(report.elapsedS)} s`);
  console.log(`soak: ${report.turns} turns, ${report.toolCalls} tool calls, ${report.events} events; ` +
    `${report.failedSends} sends refused, ${report.streamErrors} streams broken and resumed ` +
    `(${report.caughtUp} events read from the history on resume)`);
  console.log(`soak: tool round trip p50 ${f(report.roundTripMs.p50)} ms, p99 ${f(report.roundTripMs.p99)} ms, ` +
    `max ${f(report.roundTripMs.max)} ms (queue wait included)`);
  console.log(`soak: server RSS ${rss0.map((k) => (k / 1024).toFixed(1)).join('/')} MiB → ` +
    `${rss1.map((k) => (k / 1024).toFixed(1)).join('/')} MiB`);
  const lost = report.problems.filter((p) => p.includes(': lost')).length;
  const dup = report.problems.filter((p) => p.includes(': duplicated')).length;
  const stuck = report.problems.filter((p) => p.includes(': stuck')).length;
  console.log(`soak: lost ${lost}, duplicated ${dup}, stuck ${stuck}, sessions without a turn ${report.sessionsWithoutTurn}`);
  for (const p of report.problems.slice(0, 20)) console.log(`soak:   ${p}`);
} finally {
  if (lb) await lb.close();
  for (const s of servers) await s.stop();
  await model.stop();
  rmSync(keyDir, { recursive: true, force: true });
}
process.exit(report && report.problems.length === 0 ? 0 : 1);
