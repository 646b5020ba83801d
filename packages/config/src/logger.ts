/**
 * Kiln's logger: pino underneath (fast JSON lines, child loggers, error serialisation, pino-pretty
 * for people), behind the small interface the code has always called — `log.info(msg, fields)`,
 * `log.child(fields)` — so call sites stay as they are and nothing outside this file knows pino.
 *
 * Every line passes through the scrubber (redact.ts) on its way out, so no API key, signature or
 * secret reaches stdout in either format.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import type { Writable } from 'node:stream';
import { pino, stdSerializers, stdTimeFunctions, type Logger as Pino } from 'pino';
import type PinoPretty from 'pino-pretty';
import { createScrubber } from './redact.ts';

export type Level = 'debug' | 'info' | 'warn' | 'error';
/** `auto`: pretty when stdout is a terminal (a person is reading), JSON otherwise (a collector is). */
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  format?: LogFormat;
  /** Where lines go; stdout by default. Tests pass a stream they read back. */
  destination?: Writable;
  /** Literal secret values (from config) masked wherever they appear, beyond the patterns redact.ts knows. */
  secrets?: readonly (string | undefined)[];
}

const require = createRequire(import.meta.url);
/**
 * pino-pretty and its dependencies (a few MB of a process's memory) only for a process that prints
 * for a person: one logging JSON lines to a collector never loads them.
 */
const loadPretty = (): typeof PinoPretty => require('pino-pretty') as typeof PinoPretty;

function wrap(p: Pino): Logger {
  return {
    debug: (msg, fields) => p.debug(fields ?? {}, msg),
    info: (msg, fields) => p.info(fields ?? {}, msg),
    warn: (msg, fields) => p.warn(fields ?? {}, msg),
    error: (msg, fields) => p.error(fields ?? {}, msg),
    child: (fields) => wrap(p.child(fields)),
  };
}

export function createLogger(name: string, level: Level = 'info', opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? 'auto';
  const usePretty = format === 'pretty' || (format === 'auto' && !opts.destination && process.stdout.isTTY === true);
  // Synchronous writes: a line logged just before process.exit (a failed start, a stop) is never lost,
  // and a Kiln line is a few hundred bytes, so the write costs microseconds.
  const destination = usePretty
    ? loadPretty()({
        destination: opts.destination ?? 1,
        sync: true,
        colorize: !opts.destination && process.stdout.isTTY === true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,svc',
        messageFormat: '[{svc}] {msg}',
        singleLine: true,
      })
    : (opts.destination ?? pino.destination({ dest: 1, sync: true }));
  const scrub = createScrubber(opts.secrets);
  const p = pino(
    {
      level,
      base: { pid: process.pid, hostname: os.hostname(), svc: name },
      // Level names, not pino's numbers: the lines are read by people and grepped as often as parsed.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: stdTimeFunctions.isoTime,
      serializers: { err: stdSerializers.err, error: stdSerializers.err, cause: stdSerializers.err },
      hooks: { streamWrite: scrub },
    },
    destination,
  );
  return wrap(p);
}
