// Helpers for bench/tunnel_bench.sh, in two roles (two processes, so neither needs more
// than ~10,000 file descriptors):
//   node tunnel_bench.mjs upstream PORT_FILE
//     the upstream behind the gateway (and the direct / ssh -R baselines): keep-alive HTTP
//     on loopback. GET ?bulk=N → N bytes (content-length); GET ?hold → an SSE stream that
//     stays open; anything else → the request body echoed as application/json.
//   node tunnel_bench.mjs idle URL KEY N GW_PID SRV_PID
//     opens N SSE streams through the tunnel (one TCP connection each, as N MCP clients
//     would), prints the RSS of gateway and server before and with them, and exits.
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';

const [role, ...args] = process.argv.slice(2);

if (role === 'upstream') {
  const chunk = Buffer.alloc(1 << 20, 'x');
  const held = [];
  const up = http.createServer((req, res) => {
    const q = req.url.slice(req.url.indexOf('?') + 1);
    if (q.startsWith('bulk=')) {
      let left = Number(q.slice(5));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left });
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    if (q === 'hold') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      held.push(res);
      res.on('close', () => held.splice(held.indexOf(res), 1));
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const b = Buffer.concat(chunks);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length });
      res.end(b);
    });
  });
  up.keepAliveTimeout = 60000;
  up.maxConnections = 20000;
  up.listen(0, '127.0.0.1', () => writeFileSync(args[0], `${up.address().port}\n`));
} else if (role === 'idle') {
  const [url, key, n, gwPid, srvPid] = args;
  const rss = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
  const idle = Number(n);
  const g0 = rss(gwPid);
  const s0 = rss(srvPid);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const reqs = [];
  let opened = 0;
  // Opened in waves of 500 so the listen backlogs never overflow.
  for (let i = 0; i < idle; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, idle - i) }, () => new Promise((resolve, reject) => {
      const req = http.request(url, { method: 'GET', agent, headers: { 'x-api-key': key } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        res.once('data', () => { opened++; resolve(); });
      });
      req.on('error', reject);
      req.end();
      reqs.push(req);
    })));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const g1 = rss(gwPid);
  const s1 = rss(srvPid);
  const per = (a, b) => ((b - a) * 1024 / idle).toFixed(1);
  console.log(`idle SSE streams through one gateway: ${opened}`);
  console.log(`  gateway RSS ${g0.toFixed(1)} -> ${g1.toFixed(1)} MiB: ${per(g0, g1)} KiB/stream (target <= 16: ${(per(g0, g1) / 16).toFixed(2)}x of it)`);
  console.log(`  server  RSS ${s0.toFixed(1)} -> ${s1.toFixed(1)} MiB: ${per(s0, s1)} KiB/stream (target <= 16: ${(per(s0, s1) / 16).toFixed(2)}x of it)`);
  for (const r of reqs) r.destroy();
  process.exit(0);
} else {
  console.error('usage: tunnel_bench.mjs upstream PORT_FILE | idle URL KEY N GW_PID SRV_PID');
  process.exit(2);
}
