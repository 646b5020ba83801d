/**
 * Every metric Kiln exposes, on one prom-client Registry per process. The gateway and the workers
 * register the same set (a metric a process never moves shows only its HELP line), so a dashboard
 * query never depends on which process it was scraped from.
 *
 * Labels are bounded sets only: Express route patterns (never a raw path), job types, dialects,
 * engines, error codes, queue names. Nothing that grows with traffic (an id, a filename, a key) may
 * become a label, or every job would add series.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { cachedRead } from './cached-read.ts';

/** What a pg Pool reports about itself (structural, so this package needs no pg). */
export interface PoolStats {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
}

/** One queue's backlog, as @kiln/queue reads it from pg-boss's table. */
export interface QueueDepth {
  queue: string;
  /** Ready to run now. */
  ready: number;
  /** Waiting for a retry's backoff (or a start-after) to pass. */
  deferred: number;
  active: number;
  /** How long the oldest ready message has been ready, in seconds; null when none is. */
  oldestReadySeconds: number | null;
}

/** Jobs in Postgres with one (type, dialect, status), as @kiln/db keeps the totals. */
export interface JobTotal {
  jobType: string;
  dialect: string;
  status: string;
  count: number;
}

/** Values of the `outcome` label of kiln_webhook_deliveries_total. */
export const WEBHOOK_OUTCOMES = ['delivered', 'retrying', 'failed', 'disabled'] as const;
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number];

/** Seconds: from a cached status poll to a long upload or a sync conversion held open. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Seconds: from a small image (tens of ms) to an hour of video (FILE_TIMEOUT_SECONDS is 600 by default). */
const CONVERSION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

export type KilnMetrics = ReturnType<typeof createMetrics>;

/**
 * The event-loop lag histogram's sampling interval. prom-client's default (10 ms) wakes the process
 * 100 times a second: measured here at about 5 ms of CPU per second per idle process, more than all
 * of Kiln's other metrics together. Every 100 ms costs about a fifth of that and still catches any
 * stall long enough to matter.
 */
const EVENT_LOOP_RESOLUTION_MS = 100;

/**
 * `processMetrics: false` leaves out Node's own metrics (CPU, memory, event-loop lag, GC): for a
 * process whose page nobody can scrape (a worker with its metrics port at 0), so it pays nothing for them.
 */
