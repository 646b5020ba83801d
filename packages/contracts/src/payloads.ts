/**
 * The queue job catalog: names and payloads. Payloads carry ids only, never bytes, and are re-parsed
 * with zod when consumed. New fields must be optional: queued jobs outlive a deploy.
 */
import { z } from 'zod';
import type { JobType } from './job-fields.ts';

export const QUEUES = {
  convertFile: 'convert.file',
  compressFile: 'compress.file',
  archiveBuild: 'archive.build',
} as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];
/** The queues a file's message can be sent to. */
export type FileQueueName = typeof QUEUES.convertFile | typeof QUEUES.compressFile;

/**
 * The queue for one file of a job, decided here only: the gateway sends each new file's message to
 * it, and a worker stopped mid-file sends the file back to it. It is given the file so that queues
 * per class of work (fairness between long videos and small images, say) change this function alone.
 */
export function queueFor(jobType: JobType, _file: { kind: string | null; tool?: string | null }): FileQueueName {
  // Media tools run in the convert workers (jobType convert), beside the conversions of the same media.
  return jobType === 'compress' ? QUEUES.compressFile : QUEUES.convertFile;
}

/** Set when a worker put the task back because storage was unavailable: when that outage began for it. */
const storageWaitSince = z.iso.datetime().optional();

export const fileTaskPayload = z.object({ jobId: z.uuid(), fileId: z.uuid(), storageWaitSince });
export type FileTaskPayload = z.infer<typeof fileTaskPayload>;

export const archiveBuildPayload = z.object({ jobId: z.uuid(), storageWaitSince });
export type ArchiveBuildPayload = z.infer<typeof archiveBuildPayload>;

export const PAYLOADS = {
  [QUEUES.convertFile]: fileTaskPayload,
  [QUEUES.compressFile]: fileTaskPayload,
  [QUEUES.archiveBuild]: archiveBuildPayload,
} as const;
export type PayloadOf<Q extends QueueName> = z.infer<(typeof PAYLOADS)[Q]>;

/** Postgres NOTIFY channel a worker signals when a job reaches a final state (payload: job id). */
export const JOB_DONE_CHANNEL = 'kiln_job_done';
/**
 * Sent by triggers (migrations/0012) whenever a job's or one of its files' status or progress changes
 * (payload: job id). The gateways' live event streams (GET /api/jobs/:id/events) wake on it.
 */
export const JOB_EVENTS_CHANNEL = 'kiln_job_events';
/** Sent by a trigger (migrations/0004) when an API key is revoked, changed or deleted. */
export const KEYS_CHANGED_CHANNEL = 'kiln_keys_changed';
