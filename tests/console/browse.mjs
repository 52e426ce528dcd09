// The console in Debian's Chromium, driven by playwright-core (no browser download).
// Run by tests/console/test_browser.py:
//
//   node tests/console/browse.mjs '<JSON plan>'
//
// The plan: {base, outDir, password, visits: [{persona, email, keyboard?, pages: [{path,
// screenshot?, images?}]}], lifecycle: {email, alert}, export: {email, slug, searches: [{q, device}],
// devices, start, end}}.
// Signs each persona in through the login form (one by keyboard only), opens each page,
// runs axe-core on it (WCAG 2.1 A and AA rules; axe is evaluated from the test, the console
// never serves it), records every request the page made (any not to the console's own
// origin is reported) and every Content-Security-Policy complaint, and takes the asked
// screenshots. Then clicks an alert through its life cycle and downloads an export of devices
// found with the form's search.
// Prints one JSON object on its last line; exits 0 unless the script itself failed.
import { chromium } from 'playwright-core';
import { launchChromium } from '../browser.mjs';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const plan = JSON.parse(process.argv[2]);
const here = dirname(fileURLToPath(import.meta.url));
const axeSource = readFileSync(join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
mkdirSync(plan.outDir, { recursive: true });
const origin = new URL(plan.base).origin;

const browser = await launchChromium(chromium);
const result = { pages: [], outside: [], csp: [], lifecycle: null, export: null, keyboard: null };

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'fr-FR', acceptDownloads: true });
  const page = await context.newPage();
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith('blob:') && !url.startsWith('data:') && new URL(url).origin !== origin) {
      result.outside.push(url);
    }
  });
  page.on('console', (message) => {
    if (/Content.Security.Policy/i.test(message.text())) result.csp.push({ url: page.url(), text: message.text() });
  });
  return { context, page };
}

// An account with a second factor is asked for it after the password: one of its
// recovery codes, given by the test in plan.codes (each works once).
async function secondFactor(page, email) {
  if (!new URL(page.url()).pathname.endsWith('/login/code')) return;
  const code = plan.codes?.[email]?.shift();
  if (!code) throw new Error(`no second-factor code for ${email}`);
  await page.fill('#code', code);
  await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/console/login')), page.click('#code-form button[type="submit"]')]);
}

async function signIn(page, email, keyboard) {
  await page.goto(`${plan.base}/console/login`);
  if (!keyboard) {
    await page.fill('#email', email);
    await page.fill('#password', plan.password);
    await Promise.all([page.waitForURL((url) => !url.pathname.endsWith('/login')), page.click('#login-form button[type="submit"]')]);
    await secondFactor(page, email);
    return null;
  }
  // Keyboard only: the first Tab reaches the skip link; then Tab to the e-mail field.
  await page.keyboard.press('Tab');
  const first = await page.evaluate(() => document.activeElement?.className ?? '');
  let steps = 0;
  while ((await page.evaluate(() => document.activeElement?.id)) !== 'email' && steps < 15) {
    await page.keyboard.press('Tab');
    steps += 1;
  }
  await page.keyboard.type(email);
  await page.keyboard.press('Tab');
  await page.keyboard.type(plan.password);
  await Promise.all([page.waitForURL((url) => !url.pathname.endsWith('/login')), page.keyboard.press('Enter')]);
  await secondFactor(page, email);
  // The skip link moves the focus to the main content.
  await page.keyboard.press('Tab');
  const skip = await page.evaluate(() => document.activeElement?.className ?? '');
  await page.keyboard.press('Enter');
  const focused = await page.evaluate(() => document.activeElement?.id ?? '');
  return { firstTab: first, tabsToEmail: steps, skipFocused: skip, afterSkip: focused, landed: new URL(page.url()).pathname };
}

