/**
 * Runs one engine binary (ffmpeg, ffprobe, 7za, …) as a child process.
 *
 * Invariants:
 * - `spawn` with an argument array and no shell, so nothing in a file name is ever interpreted.
 * - The child leads its own process group (`detached: true`), so a timeout or abort kills the whole
 *   group (TERM, then KILL after a grace period) including anything the engine forked.
 * - The promise settles only after the child has exited (or after the KILL grace has run out),
 *   so a caller that sees a rejection can rely on the process being gone.
 * - If this Node process exits (normally or on an unhandled SIGTERM/SIGINT/SIGHUP) while children are
 *   running, their groups are killed: a detached group would otherwise outlive us as orphans.
 * - Every child runs under the resource limits and parent-death signal of `sandbox.ts`, when configured.
 * A non-zero exit code is returned, not thrown: only the caller knows what it means.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { Deadline } from '../engine.ts';
import { CodecError } from '../errors.ts';
import { crossedLimit, sandboxCommand } from './sandbox.ts';

export interface RunProcessOptions {
  /** Wall-clock limit for the process. */
  timeoutMs: number;
  /**
   * Name of the setting that changes `timeoutMs`, quoted in the timeout message. Engines leave it out:
   * they run processes inside their call's deadline (`deadline.wrap`), whose message names the setting.
   */
  timeoutSetting?: string;
  signal?: AbortSignal;
  cwd?: string;
  /** Receives stdout line by line (without the line break). When set, stdout is not collected. */
  onStdoutLine?: (line: string) => void;
  /** stdin is always closed; the option exists so call sites can say so. */
  stdin?: 'ignore';
  /** How much of the end of stderr to keep. Default 8192. */
  maxStderrBytes?: number;
  /** Cap on collected stdout (when `onStdoutLine` is not set). Default 16 MiB; beyond it the run fails. */
  maxStdoutBytes?: number;
  /** Time between SIGTERM and SIGKILL when the group has to be stopped. Default 2000. */
  killGraceMs?: number;
  /** Called once the child is running, with its pid (which is also its process group id). */
  onSpawn?: (pid: number) => void;
}

export interface RunProcessResult {
  /** Exit code; a child killed by a signal it did not ask for reports 128 + the signal number. */
  code: number;
  /** The signal that ended the child, if any. */
  exitSignal: NodeJS.Signals | null;
  /** The last `maxStderrBytes` of stderr, for logs. */
  stderrTail: string;
  /** Collected stdout, unless `onStdoutLine` was given. */
  stdout?: string;
}

const DEFAULT_STDERR_BYTES = 8192;
const DEFAULT_STDOUT_BYTES = 16 * 1024 * 1024;
const DEFAULT_KILL_GRACE_MS = 2000;

/** Process groups of children still running, so they can be killed if this process goes away. */
const liveGroups = new Set<number>();
const EXIT_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
let hooksInstalled = false;

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group is already gone. EPERM cannot happen for our own children.
  }
}

function killAllGroupsNow(): void {
  for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
}

function onExitSignal(sig: NodeJS.Signals): void {
  // Only act when nobody else handles the signal: then Node would die without running 'exit'
  // hooks and leave our detached groups behind. Kill them and re-raise so the default
  // behaviour (terminate with that signal) is unchanged. If the application has its own handler,
  // it owns shutdown (it should abort running work); the 'exit' hook still cleans up at the end.
  if (process.listenerCount(sig) > 1) return;
  killAllGroupsNow();
  uninstallHooks();
  process.kill(process.pid, sig);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllGroupsNow);
  for (const sig of EXIT_SIGNALS) process.on(sig, onExitSignal);
}

function uninstallHooks(): void {
  if (!hooksInstalled) return;
  hooksInstalled = false;
  process.off('exit', killAllGroupsNow);
  for (const sig of EXIT_SIGNALS) process.off(sig, onExitSignal);
}

/** Keeps the last `max` bytes written to it. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  push(chunk: Buffer): void {
    if (this.max <= 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.bytes - (this.chunks[0]?.length ?? 0) >= this.max) {
      this.bytes -= this.chunks.shift()!.length;
    }
  }
  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString('utf8');
  }
}

function timeoutError(name: string, opts: RunProcessOptions): CodecError {
  const seconds = Math.round((opts.timeoutMs / 1000) * 10) / 10;
  const knob = opts.timeoutSetting ? `raise ${opts.timeoutSetting} to allow more` : 'the limit is configurable';
  return new CodecError('timeout', `${name} did not finish within ${seconds} s; ${knob}.`);
}

function exitCodeOf(code: number | null, sig: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = sig ? osConstants.signals[sig] : undefined;
  return 128 + (n ?? 0);
}

/** Where a child's stdout goes: line by line to a callback, or collected up to a cap. */
interface StdoutSink {
  push(chunk: Buffer): void;
  /** At close: delivers a last unterminated line (line mode) or returns what was collected. */
  end(): string | undefined;
}

/** Splits stdout into lines, UTF-8 safe across chunks, without the `\n` (or a `\r` before it). */
function lineSink(onLine: (line: string) => void): StdoutSink {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  const emit = (line: string): void => onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
  return {
    push(chunk) {
      const lines = (pending + decoder.write(chunk)).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) emit(line);
    },
    end() {
      const rest = pending + decoder.end();
      pending = '';
      if (rest.length > 0) emit(rest);
      return undefined;
    },
  };
}

