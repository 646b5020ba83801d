/**
 * Codec tier: the child-process runner (with plain sh / sleep / node children) and binary resolution.
 */
import { spawn } from 'node:child_process';
import { chmod, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveSevenZip } from '../src/archive/sevenzip-bin.ts';
import { ensureExecutable, readFirstLine } from '../src/process/executable.ts';
import { runProcess } from '../src/process/run.ts';
import { isAlive, makeTempDir, waitFor } from './helpers/media-fixtures.ts';
import { rejection } from './helpers/rejection.ts';

/** `sh` that starts a grandchild `sleep`, prints its pid and waits: the group must die as a whole. */
const SH_WITH_GRANDCHILD = ['-c', 'sleep 30 & echo $!; wait'];

describe('runProcess', () => {
  test('returns the exit code, stdout and stderr without throwing on a non-zero exit', async () => {
    const r = await runProcess('sh', ['-c', 'echo out; echo err >&2; exit 3'], { timeoutMs: 5000 });
    expect(r).toEqual({ code: 3, exitSignal: null, stdout: 'out\n', stderrTail: 'err\n' });
  });

  test('passes arguments verbatim, with no shell in between', async () => {
    const r = await runProcess('printf', ['%s|', '$HOME', '; rm -rf /', '`id`'], { timeoutMs: 5000 });
    expect(r.stdout).toBe('$HOME|; rm -rf /|`id`|');
  });

  test('keeps only the last maxStderrBytes of stderr', async () => {
    const script = "head -c 100000 /dev/zero | tr '\\0' a >&2; printf END >&2";
    const r = await runProcess('sh', ['-c', script], { timeoutMs: 5000 });
    expect(r.stderrTail).toHaveLength(8192);
    expect(r.stderrTail.endsWith('aaaEND')).toBe(true);
    const small = await runProcess('sh', ['-c', script], { timeoutMs: 5000, maxStderrBytes: 100 });
    expect(small.stderrTail).toBe(`${'a'.repeat(97)}END`);
  });

  test('delivers stdout line by line, including a last line without a newline', async () => {
    const lines: string[] = [];
    const r = await runProcess('printf', ['a\\nb\\r\\n\\nc'], { timeoutMs: 5000, onStdoutLine: (l) => lines.push(l) });
    expect(lines).toEqual(['a', 'b', '', 'c']);
    expect(r.stdout).toBeUndefined();
  });

  test('a timeout kills the whole process group and names the setting', async () => {
    let leader = 0;
    let grandchild = 0;
    const started = Date.now();
    const e = await rejection(
      runProcess('sh', SH_WITH_GRANDCHILD, {
        timeoutMs: 300,
        timeoutSetting: 'ARCHIVE_TIMEOUT_SECONDS',
        onSpawn: (pid) => (leader = pid),
        onStdoutLine: (l) => (grandchild = Number(l)),
      }),
    );
    expect(e.kind).toBe('timeout');
    expect(e.message).toBe('sh did not finish within 0.3 s; raise ARCHIVE_TIMEOUT_SECONDS to allow more.');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(grandchild).toBeGreaterThan(0);
    expect(() => process.kill(leader, 0)).toThrow();
    expect(await waitFor(async () => !(await isAlive(grandchild)), 2000)).toBe(true);
  });

  test('a leader that exits normally does not leave its background children behind', async () => {
    let grandchild = 0;
    const started = Date.now();
    const r = await runProcess('sh', ['-c', 'sleep 30 & echo $!'], { timeoutMs: 10_000, onStdoutLine: (l) => (grandchild = Number(l)) });
    expect(r.code).toBe(0);
    // The orphan holds stdout open; without the group kill the run would last until its timeout.
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await waitFor(async () => !(await isAlive(grandchild)), 2000)).toBe(true);
  });

  test('a group that ignores SIGTERM is killed with SIGKILL after the grace period', async () => {
    let grandchild = 0;
    const started = Date.now();
    const e = await rejection(
      runProcess('sh', ['-c', "trap '' TERM; sleep 30 & echo $!; wait; wait"], {
        timeoutMs: 200,
        killGraceMs: 300,
        onStdoutLine: (l) => (grandchild = Number(l)),
      }),
    );
    expect(e.kind).toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(480);
    expect(await waitFor(async () => !(await isAlive(grandchild)), 2000)).toBe(true);
  });

  test('an abort kills the whole process group', async () => {
    const ac = new AbortController();
    let leader = 0;
    let grandchild = 0;
    const e = await rejection(
      runProcess('sh', SH_WITH_GRANDCHILD, {
        timeoutMs: 10_000,
        signal: ac.signal,
        onSpawn: (pid) => (leader = pid),
        onStdoutLine: (l) => {
          grandchild = Number(l);
          ac.abort();
        },
      }),
    );
    expect(e.kind).toBe('cancelled');
    expect(() => process.kill(leader, 0)).toThrow();
    expect(await waitFor(async () => !(await isAlive(grandchild)), 2000)).toBe(true);
  });

  test('an already aborted signal rejects without starting anything', async () => {
    const ac = new AbortController();
    ac.abort();
    let spawned = false;
    const e = await rejection(runProcess('sleep', ['5'], { timeoutMs: 5000, signal: ac.signal, onSpawn: () => (spawned = true) }));
    expect(e.kind).toBe('cancelled');
    expect(spawned).toBe(false);
  });

  test('a command that cannot start is engine_failed', async () => {
    const e = await rejection(runProcess('/nonexistent/kiln-engine', [], { timeoutMs: 5000 }));
    expect(e.kind).toBe('engine_failed');
    expect(e.message).toBe('Could not start kiln-engine: ENOENT.');
  });

  test('a throwing line handler stops the process and rejects', async () => {
    let leader = 0;
    const e = await rejection(
      runProcess('sh', SH_WITH_GRANDCHILD, {
        timeoutMs: 10_000,
        onSpawn: (pid) => (leader = pid),
        onStdoutLine: () => {
          throw new Error('boom');
        },
      }),
    );
    expect(e.kind).toBe('engine_failed');
    expect(() => process.kill(leader, 0)).toThrow();
  });
});

