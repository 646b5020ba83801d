/**
 * The codec's single entry for a conversion: picks the engine from the input kind and the target
 * format using the shared format registry, so `GET /api/formats` and the codec can never disagree.
 */
import path from 'node:path';
import { INPUT_INFO, OUTPUT_INFO, canConvert, type InputKind, type OutputFormat } from '@kiln/formats';
import { CodecError } from './errors.ts';
import { convertImage, type OutputFacts, type RasterFormat } from './image/image.ts';
import type { ResizeSpec } from './image/resize.ts';

export interface CodecLimits {
  maxPixels: number;
}

export interface ConvertRequest {
  input: string;
  inputKind: InputKind;
  /** Directory the output is written into (a scratch dir owned by the caller). */
  outputDir: string;
  format: OutputFormat;
  quality: number;
  resize?: ResizeSpec;
  autoOrient: boolean;
  stripMetadata: boolean;
  lossless: boolean;
  mono: boolean;
  limits: CodecLimits;
  avifEffort: number;
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export interface ConvertResult extends OutputFacts {
  path: string;
}

export async function convert(req: ConvertRequest): Promise<ConvertResult> {
  if (!canConvert(req.inputKind, req.format)) {
    throw new CodecError('unsupported', `Converting ${req.inputKind} to ${req.format} is not supported.`);
  }
  const family = INPUT_INFO[req.inputKind].family;
  const output = path.join(req.outputDir, `output.${OUTPUT_INFO[req.format].extension}`);
  if (req.signal?.aborted) throw new CodecError('cancelled', 'The conversion was cancelled.');
  switch (family) {
    case 'image': {
      const facts = await convertImage({
        input: req.input,
        output,
        format: req.format as RasterFormat,
        quality: req.quality,
        ...(req.resize ? { resize: req.resize } : {}),
        autoOrient: req.autoOrient,
        stripMetadata: req.stripMetadata,
        lossless: req.lossless,
        limits: { maxPixels: req.limits.maxPixels },
        avifEffort: req.avifEffort,
      });
      return { ...facts, path: output };
    }
    default:
      throw new CodecError('unsupported', `Converting ${req.inputKind} to ${req.format} is not supported yet.`);
  }
}
