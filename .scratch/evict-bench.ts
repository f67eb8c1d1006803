import { startProxySetup } from '../test/proxy/setup.ts';
import { pushImage, randomImage } from '../test/helpers/images.ts';

const count = Number(process.argv[2] ?? 300);
const setup = await startProxySetup({ tagTtl: '1h', maxBytes: `${Math.round((count / 2) * 3 * 4.2)}KiB` }, { 'proxyCache.evictionInterval': 0 });
try {
  const images = Array.from({ length: count }, () => randomImage({ layers: 2, layerSize: 4096 }));
  for (let index = 0; index < count; index++) await pushImage(setup.upstream.url, `bench/app${index}`, 'v1', images[index]!);
  const budgets = setup.proxy.server.registry.proxyCaches!.budgets!;
  // Keep the automatic check out of the way: one explicit pass measured at the end.
  const started = performance.now();
  for (let index = 0; index < count; index++) {
    const response = await fetch(`${setup.proxy.url}/v2/up/bench/app${index}/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    await response.arrayBuffer();
    for (const blob of [images[index]!.config, ...images[index]!.layers]) await (await fetch(`${setup.proxy.url}/v2/up/bench/app${index}/blobs/${blob.digest}`)).arrayBuffer();
  }
  const filled = performance.now() - started;
  const t0 = performance.now();
  const reports = await budgets.enforce();
  const pass = performance.now() - t0;
  const usage = await budgets.usage();
  console.log(JSON.stringify({ count, fillMs: Math.round(filled), enforceMs: Math.round(pass), reports, usage }));
} finally {
  await setup.close();
}
