// Environment worker benchmark (bench/run.sh section "environment worker"): airlock's
// worker against the official SDK's EnvironmentWorker (@anthropic-ai/sdk from
// tests/interop/node_modules), each polling its own airlock server on loopback:
//   1. idle RSS while polling an empty queue (target: ours <= 0.07x the SDK's), summed over
//      the whole process tree each side runs (ours: the privileged monitor, the unprivileged
//      worker and any sandbox it keeps; the SDK: node and any child);
//   2. agent.tool_use -> user.tool_result latency for N cheap bash calls (`echo x`), seen
//      by one SSE client as the arrival of each event on the session stream; p50 and p90
//      (target: ours <= 0.3x the SDK's).
// Run: AIRLOCK_BIN=build/src/airlock tests/interop/run-node.sh bench/worker_bench.mjs [N]
// (child mode, internal: `sdk-worker BASE_URL ENV_ID WORKDIR`, key in ANTHROPIC_ENVIRONMENT_KEY).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const here = path.dirname(fileURLToPath(import.meta.url));
const interop = path.join(here, '..', 'tests', 'interop');
const req = createRequire(path.join(interop, 'package.json'));
const sdkPath = (p) => pathToFileURL(req.resolve(p)).href;

if (process.argv[2] === 'sdk-worker') {
  // The SDK worker exactly as an application would run it, in its own Node process.
  const { default: Anthropic } = await import(sdkPath('@anthropic-ai/sdk'));
  const { EnvironmentWorker } = await import(sdkPath('@anthropic-ai/sdk/lib/environments/worker'));
  const [, , , baseURL, environmentId, workdir] = process.argv;
  const worker = new EnvironmentWorker({
    client: new Anthropic({ baseURL, apiKey: 'unused-by-worker' }),
    environmentId,
    environmentKey: process.env.ANTHROPIC_ENVIRONMENT_KEY,
    workdir,
    maxIdleMs: 60000,
    memorySyncIntervalMs: null,
  });
  const abort = new AbortController();
  process.on('SIGTERM', () => abort.abort());
  await worker.run(abort.signal).catch((e) => {
    if (!abort.signal.aborted) throw e;
  });
  process.exit(0);
}

const { startServer } = await import(pathToFileURL(path.join(interop, 'lib', 'server.mjs')).href);
const { startMockModel } = await import(pathToFileURL(path.join(interop, 'lib', 'mockmodel.mjs')).href);
const { collectEvents, endTurn } = await import(pathToFileURL(path.join(interop, 'lib', 'session.mjs')).href);
const { default: Anthropic } = await import(sdkPath('@anthropic-ai/sdk'));

const N = Number(process.argv[2] ?? 40);
const BIN = process.env.AIRLOCK_BIN;
if (!BIN) throw new Error('AIRLOCK_BIN must point at the airlock binary');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
// PSS and anonymous memory say how much of RSS is shared library pages.
const rollup = (pid, key) =>
  Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]);
