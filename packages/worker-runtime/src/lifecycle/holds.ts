/**
 * The file handler's side of worker_holds: take the hold before claiming a file, say where the
 * attempt's scratch folder is, release it when the attempt ends. Without an instance (a handler built
 * by a test without one) every call is a no-op that lets the work go on.
 */
import { releaseFileHold, setHoldScratch, takeFileHold, type Pool } from '@kiln/db';
import type { Logger } from '@kiln/config';
import type { WorkerInstanceHandle } from './instance.ts';

export interface FileHolds {
  /** False when another live worker holds the file: this message is a duplicate, and is dropped. */
  take(fileId: string): Promise<boolean>;
  scratch(fileId: string, dir: string): Promise<void>;
  release(fileId: string): Promise<void>;
}

export function fileHolds(pool: Pool, instance: WorkerInstanceHandle | undefined, log: Logger): FileHolds {
  if (!instance) return { take: async () => true, scratch: async () => undefined, release: async () => undefined };
  return {
    async take(fileId) {
      // The same process may be handed a duplicate too (pg-boss retried a message whose heartbeat a
      // Postgres outage interrupted): the hold is this instance's, so the check is in memory.
      if (instance.active.has(fileId)) {
        log.info('file already being worked on by this worker; this message is a duplicate and is dropped', { fileId });
        return false;
      }
      instance.active.add(fileId);
      try {
        const r = await takeFileHold(pool, fileId, instance.id, instance.orphanSeconds);
        if (r.taken) return true;
        instance.active.delete(fileId);
        log.info('file held by another live worker; this message is a duplicate and is dropped', { fileId, holder: r.holder });
        return false;
      } catch (err) {
        instance.active.delete(fileId);
        throw err;
      }
    },
    async scratch(fileId, dir) {
      // Only for the sweep's cleanup after a crash: not worth failing the file over.
      await setHoldScratch(pool, fileId, instance.id, dir).catch((err) => log.warn('could not record scratch folder', { err: (err as Error).message }));
    },
    async release(fileId) {
      try {
        await releaseFileHold(pool, fileId, instance.id);
      } catch (err) {
        // The instance's heartbeat drops holds of files it no longer works on (instance.ts).
        log.warn('could not release file hold; the next instance heartbeat will', { fileId, err: (err as Error).message });
      } finally {
        instance.active.delete(fileId);
      }
    },
  };
}
