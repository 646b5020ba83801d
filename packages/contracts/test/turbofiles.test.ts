/** The TurboFiles dialect's request documents, resize mapping and page parameters. */
import { AppError } from '../src/errors.ts';
import { resolveResize } from '../src/resize-presets.ts';
import { createFileDocument, createTaskDocument, jsonPointer, parseCursor, parseDocument, parsePageQuery, resizeOptionsFor } from '../src/turbofiles.ts';

/** The AppError a call throws, as {code, pointer or parameter, message}. */
function refusal(fn: () => unknown): { code: string; at: unknown; message: string } {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return { code: err.code, at: err.detail?.pointer ?? err.detail?.parameter, message: err.message };
  }
  throw new Error('expected a refusal');
}

const seed = {
  data: {
    attributes: { format: { input: 'image/png', output: 'image/webp' }, settings: { resize: { width: 640, height: 640, max_width: 1280, max_height: 1280 } } },
    relationship: { input: { data: { id: 'abc' } } },
  },
};

test("the seed page's task body parses as it is, singular relationship and no type included", () => {
  const doc = parseDocument(createTaskDocument, seed);
  expect(doc.data.relationship?.input.data.id).toBe('abc');
  expect(doc.data.attributes.settings?.resize).toEqual({ width: 640, height: 640, max_width: 1280, max_height: 1280 });
});

test.each([
  ['no body', undefined, 'invalid_request', ''],
  ['an array', [], 'invalid_request', ''],
  ['no data', {}, 'invalid_field', '/data'],
  ['data not an object', { data: 'x' }, 'invalid_field', '/data'],
  ['no attributes', { data: {} }, 'invalid_field', '/data/attributes'],
  ['no format', { data: { attributes: {} } }, 'invalid_field', '/data/attributes/format'],
  ['format output missing', { data: { attributes: { format: { input: 'png' } } } }, 'invalid_field', '/data/attributes/format/output'],
  ['format output a number', { data: { attributes: { format: { input: 'png', output: 7 } } } }, 'invalid_field', '/data/attributes/format/output'],
  ['format output empty', { data: { attributes: { format: { input: 'png', output: '' } } } }, 'invalid_field', '/data/attributes/format/output'],
  ['an unknown attribute', { data: { attributes: { format: { input: 'png', output: 'webp' }, colour: 'red' } } }, 'invalid_field', '/data/attributes/colour'],
  ['an unknown top-level member', { data: seed.data, included: [] }, 'invalid_field', '/included'],
  [
    'a width of 0',
    { data: { attributes: { format: { input: 'png', output: 'webp' }, settings: { resize: { width: 0 } } } } },
    'invalid_field',
    '/data/attributes/settings/resize/width',
  ],
  [
    'a fractional height',
    { data: { attributes: { format: { input: 'png', output: 'webp' }, settings: { resize: { height: 1.5 } } } } },
    'invalid_field',
    '/data/attributes/settings/resize/height',
  ],
  [
    'a string max_width',
    { data: { attributes: { format: { input: 'png', output: 'webp' }, settings: { resize: { max_width: '640' } } } } },
    'invalid_field',
    '/data/attributes/settings/resize/max_width',
  ],
  [
    'a huge max_height',
    { data: { attributes: { format: { input: 'png', output: 'webp' }, settings: { resize: { max_height: 1e9 } } } } },
    'invalid_field',
    '/data/attributes/settings/resize/max_height',
  ],
  ['an unknown setting', { data: { attributes: { format: { input: 'png', output: 'webp' }, settings: { crop: true } } } }, 'invalid_field', '/data/attributes/settings/crop'],
  ['an input without an id', { data: { ...seed.data, relationship: { input: { data: {} } } } }, 'invalid_field', '/data/relationship/input/data/id'],
  ['an input of another type', { data: { ...seed.data, relationships: { input: { data: { type: 'tasks', id: 'x' } } } } }, 'invalid_field', '/data/relationships/input/data/type'],
  ['a null input', { data: { ...seed.data, relationship: { input: { data: null } } } }, 'invalid_field', '/data/relationship/input/data'],
])('a task document with %s is refused naming the member', (_what, body, code, pointer) => {
  expect(refusal(() => parseDocument(createTaskDocument, body))).toMatchObject({ code, at: pointer });
});

