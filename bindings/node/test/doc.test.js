// SPDX-License-Identifier: MIT
// doc/node.md's first program runs as written and prints what its `// -> ` comments say;
// and what the page says of a daemon that goes away: pending calls reject, the bus
// emits 'close' (and 'error' with the reason when someone listens).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { hybrid, startDaemon, tempDir, next } = require('./helpers.js');

const pkgDir = path.resolve(__dirname, '..');
const page = path.resolve(pkgDir, '..', '..', 'doc', 'node.md');

test('doc/node.md: the first program', async () => {
  const text = fs.readFileSync(page, 'utf8');
  const m = /```js example\n([\s\S]*?)```/.exec(text);
  assert.ok(m, 'doc/node.md has a ```js example block');
  const source = m[1];
  assert.ok(source.trim().split('\n').length <= 12, 'about ten lines');
  const want = [...source.matchAll(/\/\/ -> (.*)$/gm)].map((x) => x[1].trim());
  assert.ok(want.length >= 2);
  const d = await startDaemon();
  const dir = tempDir();
  try {
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(pkgDir, path.join(dir, 'node_modules', 'hybrid'));
    fs.writeFileSync(path.join(dir, 'first.js'), source);
    const r = spawnSync(process.execPath, ['first.js'], {
      cwd: dir, encoding: 'utf8', timeout: 60000,
      env: { ...process.env, HYBRID_BUS: d.sock, HYBRID_DB: '' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), want);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await d.stop();
  }
});

test('the daemon goes away: pending calls reject, close and error are emitted', async () => {
  const d = await startDaemon();
  let stopped = false;
  try {
    const server = await hybrid.connect({ socket: d.sock, app: 'org.example.node.gone' });
    const client = await hybrid.connect({ socket: d.sock, app: 'org.example.node.gonec' });
    let held = false;
    server.procedure('hold', {}, () => { held = true; return new Promise(() => {}); });
    // settled into a value at once: the rejection comes while the test awaits d.stop()
    const pending = client.call(server.name, 'hold', {}).then(() => null, (e) => e);
    while (!held) await new Promise((r) => setImmediate(r));
    const closed = next(client, 'close');
    const errored = next(client, 'error');
    await d.stop();
    stopped = true;
    const failed = await pending;
    assert.ok(failed instanceof hybrid.HybridError && failed.status >= 500, String(failed));
    await closed;
    const err = await errored;
    assert.ok(err instanceof hybrid.HybridError && err.status >= 500);
    await assert.rejects(client.call(server.name, 'hold', {}), { code: 'HYB_E_CLOSED' });
    server.close();
  } finally {
    if (!stopped) await d.stop();
  }
});
