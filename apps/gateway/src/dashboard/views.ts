/** Server-rendered dashboard pages. Every value goes through the escaping `html` tag. */
import { KEY_LIMIT_SPECS, describeKeyLimits, type JobDetail, type KeyLimitName } from '@kiln/contracts';
import type { ApiKeyRow, JobRow } from '@kiln/db';
import { OUTPUT_FORMATS } from '@kiln/formats';
import { html, raw, type Html } from './html.ts';

export type Tab = 'keys' | 'jobs' | 'try' | 'webhooks';

export interface PageOpts {
  title: string;
  tab?: Tab;
  /** Present when signed in: the sign-out form needs it. */
  csrf?: string;
  body: Html;
}

export function layout(o: PageOpts): string {
  const link = (tab: Tab, href: string, label: string) => html`<a href="${href}"${o.tab === tab ? raw(' aria-current="page"') : ''}>${label}</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${o.title} · Kiln</title>
<link rel="stylesheet" href="/dashboard/assets/app.css">
<link rel="icon" href="data:,">
</head>
<body>
<header class="top"><div class="inner">
  <a class="brand" href="/dashboard">Kiln<span>.</span></a>
  ${
    o.csrf
      ? html`<nav aria-label="Dashboard">${link('keys', '/dashboard/keys', 'API keys')}${link('jobs', '/dashboard/jobs', 'Jobs')}${link('try', '/dashboard/try', 'Try it')}${link('webhooks', '/dashboard/webhooks', 'Webhooks')}</nav>
  <form method="post" action="/dashboard/logout"><input type="hidden" name="_csrf" value="${o.csrf}"><button type="submit">Sign out</button></form>`
      : ''
  }
</div></header>
<main>
${o.body}
</main>
<script src="/dashboard/assets/app.js"></script>
</body>
</html>`.value;
}

const when = (d: Date | string | null | undefined) => {
  if (!d) return html`<span class="muted">never</span>`;
  const date = new Date(d);
  return html`<time datetime="${date.toISOString()}">${date.toISOString().replace('T', ' ').slice(0, 16)} UTC</time>`;
};

export const bytes = (n: number | null | undefined) => {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
};

// ---- disabled / sign-in ------------------------------------------------------------------------

export function disabledPage(): string {
  return layout({
    title: 'Dashboard is off',
    body: html`<div class="card login narrow">
  <h1>The dashboard is turned off</h1>
  <p>Kiln's operator dashboard is available only when an admin password is configured. Set
  <code>ADMIN_PASSWORD</code> (at least 8 characters) in the gateway's environment and restart, for example:</p>
  <pre class="cmd">ADMIN_PASSWORD='choose-a-long-password' pnpm start</pre>
  <p class="muted small">Then open <a href="/dashboard">/dashboard</a> and sign in with that password. Until then, manage keys
  with <code>pnpm keys:create &lt;name&gt;</code>, <code>pnpm keys:list</code> and <code>pnpm keys:revoke &lt;id|prefix&gt;</code>.</p>
</div>`,
  });
}

export function loginPage(o: { token: string; error?: string }): string {
  return layout({
    title: 'Sign in',
    body: html`<div class="card login">
  <h1>Sign in</h1>
  ${o.error ? html`<p class="error" role="alert">${o.error}</p>` : ''}
  <form method="post" action="/dashboard/login">
    <input type="hidden" name="_csrf" value="${o.token}">
    <div class="field">
      <label for="password">Admin password <span class="hint">The gateway's ADMIN_PASSWORD.</span></label>
      <input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
    </div>
    <button type="submit">Sign in</button>
  </form>
</div>`,
  });
}

export function errorPage(o: { status: number; message: string; csrf?: string }): string {
  return layout({
    title: `Error ${o.status}`,
    csrf: o.csrf,
    body: html`<h1>Something needs attention</h1><p class="error" role="alert">${o.message}</p><p><a href="/dashboard">Back to the dashboard</a></p>`,
  });
}

