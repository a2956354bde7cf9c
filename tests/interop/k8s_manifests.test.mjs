// The Kubernetes manifests in deploy/kubernetes/ against the Kubernetes OpenAPI schema
// (npm kubernetes-models, pinned), and against airlock itself: the server's example
// configuration starts a real server and answers its probes' paths, the gateway's passes
// `airlock gateway --check`, every worker flag is one `airlock worker` knows, and every
// selector selects its pods.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { ConfigMap, Service, PersistentVolumeClaim } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { startServer } from './lib/server.mjs';
import { makeEdgeCert } from './lib/edge_cert.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIR = path.join(HERE, '..', '..', 'deploy', 'kubernetes');
const BIN = process.env.AIRLOCK_BIN;
const MODELS = {
  'v1/ConfigMap': ConfigMap, 'v1/Service': Service, 'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment, 'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

const docs = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).flatMap((f) =>
  parseAllDocuments(readFileSync(path.join(DIR, f), 'utf8')).map((d) => {
    assert.deepEqual(d.errors, [], `${f}: YAML errors`);
    return { file: f, obj: d.toJS() };
  }));
const find = (kind, name) => docs.find((d) => d.obj.kind === kind && d.obj.metadata.name === name)?.obj;

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

test('the server\'s example configuration starts a real server that answers /readyz and /healthz', async (t) => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'airlock-k8s-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  makeEdgeCert(tmp, 'k8s CA');
  for (const [name, value] of [['api-key', 'k8s-test-key'], ['model-api-key', 'x'], ['master-key', 'a'.repeat(64)]]) {
    writeFileSync(path.join(tmp, name), value);
    chmodSync(path.join(tmp, name), 0o600);
  }
  // the ConfigMap's file with the pod's paths pointed at this test's files
  const cfg = find('ConfigMap', 'airlock-server').data['server.yaml']
    .replace('0.0.0.0:8400', '127.0.0.1:0')
    .replaceAll('/etc/airlock/secrets/', `${tmp}/`)
    .replace('/etc/airlock/tls/tls.crt', path.join(tmp, 'edge.pem'))
    .replace('/etc/airlock/tls/tls.key', path.join(tmp, 'edge.key'))
    .replace('/var/lib/airlock', path.join(tmp, 'data'));
  writeFileSync(path.join(tmp, 'server.yaml'), cfg);
  const c = find('Deployment', 'airlock-server').spec.template.spec.containers[0];
  assert.deepEqual(c.args, ['server', '--config', '/etc/airlock/server.yaml']);
  // --log-format text: the helper reads the text "listening" line (flags beat the file)
  const srv = await startServer({ args: ['--config', path.join(tmp, 'server.yaml'), '--listen', '127.0.0.1:0', '--log-format', 'text'],
    dataDir: path.join(tmp, 'data'), env: { AIRLOCK_API_KEY: '' } });
  t.after(() => srv.stop());
  for (const probe of [c.readinessProbe, c.livenessProbe]) {
    const out = execFileSync('curl', ['-fsS', '--cacert', path.join(tmp, 'ca.pem'), '--resolve',
      `localhost:${srv.port}:127.0.0.1`, `https://localhost:${srv.port}${probe.httpGet.path}`], { encoding: 'utf8' });
    assert.ok(out.length > 0, probe.httpGet.path);
  }
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
