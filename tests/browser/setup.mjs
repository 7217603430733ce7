// The shared set-up of the browser tests: Plugboard (on the engine named by
// PLUGBOARD_BROWSER_ENGINE, SQLite by default) on http://127.0.0.1, the OpenID
// provider on http://[::1], the customer's page on http://localhost, Chromium,
// and the steps a person takes in them.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  OPERATOR_TOKEN,
  buildApps,
  installSdk,
  startBrowser,
  startCoopProxy,
  startPage,
  startPlugboard,
  startProvider,
} from './harness.mjs';

const engine = process.env.PLUGBOARD_BROWSER_ENGINE || 'sqlite';

/** What the set-up started, filled in before the tests run. */
export const env = {};

export async function mint(endUser, { ttl, origins } = {}) {
  const body = { end_user_id: endUser, allowed_origins: origins || [env.site.origin] };
  if (ttl) body.ttl_seconds = ttl;
  const reply = await env.plugboard.api('POST', '/v1/connect/sessions', { key: env.key, body });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return reply.body.token;
}

/** Builds the TypeScript app with Vite and webpack and serves each under /apps/<bundler>/. */
export async function serveBuiltApps() {
  const built = await buildApps(env.sdkDir);
  for (const [bundler, dir] of Object.entries(built)) env.site.mount(`/apps/${bundler}/`, dir);
  return Object.keys(built);
}

export async function addIntegration(appKey, issuer, extra = {}) {
  const body = {
    key: appKey,
    label: 'Test provider',
    auth_type: 'oauth2_authorization_code',
    client_id: 'to-be-registered',
    client_secret: 'to-be-registered',
    scopes: ['openid', 'email', 'offline_access'],
    authorization_url: `${issuer}/auth`,
    token_url: `${env.provider.issuer}/token`,
    issuer: env.provider.issuer,
    jwks_url: `${env.provider.issuer}/jwks`,
    userinfo_url: `${env.provider.issuer}/me`,
    revocation_url: `${env.provider.issuer}/token/revocation`,
    authorization_params: { prompt: 'login consent' },
    multiple_accounts: true,
    ...extra,
  };
  const created = await env.plugboard.api('POST', '/v1/integrations', { key: env.key, body });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const client = await env.provider.register(created.body.callback_url);
  const patched = await env.plugboard.api('PATCH', `/v1/integrations/${appKey}`, {
    key: env.key,
    body: { client_id: client.client_id, client_secret: client.client_secret },
  });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
}

before(async () => {
  const sdkDir = installSdk();
  env.sdkDir = sdkDir;
  env.plugboard = await startPlugboard(engine);
  env.provider = await startProvider();
  const project = await env.plugboard.api('POST', '/v1/admin/projects', { key: OPERATOR_TOKEN, body: { name: 'Browser tests' } });
  env.key = project.body.secret_key;
  await addIntegration('acme', env.provider.issuer);
  env.site = await startPage({ sdkDir, renew: () => mint('renewed-user') });
  env.browser = await startBrowser();
});

after(async () => {
  await env.browser?.stop();
  env.site?.stop();
  env.provider?.stop();
  await env.plugboard?.stop();
});

/** The customer's page, with a session token for it. */
export async function openPage(token, { renew = false, origin, autoconnect } = {}) {
  const page = await env.browser.context.newPage();
  const hash = new URLSearchParams({ server: env.plugboard.url, token });
  if (renew) hash.set('renew', renew === 'fail' ? 'fail' : '1');
  if (autoconnect) hash.set('autoconnect', autoconnect);
  await page.goto(`${origin || env.site.origin}/#${hash}`);
  await page.waitForFunction(() => window.ready || window.loadError);
  assert.equal(await page.evaluate(() => window.loadError ?? null), null, 'the page loaded the SDK');
  return page;
}

/** Clicks Connect for `app` and returns the popup; with `abortable`, the
 * page's `window.controller` aborts the attempt. */
export async function clickConnect(page, app, options = {}, { abortable = false } = {}) {
  await page.evaluate(([a, o, ab]) => { window.plan = { app: a, options: o, abortable: ab }; }, [app, options, abortable]);
  const popup = page.context().waitForEvent('page');
  await page.click('#connect');
  return popup;
}

/**
 * Clicks Connect for `app` and closes the popup before it can reach the
 * provider: Plugboard's first popup page is held unanswered, so the popup
 * never proves its opener. Answers the time it was closed.
 */
export async function clickAndCloseEarly(page, app) {
  const held = (url) => url.pathname.startsWith('/connect/');
  const context = page.context();
  await context.route(held, () => {});
  const popup = await clickConnect(page, app);
  await popup.close();
  const closedAt = Date.now();
  await context.unroute(held);
  return closedAt;
}

export async function signIn(popup, account) {
  await popup.waitForSelector('input[name=login]');
  await popup.fill('input[name=login]', account);
  await popup.click('button[type=submit]');
}

export async function consent(popup, button = 'Allow') {
  await popup.waitForSelector(`button:has-text("${button}")`);
  await popup.click(`button:has-text("${button}")`);
}

export async function outcome(page) {
  await page.waitForFunction(() => window.outcome !== null, null, { timeout: 30000 });
  const result = await page.evaluate(() => window.outcome);
  if (result.error) assert.ok(result.instance, `every failure is a PlugboardError: ${JSON.stringify(result)}`);
  return result;
}

export async function connect(page, account, options = {}) {
  const popup = await clickConnect(page, 'acme', options);
  await signIn(popup, account);
  await consent(popup);
  return outcome(page);
}

export async function accounts(page, app) {
  await page.evaluate((a) => window.record(window.pb.getConnectedAccounts(a)), app);
  const result = await outcome(page);
  assert.ok(result.value, JSON.stringify(result));
  return result.value;
}

