/**
 * The operator dashboard at /dashboard: API keys (create with limits, shown once; revoke), jobs across
 * keys with live progress, a "try it" upload, and webhook endpoints (webhooks.pages.ts). Server-rendered; the operator's session (signed
 * cookie, see session.ts) is the authentication, every form carries a CSRF token, and nothing secret
 * ever goes into a URL: a new key is shown in the POST response itself, never behind a redirect.
 */
import express, { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { AppError, isAppError, isUuid, parseKeyLimits, type KeyLimitName } from '@kiln/contracts';
import { createApiKey, getApiKey, getJob, getJobFiles, listApiKeys, listJobs, revokeApiKey, type JobStatus } from '@kiln/db';
import type { GatewayDeps } from '../deps.ts';
import { publicBaseUrl, toJobDetail, toSummary, urlBuilder } from '../job-responses.ts';
import { submitMultipart } from '../multipart-intake.ts';
import { streamJobEvents } from '../job-events.ts';
import { countLoginAttempt } from '../key-limits.ts';
import { CSS, JS } from './assets.ts';
import { LOGIN_COOKIE, SESSION_COOKIE, checkCsrf, clearCookie, createSessionCodec, passwordMatches, readCookies, setCookie, type Session, type SessionCodec } from './session.ts';
import { webhookPages } from './webhooks.pages.ts';
import { bytes, disabledPage, errorPage, jobPage, jobsPage, keysPage, loginPage, revokePage, tryPage } from './views.ts';

const STATUSES: readonly JobStatus[] = ['pending', 'processing', 'completed', 'failed'];
const PAGE_SIZE = 25;

const SECURITY_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

declare global {
  namespace Express {
    interface Request {
      dashboardSession?: Session;
    }
  }
}

const str = (v: unknown) => (typeof v === 'string' ? v : '');
const page = (res: Response, status: number, body: string) => res.status(status).type('html').send(body);

/** Signed-in only. Pages redirect to sign-in, form posts and JSON answer 401. POSTs also need the form's CSRF token. */
const signedIn =
  (kind: 'page' | 'json' | 'multipart'): RequestHandler =>
  (req: Request, res: Response, next: NextFunction) => {
    const s = req.dashboardSession;
    if (!s) {
      if (kind === 'json') throw new AppError('unauthorized', 'Sign in to the dashboard first.');
      if (req.method === 'GET') return res.redirect(303, '/dashboard/login');
      return page(res, 401, errorPage({ status: 401, message: 'Your dashboard session has ended; sign in again, then repeat what you were doing.' }));
    }
    // Multipart bodies are checked once they are read (submitMultipart's afterUpload).
    if (req.method === 'POST' && kind === 'page' && !checkCsrf(s, (req.body as Record<string, unknown> | undefined)?._csrf)) {
      return page(res, 403, errorPage({ status: 403, csrf: s.csrf, message: 'This form has expired or did not come from this dashboard; reload the page and try again.' }));
    }
    next();
  };
const sessionOf = (req: Request): Session => req.dashboardSession!;

/** The router: headers and assets, the off switch, the session, then one function per area below. */
export function dashboardRouter(deps: GatewayDeps): Router {
  const r = Router();
  const { config } = deps;
  r.use((_req, res, next) => {
    res.set(SECURITY_HEADERS);
    next();
  });
  r.get('/assets/app.css', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').type('text/css').send(CSS);
  });
  r.get('/assets/app.js', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').type('text/javascript').send(JS);
  });

  const password = config.ADMIN_PASSWORD;
  if (!password) {
    r.use((req, res) => {
      res
        .status(req.method === 'GET' || req.method === 'HEAD' ? 200 : 403)
        .type('html')
        .send(disabledPage());
    });
    return r;
  }

  // A key derived from the download-signing secret (the signer never exposes the secret itself; this
  // id is not a UUID, so the value can never double as a download signature).
  const codec = createSessionCodec(deps.signer.sign('kiln-dashboard-session-key', 0, 0).sig, password, config.DASHBOARD_SESSION_HOURS);
  const secureCookies = config.PUBLIC_URL?.startsWith('https:') ?? false;

  r.use(express.urlencoded({ extended: false, limit: '64kb', parameterLimit: 100 }));
  r.use((req, _res, next) => {
    req.dashboardSession = codec.read(readCookies(req)[SESSION_COOKIE]);
    next();
  });

  r.get('/', (req, res) => {
    res.redirect(303, req.dashboardSession ? '/dashboard/keys' : '/dashboard/login');
  });

  signInPages(r, { deps, codec, password, secureCookies });
  keyPages(r, deps);
  jobPages(r, deps);
  tryPages(r, deps);
  webhookPages(r, deps, { signedIn: () => signedIn('page'), csrfOf: (req) => sessionOf(req).csrf, page });

  r.use((req, res) => {
    page(res, 404, errorPage({ status: 404, message: `There is no dashboard page ${req.path}.`, csrf: req.dashboardSession?.csrf }));
  });

  // Dashboard pages answer errors as pages; the JSON endpoints keep the API's error body.
  r.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (req.path.startsWith('/api/') || res.headersSent) return next(err);
    if (isAppError(err)) return page(res, err.status, errorPage({ status: err.status, message: err.message, csrf: req.dashboardSession?.csrf }));
    req.log.error('dashboard error', { path: req.path, err });
    page(
      res,
      500,
      errorPage({ status: 500, message: `Something went wrong on our side; it has been logged with request id ${req.requestId ?? 'unknown'}.`, csrf: req.dashboardSession?.csrf }),
    );
  });
  return r;
}

