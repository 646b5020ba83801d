/**
 * The `growth` figure: what a year of history does to the job path. Two databases of their own in
 * the benchmark's Postgres (never the user's: created here, dropped at the end), each with a
 * gateway-only Kiln (`KILN_ROLES=gateway`, as the S3 upload figure does): "empty" holds 20 jobs of
 * the listing key, "full" holds `jobs` finished jobs with their files and stored results (by default
 * 1,000,000, 200,000 of them the listing key's), generated in SQL with generate_series. Requests
 * alternate between the two gateways, so the machine's load falls on both alike; each figure is the
 * full database's p50 over the empty one's.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { createApiKey, findRunningEmbedded, foldJobTotals, listJobsStatements, type ListJobsQuery } from '@kiln/db';
import { multipart, request } from './client.ts';
import { startKiln, type RunningKiln } from './kiln-process.ts';
import { quantile, round } from './stats.ts';

export interface GrowthOptions {
  /** Finished jobs in the full database. */
  jobs: number;
  /** How many of them belong to the listing key. */
  keyJobs: number;
  /** Requests per side and per measured call. */
  requests: number;
  tinyPng: Buffer;
  scratchDir: string;
  progress: (what: string, detail?: string) => void;
}

/** Seeds `total` finished jobs: `keyJobs` of them for `listKey`, the rest spread over `others` keys. */
export async function seed(
  db: pg.Client,
  listKey: string,
  keyJobs: number,
  total: number,
  otherKeys: string[],
): Promise<{ seconds: number; triggersSkipped: boolean; stepSeconds: Record<string, number> }> {
  const t0 = performance.now();
  const steps: Record<string, number> = {};
  let last = t0;
  const step = (name: string) => {
    const now = performance.now();
    steps[name] = round((now - last) / 1000, 1);
    last = now;
  };
  // As superuser (the embedded server), skip the triggers and foreign-key checks while seeding and
  // write the job totals once at the end; otherwise the triggers run and the deltas are folded.
  let triggersSkipped = true;
  try {
    await db.query(`SET session_replication_role = replica`);
  } catch {
    triggersSkipped = false;
  }
  await db.query(`SET synchronous_commit = off`);
  await db.query(`CREATE TEMP TABLE seed_keys (n int PRIMARY KEY, id uuid NOT NULL)`);
  await db.query(`INSERT INTO seed_keys SELECT ordinality::int - 1, id FROM unnest($1::uuid[]) WITH ORDINALITY AS k(id)`, [otherKeys]);
  // In chunks, so no statement holds more than a few hundred thousand rows in its memory.
  const chunk = 250_000;
  for (let from = 1; from <= total; from += chunk) {
    const to = Math.min(total, from + chunk - 1);
    await db.query(
      `WITH ids AS (SELECT s, gen_random_uuid() AS job_id FROM generate_series($5::int, $6::int) s),
       g AS (
         -- The file and its stored result share the job's id (each table's own primary key), so that
         -- in id order every primary key is written in order, not at random over indexes larger than
         -- shared_buffers.
         SELECT s, job_id, job_id AS file_id, job_id AS stored_id,
                CASE WHEN s <= $3 THEN $1::uuid ELSE (SELECT id FROM seed_keys WHERE n = s % $4) END AS key_id,
                -- A year of history, newest first; one in ten failed.
                now() - make_interval(secs => 60 + (s::float8 / $2) * 365 * 86400) AS at,
                s % 10 = 0 AS failed
           FROM ids
          -- In id order: each chunk walks the primary keys' pages once instead of at random.
          ORDER BY job_id),
       j AS (
         INSERT INTO jobs (id, api_key_id, job_type, status, total_files, completed_files, failed_files, created_at, started_at, completed_at, expires_at, retention_hours, archive_file_id)
         SELECT job_id, key_id, 'convert', CASE WHEN failed THEN 'failed' ELSE 'completed' END, 1, (NOT failed)::int, failed::int,
                at, at + interval '20 ms', at + interval '80 ms', at + interval '400 days', 9600, NULL FROM g),
       s AS (
         INSERT INTO stored_files (id, job_id, storage_key, filename, mime_type, size, created_at)
         SELECT stored_id, job_id, 'jobs/' || job_id || '/out/' || file_id || '.webp', 'photo.webp', 'image/webp', 1000 + s % 5000, at FROM g WHERE NOT failed)
       INSERT INTO job_files (id, job_id, idx, filename, source_key, source_kind, original_size, options, status, progress, attempts, result, output_file_id,
                              error_code, error_message, started_at, completed_at)
       SELECT file_id, job_id, 0, 'photo.png', 'jobs/' || job_id || '/src/' || file_id, 'png', 5000 + s % 20000,
              '{"format":"webp","quality":82}'::jsonb, CASE WHEN failed THEN 'failed' ELSE 'completed' END, 100, 1,
              CASE WHEN failed THEN NULL ELSE '{"width":64,"height":64}'::jsonb END, CASE WHEN failed THEN NULL ELSE stored_id END,
              CASE WHEN failed THEN 'invalid_input' END, CASE WHEN failed THEN 'The file is not a readable image.' END, at + interval '20 ms', at + interval '80 ms'
         FROM g`,
      [listKey, total, keyJobs, Math.max(1, otherKeys.length), from, to],
    );
  }
  step('insert');
  if (triggersSkipped) {
    await db.query(`SET session_replication_role = DEFAULT`);
    await db.query(
      `INSERT INTO job_totals AS t (api_key_id, job_type, dialect, status, n)
       SELECT api_key_id, job_type, dialect, status, count(*) FROM jobs GROUP BY 1, 2, 3, 4
       ON CONFLICT (api_key_id, status, job_type, dialect) DO UPDATE SET n = t.n + EXCLUDED.n`,
    );
  } else {
    await foldJobTotals(db);
  }
  step('totals');
  // A year-old database has been vacuumed and analysed by autovacuum many times over (jobs' visibility
  // map is what lets the listings scan indexes only). Left to autovacuum, the insert-triggered vacuum
  // of the file tables ran during the measurements (submit ratio 1.30 in one such run). The seeding's
  // dirty pages are written out before anything is timed, for the same reason.
  await db.query(`VACUUM ANALYZE jobs`);
  step('vacuum jobs');
  await db.query(`VACUUM ANALYZE job_files`);
  await db.query(`VACUUM ANALYZE stored_files`);
  await db.query(`VACUUM ANALYZE job_totals`);
  step('vacuum files');
  await db.query('CHECKPOINT').catch(() => undefined);
  step('checkpoint');
  return { seconds: (performance.now() - t0) / 1000, triggersSkipped, stepSeconds: steps };
}

