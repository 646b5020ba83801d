/** Turns anything thrown into `{error, code, detail?}`. A 500 says nothing internal; the cause is logged. */
import type { NextFunction, Request, Response } from 'express';
import { AppError, isAppError } from '@kiln/contracts';
import { isStorageUnavailable } from '@kiln/storage';
import { isDatabaseUnavailable } from '@kiln/db';
import type { Logger } from '@kiln/config';

/** Postgres or the network to it is down or refusing (a TCP refusal, a missing unix socket, a server shutting down): the client should retry, not give up. */
function isUnavailable(err: unknown): boolean {
  return isDatabaseUnavailable(err);
}

/** A full disk (or quota) under the store: the server's problem, and one an operator must fix. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export function storageFull(cause?: unknown): AppError {
  return new AppError('insufficient_storage', 'Kiln has no room left to store this upload; retry later, or ask the operator to free space in its storage (DATA_DIR).', {
    cause,
    detail: { reason: 'storage_full' },
  });
}

/**
 * Anything thrown, as the AppError a client gets: ours as they are, framework and infrastructure
 * failures classified, anything else a 500 whose sentence quotes the request id (the cause is logged
 * to `log`, the request's own logger, which carries the id).
 * Both dialects' error handlers start here and differ only in the body they write.
 */
export function toAppError(err: unknown, req: Request, log: Logger): AppError {
  if (isAppError(err)) return err;
  if (err && typeof err === 'object' && 'type' in err && (err as { type: string }).type === 'entity.parse.failed') {
    return new AppError('invalid_request', 'The request body is not valid JSON.');
  }
  if (err && typeof err === 'object' && 'status' in err && typeof (err as { status: unknown }).status === 'number' && (err as { status: number }).status < 500) {
    return new AppError('invalid_request', (err as { message?: string }).message ?? 'The request could not be read.');
  }
  if (isStorageUnavailable(err)) {
    // Not the client's fault and not ours to hide: say so, and when to come back.
    log.error('storage unavailable', { method: req.method, path: req.path, setting: err.setting, err: err.message });
    return new AppError('unavailable', 'Kiln cannot reach its file storage right now; retry in a few seconds.', {
      headers: { 'Retry-After': '5' },
      detail: { reason: 'storage_unavailable' },
    });
  }
  if (isDiskFull(err)) {
    log.error('storage full', { method: req.method, path: req.path, err });
    return storageFull(err);
  }
  if (isUnavailable(err)) {
    log.error('database unavailable', { method: req.method, path: req.path, err });
    return new AppError('unavailable', 'Kiln cannot reach its database right now; retry in a few seconds.', { headers: { 'Retry-After': '5' } });
  }
  log.error('unhandled error', { method: req.method, path: req.path, err });
  return new AppError('internal_error', `Something went wrong on our side; it has been logged with request id ${req.requestId ?? 'unknown'}.`, {
    detail: { requestId: req.requestId },
  });
}

/** How much of a refused request's unread body is read (and thrown away) before the answer, at most. */
export const REFUSED_BODY_DRAIN_BYTES = 64 * 1024 * 1024;
/** And for how long at most. */
export const REFUSED_BODY_DRAIN_MS = 5000;

/**
 * Reads and discards what is left of a refused request's body (bounded by REFUSED_BODY_DRAIN_BYTES
 * and REFUSED_BODY_DRAIN_MS) before its error is answered, when the connection closes after the
 * answer (the client sent `Connection: close`, or HTTP/1.0). A request refused before its body was
 * read (a bad key or link on an upload, a route that does not exist) would otherwise be answered and
 * its connection closed with the client's bytes still arriving: the server's TCP stack then resets
 * the connection, and the client can lose the answer it had not read yet — it sees ECONNRESET
 * instead of the sentence saying what was wrong. (nginx's "lingering close" solves the same
 * problem.) On a keep-alive connection Node answers at once and reads the rest itself, keeping the
 * connection, which is better for the client: nothing is done then. A body past the bounds is
 * left: that client may still miss the answer.
 */
export function drainUnreadBody(req: Request, res: Response): Promise<void> {
  if (res.shouldKeepAlive || req.complete || req.destroyed || req.readableEnded) return Promise.resolve();
  // Whatever was reading it (a parser, a store's write) has failed: what is left is only to be thrown away.
  req.unpipe();
  return new Promise((resolve) => {
    let seen = 0;
    const done = () => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', done);
      req.off('close', done);
      req.off('error', done);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > REFUSED_BODY_DRAIN_BYTES) done();
    };
    const timer = setTimeout(done, REFUSED_BODY_DRAIN_MS);
    timer.unref();
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.once('error', done);
    req.resume();
  });
}

/** Logs through the request's own logger (request-context.ts), so each line carries its request id. */
export function errorHandler() {
  return async (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toAppError(err, req, req.log);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    await drainUnreadBody(req, res);
    if (e.headers) res.set(e.headers);
    res.status(e.status).json(e.toBody());
  };
}

export async function notFound(req: Request, res: Response) {
  await drainUnreadBody(req, res);
  res.status(404).json(new AppError('not_found', `No route ${req.method} ${req.path}; GET /docs (or GET /openapi.json) lists every route.`).toBody());
}
