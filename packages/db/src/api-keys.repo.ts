import crypto from 'node:crypto';
import { isUuid, type KeyLimits } from '@kiln/contracts';
import { named, type Queryable } from './pool.ts';

export interface ApiKeyRow {
  id: string;
  name: string;
  prefix: string;
  /** As parseKeyLimits produced them (the dashboard, the CLI); unset means the server default. */
  limits: KeyLimits;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export const KEY_PREFIX = 'kiln_';

export function hashKey(key: string): Buffer {
  return crypto.createHash('sha256').update(key, 'utf8').digest();
}

/** `kiln_` + 43 URL-safe characters (32 random bytes). */
export function generateKey(): string {
  return KEY_PREFIX + crypto.randomBytes(32).toString('base64url');
}

/** What the dashboard and CLI show instead of the key: enough to recognise it, useless to use it. */
export function displayPrefix(key: string): string {
  return key.slice(0, KEY_PREFIX.length + 6);
}

const COLS = `id, name, prefix, limits, created_at AS "createdAt", last_used_at AS "lastUsedAt", revoked_at AS "revokedAt"`;

export async function createApiKey(db: Queryable, name: string, limits: KeyLimits = {}, key = generateKey()): Promise<{ row: ApiKeyRow; key: string }> {
  const r = await db.query<ApiKeyRow>(`INSERT INTO api_keys (name, prefix, key_hash, limits) VALUES ($1, $2, $3, $4) RETURNING ${COLS}`, [
    name,
    displayPrefix(key),
    hashKey(key),
    JSON.stringify(limits),
  ]);
  return { row: r.rows[0]!, key };
}

/** Makes sure a given key exists (BOOTSTRAP_API_KEY). Returns true when it was created now. */
export async function ensureApiKey(db: Queryable, key: string, name = 'bootstrap'): Promise<boolean> {
  const r = await db.query(`INSERT INTO api_keys (name, prefix, key_hash) VALUES ($1, $2, $3) ON CONFLICT (key_hash) DO NOTHING RETURNING id`, [
    name,
    displayPrefix(key),
    hashKey(key),
  ]);
  return (r.rowCount ?? 0) > 0;
}

export async function countApiKeys(db: Queryable): Promise<number> {
  const r = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys');
  return r.rows[0]!.n;
}

/**
 * Looks a presented key up by its hash. The index lookup is on the hash, not the secret, and the
 * final comparison is constant-time, so timing says nothing about how much of a key was right.
 */
export async function findActiveKey(db: Queryable, key: string): Promise<ApiKeyRow | undefined> {
  const h = hashKey(key);
  const r = await db.query<ApiKeyRow & { key_hash: Buffer }>(named('key_by_hash', `SELECT ${COLS}, key_hash FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`, [h]));
  const row = r.rows[0];
  if (!row || !crypto.timingSafeEqual(row.key_hash, h)) return undefined;
  const { key_hash: _omit, ...rest } = row;
  return rest;
}

export async function touchApiKey(db: Queryable, id: string): Promise<void> {
  await db.query(`UPDATE api_keys SET last_used_at = now() WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '30 seconds')`, [id]);
}

export async function listApiKeys(db: Queryable): Promise<(ApiKeyRow & { jobsThisMonth: number })[]> {
  const r = await db.query<ApiKeyRow & { jobsThisMonth: number }>(
    `SELECT ${COLS.split(', ')
      .map((c) => 'k.' + c)
      .join(', ')},
            (SELECT count(*)::int FROM jobs j WHERE j.api_key_id = k.id AND j.created_at >= date_trunc('month', now())) AS "jobsThisMonth"
       FROM api_keys k ORDER BY k.created_at DESC`,
  );
  return r.rows;
}

/** Revokes by id or by display prefix. Returns the revoked rows (none when nothing matched). */
export async function revokeApiKey(db: Queryable, idOrPrefix: string): Promise<ApiKeyRow[]> {
  const r = await db.query<ApiKeyRow>(`UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL AND ${isUuid(idOrPrefix) ? 'id = $1' : 'prefix = $1'} RETURNING ${COLS}`, [
    idOrPrefix,
  ]);
  return r.rows;
}

export async function getApiKey(db: Queryable, id: string): Promise<ApiKeyRow | undefined> {
  if (!isUuid(id)) return undefined;
  const r = await db.query<ApiKeyRow>(`SELECT ${COLS} FROM api_keys WHERE id = $1`, [id]);
  return r.rows[0];
}

export interface KeyUsage {
  /** Jobs of this key still pending or processing. */
  activeJobs: number;
  /** Jobs this key created since the start of the current calendar month (database time zone). */
  jobsThisMonth: number;
  /** When the monthly count starts again from zero. */
  monthResetsAt: Date;
}

/**
 * What admission checks count. Pass `lock: true` inside the job-creating transaction: it holds the
 * key's row until commit, so two concurrent requests of one key cannot both take the last slot.
 */
export async function keyUsage(db: Queryable, apiKeyId: string, opts: { lock?: boolean } = {}): Promise<KeyUsage> {
  // NO KEY UPDATE: conflicts with itself (admissions of one key queue up) but not with the key-share
  // locks that inserting jobs of this key takes for the foreign key.
  if (opts.lock) await db.query(`SELECT 1 FROM api_keys WHERE id = $1 FOR NO KEY UPDATE`, [apiKeyId]);
  const r = await db.query<KeyUsage>(
    `SELECT count(*) FILTER (WHERE status IN ('pending', 'processing'))::int AS "activeJobs",
            count(*) FILTER (WHERE created_at >= date_trunc('month', now()))::int AS "jobsThisMonth",
            date_trunc('month', now()) + interval '1 month' AS "monthResetsAt"
       FROM jobs WHERE api_key_id = $1 AND (status IN ('pending', 'processing') OR created_at >= date_trunc('month', now()))`,
    [apiKeyId],
  );
  return r.rows[0]!;
}
