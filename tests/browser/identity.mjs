// The console's identity pages in Debian's chromium: an administrator creates a user,
// a team and a custom role; the new compliance officer changes her one-time password,
// is made to set up a TOTP second factor (her role requires one), signs in again with
// a code, and reads and verifies the audit log; a member who opens the audit page is
// told they cannot use it (and has no link to it).
//
// Environment: RS_URL, RS_ADMIN, RS_MEMBER, RS_PASSWORD (both), RS_SHOTS (directory).
// Prints one JSON line with what each step saw.
import crypto from 'node:crypto';
import { env, open } from './common.mjs';

// RFC 6238 with the key as an authenticator app reads it (base32).
function totp(base32, stepOffset = 0) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const step = Math.floor(Date.now() / 1000 / 30) + stepOffset;
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = crypto.createHmac('sha1', key).update(msg).digest();
  const off = h[h.length - 1] & 0xf;
  const bin = ((h[off] & 0x7f) << 24) | (h[off + 1] << 16) | (h[off + 2] << 8) | h[off + 3];
  return String(bin % 1000000).padStart(6, '0');
}

async function signIn(page, user, password) {
  await page.goto(env('RS_URL'));
  await page.waitForSelector('#login-view:not([hidden])');
  await page.fill('#login-form input[name=username]', user);
  await page.fill('#login-form input[name=password]', password);
  await page.click('#login-form button[type=submit]');
}

async function signOut(page) {
  await page.click('#logout');
  await page.waitForSelector('#login-view:not([hidden])');
}

const shot = (page, name) => page.screenshot({ path: `${env('RS_SHOTS')}/${name}.png`, fullPage: true });
const { browser, page, violations } = await open();
const out = {};
let step = 'start';
try {
  step = 'admin signs in';
  await signIn(page, env('RS_ADMIN'), env('RS_PASSWORD'));
  await page.waitForSelector('#app-view:not([hidden])');
  out.admin_nav = await page.locator('#nav a:visible').allTextContents();

  step = 'admin creates a user';
  await page.click('#nav a[href="#/users"]');
  await page.waitForSelector('#page-view:not([hidden]) form.grid');
  // The least privilege is preselected; an administrator is made only on confirmation.
  out.preselected_role = await page.inputValue('#page-body form.grid select[name=role]');
  out.confirmations = [];
  page.once('dialog', (d) => { out.confirmations.push(d.message()); d.dismiss(); });
  await page.fill('#page-body input[name=username]', 'hasty');
  await page.fill('#page-body input[name=password]', 'hasty first password');
  await page.selectOption('#page-body form.grid select[name=role]', 'admin');
  await page.click('#page-body form.grid button[type=submit]');
  await page.waitForTimeout(300);
  out.hasty_created = await page.locator('tr[data-user=hasty]').count();
  await page.fill('#page-body input[name=username]', 'cora');
  await page.fill('#page-body input[name=password]', 'cora first password');
  await page.selectOption('#page-body select[name=role]', 'compliance_officer');
  await page.click('#page-body form.grid button[type=submit]');
  await page.waitForSelector('tr[data-user=cora]');
  out.cora_row = (await page.textContent('tr[data-user=cora]')).replace(/\s+/g, ' ').trim();
  await shot(page, 'users');
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, 'users-phone');
  await page.setViewportSize({ width: 1400, height: 900 });

  step = 'admin creates a team and a role';
  await page.click('#nav a[href="#/teams"]');
  await page.fill('#page-body input[name=name]', 'Audit');
  await page.click('#page-body form.inline button[type=submit]');
  await page.waitForSelector('tr[data-team=Audit]');
  await page.click('#nav a[href="#/roles"]');
  await page.waitForSelector('tr[data-role=admin]');
  await page.fill('#page-body input[name=name]', 'auditor_lite');
  await page.selectOption('#page-body select[name=scope]', 'all');
  await page.check('#page-body input[name=perm][value="audit.read"]');
  await page.click('#page-body form.grid button[type=submit]');
  await page.waitForSelector('tr[data-role=auditor_lite]');
  out.custom_role = (await page.textContent('tr[data-role=auditor_lite]')).replace(/\s+/g, ' ').trim();
  out.not_enforced = await page.locator('#page-body .perms label:has-text("not enforced yet") input').evaluateAll((es) => es.map((e) => e.value));
  await shot(page, 'roles');
  await signOut(page);

  step = 'cora replaces her one-time password';
  await signIn(page, 'cora', 'cora first password');
  await page.waitForSelector('#password-view:not([hidden])');
  await page.fill('#password-form input[name=current_password]', 'cora first password');
  await page.fill('#password-form input[name=new_password]', env('RS_PASSWORD'));
  await page.click('#password-form button[type=submit]');

  step = 'cora must set up a second factor';
  await page.waitForSelector('#totp-required');
  out.totp_required_shown = await page.textContent('#totp-required');
  // Adding a second factor asks for the password again.
  await shot(page, 'profile');
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, 'profile-phone');
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.fill('#totp input[name=password]', env('RS_PASSWORD'));
  await page.click('#totp button[type=submit]');
  await page.waitForSelector('#totp-secret');
  const secret = (await page.textContent('#totp-secret')).trim();
  out.otpauth_uri = (await page.textContent('#totp-uri')).startsWith('otpauth://totp/Roomscribe:cora?');
  await page.fill('#totp input[name=code]', totp(secret));
  await page.click('#totp button[type=submit]');
  await page.waitForSelector('#app-view:not([hidden])');
  await signOut(page);

  step = 'cora signs in with a code';
  await signIn(page, 'cora', env('RS_PASSWORD'));
  await page.waitForSelector('#totp-field:not([hidden])');
  out.asked_for_code = await page.textContent('#login-error');
  // The code used to confirm is spent: the next one (accepted a step early).
  await page.fill('#login-form input[name=totp]', totp(secret, 1));
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#app-view:not([hidden])');
  out.cora_whoami = await page.textContent('#whoami');

  step = 'cora reads and verifies the audit log';
  await page.click('#nav a[href="#/audit"]');
  await page.waitForSelector('#page-body tbody tr');
  out.audit_actions = await page.locator('#page-body tbody tr td:nth-child(4)').allTextContents();
  await page.click('#page-body button:has-text("Verify")');
  await page.waitForFunction(() => document.getElementById('audit-verdict').textContent.length > 0);
  out.verdict = await page.textContent('#audit-verdict');
  await shot(page, 'audit');
  await signOut(page);

  step = 'a member opens the audit page';
  await signIn(page, env('RS_MEMBER'), env('RS_PASSWORD'));
  await page.waitForSelector('#app-view:not([hidden])');
  out.member_nav = await page.locator('#nav a:visible').allTextContents();
  await page.goto(`${env('RS_URL')}#/audit`);
  await page.waitForSelector('#page-denied:not([hidden])');
  out.member_denied = await page.textContent('#page-denied');
  out.member_rows = await page.locator('#page-body tr').count();
  await shot(page, 'denied');
  out.csp_violations = violations;
  console.log(JSON.stringify(out));
} catch (e) {
  await shot(page, 'failure').catch(() => {});
  throw new Error(`${step}: ${e.message}`);
} finally {
  await browser.close();
}
