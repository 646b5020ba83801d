/** Moving a file to the queue of its class of work once its kind is known (see file-queues.ts). */
import { workClassOfQueue, type FileQueueName } from '@kiln/contracts';
import type { QueueName } from '@kiln/queue';

/**
 * Whether a message that came from `from` should be sent on to `home` (its class's queue, now that
 * the file's kind is known) rather than converted here. Messages from a legacy single queue run where
 * they are. The file stays 'processing', which the next claim takes: the move costs no retry.
 */
export function belongsElsewhere(from: QueueName, home: FileQueueName): boolean {
  return from !== home && workClassOfQueue(from) !== undefined;
}
