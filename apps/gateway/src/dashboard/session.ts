/**
 * Operator sessions without server-side state: a cookie `v1.<expiry>.<session id>.<HMAC>` and a CSRF
 * token derived from the session id. The HMAC key is derived from the gateway's signing secret *and*
 * ADMIN_PASSWORD, so changing the password signs every operator out. Sign-in forms get their own
 * token, bound to a short-lived pre-session cookie (login CSRF).
 */
import crypto from 'node:crypto';
import type { Request, Response } from 'express';

export const SESSION_COOKIE = 'kiln_session';
export const LOGIN_COOKIE = 'kiln_login';
const COOKIE_PATH = '/dashboard';

export interface Session {
  id: string;
  expiresAt: number;
  csrf: string;
}

export interface SessionCodec {
  issue(now?: number): { cookie: string; session: Session };
  read(cookie: string | undefined, now?: number): Session | undefined;
  loginChallenge(): { cookie: string; token: string };
  checkLogin(cookie: string | undefined, token: unknown): boolean;
}

function safeEqual(a: string, b: string): boolean {
  // Compare digests so neither the content nor the length of the expected value leaks through timing.
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}

/** Constant-time password check (the hash hides the length too). */
export function passwordMatches(given: unknown, expected: string): boolean {
  return typeof given === 'string' && safeEqual(given, expected);
}

export function createSessionCodec(secret: string, password: string, ttlHours: number): SessionCodec {
  const key = crypto.createHmac('sha256', secret).update(`kiln-dashboard-session\0${password}`).digest();
  const mac = (s: string) => crypto.createHmac('sha256', key).update(s).digest('base64url');
  const csrfFor = (id: string) => mac(`csrf.${id}`);
  return {
    issue(now = Date.now()) {
      const id = crypto.randomBytes(18).toString('base64url');
      const expiresAt = Math.floor(now / 1000) + Math.round(ttlHours * 3600);
      const payload = `v1.${expiresAt}.${id}`;
      return { cookie: `${payload}.${mac(payload)}`, session: { id, expiresAt, csrf: csrfFor(id) } };
    },
    read(cookie, now = Date.now()) {
      const m = cookie ? /^v1\.(\d{1,12})\.([\w-]{10,64})\.([\w-]{43})$/.exec(cookie) : null;
      if (!m) return undefined;
      const [, exp, id, sig] = m;
      if (!safeEqual(sig!, mac(`v1.${exp}.${id}`))) return undefined;
      if (Number(exp) * 1000 <= now) return undefined;
      return { id: id!, expiresAt: Number(exp), csrf: csrfFor(id!) };
    },
    loginChallenge() {
      const nonce = crypto.randomBytes(18).toString('base64url');
      return { cookie: `${nonce}.${mac(`login.${nonce}`)}`, token: mac(`login-csrf.${nonce}`) };
    },
    checkLogin(cookie, token) {
      const m = cookie ? /^([\w-]{10,64})\.([\w-]{43})$/.exec(cookie) : null;
      if (!m || typeof token !== 'string') return false;
      const sigOk = safeEqual(m[2]!, mac(`login.${m[1]}`));
      const tokenOk = safeEqual(token, mac(`login-csrf.${m[1]}`));
      return sigOk && tokenOk;
    },
  };
}

export function checkCsrf(session: Session, token: unknown): boolean {
  return typeof token === 'string' && safeEqual(token, session.csrf);
}

export function readCookies(req: Request): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    if (!(k in out)) {
      try {
        out[k] = decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        // A malformed cookie from elsewhere on this host is not ours to fail on.
      }
    }
  }
  return out;
}

export function setCookie(req: Request, res: Response, name: string, value: string, maxAgeSeconds: number, secureHint: boolean): void {
  const secure = req.secure || secureHint;
  res.append('Set-Cookie', `${name}=${value}; Path=${COOKIE_PATH}; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`);
}

export function clearCookie(res: Response, name: string): void {
  res.append('Set-Cookie', `${name}=; Path=${COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict`);
}
