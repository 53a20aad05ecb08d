// Drives the real console in Debian's chromium (headless) against a running appliance.
// Started by the Rust end-to-end harness (tests/e2e), which owns the appliance and agent.
//
// Environment: RS_URL, RS_USER, RS_PASSWORD, RS_EXPECT_EVENTS (how many meeting events,
// e.g. voice commands, the meeting will show), RS_SCREENSHOT (PNG path). Follows the
// meeting until the console shows it ended.
// Prints one JSON line: {"initial": n, "final": n, "texts": [segment texts],
// "engines": [each segment's engine label],
// "captions_seen": n, "events": [{"kind", "text"}], "admin_controls_visible": bool,
// "search": {"query", "summary", "hits", "marked": [...], "phone_overflow", "focused"},
// "edit": {"typed", "saved", "other", "other_status", "conflict", "kept", "final",
//          "signature", "original", "revisions", "phone_overflow"},
// "exported": {"file", "manifest", "status", "statuses"} (the PDF and its manifest, saved),
// "actions": {"rows", "links", "phone_overflow"} (the Action items page),
// "analytics": {"status", "charts", "loaded", "room_rows", "room_csv", "tab_reaches",
//               "phone_overflow"} (the Analytics page),
// "meeting_page": {"title", "details", "share", "find_*", "review_*", "engine_*", "summary": n,
//                  "action_items": [texts], "items_done": n, "phone_overflow"},
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

  // Search from the top bar for the longest word of the last segment: the results
  // page marks it, and the hit leads to that moment of the meeting.
  const words = texts[texts.length - 1].split(/\s+/).filter((w) => /^[\p{L}\p{N}]+$/u.test(w));
  const query = words.reduce((a, b) => (b.length > a.length ? b : a), '');
  await page.fill('#search-q', query);
  await page.press('#search-q', 'Enter');
  await page.waitForSelector('#page-body .hits li.hit', { timeout: 15000 });
  const shots = env('RS_SCREENSHOT').replace(/\.png$/, '');
  await page.screenshot({ path: `${shots}-search-desktop.png`, fullPage: true });
  const search = await page.evaluate(() => ({
    summary: document.querySelector('#page-body .search-summary').textContent,
    hits: document.querySelectorAll('#page-body .hits li.hit').length,
    marked: [...document.querySelectorAll('#page-body .hits mark')].map((m) => m.textContent),
  }));
  search.query = query;
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${shots}-search-phone.png`, fullPage: true });
  search.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.setViewportSize({ width: 1400, height: 900 });
  // Keyboard: Tab from the search box reaches the first hit's link.
  await page.locator('#page-body .hits a').first().focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('#segments > li.focused', { timeout: 15000 });
  search.focused = await page.evaluate(() => document.querySelector('#segments > li.focused .text').textContent);

  // Correct the first segment from the keyboard: Edit, type, Ctrl+Enter.
  const edit = {};
  const first = '#segments > li[data-seq="0"]';
  await page.locator(`${first} .edit-segment`).focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector(`${first} form.edit textarea`, { timeout: 15000 });
  await page.screenshot({ path: `${shots}-edit-desktop.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${shots}-edit-phone.png`, fullPage: true });
  edit.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.setViewportSize({ width: 1400, height: 900 });
  edit.typed = `${texts[0]} corrected`;
  await page.fill(`${first} form.edit textarea`, edit.typed);
  await page.keyboard.press('Control+Enter');
  await page.waitForSelector(`${first}[data-version="1"] .text`, { timeout: 15000 });
  edit.saved = await page.textContent(`${first} .text`);
  // Someone else corrects it while this page edits it again: saving is refused with
  // their version shown, the typed text kept; saving again goes through.
  await page.click(`${first} .edit-segment`);
  await page.waitForSelector(`${first} form.edit`);
  edit.other = 'someone else changed these words';
  edit.other_status = await page.evaluate(async (text) => {
    const me = await (await fetch('/api/v1/me')).json();
    const r = await fetch('/api/v1/meetings/' + location.hash.split('/')[2] + '/segments/0', {
      method: 'PATCH', headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf_token },
      body: JSON.stringify({ text, expected_version: 1 }),
    });
    return r.status;
  }, edit.other);
  edit.typed_again = `${texts[0]} corrected twice`;
  await page.fill(`${first} form.edit textarea`, edit.typed_again);
  await page.click(`${first} form.edit button[type=submit]`);
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.length > 0, `${first} form.edit .error`, { timeout: 15000 });
  edit.conflict = await page.textContent(`${first} form.edit .error`);
  edit.kept = await page.inputValue(`${first} form.edit textarea`);
  await page.click(`${first} form.edit button[type=submit]`);
  await page.waitForSelector(`${first}[data-version="3"] .text`, { timeout: 15000 });
  edit.final = await page.textContent(`${first} .text`);
  await page.click(`${first} .history-segment`);
  await page.waitForSelector(`${first} .history .signature`, { timeout: 15000 });
  edit.signature = await page.getAttribute(`${first} .history .signature`, 'class');
  edit.original = await page.textContent(`${first} .history .original`);
  edit.revisions = await page.locator(`${first} .history .revisions > li`).count();
  await page.screenshot({ path: `${shots}-history-desktop.png`, fullPage: true });

  // The meeting page: details edited, speaking time, find-in-meeting, the review of
  // uncertain words; at desktop and phone widths.
  const meetingPage = {};
  await page.click('#edit-details');
  await page.fill('#details-title', 'Weekly review');
  await page.fill('#details-tags', 'budget, follow-up');
  await page.fill('#details-participants', 'Dr. Kim\nBob <bob>');
  await page.click('#details-form button[type=submit]');
  await page.waitForSelector('#meeting-details:not([hidden]) .badge.tag', { timeout: 15000 });
  meetingPage.title = await page.textContent('#meeting-title');
  meetingPage.details = await page.textContent('#meeting-details');
  meetingPage.share = await page.evaluate(() => [...document.querySelectorAll('#speaker-share .share-legend li')].map((n) => n.textContent));
  const firstWord = texts[1].split(/\s+/)[0];
  await page.fill('#find-in-meeting', firstWord);
  meetingPage.find_word = firstWord;
  meetingPage.find_hits = await page.locator('#segments > li.find-hit').count();
  await page.press('#find-in-meeting', 'Enter');
  meetingPage.find_count = await page.textContent('#find-count');
  meetingPage.review_label = await page.textContent('#review-uncertain');
  await page.click('#review-uncertain');
  meetingPage.reviewing = await page.evaluate(() => [...document.querySelectorAll('#segments > li')]
    .filter((n) => getComputedStyle(n).display !== 'none').every((n) => n.querySelector('.word.low')));
  meetingPage.review_shown = await page.evaluate(() => [...document.querySelectorAll('#segments > li')].filter((n) => getComputedStyle(n).display !== 'none').length);
  await page.click('#review-uncertain');
  meetingPage.engine_hidden = await page.evaluate(() => getComputedStyle(document.querySelector('#segments .engine')).display === 'none');
  await page.check('#show-engine');
  meetingPage.engine_shown = await page.evaluate(() => getComputedStyle(document.querySelector('#segments .engine')).display !== 'none');
  await page.uncheck('#show-engine');
  await page.fill('#find-in-meeting', '');
  await page.dispatchEvent('#find-in-meeting', 'input');
  // The summary panel, refreshed now the meeting has ended: its sentences, the action
  // items (the room's voice mark among them), one marked done.
  await page.click('#understanding .understanding-head button');
  await page.waitForSelector('#understanding:not([hidden]) [data-action-item]', { timeout: 15000 });
  meetingPage.summary = await page.locator('#understanding .summary-sentences li').count();
  meetingPage.action_items = await page.evaluate(() => [...document.querySelectorAll('#understanding [data-action-item]')].map((n) => n.textContent));
  await page.locator('#understanding select[data-item]').first().selectOption('done');
  await page.waitForFunction(() => /Marked done/.test((document.querySelector('#understanding-status') || {}).textContent || ''), null, { timeout: 15000 });
  meetingPage.items_done = await page.locator('#understanding li.status-done').count();
  await page.screenshot({ path: `${shots}-meeting-desktop.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${shots}-meeting-phone.png`, fullPage: true });
  meetingPage.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.setViewportSize({ width: 1400, height: 900 });

  // Export the PDF (with originals) from the menu, with its progress, and the signed
  // manifest of that file: both saved for the harness to verify.
  const exported = {};
  await page.click('#export-menu summary');
  await page.selectOption('#export-format', 'pdf');
  await page.check('#export-original');
  // Every status the menu shows while the appliance makes the file, then sends it.
  await page.evaluate(() => {
    window.exportStatuses = [];
    const s = document.getElementById('export-status');
    new MutationObserver(() => window.exportStatuses.push(s.textContent)).observe(s, { childList: true, characterData: true, subtree: true });
  });
  const [file] = await Promise.all([page.waitForEvent('download'), page.click('#export-form button[type=submit]')]);
  exported.file = `${shots}-export.pdf`;
  await file.saveAs(exported.file);
  await page.waitForSelector('#export-progress[data-done]', { timeout: 15000 });
  exported.status = await page.textContent('#export-status');
  exported.statuses = await page.evaluate(() => window.exportStatuses);
  await page.screenshot({ path: `${shots}-export-desktop.png` });
  const [manifest] = await Promise.all([page.waitForEvent('download'), page.click('#export-manifest')]);
  exported.manifest = `${shots}-export.pdf.manifest.json`;
  await manifest.saveAs(exported.manifest);

  // The Action items page: open items of every meeting (the one marked done is not
  // among them), each a link to its moment; at desktop and phone widths.
  const actions = {};
  await page.click('nav a[href="#/actions"]');
  await page.waitForFunction(() => /action item\(s\)/.test(document.querySelector('#page-body [role=status]')?.textContent || ''), null, { timeout: 15000 });
  actions.rows = await page.locator('[data-action-row]').count();
  actions.links = await page.locator('[data-action-row] a[href*="/s/"]').count();
  await page.screenshot({ path: `${shots}-actions-desktop.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${shots}-actions-phone.png`, fullPage: true });
  actions.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.setViewportSize({ width: 1400, height: 900 });

  // The Analytics page: every chart drawn (an SVG image the page's CSP admits), its
  // numbers in a table, a CSV download; at desktop and phone widths.
  const analytics = {};
  await page.click('nav a[href="#/analytics"]');
  await page.waitForFunction(() => /meeting\(s\)/.test(document.querySelector('#page-body [role=status]')?.textContent || ''), null, { timeout: 15000 });
  analytics.status = await page.textContent('#page-body [role=status]');
  analytics.charts = await page.locator('img.chart').count();
  await page.waitForFunction(() => [...document.querySelectorAll('img.chart')].every((i) => i.complete), null, { timeout: 15000 });
  analytics.loaded = await page.evaluate(() => [...document.querySelectorAll('img.chart')].every((i) => i.naturalWidth > 0));
  await page.click('#chart-recorded_by_room details summary');
  analytics.room_rows = await page.locator('[data-table=recorded_by_room] tbody tr').allTextContents();
  analytics.room_csv = await page.evaluate(async () => {
    const a = document.querySelector('#chart-recorded_by_room a[download]');
    const r = await fetch(a.href);
    return { status: r.status, type: r.headers.get('content-type'), lines: (await r.text()).split('\r\n') };
  });
  // Keyboard: the filters and the downloads are reached with Tab.
  await page.focus('#page-body form select[aria-label=Team]');
  await page.keyboard.press('Tab');
  analytics.tab_reaches = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));
  await page.screenshot({ path: `${shots}-analytics-desktop.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${shots}-analytics-phone.png`, fullPage: true });
  analytics.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.setViewportSize({ width: 1400, height: 900 });
  console.log(JSON.stringify({ initial, final, texts, engines, captions_seen: captionsSeen, events, admin_controls_visible: adminControlsVisible, search, edit, meeting_page: meetingPage, exported, actions, analytics, csp_violations: violations }));
} finally {
  await browser.close();
}
