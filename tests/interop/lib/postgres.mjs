// A real PostgreSQL server from Debian's postgresql-15 for tests: initdb in a fresh
// temporary directory (as the `postgres` user when we are root: initdb refuses root),
// listening on a free loopback port and a socket in that directory, trust authentication
// for loopback only; stop() shuts it down and removes everything.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, chownSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';

function bindir() {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    return '/usr/lib/postgresql/15/bin';
  }
}

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

// Why PostgreSQL cannot run here, or null (a probe: tests skip with the reason).
export function postgresSkip() {
  const r = spawnSync(path.join(bindir(), 'initdb'), ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) return 'skip: no PostgreSQL server (apt-get install postgresql-15)';
  if (process.getuid() === 0 && spawnSync('id', ['postgres']).status !== 0)
    return 'skip: running as root and no postgres user to run initdb as';
  return null;
}

export async function startPostgres({ database = 'app' } = {}) {
  const bin = bindir();
  const dir = mkdtempSync(path.join(tmpdir(), 'airlock-pg-'));
  const data = path.join(dir, 'data');
  const asUser = process.getuid() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  const run = (cmd, args) => {
    const argv = [...asUser, path.join(bin, cmd), ...args];
    return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  };
  if (asUser.length) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  run('initdb', ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=trust', '-E', 'UTF8', '--no-instructions']);
  const port = await freePort();
  appendFileSync(path.join(data, 'postgresql.conf'),
    `listen_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${dir}'\nfsync = off\n`);
  run('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-w', '-t', '60', 'start']);
  const psql = (sql, db = 'postgres') =>
    execFileSync('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db,
      '-v', 'ON_ERROR_STOP=1', '-qAt', '-c', sql], { encoding: 'utf8' });
  psql(`CREATE DATABASE ${database}`);
  return {
    port,
    url: `postgresql://postgres@127.0.0.1:${port}/${database}`,
    psql: (sql) => psql(sql, database),
    async stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