async function check(page, persona, entry) {
  const response = await page.goto(`${plan.base}${entry.path}`);
  await page.waitForLoadState('load');
  await page.evaluate(axeSource);
  const axe = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  const record = {
    persona, path: entry.path, status: response.status(), title: await page.title(),
    lang: await page.evaluate(() => document.documentElement.lang),
    violations: axe.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })),
    passes: axe.passes.length,
  };
  if (entry.images) {
    // Each image of the page: loaded (decoded) or not, and its own width.
    record.images = await page.$$eval('main img', (images) => images.map((img) => ({
      src: new URL(img.src).pathname + new URL(img.src).search, loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth,
    })));
  }
  if (entry.screenshot) {
    await page.screenshot({ path: join(plan.outDir, `${entry.screenshot}.png`), fullPage: entry.fullPage ?? false });
  }
  result.pages.push(record);
}

for (const visit of plan.visits) {
  const { context, page } = await newPage();
  const keyboard = await signIn(page, visit.email, visit.keyboard);
  if (keyboard) result.keyboard = keyboard;
  for (const entry of visit.pages) await check(page, visit.persona, entry);
  await context.close();
}

if (plan.lifecycle) {
  const { context, page } = await newPage();
  await signIn(page, plan.lifecycle.email, false);
  const id = plan.lifecycle.alert;
  const slug = plan.lifecycle.slug;
  await page.goto(`${plan.base}/console/m/${slug}/alerts`);
  await page.fill(`#comment-${id}`, plan.lifecycle.ackComment);
  await Promise.all([page.waitForURL(/done=acknowledge/), page.click(`#alert-${id} button[type="submit"]`)]);
  const afterAck = (await page.textContent(`#alert-${id}`)).replace(/\s+/g, ' ').trim();
  const ackNotice = await page.textContent('.notice.ok');
  await page.click(`#alert-${id} a[href$="/alerts/${id}"]`);
  await page.fill('#comment', plan.lifecycle.closeComment);
  await Promise.all([page.waitForURL(/done=close/), page.click('form.stack button[type="submit"]')]);
  const finalState = (await page.textContent('#alert-state')).trim();
  const history = (await page.textContent('ol')).replace(/\s+/g, ' ').trim();
  await page.screenshot({ path: join(plan.outDir, 'alert-resolved.png') });
  result.lifecycle = { afterAck, ackNotice, finalState, history };
  await context.close();
}

if (plan.export) {
  const { context, page } = await newPage();
  await signIn(page, plan.export.email, false);
  await page.goto(`${plan.base}/console/m/${plan.export.slug}/exports`);
  // Each device is found by typing in the search field (console.js asks the server as
  // one types) and checked; the ones checked before stay listed and checked.
  const searches = [];
  for (const { q, device } of plan.export.searches) {
    await page.fill('#device-q', q);
    await page.waitForSelector(`#dev-${device}`);
    await page.waitForFunction((text) => document.getElementById('device-found').textContent.includes(text), q);
    await page.check(`#dev-${device}`);
    searches.push({
      q,
      found: await page.textContent('#device-found'),
      listed: await page.$$eval('#device-results input', (boxes) => boxes.map((b) => b.value)),
      checked: await page.$$eval('#device-results input:checked', (boxes) => boxes.map((b) => b.value)),
    });
  }
  await page.evaluate(axeSource);
  const searchAxe = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  await page.screenshot({ path: join(plan.outDir, 'exports-search.png'), fullPage: true });
  await page.fill('#start', plan.export.start);
  await page.fill('#end', plan.export.end);
  await page.selectOption('#fmt', 'csv');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('form[data-stream] button.primary[type="submit"]')]);
  const path = join(plan.outDir, 'export.csv');
  await download.saveAs(path);
  await page.waitForFunction(() => /Terminé|Done/.test(document.getElementById('export-status').textContent));
  const status = await page.textContent('#export-status');
  await page.reload();
  const history = (await page.textContent('#history tbody tr')).replace(/\s+/g, ' ').trim();
  await page.screenshot({ path: join(plan.outDir, 'exports.png') });
  result.export = {
    path, name: download.suggestedFilename(), status, history, searches,
    searchViolations: searchAxe.violations.map((v) => ({ id: v.id, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })),
  };
  await context.close();
}

await browser.close();
console.log(JSON.stringify(result));
