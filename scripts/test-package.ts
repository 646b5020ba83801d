/**
 * One package's jest run: the `test` script of every package (turbo runs it in the package's
 * directory) and the root's `test:integration` (run in the root, for `test/`). It uses the root
 * jest.config.js, limited to the package's own `src/` and `test/` by jest's `roots`, so a new
 * `*.test.ts` there is picked up without a list. Extra arguments go to jest (`-t <name>`, a path).
 *
 * jest's global setup (test/global-setup.ts) starts an embedded Postgres for the run. A package whose
 * tests never touch a database says `--no-postgres` in its test script and saves that start.
 *
 * The run's counts land in `test-output/test-counts.json` inside the package: turbo caches that file
 * with the task, and `pnpm test` (scripts/test.ts) sums every package's file, cached or fresh.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = process.cwd();
const dirs = pkg === root ? ['test'] : ['src', 'test'];
const roots = dirs.map((d) => path.join(pkg, d)).filter((d) => fs.existsSync(d));

const args = process.argv.slice(2);
const postgres = !args.includes('--no-postgres');

const countsFile = path.join(pkg, 'test-output', 'test-counts.json');
fs.mkdirSync(path.dirname(countsFile), { recursive: true });
fs.rmSync(countsFile, { force: true });

// The same convention as jest.config.js's testMatch. A package with no test file at all reports zero
// without starting jest (and never lets jest fall back to scanning the whole repository).
const testFiles = roots.flatMap((d) => (fs.readdirSync(d, { recursive: true }) as string[]).filter((f) => f.endsWith('.test.ts') && !f.split(path.sep).includes('node_modules')));
if (testFiles.length === 0) {
  fs.writeFileSync(countsFile, JSON.stringify({ passed: 0, failed: 0, skipped: 0 }));
  process.stdout.write(`no *.test.ts under ${dirs.map((d) => `${path.relative(root, path.join(pkg, d)) || d}/`).join(' or ')}: 0 tests\n`);
  process.exit(0);
}

// The caller's arguments go before --roots: jest's array options swallow the positional arguments after them.
const jestArgs = ['--config', path.join(root, 'jest.config.js'), '--passWithNoTests', ...args.filter((a) => a !== '--no-postgres'), ...roots.map((d) => `--roots=${d}`)];
const jest = spawnSync(
  process.execPath,
  ['--experimental-vm-modules', '--disable-warning=ExperimentalWarning', path.join(root, 'node_modules', 'jest', 'bin', 'jest.js'), ...jestArgs],
  {
    cwd: root,
    stdio: 'inherit',
    env: {
      ...process.env,
      KILN_TEST_COUNTS: countsFile,
      ...(postgres ? {} : { KILN_TEST_POSTGRES: 'off' }),
      NODE_OPTIONS: [process.env.NODE_OPTIONS, '--disable-warning=ExperimentalWarning'].filter(Boolean).join(' '),
    },
  },
);
process.exit(jest.status ?? 1);
