// @plugboard/sdk in headless Chromium, the core of it: connect, list,
// reconnect and disconnect. `cargo xtask test` runs this file on SQLite and on
// PostgreSQL.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { env, accounts, connect, mint, openPage, outcome } from './setup.mjs';

test('connects accounts, lists them, reconnects one in place and disconnects one', async () => {
  const page = await openPage(await mint('user-1'));
  const apps = await page.evaluate(() => window.pb.listApps());
  assert.deepEqual(apps.map((a) => [a.key, a.authType, a.multipleAccounts]), [['acme', 'oauth2_authorization_code', true]]);

  const first = await connect(page, 'alice');
  assert.ok(first.value, JSON.stringify(first));
  assert.equal(first.value.app, 'acme');
  assert.equal(first.value.label, 'alice@example.test');
  assert.equal(first.value.status, 'active');
  assert.ok(first.value.scopes.includes('openid'));
  assert.match(first.value.createdAt, /^\d{4}-\d\d-\d\dT/);
  assert.deepEqual((await accounts(page)).map((a) => a.label), ['alice@example.test']);

  const second = await connect(page, 'bob');
  assert.equal(second.value.label, 'bob@example.test');
  assert.equal((await accounts(page, 'acme')).length, 2);

  // Reconnecting the first account updates it: no duplicate.
  const again = await connect(page, 'alice', { connectedAccountId: first.value.id });
  assert.equal(again.value.id, first.value.id);
  assert.equal((await accounts(page)).length, 2);

  // With two accounts, disconnecting needs an id; with one given, that one goes.
  await page.evaluate(() => window.record(window.pb.disconnectApp('acme')));
  assert.equal((await outcome(page)).error, 'account_ambiguous');
  await page.evaluate((id) => window.record(window.pb.disconnectApp('acme', { connectedAccountId: id })), second.value.id);
  assert.deepEqual(await outcome(page), { value: null });
  assert.deepEqual((await accounts(page)).map((a) => a.id), [first.value.id]);
  await page.close();
});

