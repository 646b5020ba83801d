/**
 * Benchmark inputs: real-looking photos (soft blotches + gradient + shapes + text + sensor grain, as
 * JPEG) generated with sharp into a cache directory, a tiny PNG for latency/overhead jobs, a test
 * video made with Kiln's own ffmpeg, and the streamed junk body for the upload figure. Nothing is
 * downloaded; the same seed gives the same corpus.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';

export interface CorpusImage {
  path: string;
  name: string;
  bytes: number;
  width: number;
  height: number;
  format: string;
}

/** Width × height of the default corpus: 2–12 MP, landscape and portrait, 4:3 and 3:2. */
const FULL_SIZES: [number, number][] = [
  [1632, 1224],
  [2048, 1536],
  [1920, 2560],
  [2592, 1728],
  [3000, 2000],
  [2448, 3264],
  [3264, 2448],
  [3456, 2304],
  [4000, 3000],
  [2848, 4272],
];
const QUICK_SIZES: [number, number][] = [
  [800, 600],
  [640, 960],
  [1200, 800],
];
const VERSION = 'v1';

function cacheRoot(): string {
  return process.env.KILN_BENCH_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'kiln-bench');
}

/** A deterministic PRNG so the corpus is the same on every machine. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function makePhoto(width: number, height: number, seed: number): Promise<Buffer> {
  const r = rng(seed);
  const hex = () =>
    `#${Math.floor(r() * 0xffffff)
      .toString(16)
      .padStart(6, '0')}`;
  // Low-frequency structure: coarse noise scaled up smoothly, like out-of-focus scenery.
  const coarse = await sharp({
    create: { width: Math.ceil(width / 24), height: Math.ceil(height / 24), channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 55 } },
  })
    .png()
    .toBuffer();
  const base = await sharp(coarse).resize(width, height, { kernel: 'cubic', fit: 'fill' }).png({ compressionLevel: 1 }).toBuffer();
  const shapes: string[] = [];
  for (let i = 0; i < 14; i++) {
    const x = r() * width,
      y = r() * height,
      s = (0.03 + r() * 0.18) * Math.min(width, height);
    shapes.push(
      r() < 0.5
        ? `<circle cx="${x.toFixed(0)}" cy="${y.toFixed(0)}" r="${s.toFixed(0)}" fill="${hex()}" fill-opacity="${(0.35 + r() * 0.5).toFixed(2)}"/>`
        : `<rect x="${x.toFixed(0)}" y="${y.toFixed(0)}" width="${(s * 1.6).toFixed(0)}" height="${s.toFixed(0)}" rx="${(s / 6).toFixed(0)}" fill="${hex()}" fill-opacity="${(0.35 + r() * 0.5).toFixed(2)}" transform="rotate(${(r() * 60 - 30).toFixed(0)} ${x.toFixed(0)} ${y.toFixed(0)})"/>`,
    );
  }
  const fs1 = Math.round(height / 14);
  const svg = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
      <defs><linearGradient id="g" x1="0" y1="0" x2="${r().toFixed(2)}" y2="1">
        <stop offset="0" stop-color="${hex()}" stop-opacity="0.65"/><stop offset="1" stop-color="${hex()}" stop-opacity="0.65"/></linearGradient></defs>
      <rect width="100%" height="100%" fill="url(#g)"/>
      ${shapes.join('\n')}
      <text x="${(width * 0.05).toFixed(0)}" y="${(height * 0.92).toFixed(0)}" font-size="${fs1}" fill="#ffffff" fill-opacity="0.85" font-family="sans-serif">Kiln bench ${width}×${height} #${seed}</text>
      <text x="${(width * 0.06).toFixed(0)}" y="${(height * 0.12).toFixed(0)}" font-size="${Math.round(fs1 / 2)}" fill="#111111" font-family="serif">The quick brown fox jumps over the lazy dog 0123456789</text>
    </svg>`,
  );
  const grain = await sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 9 } } })
    .png({ compressionLevel: 1 })
    .toBuffer();
  return sharp(base)
    .composite([
      { input: svg, blend: 'over' },
      { input: grain, blend: 'overlay' },
    ])
    .jpeg({ quality: 90, chromaSubsampling: '4:2:0' })
    .toBuffer();
}

async function describe(file: string): Promise<CorpusImage> {
  const meta = await sharp(file).metadata();
  const st = await fs.stat(file);
  return { path: file, name: path.basename(file), bytes: st.size, width: meta.width ?? 0, height: meta.height ?? 0, format: meta.format ?? 'unknown' };
}

/** The photos in `dir` (JPEG/PNG/WebP, recognised by their bytes, not names), largest first. */
export async function readCorpus(dir: string): Promise<CorpusImage[]> {
  const out: CorpusImage[] = [];
  for (const name of (await fs.readdir(dir)).sort()) {
    const file = path.join(dir, name);
    if (!(await fs.stat(file)).isFile()) continue;
    try {
      const d = await describe(file);
      if (['jpeg', 'png', 'webp'].includes(d.format) && d.width && d.height) out.push(d);
    } catch {
      // not an image: skip
    }
  }
  if (!out.length) throw new Error(`No JPEG, PNG or WebP photos in ${dir}.`);
  return out;
}

/** The default corpus, generated once into the cache. */
export async function defaultCorpus(quick: boolean, onProgress: (msg: string) => void): Promise<{ dir: string; images: CorpusImage[] }> {
  const sizes = quick ? QUICK_SIZES : FULL_SIZES;
  const dir = path.join(cacheRoot(), `corpus-${VERSION}-${quick ? 'quick' : 'full'}`);
  await fs.mkdir(dir, { recursive: true });
  for (let i = 0; i < sizes.length; i++) {
    const [w, h] = sizes[i]!;
    const file = path.join(dir, `photo-${String(i + 1).padStart(2, '0')}-${w}x${h}.jpg`);
    if (
      await fs.stat(file).then(
        (s) => s.size > 0,
        () => false,
      )
    )
      continue;
    onProgress(`generating corpus ${i + 1}/${sizes.length} (${w}×${h})`);
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, await makePhoto(w, h, 1000 + i));
    await fs.rename(tmp, file);
  }
  return { dir, images: await readCorpus(dir) };
}

/** A 64×64 PNG photo crop: the "small image" of the latency and overhead figures. */
export async function tinyImage(dir: string): Promise<CorpusImage> {
  const file = path.join(dir, 'tiny-64x64.png');
  const photo = await makePhoto(256, 256, 7);
  await fs.writeFile(file, await sharp(photo).resize(64, 64).png().toBuffer());
  return describe(file);
}
