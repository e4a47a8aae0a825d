// SPDX-License-Identifier: MIT
// The host store from Node: a daemon's store (socket) and an embedded database (db):
// put/get of nodes, patterns and branches, transient writes, watches with replay as
// EventEmitters and async iterators, policy.store refusals (403), deletes.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { hybrid, startDaemon, cli, next, tempDir } = require('./helpers.js');

// The same checks on any store: the behaviour is the backend contract's, whoever serves it.
async function exercise(store, root) {
  await store.put(`${root}/a/b`, 5);
  await store.put(`${root}/a/c`, { t: 21.5, big: 2n ** 62n });
  assert.equal(await store.get(`${root}/a/b`), 5);
  assert.deepEqual(await store.get(`${root}/a/c`), { t: 21.5, big: 2n ** 62n });
  assert.equal(await store.get(`${root}/nothing`), null);
  // a pattern gives {furi: value} in key order
  assert.deepEqual(await store.get(`${root}/a/#`),
                   { [`${root}/a/b`]: 5, [`${root}/a/c`]: { t: 21.5, big: 2n ** 62n } });

  // replay first: the retained values that match, then later writes in write order
  const w = store.watch(`${root}/a/#`, { replay: true });
  const seen = [];
  w.on('message', (m) => seen.push(m));
  const two = new Promise((resolve) => w.on('message', () => { if (seen.length === 2) resolve(); }));
  await two;
  assert.deepEqual(seen, [
    { furi: `${root}/a/b`, value: 5, retain: true },
    { furi: `${root}/a/c`, value: { t: 21.5, big: 2n ** 62n }, retain: true },
  ]);
  const more = next(w, 'message');
  await store.put(`${root}/a/d`, [1, 'two']);
  assert.deepEqual(await more, { furi: `${root}/a/d`, value: [1, 'two'], retain: true });

  // transient: watchers see it, nothing is stored
  const tr = next(w, 'message');
  await store.put(`${root}/a/t`, 'ping', { transient: true });
  assert.deepEqual(await tr, { furi: `${root}/a/t`, value: 'ping', retain: false });
  assert.equal(await store.get(`${root}/a/t`), null);

  // a delete is a message with value null
  const del = next(w, 'message');
  await store.delete(`${root}/a/d`);
  assert.deepEqual(await del, { furi: `${root}/a/d`, value: null, retain: true });
  assert.equal(await store.get(`${root}/a/d`), null);
  w.close();

  // the async iterator, with replay
  const it = store.watch(`${root}/a/b`, { replay: true });
  const got = [];
  const writer = (async () => { await store.put(`${root}/a/b`, 6); })();
  for await (const m of it) {
    got.push(m.value);
    if (got.length === 2) break; // break closes the watch
  }
  await writer;
  assert.deepEqual(got, [5, 6]);
  assert.equal(await store.get(`${root}/a/b`), 6);

  // errors are HybridErrors with status and code
  await assert.rejects(store.put('relative/path', 1), (e) => e instanceof hybrid.HybridError && e.status >= 400);
  // NaN and the infinities have no JSON form: refused, as a call refuses them, so that no
  // reader (Python through JSON) meets a value it cannot map
  await assert.rejects(async () => store.put(`${root}/nan`, NaN), { code: 'HYB_E_TYPE' });
  await assert.rejects(async () => store.put(`${root}/nan`, { t: -Infinity }), { code: 'HYB_E_TYPE' });
  await assert.rejects(async () => store.put(`${root}/nan`, hybrid.Real(Infinity)), { code: 'HYB_E_TYPE' });
  assert.equal(await store.get(`${root}/nan`), null);
  await assert.rejects(store.get('/a//b'), { code: 'HYB_E_PARSE' });
}

test('the daemon\'s store, through the socket', async () => {
  const d = await startDaemon();
  try {
    const st = await hybrid.store({ socket: d.sock, app: 'org.example.node.store' });
    assert.equal(st.source, 2); // HYB_HOST_BUS: the daemon named
    await exercise(st, '/node');
    // what Node wrote is what C reads
    const r = await cli(d.sock, ['store', 'get', '/node/a/c']);
    assert.equal(r.status, 0, r.stderr);
    st.close();
    await assert.rejects(st.get('/node/a/b'), { code: 'HYB_E_CLOSED' });
  } finally {
    await d.stop();
  }
});

test('an embedded database (db), kept across opens', async () => {
  const dir = tempDir();
  try {
    const db = path.join(dir, 'store.db');
    const st = await hybrid.store({ db });
    assert.equal(st.source, 1); // HYB_HOST_DB
    await exercise(st, '/emb');
    st.close();
    const again = await hybrid.store({ db });
    assert.equal(await again.get('/emb/a/b'), 6);
    again.close();
  } finally {
    require('node:fs').rmSync(dir, { recursive: true, force: true });
  }
});

