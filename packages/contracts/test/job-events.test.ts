import { JOB_EVENT_NAMES, JOB_EVENT_SCHEMAS, finalFiles, formatEventId, jobVersion, parseEventId } from '../src/job-events.ts';

const f = (idx: number, status: string, progress = 0) => ({ idx, status, progress });

test('the version grows with every change a client can see, and never goes back', () => {
  const steps = [
    jobVersion('pending', [f(0, 'pending'), f(1, 'pending')]),
    jobVersion('processing', [f(0, 'processing'), f(1, 'pending')]),
    jobVersion('processing', [f(0, 'processing', 40), f(1, 'pending')]),
    jobVersion('processing', [f(0, 'completed', 100), f(1, 'processing')]),
    jobVersion('processing', [f(0, 'completed', 100), f(1, 'failed', 12)]),
    // An archive built after the last file: only the job's own status moves.
    jobVersion('completed', [f(0, 'completed', 100), f(1, 'failed', 12)]),
  ];
  for (let i = 1; i < steps.length; i++) expect(steps[i]).toBeGreaterThan(steps[i - 1]!);
  expect(steps[0]).toBe(0);
  expect(steps.at(-1)).toBe(2 * 101 + 1);
});

test('event ids carry the version and the set of files already reported, and read back the same', () => {
  const files = [f(0, 'completed'), f(1, 'processing', 5), f(2, 'failed'), f(60, 'completed')];
  const set = finalFiles(files);
  expect(set).toBe((1n << 0n) | (1n << 2n) | (1n << 60n));
  const id = formatEventId({ version: 309, files: set });
  expect(id).toBe('309-1000000000000005');
  expect(parseEventId(id)).toEqual({ version: 309, files: set });
  expect(parseEventId(' 0-0 ')).toEqual({ version: 0, files: 0n });
});

test("anything that is not one of Kiln's ids is not a cursor (the stream starts over with a snapshot)", () => {
  for (const bad of [undefined, null, '', 'abc', '12', '-1-0', '1-xyz', '1-0-0', `${'9'.repeat(13)}-0`, `1-${'f'.repeat(1025)}`]) expect(parseEventId(bad)).toBeUndefined();
});

test('every event name has a data schema, and a progress event is checked for shape', () => {
  expect(JOB_EVENT_NAMES).toEqual(['snapshot', 'progress', 'file', 'completed', 'failed']);
  const ok = {
    jobId: '6f1c2f0e-8d1a-4c47-9a55-0d2f6c3b9a10',
    status: 'processing',
    progress: 40,
    totalFiles: 1,
    completedFiles: 0,
    failedFiles: 0,
    files: [{ index: 0, status: 'processing', progress: 40 }],
  };
  expect(JOB_EVENT_SCHEMAS.progress.parse(ok)).toEqual(ok);
  expect(JOB_EVENT_SCHEMAS.progress.safeParse({ ...ok, progress: 101 }).success).toBe(false);
});
