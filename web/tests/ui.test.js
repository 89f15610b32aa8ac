// The web UI in a real headless Chromium against the real service: sign-up, an upload through
// the page followed to success without a reload, the frame gallery's images, a failed job
// retried, an API key created and revoked, an upload resumed after a reload.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { clip, launch, notAVideo, signUp, startServer, withPage } from './support.js';

let server;
let browser;
let files;

before(async () => {
  [server, browser] = await Promise.all([startServer(), launch()]);
  files = mkdtempSync(path.join(tmpdir(), 'vidsnap-clips-'));
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

test('sign up, upload a clip through the page, watch it succeed without reloading, see the gallery', async () => {
  const video = clip(files, 'holiday.mp4', 4);
  await withPage(browser, 'upload-and-gallery', async (page) => {
    await signUp(page, server.url, 'ana@example.com');
    await page.getByRole('link', { name: 'Upload', exact: true }).click();
    await page.getByLabel('Recipe').selectOption('frames');
    await page.getByLabel('every').fill('1s');
    await page.setInputFiles('#files', video);
    const row = page.locator('li.upload[data-file="holiday.mp4"]');
    await page.locator('li.upload[data-file="holiday.mp4"][data-done="true"]').waitFor();
    // A marker that a reload would lose: the status changes arrive by events.
    await page.evaluate(() => { window.stillTheSamePage = true; });
    await row.getByRole('link', { name: 'Job' }).click();
    await page.locator('[data-step="frames"][data-status="succeeded"]').waitFor({ timeout: 60000 });
    assert.equal(await page.evaluate(() => window.stillTheSamePage), true, 'the page was reloaded');
    await page.getByRole('link', { name: /Frame gallery/ }).click();
    const images = page.locator('.gallery img');
    await images.first().waitFor();
    assert.ok(await images.count() >= 4, `${await images.count()} frames`);
    await page.waitForFunction(() => [...document.querySelectorAll('.gallery img')].every((i) => i.complete));
    const widths = await images.evaluateAll((all) => all.map((i) => i.naturalWidth));
    assert.ok(widths.every((w) => w > 0), `an image did not load: ${widths}`);
    await page.locator('.gallery').getByText(/requested 1\.00 s/).waitFor();
    await images.first().click();
    const large = page.locator('dialog[open] img');
    await large.waitFor();
    await page.waitForFunction(() => document.querySelector('dialog[open] img').naturalWidth > 0);
    await page.getByRole('button', { name: 'Close' }).click();
  });
});

test('a failed job shows its error in words and its step can be retried', async () => {
  const broken = notAVideo(files, 'broken.mp4');
  await withPage(browser, 'retry-failed-job', async (page) => {
    await signUp(page, server.url, 'ben@example.com');
    await page.goto(`${server.url}/upload`);
    await page.setInputFiles('#files', broken);
    const row = page.locator('li.upload[data-file="broken.mp4"]');
    await row.getByRole('link', { name: 'Job' }).click();
    const step = page.locator('[data-step="frames"][data-status="failed"]');
    await step.waitFor({ timeout: 60000 });
    await step.locator('.error').getByText(/not-a-video|corrupt-input/).waitFor();
    await page.getByText('run 1').waitFor();
    await page.getByRole('button', { name: 'Retry frames' }).click();
    await page.getByText('run 2').waitFor();
    await page.locator('[data-step="frames"][data-status="failed"]').waitFor({ timeout: 60000 });
  });
});

test('an API key is created, shown once, works, and is revoked', async () => {
  await withPage(browser, 'api-keys', async (page) => {
    await signUp(page, server.url, 'cy@example.com');
    await page.getByRole('link', { name: 'Account' }).click();
    await page.getByLabel('Name').fill('laptop');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = await page.locator('.secret-value').textContent();
    assert.match(secret, /^vsk_[0-9a-f]{64}$/);
    const me = (key) => fetch(`${server.url}/v1/me`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal((await me(secret)).status, 200);
    page.once('dialog', (dialog) => dialog.accept());
    await page.getByRole('button', { name: 'Revoke laptop' }).click();
    await page.locator('tr[data-key="laptop"]').getByText('revoked').waitFor();
    assert.equal((await me(secret)).status, 401);
    // Shown once: a reload lists the key without its secret.
    await page.reload();
    await page.locator('tr[data-key="laptop"]').waitFor();
    assert.equal(await page.locator('.secret-value').count(), 0);
  });
});

test('an upload interrupted by a reload resumes from the server offset', async () => {
  const big = clip(files, 'long.mp4', 12, 1500);
  await withPage(browser, 'resume-after-reload', async (page) => {
    await signUp(page, server.url, 'dee@example.com');
    await page.evaluate(() => localStorage.setItem('vidsnap.uploadChunkBytes', String(256 * 1024)));
    // Each piece waits a moment on its way, so the reload comes half-way.
    const slow = (route) => setTimeout(() => route.continue().catch(() => {}), 150);
    await page.route('**/v1/uploads/**', slow);
    await page.goto(`${server.url}/upload`);
    await page.setInputFiles('#files', big);
    await page.waitForFunction(() => Number(document.querySelector('li.upload')?.dataset.offset) >= 512 * 1024);
    await page.reload();
    await page.unroute('**/v1/uploads/**', slow);
    await page.getByRole('heading', { name: 'Unfinished uploads' }).waitFor();
    await page.setInputFiles('#files', big);
    const row = page.locator('li.upload[data-file="long.mp4"]');
    await page.locator('li.upload[data-resumed="true"]').waitFor();
    await page.locator('li.upload[data-done="true"]').waitFor({ timeout: 60000 });
    const videos = await page.evaluate(() => fetch('/v1/videos').then((r) => r.json()));
    const named = videos.items.filter((v) => v.file_name === 'long.mp4');
    assert.equal(named.length, 1, 'one video: the upload was continued, not started again');
    assert.ok(await row.count());
  });
});
