import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readTarEntries, TarFormatError, type TarEntry } from '../../../src/archives/tar-entries.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { missingCommands, run } from '../../helpers/tools.ts';

async function entriesOf(path: string): Promise<Map<string, TarEntry>> {
  const handle = await open(path, 'r');
  try {
    return await readTarEntries(handle, (await handle.stat()).size);
  } finally {
    await handle.close();
  }
}

async function bytesAt(path: string, entry: TarEntry | undefined): Promise<Buffer> {
  assert.ok(entry !== undefined, 'entry present');
  return (await readFile(path)).subarray(entry.offset, entry.offset + entry.size);
}

// 120 characters: over ustar's 100-byte name field, so prefix / pax / GNU long names are needed.
const longDirectory = `${'d'.repeat(60)}/${'e'.repeat(59)}`;
const files: Record<string, Buffer> = {
  'small.txt': Buffer.from('hello\n'),
  empty: Buffer.alloc(0),
  'big.bin': randomBytes(3 * 1024 * 1024 + 17),
  [`${longDirectory}/fits-ustar-prefix.bin`]: randomBytes(1000),
};
const tooLongForUstar = `${'n'.repeat(180)}.bin`;

describe('tar entries: offsets of every file, whatever the header format', { skip: missingCommands('tar') }, () => {
  let dir: { path: string; remove(): Promise<void> };
  let tree: string;
  before(async () => {
    dir = await tempDir('berth-tar');
    tree = join(dir.path, 'tree');
    for (const [name, bytes] of Object.entries(files)) {
      await mkdir(join(tree, name, '..'), { recursive: true });
      await writeFile(join(tree, name), bytes);
    }
    await symlink('small.txt', join(tree, 'symlinked'));
    await link(join(tree, 'big.bin'), join(tree, 'hardlinked'));
  });
  after(() => dir.remove());

  for (const format of ['gnu', 'pax', 'ustar', 'oldgnu'] as const) {
    test(`GNU tar --format=${format}`, async () => {
      const longName = format !== 'ustar';
      if (longName) await writeFile(join(tree, tooLongForUstar), Buffer.from('long name'));
      const archive = join(dir.path, `${format}.tar`);
      await run('tar', ['-C', tree, `--format=${format}`, '-cf', archive, '.']);
      const entries = await entriesOf(archive);
      for (const [name, bytes] of Object.entries(files)) assert.deepEqual(await bytesAt(archive, entries.get(name)), bytes, name);
      if (longName) assert.deepEqual(await bytesAt(archive, entries.get(tooLongForUstar)), Buffer.from('long name'));
      assert.deepEqual(await bytesAt(archive, entries.get('symlinked')), files['small.txt'], 'symlink resolved');
      assert.deepEqual(await bytesAt(archive, entries.get('hardlinked')), files['big.bin'], 'hard link resolved');
      assert.ok(![...entries.keys()].some((name) => name.startsWith('./') || name === '' || name.endsWith('/')), 'paths normalized');
      await run('rm', ['-f', join(tree, tooLongForUstar)]);
    });
  }

  test('a tar cut inside an entry, or before its end-of-archive marker, is a TarFormatError', async () => {
    const archive = join(dir.path, 'cut.tar');
    await run('tar', ['-C', tree, '-cf', archive, 'small.txt', 'big.bin']);
    const entries = await entriesOf(archive);
    const big = entries.get('big.bin');
    assert.ok(big !== undefined);
    await truncate(archive, big.offset + Math.ceil(big.size / 512) * 512);
    await assert.rejects(entriesOf(archive), TarFormatError, 'no end-of-archive marker');
    await truncate(archive, big.offset + 1000);
    await assert.rejects(entriesOf(archive), /claims \d+ bytes but the archive ends/);
  });

  test('a damaged header fails its checksum', async () => {
    const archive = join(dir.path, 'damaged.tar');
    await run('tar', ['-C', tree, '-cf', archive, 'small.txt']);
    const bytes = await readFile(archive);
    bytes[10] = (bytes[10] ?? 0) ^ 0xff;
    await writeFile(archive, bytes);
    await assert.rejects(entriesOf(archive), /checksum/);
  });

  test('base-256 sizes (GNU, for files of 8 GiB and more) are read', async () => {
    const archive = join(dir.path, 'base256.tar');
    await run('tar', ['-C', tree, '--format=gnu', '-cf', archive, 'small.txt']);
    const bytes = await readFile(archive);
    const size = files['small.txt']?.length ?? 0;
    bytes.fill(0, 124, 136);
    bytes[124] = 0x80;
    bytes.writeUInt32BE(size, 132);
    bytes.fill(0x20, 148, 156);
    let sum = 0;
    for (let index = 0; index < 512; index++) sum += bytes[index] ?? 0;
    bytes.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await writeFile(archive, bytes);
    assert.deepEqual(await bytesAt(archive, (await entriesOf(archive)).get('small.txt')), files['small.txt']);
  });

  test('a file that is not a tar is refused', async () => {
    const path = join(dir.path, 'random.bin');
    await writeFile(path, randomBytes(4096));
    await assert.rejects(entriesOf(path), TarFormatError);
    assert.equal((await stat(path)).size, 4096);
  });
});
