/**
 * IMAGE_OVERLAP_SLOTS through the real pipeline (gateway and convert worker as processes, real
 * Postgres, pg-boss and sharp): with one codec slot and two overlap slots, three images are taken
 * and claimed together, converted one at a time, and all three come out right.
 */
import pg from 'pg';
import { sniff } from '@kiln/formats';
import { download, form, startKiln, until, waitForJob, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';

let kiln: Kiln;

beforeAll(async () => {
  kiln = await startKiln({ env: { CONVERT_CONCURRENCY: '1', IMAGE_OVERLAP_SLOTS: '2' }, apps: ['gateway', 'convert-worker'] });
}, 120_000);
afterAll(async () => {
  await kiln?.stop();
});

test('three images: claimed together, never two in the codec at once, every output correct', async () => {
  // Large enough that one conversion takes far longer than claiming three files.
  const big = await photo(2400, 2400);
  const sql = new pg.Client({ connectionString: kiln.db.url });
  await sql.connect();
  try {
    const ids = await Promise.all(
      [0, 1, 2].map(async () => {
        const r = await kiln.api('/api/jobs', { method: 'POST', body: form([{ data: big, filename: 'big.png' }], { format: 'webp' }) });
        expect(r.status).toBe(200);
        return ((await r.json()) as { jobId: string }).jobId;
      }),
    );
    // The worker holds three messages for one codec slot: all three files are claimed before the first is done.
    await until(
      'three files processing at once',
      async () => (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM job_files WHERE job_id = ANY($1) AND status = 'processing'`, [ids])).rows[0]!.n === 3,
      60_000,
      10,
    );
    for (const id of ids) {
      const job = await waitForJob(kiln, id, 120_000);
      expect(job.status).toBe('completed');
      const out = await download(job.results[0]!.downloadUrl!);
      expect(sniff(out)).toBe('webp');
    }
    // Codec intervals that never overlap fit inside the span from the first claim to the last outcome.
    const span = (
      await sql.query<{ ms: number }>(`SELECT (extract(epoch FROM max(completed_at) - min(started_at)) * 1000)::float8 AS ms FROM job_files WHERE job_id = ANY($1)`, [ids])
    ).rows[0]!.ms;
    const codecMs = kiln
      .logs()
      .split('\n')
      .filter((l) => l.includes('"msg":"file done"') && ids.some((id) => l.includes(id)))
      .map((l) => JSON.parse(l.slice(l.indexOf('{'))) as { codecMs: number });
    expect(codecMs).toHaveLength(3);
    const sum = codecMs.reduce((a, l) => a + l.codecMs, 0);
    expect(sum).toBeLessThanOrEqual(span + 5);
  } finally {
    await sql.end();
  }
}, 240_000);
