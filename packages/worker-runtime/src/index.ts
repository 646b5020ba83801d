/**
 * @kiln/worker-runtime — what the convert and compress workers share: the per-file handler, the
 * archive builder, retention sweeping and process wiring. Depends on every package but the gateway.
 */
export * from './file-handler.ts';
export * from './file-queues.ts';
export * from './archive-handler.ts';
export * from './retention.ts';
export * from './runtime.ts';
