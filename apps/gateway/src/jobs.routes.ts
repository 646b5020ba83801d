import { Router, type Request } from 'express';
import { z } from 'zod';
import { AppError, isUuid } from '@kiln/contracts';
import { cancelJob, getJob, getJobWithFiles, listJobs, withTransaction } from '@kiln/db';
import { recordJobEvents } from '@kiln/webhooks';
import type { GatewayDeps } from './deps.ts';
import { apiKeyOf } from './auth.ts';
import { toJobDetail, toSummary, urlBuilder } from './job-responses.ts';
import { submitMultipart } from './multipart-intake.ts';
import { streamJobEvents } from './job-events.ts';

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  offset: z.coerce.number().int().min(0).default(0),
  status: z.enum(['pending', 'processing', 'completed', 'failed']).optional(),
  after: z.string().refine(isUuid).optional(),
});
/** What each query parameter accepts, for the 400 that names it. */
const LIST_QUERY_ACCEPTS: Record<keyof z.infer<typeof listQuery>, string> = {
  limit: 'must be an integer from 1 to 100',
  offset: 'must be an integer ≥ 0',
  status: 'must be one of pending, processing, completed, failed',
  after: "must be the jobId of a job in the listing (an earlier page's pagination.nextAfter)",
};

export function jobIdParam(req: Request): string {
  const id = String(req.params.id ?? '');
  if (!isUuid(id)) throw new AppError('not_found', `No job ${id}.`);
  return id;
}

export function jobsRouter(deps: GatewayDeps): Router {
  const r = Router();

  r.post('/jobs', async (req, res) => {
    const created = await submitMultipart(deps, req, res, apiKeyOf(req));
    if (!created.created) {
      const job = await getJob(deps.pool, created.jobId, apiKeyOf(req).id);
      res.set('Idempotent-Replayed', 'true').json({ jobId: created.jobId, status: job?.status ?? 'pending' });
      return;
    }
    res.json({ jobId: created.jobId, status: 'pending' });
  });

  r.get('/jobs', async (req, res) => {
    const q = listQuery.safeParse(req.query);
    if (!q.success) {
      const issue = q.error.issues[0]!;
      const field = String(issue.path[0] ?? 'query') as keyof typeof LIST_QUERY_ACCEPTS;
      throw new AppError('invalid_field', `${field}: ${LIST_QUERY_ACCEPTS[field] ?? LIST_QUERY_ACCEPTS.status}.`, { detail: { field } });
    }
    const { jobs, total, hasMore, afterFound } = await listJobs(deps.pool, { apiKeyId: apiKeyOf(req).id, ...q.data });
    if (!afterFound) {
      throw new AppError('invalid_field', `after: this key has no job ${q.data.after}; pass the jobId of a listed job (an earlier page's pagination.nextAfter).`, {
        detail: { field: 'after' },
      });
    }
    res.json({
      jobs: jobs.map(toSummary),
      pagination: {
        limit: q.data.limit,
        offset: q.data.offset,
        total,
        hasMore,
        // Keyset paging: pass it as `after` for the next page, which then costs what the first did.
        nextAfter: hasMore ? jobs.at(-1)!.id : null,
        ...(q.data.after ? { after: q.data.after } : {}),
      },
    });
  });

  r.get('/jobs/:id', async (req, res) => {
    const id = jobIdParam(req);
    const found = await getJobWithFiles(deps.pool, id, apiKeyOf(req).id);
    if (!found) throw new AppError('not_found', `No job ${id}.`);
    res.json(await toJobDetail(deps, found.job, urlBuilder(deps, req), found.files));
  });

  // Live progress as Server-Sent Events (job-events.ts; the events are in @kiln/contracts).
  r.get('/jobs/:id/events', async (req, res) => {
    const id = jobIdParam(req);
    const keyId = apiKeyOf(req).id;
    await streamJobEvents(deps, req, res, id, () => getJobWithFiles(deps.pool, id, keyId), keyId);
  });

  r.delete('/jobs/:id', async (req, res) => {
    const id = jobIdParam(req);
    // The cancel and its webhook event (conversion.failed) commit together.
    const outcome = await withTransaction(deps.pool, async (tx) => {
      const o = await cancelJob(tx, id, apiKeyOf(req).id, deps.config.RETENTION_HOURS);
      if (o === 'cancelled' && deps.events) await recordJobEvents(tx, deps.events, id, { kind: 'cancelled' });
      return o;
    });
    if (outcome === 'not_found') throw new AppError('not_found', `No job ${id}.`);
    if (outcome !== 'cancelled') throw new AppError('job_not_cancellable', `Job ${id} is ${outcome}; only pending jobs can be cancelled.`, { detail: { status: outcome } });
    const job = (await getJob(deps.pool, id, apiKeyOf(req).id))!;
    deps.metrics.jobsFailed.inc({ type: job.jobType, dialect: job.dialect });
    res.json(toSummary(job));
  });

  return r;
}
