/**
 * Image compression with sharp (API.md §2.6).
 *
 * - quality: one encode — mozjpeg JPEG, WebP, AVIF (the service's effort), palette PNG at max
 *   deflate, GIF with fewer colours, JPEG-compressed TIFF.
 * - target-size: the image is decoded once into an sRGB raw buffer and re-encoded from memory while
 *   `searchQuality` looks for the highest quality that fits; if the lowest sensible quality is still
 *   too big the image is scaled down and searched again, down to a floor size below which the
 *   target is reported as impossible.
 * - lossless: pixel values never change: lossless WebP/AVIF, max-deflate PNG, deflate TIFF, GIF only
 *   when a re-encode is verified identical, and JPEG by rewriting its marker segments.
 * Metadata (EXIF, GPS, XMP, IPTC) is stripped by default after applying the EXIF orientation; lossy
 * outputs are converted to sRGB, lossless ones keep their ICC profile (converting would change pixels).
 */
import fs from 'node:fs/promises';
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { ANIMATION_OUTPUTS, isOneOf, OUTPUT_INFO, type RasterFormat } from '@kiln/formats';
import { CodecError } from '../errors.ts';
import { displayedSize, readImageInfo, sharpError, type ImageInfo } from '../image/image.ts';
import { targetSize } from '../image/resize.ts';
import { outputPath } from '../output-path.ts';
import { stripJpegMetadata } from './jpeg-segments.ts';
import { stripPngMetadata } from './png-chunks.ts';
import type { CompressJob, CompressResult } from './request.ts';
import { searchQuality, type Encoded } from './search.ts';

type ImageCompressOptions = CompressJob<RasterFormat>;

/** Lowest quality a target-size search goes to before it scales the image down instead. */
const MIN_Q: Record<RasterFormat, number> = { jpg: 20, webp: 20, avif: 20, heif: 20, tiff: 20, png: 10, gif: 10 };
/** A target-size result never gets smaller than this on its longer side. */
const MIN_SIDE = 16;
const MAX_ENCODES = 14;

/**
 * Encoder presets tried, in order, when two adjacent quality steps straddle the target band: on
 * noisy photos one WebP quality step can change the size by 20–30 %, while libwebp's presets (other
 * spatial noise shaping and filter strengths at the same quality) land in between — `drawing`/`text`
 * a little under the default at the over-target quality, `photo` a little over it at the fitting one.
 * Measured with `node scripts/bench-compress.ts --formats webp`.
 */
type WebpPreset = 'photo' | 'drawing' | 'text';
const IN_BETWEEN: Partial<Record<RasterFormat, { at: 'over' | 'fit'; preset: WebpPreset }[]>> = {
  webp: [
    { at: 'over', preset: 'drawing' },
    { at: 'over', preset: 'text' },
    { at: 'fit', preset: 'photo' },
  ],
};

/** Palette size for PNG/GIF from a 1–100 quality: 256 colours from 82 up, halving every ~12 points below. */
export function paletteColours(q: number): number {
  return Math.max(2, Math.min(256, Math.round(2 ** (1 + (7 * Math.min(q, 82)) / 82))));
}

interface Encode {
  data: Buffer;
  width: number;
  height: number;
  frames: number;
  preset?: WebpPreset;
}

/** Adds the encoder for `format` at quality `q` to a pipeline. */
function withEncoder(p: Sharp, format: RasterFormat, q: number, lossless: boolean, hasAlpha: boolean, avifEffort: number, preset?: WebpPreset): Sharp {
  switch (format) {
    case 'jpg':
      // JPEG has no alpha: flatten onto white rather than letting transparent pixels turn black.
      return (hasAlpha ? p.flatten({ background: '#ffffff' }) : p).jpeg({ quality: q, mozjpeg: true });
    case 'webp':
      return p.webp(lossless ? { lossless: true, effort: 6 } : { quality: q, effort: 4, ...(preset ? { preset } : {}) });
    case 'avif':
      return p.avif(lossless ? { lossless: true, effort: avifEffort } : { quality: q, effort: avifEffort });
    case 'heif':
      return p.heif({ compression: 'av1', effort: avifEffort, ...(lossless ? { lossless: true } : { quality: q }) });
    case 'png':
      return lossless
        ? p.png({ compressionLevel: 9, adaptiveFiltering: true, palette: false })
        : p.png({ palette: true, quality: q, colours: paletteColours(q), dither: 1, compressionLevel: 9, effort: 7 });
    case 'gif':
      return lossless
        ? p.gif({ colours: 256, dither: 0, effort: 10, interFrameMaxError: 0, interPaletteMaxError: 0 })
        : p.gif({ colours: paletteColours(q), dither: q >= 50 ? 1 : 0.5, effort: 7, interFrameMaxError: Math.round(((100 - q) / 100) * 16), interPaletteMaxError: 3 });
    case 'tiff':
      return lossless || hasAlpha ? p.tiff({ compression: 'deflate', predictor: 'horizontal' }) : p.tiff({ compression: 'jpeg', quality: q });
  }
}

