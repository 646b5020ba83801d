/**
 * The delivery loop both workers run: claim due deliveries from the outbox (a lease, so a worker killed
 * mid-send leaves the row to another once the lease runs out), sign, POST through @kiln/outbound (the
 * SSRF guard: resolve, check every address, connect to the checked one; no redirects followed), and
 * record the answer. A 2xx is delivered; 410 Gone disables the endpoint; anything else (an error
 * status, a timeout, a refused connection) is retried after WEBHOOK_RETRY_BASE_MS, doubling each time,
 * with up to 20 % jitter, until WEBHOOK_RETRY_HOURS have passed.
 *
 * Delivery is at least once: a receiver that answered but whose answer was lost (the worker died)
 * gets the event again, with the same `id`, which receivers deduplicate on.
 */
import { WEBHOOK_EVENT_PREFIX, type WebhookFormat } from '@kiln/contracts';
import type { Logger } from '@kiln/config';
import {
  claimWebhookDeliveries,
  disableWebhookEndpoint,
  nextWebhookDue,
  failOpenDeliveries,
  finishWebhookDelivery,
  getWebhookEndpoint,
  jobWebhookSigner,
  pruneWebhookHistory,
  type ClaimedDelivery,
  type DeliveryOutcome,
  type Pool,
} from '@kiln/db';
import type { KilnMetrics } from '@kiln/metrics';
import { isOutboundError, type Outbound } from '@kiln/outbound';
import { signatureHeaders } from './signatures.ts';

export interface DeliverySettings {
  /** WEBHOOK_CONCURRENCY: deliveries in flight at once in this process (0 = none). */
  concurrency: number;
  /** WEBHOOK_POLL_MS: the longest an idle loop sleeps (new deliveries wake it, due times end its sleep). */
  pollMs: number;
  /** WEBHOOK_RETRY_BASE_MS */
  retryBaseMs: number;
  /** WEBHOOK_RETRY_HOURS */
  retryHours: number;
  /** WEBHOOK_TIMEOUT_SECONDS, in ms. */
  timeoutMs: number;
  /** WEBHOOK_HISTORY_DAYS */
  historyDays: number;
}

export function deliverySettings(c: {
  WEBHOOK_CONCURRENCY: number;
  WEBHOOK_POLL_MS: number;
  WEBHOOK_RETRY_BASE_MS: number;
  WEBHOOK_RETRY_HOURS: number;
  WEBHOOK_TIMEOUT_SECONDS: number;
  WEBHOOK_HISTORY_DAYS: number;
}): DeliverySettings {
  return {
    concurrency: c.WEBHOOK_CONCURRENCY,
    pollMs: c.WEBHOOK_POLL_MS,
    retryBaseMs: c.WEBHOOK_RETRY_BASE_MS,
    retryHours: c.WEBHOOK_RETRY_HOURS,
    timeoutMs: c.WEBHOOK_TIMEOUT_SECONDS * 1000,
    historyDays: c.WEBHOOK_HISTORY_DAYS,
  };
}

export interface DeliveryDeps {
  pool: Pool;
  outbound: Pick<Outbound, 'request'>;
  log: Logger;
  metrics?: Pick<KilnMetrics, 'webhookDeliveries'>;
  settings: DeliverySettings;
}

/** The wait before attempt `attempts + 1`: base · 2^(attempts−1), plus up to 20 % jitter. */
export function retryDelayMs(baseMs: number, attempts: number, random = Math.random): number {
  const exp = baseMs * 2 ** Math.max(0, Math.min(attempts - 1, 30));
  return Math.round(exp * (1 + 0.2 * random()));
}

/** The envelope exactly as sent (the signed bytes): the same on every attempt of one event. */
export function envelopeBody(d: Pick<ClaimedDelivery, 'eventId' | 'eventType' | 'eventCreatedAt' | 'data'>): string {
  return JSON.stringify({ id: WEBHOOK_EVENT_PREFIX + d.eventId, type: d.eventType, created: Math.floor(new Date(d.eventCreatedAt).getTime() / 1000), data: d.data });
}

const PREVIEW_BYTES = 1024;
/** An idle delivery loop's sleep when something is due but was not claimable, or a query failed. */
const RECHECK_MS = 1000;

