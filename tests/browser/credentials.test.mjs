// The auth types without OAuth through @plugboard/sdk in headless Chromium:
// connectApp opens Plugboard's credential form in the popup, and the same
// three sites as every browser test (the page on localhost, Plugboard on
// 127.0.0.1). Each type against a server that checks what it receives:
// nginx's auth_basic for the Basic family, tests/upstream/upstream.py for
// keys and AWS SigV4 (signatures recomputed by botocore).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startNginx, startUpstream } from './harness.mjs';
import { env, accounts, clickConnect, mint, openPage, outcome } from './setup.mjs';

const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const servers = {};
const cases = [];

async function create(body) {
  const created = await env.plugboard.api('POST', '/v1/integrations', { key: env.key, body });
  assert.equal(created.status, 201, JSON.stringify(created.body));
}

// Made by the first test that needs them, after the shared set-up's hook
// (whose order against this file's hooks node does not promise).
let prepared = null;
function prepare() {
  prepared ??= setUp();
  return prepared;
}

async function setUp() {
  servers.upstream = await startUpstream({ accounts: [
    { checks: [{ in: 'header', name: 'X-API-Key', value: 'Token key-ok' }], answer: { email: 'kim@example.test' } },
    { checks: [{ in: 'query', name: 'key', value: 'k-ok' }, { in: 'query', name: 'secret', value: 's-ok' }], answer: {} },
    { checks: [{ in: 'header', name: 'Authorization', value: 'Bearer url-key' }], answer: { email: 'lee@example.test' } },
    { aws: { access_key_id: 'AKIDEXAMPLE', secret_access_key: AWS_SECRET, region: 'eu-west-1', service: 's3' },
      answer: { Owner: { DisplayName: 'Acme storage' } } },
  ] });
  servers.nginx = await startNginx({ user: 'ana', password: 'pässword:1 x' });
  servers.keyed = await startNginx({ user: 'ana', password: 'pässword:1 x', header: { name: 'X-Tenant', value: 't-42' } });
  const up = servers.upstream.url;
  await create({
    key: 'keys', label: 'Acme CRM', auth_type: 'api_key', api_key_name: 'X-API-Key', api_key_prefix: 'Token ',
    api_base_url: up, docs_url: 'https://docs.example.test/keys',
    credential_help: 'Open Settings, then API, and copy your key.',
    test_request: { path: '/me', label_pointer: '/email' },
  });
  await create({
    key: 'keypair', auth_type: 'api_key_secret', api_key_in: 'query', api_key_name: 'key', api_secret_name: 'secret',
    api_base_url: up, test_request: { path: '/pair' }, multiple_accounts: true,
  });
  await create({
    key: 'keyurl', auth_type: 'api_key_url', api_key_name: 'Authorization', api_key_prefix: 'Bearer ',
    test_request: { path: '/me', label_pointer: '/email' },
  });
  await create({ key: 'basic', auth_type: 'basic', api_base_url: servers.nginx.url, test_request: { path: '/me' } });
  await create({ key: 'basicurl', auth_type: 'basic_url', test_request: { path: '/me' } });
  await create({ key: 'basickey', auth_type: 'basic_api_key', api_key_name: 'X-Tenant', test_request: { path: '/me' } });
  await create({
    key: 'aws', auth_type: 'aws_sigv4', aws_service: 's3', api_base_url: up,
    test_request: { path: '/?max-keys=1', label_pointer: '/Owner/DisplayName' },
  });
  const basic = { username: 'ana', password: 'pässword:1 x' };
  cases.push(
    { app: 'keys', right: { api_key: 'key-ok' }, wrong: { api_key: 'key-bad-canary-1' }, label: 'kim@example.test' },
    { app: 'keypair', right: { api_key: 'k-ok', api_secret: 's-ok', account_name: 'Sales' },
      wrong: { api_key: 'k-ok', api_secret: 's-bad-canary-2' }, label: 'Sales' },
    { app: 'keyurl', right: { base_url: up, api_key: 'url-key' }, wrong: { base_url: up, api_key: 'url-bad-canary-3' },
      label: 'lee@example.test' },
    { app: 'basic', right: basic, wrong: { ...basic, password: 'bad-canary-4' }, label: null },
    { app: 'basicurl', right: { base_url: servers.nginx.url, ...basic },
      wrong: { base_url: servers.nginx.url, ...basic, password: 'bad-canary-5' }, label: null },
    { app: 'basickey', right: { base_url: servers.keyed.url, ...basic, api_key: 't-42' },
      wrong: { base_url: servers.keyed.url, ...basic, api_key: 'bad-canary-6' }, label: null },
    { app: 'aws', right: { access_key_id: 'AKIDEXAMPLE', secret_access_key: AWS_SECRET, region: 'eu-west-1' },
      wrong: { access_key_id: 'AKIDEXAMPLE', secret_access_key: 'bad-canary-7', region: 'eu-west-1' }, label: 'Acme storage' },
  );
}

