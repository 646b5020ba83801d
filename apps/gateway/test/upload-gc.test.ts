/**
 * upload-gc.ts: every upload's bytes pass through HeadCapture, which runs a minor collection each
 * UPLOAD_GC_EVERY_BYTES when the process has `gc` (--expose-gc, as scripts/start.ts starts the
 * gateway), and does nothing without it.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { UPLOAD_GC_EVERY_BYTES } from '../src/upload-gc.ts';
import { HeadCapture } from '../src/upload.ts';

const sink = () =>
  new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  });
/** `n` chunks of 64 KiB, as Node's HTTP parser hands a request body over. */
const body = (n: number) => Readable.from(Array.from({ length: n }, () => Buffer.alloc(64 * 1024)));

const original = globalThis.gc;
afterEach(() => {
  globalThis.gc = original;
});

test('an upload runs one minor collection per UPLOAD_GC_EVERY_BYTES that passes through it', async () => {
  const calls: unknown[] = [];
  globalThis.gc = ((opts?: unknown) => {
    calls.push(opts);
  }) as typeof globalThis.gc;
  const chunks = Math.ceil((3 * UPLOAD_GC_EVERY_BYTES) / (64 * 1024));
  const capture = new HeadCapture();
  await pipeline(body(chunks), capture, sink());
  expect(calls.length).toBeGreaterThanOrEqual(2);
  expect(calls.length).toBeLessThanOrEqual(3);
  expect(calls.every((c) => JSON.stringify(c) === JSON.stringify({ type: 'minor' }))).toBe(true);
  // The head is still captured as before.
  expect(capture.head.length).toBeGreaterThan(0);
});

test('without --expose-gc an upload streams as before', async () => {
  globalThis.gc = undefined;
  const capture = new HeadCapture();
  await pipeline(body(Math.ceil((2 * UPLOAD_GC_EVERY_BYTES) / (64 * 1024))), capture, sink());
  expect(capture.head.length).toBeGreaterThan(0);
});
