/** The one deadline helper: time left, the one timeout message, and child-process timeouts reported as the call's. */
import { CodecError, createDeadline, runWithin } from '../src/index.ts';
import { rejection } from './helpers/rejection.ts';

const LIMIT = { max: 30, setting: 'FILE_TIMEOUT_SECONDS' };

test('a fresh deadline has its whole limit left, in milliseconds', () => {
  const d = createDeadline(LIMIT);
  expect(d.limit).toBe(LIMIT);
  const left = d.left();
  expect(left).toBeGreaterThan(25_000);
  expect(left).toBeLessThanOrEqual(30_000);
});

test('once no time is left, left() throws the timeout naming the limit and its setting', () => {
  const d = createDeadline({ max: 0, setting: 'FILE_TIMEOUT_SECONDS' }, 'The compression');
  expect(() => d.left()).toThrow(CodecError);
  try {
    d.left();
  } catch (e) {
    expect(e).toMatchObject({ kind: 'timeout', message: 'The compression did not finish within 0 s; raise FILE_TIMEOUT_SECONDS to allow more.' });
  }
});

test("wrap re-throws an inner timeout as the call's, keeps the inner one as cause, and lets other errors through", async () => {
  const d = createDeadline(LIMIT);
  const inner = new CodecError('timeout', 'ffmpeg did not finish within 3 s; the limit is configurable.');
  const e = await rejection(d.wrap(() => Promise.reject(inner), 'lower the quality'));
  expect(e.message).toBe('The conversion did not finish within 30 s; raise FILE_TIMEOUT_SECONDS to allow more, or lower the quality.');
  expect(e.cause).toBe(inner);
  const other = new CodecError('invalid_input', 'The file is damaged.');
  await expect(d.wrap(() => Promise.reject(other))).rejects.toBe(other);
  await expect(d.wrap(async () => 42)).resolves.toBe(42);
});

test("a process run within a deadline is stopped when it ends and fails with the call's message", async () => {
  const d = createDeadline({ max: 0.3, setting: 'FILE_TIMEOUT_SECONDS' });
  const e = await rejection(runWithin(d, 'sleep', ['30']));
  expect(e.kind).toBe('timeout');
  expect(e.message).toBe('The conversion did not finish within 0.3 s; raise FILE_TIMEOUT_SECONDS to allow more.');
  expect((e.cause as CodecError).message).toMatch(/^sleep did not finish within [\d.]+ s/);
});

test('a process is not started once the deadline has passed', async () => {
  let spawned = false;
  const e = await rejection(runWithin(createDeadline({ max: 0, setting: 'FILE_TIMEOUT_SECONDS' }), 'true', [], { onSpawn: () => (spawned = true) }));
  expect(e.kind).toBe('timeout');
  expect(spawned).toBe(false);
});
