/**
 * Lets a request wait for a job to reach a final state. Workers `pg_notify` on JOB_DONE_CHANNEL; one
 * LISTEN connection per gateway wakes the waiters. A slow poll backs it up, so a notification lost
 * during a reconnect delays an answer by at most a second instead of hanging it.
 */
import pg from 'pg';
import { JOB_DONE_CHANNEL } from '@kiln/contracts';
import { getJob, type Pool } from '@kiln/db';
import type { Logger } from '@kiln/config';

export interface JobWaiter {
  /** Resolves true when the job is final, false when `timeoutMs` passed first. */
  wait(jobId: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  close(): Promise<void>;
}

export async function createJobWaiter(connectionString: string, pool: Pool, log: Logger): Promise<JobWaiter> {
  // Each waiter is called with final=true on a NOTIFY (workers send it only from the transaction
  // that makes the job final, so it arrives after the commit) and without it when it must look.
  const waiters = new Map<string, Set<(final?: boolean) => void>>();
  let client: pg.Client | undefined;
  let closed = false;

  const wake = (jobId: string, final = false) => {
    const set = waiters.get(jobId);
    if (set) for (const fn of set) fn(final);
  };

  const connect = async (): Promise<void> => {
    if (closed) return;
    const c = new pg.Client({ connectionString, application_name: 'kiln-gateway-listen' });
    c.on('notification', (n) => { if (n.payload) wake(n.payload, true); });
    c.on('error', (err) => {
      log.warn('job listener lost its connection; reconnecting', { err: err.message });
      client = undefined;
      setTimeout(() => void connect().catch(() => undefined), 1000).unref();
    });
    await c.connect();
    await c.query(`LISTEN ${JOB_DONE_CHANNEL}`);
    client = c;
    // Anything that finished while we were away: let every waiter re-check.
    for (const id of waiters.keys()) wake(id);
  };
  await connect();

  const isFinal = async (jobId: string) => {
    const job = await getJob(pool, jobId);
    return !job || job.status === 'completed' || job.status === 'failed';
  };

  return {
    async wait(jobId, timeoutMs, signal) {
      // Register before the first look so a NOTIFY arriving while it runs is not missed; that one
      // look then answers jobs already final too (one query instead of a look before and after).
      return new Promise<boolean>((resolve, reject) => {
        let settled = false;
        const set = waiters.get(jobId) ?? new Set();
        waiters.set(jobId, set);
        const finish = (v: boolean) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          clearInterval(poll);
          set.delete(check);
          if (!set.size) waiters.delete(jobId);
          resolve(v);
        };
        const check = (final?: boolean) => {
          if (final) return finish(true);
          void isFinal(jobId).then((f) => { if (f) finish(true); }, () => undefined);
        };
        set.add(check);
        const timer = setTimeout(() => finish(false), timeoutMs);
        const poll = setInterval(() => check(), 1000);
        signal?.addEventListener('abort', () => finish(false), { once: true });
        isFinal(jobId).then((f) => { if (f) finish(true); }, (err: unknown) => {
          if (settled) return;
          finish(false);
          reject(err);
        });
      });
    },
    async close() {
      closed = true;
      await client?.end().catch(() => undefined);
    },
  };
}
