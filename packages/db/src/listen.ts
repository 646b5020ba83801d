/**
 * A LISTEN connection that stays up: when it is lost it is remade a second later, and again every
 * second while the database is down, for as long as it takes; `close` ends that. `up` runs each time
 * it is (again) listening — notices sent while it was down were missed, so callers re-check then —
 * and `down` when it is lost. Used by the gateway's job waiter and by every process's webhook
 * recipient cache.
 */
import pg from 'pg';

export interface ListenEvents {
  notice(channel: string, payload: string | undefined): void;
  /** The connection is (again) listening: notices from before it may have been missed. */
  up(): void;
  /** The connection is lost; it is being remade. */
  down(): void;
}

/** A channel name is an identifier Kiln chose (never user input); anything else is refused. */
const CHANNEL = /^[a-z_][a-z0-9_]*$/;

export interface Listener {
  listening(): boolean;
  close(): Promise<void>;
}

export async function listen(
  connectionString: string,
  o: { channels: string[]; applicationName: string; warn: (msg: string, fields: Record<string, unknown>) => void },
  events: ListenEvents,
): Promise<Listener> {
  for (const ch of o.channels) if (!CHANNEL.test(ch)) throw new Error(`not a channel name: ${ch}`);
  let client: pg.Client | undefined;
  let closed = false;

  const reconnect = (): void => {
    setTimeout(
      () =>
        void connect().catch(() => {
          if (!closed) reconnect();
        }),
      1000,
    ).unref();
  };
  const connect = async (): Promise<void> => {
    if (closed) return;
    const c = new pg.Client({ connectionString, application_name: o.applicationName });
    c.on('notification', (n) => events.notice(n.channel, n.payload));
    let lost = false;
    const onLost = (why: string) => {
      if (lost || closed) return;
      lost = true;
      o.warn(`${o.applicationName} lost its connection; reconnecting`, { err: why });
      if (client === c) client = undefined;
      events.down();
      reconnect();
    };
    c.on('error', (err) => onLost(err.message));
    c.on('end', () => onLost('connection ended'));
    try {
      await c.connect();
      await c.query(o.channels.map((ch) => `LISTEN ${ch};`).join(' '));
    } catch (err) {
      lost = true; // the caller retries; this client's own events must not start a second chain
      await c.end().catch(() => undefined);
      throw err;
    }
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    events.up();
  };
  await connect();

  return {
    listening: () => client !== undefined,
    async close() {
      closed = true;
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
