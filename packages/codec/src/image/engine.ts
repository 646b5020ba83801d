import { isOneOf, RASTER_OUTPUTS, SHARP_INPUTS, type InputKind, type OutputFormat, type RasterFormat } from '@kiln/formats';
import type { Engine } from '../engine.ts';
import { convertImage, requestedImage } from './image.ts';
import { outputPath } from '../output-path.ts';

/** Raster → raster with sharp. */
export const imageEngine: Engine = {
  name: 'sharp',
  accepts: (kind: InputKind, format: OutputFormat) => isOneOf(SHARP_INPUTS, kind) && isOneOf(RASTER_OUTPUTS, format),
  async run(req) {
    const output = outputPath(req.outputDir, req.format);
    const facts = await convertImage(requestedImage(req, req.input, output, req.format as RasterFormat));
    return { ...facts, path: output };
  },
};
