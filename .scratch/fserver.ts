import { createServer } from 'node:http';
import fastify from 'fastify';
import { pino } from 'pino';
const mode = process.argv[2];
const body = Buffer.from('x'.repeat(250));
const headers = { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': 'sha256:' + 'a'.repeat(64), 'docker-distribution-api-version': 'registry/2.0' };
if (mode === 'bare') {
  createServer((req, res) => { res.writeHead(200, { ...headers, 'content-length': body.length }); res.end(body); }).listen(Number(process.argv[3]));
} else {
  const logger = mode.includes('log') ? pino(pino.destination({ dest: '/dev/null', sync: true })) : undefined;
  const opts: any = { ...(logger ? { loggerInstance: logger } : {}) };
  if (mode.includes('lazy')) {
    opts.childLoggerFactory = (parent: any, bindings: any) => {
      let child: any;
      const real = () => (child ??= parent.child(bindings));
      return { info: (...a: any[]) => real().info(...a), error: (...a: any[]) => real().error(...a), warn: (...a: any[]) => real().warn(...a), debug: (...a: any[]) => real().debug(...a), trace: () => {}, fatal: (...a: any[]) => real().fatal(...a), child: (b: any) => real().child(b), level: parent.level };
    };
  }
  opts.disableRequestLogging = true;
  const app = fastify(opts);
  app.get('/v2/*', (req, reply) => {
    reply.headers(headers);
    if (mode.includes('log')) { if (mode.includes('direct')) logger!.info({ reqId: req.id, method: req.method, path: req.url, status: 200, bytes: 250, durationMs: 0.1, client: req.ip, userAgent: req.headers['user-agent'] }, 'request'); else req.log.info({ method: req.method, path: req.url, status: 200, bytes: 250, durationMs: 0.1, client: req.ip, userAgent: req.headers['user-agent'] }, 'request'); }
    return reply.send(body);
  });
  await app.listen({ port: Number(process.argv[3]), host: '127.0.0.1' });
}
