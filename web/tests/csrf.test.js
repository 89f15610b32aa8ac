// A signed-in browser visiting another origin's page (another port of 127.0.0.1: the same
// site, so SameSite sends the cookie, and only the origin check stands in the way): its form
// posts are refused with csrf-refused, and its scripts can neither read the API with the
// cookie nor write through it.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { launch, signUp, startServer, withPage } from './support.js';

let server;
let browser;
let evil;
let evilUrl;

before(async () => {
  [server, browser] = await Promise.all([startServer(), launch()]);
  evil = http.createServer((request, response) => {
    response.setHeader('content-type', 'text/html');
    if (request.url === '/form') {
      response.end(`<!doctype html><form id="f" method="post" action="${server.url}/v1/api-keys" enctype="text/plain">
        <input name='{"name":"stolen","x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`);
    } else {
      response.end('<!doctype html><title>another origin</title>');
    }
  });
  await new Promise((resolve) => evil.listen(0, '127.0.0.1', resolve));
  evilUrl = `http://127.0.0.1:${evil.address().port}`;
});
after(async () => {
  evil?.close();
  await browser?.close();
  await server?.stop();
});

async function keyNames(page) {
  await page.goto(`${server.url}/account`);
  return page.evaluate(() => fetch('/v1/api-keys').then((r) => r.json()).then((keys) => keys.map((k) => k.name)));
}

test("another origin's form post with the session cookie is refused", async () => {
  await withPage(browser, 'csrf-form-post', async (page) => {
    await signUp(page, server.url, 'eve-target@example.com');
    await page.goto(`${evilUrl}/form`);
    await page.waitForURL(`${server.url}/v1/api-keys`);
    const body = JSON.parse(await page.locator('body').textContent());
    assert.equal(body.error.code, 'csrf-refused');
    assert.deepEqual(await keyNames(page), []);
  });
});

test("another origin's script cannot use the session cookie", async () => {
  await withPage(browser, 'csrf-cross-origin-script', async (page) => {
    await signUp(page, server.url, 'fay@example.com');
    await page.goto(`${evilUrl}/`);
    const outcome = await page.evaluate(async (api) => {
      const result = {};
      try {
        const r = await fetch(`${api}/v1/me`, { credentials: 'include' });
        result.read = await r.text();
      } catch (e) {
        result.read = `refused: ${e.name}`;
      }
      // A "simple" request, sent without a preflight: the server sees it, with the cookie.
      await fetch(`${api}/v1/api-keys`, {
        method: 'POST', mode: 'no-cors', credentials: 'include',
        headers: { 'content-type': 'text/plain' }, body: '{"name":"stolen"}',
      }).catch(() => {});
      try {
        await fetch(`${api}/v1/api-keys`, {
          method: 'POST', credentials: 'include',
          headers: { 'content-type': 'application/json' }, body: '{"name":"stolen"}',
        });
        result.json = 'sent';
      } catch (e) {
        result.json = `refused: ${e.name}`;
      }
      return result;
    }, server.url);
    assert.equal(outcome.read, 'refused: TypeError', 'the browser let the script read the answer');
    assert.equal(outcome.json, 'refused: TypeError', 'the preflight was granted');
    assert.deepEqual(await keyNames(page), []);
  });
});
