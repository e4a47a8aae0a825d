// SPDX-License-Identifier: MIT
// No leak over many calls: RSS after 5000 more calls (each moving a 4 KiB string both ways
// through a Node procedure) stays within 8 MiB of RSS before them, both measured after a
// full GC (--expose-gc).  Why 8 MiB: every call builds its request body and its reply body
// in C and a params object and a result object in JS, each holding the 4 KiB string; losing
// any one of them per call would grow RSS by at least 5000 x 4 KiB = 19.5 MiB.  The warm-up
// burst before the first measurement lets the JIT, the allocator and libuv reach their
// steady state, which is what the 8 MiB leaves room for.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { hybrid, startDaemon } = require('./helpers.js');

test('RSS before/after 5000 calls stays within 8 MiB', async () => {
  assert.equal(typeof global.gc, 'function', 'run node with --expose-gc');
  const d = await startDaemon();
  const server = await hybrid.connect({ socket: d.sock, app: 'org.example.node.leaksrv' });
  const client = await hybrid.connect({ socket: d.sock, app: 'org.example.node.leak' });
  try {
    server.procedure('echo', { p: 'str', i: 'int' }, (params) => params);
    const payload = 'x'.repeat(4096);
    const burst = async (n) => {
      const lanes = 8; // a few calls in flight, as a real client has
      let next = 0;
      await Promise.all(Array.from({ length: lanes }, async () => {
        while (next < n) {
          const i = next++;
          const r = await client.call(server.name, 'echo', { p: payload, i });
          if (r.i !== i || r.p.length !== 4096) throw new Error(`bad echo for call ${i}`);
        }
      }));
    };
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        global.gc();
        await new Promise((r) => setImmediate(r)); // finalizers run after the GC
      }
      return process.memoryUsage().rss;
    };
    await burst(2000);
    const before = await settle();
    await burst(5000);
    const after = await settle();
    const grown = after - before;
    console.log(`# RSS grew by ${(grown / 1048576).toFixed(2)} MiB over 5000 calls`);
    assert.ok(grown < 8 * 1024 * 1024, `RSS grew by ${(grown / 1048576).toFixed(1)} MiB over 5000 calls`);
    // a failing call path does not leak either, and the process goes on
    for (let i = 0; i < 200; i++) {
      await assert.rejects(client.call(server.name, 'echo', { p: 1 }), { status: 400 });
    }
  } finally {
    server.close();
    client.close();
    await d.stop();
  }
});