// ---- keys --------------------------------------------------------------------------------------

export interface KeysPageData {
  csrf: string;
  keys: (ApiKeyRow & { jobsThisMonth: number })[];
  defaults: Record<KeyLimitName, string>;
  created?: { key: string; row: ApiKeyRow };
  notice?: string;
  error?: string;
  form?: Record<string, string>;
}

export function keysPage(d: KeysPageData): string {
  const active = d.keys.filter((k) => !k.revokedAt);
  const value = (name: string) => d.form?.[name] ?? '';
  const body = html`
<h1>API keys</h1>
${d.notice ? html`<p class="notice" role="status">${d.notice}</p>` : ''}
${
  d.created
    ? html`<section class="card secret" aria-labelledby="new-key-title">
  <h2 id="new-key-title">New key “${d.created.row.name}” — copy it now</h2>
  <p>This is the only time the full key is shown. Kiln keeps only a hash of it; if it is lost, revoke it and create another.</p>
  <div class="keyline"><code id="new-key" data-testid="new-key">${d.created.key}</code>
    <button type="button" class="secondary" data-copy-target="new-key" hidden>Copy</button></div>
  <p class="small muted">Use it as <code>Authorization: Bearer &lt;key&gt;</code> or <code>x-api-key: &lt;key&gt;</code>.</p>
</section>`
    : ''
}

<section class="card" aria-labelledby="create-title">
  <h2 id="create-title">Create a key</h2>
  ${d.error ? html`<p class="error" role="alert">${d.error}</p>` : ''}
  <form method="post" action="/dashboard/keys">
    <input type="hidden" name="_csrf" value="${d.csrf}">
    <div class="grid">
      <div class="wide"><label for="key-name">Name <span class="hint">Who or what uses it, e.g. “website uploads”.</span></label>
        <input id="key-name" name="name" type="text" maxlength="100" required value="${value('name')}"></div>
    </div>
    <fieldset><legend>Limits <span class="hint inline">(leave empty for the server default)</span></legend>
      <div class="grid">
      ${KEY_LIMIT_SPECS.map(
        (s) => html`<div><label for="limit-${s.name}">${s.label} <span class="hint">Default: ${d.defaults[s.name]}</span></label>
        <input id="limit-${s.name}" name="${s.name}" type="text" inputmode="${s.kind === 'formats' ? 'text' : 'decimal'}" value="${value(s.name)}"${s.kind === 'formats' ? raw(' placeholder="png, webp, jpg"') : ''}></div>`,
      )}
      </div>
    </fieldset>
    <button type="submit">Create key</button>
  </form>
</section>

<section class="card" aria-labelledby="list-title">
  <h2 id="list-title">Keys <span class="muted small">${active.length} active, ${d.keys.length - active.length} revoked</span></h2>
  ${
    d.keys.length === 0
      ? html`<p class="muted">No keys yet.</p>`
      : html`<div class="table-wrap"><table class="stack">
    <thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Jobs this month</th><th scope="col">Limits</th><th scope="col">Status</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
    <tbody>${d.keys.map(
      (k) => html`<tr class="${k.revokedAt ? 'revoked' : ''}" data-key-id="${k.id}">
      <td data-label="Name">${k.name}</td>
      <td data-label="Prefix"><code>${k.prefix}…</code></td>
      <td data-label="Created">${when(k.createdAt)}</td>
      <td data-label="Last used">${when(k.lastUsedAt)}</td>
      <td data-label="This month">${k.jobsThisMonth}${k.limits.monthlyJobQuota ? html` <span class="muted">/ ${k.limits.monthlyJobQuota}</span>` : ''}</td>
      <td data-label="Limits" class="small">${describeKeyLimits(k.limits) || html`<span class="muted">server defaults</span>`}</td>
      <td data-label="Status">${k.revokedAt ? html`<span class="badge revoked">revoked</span>` : html`<span class="badge active">active</span>`}</td>
      <td data-label="Actions"><div class="row-actions"><a href="/dashboard/jobs?key=${k.id}" aria-label="Jobs of ${k.name}">Jobs</a>
        ${k.revokedAt ? '' : html`<a class="button secondary" href="/dashboard/keys/${k.id}/revoke" aria-label="Revoke ${k.name} (${k.prefix}…)">Revoke…</a>`}</div></td>
    </tr>`,
    )}</tbody></table></div>`
  }
</section>`;
  return layout({ title: 'API keys', tab: 'keys', csrf: d.csrf, body });
}

