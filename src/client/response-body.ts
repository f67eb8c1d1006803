import { readAtMost } from '../io/bounded-read.ts';
import { UpstreamError } from './errors.ts';

/** Reads a response body of at most `limit` bytes as text. */
export async function readLimited(response: Response, limit: number): Promise<string> {
  return (await readLimitedBytes(response, limit)).toString('utf8');
}

/** Reads a response body of at most `limit` bytes, exactly as sent. */
export async function readLimitedBytes(response: Response, limit: number): Promise<Buffer> {
  if (response.body === null) return Buffer.alloc(0);
  return readAtMost(response.body, limit, () => new UpstreamError(`response from ${response.url} is larger than ${limit} bytes`, { temporary: false }));
}
