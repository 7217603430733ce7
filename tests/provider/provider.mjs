// A real OAuth 2.0 / OpenID Connect provider for Plugboard's tests and demo.
//
// oidc-provider with dynamic client registration, PKCE required, refresh
// tokens for clients allowed the refresh_token grant, and small login and
// consent pages that accept any user name (a test, or a person in the demo,
// signs in as whoever they like). Listens on loopback only.
//
// Refresh tokens rotate on every use, and a spent one presented again
// revokes its whole grant (oidc-provider's reuse detection).
//
// Environment: PROVIDER_HOST (default 127.0.0.1; "::1" for IPv6),
// PROVIDER_PORT (default 0: any free port), PROVIDER_ACCESS_TOKEN_TTL
// (seconds, default 3600). Prints one JSON line, {"issuer": "..."}, once it
// listens. `GET /test/counts` answers how many token requests it served, by
// grant type and outcome, so a test can count refreshes at the provider.

import http from 'node:http';
import { Provider } from 'oidc-provider';

const host = process.env.PROVIDER_HOST || '127.0.0.1';
const port = Number(process.env.PROVIDER_PORT || 0);
const accessTokenTtl = Number(process.env.PROVIDER_ACCESS_TOKEN_TTL || 3600);
const counts = {};
const count = (key) => { counts[key] = (counts[key] || 0) + 1; };

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const page = (title, body) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}
input,button{font:inherit;padding:.4rem .6rem;margin:.3rem 0}label{display:block;margin-top:.6rem}</style>
</head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const server = http.createServer();
server.listen(port, host, () => {
  const address = server.address();
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const issuer = `http://${hostPart}:${address.port}`;

  const provider = new Provider(issuer, {
    clients: [],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
    },
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'contacts', 'companies'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    conformIdTokenClaims: false,
    clockTolerance: 0,
    responseTypes: ['code'],
    cookies: { keys: ['plugboard-test-provider-cookie-key'] },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    ttl: {
      AccessToken: accessTokenTtl,
      ClientCredentials: accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
      Interaction: 3600,
      Session: 3600,
    },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.test`, email_verified: true, name: `User ${id}` };
        },
      };
    },
  });
  // The tests run on plain http on loopback.
  provider.proxy = false;

  provider.on('grant.success', (ctx) => count(`${ctx.oidc.params.grant_type}:ok`));
  provider.on('grant.error', (ctx) => count(`${ctx.oidc.params?.grant_type}:error`));

  const callback = provider.callback();

  server.on('request', async (req, res) => {
    const url = new URL(req.url, issuer);
    if (url.pathname === '/test/counts' && req.method === 'GET') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify(counts));
    }
    const match = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/);
    if (!match) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      const [, uid, action] = match;
      if (!action && req.method === 'GET') {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        if (details.prompt.name === 'login') {
          return res.end(page('Sign in', `
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label for="login">User name</label><input id="login" name="login" required autofocus>
<button type="submit">Sign in</button></form>`));
        }
        const scopes = [...(details.prompt.details.missingOIDCScope || [])].join(' ');
        return res.end(page('Allow access?', `
<p>The application asks for: <code>${escapeHtml(scopes || '(nothing new)')}</code></p>
<form method="post" action="/interaction/${escapeHtml(uid)}/confirm"><button type="submit">Allow</button></form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit">Deny</button></form>`));
      }
      if (req.method !== 'POST') {
        res.statusCode = 405;
        return res.end();
      }
      const form = await readForm(req);
      if (action === 'login') {
        const login = (form.get('login') || '').trim();
        if (!login) {
          res.statusCode = 400;
          return res.end('a user name is required');
        }
        return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      }
      if (action === 'abort') {
        return provider.interactionFinished(req, res, {
          error: 'access_denied',
          error_description: form.get('error_description') || 'The user denied access.',
        }, { mergeWithLastSubmission: false });
      }
      const { prompt: { details: missing }, params, session } = details;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    } catch (err) {
      res.statusCode = 400;
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end(`interaction failed: ${err.message}`);
    }
  });

  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
// Exit with the process that started this one: stdin closes when it does.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
