import { startTestRegistry, type TestRegistry, type TestSettings } from '../helpers/registry.ts';
import { Forwarder } from './forwarder.ts';

export interface ProxySetup {
  /** The registry being cached. */
  upstream: TestRegistry;
  /** Between the cache and the upstream: counts requests; closing it is an outage. */
  forwarder: Forwarder;
  /** Berth with `up/` as a pull-through cache of the upstream. */
  proxy: TestRegistry;
  close(): Promise<void>;
}

export async function startProxySetup(proxy: Record<string, unknown> = {}, settings: TestSettings = {}): Promise<ProxySetup> {
  const upstream = await startTestRegistry();
  const forwarder = await Forwarder.start(upstream.url);
  const cache = await startTestRegistry({ repositories: [{ prefix: 'up/', kind: 'proxy', upstream: forwarder.url, ...proxy }], ...settings });
  return {
    upstream,
    forwarder,
    proxy: cache,
    async close() {
      await cache.close();
      await forwarder.close().catch(() => undefined);
      await upstream.close();
    },
  };
}
