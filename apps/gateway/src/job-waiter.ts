/**
 * Lets a request wait for a job to reach a final state. Workers `pg_notify` on JOB_DONE_CHANNEL; one
 * LISTEN connection per gateway wakes the waiters. A slow poll backs it up, so a notification lost
 * during a reconnect delays an answer by at most a second instead of hanging it. The same connection
 * hears KEYS_CHANGED_CHANNEL for the API-key cache (auth.ts) and JOB_EVENTS_CHANNEL for the live event
 * streams (job-events.ts), which read the job's rows when woken and never poll.
 */
import { JOB_DONE_CHANNEL, JOB_EVENTS_CHANNEL, KEYS_CHANGED_CHANNEL } from '@kiln/contracts';
import { getJob, listen, type JobFileWithOutput, type JobRow, type Pool } from '@kiln/db';
import type { Logger } from '@kiln/config';

/** A final job as its NOTIFY carried it (jobs of one file, see finishFile): what getJobWithFiles returns. */
export interface NotifiedJob {
  job: JobRow;
  files: JobFileWithOutput[];
}

export interface PendingJob {
  /** Resolves true when the job is final, false when `timeoutMs` passed first. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  /** The job and its files, when the notice that ended the wait carried them. */
  notified(): NotifiedJob | undefined;
  /** Gives up on the job without waiting (its creation failed). */
  cancel(): void;
}

export interface JobWaiter {
  /**
   * Listens for a job that is about to be created: call it before the job's insert commits, then
   * `wait` on the result. Saves the query `wait` makes first to catch jobs already final.
   */
  expect(jobId: string): PendingJob;
  /** Resolves true when the job is final, false when `timeoutMs` passed first. */
  wait(jobId: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  /** True while the LISTEN connection is up: notifications are being heard. */
  listening(): boolean;
  /** `fn` runs on every key change, and whenever the connection is (re)made or lost. */
  onKeysChanged(fn: () => void): void;
  /**
   * `fn` runs whenever the job or one of its files changes (JOB_EVENTS_CHANNEL), and whenever the
   * connection is remade (changes may have been missed meanwhile). Returns the unsubscribe.
   */
  onJobEvent(jobId: string, fn: () => void, onEnd?: () => void): () => void;
  /** Calls every job-event subscription's `onEnd` (the gateway is stopping: streams close, clients reconnect elsewhere). */
  endJobEvents(): void;
  /** How many job-event subscriptions are open on this gateway (live streams). */
  jobEventSubscribers(): number;
  close(): Promise<void>;
}

export async function createJobWaiter(connectionString: string, pool: Pool, log: Logger): Promise<JobWaiter> {
  // Each waiter is called with final=true on a NOTIFY (workers send it only from the transaction
  // that makes the job final, so it arrives after the commit) and without it when it must look.
  const waiters = new Map<string, Set<(final?: boolean, data?: NotifiedJob) => void>>();
  const keyListeners: (() => void)[] = [];
  const keysChanged = () => {
    for (const fn of keyListeners) fn();
  };

  const wake = (jobId: string, final = false, data?: NotifiedJob) => {
    const set = waiters.get(jobId);
    if (set) for (const fn of set) fn(final, data);
  };
  const eventSubscribers = new Map<string, Set<() => void>>();
  const eventEnders = new Set<() => void>();
  let eventSubscriberCount = 0;
  const wakeEvents = (jobId: string) => {
    const set = eventSubscribers.get(jobId);
    if (!set) return;
    // One subscriber's fault must not stop the others, nor escape into pg's notification handler.
    for (const fn of set) {
      try {
        fn();
      } catch (err) {
        log.error('a job event subscriber failed', { jobId, err });
      }
    }
  };

  const connection = await listen(
    connectionString,
    { channels: [JOB_DONE_CHANNEL, KEYS_CHANGED_CHANNEL, JOB_EVENTS_CHANNEL], applicationName: 'kiln-gateway-listen', warn: (m, f) => log.warn(m, f) },
    {
      notice: (channel, payload) => {
        if (channel === KEYS_CHANGED_CHANNEL) keysChanged();
        else if (channel === JOB_EVENTS_CHANNEL) {
          if (payload) wakeEvents(payload);
        } else if (payload?.startsWith('{')) {
          const n = parseNotice(payload);
          if (n) {
            wake(n.id, true, n.data);
            wakeEvents(n.id);
          }
        } else if (payload) {
          wake(payload, true);
          wakeEvents(payload);
        }
      },
      up: () => {
        keysChanged();
        // Anything that finished while we were away: let every waiter re-check.
        for (const id of waiters.keys()) wake(id);
        for (const id of eventSubscribers.keys()) wakeEvents(id);
      },
      down: keysChanged,
    },
  );

  const isFinal = async (jobId: string) => {
    const job = await getJob(pool, jobId);
    return !job || job.status === 'completed' || job.status === 'failed';
  };

  /**
   * Registers interest in `jobId`. With `firstLook` false and the LISTEN connection up, the job's
   * NOTIFY cannot be missed (registration happens before the job's insert commits, and a reconnect
   * makes every waiter look), so no query is needed until it arrives.
   */
  const watch = (jobId: string, firstLook: boolean): PendingJob => {
    let final = false;
    let data: NotifiedJob | undefined;
    let needLook = firstLook || !connection.listening();
    let settle: ((v: boolean) => void) | undefined;
    const set = waiters.get(jobId) ?? new Set();
    waiters.set(jobId, set);
    const look = () =>
      void isFinal(jobId).then(
        (f) => {
          if (f) {
            final = true;
            settle?.(true);
          }
        },
        () => undefined,
      );
    const check = (notice?: boolean, notified?: NotifiedJob) => {
      if (notice) {
        final = true;
        data = notified;
        settle?.(true);
      } else if (settle) {
        look();
      } else {
        needLook = true;
      }
    };
    set.add(check);
    const remove = () => {
      set.delete(check);
      if (!set.size && waiters.get(jobId) === set) waiters.delete(jobId);
    };
    return {
      cancel: remove,
      notified: () => data,
      wait(timeoutMs, signal) {
        return new Promise<boolean>((resolve, reject) => {
          let done = false;
          let timer: NodeJS.Timeout | undefined;
          let poll: NodeJS.Timeout | undefined;
          const finish = (v: boolean) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            clearInterval(poll);
            remove();
            resolve(v);
          };
          settle = finish;
          if (final) return finish(true);
          timer = setTimeout(() => finish(false), timeoutMs);
          poll = setInterval(look, 1000);
          signal?.addEventListener('abort', () => finish(false), { once: true });
          // The one look, when needed, also answers jobs that are already final.
          if (needLook) {
            isFinal(jobId).then(
              (f) => {
                if (f) finish(true);
              },
              (err: unknown) => {
                if (done) return;
                finish(false);
                reject(err);
              },
            );
          }
        });
      },
    };
  };

