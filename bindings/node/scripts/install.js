// SPDX-License-Identifier: MIT
// npm's install script: puts the addon at build/hybrid.node.  Nothing is downloaded.
//  1. an addon the project's meson build already made: $HYBRID_NODE_ADDON, else
//     <checkout>/build/bindings/node/hybrid.node when this package is the checkout's
//     bindings/node (npm links a local folder): its path is written to
//     build/hybrid-addon.json (not copied: meson's build rpath is relative to it);
//  2. else src/*.c is compiled with `cc` (or $CC) against the Node headers
//     (/usr/include/node, or $HYBRID_NODE_INCLUDE) and `pkg-config --cflags --libs hybrid`
//     ($PKG_CONFIG_PATH is honoured: a build's meson-uninstalled directory works too).
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'build');
const out = path.join(outDir, 'hybrid.node');
const pointer = path.join(outDir, 'hybrid-addon.json');

function log(msg) { process.stderr.write(`hybrid: ${msg}\n`); }

function prebuilt() {
  const env = process.env.HYBRID_NODE_ADDON;
  if (env) {
    if (!fs.existsSync(env)) throw new Error(`HYBRID_NODE_ADDON=${env} does not exist`);
    return env;
  }
  const inTree = path.resolve(root, '..', '..', 'build', 'bindings', 'node', 'hybrid.node');
  return fs.existsSync(inTree) ? inTree : null;
}

function nodeInclude() {
  const dirs = [process.env.HYBRID_NODE_INCLUDE,
                path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
                '/usr/include/node', '/usr/local/include/node'];
  for (const d of dirs) if (d && fs.existsSync(path.join(d, 'node_api.h'))) return d;
  throw new Error('node_api.h not found (install the Node headers, e.g. Debian libnode-dev/nodejs, ' +
                  'or set HYBRID_NODE_INCLUDE)');
}

function pkgConfig(args) {
  const text = execFileSync(process.env.PKG_CONFIG || 'pkg-config', [...args, 'hybrid'],
                            { encoding: 'utf8' });
  return text.trim().split(/\s+/).filter(Boolean);
}

function compile() {
  const cc = (process.env.CC || 'cc').split(/\s+/).filter(Boolean);
  const cflags = pkgConfig(['--cflags']);
  const libs = pkgConfig(['--libs']);
  // find libhybrid at run time where pkg-config found it at build time
  const rpath = libs.filter((a) => a.startsWith('-L')).map((a) => `-Wl,-rpath,${a.slice(2)}`);
  const srcDir = path.join(root, 'src');
  const sources = fs.readdirSync(srcDir).filter((f) => f.endsWith('.c')).sort()
    .map((f) => path.join(srcDir, f));
  const args = [...cc.slice(1), '-std=gnu11', '-O2', '-fPIC', '-shared', '-D_GNU_SOURCE',
                `-I${nodeInclude()}`, ...cflags, ...sources, '-o', out, ...libs, ...rpath];
  log(`${cc[0]} ${args.join(' ')}`);
  execFileSync(cc[0], args, { stdio: 'inherit' });
}

function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const pre = prebuilt();
  if (pre) {
    log(`using the addon built by meson: ${pre}`);
    fs.rmSync(out, { force: true });
    fs.writeFileSync(pointer, JSON.stringify({ path: path.resolve(pre) }) + '\n');
    require(path.resolve(pre)); // fail the install now if it does not load
  } else {
    fs.rmSync(pointer, { force: true });
    compile();
    require(out);
  }
}

try {
  main();
} catch (e) {
  log(`install failed: ${e.message}`);
  process.exit(1);
}
