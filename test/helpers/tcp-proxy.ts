import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'blackhole';

/** A TCP proxy on a free loopback port in front of one server, for outages a test turns on and off. */
export interface TcpProxy {
  /** 127.0.0.1 */
  host: string;
  port: number;
  /**
   * `pass` forwards bytes (after `delayMs` each way); `blackhole` accepts
   * connections and swallows bytes, answering nothing, on new and open
   * connections alike: a server that hangs, not one that refuses.
   */
  setMode(mode: ProxyMode): void;
  /** Delay added to every chunk of bytes, in each direction. */
  setDelay(ms: number): void;
  /** Closes every connection, as a server restart would. */
  dropConnections(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number } | { path: string }): Promise<TcpProxy> {
  let mode: ProxyMode = 'pass';
  let delayMs = 0;
  const sockets = new Set<Socket>();
  const forward = (from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (mode === 'blackhole') return;
      if (delayMs === 0) to.write(chunk);
      // Timers of equal duration fire in the order they were set: bytes keep their order.
      else setTimeout(() => to.destroyed || to.write(chunk), delayMs);
    });
    from.on('end', () => setTimeout(() => to.end(), delayMs));
    from.on('error', () => to.destroy());
    from.on('close', () => to.destroy());
  };
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    if (mode === 'blackhole') {
      client.on('error', () => undefined);
      client.resume();
      return;
    }
    const upstream = 'path' in target ? connect(target.path) : connect(target.port, target.host);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    forward(client, upstream);
    forward(upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const dropConnections = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  return {
    host: '127.0.0.1',
    port: address.port,
    setMode(next) {
      mode = next;
    },
    setDelay(ms) {
      delayMs = ms;
    },
    dropConnections,
    async close() {
      dropConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
