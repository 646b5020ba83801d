import { sniff } from '../src/sniff.ts';

const b = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const ftyp = (brand: string, ...compat: string[]) => {
  const body = b('ftyp', brand, [0, 0, 0, 0], ...compat);
  const size = Buffer.alloc(4);
  size.writeUInt32BE(body.length + 4);
  return Buffer.concat([size, body]);
};

test.each([
  ['jpg', b([0xff, 0xd8, 0xff, 0xe0])],
  ['png', b([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])],
  ['gif', b('GIF89a')],
  ['webp', b('RIFF', [0, 0, 0, 0], 'WEBP')],
  ['wav', b('RIFF', [0, 0, 0, 0], 'WAVE')],
  ['tiff', b([0x49, 0x49, 0x2a, 0x00])],
  ['avif', ftyp('avif', 'mif1', 'miaf')],
  ['avif', ftyp('mif1', 'avif')],
  ['heic', ftyp('heic', 'mif1')],
  ['mov', ftyp('qt  ')],
  ['m4a', ftyp('M4A ')],
  ['mp4', ftyp('isom', 'iso2', 'avc1')],
  ['pdf', b('%PDF-1.7')],
  ['webm', b([0x1a, 0x45, 0xdf, 0xa3], 'xxxxwebm')],
  ['mp3', b('ID3')],
  ['ogg', b('OggS')],
  ['flac', b('fLaC')],
  ['zip', b([0x50, 0x4b, 0x03, 0x04])],
  ['rar', b('Rar!', [0x1a, 0x07, 0x01, 0x00])],
  ['7z', b([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])],
  ['gz', b([0x1f, 0x8b, 0x08])],
  ['bz2', b('BZh9')],
  ['xz', b([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['tar', Buffer.concat([Buffer.alloc(257), b('ustar')])],
  ['svg', b('<?xml version="1.0"?>\n<!-- made by hand -->\n<svg xmlns="http://www.w3.org/2000/svg"/>')],
])('%s is recognised from its bytes', (kind, bytes) => {
  expect(sniff(bytes)).toBe(kind);
});

test('text, HTML and empty input are not recognised', () => {
  expect(sniff(b('hello world'))).toBeUndefined();
  expect(sniff(b('<html><body><svg></svg></body></html>'))).toBeUndefined();
  expect(sniff(Buffer.alloc(0))).toBeUndefined();
});
