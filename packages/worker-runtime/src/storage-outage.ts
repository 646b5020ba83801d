/**
 * Storage being unreachable is nobody's fault in particular: not the file's, so it must not be
 * recorded as failed, and not the client's. The task goes back in the queue a little later as a
 * fresh message that spends no retry, for at most STORAGE_RETRY_MAX_SECONDS from the moment this
 * task first met the outage; past that it is retried and failed like any other internal error.
 */
import type { Logger } from '@kiln/config';
import type { PayloadOf, Queue, QueueName } from '@kiln/queue';
import type { StorageUnavailableError } from '@kiln/storage';

export async function requeueWhileStorageIsDown<Q extends QueueName>(
  queue: Queue,
  name: Q,
  payload: PayloadOf<Q>,
  err: StorageUnavailableError,
  maxSeconds: number,
  log: Logger,
): Promise<boolean> {
  const since = payload.storageWaitSince ? Date.parse(payload.storageWaitSince) : Date.now();
  const waitedSeconds = Math.max(0, (Date.now() - since) / 1000);
  if (waitedSeconds >= maxSeconds) {
    log.error('storage still unavailable; no longer waiting for it', {
      setting: err.setting,
      waitedSeconds: Math.round(waitedSeconds),
      limit: 'STORAGE_RETRY_MAX_SECONDS',
      reason: err.message,
    });
    return false;
  }
  // Soon at first (a blip), then less often: half the time waited so far, between 2 and 30 s.
  const delay = Math.min(30, Math.max(2, Math.round(waitedSeconds / 2)));
  await queue.send(name, { ...payload, storageWaitSince: new Date(since).toISOString() }, undefined, { startAfterSeconds: delay });
  log.warn('storage unavailable; queued again', { setting: err.setting, retryInSeconds: delay, waitedSeconds: Math.round(waitedSeconds), reason: err.message });
  return true;
}
