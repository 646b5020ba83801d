/**
 * Codec tier: engine child processes under resource limits (prlimit) and a parent-death signal
 * (setpriv), with plain sh / sleep children standing in for the engines.
 */
import { spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProcess } from '../src/process/run.ts';
import { configureEngineSandbox, sandboxCommand, type EngineSandbox } from '../src/process/sandbox.ts';
import { isAlive, makeTempDir, waitFor } from './helpers/media-fixtures.ts';
import { rejection } from './helpers/rejection.ts';

const PRLIMIT = '/usr/bin/prlimit';
const SETPRIV = '/usr/bin/setpriv';
const haveTools = await Promise.all([stat(PRLIMIT), stat(SETPRIV)]).then(
  () => true,
  () => false,
);
// util-linux is part of every Debian/Ubuntu base image; elsewhere the limits are skipped, as in production.
const linuxTest = haveTools && process.platform === 'linux' ? test : test.skip;

function sandbox(over: Partial<Record<'cpu' | 'as' | 'fsize', number>> = {}): EngineSandbox {
  return {
    prlimitPath: PRLIMIT,
    setprivPath: SETPRIV,
    cpuSeconds: { max: over.cpu ?? 0, setting: 'ENGINE_MAX_CPU_SECONDS' },
    addressSpaceBytes: { max: over.as ?? 0, setting: 'ENGINE_MAX_MEMORY_MB' },
    fileSizeBytes: { max: over.fsize ?? 0, setting: 'ENGINE_MAX_FILE_MB' },
  };
}

afterEach(() => configureEngineSandbox(undefined));

describe('the engine sandbox', () => {
  test('wraps the command in prlimit and setpriv, each only with what is configured', () => {
    configureEngineSandbox(sandbox({ cpu: 60, fsize: 1024 }));
    expect(sandboxCommand('/usr/bin/ffmpeg', ['-i', 'x'])).toEqual({
      cmd: PRLIMIT,
      args: ['--cpu=60:62', '--fsize=1024', '--', SETPRIV, '--pdeathsig', 'KILL', '--', '/usr/bin/ffmpeg', '-i', 'x'],
    });
    configureEngineSandbox(undefined);
    expect(sandboxCommand('/usr/bin/ffmpeg', ['-i', 'x'])).toEqual({ cmd: '/usr/bin/ffmpeg', args: ['-i', 'x'] });
  });

  linuxTest('the child really runs under the limits', async () => {
    configureEngineSandbox(sandbox({ cpu: 30, as: 2 * 1024 ** 3, fsize: 10 * 1024 ** 2 }));
    const r = await runProcess('sh', ['-c', 'cat /proc/self/limits; echo "PPid:$PPID"'], { timeoutMs: 10_000 });
    expect(r.stdout).toMatch(/Max cpu time\s+30\s+32/);
    expect(r.stdout).toMatch(/Max address space\s+2147483648\s+2147483648/);
    expect(r.stdout).toMatch(/Max file size\s+10485760\s+10485760/);
    // prlimit and setpriv exec the engine in place: its parent is this process, not a wrapper.
    expect(r.stdout).toContain(`PPid:${process.pid}`);
  });

  linuxTest('an engine writing past ENGINE_MAX_FILE_MB fails with limit_exceeded naming the setting', async () => {
    const tmp = await makeTempDir('kiln-sandbox-');
    try {
      configureEngineSandbox(sandbox({ fsize: 4096 }));
      const out = join(tmp.dir, 'big');
      const e = await rejection(runProcess('sh', ['-c', `exec head -c 100000 /dev/zero > '${out}'`], { timeoutMs: 10_000 }));
      expect(e.kind).toBe('limit_exceeded');
      expect(e.message).toMatch(/sh needed a file larger than .* MiB, the limit set by ENGINE_MAX_FILE_MB; raise it/);
      expect((await stat(out)).size).toBe(4096);
    } finally {
      await tmp.cleanup();
    }
  });

  linuxTest('an engine spinning past ENGINE_MAX_CPU_SECONDS fails with limit_exceeded naming the setting', async () => {
    configureEngineSandbox(sandbox({ cpu: 1 }));
    const e = await rejection(runProcess('sh', ['-c', 'while :; do :; done'], { timeoutMs: 30_000 }));
    expect(e.kind).toBe('limit_exceeded');
    expect(e.message).toMatch(/more than 1 CPU seconds, the limit set by ENGINE_MAX_CPU_SECONDS/);
  });

  describe('when the worker is killed with SIGKILL (no exit hook runs)', () => {
    const childScript = fileURLToPath(new URL('./helpers/sandbox-child.ts', import.meta.url));

    async function killedWorkerLeaves(setpriv: string): Promise<{ leader: number; alive: boolean }> {
      const node = spawn(process.execPath, [childScript, setpriv], { stdio: ['ignore', 'pipe', 'inherit'] });
      const leader = await new Promise<number>((resolve, reject) => {
        node.stdout!.setEncoding('utf8');
        node.stdout!.on('data', (chunk: string) => {
          const m = /leader (\d+)/.exec(chunk);
          if (m) resolve(Number(m[1]));
        });
        node.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
      });
      // The engine is running (setpriv has exec'd sleep) before the worker dies.
      await waitFor(async () => (await readFile(`/proc/${leader}/comm`, 'utf8').catch(() => '')).trim() === 'sleep', 5000);
      node.kill('SIGKILL');
      const gone = await waitFor(async () => !(await isAlive(leader)), 5000);
      return { leader, alive: !gone };
    }

    linuxTest('its engines die with it (setpriv --pdeathsig KILL)', async () => {
      const r = await killedWorkerLeaves(SETPRIV);
      expect(r.alive).toBe(false);
    });

    linuxTest('without the parent-death signal they would outlive it (why it is there)', async () => {
      const r = await killedWorkerLeaves('-');
      try {
        expect(r.alive).toBe(true);
      } finally {
        // Its own group: nobody else will clean it up.
        try {
          process.kill(-r.leader, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    });
  });
});
