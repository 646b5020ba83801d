/** Images (and SVG) → PDF, one page. A JPEG that needs no change is embedded byte for byte. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { INPUT_INFO, OUTPUT_INFO, type InputKind, type OutputFormat } from '@kiln/formats';
import type { Engine } from '../engine.ts';
import { convertImage, displayedSize, readImageInfo, requestedImage } from '../image/image.ts';
import { targetSize } from '../image/resize.ts';
import { rasterSource } from '../image/sources.ts';
import { imagesToPdf } from './pdf.ts';
import { outputPath } from '../output-path.ts';

export const pdfEngine: Engine = {
  name: 'pdf-lib',
  accepts: (kind: InputKind, format: OutputFormat) => format === 'pdf' && ['image', 'vector'].includes(INPUT_INFO[kind].family),
  async run(req, deadline) {
    const { limits } = req;
    const src = await rasterSource(req);
    // pdf.js and librsvg run in this process and cannot be stopped midway: check the time between steps.
    deadline.left();
    const info = await readImageInfo(src.path, limits);
    const orient = !src.intermediate && req.autoOrient;
    const oriented = orient && (info.orientation ?? 1) > 1;
    const { width: w0, height: h0 } = displayedSize(info, orient);
    const size = targetSize(w0, h0, req.resize);
    const unchanged = size.width === w0 && size.height === h0 && !oriented;
    const notes = [...src.notes];
    let image: { bytes: Uint8Array; kind: 'jpg' | 'png'; width: number; height: number };
    if (req.inputKind === 'jpg' && unchanged) {
      image = { bytes: await fs.readFile(src.path), kind: 'jpg', width: w0, height: h0 };
      notes.push('The JPEG was embedded without re-encoding.');
    } else {
      const kind = info.hasAlpha || req.lossless ? 'png' : 'jpg';
      const mid = path.join(req.outputDir, `page.${kind}`);
      const facts = await convertImage({ ...requestedImage(req, src.path, mid, kind, orient), stripMetadata: true });
      image = { bytes: await fs.readFile(mid), kind, width: facts.width ?? size.width, height: facts.height ?? size.height };
      if (info.frames > 1) notes.push(`Animated input: only the first of ${info.frames} frames was kept.`);
      notes.push(kind === 'png' ? 'The image was embedded losslessly (PNG).' : `The image was embedded as JPEG at quality ${Math.round(req.quality)}.`);
    }
    const output = outputPath(req.outputDir, 'pdf');
    const bytes = await imagesToPdf([image], output);
    return {
      path: output,
      format: 'pdf',
      mimeType: OUTPUT_INFO.pdf.mime,
      size: bytes,
      width: image.width,
      height: image.height,
      appliedQuality: image.kind === 'jpg' && !unchanged ? Math.round(req.quality) : null,
      notes: [...notes, 'One page, sized to the image at 72 DPI.'],
    };
  },
};
