// SPDX-License-Identifier: MIT
// Test helpers: a real hybridd on a socket in a fresh temp dir, the CLI, the binding.
'use strict';

const assert = require('node:assert');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const HYBRIDD = process.env.HYBRIDD;
const HYBRID_CLI = process.env.HYBRID_CLI;
assert.ok(HYBRIDD && HYBRID_CLI, 'HYBRIDD and HYBRID_CLI must name the daemon and the CLI');

const hybrid = require('..');

// The mosquitto broker binary, or undefined when it is not installed.
const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']
  .find((m) => { try { fs.accessSync(m, fs.constants.X_OK); return true; } catch { return false; } });

// A loopback TCP port that was free a moment ago (the kernel's choice).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// Does something accept TCP connections on the loopback port?
function portOpen(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

// A fresh directory under the system's temp directory, removed when the test process exits.
const tempDirs = [];
process.on('exit', () => {
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});
function tempDir() {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hybrid-node-'));
  tempDirs.push(d);
  return d;
}

// Resolves once the socket exists; rejects with the log when the daemon exits first.
async function startDaemon(config = 'log:\n  level: info\n', dir = tempDir()) {
  const sock = path.join(dir, 'bus.sock');
  const conf = path.join(dir, 'hybridd.yaml');
  const log = path.join(dir, 'hybridd.log');
  fs.writeFileSync(conf, config);
  const out = fs.openSync(log, 'w');
  const proc = spawn(HYBRIDD, ['--foreground', '--socket', sock, '--config', conf],
                     { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  let exited = null;
  proc.on('exit', (code, sig) => { exited = code ?? sig; });
  const until = Date.now() + 30000; // generous: the machine is shared
  while (!fs.existsSync(sock)) {
    if (exited !== null || Date.now() > until) {
      proc.kill('SIGKILL');
      throw new Error(`hybridd did not start (${exited}): ${fs.readFileSync(log, 'utf8')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    dir, sock, proc, log,
    async stop() {
      if (exited === null) {
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await done;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The CLI on the daemon's socket: {status, stdout, stderr} (asynchronous: the test's own
// bus may have to serve the call the CLI makes).
function cli(sock, args, env = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(HYBRID_CLI, ['--bus', sock, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

// The next `name` event of emitter, or a rejection after ms (a failure, never a pass).
function next(emitter, name, ms = 20000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${name} event within ${ms} ms`)), ms);
    emitter.once(name, (v) => { clearTimeout(t); resolve(v); });
  });
}

module.exports = {
  hybrid, startDaemon, cli, next, tempDir, spawnSync, HYBRIDD, HYBRID_CLI, MOSQUITTO, freePort,
  portOpen,
};
