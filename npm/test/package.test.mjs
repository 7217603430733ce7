// The package as users get it: packed with `npm pack`, installed from the
// tarball into a scratch project, imported by Node. Run after `cargo xtask sdk`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const npmDir = join(dirname(fileURLToPath(import.meta.url)), '..');

function pack() {
  const out = mkdtempSync(join(tmpdir(), 'plugboard-pack-'));
  const json = execFileSync('npm', ['pack', npmDir, '--pack-destination', out, '--json'], { encoding: 'utf8' });
  const [info] = JSON.parse(json);
  return { tarball: join(out, info.filename), files: info.files.map((f) => f.path).sort() };
}

test('the tarball holds the module, its types, the WebAssembly, its README and LICENSE, nothing else', () => {
  const { files } = pack();
  assert.deepEqual(files, [
    'LICENSE',
    'README.md',
    'dist/plugboard_sdk.js',
    'dist/plugboard_sdk_bg.wasm',
    'index.d.ts',
    'index.js',
    'package.json',
  ]);
});

test('the public types name every shape and use no any', () => {
  const types = readFileSync(join(npmDir, 'index.d.ts'), 'utf8');
  assert.doesNotMatch(types, /\bany\b/);
  for (const name of ['class Plugboard extends EventTarget', 'interface ConnectedAccount', 'interface App', 'type ErrorCode', 'class PlugboardError', 'function isPlugboardError', 'interface PlugboardEventMap']) {
    assert.match(types, new RegExp(name));
  }
});

test('Node imports the installed package; Plugboard.create says at once that it needs a browser window', () => {
  const { tarball } = pack();
  const project = mkdtempSync(join(tmpdir(), 'plugboard-user-'));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: project, stdio: 'ignore' });
  const script = `
    import { Plugboard, PlugboardError, isPlugboardError } from '@plugboard/sdk';
    const out = { type: typeof Plugboard, create: typeof Plugboard.create };
    try { new Plugboard({}); } catch (e) { out.direct = e.code; }
    const started = Date.now();
    try {
      await Plugboard.create({ serverUrl: 'https://p.example', sessionToken: 'pb_cs_x' });
    } catch (e) {
      out.create = e.code;
      out.instance = e instanceof PlugboardError && isPlugboardError(e);
      out.saysWhy = /browser window/.test(e.message);
    }
    out.atOnce = Date.now() - started < 1000;
    out.notAnError = isPlugboardError(new Error('x'));
    console.log(JSON.stringify(out));
  `;
  const printed = execFileSync('node', ['--input-type=module', '-e', script], { cwd: project, encoding: 'utf8' });
  assert.deepEqual(JSON.parse(printed), {
    type: 'function',
    create: 'function',
    direct: 'validation_failed',
    create: 'unsupported_environment',
    instance: true,
    saysWhy: true,
    atOnce: true,
    notAnError: false,
  });
});
