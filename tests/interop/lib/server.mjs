// Starts a real `airlock server` for interop tests: a free loopback port, a fresh
// temporary data directory and a random server API key. Shared by every interop test.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';

const BIN = process.env.AIRLOCK_BIN;

// Under tests/interop/with-postgres.sh (the interop-pg suite) every server runs on that
// PostgreSQL: one database per data directory, so a server restarted on the same
// directory finds its state again, as it would in its SQLite file.
function postgresURL(dir) {
  const port = process.env.AIRLOCK_TEST_PG_PORT;
  if (!port) return null;
  const name = `t_${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`;
  const r = spawnSync('psql', ['-h', process.env.AIRLOCK_TEST_PG_SOCKET, '-p', port, '-U', 'postgres',
    '-d', 'postgres', '-qAt', '-c', `CREATE DATABASE ${name} OWNER airlock`], { encoding: 'utf8' });
  if (r.status !== 0 && !/already exists/.test(r.stderr)) throw new Error(`CREATE DATABASE: ${r.stderr}`);
  return `postgresql://airlock@127.0.0.1:${port}/${name}`;
}

// env: extra environment variables for the server (e.g. AIRLOCK_MODEL_BASE_URL).
// args: extra command-line arguments. Resolves once the server logs "listening" to
// {baseURL, apiKey, dataDir, proc, log(), stop()}; stop() ends it and removes dataDir.
export async function startServer({ env = {}, args = [], dataDir } = {}) {
  if (!BIN) throw new Error('AIRLOCK_BIN is not set (run through meson test)');
  const ownDir = !dataDir;
  const dir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'airlock-srv-'));
  const apiKey = env.AIRLOCK_API_KEY ?? `test_${randomBytes(16).toString('hex')}`;
  const pg = postgresURL(dir);
  const proc = spawn(BIN, ['server', '--listen', '127.0.0.1:0', ...args], {
    env: { ...process.env, AIRLOCK_DATA_DIR: dir, AIRLOCK_API_KEY: apiKey,
      ...(pg ? { AIRLOCK_DATABASE_URL: pg } : {}), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL'); // a server that never said it listens must not outlive the test
      reject(new Error(`server did not start: ${log}`));
    }, 20000);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      log += d;
      // The API listener's line: "tunnel metrics listening ... port=" may come first.
      const m = /server: listening .*?port=(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`airlock server exited ${code}: ${log}`));
    });
  });
  return {
    baseURL: `http://127.0.0.1:${port}`,
    port,
    apiKey,
    dataDir: dir,
    // the environment an admin command (airlock keys) needs to reach this server's database
    cliEnv: { ...process.env, AIRLOCK_DATA_DIR: dir, ...(pg ? { AIRLOCK_DATABASE_URL: pg } : {}) },
    // its PostgreSQL database (interop-pg), for a second replica on the same one; else null
    databaseURL: env.AIRLOCK_DATABASE_URL ?? pg,
    proc,
    log: () => log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const done = new Promise((resolve) => proc.once('exit', resolve));
        proc.kill('SIGTERM');
        // TERM drains (docs/server/drain.md): a test that leaves a model call in flight
        // need not wait out the drain timeout; a second TERM exits at once.
        const again = setTimeout(() => proc.kill('SIGTERM'), 3000);
        await done;
        clearTimeout(again);
      }
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
