/** The registry's groups are what CONVERSIONS is made of, and its refusals are one sentence each. */
import {
  ANIMATION_OUTPUTS,
  ARCHIVE_OUTPUTS,
  BATCH_OUTPUTS,
  CONVERSIONS,
  INPUT_KINDS,
  isOneOf,
  OUTPUT_FORMATS,
  OUTPUT_INFO,
  POSTER_OUTPUTS,
  RASTER_OUTPUTS,
  READABLE_ARCHIVES,
  INPUT_INFO,
  refusalFor,
  targetsFor,
} from '../src/index.ts';

test('refusalFor names rar and nothing else', () => {
  expect(refusalFor('rar')).toBe('RAR archives cannot be created with free software; choose zip or 7z.');
  for (const f of OUTPUT_FORMATS.filter((f) => f !== 'rar')) expect(refusalFor(f)).toBeUndefined();
});

test('a video goes to every raster format, as an animation or as a poster frame, never both', () => {
  expect([...ANIMATION_OUTPUTS, ...POSTER_OUTPUTS].sort()).toEqual([...RASTER_OUTPUTS].sort());
  expect(POSTER_OUTPUTS.filter((f) => isOneOf(ANIMATION_OUTPUTS, f))).toEqual([]);
});

test('every input converts into every archive format, and archives to the batch formats', () => {
  for (const kind of INPUT_KINDS) expect(targetsFor(kind)).toEqual(expect.arrayContaining([...ARCHIVE_OUTPUTS]));
  for (const kind of READABLE_ARCHIVES) expect(targetsFor(kind)).toEqual(expect.arrayContaining([...BATCH_OUTPUTS]));
  expect(CONVERSIONS.archive.targets).not.toContain('mp4');
});

test('readable archives are exactly the inputs of the archive and compressed families', () => {
  const families = INPUT_KINDS.filter((k) => ['archive', 'compressed'].includes(INPUT_INFO[k].family));
  expect([...READABLE_ARCHIVES].sort()).toEqual(families.sort());
});

test('every input kind has a MIME type and every output format a MIME type and an extension', () => {
  for (const k of INPUT_KINDS) expect(INPUT_INFO[k]).toEqual({ family: expect.any(String), mime: expect.stringMatching(/\//) });
  for (const f of OUTPUT_FORMATS)
    expect(OUTPUT_INFO[f]).toEqual({ family: expect.any(String), mime: expect.stringMatching(/\//), extension: expect.stringMatching(/^[a-z0-9]+$/) });
});
