/**
 * @kiln/queue — the one place that knows pg-boss. Queue names and payloads come from the contract's
 * job catalog; payloads are validated on send and re-parsed on receipt. Our tables stay the record:
 * this is transport only. Depends on pg-boss and @kiln/contracts.
 */
import { createHash } from 'node:crypto';
import { PgBoss } from 'pg-boss';
// pg-boss's own SQL builders (no "exports" map, so its dist files are importable), pinned to the exact
// version in package.json: insertFragment embeds this SQL in Kiln's statements, so it must be the SQL
// of the pg-boss that created the schema. test/insert-fragment.test.ts compares it with boss.insert.
import { attemptPairs, completeJobsDistributed, insertJobs, notifyChannelSql } from 'pg-boss/dist/plans.js';
import { PAYLOADS, QUEUES, type PayloadOf, type QueueName } from '@kiln/contracts';
import { Consumer } from './consumer.ts';

export { QUEUES };
export type { QueueName, PayloadOf };

/** Anything that can run SQL: a pg Pool or a client inside our own transaction. */
export interface SqlRunner {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

export interface QueueOptions {
  connectionString: string;
  /** Retries with backoff for engine failures (bad input is never retried: handlers don't throw for it). */
  retryLimit: number;
  /** Longest a message may stay active before pg-boss gives it to another worker. */
  expireInSeconds: number;
  /** How long pg-boss keeps a finished message (queue option deleteAfterSeconds); our tables are the record. */
  deleteAfterSeconds?: number;
  /**
   * A running message's heartbeat (pg-boss `heartbeatSeconds`, at least 10): pg-boss refreshes it at
   * half this while the handler runs, and a message whose heartbeat is older than this (its worker
   * died) is retried at once instead of waiting for `expireInSeconds`. Unset: no heartbeat.
   */
  heartbeatSeconds?: number;
  /** How often this process's pg-boss supervisor looks for expired and heartbeat-lost messages (default 60; also its monitoring interval, which gates them). */
  superviseIntervalSeconds?: number;
  poolMax?: number;
  /** Run pg-boss maintenance (expiry, retention) in this process. Workers do; the gateway needn't. */
  supervise?: boolean;
  /**
   * How often an idle consumer looks for work on its own, in seconds (default 5; 2 while no NOTIFY
   * listener could be set up). With NOTIFY working this only finds what sends none: a retry whose
   * backoff ended, a message the supervisor expired.
   */
  idlePollSeconds?: number;
  /**
   * Send the consumers' fetches as named statements, parsed and planned once per connection
   * (DB_PREPARED_STATEMENTS; default true). False behind a pooler that cannot keep prepared statements.
   */
  preparedStatements?: boolean;
  onError?: (err: Error) => void;
}

/** pg-boss's schema: Kiln runs it in its default one. */
const PGBOSS_SCHEMA = 'pgboss';

/** pg-boss's NOTIFY channel for its default schema (plans.notifyChannelSql), which it does not export. */
const PGBOSS_CHANNEL = `pgboss_${createHash('sha224').update('pgboss').digest('hex').slice(0, 24)}`;

/**
 * How long a message may run, its heartbeat, and how often expiry is checked, from the settings that
 * decide them. Every process that creates or updates the queues (gateway, workers, `pnpm start`)
 * passes the same numbers, so none of them undoes another's.
 * - expiry: a file's conversion (FILE_TIMEOUT_SECONDS), then its outcome's write retried through a
 *   Postgres outage (WORKER_RECORD_RETRY_SECONDS), plus a minute;
 * - heartbeat: half of WORKER_ORPHAN_SECONDS (pg-boss's minimum is 10 s): a dead worker's message is
 *   retried once it is that stale;
 * - supervision: pg-boss checks expiry and heartbeats only when it monitors a queue, so both run a few
 *   times per orphan window (pg-boss's default is once a minute).
 */
export function fileQueueTimings(s: {
  fileTimeoutSeconds: number;
  recordRetrySeconds: number;
  orphanSeconds: number;
}): Pick<QueueOptions, 'expireInSeconds' | 'heartbeatSeconds' | 'superviseIntervalSeconds'> {
  return {
    expireInSeconds: s.fileTimeoutSeconds + s.recordRetrySeconds + 60,
    heartbeatSeconds: Math.max(10, Math.floor(s.orphanSeconds / 2)),
    superviseIntervalSeconds: Math.max(2, Math.floor(s.orphanSeconds / 6)),
  };
}

/** One queue's backlog (Queue.depths). */
export interface QueueDepthRow {
  queue: string;
  /** Messages ready to run now. */
  ready: number;
  /** Queued but not ready: a retry's backoff (or a start-after) has not passed. */
  deferred: number;
  active: number;
  /** Seconds the oldest ready message has waited; null when none is ready. */
  oldestReadySeconds: number | null;
}

/**
 * Queue messages as SQL for a statement of the caller's own (Queue.insertFragment): the caller puts
 * `ctes` in its WITH list, evaluates `inserted` in its final SELECT and appends `values` to its
 * parameters. The messages then commit with whatever else the statement writes, in its round trip.
 */
export interface MessagesFragment {
  /** Common table expressions, `name AS (…), …`: no leading WITH, no trailing comma. */
  ctes: string;
  /**
   * A scalar expression, the number of messages inserted, which the statement must evaluate: a CTE
   * that only selects is not run unless it is read, and evaluating this is what sends pg-boss's NOTIFY.
   */
  inserted: string;
  /** The parameters `$paramIndex`, `$paramIndex + 1`, … that `ctes` refers to, in order. */
  values: unknown[];
}

export interface JobContext {
  id: string;
  /** The queue the message came from (a handler that finds the file belongs elsewhere can move it). */
  queue: QueueName;
  /** Retries already made; the attempt is the last one when `retryCount >= retryLimit`. */
  retryCount: number;
  retryLimit: number;
  signal: AbortSignal;
  /**
   * This message's completion as a CTE for the handler's own last statement (completionFragment), so
   * the outcome and the message's completion commit together, in one round trip instead of two.
   * Once a statement holding it has committed, call `settled()`: the consumer then does not complete
   * the message again. Absent on contexts built without a queue (tests).
   */
  completion?: (paramIndex: number) => CompletionFragment;
  settled?: () => void;
}

/** A message's completion as SQL for a statement of the caller's own: `ctes` for its WITH list, `values` from `paramIndex` on. */
export interface CompletionFragment {
  ctes: string;
  values: unknown[];
}

export class Queue {
  readonly boss: PgBoss;
  private readonly opts: QueueOptions;
  private started = false;
  private stopping: Promise<void> | undefined;
  private readonly consumers = new Map<string, Consumer[]>();
  private listener: Promise<{ close: () => Promise<void> } | undefined> | undefined;
  /** Each queue's job table and whether its inserts NOTIFY, read at start (what pg-boss's own queue cache holds). */
  private readonly queueInfo = new Map<string, { table: string; notify: boolean }>();
  /** completionFragment's SQL per queue and parameter index. */
  private readonly completionSql = new Map<string, string>();
  /** insertFragment's SQL per queue and parameter index: the same text for every submission. */
  private readonly fragmentSql = new Map<string, { ctes: string; inserted: string }>();

