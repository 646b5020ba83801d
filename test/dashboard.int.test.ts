/**
 * The operator dashboard in a real browser (Debian's Chromium through playwright-core) against a real
 * gateway and convert worker: sign in, create a key and read it once, use it, follow a job live,
 * "try it", revoke, see the 401. Screenshots of every page (desktop, and phone width for the keys and
 * jobs pages) go to test-output/screenshots/ for review.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { form, startKiln, until, type Kiln } from './helpers/kiln.ts';
import { photo } from './helpers/images.ts';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SHOTS = path.join(ROOT, 'test-output', 'screenshots');
const PASSWORD = 'dashboard-test-password';
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium) console.warn(`dashboard.int.test.ts: skipped because ${CHROMIUM} is missing; install it with \`apt-get install -y chromium\` (CI does).`);
const maybe = hasChromium ? test : test.skip;

let kiln: Kiln;
let browser: Browser;
beforeAll(async () => {
  if (!hasChromium) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  [kiln, browser] = await Promise.all([
    startKiln({ apps: ['gateway', 'convert-worker'], env: { ADMIN_PASSWORD: PASSWORD } }),
    chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    }),
  ]);
}, 90_000);
afterAll(async () => {
  await browser?.close();
  await kiln?.stop();
});

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

maybe(
  'an operator signs in, creates a key and reads it once, uses it, watches a job, tries an upload, revokes the key and it gets 401',
  async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // Console errors include CSP violations; the one expected failed load is the wrong-password 401.
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 401/.test(m.text())) errors.push(m.text());
    });

    // Sign in.
    await page.goto(`${kiln.url}/dashboard`);
    expect(new URL(page.url()).pathname).toBe('/dashboard/login');
    await shot(page, 'login-1280');
    await page.getByLabel('Admin password').fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That is not the admin password').waitFor();
    await page.getByLabel('Admin password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/dashboard\/keys$/);

    // Create a key with limits; it is shown once.
    await page.getByLabel('Name').fill('browser key');
    await page.getByLabel(/Requests per minute/).fill('120');
    await page.getByLabel(/Allowed output formats/).fill('webp, jpg');
    await page.getByRole('button', { name: 'Create key' }).click();
    const keyEl = page.getByTestId('new-key');
    await keyEl.waitFor();
    const key = (await keyEl.textContent())!.trim();
    expect(key).toMatch(/^kiln_[\w-]{43}$/);
    expect(new URL(page.url()).search).toBe('');
    await shot(page, 'keys-created-1280');
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();

    // The key works against the API.
    const listed = await fetch(`${kiln.url}/api/jobs`, { headers: { Authorization: `Bearer ${key}` } });
    expect(listed.status).toBe(200);
    expect(listed.headers.get('x-ratelimit-limit')).toBe('120');
    const post = await fetch(`${kiln.url}/api/jobs`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}` },
      body: form([{ data: await photo(640, 480, { format: 'png' }), filename: 'photo.png' }], { format: 'webp' }),
    });
    expect(post.status).toBe(200);
    const { jobId } = (await post.json()) as { jobId: string };

    // Reloading the keys page never shows the key again.
    await page.goto(`${kiln.url}/dashboard/keys`);
    expect(await page.content()).not.toContain(key);
    await shot(page, 'keys-1280');

    // Jobs: the list, then the job page, which follows progress until it completes.
    await page.getByRole('link', { name: 'Jobs', exact: true }).first().click();
    await page.waitForURL(/\/dashboard\/jobs$/);
    await page.locator(`tr[data-job-id="${jobId}"]`).waitFor();
    await page.locator(`tr[data-job-id="${jobId}"][data-status="completed"]`).waitFor({ timeout: 30_000 });
    await shot(page, 'jobs-1280');
    await page.locator(`tr[data-job-id="${jobId}"] a`).click();
    await page.locator('[data-live-job][data-status="completed"]').waitFor({ timeout: 30_000 });
    const download = await page.getByRole('link', { name: 'Download' }).getAttribute('href');
    expect(download).toMatch(/\/api\/files\/[0-9a-f-]{36}\?exp=\d+&sig=/);
    const file = await fetch(download!);
    expect(file.status).toBe(200);
    expect(file.headers.get('content-type')).toBe('image/webp');
    await shot(page, 'job-1280');

    // Try it: upload as the key; the job page follows it to completion.
    await page.getByRole('link', { name: 'Try it' }).click();
    await page.getByLabel('Key').selectOption({ label: `browser key (${key.slice(0, 11)}…)` });
    await page.getByLabel('Convert to').selectOption('jpg');
    await page.getByLabel('File').setInputFiles({ name: 'sunset.png', mimeType: 'image/png', buffer: await photo(300, 200, { format: 'png' }) });
    await until('the curl command to follow the form', async () => /-F files=@sunset\.png -F format=jpg/.test((await page.locator('#curl').textContent()) ?? ''), 5000);
    expect(await page.locator('#curl').textContent()).toContain(`KEY=${key.slice(0, 11)}…`);
    await shot(page, 'try-1280');
    // With no worker the job waits, pending; the page then follows it over its event stream (no
    // reload: a mark left on the window survives) as a worker starts and converts it.
    await kiln.stopApp('convert-worker');
    await page.getByRole('button', { name: 'Convert' }).click();
    await page.waitForURL(/\/dashboard\/jobs\/[0-9a-f-]{36}\?created=1$/);
    await page.locator('[data-live-job][data-status="pending"]').waitFor();
    expect(await page.locator('tr[data-file-index="0"] [data-field=status]').textContent()).toBe('pending');
    await page.evaluate('window.__notReloaded = true');
    await kiln.startApp('convert-worker');
    await page.locator('[data-live-job][data-status="completed"]').waitFor({ timeout: 60_000 });
    expect(await page.evaluate('window.__notReloaded')).toBe(true);
    await shot(page, 'job-live-1280');
    expect(await page.locator('tr[data-file-index="0"]').textContent()).toMatch(/sunset\.jpg[\s\S]*completed[\s\S]*jpg 300×200/);
    expect(await page.locator('[data-live-job] [data-field=progress]').textContent()).toBe('100%');
    expect(await page.locator('[data-live-job] [data-field=completedAt]').textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    const live = await page.getByRole('link', { name: 'Download' }).getAttribute('href');
    const converted = await fetch(live!);
    expect(converted.headers.get('content-type')).toBe('image/jpeg');
    expect(Buffer.from(await converted.arrayBuffer()).subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));

    // Phone width.
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      storageState: await context.storageState(),
    });
    const p2 = await phone.newPage();
    await p2.goto(`${kiln.url}/dashboard/keys`);
    await p2.getByRole('heading', { name: 'API keys' }).waitFor();
    const overflow = await p2.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(p2, 'keys-phone');
    await p2.goto(`${kiln.url}/dashboard/jobs`);
    await shot(p2, 'jobs-phone');
    await p2.goto(`${kiln.url}/dashboard/jobs/${jobId}`);
    await shot(p2, 'job-phone');
    await phone.close();

    // Revoke, with confirmation; the key then gets 401.
    await page.getByRole('link', { name: 'API keys' }).click();
    await page.getByRole('link', { name: `Revoke browser key (${key.slice(0, 11)}…)` }).click();
    await page.getByRole('heading', { name: 'Revoke “browser key”?' }).waitFor();
    await shot(page, 'revoke-1280');
    await page.getByRole('button', { name: 'Revoke key' }).click();
    await page.getByText(/Revoked “browser key”/).waitFor();
    const after = await fetch(`${kiln.url}/api/jobs`, { headers: { Authorization: `Bearer ${key}` } });
    expect(after.status).toBe(401);
    expect(await after.json()).toEqual({ error: 'Invalid API key.', code: 'unauthorized' });

    // Sign out ends the session.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/dashboard\/login$/);
    await page.goto(`${kiln.url}/dashboard/keys`);
    expect(new URL(page.url()).pathname).toBe('/dashboard/login');

    expect(errors).toEqual([]);
    await context.close();
  },
  120_000,
);
