/** `GET /v1/users/me`: the API key as a `users` resource — its name, its limits and what it used this month. */
import { Router } from 'express';
import { keyUsage } from '@kiln/db';
import type { GatewayDeps } from '../deps.ts';
import { apiKeyOf } from '../auth.ts';
import { effectiveLimits } from '../key-limits.ts';
import { uploadLimitsFor } from '../upload.ts';
import { onlyParameters, resourceDocument, selfLink, sendDocument } from './jsonapi.ts';

/** 0 means unlimited in Kiln's settings; JSON:API clients read null more easily. */
const orNull = (n: number) => (n > 0 ? n : null);

export function usersRoutes(deps: GatewayDeps): Router {
  const r = Router();
  r.get('/users/me', async (req, res) => {
    onlyParameters(req, []);
    const key = apiKeyOf(req);
    const limits = effectiveLimits(deps.config, key);
    const upload = uploadLimitsFor(deps.config, key);
    const usage = await keyUsage(deps.pool, key.id);
    const data = {
      type: 'users',
      id: key.id,
      attributes: {
        name: key.name,
        key_prefix: key.prefix,
        created_at: key.createdAt.toISOString(),
        limits: {
          requests_per_minute: orNull(limits.requestsPerMinute),
          max_upload_bytes: upload.maxFileBytes,
          max_concurrent_tasks: orNull(limits.maxConcurrentJobs),
          monthly_task_quota: orNull(limits.monthlyJobQuota),
          allowed_formats: limits.allowedFormats ?? null,
          retention_hours: key.limits.retentionHours ?? deps.config.RETENTION_HOURS,
          file_ttl_hours: deps.config.TURBOFILES_FILE_TTL_HOURS,
        },
        usage: {
          // Jobs and tasks alike: they share the key's limits.
          jobs_this_month: usage.jobsThisMonth,
          active_jobs: usage.activeJobs,
          month_resets_at: new Date(usage.monthResetsAt).toISOString(),
        },
      },
      links: { self: selfLink(deps.config, req) },
    };
    sendDocument(res, 200, resourceDocument(deps.config, req, data));
  });
  return r;
}
