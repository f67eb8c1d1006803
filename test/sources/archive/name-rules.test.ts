import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { archiveStem, namesReaching } from '../../../src/sources/archive/name-rules.ts';

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
});
