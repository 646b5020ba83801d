/** Compress worker: consumes the compress queues of every class of work. Shares the codec and the file handler with convert. */
import { runWorkerProcess, workFileQueues } from '@kiln/worker-runtime';

await runWorkerProcess({
  service: 'compress-worker',
  metricsPort: 'COMPRESS_METRICS_PORT',
  register: async (deps, config) => {
    await workFileQueues(deps, config, 'compress');
  },
});