test('policy.store: what a rule does not allow is a 403', async () => {
  const d = await startDaemon(`policy:
  store:
    - {furi: "/ro/#", allow: [read, subscribe]}
    - {furi: "/rw/#", allow: [read, write, delete, subscribe]}
`);
  try {
    const st = await hybrid.store({ socket: d.sock, app: 'org.example.node.store' });
    await st.put('/rw/x', 1);
    assert.equal(await st.get('/rw/x'), 1);
    await assert.rejects(st.put('/ro/x', 1), (e) => {
      assert.equal(e.status, 403);
      assert.equal(e.code, 'HYB_E_FORBIDDEN');
      return true;
    });
    assert.throws(() => st.watch('/other/#'), { status: 403, code: 'HYB_E_FORBIDDEN' });
    st.close();
  } finally {
    await d.stop();
  }
});

// store.close() from inside a watch's listener: the backend must outlive the delivery loop
// that called the listener (it was freed under it: a use after free).  The child runs with
// glibc's MALLOC_PERTURB_ so that freed memory is overwritten and such a use crashes it,
// as it would under ASan; with the fix it prints 'ok' and exits 0.
test('store.close() inside a watch listener, daemon and embedded', async () => {
  const d = await startDaemon();
  const dir = tempDir();
  const child = `
    const hybrid = require(${JSON.stringify(path.join(__dirname, '..'))});
    (async () => {
      for (const opts of [{ socket: process.argv[1] }, { db: process.argv[2] }]) {
        const st0 = await hybrid.store(opts);
        for (let i = 0; i < 5; i++) await st0.put('/ciw/' + i, i);
        st0.close();
        for (let k = 0; k < 10; k++) {
          const st = await hybrid.store(opts);
          const w = st.watch('/ciw/#', { replay: true });
          await new Promise((res) => w.on('message', () => { st.close(); res(); }));
          if (!st._closed) throw new Error('not closed');
        }
      }
      console.log('ok');
    })().catch((e) => { console.error(e); process.exit(2); });`;
  try {
    const r = await new Promise((resolve, reject) => {
      const p = require('node:child_process').spawn(
        process.execPath, ['-e', child, d.sock, path.join(dir, 'ciw.db')],
        { env: { ...process.env, MALLOC_PERTURB_: '165' } });
      let out = '';
      p.stdout.on('data', (b) => { out += b; });
      p.stderr.on('data', (b) => { out += b; });
      p.on('error', reject);
      p.on('close', (code, signal) => resolve({ code, signal, out }));
    });
    assert.deepEqual([r.code, r.signal, r.out.trim()], [0, null, 'ok']);
  } finally {
    await d.stop();
    require('node:fs').rmSync(dir, { recursive: true, force: true });
  }
});

// A daemon that does not answer (stopped here) must not freeze Node's loop: a read runs on a
// worker thread holding the backend's lock across its round trip, and the loop thread used
// to wait for that lock in process (woken by the timer the previous write started), so not
// even a timer ran until the library's 30 s deadline.  The child shows its loop still runs.
test('a store op waiting on an unresponsive daemon does not block the loop', async () => {
  const d = await startDaemon();
  const child = `
    const hybrid = require(${JSON.stringify(path.join(__dirname, '..'))});
    (async () => {
      const st = await hybrid.store({ socket: process.argv[1] });
      await st.put('/frz/a', 1); // its completion starts the timer that runs process next
      process.kill(Number(process.argv[2]), 'SIGSTOP');
      st.get('/frz/a').catch(() => {});
      // give the worker thread the time to take the backend's lock and send the request
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      setTimeout(() => console.log('loop alive'), 50); // the parent ends the child then
    })().catch((e) => { console.error(e); process.exit(2); });`;
  let p;
  try {
    const out = await new Promise((resolve, reject) => {
      p = require('node:child_process').spawn(process.execPath, ['-e', child, d.sock, String(d.proc.pid)]);
      let text = '';
      // 20 s: far more than a live loop needs, less than the 30 s the frozen one took
      const t = setTimeout(() => resolve(text + '(no answer within 20 s)'), 20000);
      const done = () => { clearTimeout(t); resolve(text); };
      p.stdout.on('data', (b) => { text += b; if (text.includes('\n')) done(); });
      p.stderr.on('data', (b) => { text += b; });
      p.on('error', reject);
      p.on('close', done);
    });
    assert.equal(out.trim(), 'loop alive');
  } finally {
    if (p && p.exitCode === null) p.kill('SIGKILL');
    d.proc.kill('SIGCONT');
    await d.stop();
  }
});
