/** Compress worker: consumes `compress.file`. Shares the codec and the file handler with convert. */
import { QUEUES } from '@kiln/queue';
import { createFileHandler, runWorkerProcess } from '@kiln/worker-runtime';

await runWorkerProcess({
  service: 'compress-worker',
  metricsPort: 'COMPRESS_METRICS_PORT',
  register: async (deps, config) => {
    await deps.queue.work(QUEUES.compressFile, config.COMPRESS_CONCURRENCY, createFileHandler(deps, 'compress'));
  },
});
