// The Kubernetes manifests in deploy/kubernetes/ against the Kubernetes OpenAPI schema
// (npm kubernetes-models, pinned), and against airlock itself: the server's example
// configuration starts a real server and answers its probes' paths, the gateway's passes
// `airlock gateway --check`, every worker flag is one `airlock worker` knows, and every
// selector selects its pods. The servers' termination settings cover their drain
// (docs/server/drain.md), their metrics port is the one the configuration listens on and
// only the monitoring namespace may reach it; the PostgreSQL example runs several
// replicas that take the database URL from a Secret and keep two up through a drain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { ConfigMap, Service, PersistentVolumeClaim } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { startServer } from './lib/server.mjs';
import { makeEdgeCert } from './lib/edge_cert.mjs';
import { postgresSkip, startPostgres } from './lib/postgres.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIR = path.join(HERE, '..', '..', 'deploy', 'kubernetes');
const BIN = process.env.AIRLOCK_BIN;
const MODELS = {
  'v1/ConfigMap': ConfigMap, 'v1/Service': Service, 'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment, 'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

const docs = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).flatMap((f) =>
  parseAllDocuments(readFileSync(path.join(DIR, f), 'utf8')).map((d) => {
    assert.deepEqual(d.errors, [], `${f}: YAML errors`);
    return { file: f, obj: d.toJS() };
  }));
const find = (kind, name) => docs.find((d) => d.obj.kind === kind && d.obj.metadata.name === name)?.obj;
const SERVERS = ['airlock-server', 'airlock-server-pg'];
// A server Deployment's configuration: the server.yaml of the ConfigMap it mounts.
const serverConfig = (dep) => {
  const cm = dep.spec.template.spec.volumes.find((v) => v.name === 'config').configMap.name;
  return parseYaml(find('ConfigMap', cm).data['server.yaml']);
};
const matches = (selector, labels) => Object.entries(selector).every(([k, v]) => labels[k] === v);
// The server binary reads AIRLOCK_DATABASE_URL once the PostgreSQL store has landed.
const helpText = BIN ? spawnSync(BIN, ['server', '--help'], { encoding: 'utf8' }).stdout : '';
const PG_STORE = /AIRLOCK_DATABASE_URL/.test(helpText);

test('every manifest validates against the Kubernetes schema', () => {
  assert.ok(docs.length >= 9);
  for (const { file, obj } of docs) {
    const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
    assert.ok(Model, `${file}: ${obj.apiVersion} ${obj.kind} has no model here`);
    assert.doesNotThrow(() => new Model(obj).validate(), `${file}: ${obj.kind} ${obj.metadata.name}`);
  }
  // and the schema check is not a formality: a wrong type is caught
  const bad = structuredClone(find('Deployment', 'airlock-server'));
  bad.spec.template.spec.containers[0].ports[0].containerPort = 'eighty';
  assert.throws(() => new Deployment(bad).validate(), /containerPort must be integer/);
});

test('selectors select their pods; probes and services name real ports', () => {
  for (const { obj } of docs.filter((d) => d.obj.kind === 'Deployment')) {
    const labels = obj.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(obj.spec.selector.matchLabels)) assert.equal(labels[k], v, obj.metadata.name);
    const c = obj.spec.template.spec.containers[0];
    const ports = new Set((c.ports ?? []).map((p) => p.name));
    for (const probe of [c.readinessProbe, c.livenessProbe].filter(Boolean))
      if (probe.httpGet) assert.ok(ports.has(probe.httpGet.port), `${obj.metadata.name}: probe port ${probe.httpGet.port}`);
    // secrets and config only as files or env from Secret/ConfigMap objects
    for (const v of obj.spec.template.spec.volumes ?? [])
      assert.ok(v.secret || v.configMap || v.persistentVolumeClaim || v.emptyDir, v.name);
  }
  const server = find('Deployment', 'airlock-server').spec.template.metadata.labels;
  for (const sel of [find('Service', 'airlock-server').spec.selector, find('PodDisruptionBudget', 'airlock-server').spec.selector.matchLabels])
    for (const [k, v] of Object.entries(sel)) assert.equal(server[k], v);
  const gw = find('Deployment', 'airlock-gateway').spec.template.metadata.labels;
  for (const [k, v] of Object.entries(find('PodDisruptionBudget', 'airlock-gateway').spec.selector.matchLabels)) assert.equal(gw[k], v);
});

