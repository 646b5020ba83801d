/**
 * Test peers for @kiln/outbound: real HTTP(S) servers on loopback that record every connection, a fake
 * DNS table, and a spy around the real socket opener. The spy refuses — without opening anything — any
 * address outside 127.0.0.0/8 and ::1, so even a broken guard cannot make these tests contact another
 * machine; `route` lets a test stand a loopback server in for a public address.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createOutbound, type Connector, type Outbound, type OutboundSettings, type Resolver } from '../src/index.ts';

export interface TestServer {
  port: number;
  /** http://127.0.0.1:port (or https://…) */
  origin: string;
  /** Every request seen, in order. */
  requests: http.IncomingMessage[];
  /** Every TCP connection accepted, with the address it reached on our side. */
  sockets: net.Socket[];
  /** True once every accepted connection has been closed. */
  allClosed(): boolean;
  close(): Promise<void>;
}

export async function serve(handler: http.RequestListener, opts: { host?: string; port?: number; tls?: { key: string; cert: string } } = {}): Promise<TestServer> {
  const host = opts.host ?? '127.0.0.1';
  const requests: http.IncomingMessage[] = [];
  const sockets: net.Socket[] = [];
  const closed = new Set<net.Socket>();
  const onRequest: http.RequestListener = (req, res) => {
    requests.push(req);
    handler(req, res);
  };
  const server = opts.tls ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, onRequest) : http.createServer(onRequest);
  server.on(opts.tls ? 'secureConnection' : 'connection', (s: net.Socket) => {
    sockets.push(s);
    s.once('close', () => closed.add(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const hostInUrl = net.isIPv6(host) ? `[${host}]` : host;
  return {
    port,
    origin: `${opts.tls ? 'https' : 'http'}://${hostInUrl}:${port}`,
    requests,
    sockets,
    allClosed: () => sockets.every((s) => closed.has(s)),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const isLoopback = (ip: string) => (net.isIPv4(ip) && ip.startsWith('127.')) || ip === '::1';

export interface Spy {
  /** The address each socket was asked for, in order (what the guard decided to connect to). */
  calls: string[];
  wrap: (real: Connector) => Connector;
}

export function connectSpy(route: Record<string, string> = {}): Spy {
  const calls: string[] = [];
  return {
    calls,
    wrap: (real) => (opts, callback) => {
      calls.push(opts.hostname);
      const to = route[opts.hostname] ?? opts.hostname;
      if (!isLoopback(to)) return callback(new Error(`test guard: refusing to open a socket to ${to}`), null);
      real({ ...opts, hostname: to }, callback);
    },
  };
}

/** A DNS table: a name maps to its answers, or to a function giving the answer of each successive lookup. */
export type DnsTable = Record<string, string[] | ((n: number) => string[])>;

export function fakeDns(table: DnsTable): { resolve: Resolver; lookups: string[] } {
  const lookups: string[] = [];
  return {
    lookups,
    resolve: async (name) => {
      const n = lookups.filter((l) => l === name).length;
      lookups.push(name);
      const entry = table[name.toLowerCase().replace(/\.$/, '')];
      if (!entry) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
      const answers = typeof entry === 'function' ? entry(n) : entry;
      return answers.map((address) => ({ address, family: net.isIPv6(address) ? 6 : 4 }));
    },
  };
}

export const testSettings = (over: Partial<OutboundSettings> = {}): OutboundSettings => ({
  allowedHosts: [],
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 20_000,
  timeoutMs: 30_000,
  maxRedirects: 5,
  ...over,
});

/** Builds clients that are all closed by `closeAll()` (afterAll). */
export function clients() {
  const made: Outbound[] = [];
  return {
    make(settings: Partial<OutboundSettings>, dns: DnsTable = {}, opts: { route?: Record<string, string>; ca?: string; resolve?: Resolver | 'system' } = {}) {
      const spy = connectSpy(opts.route);
      const resolver = fakeDns(dns);
      const resolve = opts.resolve === 'system' ? undefined : (opts.resolve ?? resolver.resolve);
      const o = createOutbound(testSettings(settings), { resolve, wrapConnector: spy.wrap, tls: opts.ca ? { ca: opts.ca } : undefined });
      made.push(o);
      return { o, calls: spy.calls, lookups: resolver.lookups };
    },
    closeAll: () => Promise.all(made.map((o) => o.close())),
  };
}

/** A throwaway CA-less self-signed certificate for `names` (openssl, which the machines have). */
export function selfSignedCert(names: string[]): { key: string; cert: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-outbound-tls-'));
  try {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        `/CN=${names[0]}`,
        '-addext',
        `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
      ],
      { stdio: 'ignore' },
    );
    return { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function readAll(body: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
