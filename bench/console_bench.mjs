// Web console benchmark (bench/run.sh section "console"; issue 16's targets): first page
// load, cold, on loopback, to the sign-in form (target <= 300 ms); a session page with N
// events, signed in, to its newest events shown and the stream live (target <= 1 s at
// 10,000; the page lays out the newest 300, docs/server/console.md);
// a live event to pixels, from before the POST to the element in the page, p95 (target
// <= 100 ms). Headless Debian Chromium through puppeteer-core; `airlock mock-model` plays
// the model (a loop script), so every message makes a short turn.
// Run: AIRLOCK_BIN=build/src/airlock tests/interop/run-node.sh bench/console_bench.mjs [N]
import path from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const here = path.dirname(fileURLToPath(import.meta.url));
const lib = (f) => import(pathToFileURL(path.join(here, '..', 'tests', 'interop', 'lib', f)).href);
const { startServer } = await lib('server.mjs');
const { startMockModel } = await lib('mockmodel.mjs');
const req = createRequire(path.join(here, '..', 'tests', 'interop', 'package.json'));
const puppeteer = (await import(pathToFileURL(req.resolve('puppeteer-core')).href)).default;
const CHROMIUM = process.env.AIRLOCK_CHROMIUM ?? '/usr/bin/chromium';
const N = Number(process.argv[2] ?? 10000);
if (!existsSync(CHROMIUM)) {
  console.log(`console: skipped, no Chromium at ${CHROMIUM}`);
  process.exit(0);
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => `${x.toFixed(1)} ms`;

const mock = await startMockModel({ turns: [{ content: [{ type: 'text', text: 'ok' }] }], loop: true });
const server = await startServer({ env: { AIRLOCK_MODEL_API_KEY: 'k', AIRLOCK_MODEL_BASE_URL: mock.url } });
const H = { 'x-api-key': server.apiKey, 'content-type': 'application/json' };
const call = async (method, p, body) => {
  const r = await fetch(`${server.baseURL}/v1${p}`, { method, headers: H, body: body && JSON.stringify(body) });
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
  return r.json();
};
const agent = await call('POST', '/agents', { name: 'bench', model: 'claude-test-model' });
const env = await call('POST', '/environments', { name: 'bench', config: { type: 'self_hosted' } });
const newSession = () => call('POST', '/sessions', { agent: agent.id, environment_id: env.id });
const idle = async (sid) => {
  for (;;) {
    const s = await call('GET', `/sessions/${sid}`);
    if (s.status === 'idle') return;
    await new Promise((r) => setTimeout(r, 10));
  }
};
const say = (sid, texts) =>
  call('POST', `/sessions/${sid}/events`, { events: texts.map((text) => ({ type: 'user.message', content: [{ type: 'text', text }] })) });

const browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
try {
  // 1. cold first load: a fresh browser context each time (no cache, no cookie)
  const cold = [];
  for (let i = 0; i < 15; i++) {
    const ctx = await browser.createBrowserContext();
    const page = await ctx.newPage();
    const t0 = performance.now();
    await page.goto(`${server.baseURL}/console/`);
    await page.waitForSelector('#signin #key');
    cold.push(performance.now() - t0);
    await ctx.close();
  }
  console.log(`first load to the sign-in form, cold: p50 ${ms(pct(cold, 50))}, p95 ${ms(pct(cold, 95))} (target <= 300 ms)`);

  // 2. a session with N events, opened by a signed-in page
  const big = await newSession();
  const t0 = performance.now();
  const batch = async (k) => {
    await say(big.id, Array.from({ length: 100 }, (_, i) => `message ${k}.${i}`));
    await idle(big.id);
  };
  const countEvents = async () => {
    let total = 0;
    for (let page = null; ; ) {
      const r = await call('GET', `/sessions/${big.id}/events?limit=1000${page ? `&page=${page}` : ''}`);
      total += r.data.length;
      if (!r.next_page) return total;
      page = r.next_page;
    }
  };
  await batch(0);
  const perBatch = await countEvents(); // 100 messages and one turn's events
  for (let k = 1; k < Math.ceil(N / perBatch); k++) await batch(k);
  const total = await countEvents();
  console.log(`(made ${total} events in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  await page.goto(`${server.baseURL}/console/`);
  await page.type('#key', server.apiKey);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('table.list');
  const open = [];
  const whole = [];
  for (let i = 0; i < 3; i++) {
    await page.goto('about:blank');
    const t1 = performance.now();
    await page.goto(`${server.baseURL}/console/#/sessions/${big.id}`);
    await page.waitForSelector('#stream-state[data-state="live"]', { timeout: 120000 });
    open.push(performance.now() - t1);
    // the older events are read after the page is live ("Show earlier" enabled then)
    await page.waitForFunction(() => !document.querySelector('#earlier')?.disabled, { timeout: 120000 });
    whole.push(performance.now() - t1);
  }
  const shown = await page.$$eval('li[data-event-id]', (ns) => ns.length);
  console.log(`session page with ${total} events (${shown} shown) to live: p50 ${ms(pct(open, 50))} (target <= 1 s at 10,000); all of its history read: p50 ${ms(pct(whole, 50))}`);

  // 3. live event to pixels, on a small session
  const small = await newSession();
  await page.goto(`${server.baseURL}/console/#/sessions/${small.id}`);
  await page.waitForSelector('#stream-state[data-state="live"]');
  await page.evaluate(() => {
    window.__seen = {};
    new MutationObserver((muts) => {
      for (const m of muts)
        for (const n of m.addedNodes)
          if (n.dataset?.eventType === 'user.message')
            window.__seen[n.querySelector('.text').textContent] = performance.timeOrigin + performance.now();
    }).observe(document.getElementById('events'), { childList: true });
  });
  const lat = [];
  for (let i = 0; i < 40; i++) {
    const text = `ping ${i}`;
    const sent = performance.timeOrigin + performance.now();
    await say(small.id, [text]);
    await page.waitForFunction((t) => t in window.__seen, {}, text);
    const at = await page.evaluate((t) => window.__seen[t], text);
    lat.push(at - sent);
    await idle(small.id);
  }
  console.log(`live event to the page: p50 ${ms(pct(lat, 50))}, p95 ${ms(pct(lat, 95))} (target p95 <= 100 ms)`);
} finally {
  await browser.close();
  await server.stop();
  await mock.stop();
}