export function createMetrics(opts: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  const registers = [registry];
  // Node's own: CPU, memory, heap, event-loop lag, GC, handles; the standard names dashboards expect.
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_RESOLUTION_MS });

  /**
   * A read that never fails a scrape: Postgres being down shows as kiln_metrics_source_up 0 while the
   * series keep their last values, instead of the whole page answering 500.
   */
  const sources: (() => Promise<unknown>)[] = [];
  let sourceUp: Gauge<'source'> | undefined;
  const fromSource = <T>(source: string, read: () => Promise<T>): (() => Promise<T | undefined>) => {
    // Registered with the first source, after the cheap in-memory metrics: a scrape reads the pool
    // gauges before its own queries take connections from that pool.
    sourceUp ??= new Gauge({
      name: 'kiln_metrics_source_up',
      help: 'Whether the last read of a Postgres-backed metric source (queues, jobs) succeeded: 1 yes, 0 no (its series then keep their last values).',
      labelNames: ['source'] as const,
      registers,
      // Waits for this scrape's reads (cached and shared, so no extra query) to report their outcome.
      async collect() {
        await Promise.all(sources.map((s) => s()));
      },
    });
    const up = sourceUp;
    const get = async () => {
      try {
        const v = await read();
        up.set({ source }, 1);
        return v;
      } catch {
        up.set({ source }, 0);
        return undefined;
      }
    };
    sources.push(get);
    return get;
  };

  const metrics = {
    registry,
    httpRequests: new Counter({
      name: 'kiln_http_requests_total',
      help: 'HTTP requests answered by the gateway, by route pattern ("(none)": answered before a route matched, e.g. 401 or 404), method and status.',
      labelNames: ['route', 'method', 'status'] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: 'kiln_http_request_duration_seconds',
      help: 'Time from request to the last byte of the response, by route pattern and method.',
      labelNames: ['route', 'method'] as const,
      buckets: HTTP_BUCKETS,
      registers,
    }),
    uploadBytes: new Counter({
      name: 'kiln_upload_bytes_total',
      help: 'Bytes of uploaded files stored by the gateway, by API dialect.',
      labelNames: ['dialect'] as const,
      registers,
    }),
    uploadFiles: new Counter({
      name: 'kiln_upload_files_total',
      help: 'Uploaded files stored by the gateway, by API dialect.',
      labelNames: ['dialect'] as const,
      registers,
    }),
    jobsCreated: new Counter({
      name: 'kiln_jobs_created_total',
      help: 'Jobs created, by type and API dialect (an idempotent replay creates none).',
      labelNames: ['type', 'dialect'] as const,
      registers,
    }),
    jobsCompleted: new Counter({
      name: 'kiln_jobs_completed_total',
      help: 'Jobs this process settled as completed, by type and API dialect.',
      labelNames: ['type', 'dialect'] as const,
      registers,
    }),
    jobsFailed: new Counter({
      name: 'kiln_jobs_failed_total',
      help: 'Jobs this process settled as failed (every file failed, or cancelled), by type and API dialect.',
      labelNames: ['type', 'dialect'] as const,
      registers,
    }),
    conversionDuration: new Histogram({
      name: 'kiln_conversion_duration_seconds',
      help: 'Time one file attempt spent in its engine (storage excluded), by engine, mode (convert/compress) and outcome (ok/failed).',
      labelNames: ['engine', 'mode', 'outcome'] as const,
      buckets: CONVERSION_BUCKETS,
      registers,
    }),
    conversionFailures: new Counter({
      name: 'kiln_conversion_failures_total',
      help: 'File attempts that failed, by engine, mode and error code (timeout and engine_failed attempts are retried; the others are final).',
      labelNames: ['engine', 'mode', 'code'] as const,
      registers,
    }),
    queueFullRefusals: new Counter({
      name: 'kiln_queue_full_refusals_total',
      help: 'Requests refused with 429 queue_full because a class of work was past a backlog limit, by queue and the setting of the limit passed (QUEUE_MAX_*).',
      labelNames: ['queue', 'limit'] as const,
      registers,
    }),
    webhookDeliveries: new Counter({
      name: 'kiln_webhook_deliveries_total',
      help: `Webhook delivery attempts by outcome: ${WEBHOOK_OUTCOMES.join(', ')}.`,
      labelNames: ['outcome'] as const,
      registers,
    }),

    /** Every (type, dialect) series of the job counters at 0 from the start, so rate() and increase() see a job's first increment. */
    initJobSeries(types: readonly string[], dialects: readonly string[]): void {
      for (const type of types) {
        for (const dialect of dialects) for (const c of [metrics.jobsCreated, metrics.jobsCompleted, metrics.jobsFailed]) c.inc({ type, dialect }, 0);
      }
    },

    /** Our pg Pool's connections, read at scrape time (no cost between scrapes). */
    watchPool(pool: PoolStats): void {
      new Gauge({
        name: 'kiln_db_pool_connections',
        help: "Connections in this process's Postgres pool, by state (total, idle); pg-boss keeps a pool of its own.",
        labelNames: ['state'] as const,
        registers,
        collect() {
          this.set({ state: 'total' }, pool.totalCount);
          this.set({ state: 'idle' }, pool.idleCount);
        },
      });
      new Gauge({
        name: 'kiln_db_pool_waiting_clients',
        help: "Queries waiting for a connection from this process's Postgres pool (DB_POOL_MAX).",
        registers,
        collect() {
          this.set(pool.waitingCount);
        },
      });
    },

    /** Queue depth and age per queue, read with one query at most every `ttlMs` however often Prometheus scrapes. */
    watchQueues(read: () => Promise<QueueDepth[]>, ttlMs = 5000): void {
      const get = fromSource('queues', cachedRead(read, ttlMs));
      new Gauge({
        name: 'kiln_queue_jobs',
        help: 'Messages in each queue by state: ready, deferred (waiting for a retry backoff), active.',
        labelNames: ['queue', 'state'] as const,
        registers,
        async collect() {
          const rows = await get();
          if (rows) this.reset();
          for (const r of rows ?? []) {
            this.set({ queue: r.queue, state: 'ready' }, r.ready);
            this.set({ queue: r.queue, state: 'deferred' }, r.deferred);
            this.set({ queue: r.queue, state: 'active' }, r.active);
          }
        },
      });
      new Gauge({
        name: 'kiln_queue_oldest_ready_seconds',
        help: 'How long the oldest ready message of each queue has waited for a worker (0 when none waits).',
        labelNames: ['queue'] as const,
        registers,
        async collect() {
          const rows = await get();
          if (rows) this.reset();
          for (const r of rows ?? []) this.set({ queue: r.queue }, r.oldestReadySeconds ?? 0);
        },
      });
    },

    /** Job totals by type, dialect and status from Postgres, so one scrape of any gateway shows the whole system. */
    watchJobTotals(read: () => Promise<JobTotal[]>, ttlMs = 5000): void {
      const get = fromSource('jobs', cachedRead(read, ttlMs));
      new Gauge({
        name: 'kiln_jobs',
        help: 'Jobs recorded in Postgres by type, API dialect and status (all of them, whichever process changed them).',
        labelNames: ['type', 'dialect', 'status'] as const,
        registers,
        async collect() {
          const rows = await get();
          if (rows) this.reset();
          for (const r of rows ?? []) this.set({ type: r.jobType, dialect: r.dialect, status: r.status }, r.count);
        },
      });
    },
  };
  return metrics;
}
