/**
 * A real webhook receiver on 127.0.0.1: records every request (raw body and headers) and answers as
 * the test says. It can be taken down (the port refuses connections) and brought back on the same port.
 */
import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** What the receiver answered (undefined: it never answered). */
  answered?: number;
}

/** How to answer one request: a status, or `hang` (never answer). */
export type Answer = number | 'hang';

export class WebhookReceiver {
  readonly received: Received[] = [];
  answer: (r: Received) => Answer = () => 200;
  /** Files served to GET requests (a URL source for a job), by path; not recorded as deliveries. */
  readonly files = new Map<string, Buffer>();
  port = 0;
  private server: http.Server | undefined;
  private readonly hanging = new Set<http.ServerResponse>();

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const file = req.method === 'GET' ? this.files.get(req.url ?? '') : undefined;
      if (file) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': file.length }).end(file);
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const r: Received = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
        this.received.push(r);
        const a = this.answer(r);
        if (a === 'hang') {
          this.hanging.add(res);
          return;
        }
        r.answered = a;
        res.writeHead(a, { 'content-type': 'text/plain' }).end(a < 300 ? 'ok' : `no (${a})`);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening: connections are refused until start() again (same port). */
  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  /** `localhost`: URL_IMPORT_ALLOWED_HOSTS lists the name, never the address 127.0.0.1. */
  url(path: string): string {
    return `http://localhost:${this.port}${path}`;
  }

  on(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }
}