interface SignInSetup {
  deps: GatewayDeps;
  codec: SessionCodec;
  password: string;
  secureCookies: boolean;
}

/** Sign-in (password, per-address attempt limit, a CSRF token bound to a login cookie) and sign-out. */
function signInPages(r: Router, { deps, codec, password, secureCookies }: SignInSetup): void {
  const { config, pool } = deps;
  const showLogin = (req: Request, res: Response, status: number, error?: string) => {
    const challenge = codec.loginChallenge();
    setCookie(req, res, LOGIN_COOKIE, challenge.cookie, 3600, secureCookies);
    page(res, status, loginPage({ token: challenge.token, error }));
  };

  r.get('/login', (req, res) => {
    if (req.dashboardSession) return res.redirect(303, '/dashboard/keys');
    showLogin(req, res, 200);
  });

  r.post('/login', async (req, res) => {
    try {
      await countLoginAttempt(pool, req.ip ?? req.socket.remoteAddress ?? 'unknown', config.DASHBOARD_LOGIN_ATTEMPTS_PER_MINUTE);
    } catch (err) {
      if (!isAppError(err)) throw err;
      if (err.headers) res.set(err.headers);
      return showLogin(req, res, err.status, err.message);
    }
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (!codec.checkLogin(readCookies(req)[LOGIN_COOKIE], body._csrf)) {
      return showLogin(req, res, 403, 'The sign-in form expired or did not come from this page; enter the password again.');
    }
    if (!passwordMatches(body.password, password)) {
      req.log.warn('dashboard sign-in failed', { ip: req.ip });
      return showLogin(req, res, 401, 'That is not the admin password (ADMIN_PASSWORD).');
    }
    const { cookie } = codec.issue();
    clearCookie(res, LOGIN_COOKIE);
    setCookie(req, res, SESSION_COOKIE, cookie, Math.round(config.DASHBOARD_SESSION_HOURS * 3600), secureCookies);
    req.log.info('dashboard sign-in', { ip: req.ip });
    res.redirect(303, '/dashboard/keys');
  });

  r.post('/logout', signedIn('page'), (_req, res) => {
    clearCookie(res, SESSION_COOKIE);
    res.redirect(303, '/dashboard/login');
  });
}

