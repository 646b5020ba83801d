/**
 * The queue job catalog: names and payloads. Payloads carry ids only, never bytes, and are re-parsed
 * with zod when consumed. New fields must be optional: queued jobs outlive a deploy.
 */
import { z } from 'zod';
import { INPUT_INFO, type Family, type InputKind } from '@kiln/formats';
import type { JobType } from './job-fields.ts';
import { TOOLS, type ToolName } from './media-tools.ts';

/**
 * Classes of work, each with its own queues and its own worker slots, so that one class cannot starve
 * another: a backlog of hour-long videos (ffmpeg) never stands in front of a thumbnail (sharp), and a
 * zip of ten thousand images never holds the slot a video is waiting for.
 *   media    — video and audio (ffmpeg)
 *   image    — raster images and SVG (sharp, libvips)
 *   document — PDFs, archives and compressed streams (7-Zip, the PDF engine, the archive batch engine),
 *              and any file whose type is not known yet (a URL source before its fetch)
 */
export const WORK_CLASSES = ['media', 'image', 'document'] as const;
export type WorkClass = (typeof WORK_CLASSES)[number];

export const QUEUES = {
  convertMedia: 'convert.media',
  convertImage: 'convert.image',
  convertDocument: 'convert.document',
  compressMedia: 'compress.media',
  compressImage: 'compress.image',
  compressDocument: 'compress.document',
  /**
   * The single queues of Kiln before its work classes. Nothing is sent to them any more; workers keep
   * consuming them (one slot each) so that messages queued before an upgrade still run.
   */
  convertFile: 'convert.file',
  compressFile: 'compress.file',
  archiveBuild: 'archive.build',
} as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];
/** The queues a file's message can be sent to (the legacy single queues included: a worker may still be handed one). */
export type FileQueueName = Exclude<QueueName, typeof QUEUES.archiveBuild>;

/** Each class's queue, by job type. */
export const FILE_QUEUES = {
  convert: { media: QUEUES.convertMedia, image: QUEUES.convertImage, document: QUEUES.convertDocument },
  compress: { media: QUEUES.compressMedia, image: QUEUES.compressImage, document: QUEUES.compressDocument },
} as const satisfies Record<JobType, Record<WorkClass, FileQueueName>>;

/** The legacy single queue of each job type (see QUEUES.convertFile). */
export const LEGACY_FILE_QUEUES = { convert: QUEUES.convertFile, compress: QUEUES.compressFile } as const satisfies Record<JobType, FileQueueName>;

const CLASS_OF_FAMILY: Readonly<Record<Family, WorkClass>> = {
  video: 'media',
  audio: 'media',
  image: 'image',
  vector: 'image',
  document: 'document',
  archive: 'document',
  compressed: 'document',
};

/**
 * The class of one file's work. By the file's kind when it is known; else (a URL source not fetched
 * yet) by the media tool's inputs when they all fall in one class; else `document`, the class of
 * work whose size is not known in advance. A worker that fetches a URL source moves the file to its
 * class's queue once the kind is known (the fetch itself runs in the class it was sent to).
 */
export function workClassOf(file: { kind: string | null; tool?: string | null }): WorkClass {
  const kind = file.kind as InputKind | null;
  if (kind && kind in INPUT_INFO) return CLASS_OF_FAMILY[INPUT_INFO[kind].family];
  return (file.tool ? workClassOfTool(file.tool) : undefined) ?? 'document';
}

/** The class of a media tool's work when every input it takes is of one class (gif: media), else undefined (watermark: images or video). */
export function workClassOfTool(tool: string): WorkClass | undefined {
  const spec = (TOOLS as Readonly<Record<string, (typeof TOOLS)[ToolName] | undefined>>)[tool];
  if (!spec || spec.inputs === 'any') return undefined;
  const classes = new Set(spec.inputs.map((f) => CLASS_OF_FAMILY[f]));
  return classes.size === 1 ? [...classes][0] : undefined;
}

/** Which class a queue carries work of (undefined for the legacy single queues and archive.build). */
export function workClassOfQueue(name: string): WorkClass | undefined {
  for (const byClass of Object.values(FILE_QUEUES)) {
    for (const c of WORK_CLASSES) if (byClass[c] === name) return c;
  }
  return undefined;
}

/**
 * The queue for one file of a job, decided here only: the gateway sends each new file's message to
 * it, and a worker stopped mid-file sends the file back to it. Media tools run in the convert workers
 * (jobType convert), beside the conversions of the same media.
 */
export function queueFor(jobType: JobType, file: { kind: string | null; tool?: string | null }): FileQueueName {
  return FILE_QUEUES[jobType][workClassOf(file)];
}

/** Set when a worker put the task back because storage was unavailable: when that outage began for it. */
const storageWaitSince = z.iso.datetime().optional();

export const fileTaskPayload = z.object({
  jobId: z.uuid(),
  fileId: z.uuid(),
  storageWaitSince,
  /**
   * The job's key, and whether the job has its own webhookUrl (fixed at submission): with these and
   * the worker's webhook recipient cache, a change nobody would hear of is recorded without a
   * transaction. Absent (older messages, re-queues): the worker asks the database, as it always may.
   */
  apiKeyId: z.uuid().optional(),
  jobWebhook: z.boolean().optional(),
});
export type FileTaskPayload = z.infer<typeof fileTaskPayload>;

export const archiveBuildPayload = z.object({ jobId: z.uuid(), storageWaitSince });
export type ArchiveBuildPayload = z.infer<typeof archiveBuildPayload>;

export const PAYLOADS = {
  [QUEUES.convertMedia]: fileTaskPayload,
  [QUEUES.convertImage]: fileTaskPayload,
  [QUEUES.convertDocument]: fileTaskPayload,
  [QUEUES.compressMedia]: fileTaskPayload,
  [QUEUES.compressImage]: fileTaskPayload,
  [QUEUES.compressDocument]: fileTaskPayload,
  [QUEUES.convertFile]: fileTaskPayload,
  [QUEUES.compressFile]: fileTaskPayload,
  [QUEUES.archiveBuild]: archiveBuildPayload,
} as const;
export type PayloadOf<Q extends QueueName> = z.infer<(typeof PAYLOADS)[Q]>;

/** Postgres NOTIFY channel a worker signals when a job reaches a final state (payload: job id). */
export const JOB_DONE_CHANNEL = 'kiln_job_done';
/**
 * Sent by triggers (migrations/0013_job_events_notify.sql) whenever a job's or one of its files' status or progress changes
 * (payload: job id). The gateways' live event streams (GET /api/jobs/:id/events) wake on it.
 */
export const JOB_EVENTS_CHANNEL = 'kiln_job_events';
/** Sent by a trigger (migrations/0014) when any webhook endpoint is created, changed or deleted. */
export const WEBHOOK_ENDPOINTS_CHANNEL = 'kiln_webhook_endpoints';
/** Sent by triggers (migrations/0015) at the commit of a statement that leaves a webhook delivery due now: the workers' delivery loops wake on it. */
export const WEBHOOK_DELIVERIES_CHANNEL = 'kiln_webhook_deliveries';
/** Sent by a trigger (migrations/0004) when an API key is revoked, changed or deleted. */
export const KEYS_CHANGED_CHANNEL = 'kiln_keys_changed';
