// The demo: Plugboard on its embedded default, a local OpenID provider with
// login and consent pages, and the customer app wired to both. Started by
// `cargo xtask demo`, which builds what it needs first. Ctrl-C stops it all.
//
// Environment: PLUGBOARD_BIN (the server binary), and optionally
// DEMO_APP_PORT (3000), DEMO_PLUGBOARD_PORT (8080), DEMO_PROVIDER_PORT (4000).

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const bin = process.env.PLUGBOARD_BIN;
if (!bin) {
  console.error('run the demo with `cargo xtask demo`');
  process.exit(2);
}

const children = [];
const dataDir = mkdtempSync(join(tmpdir(), 'plugboard-demo-'));
let stopping = false;

function stop(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(code);
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => stop(0));

function start(name, command, args, options) {
  const child = spawn(command, args, options);
  children.push(child);
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`demo: ${name} stopped unexpectedly (${signal || code}); stopping the demo`);
      stop(1);
    }
  });
  return child;
}

/** The preferred port when it is free on `host`, else any free one. */
async function port(preferred, host) {
  const tryPort = (p) =>
    new Promise((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(null));
      server.listen(p, host, () => {
        const { port: bound } = server.address();
        server.close(() => resolve(bound));
      });
    });
  return (await tryPort(preferred)) ?? tryPort(0);
}

async function canUse(host) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}

async function waitFor(check, what) {
  for (let i = 0; i < 300; i += 1) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function api(base, method, path, key, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

try {
  // Three sites, as in production: the app on localhost, Plugboard on
  // 127.0.0.1, the provider on [::1] (or 127.0.0.1 where IPv6 is off).
  const providerHost = (await canUse('::1')) ? '::1' : '127.0.0.1';
  const providerPort = await port(Number(process.env.DEMO_PROVIDER_PORT || 4000), providerHost);
  const plugboardPort = await port(Number(process.env.DEMO_PLUGBOARD_PORT || 8080), '127.0.0.1');
  const appPort = await port(Number(process.env.DEMO_APP_PORT || 3000), '127.0.0.1');

  const provider = start('the OpenID provider', 'node', ['provider.mjs'], {
    cwd: join(repo, 'tests', 'provider'),
    env: { ...process.env, PROVIDER_HOST: providerHost, PROVIDER_PORT: String(providerPort) },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  const lines = createInterface({ input: provider.stdout });
  const issuer = await new Promise((resolve) => lines.once('line', (line) => resolve(JSON.parse(line).issuer)));
  lines.on('line', () => {});

  const plugboardUrl = `http://127.0.0.1:${plugboardPort}`;
  const operatorToken = randomBytes(24).toString('hex');
  const log = openSync(join(dataDir, 'plugboard.log'), 'a');
  start('Plugboard', bin, ['serve'], {
    env: {
      PATH: process.env.PATH,
      RUST_LOG: process.env.RUST_LOG || 'info',
      PLUGBOARD_LISTEN: `127.0.0.1:${plugboardPort}`,
      PLUGBOARD_PUBLIC_URL: plugboardUrl,
      PLUGBOARD_DATA_DIR: join(dataDir, 'plugboard-data'),
      PLUGBOARD_OPERATOR_TOKEN: operatorToken,
      PLUGBOARD_ALLOW_HOSTS: '127.0.0.1,::1',
    },
    stdio: ['ignore', log, log],
  });
  await waitFor(async () => (await fetch(`${plugboardUrl}/healthz`)).ok, 'Plugboard');

  // What a SaaS developer does once: a project, and an integration whose
  // callback URL is registered at the provider.
  const project = await api(plugboardUrl, 'POST', '/v1/admin/projects', operatorToken, { name: 'Acme CRM' });
  const integration = await api(plugboardUrl, 'POST', '/v1/integrations', project.secret_key, {
    key: 'local-idp',
    label: 'Local OpenID provider',
    description: 'A provider running on this machine: sign in with any user name.',
    auth_type: 'oauth2_authorization_code',
    client_id: 'registered-below',
    client_secret: 'registered-below',
    scopes: ['openid', 'email', 'profile', 'offline_access'],
    authorization_url: `${issuer}/auth`,
    token_url: `${issuer}/token`,
    issuer,
    jwks_url: `${issuer}/jwks`,
    userinfo_url: `${issuer}/me`,
    revocation_url: `${issuer}/token/revocation`,
    // Where the proxy and functions send the connection's calls.
    api_base_url: issuer,
    authorization_params: { prompt: 'login consent' },
    multiple_accounts: true,
  });
  const registration = await fetch(`${issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      redirect_uris: [integration.callback_url],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    }),
  }).then((r) => r.json());
  await api(plugboardUrl, 'PATCH', '/v1/integrations/local-idp', project.secret_key, {
    client_id: registration.client_id,
    client_secret: registration.client_secret,
  });

  // What a connection is for: a function the page runs on an account
  // (here the provider's userinfo), without ever holding its token.
  await api(plugboardUrl, 'POST', '/v1/functions', project.secret_key, {
    name: 'whoami',
    integration: 'local-idp',
    description: 'Who the connected account is, as the provider says',
    request: { method: 'GET', path: '/me' },
    output: { email: '/email', subject: '/sub' },
  });

  const appUrl = `http://localhost:${appPort}`;
  start('the customer app', 'node', ['server.mjs'], {
    cwd: join(here, 'customer-app'),
    env: { ...process.env, PLUGBOARD_URL: plugboardUrl, PLUGBOARD_SECRET_KEY: project.secret_key, APP_PORT: String(appPort) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${appPort}/`)).ok, 'the customer app');

  console.log(`
Plugboard demo is running.

  Open ${appUrl}

  Sign in to the customer app with any name, then connect the Local OpenID
  provider: its login page accepts any user name; allow access, and the account
  shows up as connected. "Who is this?" runs a function on it through
  Plugboard (the provider's userinfo). Connect a second one, or disconnect.

  Plugboard      ${plugboardUrl}  (log: ${join(dataDir, 'plugboard.log')})
  Provider       ${issuer}
  Customer app   ${appUrl}

Press Ctrl-C to stop everything.`);
} catch (error) {
  console.error(`demo: ${error.message}`);
  stop(1);
}
