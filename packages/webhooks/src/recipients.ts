/**
 * Which API keys have webhook endpoints, and for which event types, kept in every process that
 * records job changes (gateway and workers), so a change nobody would hear of costs no query and no
 * transaction: most jobs of most installations have no endpoint and no webhookUrl.
 *
 * The set is loaded whole (one row per key with an endpoint) and reloaded on every NOTIFY from the
 * trigger on webhook_endpoints (migrations/0014), whoever made the change. It only ever answers "no
 * recipient" when it is sure: while the LISTEN connection is down, before the first load, and from
 * a change notice until the reload after it has finished, the answer is "maybe", and the caller does
 * what it always did (the check inside the change's transaction, recordJobEvents). An endpoint
 * therefore receives the events of job changes made after its creation reached the processes — the
 * NOTIFY's delivery, milliseconds — as a check inside each change's transaction, which cannot see an
 * endpoint committed after its snapshot either, would.
 *
 * In a worker the same LISTEN connection also carries the delivery outbox's notices
 * (WEBHOOK_DELIVERIES_CHANNEL, `deliveries`): one connection per process for both, not two.
 */
import { WEBHOOK_DELIVERIES_CHANNEL, WEBHOOK_ENDPOINTS_CHANNEL } from '@kiln/contracts';
import { activeEndpointTypes, listen, type Listener, type Pool } from '@kiln/db';
import type { Logger } from '@kiln/config';

export interface RecipientCache {
  /**
   * False only when certainly nobody would receive an event of `type` (any type when omitted) about
   * a job of `apiKeyId`: no endpoint of the key takes it and the job has no webhookUrl. Unknown key
   * or webhookUrl (undefined) means maybe.
   */
  mayReceive(apiKeyId: string | undefined, jobWebhook: boolean | undefined, type?: string): boolean;
  close(): Promise<void>;
}

/**
 * `deliveries`: called when deliveries were queued (by any process) and when the connection is
 * (again) listening, as notices may have been missed meanwhile.
 */
export async function createRecipientCache(pool: Pool, connectionString: string, log: Logger, o: { deliveries?: () => void } = {}): Promise<RecipientCache> {
  let known: Map<string, Set<string>> | undefined;
  // Bumped by every notice: a load that began before the latest notice is not trusted.
  let generation = 0;
  let listener: Listener | undefined;

  const reload = (): void => {
    const mine = ++generation;
    known = undefined;
    activeEndpointTypes(pool).then(
      (m) => {
        if (mine === generation && listener?.listening() !== false) known = m;
      },
      (err) => log.warn('could not load the webhook endpoints; every job change checks the database until the next notice', { err: String(err) }),
    );
  };

  listener = await listen(
    connectionString,
    {
      channels: o.deliveries ? [WEBHOOK_ENDPOINTS_CHANNEL, WEBHOOK_DELIVERIES_CHANNEL] : [WEBHOOK_ENDPOINTS_CHANNEL],
      applicationName: 'kiln-webhook-recipients',
      warn: (m, f) => log.warn(m, f),
    },
    {
      notice: (channel) => {
        if (channel === WEBHOOK_DELIVERIES_CHANNEL) o.deliveries?.();
        else reload();
      },
      up: () => {
        reload();
        o.deliveries?.();
      },
      down: () => {
        generation++;
        known = undefined;
      },
    },
  );

  return {
    mayReceive(apiKeyId, jobWebhook, type) {
      if (jobWebhook !== false || apiKeyId === undefined || known === undefined || !listener?.listening()) return true;
      const types = known.get(apiKeyId);
      if (!types) return false;
      return type === undefined ? types.size > 0 : types.has(type);
    },
    async close() {
      generation++;
      known = undefined;
      await listener?.close();
    },
  };
}
