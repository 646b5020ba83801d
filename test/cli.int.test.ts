/**
 * The command-line client (`pnpm kiln`, apps/cli) against a real Kiln: real gateway and worker
 * processes, real files, the CLI run as its own process exactly as a person runs it. Checks the files
 * it downloads by their bytes, and each exit code by a real cause.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { sniff } from '@kiln/formats';
import { freePort, startKiln, until, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const HEIC = path.join(ROOT, 'packages/codec/test/fixtures/two-blocks.heic');
const CLI = path.join(ROOT, 'apps/cli/src/main.ts');

let kiln: Kiln;
let dir: string;

beforeAll(async () => {
  [kiln, dir] = await Promise.all([startKiln(), fs.mkdtemp(path.join(os.tmpdir(), 'kiln-cli-'))]);
}, 120_000);
afterAll(async () => {
  await kiln?.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in `dir` (as INIT_CWD, the way `pnpm kiln` passes the caller's folder), bounded by a deadline. */
function cli(args: string[], env: Record<string, string | undefined> = {}, onStderr?: (all: string) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, INIT_CWD: dir, KILN_API_KEY: kiln.key, KILN_URL: kiln.url, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      onStderr?.(stderr);
    });
    const t = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

it('converts a real HEIC photo to WebP: uploads it, follows the job, downloads the result into --out, exits 0', async () => {
  await fs.copyFile(HEIC, path.join(dir, 'photo.heic'));
  const r = await cli(['convert', 'photo.heic', '--to', 'webp', '--resize', 'website', '--out', 'out']);
  expect(r.stderr).toMatch(/Uploading photo\.heic/);
  expect(r.stderr).toMatch(/Job [0-9a-f-]{36} created/);
  expect(r.stderr).toMatch(/Job [0-9a-f-]{36} completed/);
  expect(r.code).toBe(0);
  const saved = path.join(dir, 'out', 'photo.webp');
  expect(r.stdout.trim()).toBe(saved);
  const bytes = await fs.readFile(saved);
  expect(bytes.subarray(0, 4).toString('latin1')).toBe('RIFF');
  expect(bytes.subarray(8, 12).toString('latin1')).toBe('WEBP');
  const meta = await sharp(bytes).metadata();
  expect(meta.format).toBe('webp');
  const source = await sharp(await fs.readFile(HEIC)).metadata();
  expect([meta.width, meta.height]).toEqual([source.width, source.height]);
}, 180_000);

it('compresses several files in one job and saves each, and --json prints the job', async () => {
  await fs.writeFile(path.join(dir, 'a.jpg'), await photo(800, 600, { format: 'jpeg', quality: 98 }));
  await fs.writeFile(path.join(dir, 'b.png'), await photo(300, 200, { format: 'png' }));
  const r = await cli(['compress', 'a.jpg', 'b.png', '--quality', '60', '--out', 'small', '--json']);
  expect(r.code).toBe(0);
  const job = JSON.parse(r.stdout) as { status: string; jobType: string; results: { filename: string; finalSize: number; originalSize: number }[] };
  expect(job).toMatchObject({ status: 'completed', jobType: 'compress' });
  expect(job.results.map((x) => x.filename)).toEqual(['a.jpg', 'b.png']);
  expect(sniff(await fs.readFile(path.join(dir, 'small', 'a.jpg')))).toBe('jpg');
  expect(sniff(await fs.readFile(path.join(dir, 'small', 'b.png')))).toBe('png');
  expect((await fs.stat(path.join(dir, 'small', 'a.jpg'))).size).toBeLessThan((await fs.stat(path.join(dir, 'a.jpg'))).size);
}, 180_000);

