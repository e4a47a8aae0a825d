// SPDX-License-Identifier: MIT
// A real cluster from Node (doc/cluster.md): a mosquitto broker on a free loopback port and
// two hybridd, hosts hosta and hostb.  An event registered {cluster: true} on hosta reaches
// a subscription on hostb, and a call from hostb to an endpoint on hostb's peer hosta is
// served there with the caller's @hostb name and transport "cluster".  Skipped when
// mosquitto is not installed.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const {
  hybrid, startDaemon, tempDir, MOSQUITTO, freePort, portOpen,
} = require('./helpers.js');

const APP = 'org.example.node.cluster';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// polls a file for re; fails with its text after a generous bound
async function inFile(file, re, what) {
  const until = Date.now() + 30000;
  for (;;) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (re.test(text)) return;
    if (Date.now() > until) throw new Error(`${what}: not in ${file}:\n${text}`);
    await sleep(20);
  }
}

let mq;
let mqLog;
let a;
let b;

test.before(async () => {
  if (!MOSQUITTO) return;
  const dir = tempDir();
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\n` +
                   (process.getuid() === 0 ? 'user root\n' : ''));
  mqLog = path.join(dir, 'mosquitto.log');
  const out = fs.openSync(mqLog, 'w');
  mq = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const until = Date.now() + 30000;
  while (!(await portOpen(port))) {
    if (mq.exitCode !== null || Date.now() > until)
      throw new Error(`mosquitto did not start: ${fs.readFileSync(mqLog, 'utf8')}`);
    await sleep(50);
  }
  const conf2 = (h) => `host: ${h}\ncluster:\n  broker: mqtt://127.0.0.1:${port}\nlog: {level: info}\n`;
  a = await startDaemon(conf2('hosta'));
  b = await startDaemon(conf2('hostb'));
  await inFile(a.log, /cluster: connected to/, 'hosta connects to the broker');
  await inFile(b.log, /cluster: connected to/, 'hostb connects to the broker');
});

test.after(async () => {
  for (const d of [a, b]) if (d) await d.stop();
  if (mq && mq.exitCode === null) {
    const done = new Promise((r) => mq.once('exit', r));
    mq.kill('SIGTERM');
    await done;
  }
  if (mqLog) fs.rmSync(path.dirname(mqLog), { recursive: true, force: true });
});

test('a {cluster: true} event of hosta reaches hostb; a call from hostb runs on hosta',
     { skip: !MOSQUITTO && 'mosquitto is not installed' }, async () => {
  const gen = await hybrid.connect({ socket: a.sock, app: APP, runner: 'gen' });
  const lis = await hybrid.connect({ socket: b.sock, app: APP, runner: 'lis' });
  try {
    gen.registerEvent('TEMP', { cluster: true });
    gen.procedure('whoami', {}, (p, info) => ({
      caller: info.caller, method: info.method, transport: info.transport, principal: info.principal,
    }));
    const sub = lis.subscribe(`@hosta/${APP}/gen`, 'TEMP');
    const got = new Promise((resolve) => sub.once('event', resolve));
    // hostb's MQTT subscription follows the local one: fire until an event comes
    let ev = null;
    got.then((e) => { ev = e; });
    const until = Date.now() + 60000;
    while (!ev) {
      assert.ok(Date.now() < until, 'no cluster event of hosta reached hostb');
      gen.fire('TEMP', { t: 21.5 });
      await sleep(100);
    }
    assert.deepEqual({ source: ev.source, bubble: ev.bubble, data: ev.data },
                     { source: `@hosta/${APP}/gen`, bubble: 'TEMP', data: { t: 21.5 } });
    sub.close();
    // hostb may not know hosta yet (its presence comes through the broker): retry
    let who;
    for (;;) {
      try {
        who = await lis.call(`@hosta/${APP}/gen`, 'whoami', {}, { timeout: 2000 });
        break;
      } catch (e) {
        assert.ok(e instanceof hybrid.HybridError && [502, 503, 504].includes(e.status), `${e}`);
        assert.ok(Date.now() < until, 'no call from hostb reached hosta');
      }
    }
    assert.deepEqual(who, { caller: `@hostb/${APP}/lis`, method: 'whoami', transport: 'cluster',
                            principal: null });
  } finally {
    gen.close();
    lis.close();
  }
});
