/**
 * The resize presets (API.md §2.5) — the one table, used for images and video alike. Never upscale.
 * Operators may override entries with the RESIZE_PRESETS setting (JSON of the same shape).
 */
import { z } from 'zod';
import type { FileOptions } from './job-fields.ts';

export const presetSchema = z.object({
  width: z.number().int().min(1).optional(),
  height: z.number().int().min(1).optional(),
  fit: z.enum(['inside', 'cover']),
});
export type PresetBox = z.infer<typeof presetSchema>;

export const DEFAULT_RESIZE_PRESETS: Record<'website' | 'email' | 'instagram' | 'linkedin' | 'ecommerce', PresetBox> = {
  website: { width: 1920, fit: 'inside' },
  email: { width: 600, fit: 'inside' },
  instagram: { width: 1080, height: 1080, fit: 'cover' },
  linkedin: { width: 1200, height: 627, fit: 'cover' },
  ecommerce: { width: 2000, height: 2000, fit: 'inside' },
};
export type PresetTable = typeof DEFAULT_RESIZE_PRESETS;

export const presetOverridesSchema = z.record(z.enum(['website', 'email', 'instagram', 'linkedin', 'ecommerce']), presetSchema).optional();

export const SQUARE_DEFAULT = 1080;

/** The box a file's resize options ask for, or undefined for `original`. */
export function resolveResize(o: Pick<FileOptions, 'resize' | 'resizeWidth' | 'resizeHeight'>, table: PresetTable = DEFAULT_RESIZE_PRESETS): PresetBox | undefined {
  switch (o.resize) {
    case 'original':
      return undefined;
    case 'square': {
      const s = o.resizeWidth ?? o.resizeHeight ?? SQUARE_DEFAULT;
      return { width: s, height: s, fit: 'cover' };
    }
    case 'width':
      return o.resizeWidth ? { width: o.resizeWidth, fit: 'inside' } : undefined;
    case 'height':
      return o.resizeHeight ? { height: o.resizeHeight, fit: 'inside' } : undefined;
    case 'box':
      return o.resizeWidth || o.resizeHeight
        ? { ...(o.resizeWidth ? { width: o.resizeWidth } : {}), ...(o.resizeHeight ? { height: o.resizeHeight } : {}), fit: 'inside' }
        : undefined;
    default:
      return table[o.resize];
  }
}
