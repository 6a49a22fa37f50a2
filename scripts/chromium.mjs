// Headless Debian Chromium driven by playwright-core (no browser downloads),
// with the flags this environment needs. Shared by the browser tests
// (tests/browser.test.mjs, tests/web.test.mjs) and npm run bench:browser.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** A persistent context in a fresh profile; close() also removes the profile. */
export async function launchChromium(options = {}) {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium; npm test installs it as root)`);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mha-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    ...options,
  });
  const close = context.close.bind(context);
  context.close = async () => {
    await close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return context;
}

/** Collects page errors and console errors; problems() lists them. */
export function watch(page) {
  const seen = [];
  page.on('pageerror', (e) => seen.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') seen.push(`console.error: ${m.text()}`); });
  return { problems: () => seen.slice() };
}
