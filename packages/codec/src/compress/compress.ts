/**
 * Compression (API.md §2.6): keep the input's format (or the closest compatible one: HEIC → JPEG,
 * MKV/AVI → MP4, WAV → FLAC) and make it smaller. Modes: quality and target-size, plus lossless;
 * metadata stripped by default; never larger than the input unless the format changed or metadata
 * had to go (see `finish` in image.ts). Images go to image.ts, audio/video to media.ts; other kinds
 * fall back to a plain conversion to their own format with the never-larger rule.
 */
import fs from 'node:fs/promises';
import { compressTargetFor, IMAGE_COMPRESS_FORMATS, INPUT_INFO, isOneOf, MEDIA_COMPRESS_FORMATS } from '@kiln/formats';
import { CodecError } from '../errors.ts';
import { convert, pickEngine } from '../convert.ts';
import { createDeadline } from '../deadline.ts';
import { compressImage } from './image.ts';
import { compressMedia } from './media.ts';
import type { CompressRequest, CompressResult } from './request.ts';
import { outputPath } from '../output-path.ts';
import type { InputKind, OutputFormat } from '@kiln/formats';

/** Which path compress() takes for a kind and its kept format: the image or media compressor, or a plain conversion. */
function compressRoute(kind: InputKind, target: OutputFormat): 'image' | 'media' | 'convert' {
  const family = INPUT_INFO[kind].family;
  if (family === 'image' && isOneOf(IMAGE_COMPRESS_FORMATS, target)) return 'image';
  if ((family === 'video' || family === 'audio') && isOneOf(MEDIA_COMPRESS_FORMATS, target)) return 'media';
  return 'convert';
}

/**
 * The engine that will handle a request, by name (`sharp`, `ffmpeg`, `archive`…), for metrics and
 * logs. Known before the call runs, so a failure counts against the engine as well as a success;
 * `none` when nothing takes the pair.
 */
export function engineNameFor(mode: 'convert' | 'compress', kind: InputKind, format: OutputFormat | undefined): string {
  const target = format ?? (mode === 'compress' ? compressTargetFor(kind) : undefined);
  if (!target) return 'none';
  const route = mode === 'compress' ? compressRoute(kind, target) : 'convert';
  if (route === 'image') return 'sharp';
  if (route === 'media') return 'ffmpeg';
  return pickEngine(kind, target)?.name ?? 'none';
}

export async function compress(req: CompressRequest): Promise<CompressResult> {
  const target = req.format ?? compressTargetFor(req.inputKind);
  if (!target) throw new CodecError('unsupported', `Files of type ${req.inputKind} cannot be compressed.`);
  if (req.signal?.aborted) throw new CodecError('cancelled', 'The compression was cancelled.');
  if (req.mode === 'target-size' && (req.targetBytes === null || !(req.targetBytes >= 1))) {
    throw new CodecError('invalid_input', 'mode=target-size needs targetBytes, a whole number of bytes ≥ 1.');
  }
  const formatChanged = target !== req.inputKind;
  const deadline = createDeadline(req.timeout, 'The compression');
  const route = compressRoute(req.inputKind, target);

  if (route === 'image' && isOneOf(IMAGE_COMPRESS_FORMATS, target)) {
    return compressImage({ ...req, format: target, formatChanged, deadline });
  }
  if (route === 'media' && isOneOf(MEDIA_COMPRESS_FORMATS, target)) {
    return compressMedia({ ...req, format: target, formatChanged, deadline });
  }

  // Anything else (archives): a conversion to the kept format at a level mapped from quality, never larger.
  const result = await convert({ ...req, format: target }, deadline);
  const notes = [...(result.notes ?? [])];
  if (req.mode === 'target-size') notes.push(`Target size is not supported for ${target}; compressed at quality ${req.quality} instead.`);
  if (!formatChanged && result.size >= req.originalSize) {
    const kept = outputPath(req.outputDir, target, 'original');
    await fs.copyFile(req.input, kept);
    notes.push('The compressed file would not have been smaller; the original is returned unchanged.');
    return {
      ...result,
      path: kept,
      size: req.originalSize,
      appliedQuality: null,
      notes,
      ...(req.targetBytes !== null && req.mode === 'target-size' ? { targetMet: req.originalSize <= req.targetBytes } : {}),
    };
  }
  return { ...result, ...(notes.length ? { notes } : {}), ...(req.targetBytes !== null && req.mode === 'target-size' ? { targetMet: result.size <= req.targetBytes } : {}) };
}
