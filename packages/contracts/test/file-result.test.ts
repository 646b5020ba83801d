/** The stored file result: strict where the worker writes it, forgiving where the gateway reads old rows. */
import { fileResultExtras, fileResultSchema, readFileResult } from '../src/file-result.ts';

const full = {
  format: 'webp',
  mimeType: 'image/webp',
  finalSize: 1200,
  savedPercent: 40.5,
  appliedQuality: 82,
  width: 640,
  height: 480,
  durationSeconds: 1.5,
  targetMet: false,
  targetReason: 'The smallest encode is larger.',
  encodes: 4,
  notes: ['Animation kept.'],
};

test('what a worker writes reads back field for field, through JSON as it is stored', () => {
  const written = fileResultSchema.parse(full);
  expect(readFileResult(JSON.parse(JSON.stringify(written)))).toEqual(full);
  // Optional facts may be absent (or undefined, which JSON drops).
  const minimal = fileResultSchema.parse({ format: 'zip', mimeType: 'application/zip', finalSize: 10, savedPercent: 0, appliedQuality: null, width: undefined });
  expect(JSON.parse(JSON.stringify(minimal))).toEqual({ format: 'zip', mimeType: 'application/zip', finalSize: 10, savedPercent: 0, appliedQuality: null });
});

test('the write side refuses a result without its fixed fields or with a wrong type', () => {
  expect(fileResultSchema.safeParse({ ...full, format: undefined }).success).toBe(false);
  expect(fileResultSchema.safeParse({ ...full, width: '640' }).success).toBe(false);
  expect(fileResultSchema.safeParse({ ...full, notes: 'one note' }).success).toBe(false);
});

test('a row from an older worker still reads: missing fields are left out, a field of the wrong type is dropped alone', () => {
  const old = { format: 'png', mimeType: 'image/png', width: '32', height: 32, notes: ['kept', 3] };
  expect(readFileResult(old)).toEqual({ format: 'png', mimeType: 'image/png', height: 32 });
  expect(fileResultExtras(readFileResult(old))).toEqual({ height: 32 });
});

test('fields this version does not know are dropped, not refused (a newer worker wrote the row)', () => {
  expect(readFileResult({ ...full, pages: 3, colourSpace: 'srgb' })).toEqual(full);
});

test('no result, or something that is not an object, reads as nothing', () => {
  for (const raw of [null, undefined, 'webp', 42, ['webp']]) expect(readFileResult(raw)).toEqual({});
});
