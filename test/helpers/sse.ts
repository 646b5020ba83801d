/**
 * Reads a Server-Sent Events stream the way a client does (eventsource-parser over fetch), keeping
 * every event for the test to look at.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { until } from './kiln.ts';

export interface SseEvent {
  event: string;
  id: string | undefined;
  data: unknown;
}

export interface SseStream {
  status: number;
  headers: Headers;
  events: SseEvent[];
  /** Resolves once the server has closed the stream. */
  ended: Promise<void>;
  /** Waits for an event matching `pred` (seen already, or arriving) within `timeoutMs`. */
  next: (what: string, pred: (e: SseEvent) => boolean, timeoutMs?: number) => Promise<SseEvent>;
  close: () => void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: ac.signal });
  const events: SseEvent[] = [];
  const parser = createParser({
    onEvent: (m: EventSourceMessage) => events.push({ event: m.event ?? 'message', id: m.id, data: JSON.parse(m.data) }),
  });
  let failure: Error | undefined;
  let done = false;
  const ended = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    } catch (err) {
      if (!ac.signal.aborted) failure = err as Error;
    } finally {
      done = true;
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    events,
    ended: ended.then(() => {
      if (failure) throw failure;
    }),
    next: (what, pred, timeoutMs = 60_000) =>
      until(
        what,
        async () => {
          const found = events.find(pred);
          if (found) return found;
          // A stream that broke or ended cannot bring the event any more: say so at once.
          if (done)
            throw Object.assign(
              new Error(`the stream ${failure ? `broke (${String(failure)}; cause: ${String(failure.cause)})` : 'ended'} after ${JSON.stringify(events.map((e) => e.event))}`),
              { final: true },
            );
          return undefined;
        },
        timeoutMs,
        20,
      ),
    close: () => ac.abort(),
  };
}
