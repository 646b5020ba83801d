/**
 * The event stream's own races, on a real gateway's dependencies (real Postgres, its LISTEN
 * connection, the migration's triggers) and a real HTTP server: a change committed while a stream
 * reads its job for the first time must be sent after that read, never lost and never a crash.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { parseJobFields } from '@kiln/contracts';
import { createApiKey, getJobWithFiles, type ApiKeyRow } from '@kiln/db';
import { admitSubmission, submitJob } from '../src/jobs.service.ts';
import { streamJobEvents } from '../src/job-events.ts';
import { openSse } from '../../../test/helpers/sse.ts';
import { startTestGateway, type TestGateway } from './helpers.ts';

let gw: TestGateway;
let server: http.Server;
let base: string;
let firstRead: ((jobId: string) => Promise<void>) | undefined;
let key: ApiKeyRow;

beforeAll(async () => {
  gw = await startTestGateway('job-events');
  key = (await createApiKey(gw.deps.pool, 'events')).row;
  const app = express();
  app.get('/t/:id', async (req, res) => {
    const id = String(req.params.id);
    let reads = 0;
    await streamJobEvents(gw.deps, req, res, id, async () => {
      const rows = await getJobWithFiles(gw.deps.pool, id, key.id);
      if (reads++ === 0) await firstRead?.(id);
      return rows;
    });
  });
  server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);
afterAll(async () => {
  gw.deps.waiter.endJobEvents();
  await new Promise((r) => server.close(r));
  await gw?.close();
});

it('a file that moves while the stream reads its job the first time is sent right after the snapshot', async () => {
  const jobId = crypto.randomUUID();
  const fileId = crypto.randomUUID();
  await submitJob(gw.deps, await admitSubmission(gw.deps, key), {
    jobId,
    jobType: 'convert',
    createArchive: false,
    files: [
      { fileId, sourceKey: `jobs/${jobId}/src/0`, filename: 'a.png', kind: 'png', size: 10, options: parseJobFields({ format: 'webp' }, 1, { jobType: 'convert' }).files[0]! },
    ],
  });
  // The first read has its rows already when the file moves; the trigger's NOTIFY reaches the
  // stream's subscription (registered before that read) before the read returns.
  firstRead = async (id) => {
    const heard = new Promise<void>((resolve) => {
      const off = gw.deps.waiter.onJobEvent(id, () => {
        off();
        resolve();
      });
    });
    await gw.client.query(`UPDATE job_files SET status = 'processing', progress = 10 WHERE id = $1`, [fileId]);
    await heard;
  };
  const s = await openSse(`${base}/t/${jobId}`);
  const progress = await s.next('the progress event', (e) => e.event === 'progress', 20_000);
  expect(s.events.map((e) => e.event)).toEqual(['snapshot', 'progress']);
  expect(s.events[0]!.data).toMatchObject({ status: 'pending', results: [{ status: 'pending' }] });
  expect(progress.data).toMatchObject({ status: 'pending', files: [{ index: 0, status: 'processing', progress: 10 }] });
  s.close();
});
