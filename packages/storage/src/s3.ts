/**
 * Blobs in an S3-compatible bucket (AWS S3, MinIO, R2, Ceph, …) through the AWS SDK v3
 * (@aws-sdk/client-s3, @aws-sdk/s3-request-presigner): streamed multipart uploads in bounded memory
 * (s3-upload.ts), ranged GETs, batched DeleteObjects and presigned URLs.
 * Every host of a Kiln installation points at the same bucket, so gateways and workers share
 * nothing but it and Postgres.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
  type GetObjectCommandOutput,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  assertKey,
  BlobNotFoundError,
  scratchName,
  StorageConfigError,
  StorageUnavailableError,
  type WholeBlob,
  type BlobStore,
  type PresignGetOptions,
  type PresignPutOptions,
} from './blob-store.ts';
import { streamToS3, TooManyPartsError } from './s3-upload.ts';
import { removeScratchDir, removeScratchFile } from './scratch-removal.ts';

export interface S3StoreOptions {
  bucket: string;
  region: string;
  /** Unset: AWS S3 for `region`. */
  endpoint?: string;
  forcePathStyle: boolean;
  /** Unset: the SDK's default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Prepended to every key, e.g. `kiln/`. */
  prefix?: string;
  partSizeBytes: number;
  requestChecksum: 'when_supported' | 'when_required';
  responseChecksum: 'when_supported' | 'when_required';
  /** Where temporary local copies (`localPath`) and scratch folders go: this host's own disk. */
  scratchRoot: string;
}

/** Parts uploaded at once per upload; with the one being filled, three part buffers per upload. */
const PART_CONCURRENCY = 2;
const DELETE_BATCH = 1000; // DeleteObjects' own maximum

type Failure = 'not_found' | 'no_bucket' | 'credentials' | 'region' | 'unreachable' | 'unavailable';

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET']);
const CREDENTIAL_NAMES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'CredentialsProviderError',
  'Forbidden',
]);

/** What went wrong, from an SDK or network error. HEAD answers have no body, so status decides too. */
function classify(err: unknown): { kind: Failure; code: string } {
  const e = (err ?? {}) as { name?: string; Code?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number }; cause?: { code?: string } };
  const status = e.$metadata?.httpStatusCode;
  const name = e.Code ?? e.name ?? '';
  const sys = e.code ?? e.cause?.code;
  const code = [name && name !== 'Error' ? name : undefined, sys, status ? `HTTP ${status}` : undefined].filter(Boolean).join(', ') || (e.message ?? 'unknown error');
  if (name === 'NoSuchBucket') return { kind: 'no_bucket', code };
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return { kind: 'not_found', code };
  if (CREDENTIAL_NAMES.has(name) || status === 401 || status === 403) return { kind: 'credentials', code };
  if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed' || status === 301) return { kind: 'region', code };
  if ((sys && NETWORK_CODES.has(sys)) || name === 'TimeoutError' || name === 'RequestTimeout' || /socket hang up|getaddrinfo|connect /i.test(e.message ?? ''))
    return { kind: 'unreachable', code };
  return { kind: 'unavailable', code };
}

export class S3Store implements BlobStore {
  readonly kind = 's3' as const;
  readonly location: Record<string, string>;
  private readonly client: S3Client;
  /** Presigning only: see the constructor. */
  private readonly presigner: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly o: S3StoreOptions;

