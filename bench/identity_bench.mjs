// Identity benchmark, end to end (bench/run.sh section "identity"): the same API request
// (GET /v1/agents, keep-alive, sequential) authenticated with a server API key and with a
// signed-in user's JWT from a real OpenID provider (npm oidc-provider, the interop tests'
// fixture), interleaved in rounds so drift hits both alike. Target: user <= 1.2x API key.
// Run: AIRLOCK_BIN=build/src/airlock tests/interop/run-node.sh bench/identity_bench.mjs [N]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const here = path.dirname(fileURLToPath(import.meta.url));
const { startIdp } = await import(pathToFileURL(path.join(here, '..', 'tests', 'interop', 'lib', 'oidc_idp.mjs')).href);
const BIN = process.env.AIRLOCK_BIN;
const N = Number(process.argv[2] ?? 2000);

const idp = await startIdp({ users: { alice: { groups: ['auditors', 'staff'] } } });
const dir = mkdtempSync(path.join(tmpdir(), 'airlock-idbench-'));
const proc = spawn(BIN, ['server', '--listen', '127.0.0.1:0'], {
  env: { ...process.env, AIRLOCK_DATA_DIR: dir, AIRLOCK_API_KEY: 'benchkey', AIRLOCK_OIDC_ISSUER: idp.issuer,
    AIRLOCK_OIDC_AUDIENCE: 'airlock' },
  stdio: ['ignore', 'ignore', 'pipe'],
});
let log = '';
proc.stderr.setEncoding('utf8');
proc.stderr.on('data', (d) => { log += d; });
for (let i = 0; i < 200 && !/identity provider keys loaded/.test(log); i++) await new Promise((r) => setTimeout(r, 50));
const port = Number(/server: listening .*?port=(\d+)/.exec(log)?.[1]);
const url = `http://127.0.0.1:${port}/v1/agents?limit=1`;
const token = await idp.token('alice');
// an issued server key too: the API key path that hashes and looks the key up
const issued = (await new Promise((resolve, reject) => {
  const p = spawn(BIN, ['keys', 'create', '--server', '--name', 'bench'], {
    env: { ...process.env, AIRLOCK_DATA_DIR: dir }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`keys create: ${code}`))));
})).trim();
const headers = {
  key: { 'x-api-key': 'benchkey' },
  issued: { authorization: `Bearer ${issued}` },
  user: { authorization: `Bearer ${token}` },
};

async function once(h) {
  const t = performance.now();
  const r = await fetch(url, { headers: h });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`status ${r.status}`);
  return (performance.now() - t) * 1000;
}
const kinds = ['key', 'issued', 'user'];
const label = { key: 'AIRLOCK_API_KEY   ', issued: 'issued server key ', user: 'user token (JWT)  ' };
for (let i = 0; i < 200; i++) for (const k of kinds) await once(headers[k]); // warm up
const t = { key: [], issued: [], user: [] };
for (let round = 0; round < 12; round++) {
  const order = kinds.slice(round % 3).concat(kinds.slice(0, round % 3));
  for (const k of order) for (let i = 0; i < N / 12; i++) t[k].push(await once(headers[k]));
}
const pct = (v, p) => v.slice().sort((a, b) => a - b)[Math.floor(v.length * p)];
for (const k of kinds)
  console.log(`${label[k]} p50 ${pct(t[k], 0.5).toFixed(1)} us  p99 ${pct(t[k], 0.99).toFixed(1)} us`);
console.log(`user token / AIRLOCK_API_KEY p50 = ${(pct(t.user, 0.5) / pct(t.key, 0.5)).toFixed(2)}x, ` +
  `/ issued server key = ${(pct(t.user, 0.5) / pct(t.issued, 0.5)).toFixed(2)}x (target <= 1.2x)`);
proc.kill('SIGTERM');
await new Promise((r) => proc.once('exit', r));
await idp.stop();
rmSync(dir, { recursive: true, force: true });