/** API keys: the list, creating one with limits (shown once, in the response itself), revoking. */
function keyPages(r: Router, deps: GatewayDeps): void {
  const { config, pool } = deps;
  const limitDefaults = (): Record<KeyLimitName, string> => ({
    requestsPerMinute: config.KEY_DEFAULT_RPM ? String(config.KEY_DEFAULT_RPM) : 'unlimited',
    maxUploadBytes: bytes(config.MAX_UPLOAD_BYTES),
    maxFilesPerJob: String(config.MAX_FILES_PER_JOB),
    maxConcurrentJobs: config.KEY_DEFAULT_MAX_CONCURRENT_JOBS ? String(config.KEY_DEFAULT_MAX_CONCURRENT_JOBS) : 'unlimited',
    allowedFormats: config.KEY_DEFAULT_ALLOWED_FORMATS ?? 'all',
    monthlyJobQuota: config.KEY_DEFAULT_MONTHLY_JOB_QUOTA ? String(config.KEY_DEFAULT_MONTHLY_JOB_QUOTA) : 'unlimited',
    retentionHours: `${config.RETENTION_HOURS} h`,
  });

  r.get('/keys', signedIn('page'), async (req, res) => {
    const keys = await listApiKeys(pool);
    const revoked = str(req.query.revoked);
    const k = revoked ? keys.find((x) => x.id === revoked) : undefined;
    page(
      res,
      200,
      keysPage({ csrf: sessionOf(req).csrf, keys, defaults: limitDefaults(), notice: k ? `Revoked “${k.name}” (${k.prefix}…). Requests with it now get 401.` : undefined }),
    );
  });

  r.post('/keys', signedIn('page'), async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const form: Record<string, string> = {};
    for (const [k, v] of Object.entries(body)) if (typeof v === 'string' && k !== '_csrf') form[k] = v;
    const name = (form.name ?? '').trim();
    const { limits, problems } = parseKeyLimits(form as Partial<Record<KeyLimitName, string>>);
    const errors = [...(name && name.length <= 100 ? [] : ['Name: give the key a name of 1 to 100 characters.']), ...problems.map((p) => p.message)];
    if (errors.length) {
      return page(res, 400, keysPage({ csrf: sessionOf(req).csrf, keys: await listApiKeys(pool), defaults: limitDefaults(), error: errors.join(' '), form }));
    }
    const created = await createApiKey(pool, name, limits);
    req.log.info('API key created from the dashboard', { keyId: created.row.id, prefix: created.row.prefix });
    // The key is in this response only: no redirect, no URL, not cached (Cache-Control: no-store).
    page(res, 201, keysPage({ csrf: sessionOf(req).csrf, keys: await listApiKeys(pool), defaults: limitDefaults(), created }));
  });

  const keyParam = async (req: Request) => {
    const key = await getApiKey(pool, String(req.params.id ?? ''));
    if (!key) throw new AppError('not_found', 'There is no such key; it may have been deleted.');
    return key;
  };

  r.get('/keys/:id/revoke', signedIn('page'), async (req, res) => {
    const key = await keyParam(req);
    if (key.revokedAt) return res.redirect(303, '/dashboard/keys');
    page(res, 200, revokePage({ csrf: sessionOf(req).csrf, key }));
  });

  r.post('/keys/:id/revoke', signedIn('page'), async (req, res) => {
    const key = await keyParam(req);
    await revokeApiKey(pool, key.id);
    // The trigger's NOTIFY clears every gateway's key cache; this one need not wait for it.
    deps.keyCache.clear();
    req.log.info('API key revoked from the dashboard', { keyId: key.id, prefix: key.prefix });
    res.redirect(303, `/dashboard/keys?revoked=${key.id}`);
  });
}

