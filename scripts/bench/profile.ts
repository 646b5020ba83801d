/**
 * Where Kiln's per-job time goes, for the performance work behind `pnpm bench` (not part of it):
 *   node scripts/bench/profile.ts [--jobs N] [--files 1] [--cpu-prof DIR] [--in-flight N] [--size 64] [--width 170]
 *     [--detail] [--pg name=value ...] [--pg-log FILE] [--input FILE] [--field name=value ...]
 * Starts an embedded Postgres with pg_stat_statements, runs Kiln against it (DATABASE_URL), pushes
 * N small convert jobs through POST /api/convert + download, then prints the statements per job and
 * each process's CPU per job (the embedded server's too). With --cpu-prof the gateway and workers
 * write V8 CPU profiles there. With --files F > 1 each job carries F copies of the image and nothing
 * is downloaded (the `batch` figure's big jobs), and the figures are per file. --detail adds each
 * statement's planning (with `--pg pg_stat_statements.track_planning=on`), buffers and WAL per job,
 * and each table's updates with how many were HOT; --pg passes a setting to the server
 * (auto_explain, log_statement, …) and --pg-log writes the server's log to FILE. --input sends that
 * file instead of the generated PNG (a corpus photo, for `image.medium`'s per-megabyte costs), and
 * --field adds or replaces a form field (`--field resize=width --field resizeWidth=1280`).
 */
import { appendFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import sharp from 'sharp';
import { startEmbedded } from '@kiln/db';
import { convertManyViaApi, convertViaApi, multipart, multipartFiles } from './client.ts';
import { makePhoto } from './corpus.ts';
import { cpuByRole, ROLES, startKiln } from './kiln-process.ts';
import { closedLoop } from './stats.ts';

const { values: a } = parseArgs({
  options: {
    jobs: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'in-flight': { type: 'string' },
    size: { type: 'string' },
    format: { type: 'string' },
    width: { type: 'string' },
    pg: { type: 'string', multiple: true },
    'pg-log': { type: 'string' },
    detail: { type: 'boolean' },
    files: { type: 'string' },
    input: { type: 'string' },
    field: { type: 'string', multiple: true },
  },
});
const N = Number(a.jobs ?? 200);
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-prof-pg-'));
const server = await startEmbedded({
  dataDir: dir,
  port: 56000 + Math.floor(Math.random() * 1000),
  extraFlags: ['-c', 'shared_preload_libraries=pg_stat_statements', '-c', 'pg_stat_statements.track=all', ...(a.pg ?? []).flatMap((s) => ['-c', s])],
  ...(a['pg-log'] ? { log: (m: string) => appendFileSync(a['pg-log']!, m + '\n') } : {}),
});
const url = server.url();
const env: Record<string, string> = { DATABASE_URL: url };
if (a['cpu-prof']) env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${path.resolve(a['cpu-prof'])}`;
const kiln = await startKiln({ env });
try {
  const size = Number(a.size ?? 64);
  const img = a.input
    ? await fs.readFile(a.input)
    : await sharp(await makePhoto(Math.max(size, 256), Math.max(size, 256), 7))
        .resize(size, size)
        .png()
        .toBuffer();
  const fields: Record<string, string> = { format: a.format ?? 'webp', saveToStorage: 'true' };
  for (const f of a.field ?? []) {
    const at = f.indexOf('=');
    if (at < 1) throw new Error(`--field wants name=value, not ${f}`);
    fields[f.slice(0, at)] = f.slice(at + 1);
  }
  const form = multipart(fields, { data: img, filename: a.input ? path.basename(a.input) : 'tiny.png' });
  for (let i = 0; i < 10; i++) await convertViaApi(kiln.url, kiln.key, form);
  const files = Number(a.files ?? 1);
  const many =
    files > 1
      ? multipartFiles(
          fields,
          Array.from({ length: files }, (_, i) => ({ data: img, filename: `tiny-${i}.png` })),
        )
      : undefined;
  if (many) await convertManyViaApi(kiln.url, kiln.key, many, files);
  // Per file: with --files, N jobs of F files each.
  const units = N * files;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  await c.query('SELECT pg_stat_statements_reset()');
  // The tables' update counters (HOT or not) from here on; only with --detail, as it also resets
  // what autovacuum counts since its last run.
  if (a.detail) await c.query('SELECT pg_stat_reset()');
  const cpu0 = cpuByRole(kiln.supervisorPid);
  // The embedded server is this process's child, not Kiln's: its postmaster and backends.
  const pg0 = cpuByRole(process.pid).postgres;
  const t0 = performance.now();
  await closedLoop(
    Array.from({ length: N }, () => many ?? form),
    Number(a['in-flight'] ?? (many ? 1 : 4)),
    async (f) => {
      if (many) await convertManyViaApi(kiln.url, kiln.key, f, files);
      else await convertViaApi(kiln.url, kiln.key, f);
    },
  );
  const wall = performance.now() - t0;
  const cpu1 = cpuByRole(kiln.supervisorPid);
  const pg1 = cpuByRole(process.pid).postgres;
  const r = await c.query<{
    calls: string;
    rows: string;
    total: number;
    mean: number;
    query: string;
    toplevel: boolean;
    plan: number;
    plans: string;
    hit: string;
    dirtied: string;
    wal: string;
  }>(
    `SELECT calls, rows, round(total_exec_time::numeric, 1)::float AS total, round(mean_exec_time::numeric, 3)::float AS mean, regexp_replace(query, '\\s+', ' ', 'g') AS query,
            toplevel, round(total_plan_time::numeric, 1)::float AS plan, plans, shared_blks_hit AS hit, shared_blks_dirtied AS dirtied, wal_bytes AS wal
       FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%' ORDER BY calls DESC LIMIT 40`,
  );
  let calls = 0;
  let total = 0;
  let top = 0;
  for (const row of r.rows) {
    calls += Number(row.calls);
    total += row.total;
    if (row.toplevel) top += row.total;
  }
  const per = files > 1 ? 'file' : 'job';
  console.log(`${N} jobs${files > 1 ? ` of ${files} files` : ''} in ${(wall / 1000).toFixed(2)} s (${((units / wall) * 1000).toFixed(1)} ${per}s/s)`);
  console.log(`CPU ms per ${per}: ${ROLES.map((k) => `${k} ${((k === 'postgres' ? pg1 - pg0 : cpu1[k] - cpu0[k]) / units).toFixed(2)}`).join(', ')}`);
  // exec ms counts a nested statement (a foreign-key check, a trigger's insert) inside its top-level one
  // and again on its own line; the top-level figure counts each once.
  console.log(`statements per ${per} ${(calls / units).toFixed(1)}, exec ms per ${per} ${(total / units).toFixed(2)} (top-level ${(top / units).toFixed(2)})`);
  const perUnit = (v: string | number) => (Number(v) / units).toFixed(1);
  for (const row of r.rows)
    console.log(
      `${(Number(row.calls) / units).toFixed(2).padStart(6)}/${per} ${String(row.total).padStart(8)} ms ${(Number(row.rows) / Number(row.calls)).toFixed(2).padStart(5)} rows/call  ${
        a.detail
          ? `${(Number(row.plans) / units).toFixed(2)} plans ${String(row.plan).padStart(6)} ms, per ${per} ${perUnit(row.hit)} hit ${perUnit(row.dirtied)} dirtied ${perUnit(row.wal)} WAL bytes  `
          : ''
      }${row.query.slice(0, Number(a.width ?? 170))}`,
    );
  if (a.detail) {
    const t = await c.query<{ t: string; ins: string; upd: string; hot: string }>(
      `SELECT schemaname || '.' || relname AS t, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables
        WHERE n_tup_ins + n_tup_upd > 0 ORDER BY n_tup_upd + n_tup_ins DESC LIMIT 12`,
    );
    for (const row of t.rows) console.log(`table ${row.t}: ${row.ins} inserted, ${row.upd} updated, ${row.hot} of them HOT`);
  }
  await c.end();
} finally {
  await kiln.stop();
  await server.stop();
  await fs.rm(dir, { recursive: true, force: true });
}
