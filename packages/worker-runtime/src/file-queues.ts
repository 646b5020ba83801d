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
import { CodecGate } from './lifecycle/codec-gate.ts';

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

/**
 * Registers the file handler on every queue of `mode`'s classes, and on its legacy queue. The image
 * queue takes IMAGE_OVERLAP_SLOTS more messages than it converts at once (lifecycle/codec-gate.ts):
 * a small image's own round trips (claim, source, output, outcome, next fetch) cost about as much
 * wall time as its conversion, and without the extra messages a core sat idle through them. Media
 * and documents run one engine for seconds to minutes per file; a message waiting that long for an
 * engine would hold its expiry and its file away from other hosts, so they get none.
 */
export async function workFileQueues(deps: WorkerDeps, config: Config, mode: JobType): Promise<Record<WorkClass, number>> {
  const slots = classConcurrency(config, mode);
  const overlap = config.IMAGE_OVERLAP_SLOTS;
  const imageQueue = FILE_QUEUES[mode].image;
  const codecGates = new Map(overlap > 0 ? [[imageQueue, new CodecGate(slots.image)]] : []);
  const handler = createFileHandler({ ...deps, codecGates }, mode);
  for (const c of WORK_CLASSES) await deps.queue.work(FILE_QUEUES[mode][c], slots[c] + (c === 'image' ? overlap : 0), handler);
  await deps.queue.work(LEGACY_FILE_QUEUES[mode], 1, handler);
  deps.log.info('file queues', {
    mode,
    slots: Object.fromEntries(WORK_CLASSES.map((c) => [FILE_QUEUES[mode][c], slots[c]])),
    imageOverlap: overlap,
    legacy: LEGACY_FILE_QUEUES[mode],
  });
  return slots;
}