test('the sentence for an unknown member lists what the object may hold', () => {
  const r = refusal(() => parseDocument(createFileDocument, { data: { attributes: { format: 'png', size: 1, name: 'x' } } }));
  expect(r.message).toBe('/data/attributes/name is not a member Kiln reads here; /data/attributes may hold format, size.');
  expect(refusal(() => parseDocument(createFileDocument, { data: { attributes: { format: 'png' } } })).message).toBe('/data/attributes/size is required.');
  expect(refusal(() => parseDocument(createFileDocument, { data: { attributes: { format: 'png', size: -1 } } })).message).toBe(
    '/data/attributes/size must be the file size in bytes, an integer ≥ 1.',
  );
});

test('JSON pointers escape ~ and / in member names', () => {
  expect(jsonPointer(['data', 'a/b', 'c~d', 0])).toBe('/data/a~1b/c~0d/0');
});

test('resize: width and height fit inside, both make a box, max_* cap them, nothing set keeps the size', () => {
  expect(resizeOptionsFor({ width: 640, height: 640, max_width: 1280, max_height: 1280 })).toEqual({ resize: 'box', resizeWidth: 640, resizeHeight: 640 });
  expect(resizeOptionsFor({ width: 2000, max_width: 1280 })).toEqual({ resize: 'width', resizeWidth: 1280, resizeHeight: null });
  expect(resizeOptionsFor({ max_height: 300 })).toEqual({ resize: 'height', resizeWidth: null, resizeHeight: 300 });
  expect(resizeOptionsFor({ width: 800, max_height: 600 })).toEqual({ resize: 'box', resizeWidth: 800, resizeHeight: 600 });
  expect(resizeOptionsFor({ width: null })).toEqual({ resize: 'original', resizeWidth: null, resizeHeight: null });
  expect(resizeOptionsFor(undefined)).toEqual({ resize: 'original', resizeWidth: null, resizeHeight: null });
  // The box reaches the codec as one fit-inside resize (which never upscales).
  expect(resolveResize(resizeOptionsFor({ width: 640, height: 480 }))).toEqual({ width: 640, height: 480, fit: 'inside' });
});

test('page parameters: size 1 to 100 (default 10), cursors from links or bare timestamps, nothing else', () => {
  expect(parsePageQuery({})).toEqual({ size: 10 });
  expect(parsePageQuery({ 'page[size]': '100' }).size).toBe(100);
  const id = '3c90c3cc-0d44-4b50-8888-8dd25736052a';
  expect(parsePageQuery({ 'page[after]': `2024-11-22T16:20:28.048315Z,${id}` }).after).toEqual({ at: '2024-11-22T16:20:28.048315Z', id });
  expect(parsePageQuery({ 'page[before]': '2024-11-22T16:19:28.048315893Z' }).before).toEqual({ at: '2024-11-22T16:19:28.048315893Z' });
  for (const bad of ['0', '101', '-1', '1.5', 'ten', '', '0010'])
    expect(refusal(() => parsePageQuery({ 'page[size]': bad }))).toMatchObject({ code: 'invalid_field', at: 'page[size]' });
  expect(refusal(() => parsePageQuery({ 'page[size]': ['1', '2'] }))).toMatchObject({ at: 'page[size]' });
  expect(refusal(() => parsePageQuery({ 'page[number]': '2' }))).toMatchObject({ at: 'page[number]' });
  for (const bad of ['yesterday', '2024-02-30T00:00:00Z', '2024-11-22T16:20:28Z,not-an-id', '0000-01-01T00:00:00Z', "2024-11-22T16:20:28Z'; drop"]) {
    expect(parseCursor(bad)).toBeUndefined();
    expect(refusal(() => parsePageQuery({ 'page[after]': bad }))).toMatchObject({ code: 'invalid_field', at: 'page[after]' });
  }
});
