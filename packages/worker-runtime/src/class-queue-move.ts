/** Moving a file to the queue of its class of work once its kind is known (see file-queues.ts). */
import { workClassOfQueue, type FileQueueName, type FileTaskPayload } from '@kiln/contracts';
import type { Queue, QueueName } from '@kiln/queue';

/**
 * Sends a file on to `home` (its class's queue, now that its kind is known) when the message came
 * from another class's queue. Messages from a legacy single queue run where they are. The file stays
 * claimed ('processing'), which the next claim takes: the move costs no retry.
 */
export async function movedToClassQueue(queue: Pick<Queue, 'send'>, from: QueueName, home: FileQueueName, payload: FileTaskPayload): Promise<boolean> {
  if (from === home || !workClassOfQueue(from)) return false;
  await queue.send(home, { jobId: payload.jobId, fileId: payload.fileId });
  return true;
}
