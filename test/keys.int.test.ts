/** The keys CLI (`node scripts/keys.ts`) against a real gateway and database. */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startKiln, until, type Kiln } from './helpers/kiln.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let kiln: Kiln;
beforeAll(async () => {
  kiln = await startKiln({ apps: ['gateway'] });
}, 90_000);
afterAll(async () => {
  await kiln?.stop();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function keys(args: string[], env: Record<string, string | undefined> = { DATABASE_URL: kiln.db.url }): Promise<Run> {
  const base = { ...process.env };
  delete base.DATABASE_URL;
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'scripts', 'keys.ts'), ...args], { cwd: ROOT, env: { ...base, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const lastLine = (s: string) => s.trimEnd().split('\n').at(-1)!;

test('keys:create prints a working key on the last line, keys:list shows it, keys:revoke by prefix makes it 401', async () => {
  const created = await keys(['create', 'cli key', '--rpm', '100', '--formats', 'webp,png']);
  expect(created.code).toBe(0);
  const key = lastLine(created.stdout);
  expect(key).toMatch(/^kiln_[\w-]{43}$/);
  expect(created.stdout).toMatch(/Limits: 100 requests\/min, formats webp, png\./);

  const ok = await kiln.api('/api/jobs', { key });
  expect(ok.status).toBe(200);
  expect(ok.headers.get('x-ratelimit-limit')).toBe('100');

  const list = await keys(['list']);
  expect(list.code).toBe(0);
  const prefix = key.slice(0, 11);
  const line = list.stdout.split('\n').find((l) => l.includes(`${prefix}…`));
  expect(line).toMatch(/cli key\s+\S+ \S+\s+\S+ \S+\s+0\s+active\s+100 requests\/min/);
  expect(list.stdout).not.toContain(key);

  const revoked = await keys(['revoke', `${prefix}…`]);
  expect(revoked.code).toBe(0);
  expect(revoked.stdout).toMatch(/Revoked key "cli key"/);
  // The gateway drops its key cache when the revocation's notification arrives: moments, not at once.
  await until('the revoked key to get 401', async () => (await kiln.api('/api/jobs', { key })).status === 401, 10_000);
  expect((await keys(['list'])).stdout.split('\n').find((l) => l.includes(prefix))).toMatch(/revoked/);
  // Revoking again finds nothing active.
  const again = await keys(['revoke', prefix]);
  expect(again.code).toBe(1);
  expect(again.stderr).toMatch(/No active key has the id or prefix "kiln_/);
});

test('without DATABASE_URL the CLI finds the running Kiln through DATA_DIR/postgres.json', async () => {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-cli-'));
  try {
    await fs.writeFile(path.join(dataDir, 'postgres.json'), JSON.stringify({ url: kiln.db.url, port: 0, pid: process.pid }));
    const created = await keys(['create', 'via data dir'], { DATA_DIR: dataDir });
    expect(created.code).toBe(0);
    expect((await kiln.api('/api/jobs', { key: lastLine(created.stdout) })).status).toBe(200);
  } finally {
    await fs.rm(dataDir, { recursive: true, force: true });
  }
});

test('bad options are refused with exit code 2, naming the flag, and create nothing', async () => {
  const bad = await keys(['create', 'typo', '--rpm', 'fast', '--formats', 'bmp']);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--rpm: Requests per minute: "fast" is not a whole number/);
  expect(bad.stderr).toMatch(/--formats: .*"bmp" is not an output format/);
  expect((await keys(['list'])).stdout).not.toMatch(/typo/);
  const noName = await keys(['create']);
  expect(noName.code).toBe(2);
  expect(noName.stderr).toMatch(/keys:create needs a name/);
  const unknown = await keys(['create', 'x', '--nope', '1']);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toMatch(/--nope/);
});
