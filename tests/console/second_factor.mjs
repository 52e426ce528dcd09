// The second factor in Debian's Chromium, driven by playwright-core. Run by
// tests/console/test_second_factor.py:
//
//   node tests/console/second_factor.mjs '{"base": ..., "email": ..., "password": ...,
//     "outDir": ...}'
//
// 1. Signs in with the password: an admin without a factor lands on the enrolment page;
//    reads the key printed under the QR code, computes the TOTP code itself (RFC 6238,
//    HMAC-SHA1, 30 s, 6 digits: node's crypto, no library) and enrols; keeps the
//    recovery codes shown.
// 2. Signs out, signs in again: a wrong code is refused, a fresh code is accepted.
// 3. Signs out, signs in with a recovery code (accepted), signs out, the same code again
//    (refused).
// Prints one JSON object on its last line with what each step saw; exit 0 unless the
// script itself failed.
import { chromium } from 'playwright-core';
import { launchChromium, nowStep, totp } from '../browser.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const plan = JSON.parse(process.argv[2]);
mkdirSync(plan.outDir, { recursive: true });


const browser = await launchChromium(chromium);
const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, locale: 'fr-FR' });
const page = await context.newPage();
const result = {};
const path = () => new URL(page.url()).pathname;

async function password() {
  await page.goto(`${plan.base}/console/login`);
  await page.fill('#email', plan.email);
  await page.fill('#password', plan.password);
  await Promise.all([page.waitForURL((url) => !url.pathname.endsWith('/login')), page.click('#login-form button[type="submit"]')]);
  return path();
}

async function code(value) {
  await page.fill('#code', value);
  await Promise.all([page.waitForLoadState('load'), page.click('#code-form button[type="submit"]')]);
  await page.waitForLoadState('networkidle');
  return { path: path(), error: await page.$eval('#code-error', (e) => e.textContent.trim()).catch(() => null) };
}

async function signOut() {
  await page.goto(`${plan.base}/console/`);
  const form = await page.$('form[action="/console/logout"] button');
  if (form) await Promise.all([page.waitForURL((url) => url.pathname.endsWith('/login')), form.click()]);
}

// 1. Enrolment.
result.afterPassword = await password();
result.qr = await page.$eval('#totp-qr svg', (svg) => svg.outerHTML.length).catch(() => 0);
await page.screenshot({ path: join(plan.outDir, 'second-factor-enrol.png'), fullPage: true });
const secret = (await page.$eval('#totp-secret', (e) => e.textContent)).replace(/\s/g, '');
const enrolStep = nowStep();
await page.fill('#code', totp(secret, enrolStep));
await Promise.all([page.waitForLoadState('load'), page.click('#enrol-form button[type="submit"]')]);
result.recoveryCodes = await page.$$eval('#recovery-codes code', (codes) => codes.map((c) => c.textContent.trim()));
await page.screenshot({ path: join(plan.outDir, 'second-factor-recovery-codes.png'), fullPage: true });
await Promise.all([page.waitForLoadState('load'), page.click('#continue')]);
result.afterEnrol = path();
await signOut();

// 2. A wrong code, then the code of the next time step (the enrolment used this one).
result.secondSignIn = await password();
result.wrongCode = await code(totp(secret, enrolStep + 5));
await page.screenshot({ path: join(plan.outDir, 'second-factor-wrong-code.png'), fullPage: true });
result.goodCode = await code(totp(secret, Math.max(enrolStep + 1, nowStep())));
await signOut();

// 3. A recovery code works once.
await password();
result.recoveryOnce = await code(result.recoveryCodes[0]);
await signOut();
await password();
result.recoveryTwice = await code(result.recoveryCodes[0]);

console.log(JSON.stringify(result));
await browser.close();
