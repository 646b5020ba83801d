/**
 * One job's live progress as Server-Sent Events (`GET /api/jobs/:id/events`, and the dashboard's job
 * page). The events and their ids are defined in @kiln/contracts (job-events.ts); this module writes
 * them. Nothing polls: the stream subscribes to the job on the gateway's LISTEN connection
 * (JOB_EVENTS_CHANNEL, sent by triggers on every change of a job or its files, whichever process made
 * it), reads the job's rows when woken, and sends what changed since what it sent last. A reconnect of
 * the LISTEN connection wakes every stream too, so a notification lost meanwhile costs nothing.
 *
 * The frames are written by hand: the format is `event:`, `id:` and `data:` lines and a blank line,
 * and the data is one line of JSON, so there is nothing to escape.
 */
import type { Request, Response } from 'express';
import { AppError, finalFiles, formatEventId, isFinalStatus, jobVersion, parseEventId, type JobEventCursor, type JobEventName, type JobProgressEvent } from '@kiln/contracts';
import type { JobFileWithOutput, JobRow } from '@kiln/db';
import type { GatewayDeps } from './deps.ts';
import { toFileResult, toJobDetail, urlBuilder, type UrlFor } from './job-responses.ts';

export type JobState = { job: JobRow; files: JobFileWithOutput[] };

function progressOf(s: JobState): JobProgressEvent {
  return {
    jobId: s.job.id,
    status: s.job.status,
    progress: s.job.progress,
    totalFiles: s.job.totalFiles,
    completedFiles: s.job.completedFiles,
    failedFiles: s.job.failedFiles,
    files: s.files.map((f) => ({ index: f.idx, status: f.status, progress: isFinalStatus(f.status) ? 100 : f.progress })),
  };
}

/** Open streams by API key, per gateway (its waiter): EVENTS_MAX_STREAMS_PER_KEY. */
const streamsByKey = new WeakMap<object, Map<string, number>>();

/** Takes one of `apiKeyId`'s stream places on this gateway; the answer gives it back (once, however often called). */
function takeStreamPlace(counts: Map<string, number>, apiKeyId: string): () => void {
  counts.set(apiKeyId, (counts.get(apiKeyId) ?? 0) + 1);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    const n = (counts.get(apiKeyId) ?? 1) - 1;
    if (n > 0) counts.set(apiKeyId, n);
    else counts.delete(apiKeyId);
  };
}

/**
 * Streams job `jobId` to `res`. `read` returns the job and its files as the caller may see them
 * (undefined: not found, or not theirs), and is called once before the response starts, so a job that
 * does not exist answers 404 like GET /api/jobs/:id. `apiKeyId`: whose stream it is, counted against
 * EVENTS_MAX_STREAMS_PER_KEY (the dashboard's operator streams are not).
 */
