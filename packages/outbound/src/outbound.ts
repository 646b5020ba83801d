/**
 * The outbound client: undici (Node's own fetch engine) with one custom connector. Every connection
 * undici opens goes through `guardedConnect`, which resolves the host itself, refuses the connection if
 * any resolved address is not allowed, and hands undici's real connector the checked IP literal — so the
 * socket goes to exactly the address that was checked and nothing resolves the name a second time.
 * Redirects are followed here (never by undici), each hop parsed and checked again from scratch.
 */
import dns from 'node:dns';
import net from 'node:net';
import { Readable } from 'node:stream';
import type { Agent, Dispatcher, buildConnector } from 'undici';
import { AllowList, classifyAddress, describeRefusal } from './address-policy.ts';
import { OutboundError, isOutboundError, urlNotAllowed, viaRedirect } from './errors.ts';
import { describeUrl, parseTarget } from './url-policy.ts';

export interface OutboundSettings {
  /** Hostnames (`files.intranet`, `*.intranet`), IPs and CIDRs whose addresses are allowed even if private. */
  allowedHosts: readonly string[];
  /** Resolving the name plus opening the TCP/TLS connection, per address tried. */
  connectTimeoutMs: number;
  /** Longest wait for the response headers, and between two chunks of the body (a stalled peer). */
  idleTimeoutMs: number;
  /** The whole exchange, redirects and body included (override per call for webhooks). */
  timeoutMs: number;
  /** Redirects followed by `fetchToStream`; one more fails `limit_exceeded`. */
  maxRedirects: number;
  userAgent?: string;
}

/** The settings' names, so every timeout or limit message can say which knob changes it. */
export const SETTING_NAMES = {
  connectTimeoutMs: 'URL_IMPORT_CONNECT_TIMEOUT_SECONDS',
  idleTimeoutMs: 'URL_IMPORT_IDLE_TIMEOUT_SECONDS',
  timeoutMs: 'URL_IMPORT_TIMEOUT_SECONDS',
  maxRedirects: 'URL_IMPORT_MAX_REDIRECTS',
} as const;

/** The config fields (packages/config's `urlImport` fragment) the settings come from. */
export interface UrlImportConfig {
  URL_IMPORT_ALLOWED_HOSTS: readonly string[];
  URL_IMPORT_CONNECT_TIMEOUT_SECONDS: number;
  URL_IMPORT_IDLE_TIMEOUT_SECONDS: number;
  URL_IMPORT_TIMEOUT_SECONDS: number;
  URL_IMPORT_MAX_REDIRECTS: number;
}

export function outboundSettings(cfg: UrlImportConfig): OutboundSettings {
  return {
    allowedHosts: cfg.URL_IMPORT_ALLOWED_HOSTS,
    connectTimeoutMs: cfg.URL_IMPORT_CONNECT_TIMEOUT_SECONDS * 1000,
    idleTimeoutMs: cfg.URL_IMPORT_IDLE_TIMEOUT_SECONDS * 1000,
    timeoutMs: cfg.URL_IMPORT_TIMEOUT_SECONDS * 1000,
    maxRedirects: cfg.URL_IMPORT_MAX_REDIRECTS,
  };
}

export interface ResolvedAddress {
  address: string;
  family: number;
}
/** Every address a name resolves to (like `dns.lookup(name, {all: true})`). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;
export type Connector = buildConnector.connector;

/** Seams for tests and embedders; production passes none. */
export interface OutboundDeps {
  /** DNS; default `dns.promises.lookup(name, {all: true, order: 'verbatim'})` (honours /etc/hosts). */
  resolve?: Resolver;
  /** Wraps the real socket opener, which is called with the checked IP as `hostname` (tests spy on it). */
  wrapConnector?: (real: Connector) => Connector;
  /** Extra TLS options for the real connector (a test CA). */
  tls?: { ca?: string | Buffer | (string | Buffer)[] };
}

export interface CheckedUrl {
  /** The URL as WHATWG normalised it (`HTTP://0x7f.1/` → `http://127.0.0.1/`). */
  url: URL;
  /** The addresses it resolves to now, all checked (a later fetch resolves and checks again). */
  addresses: string[];
}

export interface FetchOptions {
  /** Largest body accepted; a longer one is cut and fails `limit_exceeded`. */
  maxBytes: number;
  /** The setting that `maxBytes` comes from, named in the limit message (default MAX_UPLOAD_BYTES). */
  maxBytesSetting?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  signal?: AbortSignal;
  timeoutMs?: number;
  timeoutSetting?: string;
}