export function revokePage(o: { csrf: string; key: ApiKeyRow }): string {
  return layout({
    title: 'Revoke key',
    tab: 'keys',
    csrf: o.csrf,
    body: html`<section class="card narrow">
  <h1>Revoke “${o.key.name}”?</h1>
  <p>Key <code>${o.key.prefix}…</code> will stop working immediately: every request with it gets 401. Its jobs and
  results stay until their retention ends. This cannot be undone.</p>
  <form method="post" action="/dashboard/keys/${o.key.id}/revoke" class="actions">
    <input type="hidden" name="_csrf" value="${o.csrf}">
    <button type="submit" class="danger">Revoke key</button>
    <a class="button secondary" href="/dashboard/keys">Cancel</a>
  </form>
</section>`,
  });
}

// ---- jobs --------------------------------------------------------------------------------------

const STATUSES = ['pending', 'processing', 'completed', 'failed'] as const;

export interface JobsPageData {
  csrf: string;
  jobs: JobRow[];
  total: number;
  keys: ApiKeyRow[];
  filter: { key?: string; status?: string };
  page: number;
  pageSize: number;
}

export function jobsPage(d: JobsPageData): string {
  const names = new Map(d.keys.map((k) => [k.id, k]));
  const q = (page: number) => {
    const p = new URLSearchParams();
    if (d.filter.key) p.set('key', d.filter.key);
    if (d.filter.status) p.set('status', d.filter.status);
    if (page > 1) p.set('page', String(page));
    const s = p.toString();
    return `/dashboard/jobs${s ? `?${s}` : ''}`;
  };
  const pages = Math.max(1, Math.ceil(d.total / d.pageSize));
  const body = html`
<h1>Jobs</h1>
<section class="card">
  <form method="get" action="/dashboard/jobs" class="filters">
    <div><label for="filter-key">Key</label>
      <select id="filter-key" name="key"><option value="">All keys</option>
      ${d.keys.map((k) => html`<option value="${k.id}"${d.filter.key === k.id ? raw(' selected') : ''}>${k.name} (${k.prefix}…)${k.revokedAt ? ' — revoked' : ''}</option>`)}</select></div>
    <div><label for="filter-status">Status</label>
      <select id="filter-status" name="status"><option value="">Any status</option>
      ${STATUSES.map((s) => html`<option value="${s}"${d.filter.status === s ? raw(' selected') : ''}>${s}</option>`)}</select></div>
    <div><button type="submit">Filter</button></div>
  </form>
</section>
<section class="card">
  <h2>${d.total} job${d.total === 1 ? '' : 's'}</h2>
  ${
    d.jobs.length === 0
      ? html`<p class="muted">No jobs match.</p>`
      : html`<div class="table-wrap"><table class="stack" data-live-jobs>
    <thead><tr><th scope="col">Created</th><th scope="col">Key</th><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Progress</th><th scope="col">Files</th><th scope="col">Job</th></tr></thead>
    <tbody>${d.jobs.map((j) => {
      const k = names.get(j.apiKeyId);
      return html`<tr data-job-id="${j.id}" data-status="${j.status}">
      <td data-label="Created">${when(j.createdAt)}</td>
      <td data-label="Key">${k ? html`${k.name} <code class="muted">${k.prefix}…</code>` : j.apiKeyId}</td>
      <td data-label="Type">${j.jobType}${j.dialect === 'turbofiles' ? html` <span class="muted">TurboFiles task</span>` : ''}</td>
      <td data-label="Status"><span class="badge ${j.status}" data-field="status">${j.status}</span></td>
      <td data-label="Progress"><progress max="100" value="${j.progress}" aria-label="Progress of job ${j.id.slice(0, 8)}">${j.progress}%</progress> <span data-field="progress">${j.progress}%</span></td>
      <td data-label="Files" data-field="files">${j.completedFiles} ok, ${j.failedFiles} failed of ${j.totalFiles}</td>
      <td data-label="Job"><a href="/dashboard/jobs/${j.id}"><code>${j.id.slice(0, 8)}</code></a></td>
    </tr>`;
    })}</tbody></table></div>
  <nav class="pager" aria-label="Pages">${d.page > 1 ? html`<a class="button secondary" href="${q(d.page - 1)}">← Newer</a>` : ''}
    <span class="muted">Page ${d.page} of ${pages}</span>${d.page < pages ? html`<a class="button secondary" href="${q(d.page + 1)}">Older →</a>` : ''}</nav>`
  }
</section>`;
  return layout({ title: 'Jobs', tab: 'jobs', csrf: d.csrf, body });
}