// The spawned process and all its descendants, through /proc/<pid>/task/<tid>/children.
const treePids = (pid) => {
  const out = [];
  const walk = (p) => {
    out.push(p);
    let tids = [];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      return; // exited meanwhile
    }
    for (const t of tids) {
      let kids = '';
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {}
      for (const k of kids.split(' ').filter(Boolean)) walk(Number(k));
    }
  };
  walk(pid);
  return out;
};
const procInfo = (pid) => {
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(0, 3).join(' ');
    return { pid, comm, args, rss: rssKiB(pid), pss: rollup(pid, 'Pss'), anon: rollup(pid, 'Anonymous') };
  } catch {
    return null; // exited between listing and reading
  }
};
const treeSample = (pid) => treePids(pid).map(procInfo).filter(Boolean);
// Resident memory of a process tree with each physical page counted once: the union of
// the page frames its processes map (/proc/PID/pagemap; frame numbers need root). For one
// process this is its RSS; a tree's RSS sum counts the library pages its processes share
// (one copy in memory) once per process. null when frame numbers are hidden.
const residentUnionKiB = (pids) => {
  const frames = new Set();
  for (const pid of pids) {
    let smaps, fd;
    try {
      smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
      fd = openSync(`/proc/${pid}/pagemap`, 'r');
    } catch {
      continue; // exited meanwhile
    }
    try {
      let vma = null;
      for (const line of smaps.split('\n')) {
        const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
        if (m) vma = [BigInt('0x' + m[1]), BigInt('0x' + m[2])];
        else if (vma && /^Rss:\s+[1-9]/.test(line)) {
          const pages = Number((vma[1] - vma[0]) / 4096n);
          const b = Buffer.alloc(pages * 8);
          readSync(fd, b, 0, b.length, Number((vma[0] / 4096n) * 8n));
          for (let i = 0; i < pages; i++) {
            const e = b.readBigUInt64LE(i * 8);
            if (e >> 63n) frames.add(Number(e & ((1n << 55n) - 1n)));
          }
          vma = null;
        }
      }
    } finally {
      closeSync(fd);
    }
  }
  return frames.has(0) ? null : frames.size * 4;
};
const sum = (ps, k) => ps.reduce((a, p) => a + p[k], 0);
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function measure(kind) {
  const turns = [];
  for (let i = 0; i < N; i++)
    turns.push({ content: [{ type: 'tool_use', name: 'bash', input: { command: 'echo x' } }] });
  turns.push({ content: [{ type: 'text', text: 'done' }] });
  const model = await startMockModel(turns);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), `airlock-wbench-${kind}-`)));
  let proc;
  try {
    const client = new Anthropic({ baseURL: srv.baseURL, apiKey: srv.apiKey, maxRetries: 0 });
    const env = await client.beta.environments.create({ name: kind, config: { type: 'self_hosted' } });
    const kr = await fetch(`${srv.baseURL}/v1/environments/${env.id}/keys`, {
      method: 'POST',
      headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
      body: '{"name":"bench"}',
    });
    const envKey = (await kr.json()).key;
    // Its own sandbox state dir: another worker on this host (holding the default one)
    // would otherwise make ours exit at start with "sandbox sweep failed: conflict".
    const wenv = {
      ...process.env,
      ANTHROPIC_ENVIRONMENT_KEY: envKey,
      ANTHROPIC_BASE_URL: srv.baseURL,
      AIRLOCK_SANDBOX_STATE_DIR: process.env.AIRLOCK_SANDBOX_STATE_DIR ?? `${workdir}-state`,
    };
    proc =
      kind === 'airlock'
        ? spawn(BIN, ['worker', 'poll', '--environment-id', env.id, '--workdir', workdir, '--max-idle', '60s'], {
            env: wenv,
            stdio: ['ignore', 'ignore', 'ignore'],
          })
        : spawn(process.execPath, [fileURLToPath(import.meta.url), 'sdk-worker', srv.baseURL, env.id, workdir], {
            env: wenv,
            stdio: ['ignore', 'ignore', 'inherit'],
          });
    // Idle: several empty polls (each 1–3 s apart), then five samples.
    await sleep(6000);
    const samples = [];
    let procs = [];
    for (let i = 0; i < 5; i++) {
      procs = treeSample(proc.pid);
      samples.push(sum(procs, 'rss'));
      await sleep(400);
    }
    const idleKiB = pct(samples, 50);
    const unionKiB = residentUnionKiB(procs.map((p) => p.pid));
    const pssKiB = sum(procs, 'pss');
    const anonKiB = sum(procs, 'anon');

    const agent = await client.beta.agents.create({
      name: 'bench',
      model: 'claude-bench',
      tools: [{ type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_allow' } } }],
    });
    const session = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id });
    const seen = new Map(); // tool_use id -> arrival ms
    const lat = [];
    const { done } = await collectEvents(
      client,
      session.id,
      (ev) => {
        const t = performance.now();
        if (ev.type === 'agent.tool_use') seen.set(ev.id, t);
        else if (ev.type === 'user.tool_result' && seen.has(ev.tool_use_id)) lat.push(t - seen.get(ev.tool_use_id));
        return endTurn(ev);
      },
      { timeoutMs: 300000 },
    );
    await client.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'go' }] }],
    });
    await done;
    if (lat.length !== N) throw new Error(`${kind}: ${lat.length} of ${N} results seen`);
    return { idleKiB, unionKiB, pssKiB, anonKiB, procs, p50: pct(lat, 50), p90: pct(lat, 90) };
  } finally {
    if (proc && proc.exitCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      await gone;
      clearTimeout(t);
    }
    await srv.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
    rmSync(workdir + '-state', { recursive: true, force: true });
  }
}

const ours = await measure('airlock');
const sdk = await measure('sdk');
const mib = (k) => (k / 1024).toFixed(1);
for (const [name, r] of [['airlock', ours], ['SDK', sdk]])
  for (const p of r.procs)
    console.log(
      `  ${name} pid ${p.pid} (${p.comm}: ${p.args}): RSS=${mib(p.rss)} MiB PSS=${mib(p.pss)} MiB anonymous=${mib(p.anon)} MiB`,
    );
if (ours.unionKiB !== null && sdk.unionKiB !== null)
  console.log(
    `idle resident memory (distinct pages of the process tree): airlock worker=${mib(ours.unionKiB)} MiB ` +
      `(${ours.procs.length} processes)  SDK EnvironmentWorker (node ${process.version})=${mib(sdk.unionKiB)} MiB  ` +
      `ratio=${(ours.unionKiB / sdk.unionKiB).toFixed(3)}x (target <= 0.07x)`,
  );
else console.log('idle resident memory (distinct pages): page frame numbers hidden (run as root)');
console.log(
  `idle RSS (process tree sum, shared pages counted per process): airlock worker=${mib(ours.idleKiB)} MiB  ` +
    `SDK=${mib(sdk.idleKiB)} MiB  ratio=${(ours.idleKiB / sdk.idleKiB).toFixed(3)}x`,
);
console.log(
  `  (PSS: airlock=${mib(ours.pssKiB)} MiB SDK=${mib(sdk.pssKiB)} MiB; anonymous: airlock=${mib(ours.anonKiB)} MiB ` +
    `SDK=${mib(sdk.anonKiB)} MiB)`,
);
console.log(
  `tool_use -> tool_result, ${N} x bash "echo x": airlock p50=${ours.p50.toFixed(2)} ms p90=${ours.p90.toFixed(2)} ms  ` +
    `SDK p50=${sdk.p50.toFixed(2)} ms p90=${sdk.p90.toFixed(2)} ms  ratio p50=${(ours.p50 / sdk.p50).toFixed(3)}x ` +
    `(no target in the issue; both include the server storing and broadcasting each event)`,
);