/** The tables that grow with every job: a plan must never read them whole. */
const HISTORY_TABLES = ['jobs', 'job_files', 'stored_files', 'job_total_deltas', 'idempotency_keys'];

interface Side {
  name: 'empty' | 'full';
  dbName: string;
  db: pg.Client;
  kiln: RunningKiln;
  listKey: { id: string; key: string };
}

export async function measureGrowth(mainKiln: RunningKiln, o: GrowthOptions) {
  const adminUrl = (await findRunningEmbedded(mainKiln.dataDir)) ?? mainKiln.env.DATABASE_URL;
  if (!adminUrl) throw new Error('growth: no Postgres to create the benchmark databases in');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const sides: Side[] = [];
  const created: string[] = [];
  try {
    for (const name of ['empty', 'full'] as const) {
      const dbName = `kiln_bench_growth_${name}_${process.pid}`;
      await admin.query(`CREATE DATABASE ${dbName}`);
      created.push(dbName);
      const url = new URL(adminUrl);
      url.pathname = `/${dbName}`;
      o.progress('growth', `starting a gateway on the ${name} database`);
      const dataDir = path.join(o.scratchDir, `growth-${name}`);
      await fs.mkdir(dataDir, { recursive: true });
      // Gateway only: the submitted jobs stay pending (the same on both sides); nothing converts.
      const kiln = await startKiln({ workers: 0, dataDir, env: { KILN_ROLES: 'gateway', DATABASE_URL: url.toString() } });
      const db = new pg.Client({ connectionString: url.toString() });
      await db.connect();
      const listKey = await createApiKey(db, 'growth-list');
      sides.push({ name, dbName, db, kiln, listKey: { id: listKey.row.id, key: listKey.key } });
    }
    const [empty, full] = sides as [Side, Side];

    o.progress('growth', `seeding 20 jobs (empty) and ${o.jobs.toLocaleString('en')} (full)`);
    await seed(empty.db, empty.listKey.id, 20, 20, []);
    const others: string[] = [];
    for (let i = 0; i < 50; i++) others.push((await createApiKey(full.db, `growth-${i}`)).row.id);
    const seeded = await seed(full.db, full.listKey.id, o.keyJobs, o.jobs, others);
    const rows = await full.db.query<{ jobs: number; files: number; stored: number }>(
      `SELECT (SELECT count(*) FROM jobs)::int AS jobs, (SELECT count(*) FROM job_files)::int AS files, (SELECT count(*) FROM stored_files)::int AS stored`,
    );

    // The plans of the listing's statements on the full database: no sequential scan.
    // Keyset paging (`after`, docs/api.md): the same depth as the offset listing, from the job at
    // position 10,000 of the key's completed ones; on the empty side from its first completed job.
    // Not part of listP50Ratio (the figure is the offset listing): reported beside it.
    // (A history shorter than that, as in --quick, gives its last job: an empty page, as the offset's.)
    const cursorOf = async (side: Side, position: number) =>
      (
        await side.db.query<{ id: string }>(
          `SELECT id FROM (SELECT id, row_number() OVER (ORDER BY created_at DESC, id) AS n FROM jobs WHERE api_key_id = $1 AND status = 'completed') x
            WHERE n <= $2 + 1 ORDER BY n DESC LIMIT 1`,
          [side.listKey.id, position],
        )
      ).rows[0]!.id;
    const cursors = { empty: await cursorOf(empty, 0), full: await cursorOf(full, 9_999) };
    type ListQuery = { label: string; path: (side: Side) => string; q: Omit<ListJobsQuery, 'apiKeyId'>; inRatio: boolean };
    const queries: ListQuery[] = [
      { label: 'limit=20', path: () => '/api/jobs?limit=20', q: { limit: 20, offset: 0 }, inRatio: true },
      {
        label: 'status=completed&offset=10000',
        path: () => '/api/jobs?status=completed&offset=10000&limit=20',
        q: { status: 'completed', limit: 20, offset: 10_000 },
        inRatio: true,
      },
      {
        label: 'status=completed&after=<10000th>',
        path: (side) => `/api/jobs?status=completed&after=${cursors[side.name]}&limit=20`,
        q: { status: 'completed', limit: 20, offset: 0, after: cursors.full },
        inRatio: false,
      },
    ];
    const plans: Record<string, string> = {};
    const seqScans: { query: string; table: string }[] = [];
    for (const q of queries) {
      for (const s of listJobsStatements({ apiKeyId: full.listKey.id, ...q.q })) {
        const p = await full.db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${s.text}`, s.values);
        const text = p.rows.map((r) => r['QUERY PLAN']).join('\n');
        plans[`${q.label}: ${s.text.trim().slice(0, 60)}…`] = text;
        for (const m of text.matchAll(/Seq Scan on (\w+)/g)) seqScans.push({ query: q.label, table: m[1]! });
      }
    }

    // Alternating requests, sequential: submit → {jobId} (POST /api/jobs, one 64×64 PNG) and the two listings.
    const form = multipart({ format: 'webp' }, { data: o.tinyPng, filename: 'tiny.png' });
    const submitMs: Record<Side['name'], number[]> = { empty: [], full: [] };
    const listMs: Record<string, Record<Side['name'], number[]>> = Object.fromEntries(queries.map((q) => [q.label, { empty: [], full: [] }]));
    const call = async (side: Side, what: 'submit' | ListQuery) => {
      const t0 = performance.now();
      const r =
        what === 'submit'
          ? await request(`${side.kiln.url}/api/jobs`, { method: 'POST', headers: { authorization: `Bearer ${side.kiln.key}`, 'content-type': form.contentType }, body: form.body })
          : await request(`${side.kiln.url}${what.path(side)}`, { headers: { authorization: `Bearer ${side.listKey.key}` } });
      const ms = performance.now() - t0;
      if (r.status !== 200)
        throw new Error(
          `growth: ${what === 'submit' ? 'POST /api/jobs' : what.path(side)} on the ${side.name} database answered ${r.status}: ${r.body.toString('utf8').slice(0, 500)}`,
        );
      return ms;
    };
    // Warm-up: connections, prepared statements, JIT on both sides.
    for (let i = 0; i < 10; i++) for (const side of sides) for (const w of ['submit' as const, ...queries]) await call(side, w);
    for (let i = 0; i < o.requests; i++) {
      o.progress('growth', `${i + 1}/${o.requests} alternating requests`);
      // Alternate which side goes first.
      const order = i % 2 === 0 ? [empty, full] : [full, empty];
      for (const side of order) submitMs[side.name].push(await call(side, 'submit'));
      for (const q of queries) for (const side of order) listMs[q.label]![side.name].push(await call(side, q));
    }
    const p50 = (xs: number[]) => quantile(xs, 0.5);
    const listRatios = Object.fromEntries(queries.map((q) => [q.label, round(p50(listMs[q.label]!.full) / p50(listMs[q.label]!.empty), 3)]));
    return {
      submitP50Ratio: round(p50(submitMs.full) / p50(submitMs.empty), 3),
      listP50Ratio: round(Math.max(...queries.filter((q) => q.inRatio).map((q) => listRatios[q.label]!)), 3),
      listP50Ratios: listRatios,
      listAfterP50Ratio: listRatios['status=completed&after=<10000th>']!,
      // Every sequential scan in the two listings' plans, with the table's size: the history tables
      // (jobs, job_files, stored_files, the unfolded deltas) must never appear; job_totals holds a few
      // rows per key, which Postgres rightly reads whole when it is that small.
      listSeqScans: await seqScanSizes(full.db, seqScans),
      listSeqScansOnHistory: seqScans.filter((x) => HISTORY_TABLES.includes(x.table)).map((x) => `${x.query}: ${x.table}`),
      submitMs: {
        empty: { p50: round(p50(submitMs.empty), 2), p95: round(quantile(submitMs.empty, 0.95), 2) },
        full: { p50: round(p50(submitMs.full), 2), p95: round(quantile(submitMs.full, 0.95), 2) },
      },
      listMs: Object.fromEntries(queries.map((q) => [q.label, { emptyP50: round(p50(listMs[q.label]!.empty), 2), fullP50: round(p50(listMs[q.label]!.full), 2) }])),
      requestsPerSide: o.requests,
      seed: {
        jobs: rows.rows[0]!.jobs,
        jobFiles: rows.rows[0]!.files,
        storedFiles: rows.rows[0]!.stored,
        listKeyJobs: o.keyJobs,
        seconds: round(seeded.seconds, 1),
        stepSeconds: seeded.stepSeconds,
        triggersSkipped: seeded.triggersSkipped,
      },
      plans,
      measuredAs:
        'two gateway-only Kilns on databases of their own (20 jobs vs the seeded history), sequential requests alternating between them: POST /api/jobs (one 64×64 PNG) → {jobId}, and GET /api/jobs?limit=20, ?status=completed&offset=10000 and the same depth by keyset (?status=completed&after=<the 10,000th>) for the listing key; listP50Ratio is the worse of the first two',
    };
  } finally {
    for (const s of sides) {
      await s.db.end().catch(() => undefined);
      await s.kiln.stop();
    }
    for (const d of created) await admin.query(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
  }
}

/** Each scanned table's size, one query at a time (one client runs one query at once). */
async function seqScanSizes(db: pg.Client, scans: { query: string; table: string }[]): Promise<{ query: string; table: string; rows: number }[]> {
  const out: { query: string; table: string; rows: number }[] = [];
  for (const x of scans) out.push({ ...x, rows: (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${x.table}`)).rows[0]!.n });
  return out;
}