export function jobPage(o: { csrf: string; job: JobDetail; key: ApiKeyRow | undefined; notice?: string; dialect?: JobRow['dialect'] }): string {
  const j = o.job;
  const body = html`
<p><a href="/dashboard/jobs">← All jobs</a></p>
<h1>Job <code>${j.jobId.slice(0, 8)}</code></h1>
${o.notice ? html`<p class="notice" role="status">${o.notice}</p>` : ''}
<section class="card" data-live-job="${j.jobId}" data-status="${j.status}">
  <dl class="facts">
    <dt>Status</dt><dd><span class="badge ${j.status}" data-field="status">${j.status}</span>
      <progress max="100" value="${j.progress}" aria-label="Job progress">${j.progress}%</progress> <span data-field="progress">${j.progress}%</span></dd>
    <dt>Files</dt><dd data-field="files">${j.completedFiles} ok, ${j.failedFiles} failed of ${j.totalFiles}</dd>
    <dt>Key</dt><dd>${o.key ? html`${o.key.name} <code>${o.key.prefix}…</code>` : '—'}</dd>
    <dt>Type</dt><dd>${j.jobType}${o.dialect === 'turbofiles' ? html` <span class="muted">(a TurboFiles task: GET /v1/tasks/${j.jobId})</span>` : ''}</dd>
    <dt>Job id</dt><dd><code>${j.jobId}</code></dd>
    <dt>Created</dt><dd>${when(j.createdAt)}</dd>
    <dt>Finished</dt><dd data-field="completedAt">${j.completedAt ? when(j.completedAt) : html`<span class="muted">not yet</span>`}</dd>
    <dt>Results kept until</dt><dd data-field="expiresAt">${j.expiresAt ? when(j.expiresAt) : html`<span class="muted">set when the job ends</span>`}</dd>
    <dt${j.errorMessage ? '' : raw(' hidden')}>Error</dt><dd class="error" data-field="errorMessage"${j.errorMessage ? '' : raw(' hidden')}>${j.errorMessage ?? ''}</dd>
    <dt${j.archive ? '' : raw(' hidden')}>Archive</dt><dd data-field="archive"${j.archive ? '' : raw(' hidden')}>${j.archive ? html`<a href="${j.archive.downloadUrl}" download>${j.archive.filename}</a> (${bytes(j.archive.size)})` : ''}</dd>
  </dl>
</section>
<section class="card">
  <h2>Files</h2>
  <div class="table-wrap"><table class="stack">
    <thead><tr><th scope="col">#</th><th scope="col">File</th><th scope="col">Status</th><th scope="col">Output</th><th scope="col">Size</th><th scope="col">Result</th></tr></thead>
    <tbody>${j.results.map(
      (f) => html`<tr data-file-index="${f.index}">
      <td data-label="#">${f.index}</td>
      <td data-label="File" data-field="filename">${f.filename}</td>
      <td data-label="Status"><span class="badge ${f.status}" data-field="status">${f.status}</span> <span data-field="progress"${f.status === 'processing' ? '' : raw(' hidden')}>${f.progress ?? 0}%</span></td>
      <td data-label="Output" data-field="output">${f.format ?? '—'}${f.width ? html` <span class="muted">${f.width}×${f.height}</span>` : ''}</td>
      <td data-label="Size" data-field="size">${bytes(f.originalSize)} → ${bytes(f.finalSize)}${f.savedPercent ? html` <span class="muted">(−${f.savedPercent}%)</span>` : ''}</td>
      <td data-label="Result" data-field="result">${f.downloadUrl ? html`<a href="${f.downloadUrl}" download>Download</a>` : ''}${f.error ? html`<span class="badge failed">${f.error.code}</span> ${f.error.message}` : ''}</td>
    </tr>`,
    )}</tbody></table></div>
  <p class="small muted">This page follows the job live. Download links are signed and expire; reload the page for fresh ones.</p>
</section>`;
  return layout({ title: `Job ${j.jobId.slice(0, 8)}`, tab: 'jobs', csrf: o.csrf, body });
}

