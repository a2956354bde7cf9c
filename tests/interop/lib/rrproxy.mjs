// A round-robin TCP proxy in front of several servers, as a load balancer would sit in
// front of airlock replicas (issue 13's "three replicas behind a simple round-robin").
// Each new connection goes to the next backend; a backend that refuses the connection
// (a replica killed) is skipped for that connection, so clients that reconnect reach a
// live one. Bytes are piped both ways untouched. Loopback only.
import net from 'node:net';

// backends: [{port}] on 127.0.0.1. Resolves to {port, url, close()}.
export async function startRoundRobin(backends) {
  let next = 0;
  const sockets = new Set();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    const attempt = (tries) => {
      if (tries >= backends.length) {
        client.destroy();
        return;
      }
      const b = backends[next++ % backends.length];
      const up = net.connect({ host: '127.0.0.1', port: b.port });
      let connected = false;
      up.once('connect', () => {
        connected = true;
        sockets.add(up);
        up.on('close', () => sockets.delete(up));
        client.pipe(up);
        up.pipe(client);
        client.resume();
        up.on('error', () => client.destroy());
        client.on('error', () => up.destroy());
        up.on('close', () => client.destroy());
        client.on('close', () => up.destroy());
      });
      up.once('error', () => {
        if (!connected) attempt(tries + 1); // refused: try the next backend
      });
    };
    attempt(0);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
