/**
 * Which queues a file worker consumes, and with how many slots each: one queue per class of work
 * (media, image, document; `@kiln/contracts`' FILE_QUEUES) with its own concurrency setting, so that
 * a backlog of one class never holds the slots another is waiting for. pg-boss hands out a queue's
 * messages oldest first, so per-class slots on a single queue could not do this: a slot meant for
 * images would still be handed the next video. Separate queues with their own slots can.
 *
 * The legacy single queue of the job type (`convert.file` / `compress.file`, from before the classes)
 * is consumed too, with one slot, so messages queued before an upgrade still run.
 */
import { FILE_QUEUES, LEGACY_FILE_QUEUES, WORK_CLASSES, type JobType, type WorkClass } from '@kiln/contracts';
import type { Config } from '@kiln/config';
import { createFileHandler, type WorkerDeps } from './file-handler.ts';

/** The concurrency setting of each (job type, class). */
export const CONCURRENCY_SETTINGS = {
  convert: { media: 'CONVERT_MEDIA_CONCURRENCY', image: 'CONVERT_CONCURRENCY', document: 'CONVERT_DOCUMENT_CONCURRENCY' },
  compress: { media: 'COMPRESS_MEDIA_CONCURRENCY', image: 'COMPRESS_CONCURRENCY', document: 'COMPRESS_DOCUMENT_CONCURRENCY' },
} as const satisfies Record<JobType, Record<WorkClass, keyof Config>>;

/** Slots per class for one job type, from config. */
export function classConcurrency(config: Config, mode: JobType): Record<WorkClass, number> {
  const s = CONCURRENCY_SETTINGS[mode];
  return { media: config[s.media], image: config[s.image], document: config[s.document] };
}

/** Registers the file handler on every queue of `mode`'s classes, and on its legacy queue. */
export async function workFileQueues(deps: WorkerDeps, config: Config, mode: JobType): Promise<Record<WorkClass, number>> {
  const handler = createFileHandler(deps, mode);
  const slots = classConcurrency(config, mode);
  for (const c of WORK_CLASSES) await deps.queue.work(FILE_QUEUES[mode][c], slots[c], handler);
  await deps.queue.work(LEGACY_FILE_QUEUES[mode], 1, handler);
  deps.log.info('file queues', { mode, slots: Object.fromEntries(WORK_CLASSES.map((c) => [FILE_QUEUES[mode][c], slots[c]])), legacy: LEGACY_FILE_QUEUES[mode] });
  return slots;
}