interface Source {
  width: number;
  height: number;
  frames: number;
  hasAlpha: boolean;
  encode(q: number, width: number, preset?: WebpPreset): Promise<Encode>;
}

function scaledHeight(w0: number, h0: number, w: number): number {
  return Math.max(1, Math.round((h0 * w) / w0));
}

/** Decodes once (orient, resize, colour to sRGB) and encodes from memory: the target-size workhorse. */
async function rawSource(o: ImageCompressOptions, info: ImageInfo, meta: Metadata): Promise<Source> {
  let p: Sharp;
  if (o.inputKind === 'heic') {
    const d = await decodeHeic(o.input);
    p = sharp(d.data, { raw: { width: d.width, height: d.height, channels: 4 } });
  } else {
    p = sharp(o.input, { limitInputPixels: o.limits.pixels.max, failOn: 'error', sequentialRead: true });
    if (o.autoOrient) p = p.autoOrient();
  }
  // heic-decode applies the file's own rotation: its pixels are upright already.
  const { width: w0, height: h0 } = displayedSize(info, o.autoOrient && o.inputKind !== 'heic');
  const t = targetSize(w0, h0, o.resize);
  if (t.width !== w0 || t.height !== h0) {
    p = p.resize({ width: t.width, height: t.height, fit: t.crop ? 'cover' : 'inside', position: 'centre', withoutEnlargement: !t.crop });
  }
  const grey = meta.space === 'b-w' || meta.space === 'grey16';
  p = p.toColourspace(grey ? 'b-w' : 'srgb');
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await p.raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw sharpError(err, o.limits);
  }
  const { width, height, channels } = raw.info;
  const hasAlpha = channels === 2 || channels === 4;
  return {
    width,
    height,
    frames: 1,
    hasAlpha,
    async encode(q, w, preset) {
      let e = sharp(raw.data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } });
      if (w !== width) e = e.resize({ width: w, height: scaledHeight(width, height, w), fit: 'fill' });
      const out = await withEncoder(e, o.format, q, o.lossless, hasAlpha, o.avifEffort, preset).toBuffer({ resolveWithObject: true });
      return { data: out.data, width: out.info.width, height: out.info.height, frames: 1 };
    },
  };
}

/**
 * Re-reads the file for every encode: for animations (all frames), kept metadata, and lossless
 * outputs (no sRGB conversion, bit depth kept).
 */
function fileSource(o: ImageCompressOptions, info: ImageInfo, animated: boolean): Source {
  const { width: w0, height: h0 } = displayedSize(info, o.autoOrient);
  const t = targetSize(w0, h0, o.resize);
  const frames = animated ? info.frames : 1;
  return {
    width: t.width,
    height: t.height,
    frames,
    hasAlpha: info.hasAlpha,
    async encode(q, w, preset) {
      let p = sharp(o.input, { limitInputPixels: o.limits.pixels.max, failOn: 'error', animated });
      if (o.autoOrient) p = p.autoOrient();
      const h = w === t.width ? t.height : scaledHeight(t.width, t.height, w);
      if (w !== w0 || h !== h0) p = p.resize({ width: w, height: h, fit: t.crop ? 'cover' : 'fill', position: 'centre' });
      if (!o.stripMetadata) p = p.keepMetadata();
      else if (o.lossless) p = p.keepIccProfile();
      const out = await withEncoder(p, o.format, q, o.lossless, info.hasAlpha, o.avifEffort, preset).toBuffer({ resolveWithObject: true });
      const height = frames > 1 ? (out.info.pageHeight ?? Math.round(out.info.height / frames)) : out.info.height;
      return { data: out.data, width: out.info.width, height, frames };
    },
  };
}

