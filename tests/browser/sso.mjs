// Single sign-on through a real OpenID Connect provider, in Debian's chromium:
// the console's button → the provider's sign-in and consent pages → back to the
// console, signed in with the roles the provider's groups map to. Then someone whose
// groups map to no role comes back refused, with the reason on the sign-in page.
//
// Environment: RS_URL (console), RS_ALLOWED (an account with mapped groups),
// RS_REFUSED (one without), RS_SCREENSHOT. Prints one JSON line:
// {"button": text, "whoami": text, "refused_error": text, "csp_violations": [...]}.
import { env, open } from './common.mjs';

// The provider's own development sign-in: a login name, any password, then consent.
async function providerSignIn(page, login) {
  await page.waitForSelector('input[name=login]', { timeout: 20000 });
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'the provider checks this, not roomscribe');
  await page.click('button[type=submit]');
  // Consent (first time for this account and client).
  await page.locator('input[name=prompt][value=consent]').waitFor({ state: 'attached', timeout: 20000 });
  await page.click('button[type=submit]');
}

const result = { csp_violations: [] };
let step = 'start';
// Each person in a browser of their own (the provider remembers who signed in).
async function signInAs(login, expectConsole) {
  const { browser, page, violations } = await open();
  try {
    step = `${login}: console`;
    await page.goto(env('RS_URL'));
    const button = page.locator('#sso-button');
    await button.waitFor({ state: 'visible', timeout: 15000 });
    result.button = await button.textContent();
    step = `${login}: provider`;
    await button.click();
    await providerSignIn(page, login);
    step = `${login}: back at the console`;
    if (expectConsole) {
      await page.waitForSelector('#app-view:not([hidden])', { timeout: 20000 });
      result.whoami = await page.textContent('#whoami');
      await page.screenshot({ path: env('RS_SCREENSHOT') });
    } else {
      await page.waitForSelector('#login-view:not([hidden])', { timeout: 20000 });
      await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
      result.refused_error = await page.textContent('#login-error');
    }
    result.csp_violations.push(...violations);
  } catch (e) {
    throw new Error(`${step} (at ${page.url()}): ${e.message}`);
  } finally {
    await browser.close();
  }
}

await signInAs(env('RS_ALLOWED'), true);
await signInAs(env('RS_REFUSED'), false);
console.log(JSON.stringify(result));
