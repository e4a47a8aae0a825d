// SPDX-License-Identifier: MIT
// The bus from Node against a real hybridd: calls, procedures served from Node and called
// from C (the hybrid CLI), argument policies (400), access lists (403), deadlines (504),
// handlers that throw, events with patterns, closing, and the process lifetime rules.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { hybrid, startDaemon, cli, next } = require('./helpers.js');

const BUILTIN = '@localhost/org.hybridos.bus/builtin';
let d;
let server;
let client;

test.before(async () => {
  d = await startDaemon();
  server = await hybrid.connect({ socket: d.sock, app: 'org.example.node.server' });
  client = await hybrid.connect({ socket: d.sock, app: 'org.example.node.client' });
});
test.after(async () => {
  server.close();
  client.close();
  await d.stop();
});

test('connect names the endpoint @localhost/<app>/<runner>', () => {
  assert.match(server.name, /^@localhost\/org\.example\.node\.server\/p\d+(_\d+)?$/);
  assert.notEqual(server.name, client.name);
});

test('a call to the builtin echo', async () => {
  assert.deepEqual(await client.call(BUILTIN, 'echo', { words: 'hi' }, { timeout: 5000 }),
                   { words: 'hi' });
});

test('a procedure served from Node, called from Node and from C (the CLI)', async () => {
  server.procedure('add', { a: 'int', b: 'int' }, async ({ a, b }) => ({ sum: a + b }));
  assert.deepEqual(await client.call(server.name, 'add', { a: 2, b: 40 }), { sum: 42 });
  const r = await cli(d.sock, ['call', server.name, 'add', '{"a":1,"b":2}']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(hybrid.fromJSON(r.stdout.trim()), { sum: 3 });
  // many calls at once, all answered
  const sums = await Promise.all(Array.from({ length: 50 }, (_, i) => client.call(server.name, 'add', { a: i, b: 1 })));
  assert.deepEqual(sums.map((s) => s.sum), Array.from({ length: 50 }, (_, i) => i + 1));
});

// A call's promise is index.js's, found again by a number when its answer comes; numbers of
// settled calls are reused.  Every promise must settle once, with its own call's answer.
test('calls in flight: each settles with its own answer, also mixed with failures and aborts', async () => {
  server.procedure('add2', { a: 'int', b: 'int' }, async ({ a, b }) => ({ sum: a + b }));
  server.procedure('fail2', {}, () => { throw new hybrid.HybridError('no lamp', 404); });
  let release;
  const gate = new Promise((r) => { release = r; });
  server.procedure('held', {}, async () => { await gate; return { late: true }; });
  for (let round = 0; round < 3; round++) {
    const acs = [];
    const calls = Array.from({ length: 60 }, (_, i) => {
      switch (i % 4) {
        case 0: return client.call(server.name, 'add2', { a: i, b: round });
        case 1: return client.call(server.name, 'fail2', { i });
        case 2: { // aborted while pending
          const ac = new AbortController();
          acs.push(ac);
          return client.call(server.name, 'held', {}, { signal: ac.signal });
        }
        default: return client.call(server.name, 'add2', { a: 'x', b: 1 }); // 400
      }
    });
    for (const ac of acs) ac.abort(new Error(`aborted ${round}`));
    const got = await Promise.allSettled(calls);
    got.forEach((r, i) => {
      switch (i % 4) {
        case 0: assert.deepEqual(r, { status: 'fulfilled', value: { sum: i + round } }); break;
        case 1: assert.equal(r.status, 'rejected'); assert.equal(r.reason.status, 404); break;
        case 2: assert.equal(r.status, 'rejected'); assert.equal(r.reason.message, `aborted ${round}`); break;
        default: assert.equal(r.status, 'rejected'); assert.equal(r.reason.status, 400);
      }
    });
  }
  // a call that fails before it is sent (a value without an obj form) settles and leaves the
  // next calls their own answers
  await assert.rejects(client.call(server.name, 'add2', { a: NaN, b: 1 }), { code: 'HYB_E_TYPE' });
  // a getter of the params that makes a call of its own while the outer call is being made
  let inner;
  const params = { get a() { inner = client.call(server.name, 'add2', { a: 5, b: 5 }); return 1; }, b: 2 };
  const outer = client.call(server.name, 'add2', params);
  assert.deepEqual(await Promise.all([outer, inner]), [{ sum: 3 }, { sum: 10 }]);
  // a call made while one is held settles first; the held one after
  const held = client.call(server.name, 'held', {});
  assert.deepEqual(await client.call(server.name, 'add2', { a: 1, b: 1 }), { sum: 2 });
  release();
  assert.deepEqual(await held, { late: true });
});

test('argument policies: a wrong or missing argument is a 400 from the library', async () => {
  let ran = false;
  server.procedure('typed', { name: 'str', level: 'int?' }, (p) => { ran = true; return p; });
  await assert.rejects(client.call(server.name, 'typed', { name: 5 }), (e) => {
    assert.ok(e instanceof hybrid.HybridError);
    assert.equal(e.status, 400);
    assert.equal(e.code, 'HYB_E_BAD_REQUEST');
    assert.match(e.message, /name/);
    return true;
  });
  await assert.rejects(client.call(server.name, 'typed', { level: 1 }), { status: 400, code: 'HYB_E_BAD_REQUEST' });
  await assert.rejects(client.call(server.name, 'typed', { name: 'x', level: 1.5 }), { status: 400 });
  assert.equal(ran, false, 'the handler never saw a bad call');
  assert.deepEqual(await client.call(server.name, 'typed', { name: 'x' }), { name: 'x' });
  const r = await cli(d.sock, ['call', server.name, 'add', '{"a":"one","b":2}']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /400/);
});

test('access lists: a caller outside for_app gets 403', async () => {
  server.procedure('secret', { args: {}, forApp: 'org.example.node.friend' }, () => ({ ok: true }));
  await assert.rejects(client.call(server.name, 'secret', {}), (e) => {
    assert.equal(e.status, 403);
    assert.equal(e.code, 'HYB_E_FORBIDDEN');
    return true;
  });
  const friend = await hybrid.connect({ socket: d.sock, app: 'org.example.node.friend' });
  try {
    assert.deepEqual(await friend.call(server.name, 'secret', {}), { ok: true });
  } finally {
    friend.close();
  }
});

test('deadlines: a procedure that does not answer in time gives 504, and its signal aborts', async () => {
  let release;
  const held = new Promise((r) => { release = r; });
  let aborted;
  const abortSeen = new Promise((r) => { aborted = r; });
  server.procedure('slow', {}, (params, info) => {
    info.signal.addEventListener('abort', () => aborted(info.signal.reason));
    return held;
  });
  await assert.rejects(client.call(server.name, 'slow', {}, { timeout: 200 }), (e) => {
    assert.equal(e.status, 504);
    assert.equal(e.code, 'HYB_E_CALLEE_TIMEOUT');
    return true;
  });
  // the broker's cancel reaches the handler as an aborted AbortSignal
  const reason = await abortSeen;
  assert.ok(reason instanceof hybrid.HybridError);
  release({ late: true }); // answering a call the broker gave up on is harmless
  assert.deepEqual(await client.call(server.name, 'add', { a: 1, b: 1 }), { sum: 2 });
  // a handler that looks at its signal only after the cancel finds it aborted
  let go;
  const gate = new Promise((r) => { go = r; });
  let sawAborted;
  const looked = new Promise((r) => { sawAborted = r; });
  server.procedure('late', {}, async (params, info) => { await gate; sawAborted(info.signal.aborted); });
  await assert.rejects(client.call(server.name, 'late', {}, { timeout: 200 }), { status: 504 });
  // the 504 reached the caller; let the broker's cancel reach the server too
  await client.call(server.name, 'add', { a: 0, b: 0 });
  await server.call(client.name, 'nothing', {}).catch(() => null);
  go();
  assert.equal(await looked, true);
});

// Answers dispatched in one loop wake-up share its handle scope up to a bound, then each has
// its own: many deadlines passing together must each reject, with its own call's error.
test('deadlines: 300 calls expiring together each reject with 504', async () => {
  server.procedure('never', {}, () => new Promise(() => {}));
  const calls = Array.from({ length: 300 }, (_, i) =>
    client.call(server.name, 'never', { i }, { timeout: 300 }).then(() => 'answered', (e) => e));
  const got = await Promise.all(calls);
  for (const e of got) {
    assert.ok(e instanceof hybrid.HybridError, String(e));
    assert.equal(e.status, 504);
  }
  assert.deepEqual(await client.call(server.name, 'add', { a: 20, b: 22 }), { sum: 42 });
});

test('a call aborted with an AbortSignal rejects with its reason; the callee\'s signal aborts', async () => {
  let calleeAborted;
  const calleeSaw = new Promise((r) => { calleeAborted = r; });
  let started;
  const running = new Promise((r) => { started = r; });
  server.procedure('forever', {}, (params, info) => {
    info.signal.addEventListener('abort', () => calleeAborted(true));
    started();
    return new Promise(() => {});
  });
  const ac = new AbortController();
  const p = client.call(server.name, 'forever', {}, { signal: ac.signal, timeout: 60000 });
  await running;
  ac.abort(new Error('user gave up'));
  await assert.rejects(p, { message: 'user gave up' });
  assert.equal(await calleeSaw, true); // the broker's cancel (terminateCall) reached the callee
  // an already aborted signal: no call at all
  await assert.rejects(client.call(server.name, 'add', { a: 1, b: 1 }, { signal: AbortSignal.abort() }),
                       { name: 'AbortError' });
  // a signal that is never used does not disturb a call
  assert.deepEqual(await client.call(server.name, 'add', { a: 1, b: 1 }, { signal: new AbortController().signal }),
                   { sum: 2 });
});

test('a handler that throws: HybridError keeps its status, anything else is a 500', async () => {
  server.procedure('missing', {}, () => { throw new hybrid.HybridError('no such lamp', 404); });
  server.procedure('broken', {}, () => { throw new TypeError('lamp.off is not a function'); });
  server.procedure('rejects', {}, async () => { throw new Error('async failure'); });
  await assert.rejects(client.call(server.name, 'missing', {}),
                       { status: 404, code: 'HYB_E_NOT_FOUND', message: 'no such lamp' });
  await assert.rejects(client.call(server.name, 'broken', {}),
                       { status: 500, code: 'HYB_E_INTERNAL', message: 'lamp.off is not a function' });
  await assert.rejects(client.call(server.name, 'rejects', {}), { status: 500, message: 'async failure' });
  // a result that has no obj form is a 500 too, and the server goes on
  server.procedure('badresult', {}, () => ({ f: () => 1 }));
  await assert.rejects(client.call(server.name, 'badresult', {}), { status: 500 });
  // NaN has no JSON form: the procedure's fault (500), not the caller's (400)
  server.procedure('nanresult', {}, () => ({ t: NaN }));
  await assert.rejects(client.call(server.name, 'nanresult', {}), { status: 500, code: 'HYB_E_INTERNAL' });
  // a thrown message with a NUL goes back up to it
  server.procedure('nulmsg', {}, () => { throw new hybrid.HybridError('lamp\0 broken', 404); });
  await assert.rejects(client.call(server.name, 'nulmsg', {}), { status: 404, message: 'lamp' });
  assert.deepEqual(await client.call(server.name, 'add', { a: 2, b: 2 }), { sum: 4 });
});

// A result that is a thenable is adopted as a promise is: a then() that throws, or a then
// getter that throws, is the caller's 500 (it was thrown out of the dispatcher: the process died).
test('a handler whose result is a broken thenable: a 500, the process goes on', async () => {
  server.procedure('badthen', {}, () => ({ then() { throw new Error('then threw'); } }));
  server.procedure('badgetter', {}, () => ({ get then() { throw new Error('getter threw'); } }));
  server.procedure('thenable', {}, () => ({ then(resolve) { resolve({ via: 'thenable' }); } }));
  await assert.rejects(client.call(server.name, 'badthen', {}), { status: 500, message: 'then threw' });
  await assert.rejects(client.call(server.name, 'badgetter', {}), { status: 500, message: 'getter threw' });
  assert.deepEqual(await client.call(server.name, 'thenable', {}), { via: 'thenable' });
  assert.deepEqual(await client.call(server.name, 'add', { a: 1, b: 2 }), { sum: 3 });
});

test('names with a NUL are refused, not cut; a deadline past 2^32 ms is the longest one', async () => {
  // "ec\0ho" would reach the method "ec" as a C string
  await assert.rejects(client.call(BUILTIN, 'ec\0ho', {}), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  await assert.rejects(client.call(`${BUILTIN}\0x`, 'echo', {}), { name: 'TypeError' });
  // wrapped to a uint32, 2^32 + 1 was a 1 ms deadline: an at once 504
  assert.deepEqual(await client.call(BUILTIN, 'echo', { w: 1 }, { timeout: 2 ** 32 + 1 }), { w: 1 });
  assert.deepEqual(await client.call(BUILTIN, 'echo', { w: 2 }, { timeout: Infinity }), { w: 2 });
  // an access list with a NUL is refused, never taken for "no list" (anyone may call)
  assert.throws(() => server.procedure('nulacl', { args: {}, forApp: 'org.example.node.friend\0x' }, () => 1),
                { name: 'TypeError' });
  await assert.rejects(client.call(server.name, 'nulacl', {}), { status: 404 });
  assert.throws(() => server.registerEvent('NULACL', { forApp: 'org.example\0x' }), { name: 'TypeError' });
});

test('errors: unknown endpoint or method, HybridError fields, a closed bus', async () => {
  await assert.rejects(client.call('@localhost/org.example.node.nobody/x', 'm', {}), { status: 404, code: 'HYB_E_NOT_FOUND' });
  await assert.rejects(client.call(server.name, 'nosuchmethod', {}), { status: 404 });
  await assert.rejects(hybrid.connect({ socket: path.join(d.dir, 'none.sock'), app: 'org.example.node.x' }),
                       (e) => e instanceof hybrid.HybridError && typeof e.status === 'number' && typeof e.code === 'string');
  await assert.rejects(hybrid.connect({ socket: d.sock, app: 'not an app' }), { status: 406, code: 'HYB_E_NOT_ACCEPTABLE' });
  const b = await hybrid.connect({ socket: d.sock, app: 'org.example.node.closing' });
  let release;
  server.procedure('hold', {}, () => new Promise((r) => { release = r; }));
  const pending = b.call(server.name, 'hold', {});
  // wait until the server holds the call, then close the caller: the call fails 502
  while (!release) await new Promise((r) => setImmediate(r));
  b.close();
  await assert.rejects(pending, { status: 502, code: 'HYB_E_BAD_CALLEE' });
  await assert.rejects(b.call(BUILTIN, 'echo', {}), { code: 'HYB_E_CLOSED' });
  release(null);
});

test('events: a standing pattern subscription sees matching bubbles only', async () => {
  server.registerEvent('TEMP');
  server.registerEvent('TEMP_OUT');
  server.registerEvent('HUMIDITY');
  const sub = client.subscribe('@localhost/org.example.node.*/*', 'TEMP*');
  const got = [];
  sub.on('event', (ev) => got.push(ev));
  const third = new Promise((resolve) => sub.on('event', () => { if (got.length === 2) resolve(); }));
  server.fire('HUMIDITY', { rh: 40 });        // does not match: never delivered
  server.fire('TEMP', { c: 21.5 });
  server.fire('TEMP_OUT', { c: -3, big: 2n ** 60n });
  await third;
  assert.deepEqual(got, [
    { source: server.name, bubble: 'TEMP', data: { c: 21.5 } },
    { source: server.name, bubble: 'TEMP_OUT', data: { c: -3, big: 2n ** 60n } },
  ]);
  // the same subscription as an async iterator
  const it = sub[Symbol.asyncIterator]();
  server.fire('TEMP', { c: 22 });
  assert.deepEqual((await it.next()).value, { source: server.name, bubble: 'TEMP', data: { c: 22 } });
  await it.return();
  // exact subscriptions need an existing bubble
  assert.throws(() => client.subscribe(server.name, 'NOSUCH'), { status: 404 });
});

function runChild(source, sock, onLine) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', source], {
      env: { ...process.env, SOCK: sock, HYBRID_INDEX: path.resolve(__dirname, '..') },
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (b) => {
      out += b;
      for (const line of String(b).split('\n').filter(Boolean)) onLine && onLine(line);
    });
    p.stderr.on('data', (b) => { err += b; });
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, out, err }));
  });
}

