/**
 * Archive engines on real archiver / zlib / 7za / 7z-wasm: wrapping single files, extract → repack
 * between formats, batch conversion of a zip's entries, and the safety rules (names that leave their
 * folder, links, bombs, damaged archives). Outputs are checked with 7za's own listing.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import * as tar from 'tar';
import { sniff, type InputKind } from '@kiln/formats';
import { convert } from '../src/index.ts';
import { listWith7za, rar4, rar5, rawTar, rawZip, readWith7za, sevenZaSync } from './helpers/archive-fixtures.ts';
import { limitsWith } from './helpers/limits.ts';
import { request, useScratch } from './helpers/request.ts';

const scratch = useScratch('kiln-codec-arc-');
const { file, run } = scratch;
const png = () =>
  sharp({ create: { width: 64, height: 48, channels: 3, background: '#3366cc' } })
    .png()
    .toBuffer();
/** Extracts and checks nothing landed outside `root`'s scratch. */
async function treeOf(root: string): Promise<string[]> {
  return (await fs.readdir(root, { recursive: true })).map(String).sort();
}

test('a single file becomes a zip, tar, tgz, 7z, gz, bz2 or xz holding it under its uploaded name', async () => {
  const src = await file('photo.png', await png());
  const original = await fs.readFile(src);
  for (const format of ['zip', 'tar', 'tgz', '7z'] as const) {
    const r = await run(src, 'png', format, { filename: 'holiday photo.png' });
    if (format === 'tgz') {
      // 7za sees the gzip layer first; the tarball inside is what a user unpacks.
      const names: string[] = [];
      await tar.t({
        file: r.path,
        onReadEntry: (e) => {
          names.push(e.path);
        },
      });
      expect(names).toEqual(['holiday photo.png']);
      continue;
    }
    const entries = listWith7za(r.path);
    expect(entries.map((e) => e.path)).toEqual(['holiday photo.png']);
    expect(readWith7za(r.path, 'holiday photo.png').equals(original)).toBe(true);
    expect(r.size).toBe((await fs.stat(r.path)).size);
  }
  const magic = { gz: 'gz', bz2: 'bz2', xz: 'xz' } as const;
  for (const format of ['gz', 'bz2', 'xz'] as const) {
    const r = await run(src, 'png', format, { filename: 'photo.png' });
    const bytes = await fs.readFile(r.path);
    expect(sniff(bytes)).toBe(magic[format]);
    expect(sevenZaSync(['x', '-so', r.path]).equals(original)).toBe(true);
  }
});

test('an upload with no name is stored as upload.<detected type>', async () => {
  const r = await run(await file('x', await png()), 'png', 'zip', { filename: 'upload' });
  expect(listWith7za(r.path).map((e) => e.path)).toEqual(['upload.png']);
});

test('asking for rar is refused with the free-software sentence', async () => {
  await expect(run(await file('a.png', await png()), 'png', 'rar')).rejects.toMatchObject({
    kind: 'unsupported',
    message: 'RAR archives cannot be created with free software; choose zip or 7z.',
  });
});

test('zip, tar, tgz and 7z repack into each other keeping folders and contents', async () => {
  const zip = await file(
    'in.zip',
    rawZip([
      { name: 'docs/readme.txt', data: 'hello' },
      { name: 'img/a.png', data: await png(), deflate: true },
      { name: 'empty/', mode: 0o40755 },
    ]),
  );
  const t7z = await run(zip, 'zip', '7z');
  expect(
    listWith7za(t7z.path)
      .map((e) => e.path)
      .sort(),
  ).toEqual(['docs/readme.txt', 'img/a.png']);
  expect(t7z.notes).toContain('Repacked 2 files from zip into 7z.');
  const tgz = await run(t7z.path, '7z', 'tgz');
  expect(sniff(await fs.readFile(tgz.path))).toBe('gz');
  const back = await run(tgz.path, 'gz', 'zip');
  expect(
    listWith7za(back.path)
      .map((e) => e.path)
      .sort(),
  ).toEqual(['docs/readme.txt', 'img/a.png']);
  expect(readWith7za(back.path, 'docs/readme.txt').toString()).toBe('hello');
  const tarOut = await run(back.path, 'zip', 'tar');
  const names: string[] = [];
  await tar.t({
    file: tarOut.path,
    onReadEntry: (e) => {
      if (e.type === 'File') names.push(e.path);
    },
  });
  expect(names.sort()).toEqual(['docs/readme.txt', 'img/a.png']);
});

