/**
 * The media tools' option parsing: form strings and stored values alike, Convertly's names with
 * Kiln's aliases, empty fields as "not set", and a 400 that names the field and what it takes.
 */
import { AppError, parseToolOptions, toolCatalog, toolInputRefusal, toolOutputFormat, TOOL_NAMES, TOOLS } from '../src/index.ts';

function refusal(f: () => unknown): AppError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AppError);
    return e as AppError;
  }
  throw new Error('expected a refusal');
}

test('form strings parse to numbers and booleans with the published defaults; stored values parse the same', () => {
  const o = parseToolOptions('transform', { width: '120', flip: 'true', format: 'PNG', async: 'true', saveToStorage: 'false', unknown: 'x' });
  expect(o).toMatchObject({ width: 120, flip: true, flop: false, fit: 'cover', format: 'png', quality: 86, rotate: 0 });
  expect(o).not.toHaveProperty('unknown');
  expect(o).not.toHaveProperty('async');
  expect(parseToolOptions('transform', JSON.parse(JSON.stringify(o)))).toEqual(o);
  expect(parseToolOptions('poster-frame', {})).toEqual({ timestamp: 1, format: 'jpg', quality: 86 });
});

test('empty fields mean "not set" (Convertly’s MCP client sends them for options it leaves out)', () => {
  expect(parseToolOptions('transform', { width: '', preset: '', cropLeft: '', format: '' })).toMatchObject({ format: 'webp', fit: 'cover' });
  expect(parseToolOptions('trim', { format: '', start: '1', duration: '2' })).toEqual({ start: 1, duration: 2, mode: 'accurate', quality: 82 });
});

test('aliases: time → timestamp, count → frames, compression → quality / detail; the published name wins', () => {
  expect(parseToolOptions('poster-frame', { time: '2.5' }).timestamp).toBe(2.5);
  expect(parseToolOptions('poster-frame', { time: '2.5', timestamp: '4' }).timestamp).toBe(4);
  expect(parseToolOptions('storyboard', { count: '9' }).frames).toBe(9);
  expect(parseToolOptions('vectorize', { compression: '40' }).detail).toBe(40);
  expect(parseToolOptions('extract-audio', { compression: '30' }).quality).toBe(30);
});

test('crop=x,y,w,h is the four crop fields; a partial crop names the missing one', () => {
  expect(parseToolOptions('transform', { crop: '1, 2, 30, 40' })).toMatchObject({ cropLeft: 1, cropTop: 2, cropWidth: 30, cropHeight: 40 });
  expect(refusal(() => parseToolOptions('transform', { crop: '1,2,3' })).message).toBe(
    'transform: crop must be four numbers x,y,width,height (e.g. crop=10,10,200,100); got "1,2,3".',
  );
  const partial = refusal(() => parseToolOptions('transform', { cropLeft: '1', cropTop: '2' }));
  expect(partial.detail).toEqual({ field: 'cropWidth', tool: 'transform' });
});

test('a bad value is 400 invalid_field naming the tool, the field, what it takes and what came', () => {
  const e = refusal(() => parseToolOptions('gif', { fps: '0' }));
  expect(e.code).toBe('invalid_field');
  expect(e.status).toBe(400);
  expect(e.message).toBe('gif: fps must be an integer from 1 to 60; got "0".');
  expect(refusal(() => parseToolOptions('watermark', { position: 'middle' })).message).toMatch(
    /^watermark: position must be one of top-left, top, top-right, left, center, right, bottom-left, bottom, bottom-right; got "middle"\.$/,
  );
  expect(refusal(() => parseToolOptions('transform', { flip: 'yes' })).message).toBe('transform: flip must be "true" or "false"; got "yes".');
  expect(refusal(() => parseToolOptions('trim', { end: '3', duration: '1' })).detail).toEqual({ field: 'end', tool: 'trim' });
});

test('which inputs a tool takes, in one sentence; output formats known before the bytes', () => {
  expect(toolInputRefusal('poster-frame', 'file ("a.mp3")', 'mp3')).toBe('poster-frame takes video; file ("a.mp3") is mp3 (audio).');
  expect(toolInputRefusal('thumbnail', 'file ("a.pdf")', 'pdf')).toBeUndefined();
  expect(toolInputRefusal('inspect', 'file', 'zip')).toBeUndefined();
  expect(toolOutputFormat({ tool: 'image-to-pdf', options: parseToolOptions('image-to-pdf', {}) }, 'png')).toBe('pdf');
  expect(toolOutputFormat({ tool: 'watermark', options: parseToolOptions('watermark', { text: 'x' }) }, 'mov')).toBe('mp4');
  expect(toolOutputFormat({ tool: 'strip-metadata', options: {} }, 'png')).toBeUndefined();
});

test('the catalog has every tool, JSON Schema with defaults, and says which one is unavailable and why', () => {
  const catalog = toolCatalog();
  expect(catalog.map((t) => t.name)).toEqual([...TOOL_NAMES]);
  const thumb = catalog.find((t) => t.name === 'thumbnail')!;
  expect(thumb.options).toMatchObject({ type: 'object', properties: { width: { type: 'integer', default: 512 }, fit: { enum: ['cover', 'contain', 'inside', 'fill'] } } });
  expect(catalog.find((t) => t.name === 'convert')!.options).toMatchObject({ required: ['format'] });
  expect(catalog.find((t) => t.name === 'remove-background')).toMatchObject({ available: false, unavailableReason: TOOLS['remove-background'].unavailable });
});
