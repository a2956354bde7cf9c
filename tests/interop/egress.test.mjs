// The sandbox's network under policy (issue 14): local HTTP and HTTPS servers stand in
// for "the internal API" and "the internet", their names mapped by the operator file's
// `resolve:`. Inside the session's sandbox curl reaches an allowed host through the
// worker's egress proxy (plain HTTP and CONNECT), is refused elsewhere with the reason
// (environment allowlist, operator denial, Host fronting, cloud metadata), and fails
// closed without the proxy (--noproxy, a direct IP). Also: the server's validation of
// `networking`, and a worker without --egress-policy gives the sandbox no network.
// Needs root and a host where sandboxes can be made (lib/hostprobe.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, realpathSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { startMockModel } from './lib/mockmodel.mjs';
import { setupSession, collectEvents, endTurn, textOf } from './lib/session.mjs';
import { sandboxSkip } from './lib/hostprobe.mjs';

const root = process.getuid() === 0;

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

// Two origins: plain HTTP (the internal API) and HTTPS (a CONNECT target). Each answers
// with its name and the Host it was asked for, so the test sees what went through.
async function origins(t, dir) {
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', '1', '-keyout', 'o.key', '-out', 'o.pem', '-subj', '/CN=secure.corp.test',
    '-addext', 'subjectAltName=DNS:secure.corp.test');
  // a bare repository served the "dumb HTTP" way (static files), for git clone over
  // HTTPS through CONNECT
  const git = (...args) => execFileSync('git', args, { cwd: dir, stdio: 'ignore',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });
  git('init', '-q', 'work');
  writeFileSync(path.join(dir, 'work', 'README'), 'cloned-through-the-proxy\n');
  git('-C', 'work', 'add', 'README');
  git('-C', 'work', 'commit', '-q', '-m', 'one');
  git('clone', '-q', '--bare', 'work', 'repo.git');
  git('-C', 'repo.git', 'update-server-info');
  // a package index with one wheel, for pip through the proxy
  execFileSync('python3', ['-c', `
import zipfile
with zipfile.ZipFile('demo-1.0-py3-none-any.whl', 'w') as z:
    z.writestr('demo/__init__.py', 'x = 1\\n')
    z.writestr('demo-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: demo\\nVersion: 1.0\\n')
    z.writestr('demo-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
    z.writestr('demo-1.0.dist-info/RECORD', '')
`], { cwd: dir });
  const seen = [];
  const handler = (name) => (req, res) => {
    if (name === 'internal' && req.url === '/simple/demo/') {
      res.setHeader('content-type', 'text/html');
      res.end('<html><body><a href="/files/demo-1.0-py3-none-any.whl">demo-1.0-py3-none-any.whl</a></body></html>');
      return;
    }
    if (name === 'internal' && req.url === '/files/demo-1.0-py3-none-any.whl') {
      res.end(readFileSync(path.join(dir, 'demo-1.0-py3-none-any.whl')));
      return;
    }
    if (name === 'secure' && req.url.startsWith('/repo.git/')) {
      const f = path.join(dir, decodeURIComponent(req.url.split('?')[0]));
      seen.push({ name, method: req.method, url: req.url, host: req.headers.host, body: '', proxyHeaders: [] });
      try { res.end(readFileSync(f)); } catch { res.statusCode = 404; res.end(); }
      return;
    }
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ name, method: req.method, url: req.url, host: req.headers.host, body,
        auth: req.headers.authorization,
        proxyHeaders: Object.keys(req.headers).filter((h) => h.startsWith('proxy-')) });
      // what arrived, except where a secret may have: those answer with its length only
      // (an origin that echoes what it got would hand the value back to the sandbox)
      res.end(`${name}-ok ${req.method} ${req.url} ${/body|ledger/.test(req.url) ? body.length : body}`);
    });
  };
  const plain = http.createServer(handler('internal'));
  const secure = https.createServer({
    key: readFileSync(path.join(dir, 'o.key')), cert: readFileSync(path.join(dir, 'o.pem')),
  }, handler('secure'));
  const plainPort = await listen(plain);
  const securePort = await listen(secure);
  t.after(() => { plain.close(); secure.close(); });
  return { plainPort, securePort, seen };
}

