// What the browser tests run against, all on loopback and on three different
// sites: the customer's page on http://localhost, Plugboard on
// http://127.0.0.1 and the OpenID provider on http://[::1].

import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync, cpSync, mkdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, extname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
export const OPERATOR_TOKEN = 'browser-tests-operator-token-0123';

const children = new Set();
function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

async function freePort(host = '127.0.0.1') {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, host, resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitFor(check, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A fresh database URL: SQLite in a temporary directory, or a new database on the test cluster. */
function databaseUrl(engine, dataDir) {
  if (engine === 'sqlite') return `sqlite://${join(dataDir, 'plugboard.db')}?mode=rwc`;
  const admin = process.env.PLUGBOARD_TEST_POSTGRES_URL;
  if (!admin) throw new Error('PLUGBOARD_TEST_POSTGRES_URL is not set: run the suite with `cargo xtask test`');
  const name = `b_${randomBytes(8).toString('hex')}`;
  execFileSync('psql', [admin, '-q', '-c', `CREATE DATABASE ${name}`]);
  return admin.replace(/\/[^/]*$/, `/${name}`);
}

/** Plugboard's server, built by cargo (PLUGBOARD_BIN), on 127.0.0.1. */
export async function startPlugboard(engine = 'sqlite') {
  const bin = process.env.PLUGBOARD_BIN || join(repo, 'target', 'debug', 'plugboard');
  if (!existsSync(bin)) throw new Error(`no plugboard binary at ${bin}: run the suite with \`cargo xtask test\``);
  const dataDir = mkdtempSync(join(tmpdir(), 'plugboard-browser-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = track(
    spawn(bin, ['serve'], {
      env: {
        PATH: process.env.PATH,
        RUST_LOG: 'warn',
        PLUGBOARD_LISTEN: `127.0.0.1:${port}`,
        PLUGBOARD_PUBLIC_URL: url,
        PLUGBOARD_DATA_DIR: dataDir,
        DATABASE_URL: databaseUrl(engine, dataDir),
        PLUGBOARD_MASTER_KEY: randomBytes(32).toString('base64'),
        PLUGBOARD_OPERATOR_TOKEN: OPERATOR_TOKEN,
        PLUGBOARD_ALLOW_HOSTS: '127.0.0.1,::1',
        // The suites share one server: its rate limits must not throttle them
        // (the limits have their own tests, in server/tests/limits.rs).
        PLUGBOARD_AUTH_FAILURES_PER_MINUTE: '1000000',
        PLUGBOARD_SESSIONS_PER_MINUTE: '1000000',
        PLUGBOARD_ATTEMPTS_PER_MINUTE: '1000000',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  );
  await waitFor(async () => (await fetch(`${url}/healthz`)).ok, 'plugboard to serve');
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
    async api(method, path, { key, body, origin } = {}) {
      const headers = {};
      if (key) headers.authorization = `Bearer ${key}`;
      if (origin) headers.origin = origin;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const response = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
  };
}

/** The OpenID provider of tests/provider, on [::1]; optionally behind a proxy that adds a COOP header to its pages. */
export async function startProvider({ coop = false } = {}) {
  const child = track(
    spawn('node', ['provider.mjs'], {
      cwd: join(repo, 'tests', 'provider'),
      env: { ...process.env, PROVIDER_HOST: '::1' },
      stdio: ['pipe', 'pipe', 'ignore'],
    }),
  );
  const lines = createInterface({ input: child.stdout });
  const issuer = await new Promise((resolve, reject) => {
    lines.once('line', (line) => resolve(JSON.parse(line).issuer));
    child.once('exit', () => reject(new Error('the provider exited')));
  });
  lines.on('line', () => {});
  return {
    issuer,
    async register(redirectUri) {
      const response = await fetch(`${issuer}/reg`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          redirect_uris: [redirectUri],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
        }),
      });
      return response.json();
    },
    stop() {
      child.kill('SIGTERM');
    },
  };
}

/**
 * A reverse proxy in front of the provider that adds
 * `Cross-Origin-Opener-Policy: same-origin` to every answer, as many real
 * providers' sign-in pages do. It listens on [::1] too: the same site.
 */
export async function startCoopProxy(issuer) {
  const target = new URL(issuer);
  const server = createServer((req, res) => {
    const upstream = new URL(req.url, issuer);
    const headers = { ...req.headers, host: target.host };
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const response = await fetch(upstream, {
        method: req.method,
        headers,
        body: ['GET', 'HEAD'].includes(req.method) ? undefined : Buffer.concat(chunks),
        redirect: 'manual',
      });
      const out = {};
      response.headers.forEach((value, name) => {
        if (name !== 'content-encoding' && name !== 'content-length' && name !== 'set-cookie') out[name] = value;
      });
      const cookies = response.headers.getSetCookie();
      if (cookies.length) out['set-cookie'] = cookies;
      out['cross-origin-opener-policy'] = 'same-origin';
      res.writeHead(response.status, out);
      res.end(Buffer.from(await response.arrayBuffer()));
    });
  });
  await new Promise((resolve) => server.listen(0, '::1', resolve));
  const { port } = server.address();
  return { url: `http://[::1]:${port}`, stop: () => server.close() };
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

/**
 * The customer's page on http://localhost: serves the test page and the SDK
 * package as installed from its tarball, and `/renew`, which (as the
 * customer's backend would) mints a new session token.
 */
export async function startPage({ sdkDir, renew }) {
  const stats = { renewals: 0 };
  // More directories served under a path prefix (built apps), added later.
  const mounts = new Map();
  const handler = async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/renew') {
      stats.renewals += 1;
      const token = await renew();
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end(token);
    }
    let file;
    if (url.pathname === '/' || url.pathname === '/index.html') file = join(here, 'page.html');
    else if (url.pathname.startsWith('/sdk/')) file = normalize(join(sdkDir, url.pathname.slice('/sdk/'.length)));
    let root = file ? (file.startsWith(here) ? here : sdkDir) : null;
    for (const [prefix, dir] of mounts) {
      if (url.pathname.startsWith(prefix)) {
        file = normalize(join(dir, url.pathname.slice(prefix.length) || 'index.html'));
        root = dir;
      }
    }
    if (!file || !file.startsWith(root) || !existsSync(file)) {
      res.writeHead(404);
      return res.end();
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
    res.end(readFileSync(file));
  };
  // localhost is both 127.0.0.1 and ::1: listen on both, on one port.
  const v4 = createServer(handler);
  await new Promise((resolve) => v4.listen(0, '127.0.0.1', resolve));
  const { port } = v4.address();
  const v6 = createServer(handler);
  await new Promise((resolve) => v6.listen(port, '::1', resolve));
  return {
    origin: `http://localhost:${port}`,
    stats,
    /** Serves `dir` under `prefix` (which ends with a slash). */
    mount(prefix, dir) {
      mounts.set(prefix, dir);
    },
    stop() {
      v4.close();
      v6.close();
    },
  };
}

/** Packs npm/ and installs the tarball into a scratch project; returns the installed package's directory. */
export function installSdk() {
  const out = mkdtempSync(join(tmpdir(), 'plugboard-sdk-'));
  const json = execFileSync('npm', ['pack', join(repo, 'npm'), '--pack-destination', out, '--json'], { encoding: 'utf8' });
  const tarball = join(out, JSON.parse(json)[0].filename);
  writeFileSync(join(out, 'package.json'), JSON.stringify({ name: 'scratch', private: true }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: out, stdio: 'ignore' });
  return join(out, 'node_modules', '@plugboard', 'sdk');
}

/**
 * Builds tests/browser/app, a customer's page in strict TypeScript, against
 * the installed package as a user's project would: type-checked by `tsc`,
 * bundled by Vite (from the TypeScript) and by webpack 5 (from tsc's output),
 * each with no configuration for the package. Returns the two built sites.
 */
export async function buildApps(sdkDir) {
  const work = mkdtempSync(join(tmpdir(), 'plugboard-app-'));
  cpSync(join(here, 'app'), work, { recursive: true });
  mkdirSync(join(work, 'node_modules', '@plugboard'), { recursive: true });
  symlinkSync(sdkDir, join(work, 'node_modules', '@plugboard', 'sdk'), 'dir');
  const tool = (path, args) => {
    try {
      execFileSync(process.execPath, [join(here, 'node_modules', path), ...args], { cwd: work, encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      throw new Error(`${path} ${args.join(' ')} failed:\n${error.stdout}\n${error.stderr}`);
    }
  };
  tool('typescript/bin/tsc', ['-p', 'tsconfig.json']);
  tool('vite/bin/vite.js', ['build', '--base', './', '--outDir', 'dist-vite', '--logLevel', 'warn']);
  const { default: webpack } = await import('webpack');
  const stats = await new Promise((resolve, reject) => {
    webpack({
      mode: 'production',
      context: work,
      entry: './build/main.js',
      output: { path: join(work, 'dist-webpack'), filename: 'main.js' },
    }).run((error, result) => (error ? reject(error) : resolve(result)));
  });
  if (stats.hasErrors()) throw new Error(`webpack failed:\n${stats.toString('errors-only')}`);
  cpSync(join(work, 'webpack.html'), join(work, 'dist-webpack', 'index.html'));
  return { vite: join(work, 'dist-vite'), webpack: join(work, 'dist-webpack') };
}

/** Debian's Chromium, headless, with a fresh profile. */
export async function startBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'plugboard-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Keep Chromium's popup blocker on: the SDK must open its popup inside the click.
    ignoreDefaultArgs: ['--disable-popup-blocking'],
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async stop() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * tests/upstream/upstream.py: a provider API on 127.0.0.1 that checks the
 * credentials it receives (keys; AWS SigV4 recomputed by botocore, found at
 * PLUGBOARD_BOTOCORE_PATH) and answers the account they belong to.
 */
export async function startUpstream(config) {
  const env = { ...process.env };
  if (process.env.PLUGBOARD_BOTOCORE_PATH) env.PYTHONPATH = process.env.PLUGBOARD_BOTOCORE_PATH;
  const child = track(
    spawn('python3', [join(repo, 'tests', 'upstream', 'upstream.py'), JSON.stringify(config)], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    lines.once('line', (line) => resolve(line.replace(/^listening /, '')));
    child.once('exit', () => reject(new Error('the upstream exited')));
  });
  return { url, stop: () => child.kill('SIGTERM') };
}

/**
 * Debian's nginx on 127.0.0.1 checking HTTP Basic credentials (`auth_basic`,
 * the password file written with `openssl passwd`), and `header` too when
 * given; `GET /me` answers `{"ok":true}` to what it accepts, 401 otherwise.
 */
export async function startNginx({ user, password, header }) {
  const dir = mkdtempSync(join(tmpdir(), 'plugboard-nginx-'));
  const hash = execFileSync('openssl', ['passwd', '-5', '-stdin'], { input: password, encoding: 'utf8' }).trim();
  writeFileSync(join(dir, 'htpasswd'), `${user}:${hash}\n`);
  mkdirSync(join(dir, 'www'));
  writeFileSync(join(dir, 'www', 'me'), '{"ok":true}');
  const port = await freePort();
  const check = header
    ? `if ($http_${header.name.toLowerCase().replaceAll('-', '_')} != "${header.value}") { return 401; }`
    : '';
  writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
user root;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / {
      ${check}
      auth_basic "plugboard tests";
      auth_basic_user_file ${dir}/htpasswd;
      default_type application/json;
      root ${dir}/www;
    }
  }
}
`);
  const binary = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
  const child = track(spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'ignore' }));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/me`)).status === 401, 'nginx to serve');
  return {
    url,
    stop() {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
