import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** nginx as a child of the test; `stop` ends it (SIGTERM, then SIGKILL) and waits for it. */
export interface NginxProcess {
  process: ChildProcess;
  /** What it wrote to stderr (and stdout lines that were not JSON), for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

function track(child: ChildProcess): NginxProcess {
  const lines: string[] = [];
  child.stderr?.setEncoding('utf8').on('data', (text: string) => lines.push(text));
  return {
    process: child,
    output: () => lines.join(''),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A loopback port that was free a moment ago (for programs that cannot bind port 0 and report it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/**
 * nginx in the foreground with its own config, pid and logs under `dir`,
 * balancing round robin over `upstreams` (HOST:PORT), streaming request
 * and response bodies (no buffering), as in docs/deployment.md.
 */
export async function startNginx(dir: string, upstreams: readonly string[]): Promise<NginxProcess & { url: string }> {
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const config = `
${asRoot ? 'user root root;' : ''}
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream berth {
${upstreams.map((upstream) => `    server ${upstream};`).join('\n')}
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location / {
      proxy_pass http://berth;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 900s;
      proxy_send_timeout 900s;
    }
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), config);
  const child = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const handle = track(child);
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}:\n${handle.output()}`);
    const ready = await fetch(`${url}/v2/`).then(
      () => true,
      () => false,
    );
    if (ready) break;
    if (attempt > 100) {
      await handle.stop();
      throw new Error(`nginx did not answer:\n${handle.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { ...handle, url };
}
