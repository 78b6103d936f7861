// Plays the user of a Connect link in a real browser: headless Chromium (Debian's binary,
// /usr/bin/chromium or $CHROMIUM, driven by playwright-core) opens Alter's hosted Connect page,
// picks the provider, signs in at the OAuth peer's login page, consents, and waits for Alter's
// "connected" page. Prints one JSON line: the final page's title, text and URL, and every
// console error (a Content-Security-Policy violation shows up there).
//
// Usage: node browser-connect.mjs CONNECT_URL PASSWORD

import { chromium } from 'playwright-core';

const [connectUrl, password] = process.argv.slice(2);
if (!connectUrl || !password) {
  console.error('usage: node browser-connect.mjs CONNECT_URL PASSWORD');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // Root in a container has no user namespace for Chromium's sandbox.
  args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
});
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') {
      consoleErrors.push({ text: message.text(), url: message.location().url });
    }
  });
  page.setDefaultTimeout(20_000);
  await page.goto(connectUrl);
  await page.getByRole('button', { name: /^Connect / }).click();
  await page.locator('#password').waitFor();
  await page.fill('#username', 'alice');
  await page.fill('#password', password);
  await page.click('#submit');
  await page.locator('#allow').click();
  await page.getByText('is connected').waitFor();
  console.log(JSON.stringify({
    title: await page.title(),
    text: (await page.textContent('main'))?.trim(),
    url: page.url(),
    console_errors: consoleErrors,
  }));
} finally {
  await browser.close();
}
