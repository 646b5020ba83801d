/**
 * Job rows shaped into the API's JSON (the Convertly dialect: JobSummary, JobDetail, FileResult) and
 * the signed download URLs in them. The shaping itself is @kiln/db's job-view.ts (the workers render
 * the same JobDetail into webhook payloads); the request-bound parts (the base URL) are here.
 */
import type { Request } from 'express';
import type { JobDetail } from '@kiln/contracts';
import { renderJobDetail, type JobFileWithOutput, type JobRow, type UrlFor } from '@kiln/db';
import type { Config } from '@kiln/config';
import type { GatewayDeps } from './deps.ts';

export { fileErrorMessage, jobErrorMessage, toFileResult, toSummary, type UrlFor } from '@kiln/db';

/** `files` when the caller already has them (getJobWithFiles); else they are read here. */
export function toJobDetail(deps: Pick<GatewayDeps, 'pool'>, job: JobRow, urlFor: UrlFor, files?: JobFileWithOutput[]): Promise<JobDetail> {
  return renderJobDetail(deps.pool, job, urlFor, files);
}

/** Where clients reach this gateway: PUBLIC_URL when set (behind a proxy), else what the request was sent to. */
export function publicBaseUrl(config: Pick<Config, 'PUBLIC_URL' | 'PORT'>, req: Request): string {
  return (config.PUBLIC_URL ?? `${req.protocol}://${req.get('host') ?? `localhost:${config.PORT}`}`).replace(/\/+$/, '');
}

/** Signed download URLs for one answer. */
export function urlBuilder(deps: Pick<GatewayDeps, 'config' | 'signer' | 'storedFiles'>, req: Request): UrlFor {
  const base = publicBaseUrl(deps.config, req);
  return (stored) => {
    // The download that usually follows this answer then needs no query (caches.ts).
    deps.storedFiles.remember(stored);
    const { exp, sig } = deps.signer.sign(stored.id, deps.config.DOWNLOAD_URL_TTL_SECONDS);
    return `${base}/api/files/${stored.id}?exp=${exp}&sig=${sig}`;
  };
}
