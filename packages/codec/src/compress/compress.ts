/**
 * Compression (API.md §2.6): keep the input's format (or the closest compatible one) and make it
 * smaller. Modes: quality, target-size, lossless; metadata stripped by default; never larger.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { OUTPUT_INFO, compressTargetFor, type OutputFormat } from '@kiln/formats';
import { CodecError } from '../errors.ts';
import { convert, type ConvertRequest, type ConvertResult } from '../convert.ts';

export interface CompressRequest extends Omit<ConvertRequest, 'format'> {
  /** Asked-for output format; undefined keeps the input's own (or the closest compatible one). */
  format?: OutputFormat;
  mode: 'quality' | 'target-size';
  targetBytes: number | null;
  /** Size of the input file, for the never-larger rule and savedPercent. */
  originalSize: number;
}

export interface CompressResult extends ConvertResult {
  targetMet?: boolean;
  targetReason?: string;
  encodes?: number;
}

export async function compress(req: CompressRequest): Promise<CompressResult> {
  const target = req.format ?? compressTargetFor(req.inputKind);
  if (!target) throw new CodecError('unsupported', `Files of type ${req.inputKind} cannot be compressed.`);
  const result = await convert({ ...req, format: target });
  const notes = [...(result.notes ?? [])];
  // Never larger: when re-encoding did not help and nothing else was asked of us, return the input.
  if (!req.format && target === req.inputKind && result.size >= req.originalSize) {
    const kept = path.join(req.outputDir, `original.${OUTPUT_INFO[target].extension}`);
    await fs.copyFile(req.input, kept);
    notes.push('The compressed file would not have been smaller; the original is returned unchanged.');
    return { ...result, path: kept, size: req.originalSize, appliedQuality: null, notes };
  }
  return { ...result, ...(notes.length ? { notes } : {}) };
}