  constructor(o: S3StoreOptions) {
    this.o = o;
    this.bucket = o.bucket;
    this.prefix = o.prefix ? o.prefix.replace(/\/*$/, '/') : '';
    this.location = { bucket: o.bucket, endpoint: this.endpointLabel(), ...(this.prefix ? { prefix: this.prefix } : {}) };
    const config: S3ClientConfig = {
      region: o.region,
      ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      forcePathStyle: o.forcePathStyle,
      ...(o.credentials ? { credentials: o.credentials } : {}),
      requestChecksumCalculation: o.requestChecksum === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
      responseChecksumValidation: o.responseChecksum === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
      // The SDK's standard retries (3 attempts, jittered backoff) absorb a blip; longer outages are
      // the caller's to handle (503 at the gateway, a re-queued file at a worker).
      maxAttempts: 3,
      // Fail fast on a dead endpoint instead of the OS's minutes-long connect timeout; a response
      // that stalls for a minute is treated as lost.
      requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, socketTimeout: 60_000 }),
    };
    this.client = new S3Client(config);
    // With WHEN_SUPPORTED the SDK signs the CRC32 of the (absent, so empty) body into a presigned PUT
    // (`x-amz-checksum-crc32=AAAAAA==`), and S3 then refuses every real upload to that URL
    // (aws-sdk-js-v3#6994). Presigned URLs carry no checksum; S3 still checks the signed length.
    this.presigner = new S3Client({ ...config, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  }

  private endpointLabel(): string {
    return this.o.endpoint ?? `AWS S3 (${this.o.region})`;
  }

  private full(key: string): string {
    assertKey(key);
    return this.prefix + key;
  }

  /** The runtime form of a failure: a 503 at the gateway, a re-queue at a worker. */
  private unavailable(err: unknown, what: string): StorageUnavailableError {
    const { kind, code } = classify(err);
    const where = `bucket ${this.bucket} at ${this.endpointLabel()}`;
    switch (kind) {
      case 'no_bucket':
        return new StorageUnavailableError(`Storage is unavailable: ${where} no longer exists (${code}) while trying to ${what}; check S3_BUCKET.`, 'S3_BUCKET', { cause: err });
      case 'credentials':
        return new StorageUnavailableError(
          `Storage is unavailable: ${where} refused Kiln's credentials (${code}) while trying to ${what}; check S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY.`,
          'S3_ACCESS_KEY_ID',
          { cause: err },
        );
      case 'region':
        return new StorageUnavailableError(`Storage is unavailable: ${where} is not in S3_REGION=${this.o.region} (${code}).`, 'S3_REGION', { cause: err });
      case 'unreachable':
        return new StorageUnavailableError(`Storage is unavailable: cannot reach ${where} (${code}) while trying to ${what}; check S3_ENDPOINT and the network.`, 'S3_ENDPOINT', {
          cause: err,
        });
      default:
        return new StorageUnavailableError(`Storage is unavailable: ${where} answered ${code} while trying to ${what}.`, 'S3_ENDPOINT', { cause: err });
    }
  }

  /**
   * Start-up check: the bucket exists and these credentials may write and delete in it. Anything
   * else stops start-up with a message naming the setting to fix.
   */
  async init(): Promise<this> {
    const fail = (err: unknown, step: string): never => {
      const { kind, code } = classify(err);
      const endpoint = this.endpointLabel();
      switch (kind) {
        case 'not_found':
        case 'no_bucket':
          throw new StorageConfigError(
            `S3_BUCKET=${this.bucket} does not exist at ${endpoint} (${code}): create the bucket, or set S3_BUCKET to an existing one (and S3_FORCE_PATH_STYLE=true if the server does not serve bucket subdomains).`,
            'S3_BUCKET',
            { cause: err },
          );
        case 'credentials':
          throw new StorageConfigError(
            `${endpoint} refused Kiln's credentials for bucket ${this.bucket} (${code}) when it tried to ${step}: check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY${this.o.credentials ? '' : ' (unset, so the AWS default credential chain was used)'}, and that they may read, write and delete objects in the bucket.`,
            'S3_ACCESS_KEY_ID',
            { cause: err },
          );
        case 'region':
          throw new StorageConfigError(`Bucket ${this.bucket} is not in S3_REGION=${this.o.region} (${code}): set S3_REGION to the bucket's region.`, 'S3_REGION', { cause: err });
        case 'unreachable':
          throw new StorageConfigError(
            `Cannot reach S3_ENDPOINT ${endpoint} (${code}): check S3_ENDPOINT${this.o.endpoint ? '' : ' (unset, so AWS S3 is used)'} and that this host can reach it.`,
            'S3_ENDPOINT',
            { cause: err },
          );
        default:
          throw new StorageConfigError(
            `S3_ENDPOINT ${endpoint} answered ${code} when Kiln tried to ${step} in bucket ${this.bucket}: check S3_ENDPOINT, S3_BUCKET and the server's logs.`,
            'S3_ENDPOINT',
            { cause: err },
          );
      }
    };
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket })).catch((err) => fail(err, 'open the bucket'));
    const probe = `${this.prefix}kiln-start-probe-${crypto.randomUUID()}`;
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: probe, Body: 'kiln' })).catch((err) => fail(err, 'write a probe object'));
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: probe })).catch((err) => fail(err, 'delete its probe object'));
    await fsp.mkdir(this.o.scratchRoot, { recursive: true });
    return this;
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket })).catch((err) => {
      throw this.unavailable(err, 'open the bucket');
    });
  }

  private async upload(key: string, source: Readable): Promise<number> {
    // Errors of the source itself (the client went away) are told apart from storage's by listening
    // to it: they are rethrown as they are, while storage's become StorageUnavailableError.
    let sourceError: unknown;
    const onError = (err: unknown) => {
      sourceError ??= err;
    };
    source.once('error', onError);
    try {
      return await streamToS3(source, {
        client: this.client,
        bucket: this.bucket,
        key: this.full(key),
        partSize: this.o.partSizeBytes,
        concurrency: PART_CONCURRENCY,
        checksums: this.o.requestChecksum === 'when_supported',
      });
    } catch (err) {
      if (sourceError !== undefined) throw sourceError;
      if (err instanceof TooManyPartsError) throw err;
      throw this.unavailable(err, `store ${key}`);
    } finally {
      source.off('error', onError);
    }
  }

  async put(key: string, source: Readable): Promise<{ size: number }> {
    assertKey(key);
    return { size: await this.upload(key, source) };
  }

  async putFile(key: string, localPath: string, _opts?: { size?: number }): Promise<{ size: number }> {
    assertKey(key);
    const size = await this.upload(key, fs.createReadStream(localPath, { highWaterMark: 1 << 20 }));
    await fsp.rm(localPath, { force: true });
    return { size };
  }

  async open(key: string, range?: { start: number; end: number }): Promise<Readable> {
    const full = this.full(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: full, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }));
      return out.Body as Readable;
    } catch (err) {
      if (classify(err).kind === 'not_found') throw new BlobNotFoundError(key);
      throw this.unavailable(err, `read ${key}`);
    }
  }

  async get(key: string, bufferUpTo: number): Promise<WholeBlob | undefined> {
    const full = this.full(key);
    let out: GetObjectCommandOutput;
    try {
      // One GET instead of a HEAD and a GET: its length says whether the body is read here.
      out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: full }));
    } catch (err) {
      if (classify(err).kind === 'not_found') return undefined;
      throw this.unavailable(err, `read ${key}`);
    }
    const body = out.Body as Readable;
    // A server that sends no length (S3 always does) is asked for it: the body is never read whole on trust.
    const size = out.ContentLength ?? (await this.stat(key))?.size;
    if (size === undefined) {
      body.destroy();
      return undefined;
    }
    if (size > bufferUpTo) return { size, stream: body };
    try {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c as Buffer);
      const bytes = Buffer.concat(chunks);
      return { size: bytes.length, bytes };
    } catch (err) {
      throw this.unavailable(err, `read ${key}`);
    }
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    const full = this.full(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full }));
      return { size: head.ContentLength ?? 0 };
    } catch (err) {
      if (classify(err).kind === 'not_found') return undefined;
      throw this.unavailable(err, `look up ${key}`);
    }
  }

  async delete(keys: string[]): Promise<void> {
    for (const k of keys) assertKey(k);
    const unique = [...new Set(keys)].sort();
    // A key inside another one's folder goes with it: list each outermost key once.
    const roots = unique.filter((k) => !unique.some((o) => o !== k && k.startsWith(`${o}/`)));
    const doomed: string[] = [];
    try {
      for (const k of roots) {
        const full = this.full(k);
        for await (const page of paginateListObjectsV2({ client: this.client, pageSize: 1000 }, { Bucket: this.bucket, Prefix: full })) {
          for (const o of page.Contents ?? []) if (o.Key === full || o.Key?.startsWith(`${full}/`)) doomed.push(o.Key);
        }
      }
      for (let i = 0; i < doomed.length; i += DELETE_BATCH) {
        const batch = doomed.slice(i, i + DELETE_BATCH);
        const r = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
        const first = r.Errors?.[0];
        if (first)
          throw Object.assign(new Error(`${r.Errors!.length} of ${batch.length} objects not deleted: ${first.Key}: ${first.Code} ${first.Message ?? ''}`), {
            name: first.Code ?? 'DeleteFailed',
          });
      }
    } catch (err) {
      throw this.unavailable(err, `delete ${roots.join(', ')}`);
    }
  }

  private async tempDir(): Promise<string> {
    await fsp.mkdir(this.o.scratchRoot, { recursive: true });
    return fsp.mkdtemp(path.join(this.o.scratchRoot, 'w-'));
  }

  async localPath(key: string, opts: { unchecked?: boolean; under?: string } = {}): Promise<{ path: string; release: () => Promise<void> }> {
    let file: string;
    let release: () => Promise<void>;
    if (opts.under !== undefined) {
      // Only one of this store's own scratch folders: a copy is never written anywhere else.
      const under = path.resolve(opts.under);
      if (path.dirname(under) !== path.resolve(this.o.scratchRoot)) throw new Error(`Scratch folder ${opts.under} is not under ${this.o.scratchRoot}.`);
      file = path.join(under, `src-${crypto.randomBytes(8).toString('hex')}`);
      release = () => fsp.rm(file, { force: true });
    } else {
      const dir = await this.tempDir();
      release = () => fsp.rm(dir, { recursive: true, force: true });
      file = path.join(dir, 'blob');
    }
    try {
      const body = await this.open(key);
      let bodyError: unknown;
      body.once('error', (err) => {
        bodyError = err;
      });
      await pipeline(body, fs.createWriteStream(file, { flags: 'wx', highWaterMark: 1 << 20 })).catch((err: unknown) => {
        // The connection dropped mid-object: storage's fault. A local write error is our disk's.
        throw bodyError ? this.unavailable(bodyError, `read ${key}`) : err;
      });
    } catch (err) {
      await release();
      throw err;
    }
    return { path: file, release };
  }

  scratchPath(): string {
    // Absolute: the sweep after a crash removes only absolute paths.
    return path.join(path.resolve(this.o.scratchRoot), scratchName());
  }

  async scratch(planned?: string): Promise<{ dir: string; release: () => Promise<void> }> {
    let dir: string;
    if (planned === undefined) dir = await this.tempDir();
    else {
      if (path.dirname(planned) !== path.resolve(this.o.scratchRoot)) throw new Error(`Scratch folder ${planned} is not under ${this.o.scratchRoot}.`);
      await fsp.mkdir(this.o.scratchRoot, { recursive: true });
      await fsp.mkdir(planned);
      dir = planned;
    }
    return { dir, release: () => removeScratchDir(dir) };
  }

  async scratchFile(planned?: string): Promise<{ path: string; release: () => Promise<void> }> {
    if (planned !== undefined && path.dirname(planned) !== path.resolve(this.o.scratchRoot)) throw new Error(`Scratch file ${planned} is not under ${this.o.scratchRoot}.`);
    const file = planned ?? this.scratchPath();
    // As scratch does: the root is made again if someone removed it (the upload costs far more).
    await fsp.mkdir(this.o.scratchRoot, { recursive: true });
    return { path: file, release: () => removeScratchFile(file) };
  }

  async presignGet(key: string, opts: PresignGetOptions): Promise<string> {
    return getSignedUrl(
      this.presigner,
      new GetObjectCommand({
        Bucket: this.bucket,
        Key: this.full(key),
        ...(opts.contentDisposition ? { ResponseContentDisposition: opts.contentDisposition } : {}),
        ...(opts.contentType ? { ResponseContentType: opts.contentType } : {}),
      }),
      { expiresIn: opts.expiresInSeconds },
    );
  }

  async presignPut(key: string, opts: PresignPutOptions): Promise<string> {
    return getSignedUrl(
      this.presigner,
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.full(key),
        ContentLength: opts.contentLength,
        ...(opts.contentType ? { ContentType: opts.contentType } : {}),
      }),
      {
        expiresIn: opts.expiresInSeconds,
        // Signed, so the server refuses a body of any other length (or another type).
        signableHeaders: new Set(['content-length', ...(opts.contentType ? ['content-type'] : [])]),
      },
    );
  }
}
