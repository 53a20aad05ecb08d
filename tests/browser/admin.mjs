// An administrator in the real console (headless Debian chromium): schedules a meeting
// for a room, then starts and stops a meeting on the room's live agent with the
// agent row's buttons, reading the agent's answers. Then, on the ended meeting's page,
// places a legal hold, is refused erasure because of it, lifts it and erases the
// meeting.
//
// On the way it sets the Staff team's consent rule on the Teams page and records a
// participant's consent in the meeting page's Consent panel.
//
// Environment: RS_URL, RS_USER, RS_PASSWORD, RS_SCREENSHOT.
// Prints one JSON line: {"scheduled": text, "start_answer": text, "meeting_seen": bool,
// "stop_answer": text, "first_event": {...}, "policy": text, "due": text, "held_status": text, "refused": text,
// "after_erase": text, "meetings_left": n, "consent_rule": text, "consent_summary": text,
// "tracker_refusal": text, "trackers_saved": [{name, phrases}],
// "consent_evidence": n, "subject_export": text, "subject_downloads": [names],
// "subject_erase": text, "backup_banner": text, "backup_status": text, "backup_row": text,
// "health_before": state, "health_after": text,
// "banner_after": hidden?, "csp_violations": [...]}.
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
  // The agent's row says what it is doing (from its heartbeats).
  await page.locator('[data-meeting-state]').first().waitFor({ timeout: 20000 });
  const agentState = await page.locator('[data-meeting-state]').first().getAttribute('data-meeting-state');
  // At phone width, a recording agent's row (state badge, controls) stays inside the page.
  await page.setViewportSize({ width: 390, height: 844 });
  const phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.screenshot({ path: env('RS_SCREENSHOT').replace(/\.png$/, '-recording-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1400, height: 900 });
  const link = page.locator('#meetings a').first();
  await link.waitFor({ timeout: 60000 });
  const meetingSeen = await link.isVisible();
  await page.locator('button[data-action=stop]').first().click();
  await page.waitForFunction(() => /stopping/.test(document.querySelector('.controls .answer')?.textContent || ''), null, { timeout: 20000 });
  const stopAnswer = await page.locator('.controls .answer').first().innerText();
  await page.screenshot({ path: env('RS_SCREENSHOT'), fullPage: true });

  // The meeting ends; its first event is read before it is erased.
  await page.waitForFunction(() => document.querySelector('#meetings .badge')?.textContent === 'ended', null, { timeout: 60000 });

  // Retention: a policy for the room's team, and the meeting it makes due by 2099.
  await page.click('nav a[href="#/retention"]');
  await page.waitForFunction(() => document.querySelector('#page-body select[name=target]') || !document.getElementById('page-denied').hidden, null, { timeout: 10000 });
  if (!(await page.locator('#page-body select[name=target]').count())) throw new Error(`retention page: ${await page.textContent('#page-denied')} ${violations}`);
  await page.selectOption('#page-body select[name=target]', { label: 'Team Staff' });
  await page.fill('#page-body input[name=days]', '1');
  await page.click('#page-body button:has-text("Add policy")');
  await page.locator('#page-body tr[data-policy]').waitFor({ timeout: 10000 });
  const policy = await page.locator('#page-body tr[data-policy]').first().innerText();
  const job = await page.locator('#page-body [data-job="meeting-retention"]').innerText();
  await page.fill('#page-body input[name=as_of]', '2099-01-01');
  await page.click('#page-body button:has-text("Show")');
  await page.locator('#page-body li[data-meeting]').waitFor({ timeout: 10000 });
  const due = await page.locator('#page-body li[data-meeting]').first().innerText();
  await page.screenshot({ path: env('RS_SCREENSHOT').replace(/\.png$/, '-retention.png') });

  // Consent: the Staff team's rule, set on the Teams page.
  await page.click('nav a[href="#/teams"]');
  const rule = page.locator('#page-body tr[data-consent="Staff"]');
  await rule.waitFor({ timeout: 10000 });
  await rule.locator('select[name=rule]').selectOption('require_announcement');
  await rule.locator('textarea[name=notice]').fill('This meeting is transcribed for the minutes.');
  await rule.locator('button[type=submit]').click();
  await page.waitForFunction(() => /version 1/.test(document.querySelector('#page-body tr[data-consent="Staff"]')?.textContent || ''), null, { timeout: 10000 });
  const consentRule = `${await rule.locator('select[name=rule]').inputValue()} · ${await rule.innerText()}`;
  // Keyword trackers: a line the editor refuses (no colon), then two it keeps.
  const trackers = page.locator('#page-body tr[data-trackers="Staff"]');
  await trackers.locator('textarea').fill('no colon here');
  await trackers.locator('button[type=submit]').click();
  await page.waitForFunction(() => /colon/.test(document.querySelector('#page-body tr[data-trackers="Staff"] .error')?.textContent || ''), null, { timeout: 10000 });
  const trackerRefusal = await trackers.locator('.error').textContent();
  await trackers.locator('textarea').fill('Complaints: complaint, adverse event\nCompetitors: Acme');
  await trackers.locator('button[type=submit]').click();
  await page.waitForFunction(() => /2 tracker/.test(document.querySelector('#page-body tr[data-trackers="Staff"]')?.textContent || ''), null, { timeout: 10000 });
  const trackersSaved = await page.evaluate(async () => (await (await fetch('/api/v1/teams')).json()).find((t) => t.name === 'Staff').trackers);
  await page.screenshot({ path: env('RS_SCREENSHOT').replace(/\.png$/, '-teams.png'), fullPage: true });
  await page.click('nav a[href="#/"]');
  await link.click();
  await page.locator('#transcript-view').waitFor({ timeout: 10000 });
  const id = await page.evaluate(() => decodeURIComponent(location.hash.split('/')[2]));
  const firstEvent = await page.evaluate(async (m) => (await (await fetch(`/api/v1/meetings/${m}/transcript`)).json()).events[0], id);

  // Participants added in the details form; one's consent recorded in the panel.
  await page.click('#edit-details');
  await page.fill('#details-participants', 'Dr. Kim\nLee');
  await page.click('#details-form button[type=submit]');
  await page.locator('#consent-panel:not([hidden])').waitFor({ timeout: 10000 });
  await page.click('#consent-summary');
  await page.click('button[aria-label="Dr. Kim: consented"]');
  await page.waitForFunction(() => /Recorded/.test(document.getElementById('consent-status').textContent), null, { timeout: 10000 });
  const consentSummary = await page.textContent('#consent-summary');
  const consentEvidence = await page.locator('#consent-evidence li').count();
  await page.screenshot({ path: env('RS_SCREENSHOT').replace(/\.png$/, '-consent.png') });

  // Subject requests: Dr. Kim's archive (and its manifest) downloaded; Lee erased.
  await page.click('nav a[href="#/subjects"]');
  const exportForm = page.locator('#page-body form[data-form=export]');
  await exportForm.waitFor({ timeout: 10000 });
  await exportForm.locator('input[name=name]').fill('Dr. Kim');
  const downloads = [];
  page.on('download', (d) => downloads.push(d.suggestedFilename()));
  await exportForm.locator('button[type=submit]').click();
  await page.waitForFunction(() => /signed manifest/.test(document.querySelector('[data-status=export]').textContent), null, { timeout: 20000 });
  const subjectExport = await page.textContent('[data-status=export]');
  const eraseForm = page.locator('#page-body form[data-form=erase]');
  await eraseForm.locator('input[name=name]').fill('Lee');
  await eraseForm.locator('input[name=reason]').fill('erasure request 17');
  page.once('dialog', (d) => d.accept());
  await eraseForm.locator('button[type=submit]').click();
  await page.waitForFunction(() => /erased from/.test(document.querySelector('[data-status=erase]').textContent), null, { timeout: 20000 });
  const subjectErase = await page.textContent('[data-status=erase]');
  await page.screenshot({ path: env('RS_SCREENSHOT').replace(/\.png$/, '-subjects.png'), fullPage: true });
  await page.click('nav a[href="#/"]');
  await link.click();
  await page.locator('#transcript-view').waitFor({ timeout: 10000 });

  // Legal hold: placed with a reason, it blocks erasure (the appliance says why).
  await page.click('#retention-menu summary');
  await page.fill('#hold-reason', 'Smith v. Studio');
  await page.click('#hold-place');
  await page.waitForFunction(() => /Under legal hold/.test(document.getElementById('hold-status').textContent), null, { timeout: 10000 });
  const heldStatus = await page.textContent('#hold-status');
  page.on('dialog', (d) => d.accept());
  await page.fill('#erase-reason', 'recorded by mistake');
  await page.click('#erase-meeting');
  await page.waitForFunction(() => /legal hold/.test(document.getElementById('retention-error').textContent), null, { timeout: 10000 });
  const refused = await page.textContent('#retention-error');
  await page.screenshot({ path: env('RS_SCREENSHOT').replace(/\.png$/, '-hold.png') });

  // Lifted, the meeting is erased: it leaves the list and its page closes.
  await page.click('#hold-lift');
  await page.waitForFunction(() => /No legal hold/.test(document.getElementById('hold-status').textContent), null, { timeout: 10000 });
  await page.click('#erase-meeting');
  await page.waitForFunction(() => !document.querySelector('#meetings a'), null, { timeout: 10000 });
  const afterErase = await page.textContent('#transcript-empty');
  const meetingsLeft = await page.locator('#meetings a').count();

  // Backups: the alarm banner (none made yet), "Back up now" with its progress, the
  // run in the table, the banner gone.
  await page.reload();
  await page.locator('#banner:not([hidden])').waitFor({ timeout: 10000 });
  const backupBanner = await page.textContent('#banner');
  await page.click('nav a[href="#/backups"]');
  const now = page.locator('#page-body button', { hasText: 'Back up now' });
  await now.waitFor({ timeout: 10000 });
  await page.locator('[data-target-health]:not([data-target-health="checking"])').waitFor({ timeout: 10000 });
  const healthBefore = await page.getAttribute('[data-target-health]', 'data-target-health');
  await now.click();
  await page.waitForFunction(() => /made and verified|failed/.test((document.querySelector('[data-backup-status]') || {}).textContent || ''), null, { timeout: 60000 });
  const backupStatus = await page.textContent('[data-backup-status]');
  await page.locator('#page-body tr[data-run] .badge').first().waitFor({ timeout: 10000 });
  const backupRow = await page.locator('#page-body tr[data-run]').first().innerText();
  const bannerAfter = await page.locator('#banner').isHidden();
  // The page shows itself again after the run: the target now holds a good set.
  await page.locator('[data-target-health="good"]').waitFor({ timeout: 10000 });
  const healthAfter = await page.textContent('[data-target-health]');
  await page.screenshot({ path: env('RS_SCREENSHOT').replace(/\.png$/, '-backups.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: env('RS_SCREENSHOT').replace(/\.png$/, '-backups-phone.png'), fullPage: true });
  console.log(JSON.stringify({ scheduled, start_answer: startAnswer, meeting_seen: meetingSeen, stop_answer: stopAnswer, first_event: firstEvent, policy, job, due, held_status: heldStatus, refused, after_erase: afterErase, meetings_left: meetingsLeft, consent_rule: consentRule, tracker_refusal: trackerRefusal, trackers_saved: trackersSaved, consent_summary: consentSummary, consent_evidence: consentEvidence, subject_export: subjectExport, subject_downloads: downloads, subject_erase: subjectErase, agent_state: agentState, phone_overflow: phoneOverflow, backup_banner: backupBanner, backup_status: backupStatus, backup_row: backupRow, banner_after: bannerAfter, health_before: healthBefore, health_after: healthAfter, csp_violations: violations }));
} finally {
  await browser.close();
}
