/**
 * Rows shaped into the API's JSON, without a database: the job's sentence is derived from its facts,
 * and rows written by older versions (stored sentences, results of another shape) still render.
 */
import type { JobFileWithOutput, JobRow } from '@kiln/db';
import { jobErrorMessage, toFileResult, toSummary } from '../src/job-responses.ts';

const job = (over: Partial<JobRow> = {}): JobRow => ({
  id: '00000000-0000-4000-8000-000000000001',
  apiKeyId: '00000000-0000-4000-8000-000000000002',
  jobType: 'convert',
  dialect: 'convertly',
  status: 'failed',
  createArchive: false,
  totalFiles: 1,
  completedFiles: 0,
  failedFiles: 1,
  errorMessage: null,
  cancelled: false,
  createdAt: new Date(0),
  startedAt: null,
  completedAt: new Date(0),
  expiresAt: null,
  archiveFileId: null,
  progress: 100,
  tool: null,
  ...over,
});

const file = (over: Partial<JobFileWithOutput> = {}): JobFileWithOutput => ({
  id: '00000000-0000-4000-8000-000000000003',
  jobId: '00000000-0000-4000-8000-000000000001',
  idx: 0,
  filename: 'a.png',
  sourceKey: 'jobs/x/src/y',
  sourceKind: 'png',
  originalSize: 100,
  options: {},
  sourceUrl: null,
  sourceMaxBytes: null,
  extraSources: null,
  status: 'completed',
  progress: 100,
  attempts: 1,
  result: null,
  outputFileId: null,
  errorCode: null,
  errorMessage: null,
  output: null,
  ...over,
});

test("a job's sentence comes from its counters and flags: one file, all files, cancelled, none while anything succeeded", () => {
  expect(jobErrorMessage(job())).toBe('The file failed to convert; see results[].error.');
  expect(jobErrorMessage(job({ totalFiles: 3, failedFiles: 3 }))).toBe('All 3 files failed to convert; see results[].error.');
  expect(jobErrorMessage(job({ cancelled: true, failedFiles: 0 }))).toBe('Job was cancelled.');
  expect(jobErrorMessage(job({ status: 'completed', totalFiles: 3, completedFiles: 2, failedFiles: 1 }))).toBeNull();
  expect(jobErrorMessage(job({ status: 'processing', failedFiles: 0 }))).toBeNull();
  expect(toSummary(job({ totalFiles: 2, failedFiles: 2 })).errorMessage).toBe('All 2 files failed to convert; see results[].error.');
});

test('a message a worker stored wins, so rows written before the sentences moved out of SQL read the same', () => {
  expect(jobErrorMessage(job({ status: 'completed', completedFiles: 1, failedFiles: 0, errorMessage: 'The archive could not be built: disk full.' }))).toBe(
    'The archive could not be built: disk full.',
  );
  expect(jobErrorMessage(job({ totalFiles: 2, errorMessage: 'All 2 files failed to convert; see results[].error.' }))).toBe('All 2 files failed to convert; see results[].error.');
});

test('a file of a cancelled job says so; a failed file keeps the message its worker recorded', () => {
  const cancelled = toFileResult(file({ status: 'failed', errorCode: 'cancelled' }), () => '');
  expect(cancelled.error).toEqual({ code: 'cancelled', message: 'Job was cancelled.' });
  const broken = toFileResult(file({ status: 'failed', errorCode: 'invalid_input', errorMessage: 'The image could not be decoded.' }), () => '');
  expect(broken.error).toEqual({ code: 'invalid_input', message: 'The image could not be decoded.' });
});

test('a result row from an older worker renders what it has and leaves out what it cannot read', () => {
  const output = {
    id: '00000000-0000-4000-8000-000000000004',
    jobId: '00000000-0000-4000-8000-000000000001',
    storageKey: 'k',
    filename: 'a.webp',
    mimeType: 'image/webp',
    size: 40,
  };
  const r = toFileResult(file({ output, result: { format: 'webp', mimeType: 'image/webp', width: '64', height: 48, legacy: true } }), (s) => `url:${s.id}`);
  expect(r).toMatchObject({ format: 'webp', mimeType: 'image/webp', height: 48, finalSize: 40, savedPercent: null, appliedQuality: null, downloadUrl: `url:${output.id}` });
  expect(r).not.toHaveProperty('width');
  expect(r).not.toHaveProperty('legacy');
  expect(toFileResult(file({ status: 'pending', progress: 30 }), () => '')).toMatchObject({ format: null, mimeType: null, progress: 30 });
});