// ---- try it ------------------------------------------------------------------------------------

export function tryPage(o: { csrf: string; keys: ApiKeyRow[]; selectedKey?: string; base: string; error?: string }): string {
  const active = o.keys.filter((k) => !k.revokedAt);
  const selected = active.find((k) => k.id === o.selectedKey) ?? active[0];
  const curl = `KEY=${selected?.prefix ?? 'kiln_'}…   # the full key, shown once when it was created\ncurl -H "Authorization: Bearer $KEY" -F files=@photo.png -F format=webp \\\n     ${o.base}/api/jobs`;
  const body = html`
<h1>Try it</h1>
<section class="card">
  <p>Upload a file and convert it as one of your keys: the job counts against that key's limits and shows up under
  <a href="/dashboard/jobs">Jobs</a>. The command below does the same from a terminal.</p>
  ${o.error ? html`<p class="error" role="alert">${o.error}</p>` : ''}
  ${
    active.length === 0
      ? html`<p class="error">There is no active key. <a href="/dashboard/keys">Create one</a> first.</p>`
      : html`
  <form method="post" action="/dashboard/try?key=${selected!.id}" enctype="multipart/form-data" data-try data-base="${o.base}">
    <input type="hidden" name="_csrf" value="${o.csrf}">
    <div class="grid">
      <div><label for="try-key">Key</label>
        <select id="try-key" name="key">${active.map((k) => html`<option value="${k.id}" data-prefix="${k.prefix}"${k.id === selected!.id ? raw(' selected') : ''}>${k.name} (${k.prefix}…)</option>`)}</select></div>
      <div><label for="try-format">Convert to</label>
        <select id="try-format" name="format">${OUTPUT_FORMATS.filter((f) => f !== 'rar').map((f) => html`<option value="${f}"${f === 'webp' ? raw(' selected') : ''}>${f}</option>`)}</select></div>
      <div class="wide"><label for="try-file">File</label>
        <input id="try-file" name="files" type="file" required></div>
    </div>
    <button type="submit">Convert</button>
  </form>`
  }
</section>
<section class="card" aria-labelledby="curl-title">
  <h2 id="curl-title">The same with curl</h2>
  <pre class="cmd" id="curl">${curl}</pre>
  <button type="button" class="secondary" data-copy-target="curl" hidden>Copy command</button>
</section>`;
  return layout({ title: 'Try it', tab: 'try', csrf: o.csrf, body });
}