test('the servers drain within their grace period, expose metrics to monitoring only, and scale on PostgreSQL', () => {
  for (const name of SERVERS) {
    const dep = find('Deployment', name);
    assert.ok(dep, name);
    const cfg = serverConfig(dep);
    const pod = dep.spec.template.spec;
    const c = pod.containers[0];
    assert.equal(c.readinessProbe.httpGet.path, '/readyz', name);
    assert.equal(c.livenessProbe.httpGet.path, '/healthz', name);
    // the kubelet's SIGKILL comes after the preStop pause and the whole drain
    const drain = cfg.drain_timeout_seconds ?? 30;
    const pause = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
    assert.ok(pause >= 1, `${name}: a preStop pause lets the endpoint go before TERM`);
    assert.ok(pod.terminationGracePeriodSeconds >= pause + drain + 5,
      `${name}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} < preStop ${pause} + drain ${drain} + 5`);
    // metrics: the port the configuration listens on, named, annotated, and reachable
    // only from the monitoring namespace
    const mport = Number(/:(\d+)$/.exec(cfg.metrics.listen)[1]);
    assert.equal(c.ports.find((p) => p.name === 'metrics')?.containerPort, mport, name);
    assert.equal(dep.spec.template.metadata.annotations['prometheus.io/port'], String(mport), name);
    const pols = docs.filter((d) => d.obj.kind === 'NetworkPolicy' && matches(d.obj.spec.podSelector.matchLabels, dep.spec.template.metadata.labels));
    assert.ok(pols.length >= 1, `${name}: a NetworkPolicy selects its pods`);
    for (const { obj } of pols) {
      for (const rule of obj.spec.ingress) {
        if (!rule.ports.some((p) => p.port === 'metrics' || p.port === mport)) continue;
        assert.ok(rule.from?.length && rule.from.every((f) => f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring'),
          `${obj.metadata.name}: metrics only from the monitoring namespace`);
        assert.ok(rule.ports.every((p) => p.port === 'metrics' || p.port === mport), `${obj.metadata.name}: the metrics rule opens nothing else`);
      }
    }
  }
  // the single SQLite replica: one writer
  const one = find('Deployment', 'airlock-server');
  assert.equal(one.spec.replicas, 1);
  assert.equal(one.spec.strategy.type, 'Recreate');
  // several replicas on PostgreSQL: the URL from a Secret, no volume of state, a
  // rolling update that never goes below the replica count, two kept through a drain
  const pg = find('Deployment', 'airlock-server-pg');
  assert.ok(pg.spec.replicas >= 2);
  assert.equal(pg.spec.strategy.type, 'RollingUpdate');
  assert.equal(pg.spec.strategy.rollingUpdate.maxUnavailable, 0);
  const c = pg.spec.template.spec.containers[0];
  const url = c.env.find((e) => e.name === 'AIRLOCK_DATABASE_URL');
  assert.ok(url?.valueFrom?.secretKeyRef?.name, 'AIRLOCK_DATABASE_URL comes from a Secret');
  assert.equal(url.value, undefined, 'never a literal URL (it holds the password)');
  assert.ok(!pg.spec.template.spec.volumes.some((v) => v.persistentVolumeClaim), 'no per-pod database volume');
  const pdb = find('PodDisruptionBudget', 'airlock-server-pg');
  assert.ok(matches(pdb.spec.selector.matchLabels, pg.spec.template.metadata.labels));
  assert.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < pg.spec.replicas,
    `minAvailable ${pdb.spec.minAvailable} of ${pg.spec.replicas}: a drain can proceed and some stay`);
  const svc = find('Service', 'airlock-server-pg');
  assert.ok(matches(svc.spec.selector, pg.spec.template.metadata.labels));
  // the two examples never select each other's pods
  assert.ok(!matches(pg.spec.selector.matchLabels, one.spec.template.metadata.labels));
  assert.ok(!matches(find('Service', 'airlock-server-pg').spec.selector, one.spec.template.metadata.labels));
});

// "30s", "1m30s", "500ms", a bare number of seconds: what the roles' duration settings take
function seconds(v) {
  if (typeof v === 'number') return v;
  let total = 0;
  const re = /(\d+)(ms|s|m|h)?/g;
  let m;
  while ((m = re.exec(String(v)))) total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, undefined: 1 }[m[2]];
  return total;
}

test('every role\'s grace period covers its own drain', () => {
  const grace = (name) => find('Deployment', name).spec.template.spec.terminationGracePeriodSeconds ?? 30;
  const gw = parseYaml(find('ConfigMap', 'airlock-gateway').data['gateway.yaml']);
  const gwDrain = seconds(gw.shutdown_timeout ?? '30s');
  assert.ok(grace('airlock-gateway') >= gwDrain + 5, `gateway: grace ${grace('airlock-gateway')} < shutdown_timeout ${gwDrain} + 5`);
  const args = find('Deployment', 'airlock-worker').spec.template.spec.containers[0].args;
  const g = args.find((a) => a.startsWith('--on-work-grace='));
  const wDrain = g ? seconds(g.split('=')[1]) : 30; // docs/worker/config.md default
  assert.ok(grace('airlock-worker') >= wDrain + 5, `worker: grace ${grace('airlock-worker')} < on-work-grace ${wDrain} + 5`);
  assert.equal(seconds('1m30s'), 90); // the parser reads what the roles take
});