function startWorker(srv, env, envKey, workdir, stateDir, args) {
  const proc = spawn(process.env.AIRLOCK_BIN,
    ['worker', 'poll', '--environment-id', env.id, '--workdir', workdir, '--max-idle', '2s',
      '--log-format', 'json', ...args],
    {
      env: { ...process.env, ANTHROPIC_ENVIRONMENT_KEY: envKey, ANTHROPIC_BASE_URL: srv.baseURL,
        AIRLOCK_SANDBOX_STATE_DIR: stateDir },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  let log = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, log: () => log, exited };
}

async function setNetworking(srv, envId, networking) {
  const r = await fetch(`${srv.baseURL}/v1/environments/${envId}`, {
    method: 'POST',
    headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json',
      'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ config: { type: 'self_hosted', networking } }),
  });
  return { status: r.status, body: await r.json() };
}

async function runSession(t, { commands, networking, workerArgs, vaultAuth }) {
  const turns = commands.map((command) => ({ content: [{ type: 'tool_use', name: 'bash', input: { command } }] }));
  turns.push({ content: [{ type: 'text', text: 'done' }] });
  const model = await startMockModel(turns);
  const srv = await startServer({ env: { AIRLOCK_MODEL_BASE_URL: model.url } });
  const workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-egw-')));
  chmodSync(workdir, 0o711);
  const stateDir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-egstate-')));
  let w;
  t.after(async () => {
    if (w && w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await srv.stop();
    await model.stop();
    rmSync(workdir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });
  const s = await setupSession(srv);
  if (networking) {
    const r = await setNetworking(srv, s.env.id, networking);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.config.networking, networking);
  }
  let credential;
  if (vaultAuth) {
    // a vault with the credential, and the session that names it
    const api = async (method, p, body) => {
      const r = await fetch(`${srv.baseURL}${p}`, { method, headers: { 'x-api-key': srv.apiKey,
        'content-type': 'application/json', 'anthropic-version': '2023-06-01' }, body: body && JSON.stringify(body) });
      const j = await r.json();
      assert.equal(r.status, 200, JSON.stringify(j));
      return j;
    };
    const vault = await api('POST', '/v1/vaults', { display_name: 'egress' });
    credential = await api('POST', `/v1/vaults/${vault.id}/credentials`, { auth: vaultAuth });
    s.session = await s.client.beta.sessions.create({ agent: s.agent.id, environment_id: s.env.id, vault_ids: [vault.id] });
  }
  const { done } = await collectEvents(s.client, s.session.id, endTurn, { timeoutMs: 90000 });
  await s.client.beta.sessions.events.send(s.session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'go' }] }],
  });
  w = startWorker(srv, s.env, s.envKey, workdir, stateDir, workerArgs);
  const events = await done;
  const uses = events.filter((e) => e.type === 'agent.tool_use');
  const results = new Map(events.filter((e) => e.type === 'user.tool_result').map((e) => [e.tool_use_id, e]));
  const out = uses.map((u) => {
    const r = results.get(u.id);
    assert.ok(r, `no result for ${u.input.command}\n${w.log()}`);
    return textOf(r.content);
  });
  w.proc.kill('SIGTERM');
  assert.equal(await w.exited, 0, w.log());
  const logs = w.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  return { out, log: w.log(), logs, srv, session: s.session, events, credential };
}

