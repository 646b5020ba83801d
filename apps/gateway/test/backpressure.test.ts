import { AppError } from '@kiln/contracts';
import { loadConfig } from '@kiln/config';
import { backpressureLimits, createBackpressure, queueFullRefusal } from '../src/backpressure.ts';

const limits = backpressureLimits(
  loadConfig({
    QUEUE_MAX_DEPTH_MEDIA: '3',
    QUEUE_MAX_WAIT_SECONDS_IMAGE: '60',
    QUEUE_MAX_DEPTH_DOCUMENT: '0',
    QUEUE_MAX_WAIT_SECONDS_DOCUMENT: '0',
    QUEUE_RETRY_AFTER_SECONDS: '7',
  }),
);
const row = (queue: string, ready: number, deferred = 0, oldestReadySeconds: number | null = null) => ({ queue, ready, deferred, active: 1, oldestReadySeconds });

test('a class at its depth limit is refused with 429 queue_full, Retry-After and the setting named; below it is not', () => {
  expect(queueFullRefusal(row('convert.media', 2), limits)).toBeUndefined();
  const err = queueFullRefusal(row('convert.media', 2, 1), limits)!;
  expect(err).toBeInstanceOf(AppError);
  expect(err.status).toBe(429);
  expect(err.code).toBe('queue_full');
  expect(err.headers).toEqual({ 'Retry-After': '7' });
  expect(err.message).toBe(
    'Kiln already has 3 video/audio files waiting for a worker (convert.media), its limit (QUEUE_MAX_DEPTH_MEDIA=3); retry in 7 s (Retry-After), or ask the operator to add workers or raise QUEUE_MAX_DEPTH_MEDIA.',
  );
  expect(err.detail).toEqual({ limit: 'QUEUE_MAX_DEPTH_MEDIA', max: 3, waiting: 3, queue: 'convert.media', class: 'media', retryAfterSeconds: 7 });
  // The compress queue of the same class has a limit of its own.
  expect(queueFullRefusal(row('compress.media', 2), limits)).toBeUndefined();
});

test('a class whose oldest waiting file has waited past its limit is refused, naming QUEUE_MAX_WAIT_SECONDS_<CLASS>', () => {
  expect(queueFullRefusal(row('convert.image', 1, 0, 59), limits)).toBeUndefined();
  const err = queueFullRefusal(row('convert.image', 1, 0, 61.4), limits)!;
  expect(err.code).toBe('queue_full');
  expect(err.message).toContain('has waited 61 s, past its limit (QUEUE_MAX_WAIT_SECONDS_IMAGE=60)');
  expect(err.detail).toMatchObject({ limit: 'QUEUE_MAX_WAIT_SECONDS_IMAGE', max: 60, waitedSeconds: 61 });
});

test('0 turns a limit off, and the legacy single queues are never refused', () => {
  expect(queueFullRefusal(row('convert.document', 1_000_000, 0, 1_000_000), limits)).toBeUndefined();
  expect(queueFullRefusal(row('convert.file', 1_000_000, 0, 1_000_000), limits)).toBeUndefined();
});

const files = (entries: [string, number][]) => new Map(entries) as Parameters<ReturnType<typeof createBackpressure>['check']>[0];

test('the backlog is read once per period for every submission, what this gateway lets in meanwhile counts, and only the queues asked about', async () => {
  let reads = 0;
  let media = 1;
  const bp = createBackpressure({
    read: async () => {
      reads++;
      return [row('convert.media', media), row('convert.image', 0)];
    },
    limits,
    ttlMs: 60_000,
  });
  await expect(bp.check(files([['convert.image', 50]]))).resolves.toBeUndefined();
  // 1 waiting + 1 let in = 2 < 3: accepted; then 3 counted: refused.
  await expect(bp.check(files([['convert.media', 1]]))).resolves.toBeUndefined();
  await expect(bp.check(files([['convert.media', 1]]))).resolves.toBeUndefined();
  await expect(
    bp.check(
      files([
        ['convert.image', 1],
        ['convert.media', 1],
      ]),
    ),
  ).rejects.toMatchObject({ code: 'queue_full', detail: { waiting: 3 } });
  expect(reads).toBe(1);
  // A fresh read replaces the local count.
  media = 0;
  const fresh = createBackpressure({ read: async () => [row('convert.media', media)], limits, ttlMs: 0 });
  for (let i = 0; i < 5; i++) await expect(fresh.check(files([['convert.media', 1]]))).resolves.toBeUndefined();
});

test('an unreadable backlog refuses nothing (the submission’s own transaction reports the outage)', async () => {
  const bp = createBackpressure({ read: async () => Promise.reject(new Error('connection refused')), limits });
  await expect(bp.check(files([['convert.media', 100]]))).resolves.toBeUndefined();
});
