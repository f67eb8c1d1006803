import { createServer } from 'node:net';

/**
 * Ports the Fetch standard refuses ("bad ports"), which a registry may still
 * listen on; tests of reaching them need one of these exact ports, so they
 * take the first that is free on loopback.
 */
const blockedPorts = [10080, 6666, 6667, 6668, 6669, 6665, 6000, 6679, 6697, 4190, 5060, 5061];

/** A free loopback port that `fetch` refuses with "bad port"; undefined when all are taken. */
export async function freeBlockedPort(): Promise<number | undefined> {
  for (const port of blockedPorts) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  return undefined;
}