/** Collects stdout; past `max` bytes it calls `onOverflow` once and keeps nothing more. */
function collectSink(max: number, onOverflow: () => void): StdoutSink {
  const chunks: Buffer[] = [];
  let bytes = 0;
  return {
    push(chunk) {
      if (bytes > max) return;
      bytes += chunk.length;
      if (bytes > max) onOverflow();
      else chunks.push(chunk);
    },
    end: () => Buffer.concat(chunks).toString('utf8'),
  };
}

export function runProcess(cmd: string, args: string[], opts: RunProcessOptions): Promise<RunProcessResult> {
  const name = basename(cmd);
  const maxStderr = opts.maxStderrBytes ?? DEFAULT_STDERR_BYTES;
  const maxStdout = opts.maxStdoutBytes ?? DEFAULT_STDOUT_BYTES;
  const grace = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;

  if (opts.signal?.aborted) {
    return Promise.reject(new CodecError('cancelled', `${name} was cancelled before it started.`));
  }

  return new Promise<RunProcessResult>((resolve, reject) => {
    const stderr = new TailBuffer(maxStderr);
    let settled = false;
    /** Why we are stopping the child, once we decide to. */
    let stopReason: CodecError | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let giveUpTimer: NodeJS.Timeout | undefined;

    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      // Under the configured resource limits and parent-death signal (sandbox.ts); `name` stays the engine's.
      const run = sandboxCommand(cmd, args);
      child = spawn(run.cmd, run.args, {
        cwd: opts.cwd,
        detached: true,
        shell: false,
        stdio: ['ignore', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (e) {
      // Invalid arguments (e.g. a NUL byte in a path) throw synchronously.
      reject(new CodecError('engine_failed', `Could not start ${name}: ${(e as Error).message}`, { cause: e }));
      return;
    }
    const pid = child.pid;

    const cleanup = (): void => {
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      clearTimeout(giveUpTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (pid !== undefined) {
        liveGroups.delete(pid);
        if (liveGroups.size === 0) uninstallHooks();
      }
    };

    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      cleanup();
      fn();
    };

    /** Stop the whole group: TERM now, KILL after the grace period; settle when the child is gone. */
    const stop = (reason: CodecError): void => {
      if (stopReason || settled) return;
      stopReason = reason;
      if (pid === undefined) {
        settle(() => reject(reason));
        return;
      }
      killGroup(pid, 'SIGTERM');
      killTimer = setTimeout(() => {
        killGroup(pid, 'SIGKILL');
        // A process stuck in uninterruptible sleep may never be reaped: do not hang the caller forever.
        giveUpTimer = setTimeout(() => settle(() => reject(reason)), grace);
      }, grace);
    };

    const timeoutTimer = setTimeout(() => stop(timeoutError(name, opts)), opts.timeoutMs);

    const onAbort = (): void => {
      stop(new CodecError('cancelled', `${name} was cancelled.`, { cause: opts.signal?.reason }));
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    if (pid !== undefined) {
      liveGroups.add(pid);
      installHooks();
    }

    const { onStdoutLine } = opts;
    const stdout = onStdoutLine
      ? lineSink((line) => {
          if (stopReason) return;
          try {
            onStdoutLine(line);
          } catch (e) {
            stop(new CodecError('engine_failed', `Handling the output of ${name} failed.`, { cause: e }));
          }
        })
      : collectSink(maxStdout, () => stop(new CodecError('engine_failed', `${name} wrote more than ${maxStdout} bytes of output.`)));
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));

    child.on('error', (err: NodeJS.ErrnoException) => {
      // Spawn failures (ENOENT, EACCES) arrive here; a child that did start reports through 'close'.
      if (pid !== undefined) return;
      settle(() =>
        reject(
          new CodecError('engine_failed', `Could not start ${name}: ${err.code ?? err.message}.`, {
            cause: err,
            internal: stderr.toString(),
          }),
        ),
      );
    });

    // The leader is gone and reaped; whatever it left in its group would be an orphan (and may hold
    // our pipes open, delaying 'close'), so it goes too. Normally the group is already empty and
    // this is a no-op ESRCH; the group id cannot have been reused while any member is alive.
    child.on('exit', () => {
      if (pid !== undefined) killGroup(pid, 'SIGKILL');
    });

    child.on('close', (code, sig) => {
      const collected = stdout.end();
      if (stopReason) {
        const reason = stopReason;
        settle(() => reject(reason));
        return;
      }
      const crossed = crossedLimit(sig);
      if (crossed) {
        settle(() =>
          reject(new CodecError('limit_exceeded', `${name} needed ${crossed.what}, the limit set by ${crossed.setting}; raise it to allow more.`, { internal: stderr.toString() })),
        );
        return;
      }
      const result: RunProcessResult = {
        code: exitCodeOf(code, sig),
        exitSignal: sig,
        stderrTail: stderr.toString(),
      };
      if (collected !== undefined) result.stdout = collected;
      settle(() => resolve(result));
    });

    if (pid !== undefined && opts.onSpawn) {
      try {
        opts.onSpawn(pid);
      } catch (e) {
        stop(new CodecError('engine_failed', `Handling the start of ${name} failed.`, { cause: e }));
      }
    }
  });
}

/**
 * runProcess inside a call's deadline: the process gets the time that is left, and when it runs out
 * the error is the call's (naming its setting, plus `advice` when given), not the process's own.
 */
export function runWithin(
  deadline: Deadline,
  cmd: string,
  args: string[],
  opts: Omit<RunProcessOptions, 'timeoutMs' | 'timeoutSetting'> & { advice?: string } = {},
): Promise<RunProcessResult> {
  const { advice, ...rest } = opts;
  return deadline.wrap(async () => runProcess(cmd, args, { ...rest, timeoutMs: deadline.left() }), advice);
}
