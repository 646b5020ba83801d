import type { Config, Logger } from '@kiln/config';
import type { Pool } from '@kiln/db';
import type { KilnMetrics } from '@kiln/metrics';
import type { Queue } from '@kiln/queue';
import type { BlobStore } from '@kiln/storage';
import type { Outbound } from '@kiln/outbound';
import type { Backpressure } from './backpressure.ts';
import type { EventContext } from '@kiln/webhooks';
import type { KeyCache, StoredFileCache } from './caches.ts';
import type { JobWaiter } from './job-waiter.ts';
import type { Signer } from './signing.ts';

/** Everything routes need, built once in main.ts (or by a test) and passed to createApp. */
export interface GatewayDeps {
  config: Config;
  pool: Pool;
  queue: Queue;
  store: BlobStore;
  log: Logger;
  metrics: KilnMetrics;
  signer: Signer;
  waiter: JobWaiter;
  keyCache: KeyCache;
  storedFiles: StoredFileCache;
  /** URL sources are checked (never fetched) at submission with it. */
  outbound: Pick<Outbound, 'checkUrl'>;
  /** New work of a class whose queue is past its limits is refused with 429 queue_full. */
  backpressure: Backpressure;
  /** Webhook events written with each change the gateway makes (submission, cancel); absent in tests that need none. */
  events?: EventContext;
}
