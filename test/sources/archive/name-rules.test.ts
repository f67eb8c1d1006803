import assert from 'node:assert/strict';
import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { archiveStem, DirectoryListings, namesReaching } from '../../../src/sources/archive/name-rules.ts';
import { tempDir } from '../../helpers/tmp.ts';

describe('archive name rules', () => {
  test('archive files are recognized by extension; hidden files never', () => {
    const cases: [string, string | undefined][] = [
      ['app.oci', 'app'],
      ['app:1.0.oci', 'app:1.0'],
      ['app.tar', 'app'],
      ['app.oci.gz', 'app'],
      ['app.tar.gz', 'app'],
      ['app.tgz', 'app'],
      ['app.zip', undefined],
      ['.app.oci', undefined],
      ['.oci', undefined],
    ];
    for (const [file, stem] of cases) assert.equal(archiveStem(file), stem, file);
  });

  test('the names reaching an archive are the inverse of the five rules', () => {
    const cases: [string, string[]][] = [
      ['app.oci', ['app']], // rule 5
      ['app:1.0.oci', ['app']], // rules 3-4
      ['team/app.oci', ['team', 'team/app']], // rule 2 for team, rule 5 for team/app
      ['team/app/1.0.oci', ['team/app', 'team/app/1.0']], // rules 1-2, and rule 5
      ['team/app:1.0.tar', ['team', 'team/app']], // rule 2, rules 3-4
      ['notes.txt', []],
    ];
    for (const [path, names] of cases) assert.deepEqual(namesReaching(path), names, path);
  });

  test('directory listings are reused while the directory is unchanged, and listed again once it changes', async () => {
    const dir = await tempDir('berth-listings');
    try {
      const listings = new DirectoryListings();
      const stems = async () => (await listings.list(dir.path)).map((file) => file.stem).sort();
      await writeFile(join(dir.path, 'a.oci'), '');
      await utimes(dir.path, 1_000_000, 1_000_000);
      assert.deepEqual(await stems(), ['a']);
      // The same directory timestamp: the cached listing stands (what a settled directory saves).
      await writeFile(join(dir.path, 'b.oci'), '');
      await utimes(dir.path, 1_000_000, 1_000_000);
      assert.deepEqual(await stems(), ['a']);
      // Any real change moves the timestamp.
      await utimes(dir.path, 1_000_001, 1_000_001);
      assert.deepEqual(await stems(), ['a', 'b']);
      await writeFile(join(dir.path, 'c.tar'), '');
      assert.deepEqual(await stems(), ['a', 'b', 'c'], 'a directory changed just now is listed every time');
      assert.deepEqual(await listings.list(join(dir.path, 'missing')), []);
    } finally {
      await dir.remove();
    }
  });
});
