// The package as a user's project consumes it: a page in strict TypeScript
// (`exactOptionalPropertyTypes`), type-checked and built by Vite and by
// webpack 5 with no configuration for the package, then connecting an
// account in Chromium from each build.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { env, mint, serveBuiltApps, signIn, consent } from './setup.mjs';

let bundlers = [];
before(async () => {
  bundlers = await serveBuiltApps();
});

test('the TypeScript page type-checks and builds with Vite and webpack, and each build connects an account', async () => {
  assert.deepEqual(bundlers, ['vite', 'webpack']);
  for (const bundler of bundlers) {
    const page = await env.browser.context.newPage();
    const hash = new URLSearchParams({ server: env.plugboard.url, token: await mint(`bundled-${bundler}`) });
    await page.goto(`${env.site.origin}/apps/${bundler}/index.html#${hash}`);
    await page.waitForFunction(() => window.ready || window.loadError);
    assert.equal(await page.evaluate(() => window.loadError ?? null), null, `${bundler}: the build loaded the SDK`);
    const popupEvent = page.context().waitForEvent('page');
    await page.click('#connect');
    const popup = await popupEvent;
    await signIn(popup, `${bundler}-user`);
    await consent(popup);
    await page.waitForFunction(() => window.outcome !== null, null, { timeout: 30000 });
    const outcome = await page.evaluate(() => window.outcome);
    assert.equal(outcome.value?.label, `${bundler}-user@example.test`, `${bundler}: ${JSON.stringify(outcome)}`);
    assert.deepEqual(await page.evaluate(() => window.events), [`connected:${outcome.value.id}`]);
    await page.close();
  }
});
