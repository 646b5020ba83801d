/**
 * @kiln/worker-runtime — what the convert and compress workers share: the per-file handler, the
 * archive builder, retention sweeping and process wiring. Depends on every package but the gateway.
 */
export * from './file-handler.ts';
export * from './file-queues.ts';
export * from './archive-handler.ts';
export * from './retention.ts';
export * from './runtime.ts';
export * from './lifecycle/instance.ts';
export * from './lifecycle/engine-limits.ts';
export * from './lifecycle/rss-recycle.ts';
export * from './lifecycle/db-retry.ts';
