/**
 * Real-looking test images made at test time with sharp: gradients + noise + text, optional EXIF
 * orientation and GPS. Nothing is downloaded; every fixture's provenance is this file.
 */
import sharp from 'sharp';

export async function photo(width: number, height: number, opts: { format?: 'jpeg' | 'png' | 'webp'; orientation?: number; marker?: boolean; quality?: number } = {}): Promise<Buffer> {
  const noise = await sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).png().toBuffer();
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
  if (opts.orientation) img = img.withMetadata({ orientation: opts.orientation });
  switch (opts.format ?? 'jpeg') {
    case 'png': return img.png().toBuffer();
    case 'webp': return img.webp({ quality: opts.quality ?? 90 }).toBuffer();
    default: return img.jpeg({ quality: opts.quality ?? 90 }).toBuffer();
  }
}

export async function animatedGif(width = 64, height = 48, frames = 4): Promise<Buffer> {
  const tiles = await Promise.all(
    Array.from({ length: frames }, (_, i) => sharp({ create: { width, height, channels: 3, background: { r: 60 * i, g: 255 - 50 * i, b: 120 } } }).png().toBuffer()),
  );
  return sharp(tiles, { join: { animated: true } }).gif({ delay: Array(frames).fill(100), loop: 0 }).toBuffer();
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
  const W = m.width!, H = m.height!;
  const { data, info } = await sharp(img).extract({ left: Math.floor(left * W), top: Math.floor(top * H), width: Math.max(1, Math.floor(w * W)), height: Math.max(1, Math.floor(h * H)) }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let r = 0, g = 0, b = 0;
  const n = info.width * info.height;
  for (let i = 0; i < data.length; i += 3) { r += data[i]!; g += data[i + 1]!; b += data[i + 2]!; }
  return { r: r / n, g: g / n, b: b / n };
}
