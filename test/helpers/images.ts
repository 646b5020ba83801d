/**
 * Real-looking test images made at test time with sharp: gradients + noise + text, optional EXIF
 * orientation, camera EXIF with GPS, and a Display P3 ICC profile. Nothing is downloaded; every fixture's provenance is this file.
 */
import sharp from 'sharp';

export interface PhotoOptions {
  format?: 'jpeg' | 'png' | 'webp' | 'avif' | 'tiff';
  orientation?: number;
  marker?: boolean;
  quality?: number;
  /** Camera EXIF with a GPS position (as a phone writes it). */
  gps?: boolean;
  /** Embed a Display P3 ICC profile (pixels are then P3 values, not sRGB). */
  icc?: 'p3';
  /** Noise seed; the same seed gives the same pixels (default: from the size). */
  seed?: number;
}

/**
 * Gaussian-ish noise from a seeded generator (mulberry32, sum of four uniforms), as a PNG. sharp's own
 * `create.noise` draws fresh randomness on every run; tests that search for sizes near a boundary
 * need the same pixels every time, so fixtures are deterministic for a given seed.
 */
export function seededNoise(width: number, height: number, sigma: number, seed: number): Promise<Buffer> {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const n = width * height * 3;
  const data = Buffer.allocUnsafe(n);
  // The sum of four uniforms has variance 4/12: scale it to the requested sigma around 128.
  const k = sigma / Math.sqrt(4 / 12);
  for (let i = 0; i < n; i++) {
    const v = 128 + (next() + next() + next() + next() - 2) * k;
    data[i] = Math.min(Math.max(v, 0), 255);
  }
  return sharp(data, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 1 })
    .toBuffer();
}

/** The GPS block `photo({gps:true})` writes: 51°30'N 0°7'W. */
export const PHOTO_GPS = { GPSLatitudeRef: 'N', GPSLatitude: '51/1 30/1 0/1', GPSLongitudeRef: 'W', GPSLongitude: '0/1 7/1 0/1' };

export async function photo(width: number, height: number, opts: PhotoOptions = {}): Promise<Buffer> {
  const noise = await seededNoise(width, height, 40, opts.seed ?? width * 7919 + height);
  const svg = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
      <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
        <stop offset="0" stop-color="#1e6fd9" stop-opacity="0.8"/><stop offset="1" stop-color="#f0a020" stop-opacity="0.8"/></linearGradient></defs>
      <rect width="100%" height="100%" fill="url(#g)"/>
      <circle cx="${width * 0.6}" cy="${height * 0.55}" r="${Math.min(width, height) * 0.2}" fill="#2a9d4a" fill-opacity="0.7"/>
      <text x="${width * 0.05}" y="${height * 0.9}" font-size="${Math.max(12, Math.round(height / 10))}" fill="#ffffff" font-family="sans-serif">Kiln test</text>
      ${opts.marker ? `<rect x="0" y="0" width="${Math.round(width / 5)}" height="${Math.round(height / 5)}" fill="#ff0000"/>` : ''}
    </svg>`,
  );
  let img = sharp(noise).composite([{ input: svg, blend: 'over' }]);
  if (opts.gps) img = img.withExif({ IFD0: { Make: 'Kiln', Model: 'Test Camera', Copyright: 'Kiln test' }, IFD3: PHOTO_GPS });
  if (opts.icc) img = img.withIccProfile(opts.icc);
  if (opts.orientation) img = img.withMetadata({ orientation: opts.orientation });
  switch (opts.format ?? 'jpeg') {
    case 'png':
      return img.png().toBuffer();
    case 'webp':
      return img.webp({ quality: opts.quality ?? 90 }).toBuffer();
    case 'avif':
      return img.avif({ quality: opts.quality ?? 80, effort: 0 }).toBuffer();
    case 'tiff':
      return img.tiff({ compression: 'lzw' }).toBuffer();
    default:
      return img.jpeg({ quality: opts.quality ?? 90 }).toBuffer();
  }
}

export async function animatedGif(width = 64, height = 48, frames = 4): Promise<Buffer> {
  const tiles = await Promise.all(
    Array.from({ length: frames }, (_, i) =>
      sharp({ create: { width, height, channels: 3, background: { r: 60 * i, g: 255 - 50 * i, b: 120 } } })
        .png()
        .toBuffer(),
    ),
  );
  return sharp(tiles, { join: { animated: true } })
    .gif({ delay: Array(frames).fill(100), loop: 0 })
    .toBuffer();
}

/** Mean absolute difference of two images' pixels at the same size, 0 (identical) to 255. */
export async function pixelDiff(a: Buffer, b: Buffer, size = 64): Promise<number> {
  const ra = await sharp(a).resize(size, size, { fit: 'fill' }).removeAlpha().raw().toBuffer();
  const rb = await sharp(b).resize(size, size, { fit: 'fill' }).removeAlpha().raw().toBuffer();
  let sum = 0;
  for (let i = 0; i < ra.length; i++) sum += Math.abs(ra[i]! - rb[i]!);
  return sum / ra.length;
}

/** Average colour of a region given as fractions of the image. */
export async function regionColour(img: Buffer, left: number, top: number, w: number, h: number): Promise<{ r: number; g: number; b: number }> {
  const m = await sharp(img).metadata();
  const W = m.width!,
    H = m.height!;
  const { data, info } = await sharp(img)
    .extract({ left: Math.floor(left * W), top: Math.floor(top * H), width: Math.max(1, Math.floor(w * W)), height: Math.max(1, Math.floor(h * H)) })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  let r = 0,
    g = 0,
    b = 0;
  const n = info.width * info.height;
  for (let i = 0; i < data.length; i += 3) {
    r += data[i]!;
    g += data[i + 1]!;
    b += data[i + 2]!;
  }
  return { r: r / n, g: g / n, b: b / n };
}
