// SPDX-License-Identifier: MIT
// Remote brokers and the caller info from Node: connect({socket: 'ws://...'}) and wss://
// ({caFile}, {pin}) against a real hybridd with listen.http and listen.https on port 0, the
// refusals by HybridError code, info.transport / info.principal for Unix, ws and wss callers,
// and registerEvent(..., {cluster: true}) refused 501 by a daemon outside a cluster.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { hybrid, startDaemon, tempDir } = require('./helpers.js');

const BUILTIN = '@localhost/org.hybridos.bus/builtin';
const CERTS = path.resolve(__dirname, '..', '..', '..', 'tests', 'edge', 'certs');
const APP = 'org.example.node.remote';
const read = (f) => fs.readFileSync(f, 'utf8');

let d;
let ws;
let wss;
let tok;
let holder;

// polls the daemon's log for re; fails with the log after a generous bound
async function fromLog(re, what) {
  const until = Date.now() + 30000;
  for (;;) {
    const m = re.exec(read(d.log));
    if (m) return m;
    if (Date.now() > until) throw new Error(`${what} not in the daemon's log:\n${read(d.log)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test.before(async () => {
  // $HYBRID_CA / $HYBRID_PIN must not decide the trust: each case names its own
  delete process.env.HYBRID_CA;
  delete process.env.HYBRID_PIN;
  const iss = hybrid.token.keygen();
  holder = hybrid.token.keygen();
  const dir = tempDir();
  fs.chmodSync(dir, 0o700);
  fs.writeFileSync(path.join(dir, 'acme.pub'), iss.publicKey);
  tok = hybrid.token.issue(iss.privateKey, {
    iss: 'acme', sub: 'alice', aud: ['hub1'], holder: holder.publicKey, ttl: 3600,
    caps: { 'bus://localhost/#': 'call,reg,sub,pub', '/#': 'read,write' },
  });
  d = await startDaemon(`listen:
  http: 127.0.0.1:0
  https: 127.0.0.1:0
tls: {cert: ${CERTS}/server.pem, key: ${CERTS}/server.key}
auth:
  tokens: accept
  audience: hub1
  issuers:
    acme: ${path.join(dir, 'acme.pub')}
log: {level: info}
`, dir);
  const hp = (await fromLog(/edge: HTTP on 127\.0\.0\.1:([1-9][0-9]*)/, 'the HTTP port'))[1];
  const sp = (await fromLog(/listening on https:\/\/127\.0\.0\.1:([1-9][0-9]*)/, 'the HTTPS port'))[1];
  ws = `ws://127.0.0.1:${hp}/bus/ws`;
  wss = `wss://localhost:${sp}/bus/ws`; // the certificate names localhost
});
test.after(async () => { await d.stop(); });

const remote = (url, more = {}) => hybrid.connect({ socket: url, app: APP, token: tok, key: holder.privateKey, ...more });

test('ws://: connect, call, and the store', async () => {
  const bus = await remote(ws);
  try {
    assert.match(bus.name, /^@localhost\/org\.example\.node\.remote\//);
    assert.deepEqual(await bus.call(BUILTIN, 'echo', { x: [1, 'two'] }), { x: [1, 'two'] });
    await assert.rejects(bus.call(BUILTIN, 'noSuchMethod', {}), { status: 404, code: 'HYB_E_NOT_FOUND' });
  } finally {
    bus.close();
  }
  const st = await hybrid.store({ socket: ws, app: APP, token: tok, key: holder.privateKey });
  try {
    await st.put('/remote/node', 21.5);
    assert.equal(await st.get('/remote/node'), 21.5);
  } finally {
    st.close();
  }
});

test('wss://: with the CA, with the pin (bare or sha256//), with both', async () => {
  const pin = read(path.join(CERTS, 'server.pin')).trim();
  for (const more of [{ caFile: path.join(CERTS, 'ca.pem') }, { pin }, { pin: `sha256//${pin}` },
                      { pin, caFile: path.join(CERTS, 'ca.pem') }]) {
    const bus = await remote(wss, more);
    try {
      assert.deepEqual(await bus.call(BUILTIN, 'echo', [1, 2]), [1, 2]);
    } finally {
      bus.close();
    }
  }
});

test('wss:// refusals: wrong pin or CA (HYB_E_AUTH), nothing to verify by (EINVAL)', async () => {
  const isAuth = (e) => {
    assert.ok(e instanceof hybrid.HybridError, String(e));
    assert.equal(e.code, 'HYB_E_AUTH');
    return true;
  };
  await assert.rejects(remote(wss, { pin: read(path.join(CERTS, 'wrongca.pin')).trim() }), (e) => {
    isAuth(e);
    assert.match(e.message, /pinned/);
    return true;
  });
  await assert.rejects(remote(wss, { caFile: path.join(CERTS, 'wrongca.pem') }), isAuth);
  await assert.rejects(remote(wss, { caFile: path.join(CERTS, 'wrongca.pem'),
                                     pin: read(path.join(CERTS, 'server.pin')).trim() }), isAuth);
  await assert.rejects(remote(wss), { status: 400, code: 'EINVAL' });
  await assert.rejects(remote(wss, { pin: 'not a pin' }), { status: 400, code: 'EINVAL' });
  await assert.rejects(remote(wss, { pin: 42 }), TypeError);
});

test('ws:// refusals: no token, an untrusted token, nobody listening, a wrong path', async () => {
  await assert.rejects(hybrid.connect({ socket: ws, app: APP }), { status: 401, code: 'HYB_E_UNAUTHORIZED' });
  const rogue = hybrid.token.keygen();
  const bad = hybrid.token.issue(rogue.privateKey, {
    iss: 'acme', sub: 'alice', aud: ['hub1'], holder: holder.publicKey, caps: { 'bus://localhost/#': 'call' },
  });
  await assert.rejects(hybrid.connect({ socket: ws, app: APP, token: bad, key: holder.privateKey }),
                       { status: 401, code: 'HYB_E_UNAUTHORIZED' });
  const port = await new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
  await assert.rejects(remote(`ws://127.0.0.1:${port}/bus/ws`), { status: 503, code: 'HYB_E_UNAVAILABLE' });
  await assert.rejects(remote(ws.replace('/bus/ws', '/nothing/here')), { status: 404 });
});

test('info.transport and info.principal for Unix, ws and wss callers', async () => {
  const srv = await hybrid.connect({ socket: d.sock, app: APP, runner: 'srv' });
  const local = await hybrid.connect({ socket: d.sock, app: APP, runner: 'local' });
  const wsc = await remote(ws, { runner: 'ws' });
  const wssc = await remote(wss, { runner: 'wss', caFile: path.join(CERTS, 'ca.pem') });
  try {
    srv.procedure('whoami', {}, (p, info) => ({
      caller: info.caller, method: info.method, transport: info.transport, principal: info.principal,
    }));
    assert.deepEqual(await local.call(srv.name, 'whoami', {}),
                     { caller: local.name, method: 'whoami', transport: 'unix', principal: null });
    assert.deepEqual(await wsc.call(srv.name, 'whoami', {}),
                     { caller: wsc.name, method: 'whoami', transport: 'ws', principal: 'alice' });
    assert.deepEqual(await wssc.call(srv.name, 'whoami', {}),
                     { caller: wssc.name, method: 'whoami', transport: 'wss', principal: 'alice' });
  } finally {
    for (const b of [srv, local, wsc, wssc]) b.close();
  }
});

test('registerEvent {cluster: true} outside a cluster: HybridError 501', async () => {
  const bus = await hybrid.connect({ socket: d.sock, app: APP, runner: 'ev' });
  try {
    assert.throws(() => bus.registerEvent('TEMP', { cluster: true }), (e) => {
      assert.ok(e instanceof hybrid.HybridError);
      assert.equal(e.status, 501);
      assert.equal(e.code, 'HYB_E_NOT_IMPLEMENTED');
      return true;
    });
    // the plain registration still works (the refused one left nothing behind)
    bus.registerEvent('TEMP');
    const sub = bus.subscribe(bus.name, 'TEMP');
    const got = new Promise((resolve) => sub.once('event', resolve));
    bus.fire('TEMP', { t: 1 });
    assert.deepEqual((await got).data, { t: 1 });
    sub.close();
  } finally {
    bus.close();
  }
});