it('status and wait read a job by id; --no-wait returns after the upload', async () => {
  await fs.writeFile(path.join(dir, 'c.png'), await photo(200, 100, { format: 'png' }));
  const created = await cli(['convert', 'c.png', '--to', 'jpg', '--no-wait']);
  expect(created.code).toBe(0);
  const jobId = created.stdout.trim();
  expect(jobId).toMatch(/^[0-9a-f-]{36}$/);
  const waited = await cli(['wait', jobId, '--out', 'waited']);
  expect(waited.code).toBe(0);
  expect(sniff(await fs.readFile(path.join(dir, 'waited', 'c.jpg')))).toBe('jpg');
  const status = await cli(['status', jobId]);
  expect(status.code).toBe(0);
  expect(status.stderr).toMatch(new RegExp(`Job ${jobId}: completed, 100%`));
}, 180_000);

it('wait outlives a gateway restart: the gateway closes its streams as it stops, the CLI resumes with Last-Event-ID', async () => {
  await kiln.stopApp('convert-worker');
  await fs.writeFile(path.join(dir, 'e.png'), await photo(160, 120, { format: 'png' }));
  const created = await cli(['convert', 'e.png', '--to', 'webp', '--no-wait']);
  const jobId = created.stdout.trim();
  let following = false;
  const waiting = cli(['wait', jobId, '--out', 'resumed'], {}, (err) => {
    following ||= err.includes(`job ${jobId}: pending 0%`);
  });
  // The CLI has the job's snapshot when the gateway stops: a stopping gateway must not wait on its
  // open streams (it exits 0, not killed), and the CLI must not give up while it is away.
  await until('the CLI to follow the job', async () => following);
  expect(await kiln.stopApp('gateway')).toBe(0);
  await kiln.startApp('gateway');
  await kiln.startApp('convert-worker');
  const r = await waiting;
  expect(r.stderr).toMatch(/Job [0-9a-f-]{36} completed/);
  expect(r.code).toBe(0);
  expect(sniff(await fs.readFile(path.join(dir, 'resumed', 'e.webp')))).toBe('webp');
}, 180_000);

it('exits 1 when the job fails, naming the file and the reason', async () => {
  // A PNG signature followed by garbage: the gateway accepts it as a PNG, the worker cannot decode it.
  const png = await photo(64, 64, { format: 'png' });
  await fs.writeFile(path.join(dir, 'broken.png'), Buffer.concat([png.subarray(0, 40), Buffer.alloc(200, 7)]));
  const r = await cli(['convert', 'broken.png', '--to', 'webp']);
  expect(r.stderr).toMatch(/✗ broken\.png: failed \(invalid_input: /);
  expect(r.code).toBe(1);
}, 180_000);

it('exits 2 on a usage error, 3 when the server is unreachable, 4 for a refused key, 5 for a refused request', async () => {
  await fs.writeFile(path.join(dir, 'd.png'), await photo(32, 32, { format: 'png' }));
  const usage = await cli(['convert', 'd.png']);
  expect(usage.code).toBe(2);
  expect(usage.stderr).toMatch(/convert needs --to <format>/);
  expect((await cli(['convert', 'missing.png', '--to', 'webp'])).stderr).toMatch(/missing\.png: no such file/);
  expect((await cli(['status', 'x'], { KILN_API_KEY: '' })).code).toBe(2);

  const closedPort = await freePort();
  const down = await cli(['convert', 'd.png', '--to', 'webp', '--url', `http://127.0.0.1:${closedPort}`]);
  expect(down.code).toBe(3);
  expect(down.stderr).toMatch(/Cannot reach Kiln at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);

  const badKey = await cli(['convert', 'd.png', '--to', 'webp'], { KILN_API_KEY: 'kiln_not_a_real_key' });
  expect(badKey.code).toBe(4);
  expect(badKey.stderr).toMatch(/The API key was refused: Invalid API key\./);

  const unsupported = await cli(['convert', 'd.png', '--to', 'mp3']);
  expect(unsupported.code).toBe(5);
  expect(unsupported.stderr).toMatch(/HTTP 415/);
}, 180_000);
