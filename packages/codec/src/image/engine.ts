import path from 'node:path';
import { INPUT_INFO, OUTPUT_INFO, type InputKind, type OutputFormat } from '@kiln/formats';
import type { Engine } from '../engine.ts';
import { convertImage, RASTER_OUTPUTS, type RasterFormat } from './image.ts';

const SHARP_INPUTS: ReadonlySet<InputKind> = new Set(['jpg', 'png', 'webp', 'avif', 'tiff', 'gif']);

/** Raster → raster with sharp. */
export const imageEngine: Engine = {
  name: 'sharp',
  accepts: (kind: InputKind, format: OutputFormat) =>
    INPUT_INFO[kind].family === 'image' && SHARP_INPUTS.has(kind) && (RASTER_OUTPUTS as readonly string[]).includes(format),
  async run(req) {
    const output = path.join(req.outputDir, `output.${OUTPUT_INFO[req.format].extension}`);
    const facts = await convertImage({
      input: req.input,
      output,
      format: req.format as RasterFormat,
      quality: req.quality,
      ...(req.resize ? { resize: req.resize } : {}),
      autoOrient: req.autoOrient,
      stripMetadata: req.stripMetadata,
      lossless: req.lossless,
      limits: { maxPixels: req.limits.maxPixels, maxPixelsSetting: req.limitSettings.maxPixels },
      avifEffort: req.avifEffort,
    });
    return { ...facts, path: output };
  },
};
