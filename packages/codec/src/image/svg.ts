/**
 * SVG input. librsvg (inside sharp) would otherwise load what the document points at: images and
 * `<use>` targets by href (local files included), XInclude, external entities and stylesheets. We
 * render a copy with all of that removed: href/xlink:href only keep `#fragment` and `data:` values,
 * the DOCTYPE (and with it any ENTITY declaration) goes, as do processing instructions, CSS @import
 * and non-local url(...). References to removed entities then fail to parse: invalid_input.
 * Rendering density is capped by maxSvgDensity and the rendered size by the pixel limit.
 */
import fs from 'node:fs/promises';
import sharp from 'sharp';
import { CodecError } from '../errors.ts';
import { sharpError, type ImageLimits } from './image.ts';
import type { Limits, ResizeSpec } from '../engine.ts';

export interface SanitizedSvg {
  svg: string;
  /** How many references or declarations were removed. */
  removed: number;
}

const LOCAL_REF = /^\s*(#|data:)/i;

export function sanitizeSvg(text: string): SanitizedSvg {
  let removed = 0;
  let s = text.replace(/^\uFEFF/, '');
  // DOCTYPE with or without an internal subset ([...] may hold ENTITY declarations).
  s = s.replace(/<!DOCTYPE(?:[^[>]|\[[\s\S]*?\])*>/gi, () => {
    removed++;
    return '';
  });
  s = s.replace(/<!ENTITY[\s\S]*?>/gi, () => {
    removed++;
    return '';
  });
  // Processing instructions other than the XML declaration (xml-stylesheet and friends).
  s = s.replace(/<\?(?!xml\s)[\s\S]*?\?>/gi, () => {
    removed++;
    return '';
  });
  // href / xlink:href (any prefix) to anything but a fragment or data: URL.
  s = s.replace(/\s([A-Za-z_][\w.-]*:)?href\s*=\s*("[^"]*"|'[^']*')/g, (m, _prefix: string | undefined, quoted: string) => {
    if (LOCAL_REF.test(quoted.slice(1, -1))) return m;
    removed++;
    return '';
  });
  // CSS: @import and url(...) that is not local, in <style> and in style/presentation attributes.
  s = s.replace(/@import\s+[^;]+;?/gi, () => {
    removed++;
    return '';
  });
  s = s.replace(/url\(\s*(['"]?)(.*?)\1\s*\)/gi, (m, _q: string, target: string) => {
    if (LOCAL_REF.test(target)) return m;
    removed++;
    return 'none';
  });
  return { svg: s, removed };
}

export interface SvgRenderOptions {
  limits: Pick<Limits, 'pixels' | 'svgDensity'>;
  resize?: ResizeSpec;
}

/** Renders a sanitized SVG to a PNG. Returns the density used and the notes to report. */
export async function rasterizeSvg(input: string, output: string, o: SvgRenderOptions): Promise<{ width: number; height: number; density: number; notes: string[] }> {
  const text = await fs.readFile(input, 'utf8');
  const { svg, removed } = sanitizeSvg(text);
  const buf = Buffer.from(svg);
  const { limits } = o;
  const maxDensity = limits.svgDensity.max;
  let natural: { width: number; height: number };
  try {
    const m = await sharp(buf, { density: 72, limitInputPixels: limits.pixels.max }).metadata();
    if (!m.width || !m.height) throw new CodecError('invalid_input', 'The SVG has no size (no width/height or viewBox).');
    natural = { width: m.width, height: m.height };
  } catch (err) {
    if (err instanceof CodecError) throw err;
    throw svgError(err, limits);
  }
  // Render at the natural size (72 DPI), or sharper when a resize box asks for more pixels, up to the cap.
  let density = 72;
  if (o.resize) {
    const sx = o.resize.width ? o.resize.width / natural.width : 0;
    const sy = o.resize.height ? o.resize.height / natural.height : 0;
    const scale = Math.max(sx, sy, 1);
    density = Math.min(maxDensity, Math.ceil(72 * scale));
  }
  density = Math.max(1, Math.min(density, maxDensity));
  try {
    const info = await sharp(buf, { density, limitInputPixels: limits.pixels.max }).png({ compressionLevel: 1 }).toFile(output);
    const notes = [`SVG rendered at ${density} DPI.`];
    if (removed)
      notes.push(`${removed} external reference${removed === 1 ? ' was' : 's were'} removed from the SVG before rendering (only #fragment and data: references are kept).`);
    return { width: info.width, height: info.height, density, notes };
  } catch (err) {
    await fs.rm(output, { force: true });
    throw svgError(err, limits);
  }
}

function svgError(err: unknown, limits: ImageLimits): CodecError {
  const e = sharpError(err, limits);
  if (e.kind === 'limit_exceeded') return e;
  const msg = err instanceof Error ? err.message : String(err);
  return new CodecError('invalid_input', 'The SVG could not be rendered: it is not well-formed SVG (entities and external references are not allowed).', {
    cause: err,
    internal: msg,
  });
}
