/**
 * What a worker records about one converted file (job_files.result, JSON). The worker writes it
 * through fileResultSchema; the gateway reads it back through readFileResult. Rows outlive a deploy
 * in both directions, so:
 * - every field added from now on is optional;
 * - fields this version does not know are dropped, never refused (a newer worker's row, an older gateway);
 * - reading never fails: a field an older worker left out or wrote differently is left out, and the
 *   rest of the row still renders.
 */
import { z } from 'zod';

export const fileResultSchema = z.object({
  /** The output's format: the requested one, or what the engine produced (an archive converted entry by entry is a zip). */
  format: z.string().min(1),
  mimeType: z.string().min(1),
  finalSize: z.number().int().nonnegative(),
  savedPercent: z.number(),
  /** The encoder quality used; null for formats without one. */
  appliedQuality: z.number().nullable(),
  // Shapes, not ranges: a result the engine reports a little oddly must not fail a finished file.
  width: z.number().nonnegative().optional(),
  height: z.number().nonnegative().optional(),
  durationSeconds: z.number().nonnegative().optional(),
  /** Compress target-size: the output is at or under targetBytes. */
  targetMet: z.boolean().optional(),
  /** Compress target-size: why the target could not be met. */
  targetReason: z.string().optional(),
  /** Compress: encodes tried for this result. */
  encodes: z.number().int().nonnegative().optional(),
  notes: z.array(z.string()).optional(),
  /** The codec engine that wrote the output (`image`, `media`, …); shown by the TurboFiles dialect's processing_metadata. */
  engine: z.string().optional(),
  /** The inspect tool: the facts it read (format, dimensions, duration, streams, pages, EXIF summary…). */
  metadata: z.record(z.string(), z.unknown()).optional(),
  /** The storyboard tool: the sheet's grid and WebVTT cues pointing into it (`#xywh=` on the sheet's file name). */
  storyboard: z
    .object({
      columns: z.number().int().positive(),
      rows: z.number().int().positive(),
      tileWidth: z.number().int().positive(),
      tileHeight: z.number().int().positive(),
      frames: z.number().int().positive(),
      intervalSeconds: z.number().positive(),
      vtt: z.string(),
    })
    .optional(),
});
export type FileResultRecord = z.infer<typeof fileResultSchema>;

/** The optional facts shown next to a result's fixed fields, in the order clients see them (jobs API and sync replies). */
export const FILE_RESULT_EXTRAS = ['width', 'height', 'durationSeconds', 'notes', 'targetMet', 'targetReason', 'encodes', 'metadata', 'storyboard'] as const;
export type FileResultExtras = Pick<FileResultRecord, (typeof FILE_RESULT_EXTRAS)[number]>;

/** A stored result as far as it can be read: the whole row when it parses, else each field that does. */
export function readFileResult(raw: unknown): Partial<FileResultRecord> {
  const whole = fileResultSchema.safeParse(raw);
  if (whole.success) return whole.data;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return {};
  const row = raw as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(fileResultSchema.shape)) {
    const one = field.safeParse(row[name]);
    if (one.success && one.data !== undefined) out[name] = one.data;
  }
  return out as Partial<FileResultRecord>;
}

/** The extras a result has, without keys for the ones it lacks. */
export function fileResultExtras(r: FileResultExtras): FileResultExtras {
  const out: Record<string, unknown> = {};
  for (const name of FILE_RESULT_EXTRAS) if (r[name] !== undefined) out[name] = r[name];
  return out as FileResultExtras;
}