after(() => {
  for (const server of Object.values(servers)) server.stop();
});

async function fill(popup, fields) {
  for (const [name, value] of Object.entries(fields)) await popup.fill(`input[name="${name}"]`, value);
  await popup.click('#pb-submit');
}

async function serverSide(endUser) {
  const list = await env.plugboard.api('GET', `/v1/connections?end_user_id=${endUser}`, { key: env.key });
  return list.body.data;
}

test('every auth type without OAuth: the form refuses a wrong credential, connects a right one, lists and disconnects it', async () => {
  await prepare();
  for (const c of cases) {
    const user = `cred-${c.app}`;
    const page = await openPage(await mint(user));
    const popup = await clickConnect(page, c.app);
    await popup.waitForSelector('#pb-submit');
    assert.match(popup.url(), /^http:\/\/127\.0\.0\.1:\d+\/connect\/att_[^/]+\/form$/, c.app);
    if (c.app === 'keys') {
      assert.equal(await popup.textContent('#pb-title'), 'Connect Acme CRM');
      assert.equal(await popup.textContent('#pb-help'), 'Open Settings, then API, and copy your key.');
      assert.equal(await popup.getAttribute('#pb-docs', 'href'), 'https://docs.example.test/keys');
      assert.equal(await popup.getAttribute('input[name=api_key]', 'type'), 'password');
    }
    // Wrong: the service's refusal in the form; nothing stored; the secret not shown again.
    await fill(popup, c.wrong);
    await popup.waitForSelector('#pb-message');
    const message = await popup.textContent('#pb-message');
    assert.match(message, /\(HTTP 401\)/, `${c.app}: ${message}`);
    const html = await popup.content();
    const secret = Object.values(c.wrong).find((v) => v.includes('canary'));
    assert.ok(!html.includes(secret), `${c.app}: the form showed the secret again`);
    for (const input of await popup.$$('input[type=password]')) assert.equal(await input.inputValue(), '');
    assert.deepEqual(await serverSide(user), [], c.app);
    assert.equal(await page.evaluate(() => window.outcome), null, 'still waiting for the user');
    // Right: the popup reports to the page as an OAuth one does.
    await fill(popup, c.right);
    const connected = await outcome(page);
    assert.ok(connected.value, `${c.app}: ${JSON.stringify(connected)}`);
    assert.equal(connected.value.app, c.app);
    assert.equal(connected.value.status, 'active');
    if (c.label) assert.equal(connected.value.label, c.label);
    assert.deepEqual((await accounts(page, c.app)).map((a) => a.id), [connected.value.id]);
    await page.evaluate((app) => window.record(window.pb.disconnectApp(app)), c.app);
    assert.deepEqual(await outcome(page), { value: null });
    assert.deepEqual(await accounts(page, c.app), []);
    assert.deepEqual(await serverSide(user), []);
    await page.close();
  }
});

test('the form posts its result only to the session origin and refuses a post from another site', async () => {
  await prepare();
  const page = await openPage(await mint('cred-csrf'));
  const popup = await clickConnect(page, 'keys');
  await popup.waitForSelector('#pb-submit');
  const formUrl = popup.url();
  // Another site (the customer's, localhost, is not Plugboard's) posts the
  // form with a right key: no Origin of Plugboard's, no SameSite=Lax cookie, no token.
  const attacker = await env.browser.context.newPage();
  await attacker.goto(`${env.site.origin}/?attacker`);
  await attacker.evaluate((action) => {
    const form = document.createElement('form');
    form.method = 'post';
    form.action = action;
    for (const [name, value] of [['api_key', 'key-ok'], ['form_token', 'guessed']]) {
      const input = document.createElement('input');
      input.name = name;
      input.value = value;
      form.append(input);
    }
    document.body.append(form);
    form.submit();
  }, formUrl);
  await attacker.waitForURL(formUrl);
  assert.match(await attacker.content(), /not sent from its own window/);
  await attacker.close();
  assert.deepEqual(await serverSide('cred-csrf'), []);
  // The real form still works, and its one message went to the page alone.
  await fill(popup, { api_key: 'key-ok' });
  const connected = await outcome(page);
  assert.ok(connected.value, JSON.stringify(connected));
  const messages = (await page.evaluate(() => window.messages)).filter((m) => m.data?.type === 'plugboard:connect');
  assert.equal(messages.length, 1);
  assert.equal(messages[0].origin, env.plugboard.url);
  assert.deepEqual(Object.keys(messages[0].data).sort(), ['attemptId', 'connectedAccountId', 'error', 'nonce', 'status', 'type']);
  assert.equal(messages[0].data.connectedAccountId, connected.value.id);
  assert.ok(!JSON.stringify(messages).includes('key-ok'));
  await page.close();
});

