/**
 * @kiln/storage — the BlobStore interface and its drivers: local disk (the default, one machine)
 * and S3-compatible buckets (AWS SDK v3), built from settings by `createBlobStore`. Knows nothing
 * of jobs beyond the key layout; depends on Node and the AWS SDK only. Also the signer of download
 * links (signed-urls.ts), shared by the gateway and the workers (links in webhook payloads).
 */
export * from './blob-store.ts';
export * from './local-disk.ts';
// The S3 driver is not re-exported: importing it loads the AWS SDK, so it comes through
// createBlobStore, only in a process that uses it (its own tests import s3.ts).
export type { S3StoreOptions } from './s3.ts';
export * from './create-blob-store.ts';
export * from './signed-urls.ts';
