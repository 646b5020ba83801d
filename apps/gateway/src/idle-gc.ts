/**
 * A memory-reducing collection once the gateway goes quiet after load. Under a sustained stream of
 * small requests the 1 MiB young generation (scripts/start.ts) promotes many short-lived request
 * objects, V8 grows the old generation to hold them, and after its mark-compacts the emptied pages
 * stay in V8's page pool: 6,000 small sync jobs left the gateway at ~200 MB of RSS against ~107 MB
 * idle, with 26 MB of it live. Only a memory-reducing collection compacts those pages and unmaps
 * the pool. V8 starts one by itself (its memory reducer) at the first of its 8 s ticks that finds
 * the allocation rate low, i.e. 8–16 s after the load ends; a plain `gc()` from --expose-gc is an
 * ordinary mark-compact that refills the pool instead (measured: RSS unchanged).
 *
 * So: every GATEWAY_IDLE_GC_SECONDS, if the event loop was under IDLE_UTILIZATION busy over that
 * whole period and the RSS has grown by IDLE_GC_GROWTH_BYTES since the lowest it was seen (or since
 * the last such collection), ask V8 for its last-resort collection (reducing mark-compacts and the
 * pool's release; 60–120 ms on a 26 MB live heap). Measured with
 * scripts/bench/gateway-memory.ts: 6,000 jobs, then RSS 189–205 → 106–108 MB within 2 s of the
 * load's end (docs/performance.md). No cost per request: the check reads two numbers once a period.
 */
import { performance } from 'node:perf_hooks';

/** An event loop busier than this over a whole period is not idle (5 %: about ten small requests a second). */
export const IDLE_UTILIZATION = 0.05;
/** RSS growth, since the last collection or the lowest reading, that is worth a collection. */
export const IDLE_GC_GROWTH_BYTES = 16 * 1024 * 1024;

export interface IdleCollectionEvent {
  rssBefore: number;
  rssAfter: number;
  ms: number;
}

export interface IdleCollectorOptions {
  growthBytes?: number;
  /** Runs the collection; by default lowMemoryCollection(). */
  collect?: () => Promise<void>;
  /** The process's RSS in bytes; by default process.memoryUsage.rss(). */
  rss?: () => number;
  /** The event loop's utilisation (0–1) since the previous call; by default from performance.eventLoopUtilization. */
  utilization?: () => number;
  onCollect?: (e: IdleCollectionEvent) => void;
  onError?: (err: unknown) => void;
}

/** The decision, without a timer: `tick()` is one period's look (and its collection, when due). */
export function createIdleCollector(opts: IdleCollectorOptions = {}): { tick: () => Promise<boolean> } {
  const growth = opts.growthBytes ?? IDLE_GC_GROWTH_BYTES;
  const collect = opts.collect ?? lowMemoryCollection;
  const rss = opts.rss ?? (() => process.memoryUsage.rss());
  const utilization = opts.utilization ?? eventLoopUtilization();
  let floor = rss();
  let running = false;
  return {
    tick: async () => {
      const busy = utilization() > IDLE_UTILIZATION;
      const now = rss();
      if (now < floor) floor = now;
      if (running || busy || now - floor < growth) return false;
      running = true;
      const t0 = performance.now();
      try {
        await collect();
        const after = rss();
        // Whatever did not come back is the new floor: no second collection until it grows again.
        floor = after;
        opts.onCollect?.({ rssBefore: now, rssAfter: after, ms: performance.now() - t0 });
      } catch (err) {
        floor = now;
        opts.onError?.(err);
      } finally {
        // The collection's own time is not load.
        utilization();
        running = false;
      }
      return true;
    },
  };
}

/** Looks every `seconds` (0 = never); the timer does not keep the process alive. */
export function startIdleCollection(seconds: number, opts: IdleCollectorOptions = {}): { stop: () => void } {
  if (seconds <= 0) return { stop: () => undefined };
  const collector = createIdleCollector(opts);
  const timer = setInterval(() => void collector.tick(), seconds * 1000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

function eventLoopUtilization(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const u = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    return u;
  };
}

/**
 * V8's memory-reducing collection: `gc({ flavor: 'last-resort' })` is Heap::CollectAllAvailableGarbage
 * (mark-compacts with the reduce-memory flag until nothing more comes back, then the page pool's
 * release), where a plain `gc()` is one ordinary mark-compact that leaves the emptied pages pooled.
 * `gc` exists with --expose-gc, which scripts/start.ts gives the gateway; a gateway started another
 * way has none, and then nothing is collected (the error says which flag is missing).
 */
export async function lowMemoryCollection(): Promise<void> {
  const gc = globalThis.gc as ((o: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void) | undefined;
  if (!gc) throw new Error('the idle collection needs node --expose-gc (scripts/start.ts starts the gateway with it); set GATEWAY_IDLE_GC_SECONDS=0 to turn it off');
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
