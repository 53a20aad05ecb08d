// Drives the real console in Debian's chromium (headless) against a running appliance.
// Started by the Rust end-to-end harness (tests/e2e), which owns the appliance and agent.
//
// Environment: RS_URL, RS_USER, RS_PASSWORD, RS_EXPECT_EVENTS (how many meeting events,
// e.g. voice commands, the meeting will show), RS_SCREENSHOT (PNG path). Follows the
// meeting until the console shows it ended.
// Prints one JSON line: {"initial": n, "final": n, "texts": [segment texts],
// "engines": [each segment's engine label],
// "captions_seen": n, "events": [{"kind", "text"}], "admin_controls_visible": bool,
// "csp_violations": [...]}.
import { env, open, signIn } from './common.mjs';

const { browser, page, violations } = await open();
try {
  await signIn(page);

  // The meeting appears in the list through the live event stream; open it.
  const link = page.locator('#meetings a').first();
  await link.waitFor({ timeout: 60000 });
  await link.click();
  await page.waitForSelector('#transcript-view:not([hidden])', { timeout: 15000 });
  const initial = await page.locator('#segments > li').count();
  // Count live captions as they are shown (they vanish when their final arrives).
  await page.evaluate(() => {
    window.captionsSeen = [];
    const c = document.getElementById('caption');
    new MutationObserver(() => {
      if (!c.hidden && c.textContent) window.captionsSeen.push(c.textContent);
    }).observe(c, { childList: true, characterData: true, subtree: true, attributes: true });
  });
  // No reload from here on: new segments must arrive live, until the meeting ends.
  await page.waitForFunction(() => / · ended · /.test(document.getElementById('meeting-meta').textContent), null, { timeout: 180000 });
  const final = await page.locator('#segments > li').count();
  const texts = await page.evaluate(() => [...document.querySelectorAll('#segments > li .text')].map((n) => n.textContent));
  // Which engine and model produced each segment, as its header line says.
  const engines = await page.evaluate(() => [...document.querySelectorAll('#segments > li')]
    .map((n) => n.querySelector('.engine')?.textContent ?? ''));
  const expectEvents = Number(process.env.RS_EXPECT_EVENTS || '0');
  await page.waitForFunction((n) => document.querySelectorAll('#meeting-events > li').length >= n, expectEvents, { timeout: 30000 });
  const events = await page.evaluate(() => [...document.querySelectorAll('#meeting-events > li')]
    .map((n) => ({ kind: n.dataset.kind, text: n.innerText })));
  const captionsSeen = await page.evaluate(() => window.captionsSeen.length);
  // When the meeting ends no caption is left over.
  await page.waitForFunction(() => document.getElementById('caption').hidden, null, { timeout: 30000 });
  const adminControlsVisible = await page.locator('#enroll-form').isVisible();
  await page.screenshot({ path: env('RS_SCREENSHOT'), fullPage: true });
  console.log(JSON.stringify({ initial, final, texts, engines, captions_seen: captionsSeen, events, admin_controls_visible: adminControlsVisible, csp_violations: violations }));
} finally {
  await browser.close();
}
