/**
 * @kiln/db — Kiln's Postgres: the pool, the migration runner for `migrations/`, the embedded server
 * used when DATABASE_URL is unset, and repositories for our own tables. Knows nothing of HTTP,
 * queues or codecs; pg-boss's schema is not ours and is never touched here. Of the other packages it
 * uses only @kiln/contracts, for the types its rows carry (key limits) and the id pattern.
 */
export * from './pool.ts';
export * from './migrate.ts';
export * from './embedded.ts';
export * from './api-keys.repo.ts';
export * from './jobs.repo.ts';
export * from './heartbeats.repo.ts';
export * from './rate-limits.repo.ts';
export * from './turbofiles.repo.ts';
export * from './job-totals.repo.ts';
export * from './worker-holds.repo.ts';
export * from './unavailable.ts';
export * from './job-view.ts';
export * from './webhooks.repo.ts';
export * from './listen.ts';
