// @plugboard/sdk in headless Chromium: the popup's rules and the attacks on
// them (SECURITY.md 11 and 12), on SQLite.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBrowser, startCoopProxy } from './harness.mjs';
import {
  env, accounts, addIntegration, clickAndCloseEarly, clickConnect, consent, mint, openPage, outcome, signIn,
} from './setup.mjs';

test('a popup closed before it reaches the provider is user_cancelled within about a second', async () => {
  const page = await openPage(await mint('user-2'));
  const closedAt = await clickAndCloseEarly(page, 'acme');
  const result = await outcome(page);
  assert.equal(result.error, 'user_cancelled');
  assert.equal(result.name, 'PlugboardError');
  const waited = Date.now() - closedAt;
  assert.ok(waited < 5000, `noticed ${waited} ms after the popup closed`);
  assert.deepEqual(await page.evaluate(() => window.events), [
    { type: 'error', id: null, code: 'user_cancelled', instance: true },
  ]);
  assert.deepEqual(await accounts(page), []);
  await page.close();
});

test('aborting closes the popup at the provider and connects nothing; events arrive in order', async () => {
  const page = await openPage(await mint('user-2b'));
  const popup = await clickConnect(page, 'acme', {}, { abortable: true });
  await popup.waitForSelector('input[name=login]');
  // Closed at the provider, the popup may only have lost its opener to COOP:
  // connectApp keeps waiting for the attempt's outcome.
  await page.waitForTimeout(1500);
  assert.equal(await page.evaluate(() => window.outcome), null, 'still waiting for the user');
  await page.evaluate(() => window.controller.abort());
  const result = await outcome(page);
  assert.equal(result.error, 'aborted');
  await popup.waitForEvent('close', { timeout: 5000 }).catch(() => {});
  assert.ok(popup.isClosed(), 'aborting closed the popup');
  assert.deepEqual(await accounts(page), []);

  // Connect, then disconnect: connected, disconnected, each with its account.
  const popup2 = await clickConnect(page, 'acme', {}, { abortable: true });
  await signIn(popup2, 'dora');
  await consent(popup2);
  const connected = await outcome(page);
  assert.ok(connected.value, JSON.stringify(connected));
  // An abort after the attempt succeeded changes nothing.
  await page.evaluate(() => window.controller.abort());
  assert.equal((await accounts(page)).length, 1);
  await page.evaluate(() => window.record(window.pb.disconnectApp('acme')));
  assert.deepEqual(await outcome(page), { value: null });
  assert.deepEqual(await page.evaluate(() => window.events), [
    { type: 'error', id: null, code: 'aborted', instance: true },
    { type: 'connected', id: connected.value.id, code: null, instance: false },
    { type: 'disconnected', id: connected.value.id, code: null, instance: false },
  ]);
  await page.close();
});

test('refusing consent rejects with access_denied', async () => {
  const page = await openPage(await mint('user-3'));
  const popup = await clickConnect(page, 'acme');
  await signIn(popup, 'carol');
  await consent(popup, 'Deny');
  assert.equal((await outcome(page)).error, 'access_denied');
  assert.deepEqual(await accounts(page), []);
  await page.close();
});

test('one attempt at a time; a popup outside a click is blocked', async () => {
  const page = await openPage(await mint('user-4'));
  await clickConnect(page, 'acme', {}, { abortable: true });
  // A second click while the popup is open.
  const second = await page.evaluate(() => window.pb.connectApp('acme').then(() => 'resolved', (e) => e.code));
  assert.equal(second, 'connect_in_progress');
  await page.evaluate(() => window.controller.abort());
  assert.equal((await outcome(page)).error, 'aborted');
  await page.close();
  // Without a user's click (here: straight from page load), Chromium blocks the popup.
  const unprompted = await openPage(await mint('user-4'), { autoconnect: 'acme' });
  assert.equal((await outcome(unprompted)).error, 'popup_blocked');
  await unprompted.close();
});

test('an expired session is renewed through fetchSessionToken', async () => {
  const page = await openPage(await mint('renewed-user', { ttl: 1 }), { renew: true });
  await new Promise((r) => setTimeout(r, 1500));
  const before = env.site.stats.renewals;
  assert.deepEqual(await accounts(page), []);
  assert.equal(env.site.stats.renewals, before + 1, 'the SDK asked the page for a new token once');
  // Without fetchSessionToken the same situation is an error.
  const plain = await openPage(await mint('user-5', { ttl: 1 }));
  await new Promise((r) => setTimeout(r, 1500));
  await plain.evaluate(() => window.record(window.pb.getConnectedAccounts()));
  assert.equal((await outcome(plain)).error, 'session_expired');
  // A fetchSessionToken that throws: session_token_failed, the page's error as the cause.
  const failing = await openPage(await mint('user-5b', { ttl: 1 }), { renew: 'fail' });
  await new Promise((r) => setTimeout(r, 1500));
  await failing.evaluate(() => window.record(window.pb.getConnectedAccounts()));
  const result = await outcome(failing);
  assert.equal(result.error, 'session_token_failed');
  assert.equal(result.cause, 'the backend is down');
  await page.close();
  await plain.close();
  await failing.close();
});

