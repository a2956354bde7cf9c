// The soak (issue 13): many concurrent sessions, each running scripted tool calls for a
// while against one or more servers and several workers, then every session's history is
// checked for lost, duplicated and stuck work. Shared by tests/interop/soak.test.mjs (a
// bounded run in the suite) and bench/soak.mjs (the full run: 1,000 sessions, 5 minutes).
//
// Shape of a run:
//   - `airlock mock-model` answers "soak-go" with a bash tool call (`echo soak-step-N`)
//     and the tool's result with end_turn; every turn has a `match`, so with `loop` the
//     script serves any number of sessions in any interleaving;
//   - each session is a driver: open the event stream, then repeatedly send
//     `soak-go`, wait for the turn's end_turn, think a while (longer than the workers'
//     --max-idle, so the worker releases it and the next turn is a fresh work item);
//   - workers: `airlock worker poll` processes (sandboxed where the host can), and
//     optionally the SDK's EnvironmentWorker, all polling the same environment;
//   - servers: every request of a session goes to the server its index picks, and its
//     stream to the next one, so with several replicas events cross replicas.
//
// The checks, per session, against the history listed at the end:
//   lost:       an event listed that never reached the client (on its live stream, or
//               in the history read after a broken stream was reopened, as a client
//               resumes), or a message acknowledged but missing from the history;
//   duplicated: an event id delivered twice on one stream or listed twice, or a tool
//               use with more than one user.tool_result;
//   stuck:      a session not idle at the end, or a tool use without a result.
// Tool round trip: agent.tool_use → user.tool_result, as their arrival on the stream.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { startMockModel } from './mockmodel.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const soakScript = {
  loop: true,
  turns: [
    { match: 'soak-go', content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo soak-step-$$' } }] },
    { match: 'soak-step', content: [{ type: 'text', text: 'soak turn done' }] },
  ],
};

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

// A worker process: its stderr's tail kept for a failure report, stop() = TERM, then
// KILL after 20 s, then its directories removed.
function workerProcess(kind, proc, dirs) {
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    log += d;
    if (log.length > 1 << 20) log = log.slice(-(1 << 19));
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
  return {
    kind,
    proc,
    log: () => log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 20000);
        await exited;
        clearTimeout(t);
      }
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
}

