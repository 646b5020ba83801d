import { FILE_QUEUES, LEGACY_FILE_QUEUES, PAYLOADS, QUEUES, queueFor, workClassOf, workClassOfQueue, workClassOfTool } from '@kiln/contracts';

test('each file goes to the queue of its class of work: media, image or document, per job type', () => {
  expect(queueFor('convert', { kind: 'mp4' })).toBe('convert.media');
  expect(queueFor('convert', { kind: 'wav' })).toBe('convert.media');
  expect(queueFor('convert', { kind: 'jpg' })).toBe('convert.image');
  expect(queueFor('convert', { kind: 'svg' })).toBe('convert.image');
  expect(queueFor('convert', { kind: 'pdf' })).toBe('convert.document');
  expect(queueFor('convert', { kind: 'zip' })).toBe('convert.document');
  expect(queueFor('compress', { kind: 'mov' })).toBe('compress.media');
  expect(queueFor('compress', { kind: 'png' })).toBe('compress.image');
  expect(queueFor('compress', { kind: 'gz' })).toBe('compress.document');
});

test('a file whose kind is not known yet is classed by its media tool when the tool takes one class only, else as a document', () => {
  expect(workClassOf({ kind: null, tool: 'gif' })).toBe('media');
  expect(workClassOf({ kind: null, tool: 'transform' })).toBe('image');
  expect(workClassOf({ kind: null, tool: 'pdf-preview' })).toBe('document');
  // watermark takes images and video: which one is known only once the bytes are fetched.
  expect(workClassOf({ kind: null, tool: 'watermark' })).toBe('document');
  expect(workClassOf({ kind: null })).toBe('document');
  // A known kind wins over the tool: a watermark on a video is media work.
  expect(workClassOf({ kind: 'webm', tool: 'watermark' })).toBe('media');
});

test('every class queue and the legacy single queues carry file payloads; only class queues have a class', () => {
  for (const byClass of Object.values(FILE_QUEUES)) for (const q of Object.values(byClass)) expect(PAYLOADS[q]).toBeDefined();
  expect(Object.values(LEGACY_FILE_QUEUES)).toEqual([QUEUES.convertFile, QUEUES.compressFile]);
  expect(workClassOfQueue('compress.media')).toBe('media');
  expect(workClassOfQueue('convert.file')).toBeUndefined();
  expect(workClassOfQueue('archive.build')).toBeUndefined();
});

test('a media tool has a class before its input is read only when every input it takes is of one class', () => {
  expect(workClassOfTool('poster-frame')).toBe('media');
  expect(workClassOfTool('trim')).toBe('media');
  expect(workClassOfTool('vectorize')).toBe('image');
  expect(workClassOfTool('watermark')).toBeUndefined();
  expect(workClassOfTool('inspect')).toBeUndefined();
  expect(workClassOfTool('no-such-tool')).toBeUndefined();
});
