import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WatchedFile } from '../../src/auth/watched-file.ts';
import { tempDir } from '../helpers/tmp.ts';

/** Parses "number\n" files; anything else is an error. */
async function parseNumber(path: string): Promise<number> {
  const text = (await readFile(path, 'utf8')).trim();
  if (!/^\d+$/.test(text)) throw new Error(`${path}: not a number`);
  return Number(text);
}

describe('WatchedFile', () => {
  let temp: { path: string; remove(): Promise<void> };
  before(async () => {
    temp = await tempDir('berth-watched');
  });
  after(() => temp.remove());

  /** A file holding `initial`, watched with a clock the test advances. */
  async function watched(name: string, initial: string) {
    const path = join(temp.path, name);
    await writeFile(path, initial);
    const clock = { now: 1_000_000 };
    const errors: unknown[] = [];
    const file = await WatchedFile.open(path, parseNumber, { checkInterval: 1000, clock: () => clock.now, onError: (error) => errors.push(error) });
    return { path, clock, errors, file };
  }

  it('looks at the file again only once the interval has passed on its clock', async () => {
    const { path, clock, file } = await watched('interval', '1\n');
    await writeFile(path, '22\n');
    clock.now += 999;
    assert.equal(await file.current(), 1, 'within the interval: not looked at');
    clock.now += 1;
    assert.equal(await file.current(), 22);
  });

  it('reloads at once when asked, whatever the clock says', async () => {
    const { path, file } = await watched('reload', '1\n');
    await writeFile(path, '333\n');
    await file.reload();
    assert.equal(await file.current(), 333);
  });

  it('keeps the previous value when a changed file does not parse or disappears, and reports why', async () => {
    const { path, errors, file } = await watched('broken', '7\n');
    await writeFile(path, 'seven\n');
    await file.reload();
    assert.equal(await file.current(), 7);
    assert.match(String(errors[0]), /not a number/);
    await rm(path);
    await file.reload();
    assert.equal(await file.current(), 7);
    assert.equal((errors[1] as NodeJS.ErrnoException).code, 'ENOENT');
    await writeFile(path, '8\n');
    await file.reload();
    assert.equal(await file.current(), 8, 'a fixed file is taken again');
  });
});