export async function streamJobEvents(
  deps: Pick<GatewayDeps, 'config' | 'pool' | 'signer' | 'storedFiles' | 'waiter' | 'log'>,
  req: Request,
  res: Response,
  jobId: string,
  read: () => Promise<JobState | undefined>,
  apiKeyId?: string,
): Promise<void> {
  const max = deps.config.EVENTS_MAX_STREAMS;
  if (deps.waiter.jobEventSubscribers() >= max)
    throw new AppError(
      'unavailable',
      `This gateway already holds ${max} live event streams, its limit (EVENTS_MAX_STREAMS); retry in a few seconds, or ask the operator to raise EVENTS_MAX_STREAMS.`,
      {
        detail: { limit: 'EVENTS_MAX_STREAMS', max },
        headers: { 'Retry-After': '5' },
      },
    );
  let byKey = streamsByKey.get(deps.waiter);
  if (!byKey) {
    byKey = new Map();
    streamsByKey.set(deps.waiter, byKey);
  }
  const perKey = deps.config.EVENTS_MAX_STREAMS_PER_KEY;
  if (apiKeyId !== undefined && (byKey.get(apiKeyId) ?? 0) >= perKey)
    throw new AppError(
      'rate_limited',
      `This API key already holds ${perKey} live event streams on this gateway, the limit per key (EVENTS_MAX_STREAMS_PER_KEY); close one, retry in a few seconds, or ask the operator to raise EVENTS_MAX_STREAMS_PER_KEY.`,
      {
        detail: { limit: 'EVENTS_MAX_STREAMS_PER_KEY', max: perKey },
        headers: { 'Retry-After': '5' },
      },
    );
  // Counted from here until the stream ends, however it ends (a 404, a failed read, the client leaving).
  const uncount = apiKeyId === undefined ? () => undefined : takeStreamPlace(byKey, apiKeyId);

  let closed = false;
  let dirty = false;
  let reading = false;
  // Until the first pass is done, a notification only marks the stream dirty: that pass reads again.
  let started = false;
  let heartbeat: NodeJS.Timeout | undefined;
  function end(): void {
    if (closed) return;
    closed = true;
    uncount();
    unsubscribe();
    clearInterval(heartbeat);
    res.end();
  }
  // Subscribed before the first read: a change committed while it runs wakes the stream after it.
  const unsubscribe = deps.waiter.onJobEvent(
    jobId,
    () => {
      dirty = true;
      if (started) void pump();
    },
    () => end(),
  );
  let first: JobState | undefined;
  try {
    first = await read();
  } catch (err) {
    uncount();
    unsubscribe();
    throw err;
  }
  if (!first) {
    uncount();
    unsubscribe();
    throw new AppError('not_found', `No job ${jobId}.`);
  }

  if (closed) return; // the gateway began stopping meanwhile (end() uncounted it)
  const urlFor: UrlFor = urlBuilder(deps, req);
  res.on('close', end);
  // The client may have left during the first read: its 'close' came before the listener.
  if (res.closed) return end();

  res.status(200).set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    // nginx buffers proxied responses unless told not to.
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  heartbeat = setInterval(() => {
    if (!closed) res.write(': keep-alive\n\n');
  }, deps.config.EVENTS_HEARTBEAT_SECONDS * 1000);
  heartbeat.unref();

  const send = (event: JobEventName, data: unknown, cursor: JobEventCursor) => {
    if (!closed) res.write(`event: ${event}\nid: ${formatEventId(cursor)}\ndata: ${JSON.stringify(data)}\n\n`);
  };

  /** Sends what `s` shows that `cursor` does not: newly final files, then progress, then the end. */
  let cursor: JobEventCursor;
  const catchUp = async (s: JobState) => {
    for (const f of s.files) {
      const bit = 1n << BigInt(f.idx);
      if (isFinalStatus(f.status) && !(cursor.files & bit)) {
        // The version stays until the progress event: a client cut off between the two still gets it.
        cursor = { version: cursor.version, files: cursor.files | bit };
        send('file', toFileResult(f, urlFor), cursor);
      }
    }
    const version = jobVersion(s.job.status, s.files);
    if (version > cursor.version) {
      cursor = { version, files: cursor.files };
      send('progress', progressOf(s), cursor);
    }
    if (isFinalStatus(s.job.status)) {
      send(s.job.status, await toJobDetail(deps, s.job, urlFor, s.files), cursor);
      end();
    }
  };

  const pump = async () => {
    if (reading || closed) return;
    reading = true;
    try {
      while (dirty && !closed) {
        dirty = false;
        const s = await read();
        if (!s) return end(); // the job is gone (its key deleted): nothing more will come
        await catchUp(s);
      }
    } catch (err) {
      // The next notification, or the LISTEN connection coming back, tries again.
      deps.log.warn('job event stream could not read its job', { jobId, err });
    } finally {
      reading = false;
    }
  };

  const resumed = parseEventId(req.get('last-event-id') ?? (typeof req.query.lastEventId === 'string' ? req.query.lastEventId : undefined));
  reading = true;
  try {
    if (resumed) {
      cursor = resumed;
    } else {
      cursor = { version: jobVersion(first.job.status, first.files), files: finalFiles(first.files) };
      send('snapshot', await toJobDetail(deps, first.job, urlFor, first.files), cursor);
    }
    await catchUp(first);
  } catch (err) {
    // The response has begun: end it, and the client resumes with its last id.
    deps.log.warn('job event stream failed to start', { jobId, err });
    end();
  } finally {
    reading = false;
    started = true;
  }
  if (dirty) void pump();
}