test('the process ends by itself when nothing is pending (the handles are unref\'d)', async () => {
  const r = await runChild(`
    const hybrid = require(process.env.HYBRID_INDEX);
    hybrid.connect({ socket: process.env.SOCK, app: 'org.example.node.script' }).then(async (bus) => {
      const v = await bus.call('${BUILTIN}', 'echo', { n: 1 });
      console.log('got', v.n);   // no close(): the script must still end
    });`, d.sock);
  assert.equal(r.status, 0, r.err);
  assert.equal(r.out.trim(), 'got 1');
});

// A call made while the addon runs the loop's callback (from a previous answer's continuation,
// from an event handler) is written at once; the poll and the process's references are
// updated once when that callback ends: chains, bursts and a close with calls in flight must
// all settle, and the script must still end by itself when its last call was answered in such
// a callback (the references dropped there, or the process would hang: killed after 60 s).
test('calls made from continuations and handlers settle; the script then ends by itself', async () => {
  const child = spawn(process.execPath, ['-e', `
    const hybrid = require(process.env.HYBRID_INDEX);
    const EP = '${BUILTIN}';
    (async () => {
      const bus = await hybrid.connect({ socket: process.env.SOCK, app: 'org.example.node.chain' });
      // a call made from an event handler (the callback of the same poll run)
      bus.registerEvent('PING');
      const sub = bus.subscribe(bus.name, 'PING');
      const fromEvent = new Promise((resolve, reject) => {
        sub.once('event', (ev) => { bus.call(EP, 'echo', ev.data).then(resolve, reject); });
      });
      bus.fire('PING', { e: 7 });
      const ev = await fromEvent;
      sub.close();
      // close with calls in flight: every one rejects with 502
      const other = await hybrid.connect({ socket: process.env.SOCK, app: 'org.example.node.closer' });
      const pending = Array.from({ length: 20 }, () => other.call(EP, 'echo', { x: 1 }).then(() => 0, (e) => e.status));
      other.close();
      const statuses = await Promise.all(pending);
      const burst = await Promise.all(Array.from({ length: 200 }, (_, i) => bus.call(EP, 'echo', { i })));
      const inner = await bus.call(EP, 'echo', { n: 1 }).then((v) => bus.call(EP, 'echo', { n: v.n + 1 }));
      let sum = 0;
      for (let i = 0; i < 300; i++) sum += (await bus.call(EP, 'echo', { i })).i;  // a chain, last
      console.log(sum, burst.every((v, i) => v.i === i), inner.n, ev.e, statuses.filter((s) => s === 502).length);
      // no close(): nothing is pending or registered, so the script must end by itself
    })().catch((e) => { console.error(e); process.exit(1); });`], {
    env: { ...process.env, SOCK: d.sock, HYBRID_INDEX: path.resolve(__dirname, '..') },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (b) => { out += b; });
  child.stderr.on('data', (b) => { err += b; });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60000); // generous: the machine is shared
  const [status, signal] = await new Promise((r) => child.on('close', (c, s) => r([c, s])));
  clearTimeout(killer);
  assert.equal(signal, null, `the script did not end by itself; printed: ${out}${err}`);
  assert.equal(status, 0, err);
  assert.equal(out.trim(), '44850 true 2 7 20');
});