describe('runProcess when its own Node process goes away', () => {
  const childScript = fileURLToPath(new URL('./helpers/process-child.ts', import.meta.url));

  /** Starts process-child.ts and resolves once it has printed the pids of its running children. */
  function startNodeChild(mode: string): Promise<{ node: ReturnType<typeof spawn>; leader: number; grandchild: number; output: string[] }> {
    const node = spawn(process.execPath, [childScript, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    const output: string[] = [];
    return new Promise((resolve, reject) => {
      let leader = 0;
      node.stdout!.setEncoding('utf8');
      node.stdout!.on('data', (chunk: string) => {
        for (const line of chunk.split('\n').filter(Boolean)) {
          output.push(line);
          const [k, v] = line.split(' ');
          if (k === 'leader') leader = Number(v);
          if (k === 'grandchild') resolve({ node, leader, grandchild: Number(v), output });
        }
      });
      node.on('error', reject);
      node.on('exit', (code) => reject(new Error(`child exited early (${code}): ${output.join(' | ')}`)));
    });
  }

  function exitOf(node: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (node.exitCode !== null || node.signalCode !== null) return Promise.resolve({ code: node.exitCode, signal: node.signalCode });
    return new Promise((resolve) => node.once('exit', (code, signal) => resolve({ code, signal })));
  }

  test('process.exit() kills the running process group', async () => {
    const c = await startNodeChild('exit');
    expect(await exitOf(c.node)).toEqual({ code: 0, signal: null });
    expect(await waitFor(async () => !(await isAlive(c.leader)) && !(await isAlive(c.grandchild)), 2000)).toBe(true);
  });

  test('an unhandled SIGTERM kills the running process group and still ends Node with SIGTERM', async () => {
    const c = await startNodeChild('wait');
    c.node.kill('SIGTERM');
    expect(await exitOf(c.node)).toEqual({ code: null, signal: 'SIGTERM' });
    expect(await waitFor(async () => !(await isAlive(c.leader)) && !(await isAlive(c.grandchild)), 2000)).toBe(true);
  });

  test('with an application SIGTERM handler, the handler decides and exit still cleans up', async () => {
    const c = await startNodeChild('handled');
    c.node.kill('SIGTERM');
    expect(await exitOf(c.node)).toEqual({ code: 0, signal: null });
    expect(c.output).toContain('handler ran');
    expect(await waitFor(async () => !(await isAlive(c.leader)) && !(await isAlive(c.grandchild)), 2000)).toBe(true);
  });
});

describe('engine binaries', () => {
  test('ensureExecutable adds the execute bits once', async () => {
    const { dir, cleanup } = await makeTempDir('exec');
    try {
      const file = join(dir, 'tool');
      await writeFile(file, '#!/bin/sh\necho "tool version 1.2.3"\n');
      await chmod(file, 0o644);
      expect(await ensureExecutable(file)).toBe(true);
      expect((await stat(file)).mode & 0o777).toBe(0o755);
      expect(await ensureExecutable(file)).toBe(false);
      expect(await readFirstLine(file, [])).toBe('tool version 1.2.3');
      const e = await rejection(ensureExecutable(join(dir, 'missing')));
      expect(e.kind).toBe('engine_failed');
    } finally {
      await cleanup();
    }
  });

  test('7za resolves from 7zip-bin, executable, with its version', async () => {
    const z = await resolveSevenZip();
    expect(z.source).toBe('7zip-bin');
    expect(z.version).toBe('16.02');
    expect(z.banner).toMatch(/^7-Zip \(a\)/);
    expect((await stat(z.path)).mode & 0o111).toBe(0o111);
    const configured = await resolveSevenZip({ configuredPath: z.path });
    expect(configured).toMatchObject({ source: 'configured', version: '16.02' });
  });

  test('a configured 7za path that does not exist names the setting', async () => {
    const e = await rejection(resolveSevenZip({ configuredPath: '/nonexistent/7za', setting: 'SEVENZIP_PATH' }));
    expect(e.message).toBe('SEVENZIP_PATH is set to /nonexistent/7za, which does not exist; fix or unset SEVENZIP_PATH.');
  });
});
