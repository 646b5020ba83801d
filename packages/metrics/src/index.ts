/**
 * @kiln/metrics — what Kiln exposes to Prometheus: the metric definitions (one prom-client Registry
 * per process), the short cache that keeps Postgres-backed gauges to one query per period, and the
 * serving of `GET /metrics` (the bearer check, and a worker's own listener). Depends on prom-client
 * only: the values it reads from Postgres and pg-boss arrive as functions from the apps, so this
 * package knows no SQL, queue or HTTP framework.
 */
export * from './kiln-metrics.ts';
export * from './cached-read.ts';
export * from './serve.ts';