test('server: networking on self-hosted environments is validated strictly', async (t) => {
  const srv = await startServer();
  t.after(() => srv.stop());
  const s = await setupSession(srv);
  const bad = [
    [{ type: 'open' }, /config\.networking\.type: must be 'limited' or 'unrestricted'/],
    [{ type: 'limited', allowed_hosts: ['a b'] }, /config\.networking\.allowed_hosts\[0\]/],
    [{ type: 'limited', allowed_hosts: 'x' }, /must be a list/],
    [{ type: 'limited', allow_mcp_servers: 'yes' }, /allow_mcp_servers: must be a boolean/],
    [{ type: 'unrestricted', allowed_hosts: [] }, /allowed_hosts: Extra inputs/],
    [{ type: 'limited', allowed_hosts: ['*'] }, /allowed_hosts\[0\]/],
  ];
  for (const [nw, re] of bad) {
    const r = await setNetworking(srv, s.env.id, nw);
    assert.equal(r.status, 400, JSON.stringify(nw));
    assert.match(r.body.error.message, re);
  }
  // nothing of the refused updates was kept
  let cur = await s.client.beta.environments.retrieve(s.env.id);
  assert.equal(cur.config.networking, undefined);
  // limited, then an update of one field keeps the others (the reference's rule)
  let r = await setNetworking(srv, s.env.id, { type: 'limited', allowed_hosts: ['api.corp.test'], allow_package_managers: true });
  assert.equal(r.status, 200);
  r = await setNetworking(srv, s.env.id, { type: 'limited', allow_mcp_servers: true });
  assert.deepEqual(r.body.config.networking, { type: 'limited', allowed_hosts: ['api.corp.test'],
    allow_package_managers: true, allow_mcp_servers: true });
  // an update without networking keeps it; null removes it
  const k = await fetch(`${srv.baseURL}/v1/environments/${s.env.id}`, {
    method: 'POST', headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'renamed', config: { type: 'self_hosted' } }),
  });
  assert.equal((await k.json()).config.networking.type, 'limited');
  r = await setNetworking(srv, s.env.id, null);
  assert.equal(r.body.config.networking, undefined);
  r = await setNetworking(srv, s.env.id, { type: 'unrestricted' });
  cur = await s.client.beta.environments.retrieve(s.env.id);
  assert.deepEqual(cur.config.networking, { type: 'unrestricted' });
  // created with networking
  const c = await fetch(`${srv.baseURL}/v1/environments`, {
    method: 'POST', headers: { 'x-api-key': srv.apiKey, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'n', config: { type: 'self_hosted', networking: { type: 'limited', allowed_hosts: ['*.corp.test'] } } }),
  });
  assert.deepEqual((await c.json()).config.networking, { type: 'limited', allowed_hosts: ['*.corp.test'] });
});

