import path from 'node:path';
import { isOneOf, OUTPUT_INFO, RASTER_OUTPUTS, SHARP_INPUTS, type InputKind, type OutputFormat, type RasterFormat } from '@kiln/formats';
import type { Engine } from '../engine.ts';
import { convertImage } from './image.ts';

/** Raster → raster with sharp. */
export const imageEngine: Engine = {
  name: 'sharp',
  accepts: (kind: InputKind, format: OutputFormat) => isOneOf(SHARP_INPUTS, kind) && isOneOf(RASTER_OUTPUTS, format),
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
      limits: req.limits,
      avifEffort: req.avifEffort,
    });
    return { ...facts, path: output };
  },
};
