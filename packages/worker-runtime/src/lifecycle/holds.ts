/**
 * The file handler's side of worker_holds. The hold is taken by the claim's own statement
 * (claimFileHeld: one round trip for both, with the attempt's scratch folder, chosen before it
 * exists) and released by the statement that writes the file's outcome (finishFile's `holder`); only
 * an attempt that ends another way (an error left for pg-boss to retry, a move to another queue, a
 * shutdown, a claim that found nothing to do after its hold was written) deletes its hold on its own.
 * Without an instance (a handler built by a test without one) the claim is the plain claimFile and
 * nothing is held.
 */
import { claimFile, claimFileHeld, releaseFileHold, setHoldScratch, type FileClaim, type Pool, type Queryable } from '@kiln/db';
import type { Logger } from '@kiln/config';
import type { WorkerInstanceHandle } from './instance.ts';

/**
 * `nothing`: the file is final or its job cancelled. `holdTaken`: the statement wrote a hold anyway
 * (the file went final between its look and its hold, which is rare), and the attempt must release it.
 */
export type HoldingClaim = { outcome: 'claimed'; claim: FileClaim } | { outcome: 'duplicate' } | { outcome: 'nothing'; holdTaken: boolean };

export interface FileHolds {
  /** The instance whose holds these are (finishFile's `holder`), or undefined when nothing is held. */
  readonly holder: string | undefined;
  /**
   * In memory, before any SQL: false when this process already works on the file (a duplicate
   * pg-boss handed to the same process, e.g. after a Postgres outage interrupted a heartbeat).
   * Every `enter` that returned true is ended by one `leave`.
   */
  enter(fileId: string): boolean;
  /**
   * Takes the hold and claims the file in one statement (on `db`, which may be a transaction).
   * `duplicate`: another live worker holds it; nothing was written and the message is dropped.
   */
  claim(db: Queryable, fileId: string, scratchDir: string | null): Promise<HoldingClaim>;
  /** The scratch folder was made somewhere other than the path given to `claim` (a fallback). */
  scratch(fileId: string, dir: string): Promise<void>;
  /**
   * The attempt is over. `holdRow`: whether a hold row of this attempt may still exist (false after
   * a finish that deleted it, after a refused claim, or when the claim wrote none).
   */
  leave(fileId: string, holdRow: boolean): Promise<void>;
}

export function fileHolds(pool: Pool, instance: WorkerInstanceHandle | undefined, log: Logger): FileHolds {
  if (!instance) {
    return {
      holder: undefined,
      enter: () => true,
      claim: async (db, fileId) => {
        const claim = await claimFile(db, fileId);
        return claim ? { outcome: 'claimed', claim } : { outcome: 'nothing', holdTaken: false };
      },
      scratch: async () => undefined,
      leave: async () => undefined,
    };
  }
  return {
    holder: instance.id,
    enter(fileId) {
      if (instance.active.has(fileId)) {
        log.info('file already being worked on by this worker; this message is a duplicate and is dropped', { fileId });
        return false;
      }
      // Added before the hold exists: the instance heartbeat drops holds of files not in this set.
      instance.active.add(fileId);
      return true;
    },
    async claim(db, fileId, scratchDir) {
      const r = await claimFileHeld(db, fileId, { instanceId: instance.id, orphanSeconds: instance.orphanSeconds, scratchDir });
      if (r.outcome === 'claimed') return r;
      if (r.outcome === 'refused') {
        log.info('file held by another live worker; this message is a duplicate and is dropped', { fileId, holder: r.holder });
        return { outcome: 'duplicate' };
      }
      return r;
    },
    async scratch(fileId, dir) {
      // Only for the sweep's cleanup after a crash: not worth failing the file over.
      await setHoldScratch(pool, fileId, instance.id, dir).catch((err) => log.warn('could not record scratch folder', { err: (err as Error).message }));
    },
    async leave(fileId, holdRow) {
      try {
        if (holdRow) await releaseFileHold(pool, fileId, instance.id);
      } catch (err) {
        // The instance's heartbeat drops holds of files it no longer works on (instance.ts).
        log.warn('could not release file hold; the next instance heartbeat will', { fileId, err: (err as Error).message });
      } finally {
        instance.active.delete(fileId);
      }
    },
  };
}
