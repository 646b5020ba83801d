/**
 * One queue's consumer in this process: a single fetch loop that takes up to as many messages as it
 * has free slots, in one round trip, and runs each in a slot of its own.
 *
 * Why not pg-boss's `work()` with one worker per slot (what Kiln did before): a NOTIFY wakes every
 * idle worker of the queue, and each sends a fetch of its own, so one message arriving at an idle
 * process with N free slots cost N fetches, N − 1 of them empty; and a slot that finished looked for
 * the next message at once, which came back empty whenever there was no backlog. pg-boss's batch
 * workers (`batchSize` > 1) fetch several at once but run them as one batch: the next fetch waits for
 * the slowest of them, so a long file would hold the slots the short ones freed.
 *
 * When to fetch: only when a slot is free and the queue may hold a ready message. It may when the
 * last fetch came back full (as many as asked), when a NOTIFY for the queue arrived after the last
 * fetch was sent (pg-boss sends one with every insert of a ready message, after its commit), after
 * the listener (re)connected (notifications may have been missed), and once the poll interval has
 * passed since the last fetch (a retry's backoff ending, a message expired by the supervisor, and
 * anything a lost notification would have announced: these send no NOTIFY). A fetch that came back
 * short proves the queue had nothing more ready at that moment, so a slot that finishes then does
 * not ask again.
 *
 * Completion: a handler may complete its message in its own last statement (Queue.completionFragment:
 * the file's outcome and the message's completion commit together) and return 'settled'. Otherwise
 * the message is completed once its handler returns, in the background, with the others that
 * returned at the same time (complete()); its slot does not wait for that statement.
 *
 * Expiry: a message's `expireInSeconds` runs from its fetch. Nothing is fetched for a slot that is not
 * free, so every fetched message starts at once, as it did with one fetch per slot: the deadline each
 * handler gets is the one pg-boss counts.
 */
import { createHash } from 'node:crypto';
import type { Job, JobAttempt, PgBoss } from 'pg-boss';

export interface ConsumerOptions {
  boss: PgBoss;
  name: string;
  concurrency: number;
  /**
   * Runs one message; a throw fails it (pg-boss retries it with backoff up to the queue's retryLimit).
   * `'settled'`: the handler's own statement completed the message already (Queue.completionFragment).
   */
  handler: (job: Job<object>, signal: AbortSignal) => Promise<unknown>;
  /** The poll interval in ms: a backstop while NOTIFY works, the only way without. */
  pollMs: number;
  onError: (err: Error) => void;
  /** Send pg-boss's fetch as a named statement (namedFetchDb); false: as pg-boss sends it. */
  preparedStatements?: boolean;
}

/** Names by statement text (namedFetchDb): a few texts per queue, one per batch size asked for. */
const fetchNames = new Map<string, string>();

/**
 * pg-boss's own database, for `boss.fetch({ db })`, sending each statement as a named one. pg-boss
 * builds its fetch with the queue's name and the batch size written into the text and no parameters,
 * which node-postgres sends as a simple query: Postgres parsed, analysed and planned it on every
 * fetch, about 0.5 ms of its CPU each time (a third of the fetch's cost; docs/performance.md). Named
 * after a hash of its text, it is parsed once per connection, and a statement without parameters
 * keeps its one generic plan (re-planned only when a table's statistics or schema change). The SQL
 * and everything pg-boss does around it (its error handling, its row conversion) are its own; only
 * the protocol changes. pg-boss's Db.executeSql hands its first argument to pg's `pool.query`, which
 * takes a query config as well as a text.
 */