export interface FetchResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The response body, bounded by maxBytes and the idle/total timeouts; errors with an OutboundError. */
  body: Readable;
  /** The URL that answered, after redirects. */
  finalUrl: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  signal?: AbortSignal;
  /** Bytes of the response body kept as `preview` (default 4096); the rest is not read. */
  previewBytes?: number;
  timeoutMs?: number;
  timeoutSetting?: string;
  /** Follow redirects (up to maxRedirects)? Default false: webhooks record a 3xx as the answer. */
  followRedirects?: boolean;
}

export interface RequestResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The start of the response body as UTF-8, at most previewBytes bytes. */
  preview: string;
  finalUrl: string;
}

export interface Outbound {
  /** Parse + resolve + address check, without connecting (the gateway's check at submission). */
  checkUrl(url: string | URL): Promise<CheckedUrl>;
  /** A streamed GET (URL sources): non-2xx fails `fetch_failed` with the status in the message. */
  fetchToStream(url: string | URL, opts: FetchOptions): Promise<FetchResult>;
  /** A small request (webhooks): any status is returned, with a capped preview of the answer. */
  request(url: string | URL, opts?: RequestOptions): Promise<RequestResult>;
  /** Closes pooled connections (at shutdown). */
  close(): Promise<void>;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Headers that must not follow a redirect to another origin (as the Fetch standard does). */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

const defaultResolve: Resolver = (hostname) => dns.promises.lookup(hostname, { all: true, order: 'verbatim' });

export function createOutbound(settings: OutboundSettings, deps: OutboundDeps = {}): Outbound {
  const allow = new AllowList(settings.allowedHosts);
  const resolve = deps.resolve ?? defaultResolve;
  const secs = (ms: number) => `${Math.round(ms / 100) / 10} s`;

  /** Resolves (unless a literal) and checks every address: one refused address refuses the name. */
  async function resolveChecked(hostname: string): Promise<string[]> {
    const literal = net.isIP(hostname) !== 0;
    const addresses = literal ? [hostname] : (await lookupBounded(hostname)).map((a) => a.address);
    if (addresses.length === 0) throw new OutboundError('fetch_failed', `Could not resolve ${hostname}: no addresses.`);
    if (allow.hasHost(hostname)) return addresses;
    for (const ip of addresses) {
      const verdict = classifyAddress(ip);
      if (verdict.allowed || allow.hasAddress(ip)) continue;
      const reason = literal ? `${ip} is ${verdict.what}${verdict.embeds ? ` (${verdict.embeds})` : ''}` : `${hostname} resolves to ${describeRefusal(ip, verdict)}`;
      throw urlNotAllowed(reason, { address: true });
    }
    return addresses;
  }

  async function lookupBounded(hostname: string): Promise<ResolvedAddress[]> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new OutboundError('timeout', `Resolving ${hostname} took longer than ${secs(settings.connectTimeoutMs)}; raise ${SETTING_NAMES.connectTimeoutMs} to wait longer.`, {
              setting: SETTING_NAMES.connectTimeoutMs,
            }),
          ),
        settings.connectTimeoutMs,
      );
    });
    try {
      return await Promise.race([resolve(hostname), deadline]);
    } catch (e) {
      if (isOutboundError(e)) throw e;
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new OutboundError('fetch_failed', `Could not resolve ${hostname} (${code}).`, { retryable: code !== 'ENOTFOUND', cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  /** undici's own connector (set with the agent, below), behind the test's wrapper when there is one. */
  let connector: Connector;

  /**
   * undici calls this for every new connection, with the URL's host. `host` (name:port) is passed on
   * untouched, so TLS still sends SNI for and verifies the certificate against the name, not the IP.
   * Addresses are tried in resolver order; one failing to connect falls over to the next.
   */
  const guardedConnect: Connector = (opts, callback) => {
    resolveChecked(opts.hostname).then(
      (addresses) => {
        let i = 0;
        const next = (lastErr?: Error): void => {
          const address = addresses[i++];
          if (address === undefined) {
            callback(lastErr ?? new Error('no address to connect to'), null);
            return;
          }
          connector({ ...opts, hostname: address }, (err, socket) => {
            if (err) next(err);
            else callback(null, socket!);
          });
        };
        next();
      },
      (err: Error) => callback(err, null),
    );
  };

  /**
   * undici is imported with the first request, not with this module: the gateway builds an Outbound
   * only to check URLs at submission (checkUrl connects nowhere), and undici is 8–13 MB of memory it
   * would otherwise hold for nothing (docs/performance.md, "Gateway memory").
   */
  let agent: Agent | undefined;
  let agentLoading: Promise<Agent> | undefined;
  const agentOf = (): Promise<Agent> =>
    (agentLoading ??= import('undici').then((undici) => {
      const realConnector = undici.buildConnector({ timeout: settings.connectTimeoutMs, ...deps.tls });
      connector = deps.wrapConnector ? deps.wrapConnector(realConnector) : realConnector;
      agent = new undici.Agent({ connect: guardedConnect, headersTimeout: settings.idleTimeoutMs, bodyTimeout: settings.idleTimeoutMs });
      return agent;
    }));

  interface Exchange {
    res: Dispatcher.ResponseData;
    finalUrl: URL;
    /** Maps an error thrown while reading the body (timers, aborts) to an OutboundError. */
    mapError(e: unknown): unknown;
    /** Stops the total timer (the body is done with). */
    done(): void;
  }

  /** One request with its redirects, under one total timer that keeps running until `done()`. */
  async function exchange(
    input: string | URL,
    o: { method: string; headers: Record<string, string>; body?: string | Buffer; signal?: AbortSignal; timeoutMs?: number; timeoutSetting?: string; followRedirects: boolean },
  ): Promise<Exchange> {
    let url = parseTarget(input);
    const timeoutMs = o.timeoutMs ?? settings.timeoutMs;
    const timeoutSetting = o.timeoutSetting ?? SETTING_NAMES.timeoutMs;
    const timeoutError = () =>
      new OutboundError('timeout', `${describeUrl(url)} took longer than ${secs(timeoutMs)} in all; raise ${timeoutSetting} to wait longer.`, { setting: timeoutSetting });
    const ours = new AbortController();
    const timer = setTimeout(() => ours.abort(timeoutError()), timeoutMs);
    const signal = o.signal ? AbortSignal.any([ours.signal, o.signal]) : ours.signal;
    const done = () => clearTimeout(timer);
    const mapError = (e: unknown): unknown => {
      if (o.signal?.aborted) return o.signal.reason; // the caller's own abort (a cancelled job) stays theirs
      if (ours.signal.aborted) return ours.signal.reason;
      return toOutboundError(e, url);
    };

    let method = o.method.toUpperCase();
    let body = o.body;
    const headers: Record<string, string> = { 'user-agent': settings.userAgent ?? 'Kiln-URL-Import/1.0', 'accept-encoding': 'identity' };
    for (const [k, v] of Object.entries(o.headers)) headers[k.toLowerCase()] = v;
    try {
      for (let hop = 0; ; hop++) {
        let res: Dispatcher.ResponseData;
        try {
          res = await (await agentOf()).request({ origin: url.origin, path: url.pathname + url.search, method, headers, body, signal });
        } catch (e) {
          const mapped = mapError(e);
          throw hop > 0 && isOutboundError(mapped) && mapped.kind === 'url_not_allowed' ? viaRedirect(mapped, describeUrl(url)) : mapped;
        }
        const location = first(res.headers.location);
        if (!o.followRedirects || !REDIRECTS.has(res.statusCode) || !location) return { res, finalUrl: url, mapError, done };
        // The redirect's own body is of no use; read a little so the connection can be reused, then go on.
        await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
        if (hop >= settings.maxRedirects) {
          throw new OutboundError(
            'limit_exceeded',
            `${describeUrl(url)} redirected more than ${settings.maxRedirects} times; raise ${SETTING_NAMES.maxRedirects} to follow more.`,
            { setting: SETTING_NAMES.maxRedirects },
          );
        }
        let next: URL;
        try {
          next = parseTarget(new URL(location, url));
        } catch (e) {
          throw isOutboundError(e) ? viaRedirect(e, redirectTarget(location, url)) : e;
        }
        if (res.statusCode === 303 || ((res.statusCode === 301 || res.statusCode === 302) && method === 'POST')) {
          if (method !== 'HEAD') method = 'GET';
          body = undefined;
          for (const k of Object.keys(headers)) if (k.startsWith('content-')) delete headers[k];
        }
        if (next.origin !== url.origin) for (const k of CREDENTIAL_HEADERS) delete headers[k];
        url = next;
      }
    } catch (e) {
      done();
      throw e;
    }
  }

  function toOutboundError(e: unknown, url: URL): unknown {
    if (isOutboundError(e)) return e;
    const code = (e as { code?: string }).code ?? '';
    const where = describeUrl(url);
    switch (code) {
      case 'UND_ERR_CONNECT_TIMEOUT':
        return new OutboundError('timeout', `Could not connect to ${url.host} within ${secs(settings.connectTimeoutMs)}; raise ${SETTING_NAMES.connectTimeoutMs} to wait longer.`, {
          setting: SETTING_NAMES.connectTimeoutMs,
          cause: e,
        });
      case 'UND_ERR_HEADERS_TIMEOUT':
        return new OutboundError('timeout', `${where} sent no response within ${secs(settings.idleTimeoutMs)}; raise ${SETTING_NAMES.idleTimeoutMs} to wait longer.`, {
          setting: SETTING_NAMES.idleTimeoutMs,
          cause: e,
        });
      case 'UND_ERR_BODY_TIMEOUT':
        return new OutboundError('timeout', `${where} stopped sending its body for ${secs(settings.idleTimeoutMs)}; raise ${SETTING_NAMES.idleTimeoutMs} to wait longer.`, {
          setting: SETTING_NAMES.idleTimeoutMs,
          cause: e,
        });
      default: {
        const tls = code.startsWith('ERR_TLS') || /CERT|SSL/.test(code);
        const detail = code || (e instanceof Error ? e.message : String(e));
        return new OutboundError('fetch_failed', tls ? `The TLS certificate of ${url.host} was refused (${detail}).` : `Could not fetch ${where} (${detail}).`, {
          retryable: !tls,
          cause: e,
        });
      }
    }
  }

  function httpFailure(method: string, url: URL, status: number): OutboundError {
    const retryable = status === 408 || status === 429 || status >= 500;
    return new OutboundError('fetch_failed', `${method} ${describeUrl(url)} answered HTTP ${status}, not a success (2xx).`, { status, retryable });
  }

  return {
    async checkUrl(input) {
      const url = parseTarget(input);
      const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
      return { url, addresses: await resolveChecked(host) };
    },

    async fetchToStream(input, opts) {
      const method = (opts.method ?? 'GET').toUpperCase();
      const ex = await exchange(input, {
        method,
        headers: opts.headers ?? {},
        body: opts.body,
        signal: opts.signal,
        timeoutMs: opts.timeoutMs,
        timeoutSetting: opts.timeoutSetting,
        followRedirects: true,
      });
      const { res, finalUrl } = ex;
      const limitError = (size: string) =>
        new OutboundError(
          'limit_exceeded',
          `${describeUrl(finalUrl)} is ${size}, over the limit of ${opts.maxBytes} bytes; raise ${opts.maxBytesSetting ?? 'MAX_UPLOAD_BYTES'} to allow it.`,
          { setting: opts.maxBytesSetting ?? 'MAX_UPLOAD_BYTES' },
        );
      const abandon = (err: OutboundError) => {
        discard(res.body);
        ex.done();
        return err;
      };
      if (res.statusCode < 200 || res.statusCode > 299) throw abandon(httpFailure(method, finalUrl, res.statusCode));
      const declared = Number(first(res.headers['content-length']));
      if (Number.isFinite(declared) && declared > opts.maxBytes) throw abandon(limitError(`${declared} bytes`));

      let finished = false;
      async function* bounded() {
        let seen = 0;
        try {
          for await (const chunk of res.body as AsyncIterable<Buffer>) {
            seen += chunk.length;
            if (seen > opts.maxBytes) throw limitError(`more than ${opts.maxBytes} bytes`);
            yield chunk;
          }
          finished = true;
        } catch (e) {
          throw ex.mapError(e);
        }
      }
      const body = Readable.from(bounded(), { objectMode: false });
      // However the body ends — read to the end, failed, or dropped by the caller before reading —
      // the timer stops and an unfinished response is destroyed, which closes its socket.
      body.once('close', () => {
        ex.done();
        if (!finished) discard(res.body);
      });
      return { status: res.statusCode, headers: res.headers, body, finalUrl: finalUrl.href };
    },

    async request(input, opts = {}) {
      const ex = await exchange(input, {
        method: opts.method ?? 'POST',
        headers: opts.headers ?? {},
        body: opts.body,
        signal: opts.signal,
        timeoutMs: opts.timeoutMs,
        timeoutSetting: opts.timeoutSetting,
        followRedirects: opts.followRedirects ?? false,
      });
      const cap = opts.previewBytes ?? 4096;
      const chunks: Buffer[] = [];
      let kept = 0;
      try {
        // The status is the answer; a body that breaks or stalls after it only shortens the preview.
        for await (const chunk of ex.res.body as AsyncIterable<Buffer>) {
          chunks.push(chunk.subarray(0, cap - kept));
          kept += Math.min(chunk.length, cap - kept);
          if (kept >= cap) break;
        }
      } catch {
        /* see above */
      } finally {
        discard(ex.res.body);
        ex.done();
      }
      return { status: ex.res.statusCode, headers: ex.res.headers, preview: Buffer.concat(chunks).toString('utf8'), finalUrl: ex.finalUrl.href };
    },

    async close() {
      await agentLoading?.catch(() => undefined);
      if (agent && !agent.closed && !agent.destroyed) await agent.close();
    },
  };
}

/**
 * Destroys an unfinished response body, which makes undici close its socket (the connection cannot be
 * reused mid-body). undici reports the abort as an 'error' nobody is listening for any more: swallow it.
 */
function discard(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A refused redirect target as messages show it, even when it does not parse as http(s). */
function redirectTarget(location: string, base: URL): string {
  try {
    const u = new URL(location, base);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return JSON.stringify(location.slice(0, 100));
  }
}
