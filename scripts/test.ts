/**
 * `pnpm test`: typecheck, then the whole jest suite (unit, codec, http, integration). Needs no
 * DATABASE_URL: jest's global setup starts an embedded Postgres. Ends with the plain line
 * `N passed, N failed` that CI reads (jest's own summary is not).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name: string) => path.join(root, 'node_modules', '.bin', name);
const args = process.argv.slice(2);

if (!args.includes('--no-typecheck')) {
  process.stdout.write('typecheck: tsc -p tsconfig.json\n');
  const tsc = spawnSync(bin('tsc'), ['-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (tsc.status !== 0) {
    process.stdout.write('typecheck failed\n0 passed, 1 failed\n');
    process.exit(1);
  }
}

const outDir = path.join(root, 'test-output');
fs.mkdirSync(outDir, { recursive: true });
const countsFile = path.join(outDir, 'test-counts.json');
fs.rmSync(countsFile, { force: true });
const jestArgs = args.filter((a) => a !== '--no-typecheck');
const jest = spawnSync(process.execPath, ['--experimental-vm-modules', '--disable-warning=ExperimentalWarning', path.join(root, 'node_modules', 'jest', 'bin', 'jest.js'), ...jestArgs], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, KILN_TEST_COUNTS: countsFile, NODE_OPTIONS: [process.env.NODE_OPTIONS, '--disable-warning=ExperimentalWarning'].filter(Boolean).join(' ') },
});

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const r = JSON.parse(fs.readFileSync(countsFile, 'utf8')) as { passed: number; failed: number; skipped: number };
  ({ passed, failed, skipped } = r);
} catch {
  failed = Math.max(1, failed);
}
if (jest.status !== 0 && failed === 0) failed = 1;
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exit(failed > 0 || jest.status !== 0 ? 1 : 0);
