import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';

export interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

export interface CallOptions {
  headers?: Record<string, string>;
  body?: Buffer | string;
}

/** One HTTP request with fetch, redirects not followed, the whole body read. */
export async function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const response = await fetch(`${base}${path}`, {
    method,
    redirect: 'manual',
    ...(options.headers === undefined ? {} : { headers: options.headers }),
    ...(options.body === undefined ? {} : { body: options.body }),
  });
  const body = Buffer.from(await response.arrayBuffer());
  const text = body.toString('utf8');
  return { status: response.status, headers: response.headers, body, text, json: <T>() => JSON.parse(text) as T };
}

/** Asserts an OCI error response: status, JSON body and the error code. */
export function assertError(reply: Reply, status: number, code: string): void {
  assert.equal(reply.status, status, `expected ${status} ${code}, got ${reply.status}: ${reply.text.slice(0, 300)}`);
  if (reply.text === '') return; // HEAD responses carry no body
  assert.match(reply.headers.get('content-type') ?? '', /^application\/json/);
  const body = reply.json<{ errors: { code: string; message: string }[] }>();
  assert.equal(body.errors[0]?.code, code, reply.text);
  assert.equal(typeof body.errors[0]?.message, 'string');
}

/** A request with the path sent exactly as written (fetch and inject normalise dot segments). */
export async function rawCall(base: string, method: string, path: string): Promise<{ status: number; text: string }> {
  const { request } = await import('node:http');
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: hostname, port, method, path }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** A plain TCP connection to a registry at `host` (HOST:PORT), for bytes no HTTP client would send. */
export function openSocket(host: string): Promise<Socket> {
  const port = Number(host.slice(host.lastIndexOf(':') + 1));
  return new Promise((resolve, reject) => {
    const socket = connect(port, host.slice(0, host.lastIndexOf(':')), () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Everything the server sent until it closed the connection. */
export function untilClosed(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      received += text;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(received));
  });
}

/** The raw response's body is the spec's error JSON with this code. */
export function assertOciBody(received: string, code: string, message: RegExp): void {
  const body = JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4)) as { errors: { code: string; message: string }[] };
  assert.equal(body.errors[0]?.code, code);
  assert.match(body.errors[0]?.message ?? '', message);
}
