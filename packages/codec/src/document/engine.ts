/** Images (and SVG) → PDF, one page. A JPEG that needs no change is embedded byte for byte. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { INPUT_INFO, OUTPUT_INFO, type InputKind, type OutputFormat } from '@kiln/formats';
import type { ConvertRequest, Deadline, Engine } from '../engine.ts';
import { convertImage, displayedSize, readImageInfo, requestedImage } from '../image/image.ts';
import { targetSize } from '../image/resize.ts';
import { rasterSource } from '../image/sources.ts';
import { imagesToPdf, type PdfImage } from './pdf.ts';
import { outputPath } from '../output-path.ts';

export interface PdfPage {
  image: PdfImage;
  notes: string[];
  /** The JPEG quality used, or null when embedded as-is or losslessly. */
  appliedQuality: number | null;
}

/**
 * One image of `req` made ready for a PDF page: decoded (HEIC, SVG, PDF's first page), oriented and
 * resized as asked, then embedded as JPEG (as-is when nothing changes) or PNG (alpha, lossless).
 * `stem` names its intermediates, so several pages can share one scratch folder.
 */
export async function pdfPageImage(req: ConvertRequest, deadline: Deadline, stem = 'page'): Promise<PdfPage> {
  const { limits } = req;
  const src = await rasterSource({ ...req, outputDir: await scratchFor(req.outputDir, stem) });
  // pdf.js and librsvg run in this process and cannot be stopped midway: check the time between steps.
  deadline.left();
  const info = await readImageInfo(src.path, limits);
  const orient = !src.intermediate && req.autoOrient;
  const oriented = orient && (info.orientation ?? 1) > 1;
  const { width: w0, height: h0 } = displayedSize(info, orient);
  const size = targetSize(w0, h0, req.resize);
  const unchanged = size.width === w0 && size.height === h0 && !oriented;
  const notes = [...src.notes];
  if (req.inputKind === 'jpg' && unchanged) {
    notes.push('The JPEG was embedded without re-encoding.');
    return { image: { bytes: await fs.readFile(src.path), kind: 'jpg', width: w0, height: h0 }, notes, appliedQuality: null };
  }
  const kind = info.hasAlpha || req.lossless ? 'png' : 'jpg';
  const mid = path.join(req.outputDir, `${stem}.${kind}`);
  const facts = await convertImage({ ...requestedImage(req, src.path, mid, kind, orient), stripMetadata: true });
  const image: PdfImage = { bytes: await fs.readFile(mid), kind, width: facts.width ?? size.width, height: facts.height ?? size.height };
  if (info.frames > 1) notes.push(`Animated input: only the first of ${info.frames} frames was kept.`);
  notes.push(kind === 'png' ? 'The image was embedded losslessly (PNG).' : `The image was embedded as JPEG at quality ${Math.round(req.quality)}.`);
  return { image, notes, appliedQuality: kind === 'jpg' ? Math.round(req.quality) : null };
}

/** A folder of its own for one page's decoded intermediate (rasterSource always writes `decoded.png`). */
async function scratchFor(dir: string, stem: string): Promise<string> {
  const sub = path.join(dir, `${stem}.d`);
  await fs.mkdir(sub, { recursive: true });
  return sub;
}

export const pdfEngine: Engine = {
  name: 'pdf-lib',
  accepts: (kind: InputKind, format: OutputFormat) => format === 'pdf' && ['image', 'vector'].includes(INPUT_INFO[kind].family),
  async run(req, deadline) {
    const page = await pdfPageImage(req, deadline);
    const output = outputPath(req.outputDir, 'pdf');
    const bytes = await imagesToPdf([page.image], output);
    return {
      path: output,
      format: 'pdf',
      mimeType: OUTPUT_INFO.pdf.mime,
      size: bytes,
      width: page.image.width,
      height: page.image.height,
      appliedQuality: page.appliedQuality,
      notes: [...page.notes, 'One page, sized to the image at 72 DPI.'],
    };
  },
};
