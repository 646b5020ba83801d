import path from 'node:path';
import type { BlobStore } from './blob-store.ts';
import { LocalDiskStore } from './local-disk.ts';
import type { S3StoreOptions } from './s3.ts';

/**
 * The settings the store is built from, by their environment names (a structural slice of
 * @kiln/config's Config, so this package needs no dependency on it).
 */
export interface StorageSettings {
  dataDir: string;
  STORAGE: 'local' | 's3';
  S3_BUCKET?: string | undefined;
  S3_REGION: string;
  S3_ENDPOINT?: string | undefined;
  S3_FORCE_PATH_STYLE: boolean;
  S3_ACCESS_KEY_ID?: string | undefined;
  S3_SECRET_ACCESS_KEY?: string | undefined;
  S3_PREFIX?: string | undefined;
  S3_PART_SIZE_MB: number;
  S3_REQUEST_CHECKSUM: 'when_supported' | 'when_required';
  S3_RESPONSE_CHECKSUM: 'when_supported' | 'when_required';
}

/** The S3 driver's options from settings; exported for tests and tools that build a store by hand. */
export function s3OptionsFrom(s: StorageSettings): S3StoreOptions {
  if (!s.S3_BUCKET) throw new Error('S3_BUCKET is required with STORAGE=s3.');
  return {
    bucket: s.S3_BUCKET,
    region: s.S3_REGION,
    ...(s.S3_ENDPOINT ? { endpoint: s.S3_ENDPOINT } : {}),
    forcePathStyle: s.S3_FORCE_PATH_STYLE,
    ...(s.S3_ACCESS_KEY_ID && s.S3_SECRET_ACCESS_KEY ? { credentials: { accessKeyId: s.S3_ACCESS_KEY_ID, secretAccessKey: s.S3_SECRET_ACCESS_KEY } } : {}),
    ...(s.S3_PREFIX ? { prefix: s.S3_PREFIX } : {}),
    partSizeBytes: s.S3_PART_SIZE_MB * 1024 * 1024,
    requestChecksum: s.S3_REQUEST_CHECKSUM,
    responseChecksum: s.S3_RESPONSE_CHECKSUM,
    // Temporary copies for engines stay on this host; they are never shared.
    scratchRoot: path.join(s.dataDir, 'scratch'),
  };
}

/**
 * The S3 driver's module, imported when a process first needs it: the AWS SDK is the largest thing
 * this package could load (about 10 MB of a process's memory, imported after the rest), and a
 * process on local disk never needs it.
 */
const loadS3Store = async (): Promise<typeof import('./s3.ts').S3Store> => (await import('./s3.ts')).S3Store;

/**
 * The one place a BlobStore is built from configuration (gateway, workers, `pnpm start`). It is
 * checked before it is returned: a missing bucket, refused credentials or an unreachable endpoint
 * reject with a StorageConfigError naming the setting.
 */
export async function createBlobStore(s: StorageSettings): Promise<BlobStore> {
  if (s.STORAGE === 's3') return new (await loadS3Store())(s3OptionsFrom(s)).init();
  return new LocalDiskStore(path.join(s.dataDir, 'blobs')).init();
}
