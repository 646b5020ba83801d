/**
 * @kiln/storage — the BlobStore interface and its local-disk driver. Knows nothing of jobs beyond the
 * key layout; depends on Node only.
 */
export * from './blob-store.ts';
export * from './local-disk.ts';
