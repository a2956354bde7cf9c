// Hand-built HTTP/2 for the rogue tunnel tests (node:http2 cannot misbehave on purpose):
// frame constants and encoders, the tunnel handshake's header block, and H2Peer, the base
// of both rogue peers (a rogue gateway against the real edge, a rogue edge against the real
// gateway): one TLS socket, the handshake text first, then frames collected as they arrive
// and bounded waits on them.

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
export const T = {
  DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8,
  CONTINUATION: 9,
};
export const F = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 };

export function frame(type, flags, sid, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(sid & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

export function u32(v) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

// "Name: value" lines up to the blank line of a tunnel handshake message; null until the
// whole block is there. Returns the first line, the fields and the bytes after it.
export function takeHandshake(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const fields = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(': ');
    fields[l.slice(0, i)] = l.slice(i + 2);
  }
  return { first: lines[0], fields, rest: buf.subarray(end + 4) };
}

// Subclasses set this.phase, feed handshake bytes themselves, call this.takeFrames() once
// in the frame phase, and handle each frame in onFrame(f) (calling this.wake(f) for the
// waiters). `who` names the far side in timeout messages.
export class H2Peer {
  constructor(sock, who) {
    this.sock = sock;
    this.who = who;
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.isClosed = false;
    this.closed = new Promise((resolve) => sock.once('close', () => {
      this.isClosed = true;
      this.onClose();
      for (const w of this.waiters) w(null);
      resolve();
    }));
    sock.on('error', () => {});
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.onData();
    });
  }

  onClose() {}

  // Extra text for a timeout message (a log tail, say).
  context() {
    return '';
  }

  takeFrames() {
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) return;
      const f = {
        type: this.buf[3], flags: this.buf[4], sid: this.buf.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.buf.subarray(9, 9 + len)),
      };
      this.buf = this.buf.subarray(9 + len);
      this.onFrame(f);
    }
  }

  wake(f) {
    for (const w of this.waiters) w(f);
  }

  // The first frame (already received or still to come) that matches; null when the
  // connection closes first. Bounded: a hang fails the test instead of stalling it.
  waitFrame(pred, what, ms = 10000) {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    if (this.isClosed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`timed out waiting for ${what}${this.context()}`));
      }, ms);
      const w = (f) => {
        if (f !== null && !pred(f)) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(f);
      };
      this.waiters.push(w);
    });
  }

  waitClosed(ms = 10000) {
    return Promise.race([this.closed, new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`${this.who} did not close the connection`)), ms).unref())]);
  }
}
