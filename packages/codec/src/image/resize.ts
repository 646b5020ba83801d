import type { ResizeSpec } from '../engine.ts';

/**
 * Output dimensions for a source of `w`×`h` under `spec`, never upscaling. For `cover` boxes larger
 * than the source, the box is scaled down to fit inside the source while keeping its aspect ratio.
 */
export function targetSize(w: number, h: number, spec: ResizeSpec | undefined): { width: number; height: number; crop: boolean } {
  if (!spec || (!spec.width && !spec.height)) return { width: w, height: h, crop: false };
  if (spec.fit === 'cover' && spec.width && spec.height) {
    const scale = Math.min(1, w / spec.width, h / spec.height);
    return { width: Math.max(1, Math.round(spec.width * scale)), height: Math.max(1, Math.round(spec.height * scale)), crop: true };
  }
  const sx = spec.width ? spec.width / w : Infinity;
  const sy = spec.height ? spec.height / h : Infinity;
  const s = Math.min(1, sx, sy);
  return { width: Math.max(1, Math.round(w * s)), height: Math.max(1, Math.round(h * s)), crop: false };
}
