// An administrator in the real console (headless Debian chromium): schedules a meeting
// for a room, then starts and stops a meeting on the room's live agent with the
// agent row's buttons, reading the agent's answers.
//
// Environment: RS_URL, RS_USER, RS_PASSWORD, RS_SCREENSHOT.
// Prints one JSON line: {"scheduled": text, "start_answer": text, "meeting_seen": bool,
// "stop_answer": text, "csp_violations": [...]}.
import { env, open, signIn } from './common.mjs';

const pad = (n) => String(n).padStart(2, '0');
const local = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;

const { browser, page, violations } = await open();
try {
  await signIn(page);

  // Schedule a meeting an hour from now.
  await page.click('[data-schedule-toggle]');
  const form = page.locator('.schedule-form');
  await form.waitFor({ timeout: 10000 });
  await form.locator('input[name=title]').fill('Quarterly review');
  await form.locator('input[name=starts]').fill(local(new Date(Date.now() + 3600 * 1000)));
  await form.locator('input[name=minutes]').fill('45');
  await form.locator('button[type=submit]').click();
  const entry = page.locator('.schedule [data-entry]').first();
  await entry.waitFor({ timeout: 10000 });
  const scheduled = await entry.innerText();

  // Start a meeting on the live agent, then stop it.
  const start = page.locator('button[data-action=start]').first();
  await start.waitFor({ timeout: 60000 });
  await start.click();
  await page.waitForFunction(() => /✓|✗/.test(document.querySelector('.controls .answer')?.textContent || ''), null, { timeout: 20000 });
  const startAnswer = await page.locator('.controls .answer').first().innerText();
  const link = page.locator('#meetings a').first();
  await link.waitFor({ timeout: 60000 });
  const meetingSeen = await link.isVisible();
  await page.locator('button[data-action=stop]').first().click();
  await page.waitForFunction(() => /stopping/.test(document.querySelector('.controls .answer')?.textContent || ''), null, { timeout: 20000 });
  const stopAnswer = await page.locator('.controls .answer').first().innerText();
  await page.screenshot({ path: env('RS_SCREENSHOT'), fullPage: true });
  console.log(JSON.stringify({ scheduled, start_answer: startAnswer, meeting_seen: meetingSeen, stop_answer: stopAnswer, csp_violations: violations }));
} finally {
  await browser.close();
}