test('the sandbox reaches allowed hosts through the proxy and nothing else', { skip: (!root && 'needs root') || sandboxSkip() }, async (t) => {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-egpol-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const o = await origins(t, dir);
  const policy = path.join(dir, 'egress.yaml');
  writeFileSync(policy, [
    'allowed_hosts: ["*.corp.test", "www.public.test"]',
    'denied_hosts: ["blocked.corp.test"]',
    'allowed_addresses: [127.0.0.1]',
    'resolve:',
    '  api.corp.test: 127.0.0.1',
    '  secure.corp.test: 127.0.0.1',
    '  www.public.test: 127.0.0.1',
    '  blocked.corp.test: 127.0.0.1',
    '  meta.corp.test: 169.254.169.254',
    '  meta6.corp.test: "::ffff:169.254.169.254"',
    '  lan.corp.test: 10.99.0.1',
    '',
  ].join('\n'));
  const P = o.plainPort;
  const S = o.securePort;
  const code = (args) => `rm -f /tmp/b; curl -sS -m 10 -o /tmp/b -w '%{http_code}' ${args} 2>&1; echo; cat /tmp/b 2>/dev/null`;
  const commands = [
    'env | grep -i _proxy= | sort',
    `curl -sS -m 10 http://api.corp.test:${P}/hello`,
    `curl -sS -m 10 -k https://secure.corp.test:${S}/tls`,
    `curl -sS -m 10 -X POST --data-binary body-bytes http://api.corp.test:${P}/post`,
    code(`http://www.public.test:${P}/`),
    code(`http://blocked.corp.test:${P}/`),
    code(`-H 'Host: www.public.test' http://api.corp.test:${P}/fronted`),
    code('http://meta.corp.test/latest/meta-data/'),
    code('-k https://meta6.corp.test/'),
    code('http://lan.corp.test/'),
    code('http://169.254.169.254/latest/meta-data/'),
    `curl -sS -m 5 --noproxy '*' http://api.corp.test:${P}/ 2>&1; echo rc=$?`,
    `curl -sS -m 5 --noproxy '*' http://127.0.0.1:${P}/ 2>&1; echo rc=$?`,
    `curl -sS -m 5 --noproxy '*' http://192.0.2.10/ 2>&1; echo rc=$?`,
    `curl -sS -m 5 --noproxy '*' http://169.254.169.254/ 2>&1; echo rc=$?`,
    // other clients that honour the proxy variables
    `python3 -c "import urllib.request as u; print(u.urlopen('http://api.corp.test:${P}/py').read().decode())"`,
    `python3 -c "
import urllib.request as u, urllib.error as e
try: u.urlopen('http://www.public.test:${P}/py')
except e.HTTPError as x: print(x.code, x.read().decode())"`,
    `git -c http.sslVerify=false clone -q https://secure.corp.test:${S}/repo.git /tmp/r 2>&1 && cat /tmp/r/README`,
    // bypass battery: IPv6, UDP, DNS to an outside resolver, a raw TCP socket
    `curl -sS -m 5 --noproxy '*' -g 'http://[2606:4700::1]/' 2>&1; echo rc=$?`,
    `python3 -c "
import socket
for fam, addr in ((socket.AF_INET, ('8.8.8.8', 53)), (socket.AF_INET6, ('2001:4860:4860::8888', 53))):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try: s.sendto(b'x', addr); print('sent')
    except OSError as e: print(e.errno)
s = socket.socket(); s.settimeout(3)
try: s.connect(('1.1.1.1', 443)); print('connected')
except OSError as e: print(e.errno)"`,
    'getent hosts api.corp.test; echo rc=$?',
    `pip3 download -q --no-cache-dir --no-deps --trusted-host api.corp.test --index-url http://api.corp.test:${P}/simple/ -d /tmp/pkgs demo 2>&1; ls /tmp/pkgs`,
  ];
  const r = await runSession(t, {
    commands,
    networking: { type: 'limited', allowed_hosts: ['*.corp.test'] },
    workerArgs: ['--egress-policy', policy],
  });
  const { out } = r;
  const ctx = `\n${r.log}`;
  assert.match(out[0], /^HTTPS_PROXY=http:\/\/127\.0\.0\.1:3128$/m, out[0]);
  assert.match(out[0], /^http_proxy=http:\/\/127\.0\.0\.1:3128$/m, out[0]);
  assert.equal(out[1], 'internal-ok GET /hello ', ctx);
  assert.equal(out[2], 'secure-ok GET /tls ', ctx);
  assert.equal(out[3], 'internal-ok POST /post body-bytes', ctx);
  // the origin saw origin-form requests with its own Host and no proxy headers
  const hello = o.seen.find((x) => x.url === '/hello');
  assert.equal(hello.host, `api.corp.test:${P}`);
  assert.deepEqual(hello.proxyHeaders, []);
  // refusals: 403 with the reason
  assert.equal(out[4], "403\nairlock egress: www.public.test is not allowed by the environment's allowed_hosts", ctx);
  assert.equal(out[5], "403\nairlock egress: blocked.corp.test is not allowed by the worker's denied_hosts entry 'blocked.corp.test'", ctx);
  assert.match(out[6], /^403\nairlock egress: api\.corp\.test is not allowed by the Host check/, ctx);
  assert.ok(!o.seen.some((x) => x.url === '/fronted'), 'a fronted request reached the origin');
  assert.match(out[7], /^403\nairlock egress: meta\.corp\.test is not allowed by the address rules \(169\.254\.169\.254 is cloud metadata/, ctx);
  // CONNECT refused: curl reports the proxy's 403 (an IPv4-mapped metadata address)
  assert.match(out[8], /CONNECT tunnel failed, response 403/, ctx);
  assert.match(out[9], /^403\nairlock egress: lan\.corp\.test is not allowed by the address rules \(10\.99\.0\.1 is private/, ctx);
  assert.match(out[10], /^403\nairlock egress: 169\.254\.169\.254 is not allowed by the environment's allowed_hosts/, ctx);
  // without the proxy: no DNS, no route, nothing on the sandbox's own loopback
  for (const i of [11, 12, 13, 14]) {
    assert.match(out[i], /rc=(6|7|28)$/, `${commands[i]}: ${out[i]}`);
    assert.ok(!out[i].includes('-ok'), out[i]);
  }
  assert.equal(out[15], 'internal-ok GET /py ', ctx);
  assert.equal(out[16], "403 airlock egress: www.public.test is not allowed by the environment's allowed_hosts", ctx);
  assert.equal(out[17], 'cloned-through-the-proxy', ctx);
  assert.match(out[18], /rc=7$/, out[18]);
  // ENETUNREACH (101) for both datagrams and the raw connect: no route out
  assert.equal(out[19], '101\n101\n101', out[19]);
  // no resolver inside: names exist only for the proxy
  assert.equal(out[20], 'rc=2', out[20]);
  // pip through the proxy, from a local package index
  assert.match(out[21], /demo-1\.0-py3-none-any\.whl$/, out[21]);
  // every decision is a JSON log line
  const eg = r.logs.filter((l) => l.msg === 'egress' || l.message === 'egress');
  const allowed = eg.find((l) => l.host === 'api.corp.test' && l.path === '/hello');
  assert.ok(allowed, ctx);
  assert.equal(allowed.decision, 'allowed');
  assert.equal(allowed.address, '127.0.0.1');
  assert.equal(allowed.method, 'GET');
  assert.ok(Number(allowed.bytes_down) > 0 && Number(allowed.bytes_up) > 0, JSON.stringify(allowed));
  const tls = eg.find((l) => l.host === 'secure.corp.test');
  assert.equal(tls.method, 'CONNECT');
  assert.equal(Number(tls.port), S);
  const denied = eg.find((l) => l.host === 'www.public.test');
  assert.equal(denied.decision, 'denied');
  assert.match(denied.rule, /environment's allowed_hosts/);
  assert.ok(eg.find((l) => l.host === 'meta6.corp.test' && l.decision === 'denied'), ctx);
  // and the same decisions are in the server's audit log, durable, under the session
  const q = await fetch(`${r.srv.baseURL}/v1/audit_events?session_id=${r.session.id}&action=egress.request&order=asc&limit=100`,
    { headers: { 'x-api-key': r.srv.apiKey } });
  assert.equal(q.status, 200);
  const recs = (await q.json()).data;
  assert.equal(recs.length, eg.length, JSON.stringify(recs.map((x) => x.resources.host)));
  const rec = recs.find((x) => x.resources.host === 'api.corp.test' && x.resources.path === '/hello');
  assert.equal(rec.decision, 'allow');
  assert.equal(rec.outcome, 'allowed');
  assert.equal(rec.resources.address, '127.0.0.1');
  assert.equal(rec.resources.port, P);
  assert.ok(rec.resources.bytes_down > 0);
  assert.match(rec.principal.sub, /^session-token:/);
  const den = recs.find((x) => x.resources.host === 'www.public.test');
  assert.equal(den.decision, 'deny');
  assert.match(den.rule, /environment's allowed_hosts/);
  // a malformed report is refused whole
  const bad = await fetch(`${r.srv.baseURL}/v1/environments/x/work/y/egress`, {
    method: 'POST', headers: { 'x-api-key': r.srv.apiKey, 'content-type': 'application/json' },
    body: JSON.stringify({ decisions: [] }),
  });
  assert.equal(bad.status, 400);
});

test('no --egress-policy: the sandbox has no network, whatever the environment asks', { skip: (!root && 'needs root') || sandboxSkip() }, async (t) => {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-egpol-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const o = await origins(t, dir);
  const r = await runSession(t, {
    commands: [
      'env | grep -ci _proxy=; true',
      `curl -sS -m 5 -x http://127.0.0.1:3128 http://api.corp.test:${o.plainPort}/ 2>&1; echo rc=$?`,
      `curl -sS -m 5 http://127.0.0.1:${o.plainPort}/ 2>&1; echo rc=$?`,
    ],
    networking: { type: 'unrestricted' },
    workerArgs: [],
  });
  assert.equal(r.out[0], '0', r.log);
  assert.match(r.out[1], /rc=7$/, r.log);
  assert.match(r.out[2], /rc=7$/, r.log);
  assert.equal(o.seen.length, 0);
  assert.match(r.log, /has no --egress-policy, so the sandbox has no network/);
});

test('a bad --egress-policy file stops the worker at start with FILE:LINE and the key', async (t) => {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-egbad-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // a good one: `worker check` summarises it
  const good = path.join(dir, 'good.yaml');
  writeFileSync(good, 'allowed_hosts: [a.test, "*.b.test"]\ndenied_hosts: [x.b.test]\nresolve: {a.test: 10.0.0.1}\n');
  const chk = await new Promise((resolve) => {
    const p = spawn(process.env.AIRLOCK_BIN, ['worker', 'check', '--environment-id', 'env_x',
      '--unsandboxed', '--egress-policy', good],
    { env: { ...process.env, ANTHROPIC_ENVIRONMENT_KEY: 'k', ANTHROPIC_BASE_URL: 'http://127.0.0.1:9' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', () => resolve(out));
  });
  assert.match(chk, /check: egress: policy .*good\.yaml: 2 allowed hosts, 1 denied, 0 address ranges, 1 static names, 64 connections per sandbox/);
  const cases = [
    ['allowed_hosts:\n  - ok.example\n  - "bad host"\n', /bad\.yaml:3: allowed_hosts\[1\]: 'bad host'/],
    ['allowed_addresses: [10.1.2.3/8]\n', /bad\.yaml:1: allowed_addresses\[0\]: not an address or CIDR range/],
    ['alowed_hosts: []\n', /bad\.yaml:1: unknown key 'alowed_hosts'/],
  ];
  const cfg = path.join(dir, 'worker.yaml');
  for (const [text, re] of cases) {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, text);
    // named by the flag, and by the worker's --config file (egress_policy:)
    writeFileSync(cfg, `egress_policy: ${file}\n`);
    for (const how of [['--egress-policy', file], ['--config', cfg]]) {
      const r = await new Promise((resolve) => {
        const p = spawn(process.env.AIRLOCK_BIN, ['worker', 'poll', '--environment-id', 'env_x',
          '--unsandboxed', ...how],
        { env: { ...process.env, ANTHROPIC_ENVIRONMENT_KEY: 'k', ANTHROPIC_BASE_URL: 'http://127.0.0.1:9' }, stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr.on('data', (d) => (err += d));
        p.on('exit', (code) => resolve({ code, err }));
      });
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, re);
    }
  }
});

test('differential: unrestricted opens only what the operator opts into', { skip: (!root && 'needs root') || sandboxSkip() }, async (t) => {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-egpol-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const o = await origins(t, dir);
  const P = o.plainPort;
  const base = ['allowed_addresses: [127.0.0.1]', 'resolve: {api.corp.test: 127.0.0.1, www.public.test: 127.0.0.1}'];
  const listOnly = path.join(dir, 'list.yaml');
  writeFileSync(listOnly, ['allowed_hosts: ["*.corp.test"]', ...base, ''].join('\n'));
  const optIn = path.join(dir, 'optin.yaml');
  writeFileSync(optIn, ['unrestricted: true', ...base, ''].join('\n'));
  const cmds = [`curl -sS -m 10 http://api.corp.test:${P}/a`, `curl -sS -m 10 http://www.public.test:${P}/b`];
  const runs = [
    // [environment, operator file, want api, want public]
    [{ type: 'unrestricted' }, listOnly, 'internal-ok GET /a ', /^airlock egress: www\.public\.test is not allowed by the worker's allowed_hosts/],
    [{ type: 'unrestricted' }, optIn, 'internal-ok GET /a ', /^internal-ok GET \/b $/],
    [{ type: 'limited', allowed_hosts: ['api.corp.test'] }, optIn, 'internal-ok GET /a ', /^airlock egress: www\.public\.test is not allowed by the environment's allowed_hosts/],
  ];
  for (const [networking, file, wantApi, wantPublic] of runs) {
    const r = await runSession(t, { commands: cmds, networking, workerArgs: ['--egress-policy', file] });
    assert.equal(r.out[0], wantApi, `${JSON.stringify(networking)} ${file}\n${r.log}`);
    assert.match(r.out[1], wantPublic, `${JSON.stringify(networking)} ${file}: ${r.out[1]}`);
  }
});

test('secrets: the sandbox holds a placeholder, the proxy puts the value into headers to the credential\'s hosts only', { skip: (!root && 'needs root') || sandboxSkip() }, async (t) => {
  const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'airlock-egsec-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755); // the worker reads origin_ca_file as its own user
  const o = await origins(t, dir);
  const P = o.plainPort;
  const S = o.securePort;
  const SECRET = 'Sx-9f3c2a71e0b4-ledger-token';
  const policy = path.join(dir, 'egress.yaml');
  // the secure origin's certificate is trusted by the worker as an origin CA (its own
  // verification stays on); open.corp.test and bad.corp.test are the same server, whose
  // certificate names secure.corp.test only
  writeFileSync(policy, ['allowed_hosts: ["*.corp.test"]', 'allowed_addresses: [127.0.0.1]',
    'resolve: {api.corp.test: 127.0.0.1, other.corp.test: 127.0.0.1, secure.corp.test: 127.0.0.1, open.corp.test: 127.0.0.1, bad.corp.test: 127.0.0.1, pinned.corp.test: 127.0.0.1}',
    `origin_ca_file: ${path.join(dir, 'o.pem')}`, 'no_terminate: [pinned.corp.test]', ''].join('\n'));
  const rawConnect = (host) => `python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", 3128)); s.sendall(b"CONNECT ${host}:${S} HTTP/1.1\\r\\nHost: ${host}:${S}\\r\\n\\r\\n"); print(s.recv(4096).decode())'`;
  const r = await runSession(t, {
    commands: [
      'echo "$LEDGER_TOKEN"',
      `curl -sS -m 10 -H "Authorization: Bearer $LEDGER_TOKEN" http://api.corp.test:${P}/ledger`,
      `curl -sS -m 10 -H "Authorization: Bearer $LEDGER_TOKEN" http://other.corp.test:${P}/other`,
      // HTTPS to the credential's host: terminated with the worker's CA, which the
      // sandbox trusts through SSL_CERT_FILE / CURL_CA_BUNDLE (no -k)
      `curl -sS -m 10 -v -H "Authorization: Bearer $LEDGER_TOKEN" https://secure.corp.test:${S}/tls 2>&1 | grep -E "issuer:|secure-ok"`,
      `curl -sS -m 10 -H "Authorization: Bearer $LEDGER_TOKEN" -d "$LEDGER_TOKEN" http://api.corp.test:${P}/body`,
      'env | grep -c Sx-9f3c; cat /proc/self/environ | tr "\\0" "\\n" | grep -c Sx-9f3c',
      `curl -sS -m 10 -d "token=$LEDGER_TOKEN" http://other.corp.test:${P}/otherbody`,
      // HTTPS to another host: a tunnel, untouched (the origin's own certificate)
      `curl -sS -m 10 -v -k -H "Authorization: Bearer $LEDGER_TOKEN" https://open.corp.test:${S}/opentls 2>&1 | grep -E "issuer:|secure-ok"`,
      // a credential host whose origin certificate does not verify: 502 with the reason
      rawConnect('bad.corp.test'),
      'echo "$SSL_CERT_FILE $NODE_EXTRA_CA_CERTS"; test -r "$SSL_CERT_FILE" && grep -c "BEGIN CERTIFICATE" "$SSL_CERT_FILE"',
      // a credential host the operator lists in no_terminate (mTLS, pinning): a tunnel
      `curl -sS -m 10 -v -k -H "Authorization: Bearer $LEDGER_TOKEN" https://pinned.corp.test:${S}/pinned 2>&1 | grep -E "issuer:|secure-ok"`,
    ],
    networking: { type: 'limited', allowed_hosts: ['*.corp.test'] },
    workerArgs: ['--egress-policy', policy],
    vaultAuth: { type: 'environment_variable', secret_name: 'LEDGER_TOKEN', secret_value: SECRET,
      networking: { type: 'limited', allowed_hosts: ['api.corp.test', 'secure.corp.test', 'bad.corp.test', 'pinned.corp.test'] },
      injection_location: { header: true, body: true } },
  });
  const ctx = `\n${r.log}`;
  // the credential as the API shows it: no value
  assert.equal(r.credential.auth.secret_value, undefined);
  assert.equal(r.credential.auth.secret_name, 'LEDGER_TOKEN');
  assert.ok(!JSON.stringify(r.credential).includes(SECRET));
  const ph = r.out[0];
  assert.match(ph, /^airlock-secret-[0-9a-f]{32}$/, ctx);
  const at = (url) => o.seen.find((x) => x.url === url);
  // the credential's host over plain HTTP gets the value, in the header only
  assert.equal(at('/ledger').auth, `Bearer ${SECRET}`, ctx);
  assert.equal(at('/body').auth, `Bearer ${SECRET}`);
  // the body too (injection_location.body), held whole and re-framed
  assert.equal(at('/body').body, SECRET);
  assert.equal(at('/otherbody').body, `token=${ph}`);
  // another host (header and body): the placeholder stays
  assert.equal(at('/other').auth, `Bearer ${ph}`);
  // HTTPS to the credential's host: the value, through a leaf of the worker's CA
  assert.equal(at('/tls').auth, `Bearer ${SECRET}`, ctx);
  assert.match(r.out[3], /issuer: CN=airlock egress CA; O=airlock/, r.out[3]);
  assert.match(r.out[3], /secure-ok GET \/tls/, r.out[3]);
  // HTTPS to another host: not terminated (the origin's certificate), the placeholder
  assert.equal(at('/opentls').auth, `Bearer ${ph}`, ctx);
  assert.match(r.out[7], /issuer: CN=secure\.corp\.test/, r.out[7]);
  assert.doesNotMatch(r.out[7], /airlock/);
  // a bad origin certificate: refused before the sandbox is told anything
  assert.match(r.out[8], /^HTTP\/1\.1 502 Bad Gateway/, r.out[8]);
  assert.match(r.out[8], /bad\.corp\.test refused: certificate verification failed: hostname mismatch/, r.out[8]);
  assert.equal(o.seen.filter((x) => x.host && x.host.startsWith('bad.corp.test')).length, 0);
  const bad = r.logs.find((l) => (l.msg ?? l.message) === 'egress' && l.host === 'bad.corp.test');
  assert.equal(bad.decision, 'denied', ctx);
  assert.match(bad.rule, /the origin's TLS \(certificate verification failed/);
  // the bundle the sandbox trusts: the system's CAs and the worker's
  assert.match(r.out[9], /ca-bundle\.pem .*ca-bundle\.pem\n\d+/, r.out[9]);
  // no_terminate: the origin's certificate, the placeholder, and the log says why
  assert.equal(at('/pinned').auth, `Bearer ${ph}`, ctx);
  assert.match(r.out[10], /issuer: CN=secure\.corp\.test/, r.out[10]);
  assert.ok(r.logs.some((l) => /no_terminate/.test(l.msg ?? l.message) && l.host === 'pinned.corp.test'), ctx);
  // the terminated request is its own decision, naming the credential
  const tls = r.logs.find((l) => (l.msg ?? l.message) === 'egress' && l.path === '/tls');
  assert.equal(tls.credentials, r.credential.id, ctx);
  assert.equal(r.out[5], '0\n0', r.out[5]);
  // the value is in no event, no tool result, no worker log line
  assert.ok(!JSON.stringify(r.events).includes(SECRET), 'the secret is in an event');
  assert.ok(!r.log.includes(SECRET), 'the secret is in the worker log');
  assert.ok(!r.srv.log().includes(SECRET), 'the secret is in the server log');
  // the audit trail names the credential, never the value
  const q = await fetch(`${r.srv.baseURL}/v1/audit_events?session_id=${r.session.id}&order=asc&limit=100`,
    { headers: { 'x-api-key': r.srv.apiKey } });
  const recs = (await q.json()).data;
  assert.ok(!JSON.stringify(recs).includes(SECRET));
  const deliver = recs.find((x) => x.action === 'vault.secret.deliver');
  assert.deepEqual(deliver.resources.credential_ids, [r.credential.id]);
  const ledger = recs.find((x) => x.action === 'egress.request' && x.resources.path === '/ledger');
  assert.equal(ledger.resources.credentials, r.credential.id);
  const other = recs.find((x) => x.action === 'egress.request' && x.resources.path === '/other');
  assert.equal(other.resources.credentials, undefined);
  // only the item's sessions token reads the values: an API key is refused
  const wk = await fetch(`${r.srv.baseURL}/v1/environments/x/work/y/egress_secrets`, { headers: { 'x-api-key': r.srv.apiKey } });
  assert.equal(wk.status, 403);
});