export interface DeliveryLoop {
  /** Stops claiming; waits (bounded by the request timeout) for deliveries in flight. */
  stop(): Promise<void>;
  /** New deliveries may be due: look now (the recipient cache's WEBHOOK_DELIVERIES_CHANNEL notices, from whichever process queued them). */
  wake: () => void;
}

export function startWebhookDelivery(deps: DeliveryDeps): DeliveryLoop {
  const { settings, log } = deps;
  // The lease outlives one attempt comfortably; a row whose worker died is taken again after it.
  const leaseSeconds = (settings.timeoutMs * 2) / 1000 + 5;
  const inflight = new Set<Promise<void>>();
  let running = settings.concurrency > 0;
  let wake: (() => void) | undefined;
  // A wake-up that came while the loop was not asleep (a claim in flight): the next nap is skipped.
  let poked = false;
  const nap = (ms: number) =>
    new Promise<void>((r) => {
      if (poked) {
        poked = false;
        return r();
      }
      const done = () => {
        clearTimeout(t);
        if (wake === done) wake = undefined;
        r();
      };
      const t = setTimeout(done, ms);
      wake = done;
    });
  const poke = () => {
    if (wake) wake();
    else poked = true;
  };
  /**
   * How long an idle loop sleeps: until the next retry or lease end it knows of, at most pollMs.
   * Deliveries queued meanwhile wake it (poke) — the poll is only a backstop for a lost notice. One
   * due already that the claim did not take (waiting behind an earlier event, or locked by another
   * worker's claim) is looked at again within a second; so is everything after a failed query.
   */
  const idleNap = async (): Promise<void> => {
    const recheck = Math.min(settings.pollMs, RECHECK_MS);
    let ms = recheck;
    try {
      const next = await nextWebhookDue(deps.pool);
      ms = next.dueNow ? recheck : settings.pollMs;
      if (next.at) ms = Math.min(ms, Math.max(10, next.at.getTime() - Date.now()));
    } catch {
      // Postgres is away: the claim's failure is logged; look again soon.
    }
    await nap(ms);
  };

  async function signerFor(d: ClaimedDelivery): Promise<{ format: WebhookFormat; secrets: string[] } | { gone: string }> {
    const now = Date.now();
    if (d.endpointId) {
      const ep = await getWebhookEndpoint(deps.pool, d.endpointId);
      if (!ep) return { gone: 'The endpoint was deleted.' };
      if (ep.disabledAt) return { gone: `The endpoint is disabled: ${ep.disabledReason ?? 'disabled'}` };
      const overlap = ep.previousSecret && ep.previousExpiresAt && ep.previousExpiresAt.getTime() > now;
      return { format: ep.format, secrets: overlap ? [ep.secret, ep.previousSecret!] : [ep.secret] };
    }
    const s = await jobWebhookSigner(deps.pool, d.apiKeyId);
    if (!s) return { gone: 'The API key has no webhook secret: register an endpoint (POST /api/webhooks) or create one with POST /api/webhooks/secret.' };
    const overlap = s.previousSecret && s.previousExpiresAt && s.previousExpiresAt.getTime() > now;
    return { format: s.format, secrets: overlap ? [s.secret, s.previousSecret!] : [s.secret] };
  }

  async function deliver(d: ClaimedDelivery): Promise<void> {
    const dlog = log.child({ deliveryId: d.id, eventId: d.eventId, type: d.eventType, attempt: d.attempts });
    const signer = await signerFor(d);
    if ('gone' in signer) {
      await finishWebhookDelivery(deps.pool, d.id, d.attempts, { status: 'failed', httpStatus: null, preview: null, error: signer.gone });
      deps.metrics?.webhookDeliveries.inc({ outcome: 'failed' });
      return;
    }
    const body = envelopeBody(d);
    const headers = signatureHeaders({
      format: signer.format,
      secrets: signer.secrets,
      eventId: WEBHOOK_EVENT_PREFIX + d.eventId,
      eventType: d.eventType,
      timestamp: Math.floor(Date.now() / 1000),
      body,
    });
    let outcome: DeliveryOutcome;
    let metric: 'delivered' | 'retrying' | 'failed' | 'disabled';
    const retryOrFail = (httpStatus: number | null, preview: string | null, error: string): DeliveryOutcome => {
      const next = Date.now() + retryDelayMs(settings.retryBaseMs, d.attempts);
      if (next > new Date(d.windowStart).getTime() + settings.retryHours * 3600_000) {
        metric = 'failed';
        return { status: 'failed', httpStatus, preview, error: `${error} Gave up after ${d.attempts} attempts (WEBHOOK_RETRY_HOURS=${settings.retryHours}).` };
      }
      metric = 'retrying';
      return { status: 'retry', httpStatus, preview, error, nextAttemptAt: new Date(next) };
    };
    try {
      const res = await deps.outbound.request(d.url, {
        method: 'POST',
        headers,
        body,
        timeoutMs: settings.timeoutMs,
        timeoutSetting: 'WEBHOOK_TIMEOUT_SECONDS',
        previewBytes: PREVIEW_BYTES,
        followRedirects: false,
      });
      if (res.status >= 200 && res.status < 300) {
        metric = 'delivered';
        outcome = { status: 'succeeded', httpStatus: res.status, preview: res.preview };
      } else if (res.status === 410) {
        metric = 'disabled';
        const reason = `The receiver answered 410 Gone at ${new Date().toISOString()}; register the endpoint again to resume.`;
        outcome = { status: 'failed', httpStatus: 410, preview: res.preview, error: reason };
        await finishWebhookDelivery(deps.pool, d.id, d.attempts, outcome);
        if (d.endpointId) await disableWebhookEndpoint(deps.pool, d.endpointId, reason);
        else if (d.jobId) await failOpenDeliveries(deps.pool, { jobId: d.jobId, url: d.url }, reason);
        deps.metrics?.webhookDeliveries.inc({ outcome: metric });
        dlog.warn('webhook receiver answered 410 Gone; no more deliveries to it', { url: d.url });
        return;
      } else {
        outcome = retryOrFail(res.status, res.preview, `The receiver answered HTTP ${res.status}.`);
      }
    } catch (err) {
      if (!isOutboundError(err)) throw err;
      outcome = retryOrFail(null, null, err.message);
    }
    const recorded = await finishWebhookDelivery(deps.pool, d.id, d.attempts, outcome);
    // A lease that ran out while we waited: another worker holds the row now, and records its own.
    if (!recorded) dlog.warn('webhook delivery finished after its lease ran out; the newer attempt is recorded instead');
    deps.metrics?.webhookDeliveries.inc({ outcome: metric! });
    if (outcome.status !== 'succeeded') dlog.info('webhook delivery not accepted', { url: d.url, status: outcome.status, httpStatus: outcome.httpStatus, error: outcome.error });
  }

  // Old history goes now and then (any worker may do it; a DELETE of the same rows twice is harmless).
  const PRUNE_EVERY_MS = 10 * 60_000;
  let nextPrune = Date.now() + 60_000;
  const prune = () => {
    nextPrune = Date.now() + PRUNE_EVERY_MS;
    pruneWebhookHistory(deps.pool, settings.historyDays).catch((err) => log.warn('webhook history prune failed', { err }));
  };

  const loop = (async () => {
    while (running) {
      if (Date.now() >= nextPrune) prune();
      const free = settings.concurrency - inflight.size;
      if (free <= 0) {
        await Promise.race([...inflight, nap(settings.pollMs)]);
        continue;
      }
      let claimed: ClaimedDelivery[] = [];
      try {
        claimed = await claimWebhookDeliveries(deps.pool, free, leaseSeconds);
      } catch (err) {
        if (!running) break;
        log.warn('webhook claim failed; trying again', { err });
      }
      for (const d of claimed) {
        const p = deliver(d)
          .catch((err) => log.error('webhook delivery error; it is retried when its lease runs out', { err, deliveryId: d.id }))
          .finally(() => {
            inflight.delete(p);
            poke();
          });
        inflight.add(p);
      }
      if (claimed.length < free) await idleNap();
    }
  })();

  return {
    wake: poke,
    async stop() {
      running = false;
      poke();
      await loop;
      // Bounded: each request has its own timeout.
      await Promise.allSettled([...inflight]);
    },
  };
}
