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
import { fileResultResponseSchema, jobDetailSchema, jobStatusSchema } from './response-schemas.ts';

const jobStatus = jobStatusSchema;

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
  .meta({ id: 'JobProgressEvent', description: 'Where the job stands: its counters and percentage, and each file by index.' });

/**
 * Every event a job's stream sends, by SSE event name, with the schema of its `data` (JSON):
 * `snapshot` first on a new stream (the job as it is), `progress` after every change, `file` when a
 * file reaches a final state (its result), and last `completed` or `failed` (the final job; the
 * stream closes after it). The job and result schemas are the ones GET /api/jobs/:id answers with.
 */
export const JOB_EVENT_SCHEMAS = {
  snapshot: jobDetailSchema,
  progress: jobProgressEventSchema,
  file: fileResultResponseSchema,
  completed: jobDetailSchema,
  failed: jobDetailSchema,
} as const;
/** One frame of the stream, for the OpenAPI document: its `event` name, its `id` and its `data`. */
export const jobEventFrameSchema = z
  .discriminatedUnion(
    'event',
    (Object.keys(JOB_EVENT_SCHEMAS) as (keyof typeof JOB_EVENT_SCHEMAS)[]).map((name) =>
      z.object({ event: z.literal(name), id: z.string().describe('`<version>-<files>`: send the last one back as Last-Event-ID to resume.'), data: JOB_EVENT_SCHEMAS[name] }),
    ) as unknown as [z.ZodObject, ...z.ZodObject[]],
  )
  .meta({
    id: 'JobEvent',
    description:
      'One Server-Sent Event (`event:`, `id:`, `data:` lines; data is one line of JSON): snapshot first, then progress and file events, last completed or failed, after which the server closes the stream.',
  });
export type JobEventName = keyof typeof JOB_EVENT_SCHEMAS;
export const JOB_EVENT_NAMES = Object.keys(JOB_EVENT_SCHEMAS) as JobEventName[];
export type JobProgressEvent = z.infer<typeof jobProgressEventSchema>;

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
