// Shared helpers for interop tests that watch a session: a live event collector that
// waits for a predicate (and says what it saw when it gives up), the full history, and a
// free loopback port.
import net from 'node:net';

export const types = (evs) => evs.map((e) => e.type);

export function collect(stream) {
  const events = [];
  let waiters = [];
  let ended = null;
  (async () => {
    try {
      for await (const ev of stream) {
        events.push(ev);
        waiters = waiters.filter((w) => !w.check());
      }
      ended = new Error('stream ended');
    } catch (e) {
      ended = e;
    }
    for (const w of waiters) w.check();
  })();
  return {
    events,
    // A wrong turn leaves the session waiting forever: fail with what was seen instead.
    waitFor(pred, from = 0, what = 'event', ms = 60000) {
      return new Promise((resolve, reject) => {
        let timer = null;
        const w = {
          check() {
            const i = events.findIndex((e, k) => k >= from && pred(e));
            if (i >= 0) {
              clearTimeout(timer);
              resolve(events[i]);
              return true;
            }
            if (ended) {
              clearTimeout(timer);
              reject(new Error(`${what} never came (${ended.message}); saw ${types(events).join(', ')}`));
              return true;
            }
            return false;
          },
        };
        if (w.check()) return;
        waiters.push(w);
        timer = setTimeout(() => {
          waiters = waiters.filter((x) => x !== w);
          reject(new Error(`${what} did not come in ${ms} ms; saw ${types(events).join(', ')}`));
        }, ms);
      });
    },
    close() {
      stream.controller.abort();
    },
  };
}

export async function allEvents(client, sid) {
  const out = [];
  for await (const ev of client.beta.sessions.events.list(sid)) out.push(ev);
  return out;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
