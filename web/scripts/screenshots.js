// Screenshots of the web UI's main pages into docs/screenshots/, from a fresh service with a
// generated clip: `scripts/screenshots.sh` (or `make screenshots`) runs this.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { clip, launch, signUp, startServer } from '../tests/support.js';

const out = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'screenshots');
const files = mkdtempSync(path.join(tmpdir(), 'vidsnap-shots-'));
const video = clip(files, 'holiday.mp4', 8);
const [server, browser] = await Promise.all([startServer(), launch()]);
const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
const page = await context.newPage();
const shot = async (name, full = true) => {
  await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: full });
  console.log(`docs/screenshots/${name}.png`);
};

async function upload(recipe, fill) {
  await page.goto(`${server.url}/upload`);
  await page.getByLabel('Recipe').selectOption(recipe);
  if (fill) await fill();
  await page.setInputFiles('#files', video);
  const row = page.locator('li.upload[data-done="true"]').last();
  await row.waitFor();
  return row.getByRole('link', { name: 'Job' }).getAttribute('href');
}

try {
  await page.goto(`${server.url}/signin`);
  await shot('sign-in');
  await signUp(page, server.url, 'ana@example.com');
  const frames = await upload('frames', () => page.getByLabel('every').fill('1s'));
  await shot('upload');
  const qc = await upload('qc');
  await page.goto(`${server.url}${frames}`);
  await page.locator('[data-step="frames"][data-status="succeeded"]').waitFor({ timeout: 60000 });
  await shot('job');
  await page.getByRole('link', { name: /Frame gallery/ }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('.gallery img')].every((i) => i.complete && i.naturalWidth > 0));
  await shot('gallery');
  await page.goto(`${server.url}${qc}`);
  await page.locator('.qc table').waitFor({ timeout: 60000 });
  await shot('qc-report');
  await page.goto(`${server.url}/jobs`);
  await page.locator('tbody tr').first().waitFor();
  await shot('jobs');
  await page.getByRole('link', { name: 'Account' }).click();
  await page.getByLabel('Name').fill('laptop');
  await page.getByRole('button', { name: 'Create key' }).click();
  await page.locator('.secret-value').waitFor();
  await shot('account');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${server.url}/jobs`);
  await page.locator('tbody tr').first().waitFor();
  await shot('jobs-phone', false);
} finally {
  await browser.close();
  await server.stop();
}