async function decodeHeic(input: string): Promise<{ width: number; height: number; data: Uint8Array }> {
  // Imported by name at run time: heic-decode ships no types, and it is only needed for HEIC input.
  const name = 'heic-decode';
  const mod = (await import(name)) as { default: (a: { buffer: Buffer }) => Promise<{ width: number; height: number; data: Uint8Array }> };
  try {
    return await mod.default({ buffer: await fs.readFile(input) });
  } catch (err) {
    throw new CodecError('invalid_input', 'The file could not be decoded as a HEIC image.', { cause: err, internal: String(err) });
  }
}

/** Raw pixels of an image for the lossless identity check (orientation applied, no colour conversion). */
async function rawPixels(input: string | Buffer, orient: boolean, animated: boolean): Promise<Buffer> {
  let p = sharp(input, { animated }).keepIccProfile();
  if (orient) p = p.autoOrient();
  return p.ensureAlpha().raw().toBuffer();
}

function privateMetadata(meta: Metadata): boolean {
  return !!(meta.exif || meta.xmp || meta.iptc || meta.comments?.length);
}

/** One image compression in progress: what every stage shares. */
interface Job {
  /** The options, with `lossless` settled (a lossless JPEG can only come from a JPEG). */
  o: ImageCompressOptions;
  info: ImageInfo;
  meta: Metadata;
  /** Notes for the result, in order; stages add to them. */
  notes: string[];
  outPath: string;
  mime: string;
}

/** Encodes from a Source, counting encodes and checking cancellation and the deadline before each. */
interface Encoder {
  encode(q: number, width: number, preset?: WebpPreset): Promise<Encoded<Encode>>;
  readonly count: number;
}

function encoderFor(job: Job, source: Source): Encoder {
  const { o } = job;
  let count = 0;
  return {
    get count() {
      return count;
    },
    async encode(q, width, preset) {
      if (o.signal?.aborted) throw new CodecError('cancelled', 'The compression was cancelled.');
      o.deadline.left();
      let e: Encode;
      try {
        e = await source.encode(q, width, preset);
      } catch (err) {
        throw sharpError(err, o.limits);
      }
      count++;
      return { q, size: e.data.length, out: preset ? { ...e, preset } : e };
    },
  };
}

export async function compressImage(options: ImageCompressOptions): Promise<CompressResult> {
  const info = await readImageInfo(options.input, options.limits);
  let meta: Metadata;
  try {
    meta = await sharp(options.input, { limitInputPixels: options.limits.pixels.max }).metadata();
  } catch (err) {
    throw sharpError(err, options.limits);
  }
  const notes: string[] = [];
  let lossless = options.lossless;
  if (lossless && options.format === 'jpg' && options.inputKind !== 'jpg') {
    notes.push('A lossless JPEG cannot be made from another format; encoded at quality 100 instead.');
    lossless = false;
  }
  const o: ImageCompressOptions = { ...options, lossless };
  const job: Job = { o, info, meta, notes, outPath: outputPath(o.outputDir, o.format), mime: OUTPUT_INFO[o.format].mime };
  if (lossless && o.format === 'jpg' && !o.resize) return losslessJpeg(job);
  if (lossless && o.format === 'jpg') notes.push('Resizing a JPEG re-encodes it: the lossless request applies to the resized pixels at quality 100.');

  const animated = info.frames > 1 && isOneOf(ANIMATION_OUTPUTS, o.format);
  if (info.frames > 1 && !animated) notes.push(`Animated input: only the first of ${info.frames} frames was kept (${o.format} output is a still image).`);
  if (o.inputKind === 'heic' && !o.stripMetadata) notes.push('HEIC metadata is not carried over.');
  const useFile = o.inputKind !== 'heic' && (animated || !o.stripMetadata || lossless);
  let source: Source;
  try {
    source = useFile ? fileSource(o, info, animated) : await rawSource(o, info, meta);
  } catch (err) {
    throw err instanceof CodecError ? err : sharpError(err, o.limits);
  }
  if (o.format === 'tiff' && !lossless && !source.hasAlpha) notes.push('TIFF written with JPEG compression inside.');
  const encoder = encoderFor(job, source);
  if (o.mode === 'quality' || lossless || o.targetBytes === null) return oneEncode(job, source, encoder, animated);
  return toTargetSize(job, source, encoder, o.targetBytes);
}

