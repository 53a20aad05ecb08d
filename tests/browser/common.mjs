// Shared by the console scripts: Debian's chromium, headless, with a CSP-violation
// recorder, and signing in.
import { chromium } from 'playwright-core';

export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing ${k}`);
  return v;
};

// A new page; `violations` collects CSP reports and page errors.
export async function open() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
  const violations = [];
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text()); });
  page.on('pageerror', (e) => violations.push(`page error: ${e.message}`));
  return { browser, page, violations };
}

// Signs in as RS_USER / RS_PASSWORD at RS_URL and waits for the console.
export async function signIn(page) {
  await page.goto(env('RS_URL'));
  await page.fill('#login-form input[name=username]', env('RS_USER'));
  await page.fill('#login-form input[name=password]', env('RS_PASSWORD'));
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#app-view:not([hidden])', { timeout: 15000 });
}
