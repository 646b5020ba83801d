/**
 * `pnpm test`: the typecheck, then every package's jest run, through turbo (turbo.json), ending with
 * the plain line `N passed, N failed` that CI reads (jest's own summaries are not).
 *
 * The typecheck is the whole repository as one program (the root's `typecheck` task); when it fails
 * no test runs. Then `turbo run test test:integration` runs each package's tests (scripts/test-package.ts)
 * and the root's integration tests. Turbo caches every task: an unchanged package whose dependencies
 * did not change either replays its result instead of running. Each jest run leaves its counts in
 * `test-output/test-counts.json` in its package, a cached output, so the line sums fresh and replayed
 * runs alike; a package that left no counts is counted as failed.
 *
 *   pnpm test                     typecheck + all tests, cached
 *   TURBO_FORCE=true pnpm test    the same, ignoring the cache (CI does this)
 *   pnpm test -- <jest args>      every package's jest gets the arguments (`-t <name>`, a path)
 *
 * Needs no DATABASE_URL: each package's jest global setup starts an embedded Postgres.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const jestArgs = args[0] === '--' ? args.slice(1) : args;

// Every package with a test script, and the root (its integration tests in test/): each must leave counts.
const workspaceDirs = ['apps', 'packages'].flatMap((d) => fs.readdirSync(path.join(root, d)).map((p) => path.join(root, d, p)));
const testScriptOf = (dir: string) => {
  const file = path.join(dir, 'package.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { scripts?: Record<string, string> }).scripts?.test : undefined;
};
const runs = [root, ...workspaceDirs.filter((d) => testScriptOf(d))];
const countsFile = (dir: string) => path.join(dir, 'test-output', 'test-counts.json');
for (const dir of runs) fs.rmSync(countsFile(dir), { force: true });

// Turbo's own flags first: whatever follows `--` goes to the tasks' scripts.
const turboRun = (args: string[], passThrough: string[] = []) => {
  const argv = ['run', ...args, '--output-logs=new-only', '--log-order=grouped', ...(passThrough.length ? ['--', ...passThrough] : [])];
  const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', TURBO_NO_UPDATE_NOTIFIER: '1' };
  return spawnSync(path.join(root, 'node_modules', '.bin', 'turbo'), argv, { cwd: root, stdio: 'inherit', env }).status ?? 1;
};

if (turboRun(['typecheck', '--filter=//']) !== 0) {
  process.stdout.write('\ntypecheck failed\n0 passed, 1 failed\n');
  process.exit(1);
}
const status = turboRun(['test', 'test:integration', '--continue=dependencies-successful'], jestArgs);

let passed = 0;
let failed = 0;
let skipped = 0;
for (const dir of runs) {
  try {
    const r = JSON.parse(fs.readFileSync(countsFile(dir), 'utf8')) as { passed: number; failed: number; skipped: number };
    passed += r.passed;
    failed += r.failed;
    skipped += r.skipped;
  } catch {
    process.stdout.write(`${path.relative(root, dir) || 'test/'}: no test counts (jest crashed before reporting; see above): counted as 1 failed\n`);
    failed += 1;
  }
}
if (status !== 0 && failed === 0) failed = 1;
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exit(failed > 0 ? 1 : 0);
