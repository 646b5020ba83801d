/**
 * HEIC/HEIF (HEVC) in and out. sharp's prebuilt libvips has no HEVC decoder, so input goes through
 * heic-decode (libheif compiled to WASM) into raw RGBA and from there to a lossless intermediate
 * sharp reads. libheif applies the file's own rotation/mirror boxes while decoding (HEIF says EXIF
 * orientation must be ignored), so the intermediate is already upright. Output as real HEVC HEIC
 * needs libheif's `heif-enc`, run as a child process when its path is configured.
 */
import fs from 'node:fs/promises';
import sharp from 'sharp';
import decode from 'heic-decode';
import type { Deadline } from '../engine.ts';
import { CodecError, limitExceeded } from '../errors.ts';
import { runWithin } from '../process/run.ts';
import type { ImageLimits } from './image.ts';

/** Decodes the primary image of a HEIC file into a PNG at `output`; returns its size. */
export async function decodeHeicToPng(input: string, output: string, limits: ImageLimits): Promise<{ width: number; height: number; images: number }> {
  const buffer = await fs.readFile(input);
  let images: Awaited<ReturnType<typeof decode.all>>;
  try {
    images = await decode.all({ buffer });
  } catch (err) {
    throw new CodecError('invalid_input', 'The file could not be decoded as HEIC: it is corrupt, truncated or uses a coding Kiln cannot read.', {
      cause: err,
      internal: String(err),
    });
  }
  try {
    const first = images[0];
    if (!first) throw new CodecError('invalid_input', 'The HEIC file holds no image.');
    // Checked before decoding: heic-decode allocates width × height × 4 bytes up front.
    if (first.width * first.height > limits.pixels.max) {
      throw limitExceeded('The image', `${first.width}×${first.height} pixels`, limits.pixels, ' pixels');
    }
    let pixels: { width: number; height: number; data: Uint8ClampedArray };
    try {
      pixels = await first.decode();
    } catch (err) {
      throw new CodecError('invalid_input', 'The file could not be decoded as HEIC: its image data is damaged.', { cause: err, internal: String(err) });
    }
    await sharp(Buffer.from(pixels.data.buffer, pixels.data.byteOffset, pixels.data.byteLength), { raw: { width: pixels.width, height: pixels.height, channels: 4 } })
      .png({ compressionLevel: 1 })
      .toFile(output);
    return { width: pixels.width, height: pixels.height, images: images.length };
  } finally {
    images.dispose();
  }
}

export interface HeifEncOptions {
  heifEncPath: string;
  quality: number;
  lossless: boolean;
  deadline: Deadline;
  signal?: AbortSignal;
}

/** Encodes a PNG/JPEG into HEVC HEIC with heif-enc (libheif + x265). */
export async function encodeHeicWithHeifEnc(input: string, output: string, o: HeifEncOptions): Promise<void> {
  const args = [...(o.lossless ? ['-L'] : ['-q', String(Math.max(1, Math.min(100, Math.round(o.quality))))]), '-o', output, input];
  const r = await runWithin(o.deadline, o.heifEncPath, args, { ...(o.signal ? { signal: o.signal } : {}) });
  const ok =
    r.code === 0 &&
    (await fs.stat(output).then(
      (s) => s.size > 0,
      () => false,
    ));
  if (!ok) {
    await fs.rm(output, { force: true });
    throw new CodecError('engine_failed', `heif-enc failed (exit code ${r.code}); check HEIF_ENC_PATH points to a working heif-enc with an HEVC encoder.`, {
      internal: r.stderrTail,
    });
  }
}
