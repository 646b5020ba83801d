/** Raster (and HEIC) → SVG by tracing. */
import fs from 'node:fs/promises';
import { INPUT_INFO, OUTPUT_INFO, type InputKind, type OutputFormat } from '@kiln/formats';
import type { Engine } from '../engine.ts';
import { rasterSource } from '../image/sources.ts';
import { traceToSvg } from './trace.ts';
import { outputPath } from '../output-path.ts';

export const traceEngine: Engine = {
  name: 'vtracer',
  accepts: (kind: InputKind, format: OutputFormat) => format === 'svg' && INPUT_INFO[kind].family === 'image',
  async run(req, deadline) {
    const src = await rasterSource(req);
    const output = outputPath(req.outputDir, 'svg');
    const r = await traceToSvg({
      input: src.path,
      output,
      quality: req.quality,
      mono: req.mono,
      autoOrient: src.intermediate ? false : req.autoOrient,
      ...(req.resize ? { resize: req.resize } : {}),
      limits: req.limits,
      deadline,
      ...(req.signal ? { signal: req.signal } : {}),
    });
    if (src.intermediate) await fs.rm(src.path, { force: true });
    return {
      path: output,
      format: 'svg',
      mimeType: OUTPUT_INFO.svg.mime,
      size: (await fs.stat(output)).size,
      width: r.width,
      height: r.height,
      appliedQuality: Math.round(req.quality),
      notes: [...src.notes, ...r.notes],
    };
  },
};
