/**
 * Raster → SVG with vtracer (@neplex/vectorizer, MIT). Colour tracing by default; `mono` binarizes
 * first (luminance threshold) and traces one colour. The image is downscaled to the tracePixels limit
 * before tracing (tracing time grows with pixels and detail), and quality sets the detail: higher
 * quality keeps smaller speckles, more colour bits and more gradient layers.
 */
import fs from 'node:fs/promises';
import sharp from 'sharp';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ColorMode, Hierarchical, PathSimplifyMode, type Config } from '@neplex/vectorizer';
import { runWithin } from '../process/run.ts';
import { CodecError } from '../errors.ts';
import { displayedSize, readImageInfo, sharpError } from '../image/image.ts';
import type { Deadline, Limits, ResizeSpec } from '../engine.ts';
import { targetSize } from '../image/resize.ts';

export interface TraceOptions {
  input: string;
  output: string;
  quality: number;
  mono: boolean;
  autoOrient: boolean;
  resize?: ResizeSpec;
  limits: Pick<Limits, 'pixels' | 'tracePixels'>;
  deadline: Deadline;
  signal?: AbortSignal;
}

/** quality 1–100 → vtracer settings. */
export function traceConfig(quality: number, mono: boolean): Config {
  const q = Math.max(1, Math.min(100, quality)) / 100;
  const lerp = (a: number, b: number) => Math.round(a + (b - a) * q);
  return {
    colorMode: mono ? ColorMode.Binary : ColorMode.Color,
    hierarchical: Hierarchical.Stacked,
    // Measured on 1000×750 here: colour precision 7 with layer difference 15 took 36 s on a blurred
    // photo; 5 / 25 took 80 ms for the same picture. The top end stays at 6 / 16.
    filterSpeckle: lerp(16, 4),
    colorPrecision: lerp(3, 6),
    layerDifference: lerp(64, 16),
    mode: PathSimplifyMode.Spline,
    cornerThreshold: 60,
    lengthThreshold: 4,
    maxIterations: 10,
    spliceThreshold: 45,
    pathPrecision: q > 0.7 ? 2 : 1,
  };
}

const TRACE_CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'trace-child.ts');

export async function traceToSvg(o: TraceOptions): Promise<{ width: number; height: number; downscaled: boolean; notes: string[] }> {
  const { limits } = o;
  const maxTrace = limits.tracePixels.max;
  const info = await readImageInfo(o.input, limits);
  const { width: w0, height: h0 } = displayedSize(info, o.autoOrient);
  let { width, height } = targetSize(w0, h0, o.resize);
  let downscaled = false;
  if (width * height > maxTrace) {
    const f = Math.sqrt(maxTrace / (width * height));
    width = Math.max(1, Math.floor(width * f));
    height = Math.max(1, Math.floor(height * f));
    downscaled = true;
  }
  let raw: Buffer;
  try {
    let p = sharp(o.input, { limitInputPixels: limits.pixels.max, failOn: 'error' });
    if (o.autoOrient) p = p.autoOrient();
    if (width !== w0 || height !== h0) p = p.resize({ width, height, fit: 'fill' });
    if (o.mono) {
      // Binarize: transparent areas count as white, then a mid-grey threshold; back to RGBA for vtracer.
      const grey = await p.flatten({ background: '#ffffff' }).greyscale().threshold(128).toColourspace('b-w').png().toBuffer();
      p = sharp(grey);
    }
    raw = await p.ensureAlpha().raw().toBuffer();
  } catch (err) {
    throw sharpError(err, limits);
  }
  // Traced in a child process (see trace-child.ts): on timeout or cancel its whole process group is
  // killed, so a pathological image costs at most the deadline and never a stuck thread.
  const rawPath = `${o.output}.rgba`;
  await fs.writeFile(rawPath, raw);
  const args = [TRACE_CHILD, rawPath, String(width), String(height), JSON.stringify(traceConfig(o.quality, o.mono)), o.output];
  try {
    const r = await runWithin(o.deadline, process.execPath, args, {
      ...(o.signal ? { signal: o.signal } : {}),
      advice: `lower the quality or ${limits.tracePixels.setting}`,
    });
    if (r.code !== 0) throw new CodecError('engine_failed', 'Tracing the image to SVG failed.', { internal: r.stderrTail });
  } catch (err) {
    await fs.rm(o.output, { force: true });
    throw err;
  } finally {
    await fs.rm(rawPath, { force: true });
  }
  const notes = [o.mono ? 'Traced in one colour (mono).' : 'Traced in colour.'];
  if (downscaled) notes.push(`Downscaled to ${width}×${height} before tracing (${limits.tracePixels.setting} is ${maxTrace}).`);
  return { width, height, downscaled, notes };
}