  constructor(opts: QueueOptions) {
    this.opts = opts;
    this.boss = new PgBoss({
      connectionString: opts.connectionString,
      // pg-boss's listener only wakes pg-boss's own workers, and Kiln runs none (work() below has its
      // consumers, which listen on the same channel themselves).
      useListenNotify: false,
      max: opts.poolMax ?? 4,
      application_name: 'kiln-queue',
      // Kiln has no cron jobs; skipping the scheduler saves a poll loop per process.
      schedule: false,
      supervise: opts.supervise ?? true,
      // Expiry runs inside pg-boss's queue monitoring, which is claimed every monitorIntervalSeconds:
      // both must be short for a heartbeat to be noticed within the orphan window.
      ...(opts.superviseIntervalSeconds ? { superviseIntervalSeconds: opts.superviseIntervalSeconds, monitorIntervalSeconds: opts.superviseIntervalSeconds } : {}),
    });
    this.boss.on('error', (err) => (opts.onError ?? ((e) => console.error(e)))(err));
  }

  /** Starts pg-boss (creating its schema when needed) and makes sure our queues exist with notify on. */
  async start(): Promise<this> {
    if (this.started) return this;
    await this.boss.start();
    for (const name of Object.values(QUEUES)) {
      const options = {
        notify: true,
        retryLimit: this.opts.retryLimit,
        retryBackoff: true,
        retryDelay: 2,
        retryDelayMax: 60,
        expireInSeconds: this.opts.expireInSeconds,
        // pg-boss's default keeps finished messages 7 days; Kiln never reads them again.
        deleteAfterSeconds: this.opts.deleteAfterSeconds ?? 3600,
        ...(this.opts.heartbeatSeconds ? { heartbeatSeconds: this.opts.heartbeatSeconds } : {}),
      };
      const existing = await this.boss.getQueue(name);
      if (!existing) {
        try {
          await this.boss.createQueue(name, options);
        } catch (err) {
          // Another process created it between our check and our insert.
          if (!(await this.boss.getQueue(name))) throw err;
        }
      } else {
        await this.boss.updateQueue(name, options);
      }
    }
    // The table each queue's messages go to (pg-boss's shared job_common, or the queue's own when it
    // is partitioned) and its notify flag, as created or updated above: what boss.insert reads from
    // its queue cache. Kiln never deletes or re-creates a queue while running, so they do not change.
    for (const q of await this.boss.getQueues(Object.values(QUEUES))) {
      this.queueInfo.set(q.name, { table: (q as unknown as { table: string }).table, notify: q.notify === true });
    }
    this.started = true;
    return this;
  }

