/**
 * Turns any picture-like input into a file sharp can read: HEIC through heic-decode, SVG through
 * the sanitizer and librsvg, PDF by rendering its first page; sharp's own formats pass through.
 * Engines for raster, SVG and PDF output build on this so every input reaches every target the
 * same way.
 */
import path from 'node:path';
import type { ConvertRequest } from '../engine.ts';
import { renderPdfFirstPage } from '../document/pdf.ts';
import { decodeHeicToPng } from './heic.ts';
import { rasterizeSvg } from './svg.ts';

export interface RasterSource {
  path: string;
  /** True when `path` is an intermediate we made (already upright, metadata gone). */
  intermediate: boolean;
  notes: string[];
}

export async function rasterSource(req: ConvertRequest): Promise<RasterSource> {
  const out = path.join(req.outputDir, 'decoded.png');
  switch (req.inputKind) {
    case 'heic': {
      const r = await decodeHeicToPng(req.input, out, req.limits);
      const notes = ['HEIC decoded with libheif (heic-decode).'];
      if (r.images > 1) notes.push(`The HEIC holds ${r.images} images; the primary one was converted.`);
      if (!req.stripMetadata) notes.push('Metadata from HEIC input is not carried over.');
      return { path: out, intermediate: true, notes };
    }
    case 'svg': {
      const r = await rasterizeSvg(req.input, out, { limits: req.limits, ...(req.resize ? { resize: req.resize } : {}) });
      return { path: out, intermediate: true, notes: r.notes };
    }
    case 'pdf': {
      const r = await renderPdfFirstPage(req.input, out, { limits: req.limits, ...(req.resize ? { resize: req.resize } : {}) });
      return { path: out, intermediate: true, notes: r.notes };
    }
    default:
      return { path: req.input, intermediate: false, notes: [] };
  }
}
