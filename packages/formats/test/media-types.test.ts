/** Formats named by MIME type or bare extension (the TurboFiles dialect), read from the registry's own tables. */
import { INPUT_INFO, INPUT_KINDS, OUTPUT_FORMATS, OUTPUT_INFO, inputKindOf, mediaTypeTable, outputFormatOf, sameContent } from '../src/index.ts';

test('every input kind is named by its own MIME type and by its own name, whatever the case or parameters', () => {
  for (const kind of INPUT_KINDS) {
    expect(inputKindOf(INPUT_INFO[kind].mime)).toBe(kind);
    expect(inputKindOf(` ${INPUT_INFO[kind].mime.toUpperCase()}; charset=binary `)).toBe(kind);
    expect(inputKindOf(kind)).toBe(kind);
    expect(inputKindOf(`.${kind.toUpperCase()}`)).toBe(kind);
  }
});

test('the spellings clients send for inputs: image/jpeg and jpg, legacy x- types, jpeg, tif', () => {
  expect(inputKindOf('image/jpeg')).toBe('jpg');
  expect(inputKindOf('image/jpg')).toBe('jpg');
  expect(inputKindOf('jpeg')).toBe('jpg');
  expect(inputKindOf('tif')).toBe('tiff');
  expect(inputKindOf('audio/x-wav')).toBe('wav');
  expect(inputKindOf('application/x-zip-compressed')).toBe('zip');
  expect(inputKindOf('tgz')).toBe('gz');
  for (const unknown of ['', 'image/bmp', 'bmp', 'text/plain', 'image/', 'png/image', 'docx']) expect(inputKindOf(unknown)).toBeUndefined();
});

test('every output format is named by its MIME type (gz for the shared application/gzip) and by its extension', () => {
  for (const f of OUTPUT_FORMATS) {
    expect(outputFormatOf(OUTPUT_INFO[f].extension)).toBe(f);
    if (f !== 'tgz') expect(outputFormatOf(OUTPUT_INFO[f].mime)).toBe(f);
  }
  expect(outputFormatOf('application/gzip')).toBe('gz');
  expect(outputFormatOf('image/webp')).toBe('webp');
  expect(outputFormatOf('jpeg')).toBe('jpg');
  expect(outputFormatOf('image/jpg')).toBe('jpg');
  expect(outputFormatOf('audio/mp4')).toBe('m4a');
  expect(outputFormatOf('video/mp4')).toBe('mp4');
  for (const unknown of ['image/bmp', 'bmp', 'video/x-matroska', '']) expect(outputFormatOf(unknown)).toBeUndefined();
});

test('declared and sniffed kinds agree exactly, or within one container family, never across families', () => {
  expect(sameContent('png', 'png')).toBe(true);
  expect(sameContent('m4a', 'mp4')).toBe(true);
  expect(sameContent('mov', 'mp4')).toBe(true);
  expect(sameContent('webm', 'mkv')).toBe(true);
  expect(sameContent('png', 'jpg')).toBe(false);
  expect(sameContent('mp4', 'webm')).toBe(false);
  expect(sameContent('png', undefined)).toBe(false);
});

test('the media-type table lists every spelling with what it names', () => {
  const t = mediaTypeTable();
  expect(t.inputs['image/png']).toBe('png');
  expect(t.inputs.jpeg).toBe('jpg');
  expect(t.outputs['image/webp']).toBe('webp');
  expect(t.outputs.jpeg).toBe('jpg');
  for (const [name, kind] of Object.entries(t.inputs)) expect(inputKindOf(name)).toBe(kind);
  for (const [name, format] of Object.entries(t.outputs)) expect(outputFormatOf(name)).toBe(format);
});