test('a page on an origin the session does not allow gets origin_not_allowed', async () => {
  const token = await mint('user-6', { origins: ['http://localhost:1'] });
  const page = await openPage(token);
  await clickConnect(page, 'acme');
  const result = await outcome(page);
  assert.equal(result.error, 'origin_not_allowed');
  const list = await env.plugboard.api('GET', '/v1/connections?end_user_id=user-6', { key: env.key });
  assert.deepEqual(list.body.data, []);
  await page.close();
});

test('SECURITY 11: a page the session does not allow receives no message from the popup', async () => {
  // An attempt started by an allowed page (its Origin recorded)...
  const token = await mint('user-7');
  const started = await env.plugboard.api('POST', '/v1/sdk/connect', { key: token, origin: env.site.origin, body: { app: 'acme' } });
  assert.equal(started.status, 201);
  // ...whose popup URL a page on another origin (127.0.0.1 is another site than localhost) opens.
  const stranger = await env.browser.context.newPage();
  const strangerOrigin = env.site.origin.replace('localhost', '127.0.0.1');
  await stranger.goto(`${strangerOrigin}/#${new URLSearchParams({ server: env.plugboard.url, token })}`);
  await stranger.waitForFunction(() => window.ready || window.loadError);
  await stranger.evaluate((url) => { window.plan = { url }; }, started.body.popupUrl);
  const popupEvent = stranger.context().waitForEvent('page');
  await stranger.click('#open');
  const popup = await popupEvent;
  // SECURITY 33 stops it first: the popup asks only the attempt's own origin
  // for its proof, gets no answer, and never reaches the provider.
  await popup.waitForSelector('text=cannot continue here', { timeout: 15000 });
  assert.equal(await popup.locator('input[name=login]').count(), 0, 'the provider was never shown');
  assert.deepEqual(await stranger.evaluate(() => window.messages), [], 'no message reached the stranger');
  const list = await env.plugboard.api('GET', '/v1/connections?end_user_id=user-7', { key: env.key });
  assert.deepEqual(list.body.data, []);
  await popup.close();
  await stranger.close();
});

test('SECURITY 33: the popup URL opened in another browser is refused and links nothing', async () => {
  // The attacker starts an attempt as their own end user, from an allowed page...
  const attackerToken = await mint('attacker-1');
  const started = await env.plugboard.api('POST', '/v1/sdk/connect', { key: attackerToken, origin: env.site.origin, body: { app: 'acme' } });
  assert.equal(started.status, 201);
  assert.ok(started.body.popupProof && !started.body.popupUrl.includes(started.body.popupProof), 'the proof is never in a URL');
  // ...and sends its popup URL to a victim, who opens it in their own browser.
  const other = await startBrowser();
  try {
    const victim = await other.context.newPage();
    await victim.goto(started.body.popupUrl);
    await victim.waitForSelector('text=cannot continue here');
    assert.equal(await victim.locator('input[name=login]').count(), 0, 'the provider was never shown');
  } finally {
    await other.stop();
  }
  const status = await env.plugboard.api('GET', `/v1/sdk/connect/${started.body.attemptId}`, { key: attackerToken, origin: env.site.origin });
  assert.equal(status.body.status, 'pending', 'nothing was spent');
  const linked = await env.plugboard.api('GET', '/v1/connections?end_user_id=attacker-1', { key: env.key });
  assert.deepEqual(linked.body.data, []);
  // The normal flow still passes.
  const page = await openPage(await mint('user-11'));
  const popup = await clickConnect(page, 'acme');
  await signIn(popup, 'frank');
  await consent(popup);
  const result = await outcome(page);
  assert.equal(result.value.label, 'frank@example.test');
  await page.close();
});

test('SECURITY 12: behind a COOP provider, a slow sign-in connects and a popup closed early is user_cancelled', async (t) => {
  const proxy = await startCoopProxy(env.provider.issuer);
  await addIntegration('coop', proxy.url);
  const page = await openPage(await mint('user-8'));
  const popup = await clickConnect(page, 'coop');
  await popup.waitForSelector('input[name=login]');
  // A user who takes several seconds to sign in.
  await popup.waitForTimeout(6000);
  await signIn(popup, 'erin');
  await consent(popup);
  // Back on Plugboard's callback page, without an opener: it says to return.
  await popup.waitForSelector('#pb-return:not([hidden])');
  assert.equal(await popup.evaluate(() => window.opener), null);
  // The popup looked closed to the page from the moment COOP cut it off; the
  // attempt had reached the provider, so the SDK waited for its outcome.
  const result = await outcome(page);
  assert.equal(result.value?.label, 'erin@example.test', JSON.stringify(result));
  const list = await accounts(page, 'coop');
  assert.deepEqual(list.map((a) => a.label), ['erin@example.test']);
  // The popup's first page asked for its proof (to the page's exact origin);
  // no result message came after COOP cut the popup off.
  const seen = await page.evaluate(() => window.messages.filter((m) => m.data && m.data.type).map((m) => m.data.type));
  assert.deepEqual(seen, ['plugboard:hello'], 'no result message, and never to "*"');
  await popup.close();
  // Behind the same provider, a popup closed before it got there is still
  // user_cancelled within about a second.
  const closedAt = await clickAndCloseEarly(page, 'coop');
  assert.equal((await outcome(page)).error, 'user_cancelled');
  assert.ok(Date.now() - closedAt < 5000, 'noticed within seconds');
  await page.close();
  proxy.stop();
});

