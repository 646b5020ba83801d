import type { Readable } from 'node:stream';

/**
 * Where sources, results and archives live. Keys are relative, slash-separated names chosen by Kiln
 * (`jobs/<jobId>/…`), never by clients; every driver rejects a key that could leave its root.
 */
export interface BlobStore {
  readonly kind: string;
  /** Streams `source` to `key` (written to a temporary name, renamed when complete). */
  put(key: string, source: Readable): Promise<{ size: number }>;
  /** Moves (or copies) a finished local file to `key`. */
  putFile(key: string, localPath: string): Promise<{ size: number }>;
  open(key: string, range?: { start: number; end: number }): Promise<Readable>;
  stat(key: string): Promise<{ size: number } | undefined>;
  delete(keys: string[]): Promise<void>;
  /** A path engines can read. Local stores hand out the file itself; remote ones a temporary copy. */
  localPath(key: string): Promise<{ path: string; release: () => Promise<void> }>;
  /** A fresh scratch directory for engines' outputs, removed by `release`. */
  scratch(): Promise<{ dir: string; release: () => Promise<void> }>;
}

const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/;

export function assertKey(key: string): void {
  if (!KEY_RE.test(key) || key.split('/').some((s) => s === '..' || s === '.')) {
    throw new Error(`Invalid storage key ${JSON.stringify(key)}: keys are relative names without '.' or '..' segments.`);
  }
}

export const keys = {
  source: (jobId: string, fileId: string) => `jobs/${jobId}/src/${fileId}`,
  output: (jobId: string, fileId: string, ext: string) => `jobs/${jobId}/out/${fileId}.${ext}`,
  archive: (jobId: string) => `jobs/${jobId}/archive.zip`,
  job: (jobId: string) => `jobs/${jobId}`,
};
