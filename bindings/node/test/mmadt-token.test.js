// SPDX-License-Identifier: MIT
// mm-ADT from Node, and security tokens: keygen, issue, attenuate, verify, inspect, and
// connecting with a token to a hybridd that requires one (refused without: 401).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { hybrid, startDaemon, tempDir } = require('./helpers.js');

test('mmadt.run: the results of every statement, as an array', () => {
  assert.deepEqual(hybrid.mmadt.run('{1..3}.plus(1)'), [2, 3, 4]);
  assert.deepEqual(hybrid.mmadt.run('3.plus(2).mult(2)'), [10]);
  assert.deepEqual(hybrid.mmadt.run('3 + 2 x 2'), [10]);
  assert.deepEqual(hybrid.mmadt.run("1.plus(1)\n'a'.plus('b')"), [2, 'ab']);
  assert.deepEqual(hybrid.mmadt.run('9223372036854775806.plus(1)'), [2n ** 63n - 1n]);
  assert.throws(() => hybrid.mmadt.run('9223372036854775807.plus(1)'), { code: 'HYB_E_OVERFLOW' });
  assert.throws(() => hybrid.mmadt.run('1.plus('), (e) => {
    assert.ok(e instanceof hybrid.HybridError);
    assert.equal(e.code, 'HYB_E_PARSE');
    return true;
  });
});

const iss = hybrid.token.keygen();
const holder = hybrid.token.keygen();
const guest = hybrid.token.keygen();

test('keygen, issue, verify, inspect, attenuate', () => {
  assert.match(iss.privateKey, /^-----BEGIN PRIVATE KEY-----/);
  assert.match(iss.publicKey, /^-----BEGIN PUBLIC KEY-----/);
  assert.equal(iss.kid.length, 43);
  assert.notEqual(iss.kid, holder.kid);

  const tok = hybrid.token.issue(iss.privateKey, {
    iss: 'acme', sub: 'alice', aud: 'hub1', holder: holder.publicKey,
    caps: [{ resource: '/sensors/#', actions: ['read', 'sub'] }], ttl: 600, dlg: 1,
  });
  assert.equal(tok.split('.').length, 3);
  const v = hybrid.token.verify(tok, { issuers: { acme: iss.publicKey }, audience: 'hub1' });
  assert.equal(v.sub, 'alice');
  assert.equal(v.iss, 'acme');
  assert.equal(v.holder, holder.kid);
  assert.equal(v.blocks, 1);
  assert.deepEqual(v.cap.map((c) => ({ resource: c.resource, actions: [...c.actions].sort() })),
                   [{ resource: '/sensors/#', actions: ['read', 'sub'] }]);

  const ins = hybrid.token.inspect(tok);
  assert.equal(ins.verified, false);
  assert.equal(ins.blocks[0].claims.sub, 'alice');
  assert.equal(ins.blocks[0].header.kid, iss.kid);

  // refusals are 401 HYB_E_UNAUTHORIZED
  const refused = { status: 401, code: 'HYB_E_UNAUTHORIZED' };
  assert.throws(() => hybrid.token.verify(tok, { issuers: { acme: iss.publicKey }, audience: 'other' }), refused);
  assert.throws(() => hybrid.token.verify(tok, { issuers: { acme: guest.publicKey }, audience: 'hub1' }), refused);
  // a signature with one character changed: the third from the end holds six bits of the
  // signature (the last one two bits and padding), so the change always reaches it
  const c = tok.at(-3);
  const tampered = tok.slice(0, -3) + (c === 'A' ? 'B' : 'A') + tok.slice(-2);
  assert.notEqual(tampered, tok);
  assert.throws(() => hybrid.token.verify(tampered, { issuers: { acme: iss.publicKey }, audience: 'hub1' }), refused);

  // attenuation: the holder narrows the rights for a guest
  const narrow = hybrid.token.attenuate(tok, holder.privateKey, {
    holder: guest.publicKey, caps: ['/sensors/kitchen/#=read'],
  });
  const nv = hybrid.token.verify(narrow, { issuers: { acme: iss.publicKey }, audience: 'hub1' });
  assert.equal(nv.blocks, 2);
  assert.equal(nv.holder, guest.kid);
  assert.deepEqual(nv.cap, [{ resource: '/sensors/kitchen/#', actions: ['read'] }]);
  // only the current holder may attenuate
  assert.throws(() => hybrid.token.attenuate(tok, guest.privateKey, { holder: guest.publicKey }), { code: 'EPERM' });
  assert.throws(() => hybrid.token.issue(iss.privateKey, { iss: 'acme', sub: 'a', aud: 'h', holder: holder.publicKey, caps: ['/x=fly'] }),
                { code: 'HYB_E_PARSE' });
});

test('connect with a token to a hybridd with auth.tokens require; refused without', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'acme.pub'), iss.publicKey);
  const d = await startDaemon(`auth:
  tokens: require
  audience: hub1
  issuers:
    acme: ${path.join(dir, 'acme.pub')}
boot:
  data:
    /sensors/t: '7'
    /private/x: '1'
`, dir);
  try {
    const tok = hybrid.token.issue(iss.privateKey, {
      iss: 'acme', sub: 'alice', aud: ['hub1'], holder: holder.publicKey,
      // the connection's own bus name must be granted something, the store reads are
      caps: { '/sensors/#': 'read,sub', 'bus://localhost/org.example.node.tok/+': 'reg' }, ttl: 600,
    });
    const unauthorized = { status: 401, code: 'HYB_E_UNAUTHORIZED' };
    await assert.rejects(hybrid.connect({ socket: d.sock, app: 'org.example.node.tok' }), unauthorized);
    await assert.rejects(hybrid.connect({ socket: d.sock, app: 'org.example.node.tok', token: tok, key: guest.privateKey }),
                         unauthorized);
    const bus = await hybrid.connect({ socket: d.sock, app: 'org.example.node.tok', token: tok, key: holder.privateKey });
    assert.match(bus.name, /^@localhost\/org\.example\.node\.tok\//);
    bus.close();
    await assert.rejects(hybrid.store({ socket: d.sock, app: 'org.example.node.tok' }), unauthorized);
    const st = await hybrid.store({ socket: d.sock, app: 'org.example.node.tok', token: tok, key: holder.privateKey });
    assert.equal(await st.get('/sensors/t'), 7);
    await assert.rejects(st.get('/private/x'), { status: 403, code: 'HYB_E_FORBIDDEN' });
    await assert.rejects(st.put('/sensors/t', 8), { status: 403 });
    st.close();
  } finally {
    await d.stop();
  }
});
