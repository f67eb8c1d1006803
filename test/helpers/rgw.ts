import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './nginx.ts';
import { startTestS3, type TestS3 } from './s3.ts';
import { tempDir } from './tmp.ts';
import { missingCommands, run } from './tools.ts';

/** A real S3 implementation: Ceph's RADOS Gateway on a throwaway one-OSD cluster. */
export interface TestRgw extends TestS3 {
  /** Stops the gateway alone (the cluster keeps its data), as an object store outage. */
  stopGateway(): Promise<void>;
  /** Starts the gateway again on the same port; resolves once it answers. */
  startGateway(): Promise<void>;
  /** Milliseconds from the first command to a gateway answering with the bucket made. */
  startupMs: number;
}

/** Why RGW tests cannot run here (Debian packages radosgw ceph-mon ceph-osd ceph-common), or false. */
export function rgwMissing(): string | false {
  return missingCommands('radosgw', 'ceph-mon', 'ceph-osd', 'ceph', 'radosgw-admin', 'ceph-authtool', 'monmaptool');
}

/**
 * A single-node Ceph cluster in a temp directory, as its own processes on
 * loopback: one monitor, one OSD keeping objects in memory (memstore), no
 * manager, cephx with keys generated here (radosgw refuses to start
 * without authentication), and radosgw on a free port with one user and
 * one empty bucket. Pools hold one copy. About 12 s to start; start it once
 * per test file. `close` kills everything and deletes the directory.
 */
export async function startTestRgw(bucket = 'berth-test'): Promise<TestRgw> {
  const started = Date.now();
  const dir = await tempDir('berth-rgw');
  const d = dir.path;
  const children: ChildProcess[] = [];
  let gateway: ChildProcess | undefined;
  const conf = join(d, 'ceph.conf');
  const ceph = (args: string[]) => run('ceph', ['-c', conf, ...args]);
  const daemon = (command: string, args: string[]): ChildProcess => {
    const child = spawn(command, ['-c', conf, ...args, '-f'], { stdio: ['ignore', 'ignore', 'ignore'] });
    children.push(child);
    child.once('exit', () => children.splice(children.indexOf(child), 1));
    child.once('error', () => undefined);
    return child;
  };
  const killAll = async () => {
    await Promise.all(
      [...children].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }),
    );
  };
  try {
    const [monPort, rgwPort] = [await freePort(), await freePort()];
    const fsid = randomUUID();
    await Promise.all(['run', 'log', 'mon/ceph-a', 'osd/ceph-0'].map((sub) => mkdir(join(d, sub), { recursive: true })));
    await writeFile(conf, cephConf({ dir: d, fsid, monPort, rgwPort }));
    await run('ceph-authtool', ['--create-keyring', join(d, 'mon.a.keyring'), '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
    await run('ceph-authtool', [
      '--create-keyring',
      join(d, 'client.admin.keyring'),
      '--gen-key',
      '-n',
      'client.admin',
      '--cap',
      'mon',
      'allow *',
      '--cap',
      'osd',
      'allow *',
      '--cap',
      'mgr',
      'allow *',
    ]);
    await run('ceph-authtool', [join(d, 'mon.a.keyring'), '--import-keyring', join(d, 'client.admin.keyring')]);
    await run('monmaptool', ['--create', '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, '--fsid', fsid, join(d, 'monmap')]);
    await run('ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', join(d, 'monmap'), '--keyring', join(d, 'mon.a.keyring')]);
    daemon('ceph-mon', ['-i', 'a']);
    const osdUuid = randomUUID();
    await ceph(['osd', 'new', osdUuid]);
    await ceph(['auth', 'get-or-create', 'osd.0', 'mon', 'allow profile osd', 'osd', 'allow *', 'mgr', 'allow profile osd', '-o', join(d, 'osd.0.keyring')]);
    await run('ceph-osd', ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
    daemon('ceph-osd', ['-i', '0']);
    await ceph(['auth', 'get-or-create', 'client.rgw.a', 'mon', 'allow rw', 'osd', 'allow rwx', '-o', join(d, 'client.rgw.a.keyring')]);
    const startGateway = async () => {
      gateway = daemon('radosgw', ['-n', 'client.rgw.a']);
      await waitForHttp(`http://127.0.0.1:${rgwPort}/`, gateway, d);
    };
    await startGateway();
    const credentials = { accessKeyId: randomBytes(10).toString('hex').toUpperCase(), secretAccessKey: randomBytes(20).toString('hex') };
    await run('radosgw-admin', [
      '-c',
      conf,
      'user',
      'create',
      '--uid=berth',
      '--display-name=berth',
      `--access-key=${credentials.accessKeyId}`,
      `--secret=${credentials.secretAccessKey}`,
    ]);
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { ...credentials } });
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    } finally {
      client.destroy();
    }
    return {
      endpoint,
      bucket,
      region: 'us-east-1',
      credentials,
      startupMs: Date.now() - started,
      async stopGateway() {
        const current = gateway;
        if (current === undefined || current.exitCode !== null || current.signalCode !== null) return;
        const exited = once(current, 'exit');
        current.kill('SIGKILL');
        await exited;
      },
      startGateway,
      async close() {
        await killAll();
        await dir.remove();
      },
    };
  } catch (error) {
    await killAll();
    const logs = await Promise.all(['ceph-mon.a', 'ceph-osd.0', 'client.rgw.a'].map((name) => tail(join(d, 'log', `${name}.log`))));
    await dir.remove();
    throw new Error(`could not start a test Ceph RADOS Gateway: ${(error as Error).message}\n${logs.join('\n')}`, { cause: error });
  }
}

function cephConf(options: { dir: string; fsid: string; monPort: number; rgwPort: number }): string {
  const { dir, fsid, monPort, rgwPort } = options;
  return `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
public addr = 127.0.0.1
# Otherwise the OSD binds every interface.
cluster addr = 127.0.0.1
ms bind ipv6 = false
# radosgw does not start without authentication.
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = ${dir}/$name.keyring
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
mon data = ${dir}/mon/$cluster-$id
osd data = ${dir}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = 2147483648
# One OSD: one copy, placed on it, few placement groups (no manager to scale them).
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# A busy test disk must not turn the monitor read-only.
mon data avail warn = 1
mon data avail crit = 0

[client.rgw.a]
# Without tcp_nodelay each keep-alive request waits about 40 ms (Nagle + delayed ACK).
rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
rgw data = ${dir}/rgw
`;
}

async function waitForHttp(url: string, child: ChildProcess, dir: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`radosgw exited (${child.exitCode ?? child.signalCode}):\n${await tail(join(dir, 'log', 'client.rgw.a.log'))}`);
    }
    const answered = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
      () => true,
      () => false,
    );
    if (answered) return;
    if (Date.now() > deadline) throw new Error(`radosgw did not answer on ${url} within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function tail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return `--- ${file}\n${text.split('\n').slice(-30).join('\n')}`;
}

/** `BERTH_TEST_S3=s3rver` runs the tests that take either store on the in-process s3rver: faster, less faithful. */
const useS3rver = process.env['BERTH_TEST_S3'] === 's3rver';

/** Why the object store of end-to-end tests cannot start here, or false. */
export function objectStoreMissing(): string | false {
  return useS3rver ? false : rgwMissing();
}

/** The object store of end-to-end tests: Ceph RGW, or s3rver when asked for. */
export async function startTestObjectStore(bucket?: string): Promise<TestS3> {
  return useS3rver ? startTestS3(bucket) : startTestRgw(bucket);
}
