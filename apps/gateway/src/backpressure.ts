/**
 * Backpressure: new work of a class (media, image, document) is refused with `429 queue_full` and
 * `Retry-After` while that class's backlog is past a limit, instead of queueing without bound (as
 * Gotenberg and imgproxy answer 429 when full). Two limits per class, each a named setting:
 *
 *   QUEUE_MAX_DEPTH_<CLASS>         files waiting (ready, or in a retry's backoff) in one of its queues
 *   QUEUE_MAX_WAIT_SECONDS_<CLASS>  how long the oldest ready file of one of its queues has waited
 *
 * The backlog is pg-boss's own (`Queue.depths`, the query /metrics reads), cached for a second and
 * shared by every request, so a burst of submissions costs Postgres one query per second; what this
 * gateway lets in meanwhile is added to it. Other gateways' submissions inside that second are seen
 * at the next read, so with several gateways a limit can be overshot by about a second of their
 * traffic: the limits bound the backlog, they are not an exact count. When the backlog cannot be read (Postgres down), nothing
 * is refused here: the job's own transaction fails with 503 instead.
 */
import { AppError, WORK_CLASSES, workClassOfQueue, type FileQueueName, type WorkClass } from '@kiln/contracts';
import type { Config } from '@kiln/config';
import { cachedRead } from '@kiln/metrics';
import type { QueueDepthRow } from '@kiln/queue';

/** One limit and the setting that changes it (0 = no limit). */
interface NamedLimit {
  max: number;
  setting: string;
}

export interface BackpressureLimits {
  maxDepth: Record<WorkClass, NamedLimit>;
  maxWaitSeconds: Record<WorkClass, NamedLimit>;
  /** QUEUE_RETRY_AFTER_SECONDS. */
  retryAfterSeconds: number;
}

type FairnessConfig = Pick<
  Config,
  | 'QUEUE_MAX_DEPTH_MEDIA'
  | 'QUEUE_MAX_DEPTH_IMAGE'
  | 'QUEUE_MAX_DEPTH_DOCUMENT'
  | 'QUEUE_MAX_WAIT_SECONDS_MEDIA'
  | 'QUEUE_MAX_WAIT_SECONDS_IMAGE'
  | 'QUEUE_MAX_WAIT_SECONDS_DOCUMENT'
  | 'QUEUE_RETRY_AFTER_SECONDS'
>;

export function backpressureLimits(config: FairnessConfig): BackpressureLimits {
  const named = <S extends keyof FairnessConfig>(setting: S): NamedLimit => ({ max: config[setting], setting });
  return {
    maxDepth: { media: named('QUEUE_MAX_DEPTH_MEDIA'), image: named('QUEUE_MAX_DEPTH_IMAGE'), document: named('QUEUE_MAX_DEPTH_DOCUMENT') },
    maxWaitSeconds: { media: named('QUEUE_MAX_WAIT_SECONDS_MEDIA'), image: named('QUEUE_MAX_WAIT_SECONDS_IMAGE'), document: named('QUEUE_MAX_WAIT_SECONDS_DOCUMENT') },
    retryAfterSeconds: config.QUEUE_RETRY_AFTER_SECONDS,
  };
}

const CLASS_WORDS: Readonly<Record<WorkClass, string>> = { media: 'video/audio files', image: 'images', document: 'documents and archives' };

/** Why new work for `row`'s queue is refused, or undefined when it may be queued. Pure: the unit of the rule. */
export function queueFullRefusal(row: QueueDepthRow, limits: BackpressureLimits): AppError | undefined {
  const cls = workClassOfQueue(row.queue);
  if (!cls) return undefined;
  const retryAfter = limits.retryAfterSeconds;
  const refuse = (message: string, detail: Record<string, unknown>) =>
    new AppError('queue_full', message, {
      detail: { ...detail, queue: row.queue, class: cls, retryAfterSeconds: retryAfter },
      headers: { 'Retry-After': String(retryAfter) },
    });
  const waiting = row.ready + row.deferred;
  const depth = limits.maxDepth[cls];
  if (depth.max > 0 && waiting >= depth.max) {
    return refuse(
      `Kiln already has ${waiting} ${CLASS_WORDS[cls]} waiting for a worker (${row.queue}), its limit (${depth.setting}=${depth.max}); retry in ${retryAfter} s (Retry-After), or ask the operator to add workers or raise ${depth.setting}.`,
      { limit: depth.setting, max: depth.max, waiting },
    );
  }
  const wait = limits.maxWaitSeconds[cls];
  const oldest = row.oldestReadySeconds ?? 0;
  if (wait.max > 0 && oldest >= wait.max) {
    return refuse(
      `The oldest of the ${CLASS_WORDS[cls]} waiting for a worker (${row.queue}) has waited ${Math.floor(oldest)} s, past its limit (${wait.setting}=${wait.max}); retry in ${retryAfter} s (Retry-After), or ask the operator to add workers or raise ${wait.setting}.`,
      { limit: wait.setting, max: wait.max, waitedSeconds: Math.floor(oldest) },
    );
  }
  return undefined;
}

export interface Backpressure {
  /**
   * Throws `queue_full` when any of these queues (with the number of files the submission would add
   * to each) is past its class's limits; else counts those files as waiting until the next read.
   */
  check(files: ReadonlyMap<FileQueueName, number>): Promise<void>;
}

/** How long one read of the backlog is shared by every submission. */
const DEPTH_CACHE_MS = 1000;

export function createBackpressure(opts: {
  read: () => Promise<QueueDepthRow[]>;
  limits: BackpressureLimits;
  ttlMs?: number;
  /** Told of each refusal (the gateway counts them in kiln_queue_full_refusals_total). */
  onRefuse?: (queue: string, limit: string) => void;
}): Backpressure {
  const { limits } = opts;
  const off = WORK_CLASSES.every((c) => limits.maxDepth[c].max === 0 && limits.maxWaitSeconds[c].max === 0);
  const read = cachedRead(opts.read, opts.ttlMs ?? DEPTH_CACHE_MS);
  // Files this gateway let in since the read it is using: a burst of requests inside one period is
  // counted against the limit, not just the backlog as it was when the period began. (A submission
  // whose transaction then fails stays counted until the next read: it errs towards refusing.)
  let basis: QueueDepthRow[] | undefined;
  const since = new Map<string, number>();
  return {
    async check(files) {
      if (off || files.size === 0) return;
      let rows: QueueDepthRow[];
      try {
        rows = await read();
      } catch {
        // Fail open: the submission's own transaction reports an unreachable database as 503.
        return;
      }
      if (rows !== basis) {
        basis = rows;
        since.clear();
      }
      for (const row of rows) {
        if (!files.has(row.queue as FileQueueName)) continue;
        const refusal = queueFullRefusal({ ...row, ready: row.ready + (since.get(row.queue) ?? 0) }, limits);
        if (refusal) {
          opts.onRefuse?.(row.queue, String(refusal.detail?.limit));
          throw refusal;
        }
      }
      for (const [queue, n] of files) since.set(queue, (since.get(queue) ?? 0) + n);
    },
  };
}