/** Lossless JPEG: metadata segments only, the entropy-coded data byte-identical. */
async function losslessJpeg(job: Job): Promise<CompressResult> {
  const { o, info, notes } = job;
  const src = await fs.readFile(o.input);
  const orientation = o.autoOrient ? (info.orientation ?? 1) : 1;
  const { data, facts } = o.stripMetadata ? stripJpegMetadata(src, orientation) : { data: src, facts: undefined };
  if (facts && orientation > 1) notes.push(`EXIF orientation ${orientation} kept as the only EXIF tag: a lossless JPEG cannot be rotated.`);
  notes.push('Lossless JPEG: metadata segments removed, image data copied unchanged (Huffman re-optimisation is not available).');
  await fs.writeFile(job.outPath, data);
  const size = displayedSize(info, o.autoOrient);
  return finish(o, { path: job.outPath, format: 'jpg', mimeType: job.mime, size: data.length, ...size, appliedQuality: 100, encodes: 0 }, notes, job.meta, info);
}

/** Quality mode, and lossless output (which has one possible size): a single encode. */
async function oneEncode(job: Job, source: Source, encoder: Encoder, animated: boolean): Promise<CompressResult> {
  const { o, notes } = job;
  const q0 = o.lossless && o.format === 'jpg' ? 100 : Math.max(1, Math.min(100, Math.round(o.quality)));
  if (o.mode === 'target-size' && o.lossless) notes.push('Lossless output has one possible size: the target size was not searched.');
  const r = await encoder.encode(q0, source.width);
  if (o.lossless && (o.format === 'gif' || o.format === 'png')) {
    // Palette encoders quantise: check the pixels really are unchanged.
    const same = (await rawPixels(o.input, o.autoOrient, animated)).equals(await rawPixels(r.out.data, false, animated));
    if (!same) {
      notes.push(`The ${o.format.toUpperCase()} encoder could not reproduce the pixels exactly; the original is returned.`);
      return finish(o, await keepOriginal(o, job.outPath, job.mime, job.info), notes, job.meta, job.info, { forceOriginal: true });
    }
  }
  await fs.writeFile(job.outPath, r.out.data);
  const facts: CompressResult = {
    path: job.outPath,
    format: o.format,
    mimeType: job.mime,
    size: r.size,
    width: r.out.width,
    height: r.out.height,
    ...(r.out.frames > 1 ? { frames: r.out.frames } : {}),
    appliedQuality: o.lossless ? 100 : q0,
    encodes: encoder.count,
  };
  if (o.mode === 'target-size' && o.targetBytes !== null) {
    facts.targetMet = r.size <= o.targetBytes;
    if (!facts.targetMet) facts.targetReason = `The lossless ${o.format} is ${r.size} bytes, over the target of ${o.targetBytes}; turn lossless off to reach it.`;
  }
  return finish(o, facts, notes, job.meta, job.info);
}

/** How a target-size search ended. */
interface TargetSearch {
  /** The chosen fit at or under the target, if any. */
  best: Encoded<Encode> | undefined;
  /** The smallest encode over the target, when nothing fit. */
  smallest: Encoded<Encode> | undefined;
  /** Why the target cannot be reached, when the search could tell. */
  reason?: string;
  /** The best fit came from scaling at the over-target quality. */
  finetuned: boolean;
}

/**
 * Target size: search the quality at full size; when even the floor quality is over, scale down and
 * search again (down to MIN_SIDE); when a fit is found far under the target, try to land closer.
 */
async function toTargetSize(job: Job, source: Source, encoder: Encoder, target: number): Promise<CompressResult> {
  const { o, notes } = job;
  const minQ = MIN_Q[o.format];
  const r = await searchTarget(job, source, encoder, target);
  const chosen = r.best ?? r.smallest;
  if (!chosen) throw new CodecError('engine_failed', 'The target-size search produced no output.');
  await fs.writeFile(job.outPath, chosen.out.data);
  const facts: CompressResult = {
    path: job.outPath,
    format: o.format,
    mimeType: job.mime,
    size: chosen.size,
    width: chosen.out.width,
    height: chosen.out.height,
    ...(chosen.out.frames > 1 ? { frames: chosen.out.frames } : {}),
    appliedQuality: chosen.q,
    encodes: encoder.count,
    targetMet: !!r.best,
  };
  const scaled = `${source.width}×${source.height} to ${chosen.out.width}×${chosen.out.height}`;
  if (r.best) {
    if (chosen.out.preset)
      notes.push(`Encoded with libwebp's "${chosen.out.preset}" preset: one quality step changes the size too much here, and the preset lands closer to the target.`);
    if (r.finetuned) notes.push(`Scaled from ${scaled} at quality ${chosen.q}: quality steps are coarse here and this lands closer to the target.`);
    else if (chosen.out.width !== source.width) notes.push(`Scaled from ${scaled}: even quality ${minQ} was over the target.`);
    if (r.best.size < 0.9 * target)
      notes.push(
        r.best.q >= 100 ? 'Even the highest quality is well under the target.' : `Quality steps are coarse here: ${r.best.size} bytes is the closest fit under the target.`,
      );
  } else {
    const tiny = Math.max(chosen.out.width, chosen.out.height) <= 2 * MIN_SIDE;
    facts.targetReason =
      r.reason ??
      (tiny
        ? `A valid ${o.format} of this image cannot be that small: the smallest made was ${chosen.size} bytes (${chosen.out.width}×${chosen.out.height} px at quality ${chosen.q}), over the target of ${target} bytes.`
        : `No setting within ${MAX_ENCODES} encodes reached the target of ${target} bytes; the smallest was ${chosen.size} bytes.`);
  }
  return finish(o, facts, notes, job.meta, job.info);
}

