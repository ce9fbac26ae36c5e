// Browser test of the UI page, run by tests/e2e/ui_browser.rs: logs in (HTTP Basic, as a launcher's
// window would), clicks "Snapshot now", waits for the task to succeed, then browses into the new snapshot.
// Arguments come from the environment: CAIRN_URL, CAIRN_PASSWORD, CAIRN_SOURCE, CAIRN_EXPECT_DIR,
// CAIRN_EXPECT_FILE, CAIRN_SCREENSHOT, CHROMIUM.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = env('CAIRN_URL');
const source = env('CAIRN_SOURCE');
const expectDir = env('CAIRN_EXPECT_DIR');
const expectFile = env('CAIRN_EXPECT_FILE');
const profile = mkdtempSync(join(tmpdir(), 'cairn-chromium-'));

const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  ignoreHTTPSErrors: true,
  httpCredentials: { username: 'cairn', password: env('CAIRN_PASSWORD') },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(60000);
  const response = await page.goto(url);
  if (response.status() !== 200) throw new Error(`GET / answered ${response.status()}`);
  const row = page.locator(`[data-testid="source-row"][data-path="${source}"]`);
  await row.waitFor();
  const before = Number(await row.locator('[data-testid="snapshot-count"]').textContent());

  await row.locator('[data-testid="snapshot-now"]').click();
  await page.locator('[data-testid="task-row"][data-kind="snapshot"]').first().waitFor();
  await page.locator('[data-testid="task-row"][data-kind="snapshot"][data-status="success"]').first().waitFor();
  await page.waitForFunction(
    ([path, n]) => {
      const r = document.querySelector(`[data-testid="source-row"][data-path="${path}"] [data-testid="snapshot-count"]`);
      return r && Number(r.textContent) === n;
    },
    [source, before + 1],
  );

  await row.locator('[data-testid="source-link"]').click();
  const snapshots = page.locator('[data-testid="snapshot-row"]');
  await snapshots.first().waitFor();
  if (await snapshots.count() !== before + 1) throw new Error(`expected ${before + 1} snapshots listed`);
  await snapshots.first().locator('[data-testid="snapshot-link"]').click();
  await page.locator('[data-testid="entry-dir"]', { hasText: expectDir }).click();
  await page.locator('[data-testid="browse-where"]', { hasText: `/${expectDir}` }).waitFor();
  await page.locator('[data-testid="entry-file"]', { hasText: expectFile }).waitFor();
  if (process.env.CAIRN_SCREENSHOT) await page.screenshot({ path: process.env.CAIRN_SCREENSHOT, fullPage: true });
  console.log('browser test passed');
} catch (e) {
  failed = true;
  console.error('browser test failed:', e);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
