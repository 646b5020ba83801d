/**
 * Workers that cannot rot: a process whose resident memory passes WORKER_MAX_RSS_MB (libvips and
 * glibc fragmentation grow a long-lived process) drains and exits so its supervisor (`pnpm start`,
 * systemd, Kubernetes) starts a fresh one. Checked every few seconds; fires once.
 */
import type { Logger } from '@kiln/config';

/** The exit code of a recycled worker: distinct from a crash (1) and a signalled stop (0). */
export const RECYCLE_EXIT_CODE = 75;

export function watchRss(opts: { maxMb: number; log: Logger; onOver: (reason: string) => void; everyMs?: number; rss?: () => number }): () => void {
  if (opts.maxMb <= 0) return () => undefined;
  const rss = opts.rss ?? (() => process.memoryUsage.rss());
  const timer = setInterval(() => {
    const mb = rss() / 1024 / 1024;
    if (mb <= opts.maxMb) return;
    clearInterval(timer);
    const reason = `resident memory ${Math.round(mb)} MiB is over WORKER_MAX_RSS_MB=${opts.maxMb}`;
    opts.log.warn('recycling worker: draining, then exiting for a fresh process', { rssMb: Math.round(mb), limit: 'WORKER_MAX_RSS_MB', max: opts.maxMb });
    opts.onOver(reason);
  }, opts.everyMs ?? 5000);
  timer.unref();
  return () => clearInterval(timer);
}
