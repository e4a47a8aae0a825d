// SPDX-License-Identifier: MIT
// The cluster scope //... of a Store through a real mosquitto (doc/cluster.md's mapping:
// //a/b is the topic a/b, the value's JSON the retained payload): with a daemon that has a
// cluster: section (//... goes to the daemon) and with the embedded store and a broker URL
// ({cluster} or $HYBRID_CLUSTER); with neither, HYB_E_SCOPE naming what to set.  Skipped
// when mosquitto is not installed.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const {
  hybrid, startDaemon, tempDir, MOSQUITTO, freePort, portOpen,
} = require('./helpers.js');

const CLIENTS = spawnSync('mosquitto_sub', ['--help']).error === undefined;
const SKIP = (!MOSQUITTO || !CLIENTS) && 'mosquitto (and mosquitto-clients) is not installed';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd}: ${code} ${err}`))));
  });
}

let mq;
let dir;
let port;
let url;
let d;       // a daemon with a cluster: section
let plain;   // a daemon without one

const subRetained = async (topic) => (await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port),
  '-t', topic, '-C', '1', '-W', '30', '--retained-only'])).replace(/\n$/, '');
const pub = (topic, payload, retain = true) => run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port),
  '-q', '1', '-t', topic, '-m', payload, ...(retain ? ['-r'] : [])]);

test.before(async () => {
  if (SKIP) return;
  dir = tempDir();
  port = await freePort();
  url = `mqtt://127.0.0.1:${port}`;
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\n` +
                   (process.getuid() === 0 ? 'user root\n' : ''));
  const log = path.join(dir, 'mosquitto.log');
  const out = fs.openSync(log, 'w');
  mq = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const until = Date.now() + 30000;
  while (!(await portOpen(port))) {
    if (mq.exitCode !== null || Date.now() > until)
      throw new Error(`mosquitto did not start: ${fs.readFileSync(log, 'utf8')}`);
    await sleep(50);
  }
  d = await startDaemon(`host: hosta\ncluster:\n  broker: ${url}\nlog: {level: info}\n`);
  const until2 = Date.now() + 30000;
  while (!/cluster: connected to/.test(fs.readFileSync(d.log, 'utf8'))) {
    if (Date.now() > until2) throw new Error(`hybridd did not connect: ${fs.readFileSync(d.log, 'utf8')}`);
    await sleep(20);
  }
  plain = await startDaemon('log: {level: warning}\n');
});

test.after(async () => {
  for (const x of [d, plain]) if (x) await x.stop();
  if (mq && mq.exitCode === null) {
    const done = new Promise((r) => mq.once('exit', r));
    mq.kill('SIGTERM');
    await done;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function roundTrip(st, base) {
  await st.put(`//${base}/temp`, 21.5);                   // read by mosquitto_sub
  assert.equal(await subRetained(`${base}/temp`), '21.5');
  await st.put(`//${base}/name`, 'kitchen');
  assert.equal(await subRetained(`${base}/name`), '"kitchen"');
  await pub(`${base}/ext`, '{"on": true}');               // a mosquitto_pub -r read back
  assert.deepEqual(await st.get(`//${base}/ext`), { on: true });
  await st.delete(`//${base}/temp`);                       // an empty retained message
  assert.equal(await st.get(`//${base}/temp`), null);
  // a watch with replay: the retained value, then a publication
  await pub(`${base}/w/old`, '1');
  const w = st.watch(`//${base}/w/#`, { replay: true });
  const got = [];
  w.on('message', (m) => got.push([m.furi, m.value]));
  const until = Date.now() + 30000;
  while (!got.some(([f]) => f === `//${base}/w/old`)) {
    assert.ok(Date.now() < until, 'no replay of the retained value');
    await sleep(10);
  }
  assert.deepEqual(got[0], [`//${base}/w/old`, 1]);
  await pub(`${base}/w/new`, '[1, 2]', false);
  while (!got.some(([f]) => f === `//${base}/w/new`)) {
    assert.ok(Date.now() < until, 'no publication reached the watch');
    await sleep(10);
  }
  assert.deepEqual(got.find(([f]) => f === `//${base}/w/new`), [`//${base}/w/new`, [1, 2]]);
  w.close();
}

test('embedded store with {cluster}: //... through the broker', { skip: SKIP }, async () => {
  const st = await hybrid.store({ db: path.join(tempDir(), 's.db'), cluster: url });
  try {
    assert.equal(st.source, 1);
    await roundTrip(st, 'nemb');
    await st.put('/local', 1);                            // the host scope stays the database
    assert.equal(await st.get('/local'), 1);
  } finally { st.close(); }
});

test('embedded store with $HYBRID_CLUSTER', { skip: SKIP }, async () => {
  const old = process.env.HYBRID_CLUSTER;
  process.env.HYBRID_CLUSTER = `${url}?prefix=nenv/`;
  try {
    const st = await hybrid.store({ db: path.join(tempDir(), 's.db') });
    try {
      await st.put('//k/v', [1, 'a']);
      assert.equal(await subRetained('nenv/k/v'), '[1,"a"]');
    } finally { st.close(); }
  } finally {
    if (old === undefined) delete process.env.HYBRID_CLUSTER; else process.env.HYBRID_CLUSTER = old;
  }
});

test('embedded store without a broker: HYB_E_SCOPE naming $HYBRID_CLUSTER', async () => {
  const old = process.env.HYBRID_CLUSTER;
  delete process.env.HYBRID_CLUSTER;
  try {
    const st = await hybrid.store({ db: path.join(tempDir(), 's.db') });
    try {
      for (const op of [() => st.get('//a/b'), () => st.put('//a/b', 1), () => st.delete('//a/b')])
        await assert.rejects(op(), (e) => e.code === 'HYB_E_SCOPE' && /HYBRID_CLUSTER/.test(e.message));
      assert.throws(() => st.watch('//a/#'), (e) => e.code === 'HYB_E_SCOPE');
    } finally { st.close(); }
  } finally {
    if (old !== undefined) process.env.HYBRID_CLUSTER = old;
  }
});

test('a bad cluster URL is refused when the store opens', async () => {
  await assert.rejects(hybrid.store({ db: path.join(tempDir(), 's.db'), cluster: 'http://nope' }),
                       (e) => e.code === 'EINVAL');
});

test('daemon with a cluster: section serves //...', { skip: SKIP }, async () => {
  // the daemon serves //...: a broker named here is not used
  const st = await hybrid.store({ socket: d.sock, cluster: 'mqtt://127.0.0.1:1?prefix=unused/' });
  try {
    assert.equal(st.source, 2);
    await roundTrip(st, 'ndmn');
  } finally { st.close(); }
});

test('daemon without cluster: refuses //... (EINVAL, not a host-scope fURI)', { skip: SKIP }, async () => {
  const st = await hybrid.store({ socket: plain.sock, cluster: 'mqtt://127.0.0.1:1' });
  try {
    await assert.rejects(st.put('//a/b', 1), (e) => e.code === 'EINVAL' && /host-scope/.test(e.message));
  } finally { st.close(); }
});