  /**
   * Queues messages; pass `db` to make the insert part of the caller's transaction, and
   * `startAfterSeconds` to hold them back that long.
   */
  async sendMany<Q extends QueueName>(name: Q, payloads: PayloadOf<Q>[], db?: SqlRunner, opts: { startAfterSeconds?: number } = {}): Promise<void> {
    const schema = PAYLOADS[name];
    const startAfter = opts.startAfterSeconds ? new Date(Date.now() + opts.startAfterSeconds * 1000).toISOString() : undefined;
    const jobs = payloads.map((p) => ({ data: schema.parse(p) as object, ...(startAfter ? { startAfter } : {}) }));
    await this.boss.insert(name, jobs, db ? { db: { executeSql: (text, values) => db.query(text, values) as Promise<{ rows: unknown[] }> } } : undefined);
  }

  /**
   * The same messages sendMany would insert (each payload parsed with its queue's schema), as SQL for
   * one statement of the caller's: one `INSERT INTO pgboss.<table>` CTE per queue, generated by
   * pg-boss's own `plans.insertJobs` (so the columns and the queue's policy — retry limit, delay and
   * backoff, expiry, heartbeat, deletion, keep_until — are filled in exactly as boss.insert does),
   * with its `$1` renumbered to `paramIndex + i`, and pg-boss's NOTIFY for each notify queue gated
   * as pg-boss gates it (once per queue, when a message is ready now). pg-boss wraps that NOTIFY in a
   * WITH of its own, which Postgres does not allow inside another statement's CTE, hence the split.
   * Like boss.insert with no OpenTelemetry configured, the messages carry no trace context.
   */
  insertFragment<Q extends QueueName>(batches: Iterable<readonly [Q, readonly PayloadOf<Q>[]]>, paramIndex: number): MessagesFragment {
    const ctes: string[] = [];
    const inserted: string[] = [];
    const values: unknown[] = [];
    for (const [name, payloads] of batches) {
      const schema = PAYLOADS[name];
      const sql = this.fragmentSqlFor(name, paramIndex + values.length);
      ctes.push(sql.ctes);
      inserted.push(sql.inserted);
      values.push(JSON.stringify(payloads.map((p) => ({ data: schema.parse(p) as object }))));
    }
    if (!ctes.length) throw new Error('insertFragment: no messages to insert');
    return { ctes: ctes.join(',\n'), inserted: `(${inserted.join(' + ')})`, values };
  }

  private fragmentSqlFor(name: QueueName, param: number): { ctes: string; inserted: string } {
    const cacheKey = `${name} ${param}`;
    const cached = this.fragmentSql.get(cacheKey);
    if (cached) return cached;
    const info = this.queueInfoFor(name);
    const plain = insertJobs(PGBOSS_SCHEMA, { table: info.table, name, returnId: true, notify: false });
    // The statement's one parameter is its JSON recordset ($1), and it returns the ids: renumber the
    // one, and return start_after too for the NOTIFY's gate (pg-boss's notify variant returns both).
    const params = plain.match(/\$\d+/g) ?? [];
    const returning = /RETURNING id\s*$/;
    if (params.length !== 1 || params[0] !== '$1' || !returning.test(plain)) {
      throw new Error(`pg-boss's insert statement is not the shape insertFragment expects (one $1, ending RETURNING id): is pg-boss the version packages/queue pins?`);
    }
    const insert = plain.replace('$1', () => `$${param}`).replace(returning, 'RETURNING id, start_after');
    const alias = `pgboss_msgs_${param}`;
    const parts = [`${alias} AS (${insert})`];
    let count = `(SELECT count(*) FROM ${alias})`;
    if (info.notify) {
      // pg-boss's own gate (plans.insertJobs with notify): one NOTIFY, only when a message is ready
      // now; referenced from `inserted` so Postgres runs it. Sent at commit, with the messages.
      parts.push(`${alias}_notified AS (SELECT pg_notify(${notifyChannelSql(PGBOSS_SCHEMA)}, '${name}') FROM ${alias} WHERE start_after <= ${PGBOSS_SCHEMA}.job_now() LIMIT 1)`);
      count = `(SELECT count(*) FROM ${alias} WHERE (SELECT count(*) FROM ${alias}_notified) >= 0)`;
    }
    const sql = { ctes: parts.join(',\n'), inserted: count };
    this.fragmentSql.set(cacheKey, sql);
    return sql;
  }