export function namedFetchDb(boss: PgBoss): { executeSql: (text: string, values?: unknown[]) => Promise<{ rows: unknown[] }> } {
  return {
    executeSql: (text, values) => {
      let name = fetchNames.get(text);
      if (!name) {
        name = `kiln_boss_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
        fetchNames.set(text, name);
      }
      const db = boss.getDb() as unknown as { executeSql: (q: { name: string; text: string; values: unknown[] }) => Promise<{ rows: unknown[] }> };
      return db.executeSql({ name, text, values: values ?? [] });
    },
  };
}

interface Running {
  attempt: JobAttempt;
  controller: AbortController;
  done: Promise<void>;
}

export class Consumer {
  private readonly o: ConsumerOptions;
  private readonly running = new Map<string, Running>();
  /** The queue may hold a ready message (see the header). True at start: nobody has looked yet. */
  private mayHaveWork = true;
  private lastFetchAt = 0;
  private wakeUp: (() => void) | undefined;
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  private readonly fetchDb: ReturnType<typeof namedFetchDb> | undefined;
  /** Messages whose handlers returned, waiting for their completion statement (complete()). */
  private readonly toComplete: JobAttempt[] = [];
  private completing: Promise<void> | undefined;

  constructor(o: ConsumerOptions) {
    this.o = o;
    this.fetchDb = (o.preparedStatements ?? true) ? namedFetchDb(o.boss) : undefined;
  }

  start(): void {
    this.loopDone ??= this.loop();
  }

  /** A NOTIFY for this queue, or the listener's (re)connection: look once more. */
  notify(): void {
    this.mayHaveWork = true;
    this.wake();
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const free = this.o.concurrency - this.running.size;
      if (free > 0 && !this.mayHaveWork && Date.now() - this.lastFetchAt >= this.o.pollMs) this.mayHaveWork = true;
      if (free > 0 && this.mayHaveWork) {
        // Cleared before the fetch is sent: a NOTIFY that arrives while it runs may announce a message
        // committed after its snapshot, and sets it again.
        this.mayHaveWork = false;
        this.lastFetchAt = Date.now();
        let jobs: Job<object>[];
        try {
          jobs = await this.o.boss.fetch<object>(this.o.name, { batchSize: free, ...(this.fetchDb ? { db: this.fetchDb } : {}) });
        } catch (err) {
          // An outage: look again after a poll interval, not in a tight loop.
          this.o.onError(err as Error);
          this.mayHaveWork = false;
          await this.sleep();
          this.mayHaveWork = true;
          continue;
        }
        if (jobs.length >= free) this.mayHaveWork = true;
        // Claimed already: run them even if a stop began during the fetch (they are part of its drain).
        for (const job of jobs) this.run(job);
        continue;
      }
      await this.sleep();
      // One turn of the event loop: handlers that finished together free their slots together, and
      // one fetch asks for all of them.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Until woken (a slot freed, a NOTIFY, a stop) or, with a slot free, the next poll is due. */
  private sleep(): Promise<void> {
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      this.wakeUp = done;
      if (this.running.size < this.o.concurrency) {
        timer = setTimeout(done, Math.max(50, this.lastFetchAt + this.o.pollMs - Date.now()));
        timer.unref();
      }
    });
  }

  private run(job: Job<object>): void {
    const attempt: JobAttempt = { id: job.id, retryCount: job.retryCount };
    const controller = new AbortController();
    const entry: Running = { attempt, controller, done: Promise.resolve() };
    this.running.set(job.id, entry);
    entry.done = this.runOne(job, attempt, controller).finally(() => {
      this.running.delete(job.id);
      this.wake();
    });
  }

  private async runOne(job: Job<object>, attempt: JobAttempt, controller: AbortController): Promise<void> {
    const { boss, name } = this.o;
    // pg-boss's heartbeat, as its own workers keep it: refreshed at half the message's heartbeatSeconds,
    // and the handler's signal aborted when the refresh finds the claim gone (retried elsewhere).
    let heartbeat: NodeJS.Timeout | undefined;
    if (job.heartbeatSeconds && job.heartbeatSeconds > 0) {
      heartbeat = setInterval(() => {
        boss.touch(name, [attempt]).then(
          (r) => {
            const settled = (r as { settled?: string[] }).settled;
            if (settled && !settled.includes(job.id)) controller.abort(new Error(`job ${job.id} is no longer active under this worker's claim`));
          },
          (err: unknown) => this.o.onError(err as Error),
        );
      }, job.heartbeatSeconds * 500);
      heartbeat.unref();
    }
    let expiry: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      expiry = setTimeout(() => reject(new Error(`handler execution exceeded ${job.expireInSeconds}s`)), job.expireInSeconds * 1000);
      expiry.unref();
    });
    // Aborted from outside (the claim was lost, or a stop failed the message): whoever did that
    // settled it, and this attempt no longer may.
    const lost = new Promise<'lost'>((resolve) => controller.signal.addEventListener('abort', () => resolve('lost'), { once: true }));
    const handling = this.o.handler(job, controller.signal);
    try {
      // Not waited for: the slot is free once the handler has returned (see complete()).
      const outcome = await Promise.race([handling, expired, lost]);
      if (outcome !== 'lost' && outcome !== 'settled') this.complete(attempt);
    } catch (err) {
      if (!controller.signal.aborted) {
        controller.abort(err);
        await boss.fail(name, [attempt], errorData(err)).catch((e: unknown) => this.o.onError(e as Error));
      }
    } finally {
      clearInterval(heartbeat);
      clearTimeout(expiry);
    }
    // A handler that outran its deadline keeps its slot until it returns: the slots stay a bound on
    // what runs, and this process does not fetch the retry of the same message beside it.
    await handling.catch(() => undefined);
  }

  /**
   * Completes a message whose handler returned, together with any others that returned in the same
   * turn of the event loop or while the previous completion was in flight: one statement for all of
   * them, with no wait added. No slot waits for it: Kiln's tables are the record, so the client's
   * answer was already sent (by the handler's own finishing statement) and the message's completion
   * changes nothing anyone reads. Its expiry and heartbeat are minutes and seconds away, this is
   * milliseconds. A completion that cannot be written (Postgres gone) leaves the message active:
   * pg-boss retries it once its heartbeat is stale, and the handler finds its file already final.
   */
  private complete(attempt: JobAttempt): void {
    this.toComplete.push(attempt);
    this.completing ??= this.flushCompletions();
  }

  private async flushCompletions(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.toComplete.length) {
      const batch = this.toComplete.splice(0);
      await this.o.boss.complete(this.o.name, batch).catch((e: unknown) => this.o.onError(e as Error));
    }
    this.completing = undefined;
  }

  /**
   * Stops fetching and waits up to `timeoutMs` for the running handlers. Those still running then are
   * failed (pg-boss retries them at once rather than after their expiry) and their signals aborted.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loopDone;
    const all = Promise.allSettled([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([all.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))]);
    clearTimeout(timer);
    const left = inTime ? [] : [...this.running.values()];
    if (left.length) {
      await this.o.boss
        .fail(
          this.o.name,
          left.map((r) => r.attempt),
          { message: 'worker stopped while active' },
        )
        .catch((e: unknown) => this.o.onError(e as Error));
      for (const r of left) r.controller.abort(new Error('worker stopped while active'));
    }
    // The completions of what finished are written before pg-boss's pool closes.
    await this.completing;
  }
}

/** The failure's output, as pg-boss's own workers pass it (pg-boss serialises an Error with its stack). */
function errorData(err: unknown): object {
  return err instanceof Error ? err : { message: String(err) };
}