async function searchTarget(job: Job, source: Source, encoder: Encoder, target: number): Promise<TargetSearch> {
  const { o } = job;
  const minQ = MIN_Q[o.format];
  let width = source.width;
  let smallest: Encoded<Encode> | undefined;
  for (let round = 0; round < 8; round++) {
    const budget = MAX_ENCODES - encoder.count;
    if (budget <= 0) break;
    const w = width;
    // After a scale-down, try the floor quality first: one encode tells whether this size can fit at all.
    const s = await searchQuality((q) => encoder.encode(q, w), { target, minQ, maxQ: 100, startQ: round === 0 ? 75 : minQ, maxEncodes: budget });
    o.onProgress?.(Math.min(0.9, encoder.count / MAX_ENCODES));
    if (s.fit) return { smallest, ...(await closerFit(job, encoder, target, w, s.fit, s.over)) };
    const over = s.over!;
    if (!smallest || over.size < smallest.size) smallest = over;
    if (over.q > minQ) break; // out of budget before reaching the floor quality
    const longSide = Math.max(over.out.width, over.out.height);
    if (longSide <= MIN_SIDE) {
      const reason = `A valid ${o.format} of this image cannot be that small: the smallest made was ${over.size} bytes (${over.out.width}×${over.out.height} px at quality ${minQ}), over the target of ${target} bytes.`;
      return { best: undefined, smallest, reason, finetuned: false };
    }
    // Size falls slower than pixel count (headers, and small images carry more detail per pixel): aim low.
    const scale = Math.sqrt((target * 0.85) / over.size) * (round > 0 ? 0.9 : 1);
    const minW = Math.max(1, Math.ceil((width * MIN_SIDE) / longSide));
    width = Math.max(minW, Math.min(width - 1, Math.floor(width * scale)));
  }
  return { best: undefined, smallest, finetuned: false };
}

/**
 * Coarse quality steps (AVIF's quantiser, noisy content) can leave a fit far under the target next
 * to a step that is over it: try the encoder's presets in between, then the higher quality at a
 * slightly smaller size, as long as that keeps at least 85 % of each dimension.
 */
async function closerFit(
  job: Job,
  encoder: Encoder,
  target: number,
  w: number,
  fit: Encoded<Encode>,
  over: Encoded<Encode> | undefined,
): Promise<{ best: Encoded<Encode>; finetuned: boolean }> {
  let best = fit;
  let finetuned = false;
  if (!over) return { best, finetuned };
  for (const step of IN_BETWEEN[job.o.format] ?? []) {
    if (best.size >= 0.9 * target || encoder.count >= MAX_ENCODES) break;
    const e = await encoder.encode(step.at === 'over' ? over.q : best.q, w, step.preset);
    if (e.size <= target && e.size > best.size) best = e;
  }
  if (best.size >= 0.9 * target) return { best, finetuned };
  // Secant on log(size) vs log(scale) at the over-quality, bracketed by [lo (fits), hi (over)].
  let lo: { scale: number; size: number } | undefined;
  let hi = { scale: 1, size: over.size };
  let lastWidth = w;
  for (let k = 0; k < 4 && encoder.count < MAX_ENCODES; k++) {
    const aim = target * 0.95;
    let scale = lo
      ? Math.exp(Math.log(lo.scale) + ((Math.log(aim) - Math.log(lo.size)) * (Math.log(hi.scale) - Math.log(lo.scale))) / (Math.log(hi.size) - Math.log(lo.size)))
      : hi.scale * Math.sqrt(aim / hi.size);
    if (!Number.isFinite(scale)) scale = lo ? (lo.scale + hi.scale) / 2 : hi.scale * 0.95;
    scale = Math.min(hi.scale - 0.004, Math.max((lo?.scale ?? 0) + 0.004, scale));
    const fw = Math.floor(w * scale);
    if (scale < 0.85 || fw < 1 || fw === lastWidth) break;
    lastWidth = fw;
    const e = await encoder.encode(over.q, fw);
    if (e.size <= target) {
      if (e.size > best.size) {
        best = e;
        finetuned = true;
      }
      if (e.size >= 0.9 * target) break;
      lo = { scale, size: e.size };
    } else {
      hi = { scale, size: e.size };
    }
  }
  return { best, finetuned };
}

