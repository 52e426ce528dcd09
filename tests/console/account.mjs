// "My account" in Debian's Chromium, driven by playwright-core. Run by
// tests/console/test_account.py:
//
//   node tests/console/account.mjs '{"base": ..., "email": ..., "password": ...,
//     "newPassword": ..., "slug": ..., "api": "/api/v1", "outDir": ...}'
//
// 1. Signs in (password only: the account needs no second factor) and opens the account
//    page; runs axe-core on each page it sees (WCAG 2.1 A and AA).
// 2. Creates a personal token by the form, reads its secret off the page, calls the API
//    with it (200), revokes it by its button, calls again (401).
// 3. Sets up a second factor from the account page: reads the key under the QR code,
//    computes the TOTP code itself (RFC 6238 with node's crypto) and confirms it; keeps the
//    recovery codes; signs in again with the factor and asks for new codes.
// 4. Changes the password: the page says every session is revoked; the old password is
//    refused; the new one (and a recovery code) signs in.
// Prints one JSON object on its last line; exit 0 unless the script itself failed.
import { chromium } from 'playwright-core';
import { launchChromium, nowStep, totp } from '../browser.mjs';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const plan = JSON.parse(process.argv[2]);
const here = dirname(fileURLToPath(import.meta.url));
const axeSource = readFileSync(join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
mkdirSync(plan.outDir, { recursive: true });
const origin = new URL(plan.base).origin;


const browser = await launchChromium(chromium);
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'fr-FR' });
const page = await context.newPage();
const result = { pages: [], outside: [], csp: [] };
page.on('request', (request) => {
  const url = request.url();
  if (!url.startsWith('data:') && new URL(url).origin !== origin) result.outside.push(url);
});
page.on('console', (message) => {
  if (/Content.Security.Policy/i.test(message.text())) result.csp.push(message.text());
});
const path = () => new URL(page.url()).pathname;

async function axe(name, screenshot) {
  await page.evaluate(axeSource);
  const found = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  result.pages.push({
    name, path: path(), passes: found.passes.length,
    violations: found.violations.map((v) => ({ id: v.id, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })),
  });
  if (screenshot) await page.screenshot({ path: join(plan.outDir, `${screenshot}.png`), fullPage: true });
}

async function signIn(password, code) {
  await page.goto(`${plan.base}/console/login?next=/console/account`);
  await page.fill('#email', plan.email);
  await page.fill('#password', password);
  await Promise.all([page.waitForLoadState('load'), page.click('#login-form button[type="submit"]')]);
  if (code && path() === '/console/login/code') {
    await page.fill('#code', code);
    await Promise.all([page.waitForLoadState('load'), page.click('#code-form button[type="submit"]')]);
  }
  return path();
}

async function api(token) {
  const answer = await fetch(`${plan.base}${plan.api}/members/${plan.slug}/devices`, { headers: { Authorization: `Bearer ${token}` } });
  return answer.status;
}

// 1. The account page.
result.signedIn = await signIn(plan.password);
await axe('account');

// 2. A personal token: created, used, revoked, refused.
await page.fill('#label', 'script de relève');
await page.fill('#days', '30');
await Promise.all([page.waitForLoadState('load'), page.click('#token-form button[type="submit"]')]);
const secret = (await page.textContent('#issued-secret')).trim();
const tokenId = Number((await page.textContent('#issued')).match(/n° (\d+)/)[1]);
await axe('token created', 'account-token');
result.token = { id: tokenId, before: await api(secret) };
result.token.listed = (await page.textContent(`#token-${tokenId}`)).replace(/\s+/g, ' ').trim();
await Promise.all([page.waitForURL(/done=revoked/), page.click(`#token-${tokenId} button[type="submit"]`)]);
result.token.notice = (await page.textContent('.notice.ok')).trim();
result.token.after = await api(secret);

// 3. A second factor, set up from the account page, then new recovery codes.
await Promise.all([page.waitForLoadState('load'), page.click('#enrol-link')]);
result.qr = await page.$eval('#totp-qr svg', (svg) => svg.outerHTML.length).catch(() => 0);
await axe('second factor', 'account-second-factor');
const key = (await page.$eval('#totp-secret', (e) => e.textContent)).replace(/\s/g, '');
const enrolStep = nowStep();
await page.fill('#code', totp(key, enrolStep));
await Promise.all([page.waitForLoadState('load'), page.click('#enrol-form button[type="submit"]')]);
result.codes = await page.$$eval('#recovery-codes code', (codes) => codes.map((c) => c.textContent.trim()));
await axe('recovery codes');
await Promise.all([page.waitForLoadState('load'), page.click('#continue')]);
result.factorState = (await page.textContent('#factor-state')).replace(/\s+/g, ' ').trim();
// This session did not pass the factor (it began before it existed): changing the
// factor again, or its codes, needs a sign-in with it.
result.renewOffered = (await page.$('#renew-codes')) !== null;
await Promise.all([page.waitForURL((url) => url.pathname.endsWith('/login')), page.click('form[action="/console/logout"] button')]);
result.withFactor = await signIn(plan.password, totp(key, Math.max(enrolStep + 1, nowStep())));
await Promise.all([page.waitForLoadState('load'), page.click('#renew-codes')]);
result.renewed = await page.$$eval('#recovery-codes code', (codes) => codes.map((c) => c.textContent.trim()));
await Promise.all([page.waitForLoadState('load'), page.click('#continue')]);
await page.screenshot({ path: join(plan.outDir, 'account.png'), fullPage: true });

// 4. The password.
await page.fill('#current', plan.password);
await page.fill('#new', plan.newPassword);
await page.fill('#confirm', plan.newPassword);
await Promise.all([page.waitForLoadState('load'), page.click('#password-form button[type="submit"]')]);
result.changed = (await page.textContent('#signed-out')).replace(/\s+/g, ' ').trim();
await axe('signed out', 'account-password-changed');
result.afterChange = (await page.goto(`${plan.base}/console/account`)).url();
result.oldPassword = await signIn(plan.password);
result.oldPasswordError = await page.$eval('.notice.error', (e) => e.textContent.trim()).catch(() => null);
result.newPassword = await signIn(plan.newPassword, result.renewed[0]);
result.profile = (await page.textContent('#profile')).replace(/\s+/g, ' ').trim();

console.log(JSON.stringify(result));
await browser.close();
