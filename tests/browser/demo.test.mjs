// The README's demo command, as a newcomer runs it: `cargo xtask demo`, open
// the printed URL, sign in, connect an account through the provider's real
// login page, see it listed; Ctrl-C stops everything; a second run works too.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBrowser } from './harness.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let browser;

after(async () => {
  await browser?.stop();
});

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs `cargo xtask demo` in its own process group; resolves with the URL it prints. */
async function runDemo() {
  const env = {
    ...process.env,
    DEMO_APP_PORT: String(await freePort()),
    DEMO_PLUGBOARD_PORT: String(await freePort()),
    DEMO_PROVIDER_PORT: String(await freePort()),
  };
  const child = spawn('cargo', ['xtask', 'demo'], { cwd: repo, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo printed no URL:\n${output}`)), 600_000);
    const read = (chunk) => {
      output += chunk;
      const match = output.match(/Open (http:\/\/localhost:\d+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => reject(new Error(`the demo exited (${code}):\n${output}`)));
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    url,
    /** Ctrl-C: SIGINT to the whole process group, as a terminal sends it. */
    async stop() {
      process.kill(-child.pid, 'SIGINT');
      return exited;
    },
  };
}

async function connectThroughTheApp(url, person, account) {
  const page = await browser.context.newPage();
  await page.goto(url);
  await page.fill('#name', person);
  await page.click('button[type=submit]');
  const connect = page.locator('button[data-app="local-idp"]');
  await connect.waitFor();
  const popupEvent = page.context().waitForEvent('page');
  await connect.click();
  const popup = await popupEvent;
  await popup.fill('input[name=login]', account);
  await popup.click('button[type=submit]');
  await popup.click('button:has-text("Allow")');
  await page.locator('.account .label', { hasText: `${account}@example.test` }).waitFor({ timeout: 30_000 });
  const labels = await page.locator('.account .label').allTextContents();
  // What the connection is for: a function run on it, answered by the provider.
  await page.click('.account button[data-function="whoami"]');
  await page.locator('.account .output', { hasText: `${account}@example.test` }).waitFor({ timeout: 30_000 });
  await page.close();
  return labels;
}

test('the demo command lets a newcomer connect an account, and runs again after Ctrl-C', { timeout: 900_000 }, async (t) => {
  browser = await startBrowser();
  const t0 = Date.now();
  const mark = (what) => t.diagnostic(`${what} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  for (const run of [1, 2]) {
    const demo = await runDemo();
    mark(`run ${run}: the demo printed its URL`);
    try {
      const labels = await connectThroughTheApp(demo.url, 'Ada', `ada${run}`);
      assert.deepEqual(labels, [`ada${run}@example.test`], `run ${run}`);
      mark(`run ${run}: the account was listed`);
    } finally {
      const { code, signal } = await demo.stop();
      assert.ok(code === 0 || signal === 'SIGINT', `run ${run} stopped cleanly (${code}, ${signal})`);
    }
    mark(`run ${run}: the demo stopped`);
    // Everything it started is gone: the app's port is free again.
    const page = await browser.context.newPage();
    const reached = await page.goto(demo.url).then(() => true, () => false);
    assert.equal(reached, false, 'nothing answers after Ctrl-C');
    await page.close();
  }
});
