/**
 * Target-size compression cost: encodes and milliseconds per result for JPEG, WebP and AVIF on
 * photos generated here (gradients + noise + text, like test/helpers/images.ts) of 2–12 MP.
 * Three targets per photo (0.15, 0.4 and 1 bit per pixel). Prints one line per result and the
 * medians per format; the aim is a median of at most 8 encodes.
 *
 *   node scripts/bench-compress.ts [--mp 2,6,12] [--formats jpg,webp,avif] [--avif-effort 2]
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadConfig } from '@kiln/config';
import { compress } from '@kiln/codec';
import { codecLimits, limitFrom } from '@kiln/worker-runtime';
import type { OutputFormat } from '@kiln/formats';

const { values } = parseArgs({
  options: { mp: { type: 'string', default: '2,6,12' }, formats: { type: 'string', default: 'jpg,webp,avif' }, 'avif-effort': { type: 'string', default: '2' } },
});
const megapixels = values.mp.split(',').map(Number);
const formats = values.formats.split(',') as OutputFormat[];
const BITS_PER_PIXEL = [0.15, 0.4, 1];
/** The limits a worker started with this environment would use. */
const config = loadConfig(process.env);
const limits = codecLimits(config);

async function makePhoto(mp: number): Promise<Buffer> {
  const width = Math.round(Math.sqrt((mp * 1e6 * 4) / 3));
  const height = Math.round((width * 3) / 4);
  const noise = await sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 25 } } })
    .png()
    .toBuffer();
  const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#1e6fd9" stop-opacity="0.8"/><stop offset="1" stop-color="#f0a020" stop-opacity="0.8"/></linearGradient></defs>
    <rect width="100%" height="100%" fill="url(#g)"/><circle cx="${width * 0.6}" cy="${height * 0.55}" r="${height * 0.2}" fill="#2a9d4a" fill-opacity="0.7"/>
    <text x="${width * 0.05}" y="${height * 0.9}" font-size="${Math.round(height / 10)}" fill="#fff" font-family="sans-serif">Kiln bench</text></svg>`);
  return sharp(noise)
    .composite([{ input: svg, blend: 'over' }])
    .jpeg({ quality: 95 })
    .toBuffer();
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'kiln-bench-compress-'));
const stats = new Map<OutputFormat, { encodes: number[]; ms: number[]; ratio: number[]; met: number }>();
try {
  for (const mp of megapixels) {
    const photo = await makePhoto(mp);
    const input = path.join(dir, `photo-${mp}mp.jpg`);
    await fs.writeFile(input, photo);
    const meta = await sharp(photo).metadata();
    const pixels = meta.width! * meta.height!;
    for (const format of formats) {
      for (const bpp of BITS_PER_PIXEL) {
        const target = Math.round((pixels * bpp) / 8);
        const outputDir = await fs.mkdtemp(path.join(dir, 'out-'));
        const t0 = performance.now();
        const r = await compress({
          input,
          inputKind: 'jpg',
          outputDir,
          format,
          mode: 'target-size',
          targetBytes: target,
          originalSize: photo.length,
          quality: 82,
          autoOrient: true,
          stripMetadata: true,
          lossless: false,
          mono: false,
          limits,
          engines: {},
          animation: { maxFps: 15, maxWidth: 480 },
          avifEffort: Number(values['avif-effort']),
          timeout: limitFrom(config, 'FILE_TIMEOUT_SECONDS'),
        });
        const ms = performance.now() - t0;
        const s = stats.get(format) ?? { encodes: [], ms: [], ratio: [], met: 0 };
        s.encodes.push(r.encodes ?? 0);
        s.ms.push(ms);
        s.ratio.push(r.size / target);
        if (r.targetMet && r.size >= 0.9 * target) s.met++;
        stats.set(format, s);
        console.log(
          `${mp} MP ${meta.width}×${meta.height} ${format.padEnd(4)} target ${String(target).padStart(8)} → ${String(r.size).padStart(8)} (${((r.size / target) * 100).toFixed(1)} %) q${r.appliedQuality} ${r.width}×${r.height} encodes ${r.encodes} ${Math.round(ms)} ms`,
        );
        await fs.rm(outputDir, { recursive: true, force: true });
      }
    }
  }
  console.log('\nformat  results  in-band(90–100 %)  median encodes  median ms  max encodes');
  for (const [format, s] of stats) {
    console.log(
      `${format.padEnd(6)}  ${String(s.ms.length).padStart(7)}  ${String(s.met).padStart(17)}  ${String(median(s.encodes)).padStart(14)}  ${String(Math.round(median(s.ms))).padStart(9)}  ${String(Math.max(...s.encodes)).padStart(11)}`,
    );
  }
} finally {
  await fs.rm(dir, { recursive: true, force: true });
}
