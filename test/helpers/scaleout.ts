import { postgresMetadataSettings, startTestPostgres } from './postgres.ts';
import { startTestRegistry, type TestRegistry, type TestSettings } from './registry.ts';
import { s3StorageSettings, startTestS3 } from './s3.ts';

/**
 * A Berth on a throwaway PostgreSQL database and an in-process S3 server,
 * blobs under `prefix` (`s3` adds driver options, `settings` anything else).
 * Closing it stops all three.
 */
export async function startScaleOutRegistry(prefix: string, settings: TestSettings = {}, s3: Record<string, unknown> = {}): Promise<TestRegistry> {
  const postgres = await startTestPostgres();
  const store = await startTestS3().catch(async (error: unknown) => {
    await postgres.close();
    throw error;
  });
  const stopStores = async () => {
    await store.close();
    await postgres.close();
  };
  try {
    const registry = await startTestRegistry({
      ...s3StorageSettings(store, prefix, s3),
      ...postgresMetadataSettings(await postgres.createDatabase()),
      ...settings,
    });
    return {
      ...registry,
      async close() {
        await registry.close();
        await stopStores();
      },
    };
  } catch (error) {
    await stopStores();
    throw error;
  }
}
