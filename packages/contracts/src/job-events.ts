/**
 * Live progress of one job, `GET /api/jobs/:id/events` (Server-Sent Events): the events, their data
 * as zod schemas (the public contract; the OpenAPI document is generated from them), and the event
 * id, which is how a client that reconnects with `Last-Event-ID` gets exactly what it missed.
 *
 * A stream sends `snapshot` first (the job as GET /api/jobs/:id answers it), then, as the job moves,
 * `file` once per file that reaches a final state (its result, as in `results[]`), `progress` after
 * any change (counters, percentages and each file's status), and last `completed` or `failed` (the
 * final job detail), after which the server closes the stream.
 *
 * Event ids are `<version>-<files>`: `version` is a number that only grows as the job moves (each file
 * counts its stage: pending 0, processing 1 + its percentage, final 101; the job being final adds 1),
 * and `files` is a hexadecimal bit set of the file indexes whose `file` event the client has been
 * sent. Both are read off the job's rows, so any gateway can resume any stream: given a
 * `Last-Event-ID`, it sends no snapshot, but a `file` event for each file final now and not in the
 * set, a `progress` event if the version moved, and the final event if the job is over.
 */
import { z } from 'zod';
import { FILE_ERROR_CODES } from './errors.ts';
import { fileResultSchema } from './file-result.ts';
import type { FileResult, JobDetail } from './dto.ts';

const jobStatus = z.enum(['pending', 'processing', 'completed', 'failed']);

export const fileResultDtoSchema = z
  .object({
    index: z.number().int().nonnegative(),
    filename: z.string(),
    status: jobStatus,
    mimeType: z.string().nullable(),
    format: z.string().nullable(),
    originalSize: z.number().int().nonnegative(),
    finalSize: z.number().int().nonnegative().nullable(),
    savedPercent: z.number().nullable(),
    appliedQuality: z.number().nullable(),
    storedFileId: z.string().nullable(),
    downloadUrl: z.string().nullable(),
    progress: z.number().int().min(0).max(100),
    error: z.object({ code: z.enum(FILE_ERROR_CODES), message: z.string() }).optional(),
  })
  .extend(
    fileResultSchema.pick({ width: true, height: true, durationSeconds: true, notes: true, targetMet: true, targetReason: true, encodes: true, metadata: true, storyboard: true })
      .shape,
  )
  .describe('One file of a job, as in `results[]` of GET /api/jobs/:id.');

export const jobDetailSchema = z
  .object({
    jobId: z.uuid(),
    jobType: z.enum(['convert', 'compress']),
    tool: z.string().optional(),
    status: jobStatus,
    totalFiles: z.number().int().nonnegative(),
    completedFiles: z.number().int().nonnegative(),
    failedFiles: z.number().int().nonnegative(),
    progress: z.number().int().min(0).max(100),
    errorMessage: z.string().nullable(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    completedAt: z.string().nullable(),
    expiresAt: z.string().nullable(),
    results: z.array(fileResultDtoSchema),
    archive: z.object({ filename: z.string(), size: z.number().int().nonnegative(), downloadUrl: z.string() }).nullable(),
  })
  .describe('A job as GET /api/jobs/:id answers it.');

/** `progress`: where the job stands, sent after every change. */
export const jobProgressEventSchema = z
  .object({
    jobId: z.uuid(),
    status: jobStatus,
    progress: z.number().int().min(0).max(100),
    totalFiles: z.number().int().nonnegative(),
    completedFiles: z.number().int().nonnegative(),
    failedFiles: z.number().int().nonnegative(),
    files: z.array(z.object({ index: z.number().int().nonnegative(), status: jobStatus, progress: z.number().int().min(0).max(100) })),
  })
  .describe('Where the job stands: its counters and percentage, and each file by index.');

/** Every event a job's stream sends, by SSE event name, with its `data` (JSON). */
export const JOB_EVENT_SCHEMAS = {
  snapshot: jobDetailSchema.describe('First on a new stream: the job as it is.'),
  progress: jobProgressEventSchema,
  file: fileResultDtoSchema.describe('A file reached a final state (completed or failed): its result.'),
  completed: jobDetailSchema.describe('Last: the job completed. The stream closes after it.'),
  failed: jobDetailSchema.describe('Last: the job failed (every file failed, or it was cancelled). The stream closes after it.'),
} as const;
export type JobEventName = keyof typeof JOB_EVENT_SCHEMAS;
export const JOB_EVENT_NAMES = Object.keys(JOB_EVENT_SCHEMAS) as JobEventName[];
export type JobProgressEvent = z.infer<typeof jobProgressEventSchema>;

// The schemas describe the very shapes the gateway builds (dto.ts); a drift fails the typecheck.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _fileSame: Same<z.infer<typeof fileResultDtoSchema>, FileResult> = true;
const _detailSame: Same<z.infer<typeof jobDetailSchema>, JobDetail> = true;
void _fileSame;
void _detailSame;

/** What a client has been told, as carried in an event id. */
export interface JobEventCursor {
  version: number;
  /** Bit i set: the client has had file i's `file` event (or saw it final in a snapshot). */
  files: bigint;
}

type CursorFile = { idx: number; status: string; progress: number };

const FINAL = new Set(['completed', 'failed']);
export const isFinalStatus = (s: string): s is 'completed' | 'failed' => FINAL.has(s);

/** The job's version: grows with every change a client can see (see the header). */
export function jobVersion(jobStatusNow: string, files: readonly CursorFile[]): number {
  let v = isFinalStatus(jobStatusNow) ? 1 : 0;
  for (const f of files) v += isFinalStatus(f.status) ? 101 : f.status === 'processing' ? 1 + Math.max(0, Math.min(99, f.progress)) : 0;
  return v;
}

/** The bit set of files already final. */
export function finalFiles(files: readonly CursorFile[]): bigint {
  let set = 0n;
  for (const f of files) if (isFinalStatus(f.status)) set |= 1n << BigInt(f.idx);
  return set;
}

export function formatEventId(c: JobEventCursor): string {
  return `${c.version}-${c.files.toString(16)}`;
}

/** Reads a `Last-Event-ID`; undefined for anything that is not one of ours (the stream then starts over with a snapshot). */
export function parseEventId(raw: string | undefined | null): JobEventCursor | undefined {
  const m = /^(\d{1,12})-([0-9a-f]{1,1024})$/.exec(raw?.trim() ?? '');
  if (!m) return undefined;
  return { version: Number(m[1]), files: BigInt(`0x${m[2]}`) };
}
