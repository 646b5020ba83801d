/** Convert worker: consumes the convert queues of every class of work and `archive.build`, and sweeps expired results. */
import { QUEUES } from '@kiln/queue';
import { createArchiveHandler, runWorkerProcess, startRetentionSweeper, workFileQueues } from '@kiln/worker-runtime';

await runWorkerProcess({
  service: 'convert-worker',
  metricsPort: 'CONVERT_METRICS_PORT',
  register: async (deps, config) => {
    await workFileQueues(deps, config, 'convert');
    await deps.queue.work(QUEUES.archiveBuild, 1, createArchiveHandler(deps));
    startRetentionSweeper(deps.pool, deps.store, deps.log, config.RETENTION_SWEEP_SECONDS * 1000, config.RETENTION_SWEEP_BATCH);
  },
});
