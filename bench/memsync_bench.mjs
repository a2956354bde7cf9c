// Memory store download benchmark (bench/run.sh section "memory stores"): one store of N
// small memories (default 1,000 of ~100 bytes) on one airlock server, copied to disk by
// the official SDK's SessionMemoryStores.download (what its EnvironmentWorker runs at a
// session's start, with the item's sessions token) and by `airlock worker` (the time its
// "memory store downloaded" line reports, from the store's directory being made to the
// last page written), three rounds each, alternated, in one run. Target (issue 15):
// airlock <= 2x the SDK.
// Run: AIRLOCK_BIN=build/src/airlock tests/interop/run-node.sh bench/memsync_bench.mjs [N]
import path from 'node:path';
import { chmodSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const here = path.dirname(fileURLToPath(import.meta.url));
const lib = (f) => import(pathToFileURL(path.join(here, '..', 'tests', 'interop', 'lib', f)).href);
const { startServer } = await lib('server.mjs');
const { startMockModel } = await lib('mockmodel.mjs');
const { envWithKey, sessionsToken } = await lib('session.mjs');
const { startPollWorker, waitFor } = await lib('worker.mjs');
const req = createRequire(path.join(here, '..', 'tests', 'interop', 'package.json'));
const sdkDir = path.dirname(req.resolve('@anthropic-ai/sdk'));
const Anthropic = (await import(pathToFileURL(req.resolve('@anthropic-ai/sdk')).href)).default;
const { SessionMemoryStores } = await import(pathToFileURL(path.join(sdkDir, 'tools', 'agent-toolset', 'memories.mjs')).href);
const N = Number(process.argv[2] ?? 1000);
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

const model = await startMockModel([{ content: [{ type: 'text', text: 'ok' }] }]);
const server = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
const work = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-memsync-bench-')));
chmodSync(work, 0o755);
let worker;
try {
  const client = new Anthropic({ baseURL: server.baseURL, apiKey: server.apiKey, maxRetries: 0 });
  const store = await client.beta.memoryStores.create({ name: 'bench' });
  for (let i = 0; i < N; i++)
    await client.beta.memoryStores.memories.create(store.id, { path: `/notes/d${i % 10}/m${i}.md`, content: `memory ${i}: `.padEnd(100, 'x') });
  const agent = await client.beta.agents.create({ name: 'bench', model: 'm' });
  const { env, envKey } = await envWithKey(server, client, 'bench');
  const resources = [{ type: 'memory_store', memory_store_id: store.id }];
  const ours = [], theirs = [];
  for (let round = 0; round < 3; round++) {
    // the SDK: a session whose item this script holds (no worker runs meanwhile)
    const session = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id, resources });
    const token = await sessionsToken(server, env, envKey, session.id, 'bench');
    const tc = new Anthropic({ baseURL: server.baseURL, authToken: token, apiKey: null, maxRetries: 0 });
    // the SDK's workdir fallback ({workdir}/memory/<name>), as airlock's worker places it
    const sess = await tc.beta.sessions.retrieve(session.id);
    for (const r of sess.resources) delete r.mount_path;
    const wd = mkdtempSync(path.join(work, 'sdk-'));
    const t0 = performance.now();
    await new SessionMemoryStores(tc, { workdir: wd }).download(sess);
    theirs.push(performance.now() - t0);
    rmSync(wd, { recursive: true, force: true });
    await client.beta.sessions.delete(session.id).catch(() => {});

    // airlock worker: a fresh one takes the next session's item
    const other = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id, resources });
    worker = startPollWorker({ baseURL: server.baseURL, environmentId: env.id, envKey, workdir: work,
      args: ['--unsandboxed', '--max-idle', '1s'] });
    const re = /memory store downloaded.*?memories="?(\d+)"?.*?ms="?(\d+)"?/;
    await waitFor(() => re.test(worker.log()), 'airlock worker\'s download', 120000, worker.log);
    const m = re.exec(worker.log());
    if (Number(m[1]) !== N) throw new Error(`airlock worker copied ${m[1]} memories, not ${N}`);
    ours.push(Number(m[2]));
    await waitFor(() => /work item finished/.test(worker.log()), 'the item to end', 60000, worker.log);
    worker.proc.kill('SIGTERM');
    await worker.exited;
    worker = null;
    await client.beta.sessions.delete(other.id).catch(() => {});
  }
  const ratio = median(ours) / median(theirs);
  console.log(`memory stores: download of ${N} memories of 100 bytes, median of 3`);
  console.log(`  SDK SessionMemoryStores.download  ${median(theirs).toFixed(0)} ms (${theirs.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`  airlock worker                    ${median(ours).toFixed(0)} ms (${ours.join(', ')}): ${ratio.toFixed(2)}x the SDK (target <= 2x: ${ratio <= 2 ? 'met' : 'missed'})`);
} finally {
  worker?.proc.kill('SIGKILL');
  await server.stop();
  await model.stop();
  rmSync(work, { recursive: true, force: true });
}
