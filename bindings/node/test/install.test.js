// SPDX-License-Identifier: MIT
// `npm install /path/to/bindings/node --offline` into a fresh folder makes require('hybrid')
// work, with nothing downloaded: linked (npm's default for a folder) and copied
// (--install-links, where scripts/install.js compiles the addon with cc and
// `pkg-config hybrid` from the build's meson-uninstalled directory); and git sees no new
// file in the source tree afterwards.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { tempDir } = require('./helpers.js');

const pkgDir = path.resolve(__dirname, '..');
const have = (cmd, args = ['--version']) => spawnSync(cmd, args).status === 0;

function gitStatus() {
  const r = spawnSync('git', ['-C', pkgDir, 'status', '--porcelain', '--untracked-files=all', '.'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : null;
}

function npmInstall(extra) {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"probe","version":"1.0.0","private":true}\n');
  const env = { ...process.env, npm_config_cache: path.join(dir, '.npm-cache'), npm_config_update_notifier: 'false' };
  delete env.HYBRID_NODE_ADDON; // the install script must find or build the addon itself
  if (process.env.HYBRID_PKG_CONFIG_PATH) env.PKG_CONFIG_PATH = process.env.HYBRID_PKG_CONFIG_PATH;
  const r = spawnSync('npm', ['install', '--offline', '--no-audit', '--no-fund', ...extra, pkgDir],
                      { cwd: dir, env, encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `npm install failed:\n${r.stdout}\n${r.stderr}`);
  const probe = spawnSync(process.execPath, ['-e', `
    const h = require('hybrid');
    console.log(JSON.stringify(h.mmadt.run('{1..3}.plus(1)')), h.toJSON(2n ** 63n - 1n), h.napiVersion);`],
  { cwd: dir, env, encoding: 'utf8' });
  assert.equal(probe.status, 0, probe.stderr);
  assert.equal(probe.stdout.trim(), '[2,3,4] 9223372036854775807 8');
  return dir;
}

test('npm install --offline: linked and copied; nothing new for git', { skip: !have('npm') && 'npm is not installed' }, () => {
  const before = gitStatus();
  const linked = npmInstall([]);
  if (have('cc') && have('pkg-config')) {
    const copied = npmInstall(['--install-links']);
    const addon = path.join(copied, 'node_modules', 'hybrid', 'build', 'hybrid.node');
    assert.ok(fs.existsSync(addon), 'the copied package has its own addon');
    fs.rmSync(copied, { recursive: true, force: true });
  }
  fs.rmSync(linked, { recursive: true, force: true });
  if (before !== null) assert.equal(gitStatus(), before, 'the install left files git would see');
});
