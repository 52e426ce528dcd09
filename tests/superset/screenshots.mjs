// Screenshots of Superset dashboards, as a member's user sees them, with Debian's Chromium
// driven by playwright-core (no browser download). Run by tests/superset/test_screenshots.py:
//
//   node tests/superset/screenshots.mjs '{"base": "http://127.0.0.1:8088", "username": "...",
//     "password": "...", "codes": ["..."], "outDir": "tests/superset/artefacts",
//     "dashboards": ["alpha-water"]}'
//
// `username` and `password` are the person's platform account (people sign in to Superset
// through the platform's console); `codes`, recovery codes for an account with a second
// factor. The password may instead come from the SCREENSHOT_PASSWORD environment variable.
// For each dashboard it waits until every chart has drawn something (a canvas, an SVG, a
// table or a big number) or shown an error, takes a full-page PNG, and prints one JSON
// line per dashboard: its charts, which rendered, which failed or came back empty, and
// every request that tried to leave the machine with how it ended (the
// Content-Security-Policy must have refused it). Exit code 0 when all went well.
// Every answer of Superset's chart data API (POST /api/v1/chart/data, the queries the
// dashboard runs) is reported too, per chart id: its HTTP status and the rows it returned.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const options = JSON.parse(process.argv[2]);
const password = options.password ?? process.env.SCREENSHOT_PASSWORD;
const timeoutMs = options.timeoutMs ?? 90000;
mkdirSync(options.outDir, { recursive: true });

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, locale: 'fr-FR' });
const page = await context.newPage();

const loopback = (url) => {
  const { protocol, hostname } = new URL(url);
  return !protocol.startsWith('http') || ['127.0.0.1', 'localhost', '[::1]'].includes(hostname);
};
let outside = [];
page.on('requestfailed', (request) => {
  if (!loopback(request.url())) outside.push({ url: request.url(), ended: request.failure()?.errorText ?? 'failed' });
});
page.on('requestfinished', (request) => {
  if (!loopback(request.url())) outside.push({ url: request.url(), ended: 'answered' });
});
let queries = [];
page.on('response', async (response) => {
  const request = response.request();
  if (request.method() !== 'POST' || !new URL(response.url()).pathname.startsWith('/api/v1/chart/data')) return;
  const entry = { status: response.status(), rows: null, chart: null };
  try {
    const body = request.postDataJSON();
    entry.chart = body?.form_data?.slice_id ?? null;
  } catch { /* not JSON: left as null */ }
  try {
    const answer = await response.json();
    entry.rows = (answer.result ?? []).reduce((n, r) => n + (r.rowcount ?? r.data?.length ?? 0), 0);
    entry.error = (answer.result ?? []).map((r) => r.error).filter(Boolean).join('; ') || undefined;
  } catch { entry.error = 'no JSON answer'; }
  queries.push(entry);
});

// Sign in as a person would: Superset's login sends the browser to the platform's
// console, whose form (and second factor, a recovery code from options.codes) signs the
// person in there; the platform then sends the browser back to Superset with a code.
// Superset's pages log events in the background; an answer to one of those that arrives
// after the sign-in's own can replace the new session cookie with an anonymous one, so
// check who we are, and retry.
const loggedIn = async () => (await page.request.get(`${options.base}/api/v1/me/`)).ok();
const codes = [...(options.codes ?? [])];
const onSuperset = (url) => url.origin === new URL(options.base).origin
  && !url.pathname.startsWith('/login') && !url.pathname.startsWith('/oauth-authorized');
// On a busy machine an answer can take long, or the click can land before the page is
// ready: such an attempt is retried, and the last one's page text is part of the error.
for (let attempt = 1; ; attempt++) {
  let why = '';
  try {
    await page.goto(`${options.base}/login/`);
    await page.waitForLoadState('networkidle');
    if (new URL(page.url()).pathname === '/console/login') {
      await page.fill('#email', options.username);
      await page.fill('#password', password);
      await Promise.all([page.waitForURL((url) => url.pathname !== '/console/login', { timeout: 60000 }),
        page.click('#login-form button[type="submit"]')]);
    }
    if (new URL(page.url()).pathname === '/console/login/code') {
      await page.fill('#code', codes.shift() ?? '');
      await page.click('#code-form button[type="submit"]');
    }
    await page.waitForURL(onSuperset, { timeout: 60000 });
    await page.waitForLoadState('networkidle');
    if (await loggedIn()) break;
    why = 'signed out again after the sign-in';
  } catch (error) {
    why = `${error.name}: ${error.message.split('\n')[0]}`;
  }
  if (attempt === 3) {
    const text = (await page.textContent('body').catch(() => ''))?.replace(/\s+/g, ' ').slice(0, 500);
    throw new Error(`could not sign in as ${options.username} (${why}); page at ${page.url()}: ${text}`);
  }
  console.error(`sign-in attempt ${attempt} as ${options.username} failed (${why}), trying again`);
}

