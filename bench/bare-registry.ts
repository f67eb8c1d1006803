// A bare node:http server answering fixed responses: the reference a
// registry written for Node is measured against on the per-request path
// (no framework, no access control, no log, no lookup but one Map). Started
// by bench/hotpath.ts as `node bench/bare-registry.ts PORT RESPONSES.json`,
// where the file maps "METHOD URL" to the status, headers and body (base64)
// Berth itself answered, so both send the same bytes with the same headers.
// An optional third argument makes it spin that many microseconds per
// request before answering: a server with that much work of its own, to
// show what any work per request costs against the bare server.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

interface Canned {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const [port, file, workMicros = '0'] = process.argv.slice(2) as [string, string, string?];
const workMs = Number(workMicros) / 1000;
const canned = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Canned>;
const responses = new Map(Object.entries(canned).map(([key, value]) => [key, { ...value, bytes: Buffer.from(value.body, 'base64') }]));
const prefix = Math.random().toString(16).slice(2, 12);
let next = 0;

createServer((request, response) => {
  if (request.url === '/v2/') {
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    return;
  }
  if (workMs > 0) {
    const until = performance.now() + workMs;
    while (performance.now() < until) {}
  }
  const found = responses.get(`${request.method} ${request.url}`);
  if (found === undefined) {
    response.writeHead(404).end();
    return;
  }
  // A request id per response, as Berth sends.
  response.writeHead(found.status, { ...found.headers, 'x-request-id': `${prefix}${(next++).toString(16).padStart(6, '0')}` });
  response.end(request.method === 'HEAD' ? undefined : found.bytes);
}).listen(Number(port), '127.0.0.1');
