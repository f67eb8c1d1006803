import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { digestOf } from '../../src/oci/digest.ts';
import type { RegistryError } from '../../src/errors/registry-error.ts';

/** A store opened for one test, with whatever must be cleaned up after it. */
export interface OpenedStore<Store> {
  store: Store;
  close(): Promise<void>;
}

export type OpenStore<Store> = () => Promise<OpenedStore<Store>>;

/** A readable of `bytes`, in chunks of at most `chunkSize`. */
export function streamOf(bytes: Buffer, chunkSize = 64 * 1024): Readable {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkSize) chunks.push(bytes.subarray(offset, offset + chunkSize));
  return Readable.from(chunks);
}

/** A readable that yields `bytes`, then fails: a client that went away mid-chunk. */
export function failingStreamOf(bytes: Buffer, message = 'client went away'): Readable {
  return Readable.from(
    (async function* () {
      yield bytes;
      throw new Error(message);
    })(),
  );
}

/** Compares bytes without printing them all when they differ. */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, message = 'bytes differ'): void {
  if (Buffer.from(actual).equals(Buffer.from(expected))) return;
  assert.fail(`${message}: got ${actual.byteLength} bytes (${digestOf(actual)}), expected ${expected.byteLength} (${digestOf(expected)})`);
}

export async function readAll(stream: Readable): Promise<Buffer> {
  return Buffer.concat((await stream.toArray()) as Buffer[]);
}

/** For assert.rejects: matches a RegistryError with this OCI code. */
export function registryError(code: RegistryError['code']): (error: unknown) => boolean {
  return (error) => {
    if (typeof error === 'object' && error !== null && 'code' in error && error.code === code) return true;
    throw new Error(`expected RegistryError ${code}, got ${String(error)}`, { cause: error });
  };
}
