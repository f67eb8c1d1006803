import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exitCodes } from '../../src/cli/main.ts';
import { runBerth } from '../helpers/process.ts';
import { tempDir } from '../helpers/tmp.ts';

// docs/cli.md: exit 2 is a usage error, and a bad option value is one, whichever command it is given to.
describe('a bad option value is a usage error (exit 2) that names the option', () => {
  let temp: { path: string; remove(): Promise<void> };
  before(async () => {
    temp = await tempDir('berth-option-values');
    await writeFile(join(temp.path, 'droplet.tgz'), 'not really a droplet');
  });
  after(async () => {
    await temp?.remove();
  });

  const cases: [string, (dir: string) => string[], RegExp][] = [
    ['user add --cost 3', (dir) => ['user', 'add', 'x', '--password-stdin', '--cost', '3', '--htpasswd', `${dir}/htpasswd`], /--cost.*a whole number from 4 to 15/],
    ['user add --cost abc', (dir) => ['user', 'add', 'x', '--password-stdin', '--cost', 'abc', '--htpasswd', `${dir}/htpasswd`], /--cost.*a whole number from 4 to 15/],
    ['user add --cost 16', (dir) => ['user', 'add', 'x', '--password-stdin', '--cost', '16', '--htpasswd', `${dir}/htpasswd`], /--cost/],
    ['serve --workers abc', (dir) => ['serve', '--workers', 'abc', '--data', dir], /--workers/],
    ['serve --tls other', (dir) => ['serve', '--tls', 'other', '--data', dir], /--tls/],
    ['serve --listen abc', (dir) => ['serve', '--listen', 'abc', '--data', dir], /--listen.*expected HOST:PORT/],
    ['copy -j abc', (dir) => ['copy', '-j', 'abc', `oci:${dir}/a`, `oci:${dir}/b`], /--jobs/],
    ['copy --platform linux', (dir) => ['copy', '--platform', 'linux', `oci:${dir}/a`, `oci:${dir}/b`], /--platform.*OS\/ARCH/],
    ['copy --dest-compress lz4', (dir) => ['copy', '--dest-compress', 'lz4', `oci:${dir}/a`, `oci:${dir}/b`], /--dest-compress/],
    ['copy --chunk-size lots', (dir) => ['copy', '--chunk-size', 'lots', `oci:${dir}/a`, `oci:${dir}/b`], /--chunk-size/],
    ['copy --progress loud', (dir) => ['copy', '--progress', 'loud', `oci:${dir}/a`, `oci:${dir}/b`], /--progress/],
    ['copy --s3-endpoint notaurl', (dir) => ['copy', '--s3-endpoint', 'notaurl', 's3://bucket-name/p:1', `oci:${dir}/b`], /--s3-endpoint.*not an http/],
    ['copy --s3-region ""', (dir) => ['copy', '--s3-region', '', 's3://bucket-name/p:1', `oci:${dir}/b`], /--s3-region/],
    ['sync --tags "("', (dir) => ['sync', '--tags', '(', `oci:${dir}/a`, `oci:${dir}/b`], /--tags/],
    ['sync --platform linux', (dir) => ['sync', '--platform', 'linux', `oci:${dir}/a`, `oci:${dir}/b`], /--platform/],
    ['droplet push --app "BAD NAME"', (dir) => ['droplet', 'push', `${dir}/droplet.tgz`, '--app', 'BAD NAME', '--guid', 'g'], /--app.*invalid repository name/],
    ['droplet push --guid "bad guid!"', (dir) => ['droplet', 'push', `${dir}/droplet.tgz`, '--app', 'cf/app', '--guid', 'bad guid!'], /--guid.*invalid tag/],
    ['droplet push --registry notaurl', (dir) => ['droplet', 'push', `${dir}/droplet.tgz`, '--app', 'cf/app', '--guid', 'g', '--registry', 'notaurl'], /--registry.*not a URL/],
    [
      'droplet push --username without --password-stdin',
      (dir) => ['droplet', 'push', `${dir}/droplet.tgz`, '--app', 'cf/app', '--guid', 'g', '--username', 'u'],
      /--username and --password-stdin go together/,
    ],
  ];
  for (const [what, args, message] of cases) {
    test(`berth ${what}`, async () => {
      const result = await runBerth(args(temp.path), 'a-password\n');
      assert.equal(result.code, exitCodes.usage, result.stderr + result.stdout);
      assert.match(result.stderr, message);
    });
  }
});