  /**
   * The completion of one fetched message (its id at the retry count it was fetched with) as a CTE
   * for the caller's statement: pg-boss's own completion UPDATE (`plans.completeJobsDistributed`,
   * the single-table form of what boss.complete runs; neither does dependency work), fenced to that
   * attempt as boss.complete fences it, with its parameters renumbered from `paramIndex`. A message
   * that is no longer active under that attempt (its heartbeat was lost and pg-boss retried it) is
   * left alone, exactly as boss.complete would leave it.
   */
  completionFragment(name: QueueName, attempt: { id: string; retryCount: number }, paramIndex: number): CompletionFragment {
    const cacheKey = `complete ${name} ${paramIndex}`;
    let sql = this.completionSql.get(cacheKey);
    if (!sql) {
      const update = completeJobsDistributed(PGBOSS_SCHEMA, this.queueInfoFor(name).table, false, true).trim();
      // $1 the queue's name, $2 the ids, $3 the output, $4 the id:retry_count pairs of the fence.
      const params = [...new Set(update.match(/\$\d+/g) ?? [])].sort();
      if (params.join(',') !== '$1,$2,$3,$4' || !/^UPDATE /.test(update) || !/RETURNING id$/.test(update)) {
        throw new Error(`pg-boss's completion statement is not the shape completionFragment expects: is pg-boss the version packages/queue pins?`);
      }
      const renumbered = update.replace(/\$(\d+)/g, (_m, n: string) => `$${paramIndex + Number(n) - 1}`);
      sql = `pgboss_done_${paramIndex} AS (${renumbered})`;
      this.completionSql.set(cacheKey, sql);
    }
    return { ctes: sql, values: [name, [attempt.id], null, attemptPairs([attempt.id], [attempt.retryCount])] };
  }

  /** A queue's table and notify flag as start() read them, checked fit to be written into SQL text. */
  private queueInfoFor(name: QueueName): { table: string; notify: boolean } {
    const info = this.queueInfo.get(name);
    if (!info) throw new Error(`Queue ${name} is not known: start() the queue before building SQL for it`);
    if (!/^[a-z0-9_.-]+$/i.test(name) || !/^[a-z0-9_]+$/i.test(info.table)) throw new Error(`Queue ${name} (table ${info.table}): unexpected characters for SQL`);
    return info;
  }

  async send<Q extends QueueName>(name: Q, payload: PayloadOf<Q>, db?: SqlRunner, opts: { startAfterSeconds?: number } = {}): Promise<void> {
    await this.sendMany(name, [payload], db, opts);
  }

  /**
   * Runs `handler` for each message, `concurrency` at a time. A handler that throws is retried with
   * backoff up to the queue's retryLimit; handlers record permanent failures themselves and return.
   * One consumer per call (consumer.ts): one fetch loop for the queue's slots, woken by NOTIFY.
   */
  async work<Q extends QueueName>(name: Q, concurrency: number, handler: (payload: PayloadOf<Q>, ctx: JobContext) => Promise<void>): Promise<void> {
    const schema = PAYLOADS[name];
    const listening = await this.listen();
    const pollMs = (this.opts.idlePollSeconds ?? (listening ? 5 : 2)) * 1000;
    const consumer = new Consumer({
      boss: this.boss,
      name,
      concurrency,
      pollMs,
      preparedStatements: this.opts.preparedStatements ?? true,
      onError: (err) => this.reportError(err),
      handler: async (job, signal) => {
        const parsed = schema.safeParse(job.data);
        if (!parsed.success) {
          // A malformed message can never succeed: drop it loudly rather than retry it forever.
          console.error(JSON.stringify({ level: 'error', msg: 'dropping malformed queue message', queue: name, id: job.id, issues: parsed.error.issues }));
          return;
        }
        let settled = false;
        const attempt = { id: job.id, retryCount: job.retryCount };
        await handler(parsed.data as PayloadOf<Q>, {
          id: job.id,
          queue: name,
          retryCount: job.retryCount,
          retryLimit: this.opts.retryLimit,
          signal,
          completion: (paramIndex) => this.completionFragment(name, attempt, paramIndex),
          settled: () => {
            settled = true;
          },
        });
        return settled ? 'settled' : undefined;
      },
    });
    this.consumers.set(name, [...(this.consumers.get(name) ?? []), consumer]);
    consumer.start();
  }