  return {
    expect: (jobId) => watch(jobId, false),
    wait: (jobId, timeoutMs, signal) => watch(jobId, true).wait(timeoutMs, signal),
    listening: connection.listening,
    onKeysChanged(fn) {
      keyListeners.push(fn);
    },
    onJobEvent(jobId, fn, onEnd) {
      const set = eventSubscribers.get(jobId) ?? new Set();
      eventSubscribers.set(jobId, set);
      const own = () => fn();
      const ender = () => onEnd?.();
      set.add(own);
      eventEnders.add(ender);
      eventSubscriberCount++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        eventSubscriberCount--;
        set.delete(own);
        eventEnders.delete(ender);
        if (!set.size && eventSubscribers.get(jobId) === set) eventSubscribers.delete(jobId);
      };
    },
    endJobEvents() {
      for (const end of [...eventEnders]) end();
    },
    jobEventSubscribers: () => eventSubscriberCount,
    close: connection.close,
  };
}

/**
 * A notice's JSON (finishFile): `{id, job, files}`, the job's dates as ISO strings. Anything else is
 * read as no data: the waiter is still woken by the id when there is one, and the answer reads the job.
 */
function parseNotice(payload: string): { id: string; data?: NotifiedJob } | undefined {
  try {
    const o = JSON.parse(payload) as { id?: unknown; job?: Record<string, unknown>; files?: unknown };
    if (typeof o.id !== 'string') return undefined;
    if (!o.job || typeof o.job !== 'object' || !Array.isArray(o.files)) return { id: o.id };
    const date = (v: unknown) => (typeof v === 'string' ? new Date(v) : null);
    const job = {
      ...o.job,
      createdAt: date(o.job.createdAt) ?? new Date(0),
      startedAt: date(o.job.startedAt),
      completedAt: date(o.job.completedAt),
      expiresAt: date(o.job.expiresAt),
    } as unknown as JobRow;
    return { id: o.id, data: { job, files: o.files as JobFileWithOutput[] } };
  } catch {
    return undefined;
  }
}
