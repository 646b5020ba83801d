/**
 * Per-key limits (README "Dashboard and keys"): a key's own setting wins, else the server-wide
 * default from config. Requests per minute are counted in Postgres fixed windows so several gateways
 * agree; admission (concurrent jobs, monthly quota) is checked before the upload is read and again
 * under a row lock inside the job's transaction, so concurrent requests cannot overshoot.
 */
import type { NextFunction, Request, Response } from 'express';
import { AppError } from '@kiln/contracts';
import { hitWindow, keyUsage, pruneWindows, type ApiKeyRow, type Pool, type Queryable, type WindowHit } from '@kiln/db';
import { parseOutputFormat, type OutputFormat } from '@kiln/formats';
import type { Config } from '@kiln/config';

export interface EffectiveLimits {
  /** 0 = unlimited. */
  requestsPerMinute: number;
  maxConcurrentJobs: number;
  monthlyJobQuota: number;
  /** Undefined = every format. */
  allowedFormats: OutputFormat[] | undefined;
}

export type LimitsConfig = Pick<Config, 'KEY_DEFAULT_RPM' | 'KEY_DEFAULT_MAX_CONCURRENT_JOBS' | 'KEY_DEFAULT_MONTHLY_JOB_QUOTA' | 'KEY_DEFAULT_ALLOWED_FORMATS'>;

export function effectiveLimits(config: LimitsConfig, key: Pick<ApiKeyRow, 'limits'>): EffectiveLimits {
  const l = key.limits ?? {};
  const defaultFormats = config.KEY_DEFAULT_ALLOWED_FORMATS?.split(/\s*,\s*/)
    .map((f) => parseOutputFormat(f))
    .filter((f): f is OutputFormat => !!f);
  const keyFormats = l.allowedFormats?.map((f) => parseOutputFormat(f)).filter((f): f is OutputFormat => !!f);
  return {
    requestsPerMinute: l.requestsPerMinute ?? config.KEY_DEFAULT_RPM,
    maxConcurrentJobs: l.maxConcurrentJobs ?? config.KEY_DEFAULT_MAX_CONCURRENT_JOBS,
    monthlyJobQuota: l.monthlyJobQuota ?? config.KEY_DEFAULT_MONTHLY_JOB_QUOTA,
    allowedFormats: keyFormats?.length ? keyFormats : defaultFormats?.length ? defaultFormats : undefined,
  };
}

/** Whole seconds until the window resets, by the database's clock; at least 1. */
const retryAfterOf = (hit: WindowHit) => Math.max(1, Math.ceil(hit.resetAt - hit.now / 1000));

/**
 * Counts every authenticated API request against the key's requests-per-minute window and sets
 * X-RateLimit-Limit / -Remaining / -Reset (epoch seconds). Keys without a limit cost no query.
 */
export function rateLimitByKey(pool: Pool, config: LimitsConfig) {
  let lastPrune = 0;
  return async (req: Request, res: Response, next: NextFunction) => {
    const key = req.apiKey;
    const limit = key ? effectiveLimits(config, key).requestsPerMinute : 0;
    if (!key || limit <= 0) return next();
    const hit = await hitWindow(pool, `key:${key.id}`, 60);
    if (Date.now() - lastPrune > 10 * 60_000) {
      lastPrune = Date.now();
      void pruneWindows(pool).catch(() => undefined);
    }
    const headers = {
      'X-RateLimit-Limit': String(limit),
      'X-RateLimit-Remaining': String(Math.max(0, limit - hit.hits)),
      'X-RateLimit-Reset': String(hit.resetAt),
    };
    res.set(headers);
    if (hit.hits > limit) {
      const retryAfter = retryAfterOf(hit);
      throw new AppError(
        'rate_limited',
        `This key may make ${limit} requests per minute and has used them; retry in ${retryAfter} s (Retry-After), or ask the operator to raise its requestsPerMinute.`,
        {
          detail: { limit: 'requestsPerMinute', max: limit, retryAfterSeconds: retryAfter },
          headers: { ...headers, 'Retry-After': String(retryAfter) },
        },
      );
    }
    next();
  };
}

/** Dashboard sign-in attempts per IP; the same Postgres windows as API keys. */
export async function countLoginAttempt(pool: Pool, ip: string, perMinute: number): Promise<void> {
  const hit = await hitWindow(pool, `login:${ip}`, 60);
  if (hit.hits > perMinute) {
    const retryAfter = retryAfterOf(hit);
    throw new AppError('rate_limited', `Too many sign-in attempts from this address; wait ${retryAfter} s and try again.`, {
      detail: { limit: 'DASHBOARD_LOGIN_ATTEMPTS_PER_MINUTE', max: perMinute, retryAfterSeconds: retryAfter },
      headers: { 'Retry-After': String(retryAfter) },
    });
  }
}

/** Whether admitJob has anything to count for this key (else it sends nothing, and needs no transaction). */
export function limitsAdmission(limits: EffectiveLimits): boolean {
  return limits.maxConcurrentJobs > 0 || limits.monthlyJobQuota > 0;
}

/**
 * Refuses a new job when the key is at its concurrent-jobs limit (429) or its monthly quota (402).
 * Inside the job's transaction pass `lock: true` so the count and the insert are atomic per key.
 */
export async function admitJob(db: Queryable, key: Pick<ApiKeyRow, 'id'>, limits: EffectiveLimits, opts: { lock?: boolean } = {}): Promise<void> {
  if (!limitsAdmission(limits)) return;
  const usage = await keyUsage(db, key.id, opts);
  if (limits.monthlyJobQuota > 0 && usage.jobsThisMonth >= limits.monthlyJobQuota) {
    const resetsAt = new Date(usage.monthResetsAt).toISOString();
    throw new AppError(
      'quota_exceeded',
      `This key has used its monthly quota of ${limits.monthlyJobQuota} jobs (monthlyJobQuota); it starts again at ${resetsAt}, or the operator can raise it.`,
      {
        detail: { limit: 'monthlyJobQuota', max: limits.monthlyJobQuota, used: usage.jobsThisMonth, resetsAt },
      },
    );
  }
  if (limits.maxConcurrentJobs > 0 && usage.activeJobs >= limits.maxConcurrentJobs) {
    throw new AppError(
      'rate_limited',
      `This key already has ${usage.activeJobs} jobs pending or processing, its limit (maxConcurrentJobs ${limits.maxConcurrentJobs}); wait for one to finish, then retry.`,
      {
        detail: { limit: 'maxConcurrentJobs', max: limits.maxConcurrentJobs, active: usage.activeJobs },
        headers: { 'Retry-After': '5' },
      },
    );
  }
}

/** 403 for the first file asking for an output format the key may not create. */
export function checkAllowedFormats(limits: EffectiveLimits, targets: { index: number; filename: string; format: OutputFormat | undefined }[]): void {
  if (!limits.allowedFormats) return;
  for (const t of targets) {
    if (t.format && !limits.allowedFormats.includes(t.format)) {
      throw new AppError(
        'format_not_allowed',
        `files[${t.index}] ("${t.filename}") asks for ${t.format}, which this key may not create; it may create ${limits.allowedFormats.join(', ')} (allowedFormats).`,
        {
          detail: { limit: 'allowedFormats', index: t.index, format: t.format, allowedFormats: limits.allowedFormats },
        },
      );
    }
  }
}
