// The browser tests' world: the real `vidsnap serve` on port 0 with a fresh data directory,
// Debian's Chromium driven by playwright-core (no browser is downloaded), clips generated
// with ffmpeg, and a screenshot of the page when a test fails.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const resultsDir = path.join(here, '..', 'test-results');

// The binary `make test` built (VIDSNAP_BIN), else the debug build in CARGO_TARGET_DIR.
function binary() {
  if (process.env.VIDSNAP_BIN) return process.env.VIDSNAP_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(here, '..', '..', 'target');
  return path.join(target, 'debug', 'vidsnap');
}

const FAST = {
  VIDSNAP_API__PASSWORD_COST__MEMORY_KIB: '1024',
  VIDSNAP_API__PASSWORD_COST__ITERATIONS: '1',
  VIDSNAP_WORKER__LEASE_SECONDS: '3',
  VIDSNAP_WORKER__BACKOFF__BASE_SECONDS: '0.2',
  VIDSNAP_WORKER__BACKOFF__MAX_SECONDS: '1',
  VIDSNAP_WORKER__SHUTDOWN_GRACE_SECONDS: '1',
  VIDSNAP_LOG: 'warn',
};

// Starts the service; resolves once it prints the URL it listens on.
export async function startServer() {
  const dir = mkdtempSync(path.join(tmpdir(), 'vidsnap-web-'));
  const env = { ...process.env, ...FAST };
  delete env.VIDSNAP_CONFIG;
  const child = spawn(binary(), ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data')], {
    cwd: dir, env, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('vidsnap serve did not start within 30 s')), 30000);
    child.once('exit', (code) => reject(new Error(`vidsnap serve exited (${code}): is ${binary()} built?`)));
    child.once('error', (e) => reject(new Error(`${binary()}: ${e.message} (build it: cargo build -p vidsnap, or set VIDSNAP_BIN)`)));
    lines.on('line', (line) => {
      const found = line.split(/\s+/).find((w) => w.startsWith('http://'));
      if (found) { clearTimeout(timer); resolve(found); }
    });
  });
  return {
    url,
    dir,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => { if (child.exitCode !== null) resolve(); else child.once('exit', resolve); });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // Root in CI has no user namespaces for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

// A clip of `seconds` from ffmpeg's test sources (picture and tone), at about `kbps`.
export function clip(dir, name, seconds, kbps = 300) {
  const file = path.join(dir, name);
  execFileSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc=size=320x240:rate=25:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', `${kbps}k`, '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-shortest', file]);
  return file;
}

// Bytes that are no video, under a video's name: the job fails on them.
export function notAVideo(dir, name) {
  const file = path.join(dir, name);
  writeFileSync(file, Buffer.alloc(4096, 'not a video '));
  return file;
}

// Runs `body(page)` in a fresh browser context (no cookies); on failure saves a screenshot
// to web/test-results/NAME.png and rethrows.
export async function withPage(browser, name, body) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`page error: ${e.message}`));
  try {
    await body(page, context);
  } catch (error) {
    mkdirSync(resultsDir, { recursive: true });
    const shot = path.join(resultsDir, `${name.replace(/[^a-z0-9]+/gi, '-')}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    error.message += `\n  screenshot: ${shot}\n  console:\n    ${logs.join('\n    ')}`;
    throw error;
  } finally {
    await context.close();
  }
}

// Signs up a new user through the page and waits for the jobs page.
export async function signUp(page, url, email) {
  await page.goto(`${url}/signup`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.waitForURL(`${url}/jobs`);
}
