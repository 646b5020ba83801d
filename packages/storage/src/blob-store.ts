import crypto from 'node:crypto';
import type { Readable } from 'node:stream';

/**
 * Where sources, results and archives live. Keys are relative, slash-separated names chosen by Kiln
 * (`jobs/<jobId>/…`), never by clients; every driver rejects a key that could leave its root.
 *
 * Engines work on paths, so a remote store hands out temporary local copies (`localPath`) and takes
 * finished files back (`putFile`); the local store hands out its own files and renames into place.
 */
export interface BlobStore {
  readonly kind: 'local' | 's3';
  /** Where the blobs are, for logs and /readyz (never a secret). */
  readonly location: Record<string, string>;
  /**
   * Streams `source` to `key`. Nothing is visible at `key` until the stream has ended; if the source
   * errors (an aborted request) the promise rejects and nothing is left behind (no temporary file,
   * no unfinished multipart upload).
   */
  put(key: string, source: Readable): Promise<{ size: number }>;
  /**
   * Stores a finished local file at `key` and consumes it (the local file is gone afterwards).
   * `size`: the file's size when the caller knows it for certain (sharp reports what it wrote), which
   * spares the local store a `stat`; the answer is that size.
   */
  putFile(key: string, localPath: string, opts?: { size?: number }): Promise<{ size: number }>;
  /** Reads `key`, or the inclusive byte range of it. Rejects with BlobNotFoundError when absent. */
  open(key: string, range?: { start: number; end: number }): Promise<Readable>;
  stat(key: string): Promise<{ size: number } | undefined>;
  /**
   * The whole blob in one call instead of stat + open: its size, and its bytes when it holds at most
   * `bufferUpTo` (read at once, for small results), else a stream of it. Undefined when absent.
   */
  get(key: string, bufferUpTo: number): Promise<WholeBlob | undefined>;
  /** Deletes each key and everything under `key/` (a job's folder). Missing keys are not an error. */
  delete(keys: string[]): Promise<void>;
  /**
   * A path engines can read. Local stores hand out the file itself; remote ones a temporary copy.
   * Rejects with BlobNotFoundError when absent, unless `unchecked`: a caller that finds out anyway (the
   * engine fails to open a missing file, and the caller then asks `stat`) spares the local store its
   * `access`; a remote store fetches the copy, and rejects, as always. `under`: a scratch folder of
   * this store's (`scratch`) the copy is made in, so that whatever removes that folder — the caller's
   * release, or the sweep after a crash, which knows the folder from the worker's hold — removes the
   * copy too; without it the copy gets a folder of its own. The local store makes no copy and ignores it.
   */
  localPath(key: string, opts?: { unchecked?: boolean; under?: string }): Promise<{ path: string; release: () => Promise<void> }>;
  /**
   * A fresh scratch directory for engines' outputs, removed by `release`. With `planned` (from
   * `scratchPath`) that folder is created; the store may still answer with another one when it
   * cannot (the local store falls back to the system's temporary folder): compare `dir`.
   */
  scratch(planned?: string): Promise<{ dir: string; release: () => Promise<void> }>;
  /**
   * A path for one file an engine writes (the output of a conversion that writes nothing else), to
   * be handed to `putFile`: `planned` (from `scratchPath`), or a new one. Nothing is created, so this
   * costs no file system call; `release` removes the file if it is still there (after a failure).
   */
  scratchFile(planned?: string): Promise<{ path: string; release: () => Promise<void> }>;
  /**
   * Where a scratch folder (or a scratch file: `scratchFile`) can be made later: a new path under the
   * store's scratch root, not yet created. The worker records it before anything exists there, in the
   * same statement as its claim, so the sweep after a crash finds it (a path that was never created
   * is simply not there).
   */
  scratchPath(): string;
  /** Cheap check that the store answers (/readyz). Rejects with StorageUnavailableError. */
  ping(): Promise<void>;
  /** Optional: a URL that lets anyone GET `key` until it expires, without passing through Kiln. */
  presignGet?(key: string, opts: PresignGetOptions): Promise<string>;
  /** Optional: a URL that lets anyone PUT exactly `contentLength` bytes to `key` until it expires. */
  presignPut?(key: string, opts: PresignPutOptions): Promise<string>;
}

/** What `get` answers: the bytes of a small blob, or a stream of a larger one; `size` either way. */
export type WholeBlob = { size: number; bytes: Buffer; stream?: undefined } | { size: number; bytes?: undefined; stream: Readable };

export interface PresignGetOptions {
  expiresInSeconds: number;
  /** Sent back as the response's Content-Disposition (e.g. `attachment; filename="…"`). */
  contentDisposition?: string;
  contentType?: string;
}

export interface PresignPutOptions {
  expiresInSeconds: number;
  /** Signed into the URL: the server refuses a body of any other length. */
  contentLength: number;
  contentType?: string;
}

/** A scratch folder's name: `w-` and 16 hex digits (the reconcile sweep removes only names of this form). */
export function scratchName(): string {
  return `w-${crypto.randomBytes(8).toString('hex')}`;
}

/** `open` of a key that holds nothing. */
export class BlobNotFoundError extends Error {
  readonly key: string;
  constructor(key: string) {
    super(`No blob is stored at ${key}.`);
    this.name = 'BlobNotFoundError';
    this.key = key;
  }
}

/** A storage failure an operator can act on: `setting` names what to look at. */
abstract class StorageSettingError extends Error {
  readonly setting: string;
  constructor(message: string, setting: string, opts: { cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = new.target.name;
    this.setting = setting;
  }
}

/**
 * Storage did not answer or refused (endpoint down, credentials revoked, bucket gone) while running:
 * not the client's fault and not the file's. The gateway answers 503 with Retry-After; a worker puts
 * the file back in the queue.
 */
export class StorageUnavailableError extends StorageSettingError {}

export function isStorageUnavailable(err: unknown): err is StorageUnavailableError {
  return err instanceof StorageUnavailableError;
}

/** Start-up found the store unusable; the message names the setting to fix. */
export class StorageConfigError extends StorageSettingError {}

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
  /**
   * A file declared before its bytes arrive (the TurboFiles dialect): each upload attempt writes its
   * own key, so an attempt that lost the race can never overwrite the bytes another one committed.
   * Tasks read it in place; it is deleted with its folder when the file expires, not with a task.
   */
  upload: (fileId: string, attempt: string) => `uploads/${fileId}/${attempt}`,
  uploads: (fileId: string) => `uploads/${fileId}`,
};