function startPollWorker(baseURL, envId, envKey, { sandboxed, maxIdle }) {
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-soak-wk-')));
  const stateDir = mkdtempSync(path.join(tmpdir(), 'airlock-soak-st-'));
  chmodSync(workdir, 0o711); // the sandbox's unprivileged user must reach its workspace
  const args = ['worker', 'poll', '--environment-id', envId, '--workdir', workdir, '--max-idle', maxIdle,
    '--log-format', 'json'];
  if (!sandboxed) args.push('--unsandboxed');
  const proc = spawn(process.env.AIRLOCK_BIN, args, {
    env: { ...process.env, ANTHROPIC_ENVIRONMENT_KEY: envKey, ANTHROPIC_BASE_URL: baseURL,
      AIRLOCK_SANDBOX_STATE_DIR: stateDir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return workerProcess('airlock', proc, [workdir, stateDir]);
}

// The SDK's EnvironmentWorker, unmodified, in its own Node process (bench/worker_bench.mjs
// has the same child mode; this one is inline so the suite needs no bench/ file).
function startSdkWorker(baseURL, envId, envKey, { maxIdleMs }) {
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-soak-sdk-')));
  const src = `
    const { default: Anthropic } = await import('@anthropic-ai/sdk');
    const { EnvironmentWorker } = await import('@anthropic-ai/sdk/lib/environments/worker');
    const w = new EnvironmentWorker({ client: new Anthropic({ baseURL: ${JSON.stringify(baseURL)},
      apiKey: 'unused-by-worker' }), environmentId: ${JSON.stringify(envId)},
      environmentKey: process.env.ANTHROPIC_ENVIRONMENT_KEY, workdir: ${JSON.stringify(workdir)},
      maxIdleMs: ${maxIdleMs}, memorySyncIntervalMs: null });
    const abort = new AbortController();
    process.on('SIGTERM', () => abort.abort());
    await w.run(abort.signal).catch((e) => { if (!abort.signal.aborted) throw e; });
    process.exit(0);`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', src], {
    cwd: path.dirname(path.dirname(new URL(import.meta.url).pathname)), // resolves the pinned SDK
    env: { ...process.env, ANTHROPIC_ENVIRONMENT_KEY: envKey },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return workerProcess('sdk', proc, [workdir]);
}

// One session's driver. Resolves to its record once the deadline passed and its last
// turn ended (or could not).
async function driveSession(s, deadline, thinkMs, turnTimeoutMs) {
  const seen = new Map(); // event id -> how it first arrived: 'stream' or 'catch-up'
  const toolUseAt = new Map(); // tool_use id -> ms of arrival
  s.roundTrips = [];
  s.streamErrors = 0; // streams that broke (a replica killed, a cut connection)
  s.streamDuplicates = [];
  let turnsEnded = 0;
  let waiter = null;
  let stopping = false;
  let stream = null;
  const take = (ev, how) => {
    if (seen.has(ev.id)) return;
    seen.set(ev.id, how);
    if (ev.type === 'agent.tool_use') toolUseAt.set(ev.id, performance.now());
    if (ev.type === 'user.tool_result' && toolUseAt.has(ev.tool_use_id))
      s.roundTrips.push(performance.now() - toolUseAt.get(ev.tool_use_id));
    if (ev.type === 'session.status_idle' && ev.stop_reason?.type === 'end_turn') {
      turnsEnded++;
      if (waiter) waiter();
    }
  };
  // One live stream at a time. When it breaks, a client resumes as any would: open a new
  // stream first, then read the history for what fell in the gap (the overlap between the
  // two is expected and not a duplicate). Within one stream an event twice is a duplicate.
  const reader = (async () => {
    let first = true;
    while (!stopping) {
      try {
        stream = await s.streamClient.beta.sessions.events.stream(s.id);
        if (!first) for (const ev of await listAll(s.streamClient, s.id)) take(ev, 'catch-up');
        first = false;
        const mine = new Set();
        for await (const ev of stream) {
          if (mine.has(ev.id)) s.streamDuplicates.push(ev.id);
          mine.add(ev.id);
          take(ev, 'stream');
        }
        if (stopping) break;
        s.streamErrors++; // the server ended the stream without being asked
      } catch (e) {
        if (stopping) break;
        s.streamErrors++;
      }
      await sleep(200);
    }
  })();
  while (stream === null) await sleep(10); // the first stream is open before the first send
  s.sent = 0;
  s.failedSends = 0;
  while (performance.now() < deadline) {
    const want = turnsEnded + 1;
    try {
      await s.client.beta.sessions.events.send(s.id, {
        events: [{ type: 'user.message', content: [{ type: 'text', text: `soak-go ${s.sent}` }] }],
      });
      s.sent++;
    } catch (e) {
      // Not acknowledged: the message may or may not exist, so it is counted apart and
      // the check below reads the history to decide.
      s.failedSends++;
      s.lastError = String(e);
      await sleep(1000);
      continue;
    }
    const ended = await new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), turnTimeoutMs);
      waiter = () => {
        if (turnsEnded >= want) {
          clearTimeout(t);
          waiter = null;
          resolve(true);
        }
      };
      waiter();
    });
    if (!ended) {
      s.timedOutTurn = true;
      break;
    }
    await sleep(thinkMs * (0.5 + Math.random()));
  }
  // Let the stream deliver whatever the last turn still sends, then close it.
  await sleep(500);
  stopping = true;
  stream.controller.abort();
  await reader;
  s.seen = seen;
  s.turnsEnded = turnsEnded;
}

async function listAll(client, sessionId) {
  const out = [];
  for await (const ev of client.beta.sessions.events.list(sessionId, { limit: 1000 })) out.push(ev);
  return out;
}

// Checks one session's history against what its driver saw. Returns a list of problems.
function checkSession(s, history, status) {
  const problems = [];
  const ids = new Map();
  for (const ev of history) ids.set(ev.id, (ids.get(ev.id) ?? 0) + 1);
  for (const [id, n] of ids) if (n > 1) problems.push(`duplicated: event ${id} listed ${n} times`);
  for (const id of s.streamDuplicates) problems.push(`duplicated: event ${id} streamed twice on one stream`);
  for (const ev of history) if (!s.seen.has(ev.id)) problems.push(`lost: ${ev.type} ${ev.id} never reached the client`);
  const results = new Map();
  for (const ev of history)
    if (ev.type === 'user.tool_result') results.set(ev.tool_use_id, (results.get(ev.tool_use_id) ?? 0) + 1);
  for (const ev of history) {
    if (ev.type !== 'agent.tool_use') continue;
    const n = results.get(ev.id) ?? 0;
    if (n === 0) problems.push(`stuck: tool use ${ev.id} has no result`);
    if (n > 1) problems.push(`duplicated: tool use ${ev.id} has ${n} results`);
  }
  const messages = history.filter((e) => e.type === 'user.message').length;
  const ends = history.filter((e) => e.type === 'session.status_idle' && e.stop_reason?.type === 'end_turn').length;
  if (messages < s.sent) problems.push(`lost: ${s.sent} messages acknowledged, ${messages} in the history`);
  if (ends < messages) problems.push(`stuck: ${messages} messages, ${ends} turns ended`);
  if (status !== 'idle') problems.push(`stuck: status ${status} at the end`);
  if (s.timedOutTurn) problems.push('stuck: a turn did not end in time');
  return problems;
}

