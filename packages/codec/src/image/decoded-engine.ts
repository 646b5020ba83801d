/**
 * Raster output from inputs sharp cannot read itself (HEIC, SVG, PDF), and HEIF output as real
 * HEVC HEIC when heif-enc is configured (else sharp's AV1-coded HEIF, which the notes say).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { DECODED_INPUTS, INPUT_INFO, isOneOf, RASTER_OUTPUTS, SHARP_INPUTS, type InputKind, type OutputFormat, type RasterFormat } from '@kiln/formats';
import type { ConvertRequest, ConvertResult, Deadline, Engine } from '../engine.ts';
import { imageEngine } from './engine.ts';
import { encodeHeicWithHeifEnc } from './heic.ts';
import { convertImage, requestedImage } from './image.ts';
import { rasterSource } from './sources.ts';
import { outputPath } from '../output-path.ts';

/** PNG intermediate (oriented, resized) → heif-enc → HEVC HEIC. */
async function heicWithHeifEnc(req: ConvertRequest, deadline: Deadline, input: string, autoOrient: boolean, notes: string[]): Promise<ConvertResult> {
  const mid = path.join(req.outputDir, 'heif-enc-input.png');
  await convertImage(requestedImage(req, input, mid, 'png', autoOrient));
  const output = outputPath(req.outputDir, 'heif');
  await encodeHeicWithHeifEnc(mid, output, {
    heifEncPath: req.engines.heifEncPath!,
    quality: req.quality,
    lossless: req.lossless,
    deadline,
    ...(req.signal ? { signal: req.signal } : {}),
  });
  await fs.rm(mid, { force: true });
  const meta = await sharp(output).metadata();
  return {
    path: output,
    format: 'heif',
    mimeType: INPUT_INFO.heic.mime,
    size: (await fs.stat(output)).size,
    ...(meta.width ? { width: meta.width } : {}),
    ...(meta.height ? { height: meta.height } : {}),
    appliedQuality: req.lossless ? 100 : Math.round(req.quality),
    notes: [...notes, 'HEIC written with HEVC by heif-enc (HEIF_ENC_PATH).'],
  };
}

/** heic / svg / pdf → jpg png webp avif tiff gif heif. */
export const decodedImageEngine: Engine = {
  name: 'decoded-raster',
  accepts: (kind: InputKind, format: OutputFormat) => isOneOf(DECODED_INPUTS, kind) && isOneOf(RASTER_OUTPUTS, format),
  async run(req, deadline) {
    const src = await rasterSource(req);
    // Intermediates are already upright; orienting again would apply nothing, but be explicit.
    if (req.format === 'heif' && req.engines.heifEncPath) return heicWithHeifEnc(req, deadline, src.path, false, src.notes);
    const output = outputPath(req.outputDir, req.format);
    const facts = await convertImage(requestedImage(req, src.path, output, req.format as RasterFormat, false));
    await fs.rm(src.path, { force: true });
    return { ...facts, path: output, notes: [...src.notes, ...(facts.notes ?? [])] };
  },
};

/** sharp's own inputs → heif through heif-enc, only when it is configured (else the sharp engine runs). */
export const heifEncEngine: Engine = {
  name: 'heif-enc',
  accepts: (kind: InputKind, format: OutputFormat) => format === 'heif' && isOneOf(SHARP_INPUTS, kind),
  async run(req, deadline) {
    if (!req.engines.heifEncPath) return imageEngine.run(req, deadline);
    return heicWithHeifEnc(req, deadline, req.input, req.autoOrient, []);
  },
};