async function keepOriginal(o: ImageCompressOptions, outPath: string, mime: string, info: ImageInfo): Promise<CompressResult> {
  await fs.copyFile(o.input, outPath);
  // The input keeps its orientation tag, so viewers show it turned.
  return { path: outPath, format: o.format, mimeType: mime, size: o.originalSize, ...displayedSize(info, true), appliedQuality: null };
}

/**
 * The never-larger rule (API.md §2.6). When the result is not smaller than the input and the format
 * was not changed, the input is returned instead — with its metadata removed losslessly where we can
 * (JPEG segments, PNG chunks). Where we cannot and the input carries EXIF/GPS/XMP that stripMetadata
 * asked to remove, privacy wins: the re-encoded file is returned even though it is larger, and a
 * note says so. A changed format is always returned as converted.
 */
async function finish(
  o: ImageCompressOptions,
  facts: CompressResult,
  notes: string[],
  meta: Metadata,
  info: ImageInfo,
  extra: { forceOriginal?: boolean } = {},
): Promise<CompressResult> {
  const target = o.mode === 'target-size' ? o.targetBytes : null;
  const withNotes = (f: CompressResult, more: string[] = []): CompressResult => {
    const all = [...notes, ...more];
    return all.length ? { ...f, notes: all } : f;
  };
  if (o.formatChanged) {
    if (o.inputKind === 'heic' && o.format === 'jpg') notes.unshift('HEIC input compressed to JPEG, the closest widely supported format.');
    if (facts.size >= o.originalSize) notes.push(`The ${o.format} result is not smaller than the input; it is returned because the format changed.`);
    return withNotes(facts);
  }
  if (!extra.forceOriginal && facts.size < o.originalSize) return withNotes(facts);
  // Not smaller: fall back to the input itself, stripped losslessly when metadata must go.
  const keptPath = outputPath(o.outputDir, o.format, 'original');
  const src = await fs.readFile(o.input);
  let data: Buffer = src;
  const reasons: string[] = [];
  if (o.stripMetadata && privateMetadata(meta)) {
    const orientation = o.autoOrient ? (info.orientation ?? 1) : 1;
    if (o.format === 'jpg') {
      data = stripJpegMetadata(src, orientation).data;
      if (orientation > 1) reasons.push(`EXIF orientation ${orientation} kept as the only EXIF tag so the photo is not shown sideways.`);
    } else if (o.format === 'png' && orientation <= 1) {
      data = stripPngMetadata(src).data;
    } else {
      return withNotes(facts, [
        `The re-encoded file is not smaller than the input, but it is returned because the input's metadata (EXIF/GPS/XMP) had to be removed (stripMetadata=true).`,
      ]);
    }
  }
  if (data.length > facts.size && !extra.forceOriginal) return withNotes(facts);
  await fs.writeFile(keptPath, data);
  await fs.rm(facts.path, { force: true });
  // Displayed size of what is returned: the orientation tag survives unless autoOrient=false stripped it.
  const shown = displayedSize(info, data === src || o.autoOrient);
  const kept: CompressResult = {
    path: keptPath,
    format: o.format,
    mimeType: OUTPUT_INFO[o.format].mime,
    size: data.length,
    ...shown,
    ...(info.frames > 1 && facts.frames ? { frames: info.frames } : {}),
    appliedQuality: null,
    ...(facts.encodes !== undefined ? { encodes: facts.encodes } : {}),
  };
  if (target !== null) {
    kept.targetMet = data.length <= target;
    if (!kept.targetMet)
      kept.targetReason = facts.targetReason ?? `The smallest result was not smaller than the input (${data.length} bytes), which is over the target of ${target} bytes.`;
  }
  reasons.unshift(
    data === src
      ? 'The compressed file would not have been smaller; the original is returned unchanged.'
      : 'The compressed file would not have been smaller; the original is returned with its metadata removed losslessly.',
  );
  return withNotes(kept, reasons);
}
