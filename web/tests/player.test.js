// A packaged job plays in the page: HLS through hls.js and DASH through dash.js, each loading
// the stream's metadata and listing its renditions.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { clip, launch, signUp, startServer, withPage } from './support.js';

let server;
let browser;

before(async () => {
  [server, browser] = await Promise.all([startServer(), launch()]);
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a packaged job plays over HLS and DASH with its renditions listed', async () => {
  const video = clip(mkdtempSync(path.join(tmpdir(), 'vidsnap-clips-')), 'show.mp4', 6);
  await withPage(browser, 'player', async (page) => {
    await signUp(page, server.url, 'gil@example.com');
    await page.goto(`${server.url}/upload`);
    await page.getByLabel('Recipe').selectOption('package');
    await page.getByLabel('ladder').fill('240,160');
    await page.getByLabel('segment').fill('2');
    await page.setInputFiles('#files', video);
    await page.locator('li.upload[data-done="true"]').getByRole('link', { name: 'Job' }).click();
    await page.locator('[data-step="package"][data-status="succeeded"]').waitFor({ timeout: 90000 });
    const player = page.locator('section.player');
    for (const format of ['HLS', 'DASH']) {
      await player.getByRole('button', { name: format }).click();
      await player.getByText(`${format}: ready`).waitFor();
      await page.waitForFunction(() => document.querySelector('section.player video').readyState >= 1, null, { timeout: 30000 });
      await page.waitForFunction(() => document.querySelectorAll('#rendition option').length >= 3, null, { timeout: 30000 });
      const options = await page.locator('#rendition option').allTextContents();
      assert.ok(options.some((o) => o.startsWith('240p')), `${format}: ${options}`);
    }
  });
});