test('a bus with a procedure keeps the process alive until close()', async () => {
  let name = null;
  let resolveName;
  const named = new Promise((r) => { resolveName = r; });
  const child = runChild(`
    const hybrid = require(process.env.HYBRID_INDEX);
    hybrid.connect({ socket: process.env.SOCK, app: 'org.example.node.daemonish' }).then((bus) => {
      bus.procedure('stop', {}, () => { setImmediate(() => bus.close()); return { bye: true }; });
      console.log(bus.name);
    });`, d.sock, (line) => { if (!name) { name = line; resolveName(line); } });
  await named;
  // the child is still serving: the CLI's call reaches it, and its close() ends it
  const r = await cli(d.sock, ['call', name, 'stop', '{}']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(hybrid.fromJSON(r.stdout.trim()), { bye: true });
  const c = await child;
  assert.equal(c.status, 0, c.err);
});

// doc/node.md: worker threads open their own connections.  Each worker has its own copy of
// the module, so the default runner must tell the threads apart: two workers (and the
// main thread) connecting as the same app without a runner were refused 409 before.
test('worker threads connect with the same app and the default runner', async () => {
  const { Worker } = require('node:worker_threads');
  const app = 'org.example.node.workers';
  const main = await hybrid.connect({ socket: d.sock, app });
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const hybrid = require(workerData.pkg);
    (async () => {
      const bus = await hybrid.connect({ socket: workerData.sock, app: workerData.app });
      const st = await hybrid.store({ socket: workerData.sock });
      const r = await bus.call(workerData.main, 'who', {});
      parentPort.postMessage({ name: bus.name, r });
      parentPort.once('message', () => { st.close(); bus.close(); parentPort.close(); });
    })().catch((e) => { parentPort.postMessage({ error: String(e) }); parentPort.close(); });`;
  try {
    main.procedure('who', {}, (p, info) => info.caller);
    const mainStore = await hybrid.store({ socket: d.sock });
    const workers = [];
    // both workers stay connected until both have answered: their names are in use at once
    const runs = [1, 2].map(() => new Promise((resolve, reject) => {
      const w = new Worker(code, { eval: true,
                                   workerData: { pkg: path.join(__dirname, '..'), sock: d.sock,
                                                 app, main: main.name } });
      workers.push(w);
      w.once('message', resolve);
      w.on('error', reject);
    }));
    const got = await Promise.all(runs);
    const exits = workers.map((w) => new Promise((resolve) => w.once('exit', resolve)));
    for (const w of workers) w.postMessage('close');
    await Promise.all(exits);
    mainStore.close();
    for (const m of got) {
      assert.equal(m.error, undefined);
      assert.match(m.name, new RegExp(`^@localhost/${app.replace(/\./g, '\\.')}/p\\d+`));
      assert.equal(m.r, m.name); // the caller main saw is the worker's endpoint
    }
    assert.equal(new Set([main.name, got[0].name, got[1].name]).size, 3);
  } finally {
    main.close();
  }
});

// A daemon killed while a request of ours sat unread in its socket resets the connection:
// libuv reports that as an error and stops the poll handle.  The bus must still notice at
// once (pending calls reject 502, 'close' is emitted); it used to wait for the next call
// deadline, or forever when nothing had one (a bus serving procedures).
test('a daemon killed with our request unread: the bus notices the reset at once', async () => {
  const dd = await startDaemon();
  let bus;
  try {
    bus = await hybrid.connect({ socket: dd.sock, app: 'org.example.node.reset' });
    bus.procedure('p', {}, () => 1); // keeps the loop alive, as a server's bus does
    const closed = next(bus, 'close'); // rejects after 20 s, far below the call's deadline
    dd.proc.kill('SIGSTOP');
    const call = bus.call(BUILTIN, 'echo', { x: 1 }, { timeout: 600000 });
    await new Promise((r) => setTimeout(r, 100)); // the request is written, unread
    dd.proc.kill('SIGKILL');
    await closed;
    await assert.rejects(call, { status: 502 });
  } finally {
    if (bus) bus.close();
    await dd.stop();
  }
});
