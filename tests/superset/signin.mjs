// One identity for the console and Superset, in Debian's Chromium driven by playwright-core.
// Run by tests/superset/test_signin_browser.py:
//
//   node tests/superset/signin.mjs '{"superset": ..., "platform": ..., "outDir": ...,
//     "sso": "ana", "operator": {"email": ..., "password": ..., "secret": ...},
//     "suspended": {"email": ..., "password": ...}}'
//
// 1. Single sign-on: Superset's login sends the browser to the console's sign-in page;
//    the provider's button, the provider's own page (login `sso`), and the browser is
//    back in Superset, signed in, without a second password.
// 2. The operator signs in to Superset with a password and a TOTP code this script
//    computes (RFC 6238 with node's crypto); a wrong code is refused first.
// 3. A person signs in to Superset; the script prints `signed-in` and waits for a line on
//    its standard input (the test suspends the person in between); the next Superset
//    page sends them to the console's sign-in, which refuses their password.
// Screenshots of each step under outDir. Prints one JSON object on its last line.
import { chromium } from 'playwright-core';
import { launchChromium, nowStep, totp } from '../browser.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const plan = JSON.parse(process.argv[2]);
mkdirSync(plan.outDir, { recursive: true });
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();


const browser = await launchChromium(chromium);
const result = {};
const supersetOrigin = new URL(plan.superset).origin;
const inSuperset = (url) => url.origin === supersetOrigin && !url.pathname.startsWith('/login')
  && !url.pathname.startsWith('/oauth-authorized');

let current = null;
async function fresh() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'fr-FR' });
  current = await context.newPage();
  return current;
}

async function me(page) {
  const answer = await page.request.get(`${plan.superset}/api/v1/me/`);
  return answer.ok() ? (await answer.json()).result.username : answer.status();
}

async function toConsoleSignIn(page) {
  await page.goto(`${plan.superset}/login/`);
  await page.waitForURL((url) => url.pathname === '/console/login', { timeout: 60000 });
  return { path: new URL(page.url()).pathname, passwordFields: await page.locator('input[type="password"]').count() };
}

async function password(page, email, secret) {
  await page.fill('#email', email);
  await page.fill('#password', secret);
  await Promise.all([page.waitForURL((url) => url.pathname !== '/console/login' || url.search === ''),
    page.click('#login-form button[type="submit"]')]);
  await page.waitForLoadState('networkidle');
}

// A step that fails leaves its page's address, text and picture behind.
try {
// 1. Single sign-on, console then Superset.
{
  const page = await fresh();
  result.ssoLoginPage = await toConsoleSignIn(page);
  await page.screenshot({ path: join(plan.outDir, 'superset-signin-console.png'), fullPage: true });
  await page.click('#sso-button');
  await page.waitForURL((url) => url.pathname.startsWith('/interaction/'), { timeout: 60000 });
  await page.fill('input[name="login"]', plan.sso);
  await page.fill('input[name="password"]', 'anything');
  await page.click('button[type="submit"]');
  await page.waitForURL(inSuperset, { timeout: 60000 });
  await page.waitForLoadState('networkidle');
  result.ssoLanded = new URL(page.url()).pathname;
  result.ssoUser = await me(page);
  // A dashboard of ana's member, as she sees it (its charts drawn).
  await page.goto(`${plan.superset}/superset/dashboard/alpha-water/`);
  await page.waitForSelector('[data-test="grid-container"]', { timeout: 60000 }).catch(() => null);
  await page.waitForLoadState('networkidle').catch(() => null);
  // Its charts drawn: no chart still waiting for its query (Superset's loading spinner).
  await page.waitForFunction(() => {
    const holders = [...document.querySelectorAll('[data-test="chart-grid-component"]')];
    return holders.length > 0
      && holders.every((h) => !h.querySelector('.loading, [data-test="loading-indicator"]'));
  }, null, { timeout: 90000 }).catch(() => null);
  await page.waitForTimeout(1000);
  await page.screenshot({ path: join(plan.outDir, 'superset-signed-in-by-sso.png'), fullPage: true });
  // The console knows the same person: its pages open without signing in again.
  await page.goto(`${plan.platform}/console/`);
  result.ssoConsole = new URL(page.url()).pathname;
  await page.context().close();
}

// 2. The operator: password, a wrong code refused, then a code computed here.
{
  const page = await fresh();
  await toConsoleSignIn(page);
  await password(page, plan.operator.email, plan.operator.password);
  result.operatorSecondStep = new URL(page.url()).pathname;
  const step = nowStep();
  await page.fill('#code', totp(plan.operator.secret, step + 7));
  await page.click('#code-form button[type="submit"]');
  await page.waitForSelector('#code-error', { timeout: 60000 });
  result.operatorWrongCode = {
    path: new URL(page.url()).pathname,
    error: await page.$eval('#code-error', (e) => e.textContent.trim()).catch(() => null),
  };
  await page.screenshot({ path: join(plan.outDir, 'superset-signin-wrong-code.png'), fullPage: true });
  await page.waitForLoadState('networkidle');
  await page.fill('#code', totp(plan.operator.secret, nowStep()));
  await Promise.all([page.waitForNavigation({ timeout: 60000 }), page.press('#code', 'Enter')]);
  result.operatorAfterCode = new URL(page.url()).pathname;
  await page.waitForURL(inSuperset, { timeout: 60000 });
  await page.waitForLoadState('networkidle');
  result.operatorUser = await me(page);
  await page.context().close();
}

// 3. Suspended between two requests.
{
  const page = await fresh();
  await toConsoleSignIn(page);
  await password(page, plan.suspended.email, plan.suspended.password);
  await page.waitForURL(inSuperset, { timeout: 60000 });
  result.beforeSuspension = await me(page);
  console.log('signed-in');
  await lines.next();
  await page.goto(`${plan.superset}/dashboard/list/`);
  await page.waitForLoadState('networkidle');
  result.afterSuspension = { path: new URL(page.url()).pathname, user: await me(page) };
  await password(page, plan.suspended.email, plan.suspended.password);
  result.suspendedSignIn = {
    path: new URL(page.url()).pathname,
    error: await page.$eval('#login-error', (e) => e.textContent.trim()).catch(() => null),
  };
  await page.screenshot({ path: join(plan.outDir, 'superset-suspended-refused.png'), fullPage: true });
  await page.context().close();
}

} catch (error) {
  const text = current ? (await current.textContent('body').catch(() => ''))?.replace(/\s+/g, ' ').slice(0, 800) : '';
  if (current) await current.screenshot({ path: join(plan.outDir, 'failure.png'), fullPage: true }).catch(() => null);
  console.error(`${error.message.split('\n')[0]} at ${current?.url()}: ${text}`);
  await browser.close();
  process.exit(2);
}

console.log(JSON.stringify(result));
await browser.close();
