/**
 * The format registry and the engines agree: every pair CONVERSIONS promises (through targetsFor)
 * has an engine that accepts it, no engine accepts a pair the registry does not promise, and a
 * refused format is refused with the registry's own sentence.
 */
import os from 'node:os';
import { canConvert, INPUT_KINDS, OUTPUT_FORMATS, refusalFor, targetsFor } from '@kiln/formats';
import { convert, ENGINES, pickEngine } from '../src/convert.ts';
import { request } from './helpers/request.ts';

const pairs = INPUT_KINDS.flatMap((kind) => OUTPUT_FORMATS.map((format) => ({ kind, format })));

test('every pair the registry promises has an engine that accepts it', () => {
  const orphans = INPUT_KINDS.flatMap((kind) =>
    targetsFor(kind)
      .filter((format) => !pickEngine(kind, format))
      .map((format) => `${kind}→${format}`),
  );
  expect(orphans).toEqual([]);
});

test('no engine accepts a pair the registry does not promise', () => {
  const extra = ENGINES.flatMap((e) => pairs.filter((p) => e.accepts(p.kind, p.format) && !canConvert(p.kind, p.format)).map((p) => `${e.name}: ${p.kind}→${p.format}`));
  expect(extra).toEqual([]);
});

test('a refused format is promised to no input and refused with the registry sentence', async () => {
  const refused = OUTPUT_FORMATS.filter((f) => refusalFor(f) !== undefined);
  expect(refused).toEqual(['rar']);
  for (const kind of INPUT_KINDS) expect(canConvert(kind, 'rar')).toBe(false);
  await expect(convert(request('/nonexistent', 'zip', 'rar', os.tmpdir()))).rejects.toMatchObject({
    kind: 'unsupported',
    message: 'RAR archives cannot be created with free software; choose zip or 7z.',
  });
});
