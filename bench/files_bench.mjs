// Files and skills benchmark (bench/run.sh section "files"): a 100 MiB upload and
// download through the official SDK, against copying the same file on the same disk
// (cp + fsync, the baseline measured in this run), and the server's peak RSS before and
// after (the body is streamed to disk, never held: the growth should stay near the
// parser's window, not the file's size). Then issue 15's skill target: download + unpack
// of a 5 MiB bundle with the SDK's own setupSkills against `tar -x` of the same archive
// (target <= 1.5x).
// Run: AIRLOCK_BIN=build/src/airlock tests/interop/run-node.sh bench/files_bench.mjs [MiB]
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, openSync, fsyncSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const here = path.dirname(fileURLToPath(import.meta.url));
const lib = (f) => import(pathToFileURL(path.join(here, '..', 'tests', 'interop', 'lib', f)).href);
const { startServer } = await lib('server.mjs');
const { envWithKey, sessionsToken } = await lib('session.mjs');
const req = createRequire(path.join(here, '..', 'tests', 'interop', 'package.json'));
const sdk = await import(pathToFileURL(req.resolve('@anthropic-ai/sdk')).href);
const Anthropic = sdk.default;
const { toFile } = sdk;
const { setupSkills } = await import(pathToFileURL(path.join(path.dirname(req.resolve('@anthropic-ai/sdk')), 'tools', 'agent-toolset', 'skills.mjs')).href);
const MIB = Number(process.argv[2] ?? 100);

const hwm = (pid) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const rate = (bytes, ms) => `${(bytes / (1 << 20) / (ms / 1000)).toFixed(0)} MiB/s`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const work = mkdtempSync(path.join(tmpdir(), 'airlock-files-bench-'));
const server = await startServer({ dataDir: path.join(work, 'data'), env: { AIRLOCK_FILES_MAX_BYTES: String((MIB + 1) << 20) } });
try {
  const client = new Anthropic({ baseURL: server.baseURL, apiKey: server.apiKey, maxRetries: 0, timeout: 600000 });
  const bytes = randomBytes(MIB << 20);
  const src = path.join(work, 'src.bin');
  writeFileSync(src, bytes);

  const cp = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    copyFileSync(src, path.join(work, 'copy.bin'));
    const fd = openSync(path.join(work, 'copy.bin'), 'r+');
    fsyncSync(fd);
    closeSync(fd);
    cp.push(performance.now() - t0);
  }
  const rssBefore = hwm(server.proc.pid);
  const up = [], down = [];
  let id;
  for (let i = 0; i < 3; i++) {
    const file = await toFile(bytes, 'big.bin');
    let t0 = performance.now();
    const f = await client.beta.files.upload({ file });
    up.push(performance.now() - t0);
    t0 = performance.now();
    const got = Buffer.from(await (await client.beta.files.download(f.id)).arrayBuffer());
    down.push(performance.now() - t0);
    if (!got.equals(bytes)) throw new Error('download differs');
    if (id) await client.beta.files.delete(id);
    id = f.id;
  }
  const rssAfter = hwm(server.proc.pid);
  console.log(`files: ${MIB} MiB, median of 3 on one disk`);
  console.log(`  cp + fsync        ${median(cp).toFixed(0)} ms (${rate(MIB << 20, median(cp))})`);
  console.log(`  SDK upload        ${median(up).toFixed(0)} ms (${rate(MIB << 20, median(up))}), ${(median(up) / median(cp)).toFixed(2)}x cp`);
  console.log(`  SDK download      ${median(down).toFixed(0)} ms (${rate(MIB << 20, median(down))}), ${(median(down) / median(cp)).toFixed(2)}x cp`);
  console.log(`  server peak RSS   ${rssBefore.toFixed(1)} MiB before, ${rssAfter.toFixed(1)} MiB after (+${(rssAfter - rssBefore).toFixed(1)} MiB for ${MIB} MiB bodies)`);

  // a 5 MiB skill: 50 files of 100 KiB
  const files = [await toFile(Buffer.from('---\nname: bench\ndescription: a 5 MiB bundle\n---\n'), 'bench/SKILL.md')];
  for (let i = 0; i < 50; i++) files.push(await toFile(randomBytes(100 << 10), `bench/data/f${i}.bin`));
  const skill = await client.beta.skills.create({ files });
  const agent = await client.beta.agents.create({ name: 'bench', model: 'm', skills: [{ type: 'custom', skill_id: skill.id }] });
  const { env, envKey } = await envWithKey(server, client, 'bench');
  const session = await client.beta.sessions.create({ agent: agent.id, environment_id: env.id });
  const token = await sessionsToken(server, env, envKey, session.id, 'bench');
  const tc = new Anthropic({ baseURL: server.baseURL, authToken: token, apiKey: null, maxRetries: 0 });
  const sess = await tc.beta.sessions.retrieve(session.id);
  const archive = path.join(work, 'bundle.tar');
  writeFileSync(archive, Buffer.from(await (await client.beta.skills.versions.download(skill.latest_version_id, { skill_id: skill.id })).arrayBuffer()));
  const sdkMs = [], tarMs = [], dlMs = [];
  for (let i = 0; i < 5; i++) {
    let t1 = performance.now();
    await (await tc.beta.skills.versions.download(skill.latest_version_id, { skill_id: skill.id })).arrayBuffer();
    dlMs.push(performance.now() - t1);
    const wd = mkdtempSync(path.join(work, 'wd-'));
    let t0 = performance.now();
    const cleanup = await setupSkills({ client: tc, session: sess, workdir: wd });
    sdkMs.push(performance.now() - t0);
    await cleanup();
    const td = mkdtempSync(path.join(work, 'tar-'));
    t0 = performance.now();
    execFileSync('tar', ['-xf', archive, '-C', td]);
    tarMs.push(performance.now() - t0);
  }
  const ratio = median(sdkMs) / median(tarMs);
  console.log(`skills: 5 MiB bundle, download + unpack (SDK setupSkills) ${median(sdkMs).toFixed(1)} ms vs tar -x ${median(tarMs).toFixed(1)} ms: ${ratio.toFixed(2)}x (target <= 1.5x: ${ratio <= 1.5 ? 'met' : 'missed'})`);
  console.log(`  of which the download alone (the server's part) ${median(dlMs).toFixed(1)} ms; setupSkills runs tar three times (list, typed list, extract)`);
} finally {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