test('a tar.gz recompresses to tar.xz, and a plain .gz to .bz2 with the inner name kept', async () => {
  const tarball = rawTar([
    { name: 'a.txt', data: 'aaa' },
    { name: 'b/c.txt', data: 'ccc' },
  ]);
  const tgz = await file('x.tar.gz', (await import('node:zlib')).gzipSync(tarball));
  const xz = await run(tgz, 'gz', 'xz', { filename: 'x.tar.gz' });
  expect(sniff(await fs.readFile(xz.path))).toBe('xz');
  const inner = sevenZaSync(['x', '-so', xz.path]);
  expect(sniff(inner)).toBe('tar');
  const gz = await file('notes.txt.gz', (await import('node:zlib')).gzipSync('just text'));
  const bz2 = await run(gz, 'gz', 'bz2', { filename: 'notes.txt.gz' });
  expect(sevenZaSync(['x', '-so', bz2.path]).toString()).toBe('just text');
});

test('RAR4 and RAR5 archives are read with 7z-wasm and repacked to zip', async () => {
  for (const [label, bytes] of [
    ['rar4', rar4([{ name: 'hello.txt', data: 'hello from rar4' }])],
    ['rar5', rar5([{ name: 'dir/hello.txt', data: 'hello from rar5' }])],
  ] as const) {
    const src = await file(`${label}.rar`, bytes);
    expect(sniff(bytes)).toBe('rar');
    const r = await run(src, 'rar', 'zip');
    const entries = listWith7za(r.path);
    expect(entries).toHaveLength(1);
    expect(readWith7za(r.path, entries[0]!.path).toString()).toBe(`hello from ${label}`);
  }
});

test('a zip entry named ../evil.txt refuses the archive and nothing is written outside the scratch folder', async () => {
  const bytes = rawZip([
    { name: 'good.txt', data: 'ok' },
    { name: '../evil.txt', data: 'pwned' },
  ]);
  expect(bytes.includes(Buffer.from('../evil.txt'))).toBe(true);
  const src = await file('evil.zip', bytes);
  const out = scratch.name('out');
  await fs.mkdir(out);
  await expect(convert(request(src, 'zip', '7z', out))).rejects.toMatchObject({ kind: 'invalid_input', message: expect.stringMatching(/outside its folder.*\.\.\/evil\.txt/) });
  await expect(fs.access(path.join(scratch.dir, 'evil.txt'))).rejects.toThrow();
  expect((await treeOf(out)).some((p) => p.includes('evil'))).toBe(false);
});

test('absolute paths, backslash escapes and symlinks are refused in zip, tar and 7z', async () => {
  const cases: [string, InputKind, Buffer][] = [
    ['abs.zip', 'zip', rawZip([{ name: '/etc/evil', data: 'x' }])],
    ['bs.zip', 'zip', rawZip([{ name: '..\\evil.txt', data: 'x' }])],
    ['link.zip', 'zip', rawZip([{ name: 'passwd', data: '/etc/passwd', mode: 0o120777 }])],
    ['dots.tar', 'tar', rawTar([{ name: 'a/../../evil.txt', data: 'x' }])],
    ['link.tar', 'tar', rawTar([{ name: 'passwd', data: '/etc/passwd', type: '2' }])],
  ];
  for (const [name, kind, bytes] of cases) {
    await expect(run(await file(name, bytes), kind, 'zip')).rejects.toMatchObject({ kind: 'invalid_input', message: expect.stringMatching(/archives like this are refused/) });
  }
  // 7z with a symlink, made by 7za from a real one.
  const srcDir = scratch.name('7zsrc');
  await fs.mkdir(srcDir);
  await fs.writeFile(path.join(srcDir, 'a.txt'), 'a');
  await fs.symlink('/etc/passwd', path.join(srcDir, 'link'));
  const seven = `${scratch.name('link')}.7z`;
  sevenZaSync(['a', seven, '*'], srcDir);
  await expect(run(seven, '7z', 'zip')).rejects.toMatchObject({ kind: 'invalid_input', message: expect.stringMatching(/symbolic link.*"link"/) });
});

