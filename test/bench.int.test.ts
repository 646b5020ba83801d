/**
 * Smoke test for `pnpm bench --quick`: the benchmark starts its own Kiln (embedded Postgres, a
 * temporary DATA_DIR), runs every figure on a tiny scale and writes the JSON other tools read. The
 * numbers themselves are not judged here (the machine is shared); only that every figure exists.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const REQUIRED: Record<string, string[]> = {
  'image.heavy': ['rawPerSec', 'apiPerSec', 'ratio'],
  'image.medium': ['rawPerSec', 'apiPerSec', 'ratio'],
  small: ['rawPerSec', 'apiPerSec', 'apiOneRequestPerSec', 'ratio'],
  overhead: ['cpuMsPerJob'],
  batch: ['perFileOverheadMs', 'oneFileOverheadMs', 'ratio'],
  growth: ['submitP50Ratio', 'listP50Ratio', 'seed.jobs', 'seed.seconds'],
  latency: ['p50OverheadMs', 'p95OverheadMs'],
  upload: ['bytes', 'gatewayPeakRssMb', 's3Bytes', 's3GatewayPeakRssMb'],
  video: ['rawSeconds', 'apiSeconds', 'ratio'],
};

function at(obj: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

test('pnpm bench --quick writes every figure as a finite number', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-bench-test-'));
  const out = path.join(dir, 'bench.json');
  try {
    const env = { ...process.env };
    // The benchmark starts Kiln the way `pnpm start` does: its own embedded Postgres, not the test one.
    delete env.DATABASE_URL;
    const child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'bench.ts'), '--quick', '--json', out, '--no-progress'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (b: Buffer) => {
      log += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      log += b.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, log: code === 0 ? '' : log.slice(-4000) }).toEqual({ code: 0, log: '' });

    const json = JSON.parse(await fs.readFile(out, 'utf8')) as Record<string, unknown>;
    expect(at(json, 'image.heavy.op')).toBe('full-size jpeg→webp q82');
    expect(at(json, 'image.medium.op')).toBe('resize to 1280 wide, jpeg q82');
    const bad: string[] = [];
    for (const [group, keys] of Object.entries(REQUIRED)) {
      for (const k of keys) {
        const v = at(json, `${group}.${k}`);
        if (typeof v !== 'number' || !Number.isFinite(v)) bad.push(`${group}.${k} = ${JSON.stringify(v)}`);
      }
    }
    expect(bad).toEqual([]);
    expect(log).toMatch(/image\.heavy: full-size jpeg→webp q82/);
    expect(at(json, 'upload.bytes')).toBe(50 * 1024 * 1024);
    // The growth figure seeded its own database (dropped afterwards) and checked the listing's plans.
    expect(at(json, 'growth.seed.jobs')).toBe(20_000);
    expect(at(json, 'growth.listSeqScansOnHistory')).toEqual([]);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}, 240_000);
