/**
 * Two small caches that each save the gateway one query on a hot path.
 *
 * - API keys (auth.ts): a presented key's row, for up to a minute, and only while the gateway's LISTEN
 *   connection is up. A trigger (migrations/0004) notifies every gateway when a key is revoked,
 *   changed or deleted, by anyone, and the whole cache is dropped; it is dropped too when the
 *   connection is lost or remade, so a missed notification cannot keep a revoked key alive.
 * - Stored files (files.routes.ts): the row behind a download link the gateway has just handed out.
 *   A stored file's row never changes once written (its id names one blob); whether the blob still
 *   exists is checked on every download, so a purged result still answers 404.
 */
import { hashKey, type ApiKeyRow, type StoredFileRow } from '@kiln/db';
import type { JobWaiter } from './job-waiter.ts';

/** Insertion-ordered map that forgets its oldest entry past `max`. */
class Bounded<V> {
  readonly #max: number;
  readonly #map = new Map<string, V>();
  constructor(max: number) {
    this.#max = max;
  }
  get(k: string): V | undefined {
    return this.#map.get(k);
  }
  set(k: string, v: V): void {
    this.#map.delete(k);
    this.#map.set(k, v);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value!);
  }
  delete(k: string): void {
    this.#map.delete(k);
  }
  clear(): void {
    this.#map.clear();
  }
}

export class KeyCache {
  readonly #rows: Bounded<{ row: ApiKeyRow; at: number }>;
  readonly #notices: Pick<JobWaiter, 'listening'>;
  readonly #ttlMs: number;
  /** Bumped on every clear: a lookup that started before a change must not store what it read. */
  #generation = 0;

  constructor(notices: Pick<JobWaiter, 'listening' | 'onKeysChanged'>, opts: { ttlMs?: number; max?: number } = {}) {
    this.#notices = notices;
    this.#ttlMs = opts.ttlMs ?? 60_000;
    this.#rows = new Bounded(opts.max ?? 1000);
    notices.onKeysChanged(() => this.clear());
  }

  /** The active key's row, from the cache or `lookup` (which reads the database). */
  async find(key: string, lookup: () => Promise<ApiKeyRow | undefined>): Promise<ApiKeyRow | undefined> {
    const id = hashKey(key).toString('base64');
    const hit = this.#rows.get(id);
    if (hit && this.#notices.listening() && Date.now() - hit.at < this.#ttlMs) return hit.row;
    const generation = this.#generation;
    const row = await lookup();
    // Unknown keys are not remembered: random keys must not be able to fill the cache.
    if (row && generation === this.#generation && this.#notices.listening()) this.#rows.set(id, { row, at: Date.now() });
    else this.#rows.delete(id);
    return row;
  }

  clear(): void {
    this.#generation++;
    this.#rows.clear();
  }
}

export class StoredFileCache {
  readonly #rows: Bounded<StoredFileRow>;
  constructor(max = 10_000) {
    this.#rows = new Bounded(max);
  }
  get(id: string): StoredFileRow | undefined {
    return this.#rows.get(id);
  }
  remember(row: StoredFileRow): void {
    this.#rows.set(row.id, row);
  }
}