// What each chart holder shows: drawn, error, empty, or still loading.
const chartStates = () => page.$$eval('[data-test="chart-grid-component"]', (holders) => holders.map((holder) => {
  const title = holder.querySelector('[data-test="editable-title"]')?.textContent?.trim() ?? '?';
  const text = holder.textContent ?? '';
  if (holder.querySelector('[role="alert"], .ant-alert-error, [data-test="error-tooltip"]')
      || /Erreur|Error|Unexpected error/.test(text)) return { title, state: 'error', text: text.slice(0, 300) };
  if (/Aucun résultat|No results|Aucune donnée|No data/.test(text)) return { title, state: 'empty', text: text.slice(0, 300) };
  if (holder.querySelector('.loading, [data-test="loading-indicator"]')) return { title, state: 'loading' };
  const drawn = holder.querySelector('canvas, svg.main-svg, table tbody tr, .header-line, [data-test="big-number-header"]');
  return { title, state: drawn ? 'rendered' : 'loading' };
}));

let failed = false;
for (const slug of options.dashboards) {
  outside = [];
  queries = [];
  const result = { dashboard: slug, file: join(options.outDir, `${slug}.png`) };
  // The window as tall as the dashboard, so that the picture needs no resize (a resize
  // makes Superset lay the charts out again, blank for a moment).
  const fitWindow = async () => {
    const height = await page.evaluate(() => document.documentElement.scrollHeight);
    const size = page.viewportSize();
    if (height > size.height) await page.setViewportSize({ width: size.width, height });
  };
  let states = [];
  // A JavaScript chunk of Superset's own that failed to load on a busy machine is the
  // browser's hiccup, not the dashboard's answer: such a page is loaded once more.
  for (let attempt = 1; ; attempt += 1) {
    outside = [];
    queries = [];
    const response = await page.goto(`${options.base}/superset/dashboard/${slug}/`);
    result.status = response?.status();
    if (result.status === 200) {
      await page.waitForSelector('[data-test="grid-container"]', { timeout: 20000 }).catch(() => null);
    }
    await fitWindow();
    const started = Date.now();
    states = [];
    for (;;) {
      states = await chartStates();
      const settled = states.length > 0 && states.every((s) => s.state !== 'loading');
      // Refused, or sent elsewhere (the login page, the list of dashboards): nothing to wait for.
      const elsewhere = result.status !== 200
        || !new URL(page.url()).pathname.startsWith('/superset/dashboard/');
      const blank = states.length === 0 && Date.now() - started > 20000;
      if (settled || elsewhere || blank || Date.now() - started > timeoutMs) break;
      await page.waitForTimeout(500);
    }
    const chunkFailed = await page.evaluate(
      () => /ChunkLoadError|Loading chunk [\w-]+ failed/.test(document.body.innerText)).catch(() => false);
    if (!chunkFailed || attempt >= 2) break;
    result.reloaded = true;
  }
  result.url = page.url();
  await fitWindow();
  // Let the chart animations finish before the picture.
  await page.waitForTimeout(1500);
  await page.screenshot({ path: result.file, fullPage: true });
  await page.setViewportSize({ width: 1400, height: 1000 });
  result.title = (await page.$eval('[data-test="editable-title-input"]', (e) => e.value).catch(() => null));
  result.charts = states;
  result.outside = outside;
  // Answers still arriving for the last charts.
  await page.waitForLoadState('networkidle').catch(() => null);
  result.queries = queries;
  result.ok = result.status === 200 && states.length > 0 && states.every((s) => s.state === 'rendered')
    && outside.every((o) => o.ended === 'csp');
  failed ||= !result.ok;
  console.log(JSON.stringify(result));
}
await browser.close();
process.exit(failed ? 1 : 0);