test('closing the form is user_cancelled at once: the popup never left Plugboard', async () => {
  await prepare();
  const page = await openPage(await mint('cred-closed'));
  const popup = await clickConnect(page, 'keys');
  await popup.waitForSelector('#pb-submit');
  await popup.close();
  const closedAt = Date.now();
  const result = await outcome(page);
  assert.equal(result.error, 'user_cancelled');
  assert.ok(Date.now() - closedAt < 5000, `noticed ${Date.now() - closedAt} ms after the popup closed`);
  assert.deepEqual(await serverSide('cred-closed'), []);
  await page.close();
});

test('invokeFunction runs a declared function on the end user\'s own account', async () => {
  await prepare();
  for (const body of [
    { name: 'whoami', integration: 'keys', request: { path: '/me' }, output: { email: '/email' },
      input_schema: { type: 'object', properties: { limit: { type: 'integer' } } } },
    { name: 'pair', integration: 'keypair', request: { path: '/pair' } },
    { name: 'missing', integration: 'basic', request: { path: '/missing' } },
  ]) {
    const created = await env.plugboard.api('POST', '/v1/functions', { key: env.key, body });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }
  const page = await openPage(await mint('fn-user'));
  const call = async (...args) => {
    await page.evaluate((a) => window.record(window.pb.invokeFunction(...a)), args);
    return outcome(page);
  };
  // No account yet.
  assert.equal((await call('whoami', {})).error, 'not_found');
  const popup = await clickConnect(page, 'keys');
  await popup.waitForSelector('#pb-submit');
  await fill(popup, { api_key: 'key-ok' });
  const account = (await outcome(page)).value;
  assert.deepEqual(await call('whoami', { limit: 5 }), {
    value: { output: { email: 'kim@example.test' }, nextPage: null },
  });
  assert.deepEqual(
    (await call('whoami', {}, { connectedAccountId: account.id })).value.output,
    { email: 'kim@example.test' },
  );
  // A bad input names the field.
  await page.evaluate(() => window.pb.invokeFunction('whoami', { limit: 'many' }).catch((e) => { window.failure = e; }));
  await page.waitForFunction(() => window.failure);
  const failure = await page.evaluate(() => ({
    code: window.failure.code, fields: window.failure.fields, instance: window.failure instanceof Error,
  }));
  assert.equal(failure.code, 'validation_failed');
  assert.ok(failure.fields['input.limit'], JSON.stringify(failure));
  // The built-in request is for backends only.
  assert.equal((await call('http.request', { path: '/me' })).error, 'not_found');
  // Two accounts on an app and no id: ambiguous.
  for (let i = 0; i < 2; i += 1) {
    const popup2 = await clickConnect(page, 'keypair');
    await popup2.waitForSelector('#pb-submit');
    await fill(popup2, { api_key: 'k-ok', api_secret: 's-ok' });
    assert.ok((await outcome(page)).value);
  }
  assert.equal((await call('pair', {})).error, 'account_ambiguous');
  // A failed call: upstream_error with the provider's status.
  const popup3 = await clickConnect(page, 'basic');
  await popup3.waitForSelector('#pb-submit');
  await fill(popup3, { username: 'ana', password: 'pässword:1 x' });
  assert.ok((await outcome(page)).value);
  await page.evaluate(() => window.pb.invokeFunction('missing').catch((e) => { window.upstream = e; }));
  await page.waitForFunction(() => window.upstream);
  const upstream = await page.evaluate(() => ({
    code: window.upstream.code, status: window.upstream.upstreamStatus, body: typeof window.upstream.upstreamBody,
  }));
  assert.deepEqual(upstream, { code: 'upstream_error', status: 404, body: 'string' });
  await page.close();
});
