/**
 * Compression (API.md §2.6): keep the input's format (or the closest compatible one: HEIC → JPEG,
 * MKV/AVI → MP4, WAV → FLAC) and make it smaller. Modes: quality and target-size, plus lossless;
 * metadata stripped by default; never larger than the input unless the format changed or metadata
 * had to go (see `finish` in image.ts). Images go to image.ts, audio/video to media.ts; other kinds
 * fall back to a plain conversion to their own format with the never-larger rule.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { compressTargetFor, IMAGE_COMPRESS_FORMATS, INPUT_INFO, isOneOf, MEDIA_COMPRESS_FORMATS, OUTPUT_INFO, type OutputFormat } from '@kiln/formats';
import { CodecError } from '../errors.ts';
import { convert } from '../convert.ts';
import type { ConvertRequest, ConvertResult } from '../engine.ts';
import { compressImage } from './image.ts';
import { compressMedia } from './media.ts';

export interface CompressRequest extends Omit<ConvertRequest, 'format'> {
  /** Asked-for output format; undefined keeps the input's own (or the closest compatible one). */
  format?: OutputFormat | undefined;
  mode: 'quality' | 'target-size';
  targetBytes: number | null;
  /** Size of the input file, for the never-larger rule and savedPercent. */
  originalSize: number;
}

export interface CompressResult extends ConvertResult {
  /** target-size only: whether the output is at or under targetBytes. */
  targetMet?: boolean;
  /** Why the target could not be met. */
  targetReason?: string;
  /** How many encodes the result took. */
  encodes?: number;
}

export async function compress(req: CompressRequest): Promise<CompressResult> {
  const target = req.format ?? compressTargetFor(req.inputKind);
  if (!target) throw new CodecError('unsupported', `Files of type ${req.inputKind} cannot be compressed.`);
  if (req.signal?.aborted) throw new CodecError('cancelled', 'The compression was cancelled.');
  if (req.mode === 'target-size' && (req.targetBytes === null || !(req.targetBytes >= 1))) {
    throw new CodecError('invalid_input', 'mode=target-size needs targetBytes, a whole number of bytes ≥ 1.');
  }
  const formatChanged = target !== req.inputKind;
  const family = INPUT_INFO[req.inputKind].family;
  const deadline = Date.now() + req.timeoutMs;

  if (family === 'image' && isOneOf(IMAGE_COMPRESS_FORMATS, target)) {
    return compressImage({
      input: req.input, inputKind: req.inputKind, outputDir: req.outputDir, format: target, formatChanged,
      mode: req.mode, targetBytes: req.targetBytes, quality: req.quality, lossless: req.lossless,
      stripMetadata: req.stripMetadata, autoOrient: req.autoOrient, ...(req.resize ? { resize: req.resize } : {}),
      limits: req.limits,
      avifEffort: req.avifEffort, originalSize: req.originalSize, deadline, timeoutSetting: req.timeoutSetting,
      ...(req.signal ? { signal: req.signal } : {}), ...(req.onProgress ? { onProgress: req.onProgress } : {}),
    });
  }
  if ((family === 'video' || family === 'audio') && isOneOf(MEDIA_COMPRESS_FORMATS, target)) {
    return compressMedia({
      input: req.input, inputKind: req.inputKind, outputDir: req.outputDir, format: target, formatChanged,
      mode: req.mode, targetBytes: req.targetBytes, quality: req.quality, lossless: req.lossless, stripMetadata: req.stripMetadata,
      ...(req.resize ? { resize: req.resize } : {}),
      limits: req.limits,
      ...(req.engines.ffmpegPath ? { ffmpegPath: req.engines.ffmpegPath } : {}),
      ...(req.engines.ffprobePath ? { ffprobePath: req.engines.ffprobePath } : {}),
      deadline, timeoutSetting: req.timeoutSetting, originalSize: req.originalSize,
      ...(req.signal ? { signal: req.signal } : {}), ...(req.onProgress ? { onProgress: req.onProgress } : {}),
    });
  }

  // Anything else (archives): a conversion to the kept format at a level mapped from quality, never larger.
  const result = await convert({ ...req, format: target });
  const notes = [...(result.notes ?? [])];
  if (req.mode === 'target-size') notes.push(`Target size is not supported for ${target}; compressed at quality ${req.quality} instead.`);
  if (!formatChanged && result.size >= req.originalSize) {
    const kept = path.join(req.outputDir, `original.${OUTPUT_INFO[target].extension}`);
    await fs.copyFile(req.input, kept);
    notes.push('The compressed file would not have been smaller; the original is returned unchanged.');
    return { ...result, path: kept, size: req.originalSize, appliedQuality: null, notes, ...(req.targetBytes !== null && req.mode === 'target-size' ? { targetMet: req.originalSize <= req.targetBytes } : {}) };
  }
  return { ...result, ...(notes.length ? { notes } : {}), ...(req.targetBytes !== null && req.mode === 'target-size' ? { targetMet: result.size <= req.targetBytes } : {}) };
}