  private reportError(err: Error): void {
    (this.opts.onError ?? ((e) => console.error(e)))(err);
  }

  /**
   * One LISTEN connection per process, on pg-boss's channel (its payload is the queue's name), with
   * pg-boss's own reconnecting listener. False when it could not be set up: the consumers then poll.
   */
  private async listen(): Promise<boolean> {
    this.listener ??= (async () => {
      const db = this.boss.getDb();
      if (typeof db.listen !== 'function') return undefined;
      try {
        return await db.listen(
          PGBOSS_CHANNEL,
          (queue) => {
            for (const c of this.consumers.get(queue) ?? []) c.notify();
          },
          // (Re)connected: whatever was sent while it was down was not heard.
          () => {
            for (const list of this.consumers.values()) for (const c of list) c.notify();
          },
        );
      } catch (err) {
        this.reportError(new Error(`LISTEN for queue wake-ups failed, polling instead: ${(err as Error).message}`));
        return undefined;
      }
    })();
    return (await this.listener) !== undefined;
  }

  /**
   * Each queue's backlog for /metrics, in one query over pg-boss's job table (its live-jobs index
   * covers every column read, so the cost follows the backlog, not the history pg-boss retains).
   * A ready message's start_after is when it became ready: its insert, or the end of its retry backoff.
   */
  async depths(): Promise<QueueDepthRow[]> {
    const ready = `j.state < 'active' AND NOT j.blocked AND j.start_after <= now()`;
    const r = await this.boss.getDb().executeSql(
      `SELECT n.name AS queue,
              (count(*) FILTER (WHERE ${ready}))::int AS ready,
              (count(*) FILTER (WHERE j.state < 'active' AND NOT (${ready})))::int AS deferred,
              (count(*) FILTER (WHERE j.state = 'active'))::int AS active,
              extract(epoch FROM now() - min(j.start_after) FILTER (WHERE ${ready}))::float8 AS "oldestReadySeconds"
         FROM unnest($1::text[]) AS n(name)
         LEFT JOIN pgboss.job j ON j.name = n.name AND j.state IN ('created', 'retry', 'active')
        GROUP BY n.name ORDER BY n.name`,
      [Object.values(QUEUES)],
    );
    return r.rows as QueueDepthRow[];
  }

  /**
   * Of these file ids, the ones a message still carries (queued, waiting for a retry, or running):
   * the reconcile sweep re-queues a file left 'processing' only when nothing will deliver it again.
   */
  liveFileIds(fileIds: string[]): Promise<Set<string>> {
    return this.liveIds(Object.values(QUEUES), 'fileId', fileIds);
  }

  /**
   * Of these job ids, the ones a live archive.build message carries (queued, waiting for a retry, or
   * running): the reconcile sweep settles a job still waiting for its archive only when none does.
   */
  liveArchiveJobIds(jobIds: string[]): Promise<Set<string>> {
    return this.liveIds([QUEUES.archiveBuild], 'jobId', jobIds);
  }

  /** Of `ids`, those that the payload field `field` of a live message (queued, retrying, running) on `queues` carries. */
  private async liveIds(queues: QueueName[], field: 'fileId' | 'jobId', ids: string[]): Promise<Set<string>> {
    if (!ids.length) return new Set();
    const r = await this.boss.getDb().executeSql(
      `SELECT DISTINCT j.data->>$3 AS id FROM pgboss.job j
        WHERE j.name = ANY($1::text[]) AND j.state IN ('created', 'retry', 'active') AND j.data->>$3 = ANY($2::text[])`,
      [queues, ids, field],
    );
    return new Set((r.rows as { id: string }[]).map((row) => row.id));
  }

  /** Cheap liveness check for /readyz: pg-boss's own pool can reach its schema. */
  async ping(): Promise<void> {
    await this.boss.getQueue(QUEUES.convertFile);
  }

  /**
   * Stops taking work, waits (bounded) for running handlers — those still running after `timeoutMs`
   * are failed, so pg-boss retries them — closes the listener and pg-boss's pool. Idempotent.
   */
  stop(timeoutMs = 30_000): Promise<void> {
    this.stopping ??= this.started
      ? (async () => {
          await Promise.all([...this.consumers.values()].flat().map((c) => c.stop(timeoutMs)));
          await (await this.listener)?.close().catch(() => undefined);
          await this.boss.stop({ graceful: true, timeout: timeoutMs, close: true });
        })()
      : Promise.resolve();
    return this.stopping;
  }
}
