/** Small statistics and the progress line for the benchmark. */

export function quantile(values: number[], q: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export const median = (v: number[]) => quantile(v, 0.5);

export interface Spread {
  min: number;
  median: number;
  max: number;
  runs: number[];
}

export function spread(runs: number[], digits = 3): Spread {
  const r = (n: number) => round(n, digits);
  return { min: r(Math.min(...runs)), median: r(median(runs)), max: r(Math.max(...runs)), runs: runs.map(r) };
}

export function round(n: number, digits = 3): number {
  if (!Number.isFinite(n)) return n;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** One status line on stderr, rewritten in place on a terminal; plain lines (phase changes only) otherwise. */
export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private readonly started = Date.now();
  private phase = '';
  private lastLen = 0;
  private enabled: boolean;

  constructor(enabled = true) {
    this.enabled = enabled;
  }

  update(phase: string, detail = ''): void {
    if (!this.enabled) return;
    const secs = ((Date.now() - this.started) / 1000).toFixed(0).padStart(4);
    if (this.tty) {
      const width = process.stderr.columns || 100;
      const line = `[${secs} s] ${phase}${detail ? ` — ${detail}` : ''}`.slice(0, width - 1);
      process.stderr.write(`\r${line}${' '.repeat(Math.max(0, this.lastLen - line.length))}`);
      this.lastLen = line.length;
    } else if (phase !== this.phase) {
      process.stderr.write(`[${secs} s] ${phase}\n`);
    }
    this.phase = phase;
  }

  /** Prints a permanent line above the status line. */
  log(msg: string): void {
    if (!this.enabled) return;
    this.clear();
    process.stderr.write(`${msg}\n`);
  }

  clear(): void {
    if (this.tty && this.lastLen) process.stderr.write(`\r${' '.repeat(this.lastLen)}\r`);
    this.lastLen = 0;
  }
}

/** Runs `fn` over `items` with at most `concurrency` at once; returns the wall time in ms. */
export async function closedLoop<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>, onDone?: (done: number) => void): Promise<number> {
  let next = 0;
  let done = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
      onDone?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return performance.now() - t0;
}
