import { isOneOf, RASTER_OUTPUTS, SHARP_INPUTS, type InputKind, type OutputFormat, type RasterFormat } from '@kiln/formats';
import type { Engine, FileConvertRequest } from '../engine.ts';
import { convertImage, requestedImage } from './image.ts';
import { outputPath } from '../output-path.ts';

async function toFile(req: FileConvertRequest, output: string) {
  const facts = await convertImage(requestedImage(req, req.input, output, req.format as RasterFormat));
  return { ...facts, path: output };
}

/** Raster → raster with sharp: one encode, straight into the output file (nothing else is written). */
export const imageEngine: Engine = {
  name: 'sharp',
  accepts: (kind: InputKind, format: OutputFormat) => isOneOf(SHARP_INPUTS, kind) && isOneOf(RASTER_OUTPUTS, format),
  run: (req) => toFile(req, outputPath(req.outputDir, req.format)),
  // sharp writes the format it is told, whatever the path's name (a scratch path has no extension).
  runToFile: (req, output) => toFile(req, output),
};