test('SECURITY 11: the SDK takes a result only from its popup, from Plugboard\'s origin, with its nonce', async () => {
  const page = await openPage(await mint('user-9'));
  const started = page.waitForResponse((r) => r.url().endsWith('/v1/sdk/connect') && r.request().method() === 'POST');
  const popup = await clickConnect(page, 'acme', {}, { abortable: true });
  const attempt = await (await started).json();
  await popup.waitForSelector('input[name=login]');
  const forged = (nonce) => ({
    type: 'plugboard:connect', attemptId: attempt.attemptId, status: 'succeeded', connectedAccountId: 'conn_forged', error: null, nonce,
  });
  const unsettled = async (what) => {
    await page.waitForTimeout(600);
    assert.equal(await page.evaluate(() => window.outcome), null, `${what} settled nothing`);
  };
  // The right window, the wrong origin: the popup itself, on the provider's page.
  await popup.evaluate((m) => window.opener.postMessage(m, '*'), forged(attempt.nonce));
  await unsettled('a message from the popup on the provider\'s origin');
  // The right origin, the wrong window: another window on Plugboard's origin.
  await page.evaluate((url) => { window.plan = { ...window.plan, url }; }, `${env.plugboard.url}/healthz`);
  const otherEvent = page.context().waitForEvent('page');
  await page.click('#open');
  const other = await otherEvent;
  await other.waitForLoadState();
  await other.evaluate((m) => window.opener.postMessage(m, '*'), forged(attempt.nonce));
  await unsettled('a message from another window of Plugboard\'s origin');
  await other.close();
  // The right window and origin, the wrong nonce: the popup, on a page of Plugboard's.
  // (Navigated from its own page: a navigation the browser starts would drop the opener.)
  const loaded = popup.waitForURL(`${env.plugboard.url}/healthz`);
  await popup.evaluate((url) => { window.location.href = url; }, `${env.plugboard.url}/healthz`);
  await loaded;
  await popup.evaluate((m) => window.opener.postMessage(m, '*'), forged('not-the-nonce'));
  await unsettled('a message with another nonce');
  // Neither: the page itself.
  await page.evaluate((m) => window.postMessage(m, '*'), forged(attempt.nonce));
  await unsettled('a message from the page itself');
  await page.evaluate(() => window.controller.abort());
  assert.equal((await outcome(page)).error, 'aborted');
  assert.deepEqual(await accounts(page), [], 'conn_forged was never believed');
  await page.close();
});

test('SECURITY 11: a result is posted only to the origin that started the attempt', async () => {
  const token = await mint('user-9b');
  const page = await openPage(token);
  const started = page.waitForResponse((r) => r.url().endsWith('/v1/sdk/connect') && r.request().method() === 'POST');
  const popup = await clickConnect(page, 'acme');
  const attempt = await (await started).json();
  await popup.waitForSelector('input[name=login]');
  // While the user signs in, the opener moves to another site (127.0.0.1 is another site than localhost).
  const strangerOrigin = env.site.origin.replace('localhost', '127.0.0.1');
  await page.goto(`${strangerOrigin}/#${new URLSearchParams({ server: env.plugboard.url, token })}`);
  await page.waitForFunction(() => window.ready || window.loadError);
  await signIn(popup, 'gus');
  await consent(popup);
  // The attempt ended in the state whose result the popup posts...
  let status;
  for (let i = 0; i < 50; i += 1) {
    status = await env.plugboard.api('GET', `/v1/sdk/connect/${attempt.attemptId}`, { key: token, origin: env.site.origin });
    if (status.body.status !== 'pending') break;
    await page.waitForTimeout(200);
  }
  assert.equal(status.body.status, 'succeeded');
  // ...and the opener, now on another origin, received none of it.
  await page.waitForTimeout(500);
  assert.deepEqual(await page.evaluate(() => window.messages.filter((m) => m.data && m.data.type)), []);
  if (!popup.isClosed()) await popup.close();
  await page.close();
});

test('the accounts of an app that does not exist are not_found, not an empty list', async () => {
  const page = await openPage(await mint('user-11'));
  await page.evaluate(() => window.record(window.pb.getConnectedAccounts('nope')));
  assert.equal((await outcome(page)).error, 'not_found');
  await page.close();
});

test('an unreachable server is network_error', async () => {
  const page = await openPage(await mint('user-10'));
  const code = await page.evaluate(async () => {
    const { Plugboard } = await import('/sdk/index.js');
    const pb = await Plugboard.create({ serverUrl: 'http://127.0.0.1:9', sessionToken: 'pb_cs_x' });
    return pb.listApps().then(() => 'resolved', (e) => e.code);
  });
  assert.equal(code, 'network_error');
  await page.close();
});