/** Jobs across keys, one job's page, and the JSON the pages poll for live progress. */
function jobPages(r: Router, deps: GatewayDeps): void {
  const { pool } = deps;
  r.get('/jobs', signedIn('page'), async (req, res) => {
    const key = isUuid(req.query.key) ? req.query.key : undefined;
    const status = STATUSES.find((s) => s === str(req.query.status));
    const pageNo = Math.max(1, Math.min(10_000, Number.parseInt(str(req.query.page), 10) || 1));
    const [{ jobs, total }, keys] = await Promise.all([listJobs(pool, { apiKeyId: key, status, limit: PAGE_SIZE, offset: (pageNo - 1) * PAGE_SIZE }), listApiKeys(pool)]);
    page(res, 200, jobsPage({ csrf: sessionOf(req).csrf, jobs, total, keys, filter: { key, status }, page: pageNo, pageSize: PAGE_SIZE }));
  });

  const jobParam = async (req: Request) => {
    const id = String(req.params.id ?? '');
    const job = isUuid(id) ? await getJob(pool, id) : undefined;
    if (!job) throw new AppError('not_found', `No job ${id}.`);
    return job;
  };

  r.get('/jobs/:id', signedIn('page'), async (req, res) => {
    const job = await jobParam(req);
    const [detail, key] = await Promise.all([toJobDetail(deps, job, urlBuilder(deps, req)), getApiKey(pool, job.apiKeyId)]);
    page(
      res,
      200,
      jobPage({ csrf: sessionOf(req).csrf, job: detail, key, dialect: job.dialect, notice: req.query.created ? 'Job created. This page follows its progress.' : undefined }),
    );
  });

  // JSON for the pages' live progress; the session cookie authenticates (same-origin fetch).
  r.get('/api/jobs', signedIn('json'), async (req, res) => {
    const ids = str(req.query.ids).split(',').filter(isUuid).slice(0, 100);
    const jobs = (await Promise.all(ids.map((id) => getJob(pool, id)))).filter((j) => !!j);
    res.json({ jobs: jobs.map(toSummary) });
  });

  // The job page's live progress (EventSource; the session cookie authenticates).
  r.get('/jobs/:id/events', signedIn('json'), async (req, res) => {
    const job = await jobParam(req);
    await streamJobEvents(deps, req, res, job.id, async () => {
      const j = await getJob(pool, job.id);
      return j && { job: j, files: await getJobFiles(pool, job.id) };
    });
  });

  r.get('/api/jobs/:id', signedIn('json'), async (req, res) => {
    const job = await jobParam(req);
    res.json(await toJobDetail(deps, job, urlBuilder(deps, req)));
  });
}

/** "Try it": an upload from the dashboard, run as a chosen key. */
function tryPages(r: Router, deps: GatewayDeps): void {
  const { config, pool } = deps;
  r.get('/try', signedIn('page'), async (req, res) => {
    page(res, 200, tryPage({ csrf: sessionOf(req).csrf, keys: await listApiKeys(pool), selectedKey: str(req.query.key), base: publicBaseUrl(config, req) }));
  });

  // The operator's session is the authentication; the job is created under (and limited as) the chosen key.
  r.post('/try', signedIn('multipart'), async (req, res) => {
    const session = sessionOf(req);
    const keyId = str(req.query.key);
    const renderError = async (status: number, message: string) =>
      page(res, status, tryPage({ csrf: session.csrf, keys: await listApiKeys(pool), selectedKey: keyId, base: publicBaseUrl(config, req), error: message }));
    const key = await getApiKey(pool, keyId);
    if (!key || key.revokedAt) return renderError(400, 'Choose an active key to run the job as.');
    try {
      const created = await submitMultipart(deps, req, res, key, {
        afterUpload: (body) => {
          if (!checkCsrf(session, body._csrf)) throw new AppError('forbidden', 'This form has expired or did not come from this dashboard; reload the page and try again.');
          if (body.key !== undefined && body.key !== key.id)
            throw new AppError('invalid_field', 'The key was changed without JavaScript; reload the page with the key you want and upload again.');
        },
      });
      res.redirect(303, `/dashboard/jobs/${created.jobId}?created=1`);
    } catch (err) {
      if (!isAppError(err) || res.headersSent) throw err;
      if (err.headers?.['Retry-After']) res.set('Retry-After', err.headers['Retry-After']);
      await renderError(err.status, err.message);
    }
  });
}