// Starts a real server on the named ConfigMap's server.yaml, the pod's paths pointed at
// files of a temporary directory (secrets, an edge certificate, the data directory) and
// its listeners at loopback; env: more server variables. Both are removed after t.
async function startExample(t, prefix, configMap, env = {}) {
  const tmp = mkdtempSync(path.join(tmpdir(), prefix));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  makeEdgeCert(tmp, 'k8s CA');
  for (const [name, value] of [['api-key', 'k8s-test-key'], ['model-api-key', 'x'], ['master-key', 'a'.repeat(64)]]) {
    writeFileSync(path.join(tmp, name), value);
    chmodSync(path.join(tmp, name), 0o600);
  }
  const cfg = find('ConfigMap', configMap).data['server.yaml']
    .replace('0.0.0.0:8400', '127.0.0.1:0')
    .replace('0.0.0.0:9400', '127.0.0.1:0')
    .replaceAll('/etc/airlock/secrets/', `${tmp}/`)
    .replace('/etc/airlock/tls/tls.crt', path.join(tmp, 'edge.pem'))
    .replace('/etc/airlock/tls/tls.key', path.join(tmp, 'edge.key'))
    .replace('/var/lib/airlock', path.join(tmp, 'data'));
  writeFileSync(path.join(tmp, 'server.yaml'), cfg);
  // --log-format text: the helper reads the text "listening" line (flags beat the file)
  const srv = await startServer({ args: ['--config', path.join(tmp, 'server.yaml'), '--listen', '127.0.0.1:0', '--log-format', 'text'],
    dataDir: path.join(tmp, 'data'), env: { AIRLOCK_API_KEY: '', ...env } });
  t.after(() => srv.stop());
  return { tmp, srv };
}

// Each probe's path answers over TLS with the example's certificate; then the text of
// /metrics on the port the configuration's metrics.listen opened.
async function probeExample(tmp, srv, probes) {
  for (const probe of probes) {
    const out = execFileSync('curl', ['-fsS', '--cacert', path.join(tmp, 'ca.pem'), '--resolve',
      `localhost:${srv.port}:127.0.0.1`, `https://localhost:${srv.port}${probe.httpGet.path}`], { encoding: 'utf8' });
    assert.ok(out.length > 0, probe.httpGet.path);
  }
  const m = /metrics listening".*?port=(\d+)/.exec(srv.log());
  assert.ok(m, 'the example configuration opens metrics.listen');
  return (await fetch(`http://127.0.0.1:${m[1]}/metrics`)).text();
}

test('the server\'s example configuration starts a real server that answers /readyz and /healthz', async (t) => {
  const c = find('Deployment', 'airlock-server').spec.template.spec.containers[0];
  assert.deepEqual(c.args, ['server', '--config', '/etc/airlock/server.yaml']);
  const { tmp, srv } = await startExample(t, 'airlock-k8s-', 'airlock-server');
  const metrics = await probeExample(tmp, srv, [c.readinessProbe, c.livenessProbe]);
  assert.match(metrics, /^airlock_database_up 1$/m);
});

test('the PostgreSQL example\'s configuration starts a server on a real PostgreSQL that answers its probes', {
  // node reports a test whose skip is null as skipped (after running it): false, not null
  skip: !PG_STORE ? 'the PostgreSQL store has not landed: airlock server --help names no AIRLOCK_DATABASE_URL (issue 13 item 2)' : postgresSkip() ?? false,
}, async (t) => {
  const pgsrv = await startPostgres({ database: 'airlock' });
  t.after(() => pgsrv.stop());
  const c = find('Deployment', 'airlock-server-pg').spec.template.spec.containers[0];
  const { tmp, srv } = await startExample(t, 'airlock-k8s-pg-', 'airlock-server-pg', { AIRLOCK_DATABASE_URL: pgsrv.url });
  const metrics = await probeExample(tmp, srv, [c.readinessProbe, c.livenessProbe, c.startupProbe]);
  assert.match(metrics, /^airlock_database_info\{engine="postgresql"\} 1$/m, 'the server runs on PostgreSQL, not a SQLite file');
  // the aggregates /metrics reads (store/stats_store.c) run on PostgreSQL too
  assert.match(metrics, /^airlock_metrics_store_errors 0$/m);
  assert.match(metrics, /^airlock_sessions\{status="idle"\} 0$/m);
});

test('the gateway\'s example configuration passes airlock gateway --check; the worker\'s flags exist', (t) => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'airlock-k8s-gw-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  writeFileSync(path.join(tmp, 'tunnel-token'), 'tok_' + 'x'.repeat(40));
  chmodSync(path.join(tmp, 'tunnel-token'), 0o600);
  const cfg = find('ConfigMap', 'airlock-gateway').data['gateway.yaml']
    .replace('/etc/airlock/token/tunnel-token', path.join(tmp, 'tunnel-token'));
  writeFileSync(path.join(tmp, 'gateway.yaml'), cfg);
  const r = spawnSync(BIN, ['gateway', '--config', path.join(tmp, 'gateway.yaml'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const help = spawnSync(BIN, ['worker', 'poll', '--help'], { encoding: 'utf8' });
  const known = help.stdout + help.stderr;
  const args = find('Deployment', 'airlock-worker').spec.template.spec.containers[0].args;
  assert.deepEqual(args.slice(0, 2), ['worker', 'poll']);
  for (const a of args.slice(2)) {
    const flag = a.split('=')[0];
    assert.ok(known.includes(flag), `airlock worker knows ${flag}`);
  }
});
