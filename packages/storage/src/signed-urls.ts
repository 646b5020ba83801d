/**
 * Signed download URLs: HMAC-SHA256 over the stored file id and an expiry. They need no API key, so
 * a result can be handed to a browser or another service; they stop working at `exp`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export interface Signer {
  sign(id: string, ttlSeconds: number, now?: number): { exp: number; sig: string };
  verify(id: string, exp: string | undefined, sig: string | undefined, now?: number): 'ok' | 'expired' | 'invalid';
}

export function createSigner(secret: string): Signer {
  const mac = (id: string, exp: number) => crypto.createHmac('sha256', secret).update(`${id}.${exp}`).digest('base64url');
  return {
    sign(id, ttlSeconds, now = Date.now()) {
      const exp = Math.floor(now / 1000) + ttlSeconds;
      return { exp, sig: mac(id, exp) };
    },
    verify(id, expRaw, sig, now = Date.now()) {
      const exp = Number(expRaw);
      if (!expRaw || !sig || !Number.isInteger(exp)) return 'invalid';
      const expected = Buffer.from(mac(id, exp));
      const given = Buffer.from(sig);
      if (expected.length !== given.length || !crypto.timingSafeEqual(expected, given)) return 'invalid';
      return exp * 1000 < now ? 'expired' : 'ok';
    },
  };
}

/** SIGNING_SECRET, or one generated on first start and kept in DATA_DIR so URLs survive restarts. */
export async function loadSigningSecret(configured: string | undefined, dataDir: string): Promise<string> {
  if (configured) return configured;
  const file = path.join(dataDir, 'signing-secret');
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch {
    await fs.mkdir(dataDir, { recursive: true });
    const secret = crypto.randomBytes(32).toString('base64url');
    try {
      await fs.writeFile(file, secret, { mode: 0o600, flag: 'wx' });
      return secret;
    } catch {
      // Another process wrote it first: use theirs.
      return (await fs.readFile(file, 'utf8')).trim();
    }
  }
}
