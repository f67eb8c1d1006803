import { join } from 'node:path';
import { cloudEventJson } from '../../src/events/cloudevents.ts';
import { eventsOf } from '../../src/events/outbox-bodies.ts';
import { SqliteMetaStore } from '../../src/meta/sqlite/sqlite-meta-store.ts';
import { SqliteOperationsStore } from '../../src/meta/sqlite/sqlite-operations-store.ts';
import { tempDir } from '../helpers/tmp.ts';

/** A real SQLite event queue in a temporary directory. */
export async function openQueue() {
  const root = await tempDir('berth-batching');
  const meta = SqliteMetaStore.open(join(root.path, 'berth.db'));
  const operations = new SqliteOperationsStore(meta.database);
  return {
    operations,
    async close() {
      await operations.close();
      await meta.close();
      await root.remove();
    },
  };
}

export const pulled = (n: number) => cloudEventJson('/berth', 'io.berth.manifest.pulled', `team/app:v${n}`, { repository: 'team/app', reference: `v${n}`, size: n });
export const numbers = (bodies: string[]) => bodies.flatMap(eventsOf).map((body) => (JSON.parse(body) as { data: { size: number } }).data.size);
