// The customer app's backend: a sign-in with just a name, and the one call
// to Plugboard a SaaS backend makes for its page: minting a connect session
// for the signed-in user with the project's secret key. The key stays here;
// the page only ever gets the short-lived session token.
//
// Environment: PLUGBOARD_URL, PLUGBOARD_SECRET_KEY, APP_PORT (default 3000).

import { createServer } from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { join, dirname, extname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const plugboardUrl = process.env.PLUGBOARD_URL;
const secretKey = process.env.PLUGBOARD_SECRET_KEY;
const port = Number(process.env.APP_PORT || 3000);
if (!plugboardUrl || !secretKey) {
  console.error('set PLUGBOARD_URL and PLUGBOARD_SECRET_KEY (cargo xtask demo does)');
  process.exit(2);
}

// Signed-in users, by an opaque cookie value. A real app has its own accounts.
const sessions = new Map();

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function signedInUser(req) {
  const cookie = (req.headers.cookie || '').split(';').map((c) => c.trim().split('=')).find(([k]) => k === 'app_session');
  return cookie ? sessions.get(cookie[1]) : undefined;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10_000) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(body);
}

const signInPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme CRM — sign in</title>
<link rel="stylesheet" href="/style.css"></head>
<body><main><h1>Acme CRM</h1>
<form method="post" action="/signin">
<label for="name">Your name</label>
<input id="name" name="name" required autofocus autocomplete="off">
<button type="submit">Sign in</button>
</form></main></body></html>`;

const appPage = (user) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme CRM — integrations</title>
<link rel="stylesheet" href="/style.css"></head>
<body><main>
<header><h1>Acme CRM</h1><form method="post" action="/signout"><span>Signed in as <strong id="user">${escapeHtml(user)}</strong></span> <button type="submit">Sign out</button></form></header>
<h2>Connect your accounts</h2>
<p id="status" role="status"></p>
<ul id="apps"></ul>
<script type="module" src="/app.js"></script>
</main></body></html>`;

const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };

function staticFile(res, root, relative) {
  const file = normalize(join(root, relative));
  if (!file.startsWith(root) || !existsSync(file)) return send(res, 404, 'text/plain', 'not found');
  send(res, 200, TYPES[extname(file)] || 'application/octet-stream', readFileSync(file));
}

const sdkRoot = join(here, 'node_modules', '@plugboard', 'sdk');
const publicRoot = join(here, 'public');

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://localhost');
    const user = signedInUser(req);
    if (req.method === 'GET' && url.pathname === '/') return send(res, 200, 'text/html; charset=utf-8', user ? appPage(user) : signInPage);
    if (req.method === 'POST' && url.pathname === '/signin') {
      const name = ((await readForm(req)).get('name') || '').trim().slice(0, 100);
      if (!name) return send(res, 303, 'text/plain', '', { location: '/' });
      const id = randomBytes(16).toString('hex');
      sessions.set(id, name);
      return send(res, 303, 'text/plain', '', { location: '/', 'set-cookie': `app_session=${id}; Path=/; HttpOnly; SameSite=Lax` });
    }
    if (req.method === 'POST' && url.pathname === '/signout') {
      return send(res, 303, 'text/plain', '', { location: '/', 'set-cookie': 'app_session=; Path=/; Max-Age=0' });
    }
    if (req.method === 'POST' && url.pathname === '/api/plugboard-session') {
      if (!user) return send(res, 401, 'application/json', JSON.stringify({ error: 'sign in first' }));
      // The backend's one call to Plugboard: a connect session for this user, usable only from this app's origin.
      const origin = req.headers.origin || `http://${req.headers.host}`;
      const response = await fetch(`${plugboardUrl}/v1/connect/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secretKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ end_user_id: user, allowed_origins: [origin], ttl_seconds: 900 }),
      });
      const body = await response.json();
      if (!response.ok) return send(res, 502, 'application/json', JSON.stringify(body));
      return send(res, 200, 'application/json', JSON.stringify({ serverUrl: plugboardUrl, token: body.token }));
    }
    if (req.method === 'GET' && url.pathname.startsWith('/sdk/')) return staticFile(res, sdkRoot, url.pathname.slice(5));
    if (req.method === 'GET') return staticFile(res, publicRoot, url.pathname.slice(1));
    send(res, 404, 'text/plain', 'not found');
  } catch (error) {
    send(res, 500, 'text/plain', 'something went wrong');
    console.error(error);
  }
});

// localhost, on both loopback addresses.
server.listen(port, '127.0.0.1', () => {
  const v6 = createServer((req, res) => server.emit('request', req, res));
  v6.on('error', () => {});
  v6.listen(port, '::1');
  console.log(`customer app listening on http://localhost:${port}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
