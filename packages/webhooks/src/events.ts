/**
 * The one place a job change becomes webhook events. Every caller passes the transaction that makes
 * the change (submission, a file's claim, a file's outcome, the archive, a cancel), so an event exists
 * exactly when its change committed: never lost, never sent for a change that rolled back.
 *
 * `data` is the JobDetail `GET /api/jobs/:id` would answer at that moment (read inside the same
 * transaction, so it includes the change), with signed download links. File events (`file.uploaded`,
 * `conversion.progress`) add the file they are about as `filename` and `fileIndex`, like Convertly's
 * `{jobId, filename}` example. Nothing is read or rendered when no endpoint (and no job webhookUrl)
 * would receive the event.
 */
import type { JobDetail, WebhookEventType } from '@kiln/contracts';
import { getJob, hasWebhookRecipients, insertWebhookEvent, lastWebhookEventAt, renderJobDetail, type JobRow, type Queryable, type UrlFor } from '@kiln/db';
import type { Signer } from '@kiln/storage';
import type { RecipientCache } from './recipients.ts';

export interface EventContext {
  /** Signs the download links in `data`. */
  urlFor: UrlFor;
  /** WEBHOOK_PROGRESS_INTERVAL_MS: at most one conversion.progress per job in this interval. */
  progressIntervalMs: number;
  /** Which keys have endpoints: lets a caller skip a change nobody would hear of (recipients.ts). */
  recipients?: RecipientCache;
}

/** Links in webhook payloads: PUBLIC_URL (or the gateway's default address) and the download signer. */
export function eventContext(o: {
  signer: Signer;
  publicUrl: string | undefined;
  port: number;
  ttlSeconds: number;
  progressIntervalMs: number;
  recipients?: RecipientCache;
}): EventContext {
  const base = (o.publicUrl ?? `http://localhost:${o.port}`).replace(/\/+$/, '');
  return {
    progressIntervalMs: o.progressIntervalMs,
    ...(o.recipients ? { recipients: o.recipients } : {}),
    urlFor: (stored) => {
      const { exp, sig } = o.signer.sign(stored.id, o.ttlSeconds);
      return `${base}/api/files/${stored.id}?exp=${exp}&sig=${sig}`;
    },
  };
}

interface FileRef {
  index: number;
  filename: string;
}

/** What happened to the job, as the caller knows it. */
export type JobChange =
  /** Submitted: the uploads it stored (URL sources are not here yet). */
  | { kind: 'submitted'; uploads: FileRef[] }
  /** A worker took its first file. */
  | { kind: 'started' }
  /** A worker fetched a URL source into storage. */
  | { kind: 'source_fetched'; file: FileRef }
  /** A file finished; `output` is the stored result's name when it succeeded. */
  | { kind: 'file_finished'; file: FileRef; output: string | null; jobFinal: boolean }
  /** The job's archive was recorded and the job completed. */
  | { kind: 'archive_done' }
  /** The client cancelled it. */
  | { kind: 'cancelled' };

interface PlannedEvent {
  type: WebhookEventType;
  file?: FileRef;
}

function terminalEvent(job: JobRow): WebhookEventType {
  const ok = job.status === 'completed';
  if (job.tool) return ok ? 'media.tool.completed' : 'media.tool.failed';
  return ok ? 'conversion.completed' : 'conversion.failed';
}

function plan(job: JobRow, change: JobChange): PlannedEvent[] {
  switch (change.kind) {
    case 'submitted':
      return change.uploads.map((file) => ({ type: 'file.uploaded' as const, file }));
    case 'started':
      return job.tool ? [] : [{ type: 'conversion.started' }];
    case 'source_fetched':
      return [{ type: 'file.uploaded', file: change.file }];
    case 'file_finished': {
      const out: PlannedEvent[] = [];
      if (change.output) out.push({ type: 'file.uploaded', file: { index: change.file.index, filename: change.output } });
      if (change.jobFinal) out.push({ type: terminalEvent(job) });
      else if (!job.tool) out.push({ type: 'conversion.progress', file: change.file });
      return out;
    }
    case 'archive_done':
    case 'cancelled':
      return [{ type: terminalEvent(job) }];
    default: {
      const never: never = change;
      throw new Error(`unhandled job change ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Records the events `change` makes, inside `tx` (after the change's own statements). Returns how
 * many deliveries were queued.
 */
export async function recordJobEvents(tx: Queryable, ctx: EventContext, jobId: string, change: JobChange): Promise<number> {
  const job = await getJob(tx, jobId);
  if (!job) return 0;
  let detail: JobDetail | undefined;
  let queued = 0;
  for (const ev of plan(job, change)) {
    if (!(await hasWebhookRecipients(tx, job.apiKeyId, job.id, ev.type))) continue;
    if (ev.type === 'conversion.progress' && ctx.progressIntervalMs > 0) {
      // Concurrent finishers of one job are serialised by its row lock, so this read is consistent.
      const last = await lastWebhookEventAt(tx, job.id, ev.type);
      if (last && Date.now() - last.getTime() < ctx.progressIntervalMs) continue;
    }
    detail ??= await renderJobDetail(tx, job, ctx.urlFor);
    const data = ev.file ? { ...detail, filename: ev.file.filename, fileIndex: ev.file.index } : detail;
    queued += (await insertWebhookEvent(tx, { apiKeyId: job.apiKeyId, jobId: job.id, type: ev.type, data })).deliveries;
  }
  return queued;
}