// servers: [{baseURL, apiKey}] (one, or replicas on one database). Returns the report.
export async function runSoak({
  servers,
  sessions = 50,
  durationMs = 20000,
  airlockWorkers = 2,
  sdkWorkers = 0,
  sandboxed = true,
  thinkMs = 1500,
  maxIdle = '500ms',
  turnTimeoutMs = 120000,
  progress = () => {},
  // [{atMs, what, run}]: something done to the system while the sessions run (a replica
  // killed); the report lists what was done and when.
  faults = [],
}) {
  const clients = servers.map((s) => new Anthropic({ baseURL: s.baseURL, apiKey: s.apiKey, maxRetries: 2 }));
  const admin = clients[0];
  const env = await admin.beta.environments.create({ name: 'soak', config: { type: 'self_hosted' } });
  const agent = await admin.beta.agents.create({
    name: 'soak',
    model: 'claude-soak',
    tools: [{ type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_allow' } } }],
  });
  const kr = await fetch(`${servers[0].baseURL}/v1/environments/${env.id}/keys`, {
    method: 'POST',
    headers: { 'x-api-key': servers[0].apiKey, 'content-type': 'application/json' },
    body: '{"name":"soak"}',
  });
  if (kr.status !== 200) throw new Error(`environment key: ${kr.status} ${await kr.text()}`);
  const envKey = (await kr.json()).key;

  const workers = [];
  for (let i = 0; i < airlockWorkers; i++)
    workers.push(startPollWorker(servers[i % servers.length].baseURL, env.id, envKey, { sandboxed, maxIdle }));
  for (let i = 0; i < sdkWorkers; i++)
    workers.push(startSdkWorker(servers[(i + 1) % servers.length].baseURL, env.id, envKey, { maxIdleMs: 500 }));

  const list = [];
  try {
    for (let i = 0; i < sessions; i++) {
      const c = clients[i % clients.length];
      const sess = await c.beta.sessions.create({ agent: agent.id, environment_id: env.id });
      list.push({ id: sess.id, client: c, streamClient: clients[(i + 1) % clients.length] });
    }
    progress(`${sessions} sessions created; driving for ${Math.round(durationMs / 1000)} s`);
    const t0 = performance.now();
    const deadline = t0 + durationMs;
    const faultTimers = faults.map((f) =>
      setTimeout(() => {
        progress(`${Math.round((performance.now() - t0) / 1000)} s: ${f.what}`);
        f.run();
      }, f.atMs),
    );
    const ticker = setInterval(() => {
      const turns = list.reduce((a, s) => a + (s.sent ?? 0), 0);
      progress(`${Math.round((performance.now() - t0) / 1000)} s: ${turns} turns sent`);
    }, 30000);
    try {
      await Promise.all(list.map((s) => driveSession(s, deadline, thinkMs, turnTimeoutMs)));
    } finally {
      clearInterval(ticker);
      faultTimers.forEach(clearTimeout);
    }
    const elapsedMs = performance.now() - t0;

    const problems = [];
    let events = 0;
    for (const s of list) {
      const history = await listAll(admin, s.id);
      const status = (await admin.beta.sessions.retrieve(s.id)).status;
      events += history.length;
      for (const p of checkSession(s, history, status)) problems.push(`${s.id}: ${p}`);
    }
    const rts = list.flatMap((s) => s.roundTrips).sort((a, b) => a - b);
    return {
      sessions,
      servers: servers.length,
      workers: { airlock: airlockWorkers, sdk: sdkWorkers, sandboxed },
      elapsedS: elapsedMs / 1000,
      turns: list.reduce((a, s) => a + s.turnsEnded, 0),
      sent: list.reduce((a, s) => a + s.sent, 0),
      failedSends: list.reduce((a, s) => a + s.failedSends, 0),
      streamErrors: list.reduce((a, s) => a + s.streamErrors, 0),
      caughtUp: list.reduce((a, s) => a + [...s.seen.values()].filter((h) => h === 'catch-up').length, 0),
      events,
      toolCalls: rts.length,
      roundTripMs: { p50: percentile(rts, 50), p99: percentile(rts, 99), max: rts[rts.length - 1] },
      sessionsWithoutTurn: list.filter((s) => s.turnsEnded === 0).length,
      problems,
      workerLogs: () => workers.map((w) => `--- ${w.kind} worker ---\n${w.log().slice(-200000)}`).join('\n'),
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
}

export { startMockModel };