test('a zip bomb is refused by the expansion ratio and by the expanded size, naming each setting', async () => {
  const zeros = Buffer.alloc(50 * 1024 * 1024);
  const bomb = await file('bomb.zip', rawZip([{ name: 'zeros.bin', data: zeros, deflate: true }]));
  expect((await fs.stat(bomb)).size).toBeLessThan(100_000);
  await expect(run(bomb, 'zip', 'tar')).rejects.toMatchObject({ kind: 'limit_exceeded', message: expect.stringMatching(/expansion ratio.*ARCHIVE_MAX_EXPANSION_RATIO/) });
  await expect(run(bomb, 'zip', 'tar', { limits: limitsWith({ expandedBytes: 10 * 1024 * 1024, expansionRatio: 1_000_000 }) })).rejects.toMatchObject({
    kind: 'limit_exceeded',
    message: expect.stringMatching(/expanded size.*ARCHIVE_MAX_EXPANDED_BYTES/),
  });
  const gzBomb = await file('bomb.gz', (await import('node:zlib')).gzipSync(zeros, { level: 9 }));
  await expect(run(gzBomb, 'gz', 'zip')).rejects.toMatchObject({ kind: 'limit_exceeded', message: expect.stringMatching(/ARCHIVE_MAX_EXPANSION_RATIO/) });
});

test('too many entries are refused before anything is extracted, naming ARCHIVE_MAX_ENTRIES', async () => {
  const many = await file('many.zip', rawZip(Array.from({ length: 30 }, (_, i) => ({ name: `f${i}.txt`, data: String(i) }))));
  const out = scratch.name('out');
  await fs.mkdir(out);
  await expect(convert(request(many, 'zip', 'tar', out, { limits: limitsWith({ archiveEntries: 10 }) }))).rejects.toMatchObject({
    kind: 'limit_exceeded',
    message: expect.stringMatching(/entries.*30.*ARCHIVE_MAX_ENTRIES/),
  });
  // Only the (empty) extraction folder exists: nothing was extracted.
  expect(await treeOf(out)).toEqual(['extracted']);
});

test('damaged archives fail as invalid_input, never as a crash', async () => {
  const zip = rawZip([{ name: 'a.txt', data: 'hello world' }]);
  const cases: [string, InputKind, Buffer][] = [
    ['trunc.zip', 'zip', zip.subarray(0, zip.length - 10)],
    ['junk.7z', '7z', Buffer.concat([Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4]), Buffer.alloc(100, 7)])],
    ['junk.gz', 'gz', Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(50, 9)])],
    ['junk.rar', 'rar', Buffer.concat([Buffer.from('Rar!\x1a\x07\x01\x00', 'latin1'), Buffer.alloc(40, 3)])],
    ['junk.xz', 'xz', Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]), Buffer.alloc(40, 1)])],
  ];
  for (const [name, kind, bytes] of cases) {
    await expect(run(await file(name, bytes), kind, 'zip')).rejects.toMatchObject({ kind: 'invalid_input' });
  }
});

test('a zip of images converts each entry to webp and returns a zip; other entries are listed in the notes', async () => {
  const zip = await file(
    'photos.zip',
    rawZip([
      { name: 'a.png', data: await png() },
      {
        name: 'sub/b.jpg',
        data: await sharp({ create: { width: 30, height: 20, channels: 3, background: '#ff0000' } })
          .jpeg()
          .toBuffer(),
      },
      { name: 'notes.txt', data: 'not an image' },
    ]),
  );
  const r = await run(zip, 'zip', 'webp');
  expect(r.format).toBe('zip');
  expect(r.mimeType).toBe('application/zip');
  const entries = listWith7za(r.path)
    .map((e) => e.path)
    .sort();
  expect(entries).toEqual(['a.webp', 'sub/b.webp']);
  expect(sniff(readWith7za(r.path, 'a.webp'))).toBe('webp');
  expect((await sharp(readWith7za(r.path, 'sub/b.webp')).metadata()).width).toBe(30);
  expect(r.notes).toEqual(
    expect.arrayContaining(['Converted 2 of 3 files in the archive to webp; the results are in a zip.', expect.stringMatching(/^notes\.txt: not a recognised file type/)]),
  );
});

test('a zip with nothing convertible fails as unsupported, and one whose only image is corrupt as invalid_input', async () => {
  const text = await file('text.zip', rawZip([{ name: 'a.txt', data: 'a' }]));
  await expect(run(text, 'zip', 'png')).rejects.toMatchObject({ kind: 'unsupported', message: expect.stringMatching(/None of the 1 files/) });
  const broken = (await png()).subarray(0, 60);
  const bad = await file('bad.zip', rawZip([{ name: 'broken.png', data: broken }]));
  await expect(run(bad, 'zip', 'jpg')).rejects.toMatchObject({ kind: 'invalid_input', message: expect.stringMatching(/^No file in the archive converted\. broken\.png: /) });
});
