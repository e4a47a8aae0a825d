// SPDX-License-Identifier: MIT
// Values <-> objs by doc/obj.md's JSON mapping, exact both ways: int64 edges as BigInt,
// -0 and subnormals as reals, uris, typed values, recs with non-name keys; across
// Node <-> Node over the bus and C (the hybrid CLI) <-> Node.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { hybrid, startDaemon, cli, HYBRID_CLI } = require('./helpers.js');

const { Uri, Typed, Real } = hybrid;
const I64_MAX = 2n ** 63n - 1n;
const I64_MIN = -(2n ** 63n);
const P53 = 2n ** 53n + 1n;

// Object.is-exact deep equality (assert.deepStrictEqual already tells -0 from 0)
const same = (a, b) => assert.deepStrictEqual(a, b);

test('JS -> JSON text (the mapping of doc/obj.md)', () => {
  const cases = [
    [5, '5'], [-7, '-7'], [Number.MAX_SAFE_INTEGER, '9007199254740991'],
    [Real(5), '5.0'], [-0, '-0.0'], [0.5, '0.5'], [1e300, '1e300'], [5e-324, '5e-324'],
    [2 ** 53, '9007199254740992.0'],           // not a safe integer: a real
    [I64_MAX, '9223372036854775807'], [I64_MIN, '-9223372036854775808'], [P53, '9007199254740993'],
    [5n, '5'], ['x\u0000y', '"x\\u0000y"'], [null, 'null'], [undefined, 'null'], [true, 'true'],
    [[], '[]'], [{}, '{}'], [[1, [2, null]], '[1,[2,null]]'],
    [{ a: 1, 'b/c': 2 }, '{"a":1,"b/c":2}'],
    [new Uri('a/b'), '{"@uri":"a/b"}'],
    [new Typed('/type/nat', 5), '{"@type":"/type/nat","@value":5}'],
    [new Map([[1, 'x']]), '{"@rec":[[1,"x"]]}'],
    ['a\ud800b', '"a\ufffdb"'], // a lone surrogate has no UTF-8 form: U+FFFD (doc/node.md)
  ];
  for (const [v, text] of cases) assert.equal(hybrid.toJSON(v), text, `toJSON(${String(v)})`);
});

test('JSON text -> JS: int beyond 2^53-1 is a BigInt, reals stay exact', () => {
  same(hybrid.fromJSON('9223372036854775807'), I64_MAX);
  same(hybrid.fromJSON('-9223372036854775808'), I64_MIN);
  same(hybrid.fromJSON('9007199254740993'), P53);
  same(hybrid.fromJSON('9007199254740991'), 9007199254740991);
  same(hybrid.fromJSON('-9007199254740991'), -9007199254740991);
  assert.ok(Object.is(hybrid.fromJSON('-0.0'), -0));
  assert.ok(Object.is(hybrid.fromJSON('5e-324'), 5e-324));
  assert.ok(Object.is(hybrid.fromJSON('2.2250738585072009e-308'), 2.2250738585072009e-308));
  same(hybrid.fromJSON('{"@uri":"a/b"}'), new Uri('a/b'));
  same(hybrid.fromJSON('{"@type":"/type/nat","@value":5}'), new Typed('/type/nat', 5));
  same(hybrid.fromJSON('{"@rec":[[1,"x"],[[2],3]]}'), new Map([[1, 'x'], [[2], 3]]));
  same(hybrid.fromJSON('{"@objs":[1,2]}'), [1, 2]);
  same(hybrid.fromJSON('{"a":{"b":[true,null,"s"]}}'), { a: { b: [true, null, 's'] } });
  assert.throws(() => hybrid.fromJSON('9223372036854775808'), { code: 'HYB_E_OVERFLOW' });
  // a "__proto__" key is an own property (as JSON.parse makes it), never the prototype
  const p = hybrid.fromJSON('{"__proto__":{"polluted":1}}');
  assert.equal(Object.getPrototypeOf(p), Object.prototype);
  assert.equal(p.polluted, undefined);
  assert.deepEqual(Object.keys(p), ['__proto__']);
  assert.equal(hybrid.toJSON(p), '{"__proto__":{"polluted":1}}');
});

test('refusals: beyond int64, no JSON form, not a value', () => {
  assert.throws(() => hybrid.toJSON(2n ** 63n), RangeError);
  assert.throws(() => hybrid.toJSON(I64_MIN - 1n), RangeError);
  assert.throws(() => hybrid.toJSON(NaN), { code: 'HYB_E_TYPE' });
  assert.throws(() => hybrid.toJSON(Infinity), { code: 'HYB_E_TYPE' });
  assert.throws(() => hybrid.toJSON({ f() {} }), TypeError);
  assert.throws(() => hybrid.toJSON(Symbol('s')), TypeError);
});

// Objects other than plain ones, Uri, Typed, Real and Map follow JSON.stringify: a toJSON
// method gives the value, else the own enumerable string keys (a Date was an empty rec,
// inherited enumerable properties were taken, a Buffer threw 'a function or symbol').
test('toJSON methods and own keys, as JSON.stringify', () => {
  assert.equal(hybrid.toJSON(new Date(0)), '"1970-01-01T00:00:00.000Z"');
  assert.equal(hybrid.toJSON({ when: new Date(0) }), '{"when":"1970-01-01T00:00:00.000Z"}');
  assert.equal(hybrid.toJSON({ toJSON() { return { x: 2n ** 62n }; } }), '{"x":4611686018427387904}');
  assert.equal(hybrid.toJSON({ a: { toJSON: (key) => `key=${key}` } }), '{"a":"key=a"}');
  assert.equal(hybrid.toJSON(Buffer.from('hi')), JSON.stringify(Buffer.from('hi')));
  assert.equal(hybrid.toJSON(Object.create({ inherited: 1 }, { own: { value: 2, enumerable: true } })),
               '{"own":2}');
  class Point { constructor() { this.x = 1; } }
  Point.prototype.label = 'p'; // enumerable, inherited: not the value's
  assert.equal(hybrid.toJSON(new Point()), '{"x":1}');
  assert.throws(() => hybrid.toJSON({ toJSON() { throw new Error('no'); } }), /no/);
  const loop = { toJSON() { return loop; } };
  assert.throws(() => hybrid.toJSON(loop), RangeError);
});

const EDGE = {
  max: I64_MAX, min: I64_MIN, p53: P53, safe: 9007199254740991, negzero: -0, sub: 5e-324,
  tiny: 2.2250738585072014e-308, big: 1e300, frac: 0.1, neg: -1.5, two53: 2 ** 53,
  uri: new Uri('/a/b'), typed: new Typed('/type/nat', 5), rec: new Map([[1, 'one'], [true, 'yes']]),
  str: 'h\u00e9llo \u{1F600} \u0000 end', empty: '', list: [[], {}, null, false],
};

let d;
let bus;
test.before(async () => {
  d = await startDaemon();
  bus = await hybrid.connect({ socket: d.sock, app: 'org.example.node.values' });
  bus.procedure('echo', {}, (p) => p);
});
test.after(async () => { bus.close(); await d.stop(); });

test('Node -> bus -> Node: every edge value comes back exact', async () => {
  const back = await bus.call(bus.name, 'echo', EDGE);
  same(back, EDGE);
  assert.ok(Object.is(back.negzero, -0));
  // Real(2) is sent as the real 2.0 and, JavaScript having one number type, reads back as 2
  const r = await bus.call(bus.name, 'echo', { r: Real(2), i: 2 });
  assert.equal(r.r, 2);
  assert.equal(typeof r.r, 'number');
});

test('C -> Node: int64 and reals from a C-served body and a C-fired event', async () => {
  const body = '{"max":9223372036854775807,"min":-9223372036854775808,"p53":9007199254740993,' +
               '"negzero":-0.0,"sub":5e-324}';
  const want = { max: I64_MAX, min: I64_MIN, p53: P53, negzero: -0, sub: 5e-324 };
  const srv = spawn(HYBRID_CLI, ['--bus', d.sock, 'serve', 'edges', body, '--runner', 'srv']);
  try {
    const name = await new Promise((resolve, reject) => {
      let out = '';
      srv.stdout.on('data', (b) => { out += b; if (out.includes('\n')) resolve(out.split('\n')[0]); });
      srv.on('error', reject);
      srv.on('close', (c) => reject(new Error(`hybrid serve exited ${c}`)));
    });
    same(await bus.call(name, 'edges', {}), want);
  } finally {
    srv.kill('SIGTERM');
  }
  const sub = bus.subscribe('@localhost/org.example.node.cfire/*', 'EDGES');
  const got = new Promise((resolve) => sub.once('event', resolve));
  const r = await cli(d.sock, ['--app', 'org.example.node.cfire', 'fire', 'EDGES', body]);
  assert.equal(r.status, 0, r.stderr);
  same((await got).data, want);
  sub.close();
});

test('Node -> C: the body a Node procedure answers, as the CLI prints it', async () => {
  bus.procedure('edges', {}, () => ({ max: I64_MAX, min: I64_MIN, p53: P53, negzero: -0, sub: 5e-324 }));
  const r = await cli(d.sock, ['call', bus.name, 'edges']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(),
               '{"max":9223372036854775807,"min":-9223372036854775808,"p53":9007199254740993,' +
               '"negzero":-0.0,"sub":5e-324}');
  // and what C sends to a Node procedure arrives exact
  const e = await cli(d.sock, ['call', bus.name, 'echo', '{"v":[9223372036854775807,-0.0,5e-324]}']);
  assert.equal(e.status, 0, e.stderr);
  assert.equal(e.stdout.trim(), '{"v":[9223372036854775807,-0.0,5e-324]}');
});

// Plain call bodies are written as JSON text by index.js (as JSON.stringify writes it): every
// string escape, text beyond ASCII, surrogate pairs and lone surrogates, numbers in every
// form, keys and nesting must reach C and come back as the value sent.
test('call bodies written in JS: strings, numbers and nesting come back as sent', async () => {
  const BUILTIN = '@localhost/org.hybridos.bus/builtin';
  let ascii = '';
  for (let c = 0; c < 0x80; c++) ascii += String.fromCharCode(c);
  const strings = [ascii, '', '"', '\\', '\\"', '"\\', 'a\u0000b', '\u001f\u007f', 'é ü ß', '\u2028\u2029',
                   '日本語', '\u{1F600} pair', '\ud83d\ude00', 'x'.repeat(5000) + '"'];
  for (const s of strings) {
    same(await bus.call(BUILTIN, 'echo', { s }), { s });
    same(await bus.call(BUILTIN, 'echo', [s, { k: s }]), [s, { k: s }]);
  }
  // lone surrogates: U+FFFD in the mapping, a pair next to one stays a pair
  same(await bus.call(BUILTIN, 'echo', { s: '\udc00a\ud800' }), { s: '\ufffda\ufffd' });
  same(await bus.call(BUILTIN, 'echo', { s: '\ud83d\ude00\ud800' }), { s: '\ud83d\ude00\ufffd' });
  const long = 'y'.repeat(100);
  same(await bus.call(BUILTIN, 'echo', { s: long + '\ud800' }), { s: long + '\ufffd' });
  same(await bus.call(BUILTIN, 'echo', { s: long + '\ud83d\ude00\n' }), { s: long + '\ud83d\ude00\n' });
  const numbers = [0, 1, -1, 0.1, -0.5, 1 / 3, 1e-7, 1.5e300, -2.5e-300, 5e-324, 2 ** 53 - 1,
                   -(2 ** 53 - 1), 123456.789, 1e21 + 0.5];
  const back = await bus.call(BUILTIN, 'echo', { numbers, t: true, f: false, n: null });
  same(back, { numbers, t: true, f: false, n: null });
  const nested = { a: [[], {}, [[1, [2, [3]]]], { b: { c: { d: 'e' } } }], _x: 'y', 'z-1': [null] };
  same(await bus.call(BUILTIN, 'echo', nested), nested);
  // a class instance: the walk in C, the mapping's answer
  same(await bus.call(BUILTIN, 'echo', { d: new (class { constructor() { this.v = 1; } })() }), { d: { v: 1 } });
});

// Plain call bodies go as JSON.stringify's text and plain replies come back through
// JSON.parse (the fast path); where those would read or write otherwise than the mapping of
// doc/node.md "Values", the result must still be the mapping's.
test('call bodies and replies: the fast path keeps the mapping', async () => {
  const BUILTIN = '@localhost/org.hybridos.bus/builtin';
  bus.procedure('takesInt', { a: 'int' }, ({ a }) => ({ a }));
  // ints stay ints: a safe integer passes an int policy; -0 and 2^53 are reals (400)
  same(await bus.call(bus.name, 'takesInt', { a: 2 ** 53 - 1 }), { a: 2 ** 53 - 1 });
  await assert.rejects(bus.call(bus.name, 'takesInt', { a: -0 }), { status: 400 });
  await assert.rejects(bus.call(bus.name, 'takesInt', { a: 2 ** 53 }), { status: 400 });
  // values whose JSON.stringify text differs from the mapping's, through the broker's echo
  const negzero = await bus.call(BUILTIN, 'echo', { z: -0, r: 0.25, n: [1, -2.5, null, true] });
  assert.ok(Object.is(negzero.z, -0));
  same(negzero, { z: -0, r: 0.25, n: [1, -2.5, null, true] });
  same(await bus.call(BUILTIN, 'echo', { u: undefined }), { u: null });
  same(await bus.call(BUILTIN, 'echo', { s: 'a\ud800b' }), { s: 'a\ufffdb' });
  same(await bus.call(BUILTIN, 'echo', { b: 5n, p: P53 }), { b: 5, p: P53 });
  same(await bus.call(BUILTIN, 'echo', { x: { toJSON: () => 7 } }), { x: 7 });
  same(await bus.call(BUILTIN, 'echo', { u: new Uri('a/b') }), { u: new Uri('a/b') });
  same(await bus.call(BUILTIN, 'echo', { deep: { er: [{ k_1: 'v', 'k-2': 'é' }] } }),
       { deep: { er: [{ k_1: 'v', 'k-2': 'é' }] } });
  await assert.rejects(bus.call(BUILTIN, 'echo', { x: NaN }), { code: 'HYB_E_TYPE' });
  await assert.rejects(bus.call(BUILTIN, 'echo', { x: Infinity }), { code: 'HYB_E_TYPE' });
  // replies JSON.parse would read otherwise: the integer -0, a repeated key, 2^53 + 1 deep
  // inside, a uri member, text that is not JSON
  assert.ok(Object.is(hybrid.fromJSON('-0'), 0));
  assert.ok(Object.is(hybrid.fromJSON('[-0]')[0], 0));
  assert.throws(() => hybrid.fromJSON('{"a":1,"a":2}'), { code: 'HYB_E_PARSE' });
  same(hybrid.fromJSON('{"a":[{"b":9007199254740993}]}'), { a: [{ b: P53 }] });
  same(hybrid.fromJSON('{"x":{"@uri":"a/b"}}'), { x: new Uri('a/b') });
  assert.throws(() => hybrid.fromJSON('{"a":}'), { code: 'HYB_E_PARSE' });
  assert.throws(() => hybrid.fromJSON('[1e999]'), (e) => e instanceof hybrid.HybridError);
  same(hybrid.fromJSON(' {"a_b":[1.5,-2,"x\\"y",{"k-1":null}]} '), { a_b: [1.5, -2, 'x"y', { 'k-1': null }] });
});

// A reply that is a flat record (at most 8 members, name keys, plain strings, integers of at
// most 15 digits, booleans, null) is made by a constructor per list of keys instead of
// JSON.parse (doc/node.md "Values").  Replies written exactly as given (`hybrid serve`):
// each must read as the mapping reads its text, with the members in the text's order.
test('flat record replies: read as the mapping reads them, in the text\'s order', async () => {
  const cases = [
    ['{"words":"hi"}', { words: 'hi' }],
    [' {\n "a" : 1 ,\t"b_2":-15, "c-d":"x y" , "e":true,"f":false,"g":null }\r\n',
     { a: 1, b_2: -15, 'c-d': 'x y', e: true, f: false, g: null }],
    ['{"g":null,"a":1}', { g: null, a: 1 }],
    ['{"n":999999999999999,"m":-999999999999999,"z":0}', { n: 999999999999999, m: -999999999999999, z: 0 }],
    ['{}', {}],
    ['{"s":""}', { s: '' }],
    // not of the shortcut: the mapping's reading all the same
    ['{"z":-0}', { z: 0 }],                                  // the integer -0 is the int 0
    ['{"p":9007199254740993}', { p: P53 }],                  // beyond 2^53: a BigInt
    ['{"r":2.5,"e":1e2}', { r: 2.5, e: 100 }],               // reals
    ['{"s":"a\\"b\\u00e9"}', { s: 'a"bé' }],                 // escapes
    ['{"u":{"@uri":"a/b"}}', { u: new Uri('a/b') }],         // nested, a uri
    ['{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}',
     { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9 }], // nine members
    ['{"k":"é"}', { k: 'é' }],                               // beyond ASCII
  ];
  const servers = cases.map(([body], i) =>
    spawn(HYBRID_CLI, ['--bus', d.sock, 'serve', 'rec', body, '--runner', `rec${i}`]));
  try {
    const names = await Promise.all(servers.map((srv) => new Promise((resolve, reject) => {
      let out = '';
      srv.stdout.on('data', (b) => { out += b; if (out.includes('\n')) resolve(out.split('\n')[0]); });
      srv.on('error', reject);
      srv.on('close', (c) => reject(new Error(`hybrid serve exited ${c}`)));
    })));
    for (let round = 0; round < 2; round++) { // the second time each shape is known
      for (let i = 0; i < cases.length; i++) {
        const got = await bus.call(names[i], 'rec', {});
        same(got, cases[i][1]);
        assert.deepEqual(Object.keys(got), Object.keys(cases[i][1]), cases[i][0]);
        assert.equal(Object.getPrototypeOf(got), Object.prototype);
      }
    }
    // the same text as another call's, never the same object
    const a = await bus.call(names[0], 'rec', {});
    const b = await bus.call(names[0], 'rec', {});
    assert.notEqual(a, b);
    a.words = 'changed';
    same(b, { words: 'hi' });
  } finally {
    for (const srv of servers) srv.kill('SIGTERM');
  }
  // __proto__ is a member, as JSON.parse makes it, not the prototype
  const p = await bus.call('@localhost/org.hybridos.bus/builtin', 'echo', JSON.parse('{"__proto__":1}'));
  assert.ok(Object.hasOwn(p, '__proto__'));
  assert.equal(Object.getPrototypeOf(p), Object.prototype);
});

// The constructors are kept per list of keys, at most 64 of them: replies of further shapes
// take JSON.parse, and every reply reads right either way.
test('flat record replies: at most 64 shapes are kept', async () => {
  const native = require(process.env.HYBRID_NODE_ADDON);
  const BUILTIN = '@localhost/org.hybridos.bus/builtin';
  const before = native.replyShapes();
  assert.ok(before <= 64);
  for (let i = 0; i < 80; i++) {
    const v = { [`key${i}`]: i, s: `v${i}` };
    same(await bus.call(BUILTIN, 'echo', v), v);
    assert.ok(native.replyShapes() <= 64);
  }
  assert.equal(native.replyShapes(), 64);
  for (const i of [0, 79]) { // a kept shape and one beyond the bound
    const v = { [`key${i}`]: -i, s: 'again' };
    same(await bus.call(BUILTIN, 'echo', v), v);
  }
  assert.equal(native.replyShapes(), 64);
});

// A call passes its endpoint and method as a number the addon keeps for them (at most 64 a
// bus); calls to further targets pass the strings, and each reaches its own target.
test('call targets: at most 64 kept a bus, every call reaches its own target', async () => {
  const b2 = await hybrid.connect({ socket: d.sock, app: 'org.example.node.targets' });
  try {
    for (let i = 0; i < 70; i++) b2.procedure(`m${i}`, {}, () => ({ m: i }));
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 70; i++) same(await bus.call(b2.name, `m${i}`, { x: 1 }), { m: i });
    }
    let kept = 0;
    for (const m of bus._targets.values()) kept += m.size;
    assert.ok(kept <= 64, `${kept} targets kept`);
    assert.equal(bus._targetsFull, true);
    await assert.rejects(bus.call(b2.name, 'm70', { x: 1 }), { status: 404 });
  } finally {
    b2.close();
  }
});

// Plain bodies to a target called before are written as UTF-8 into one 4 KiB buffer the addon
// sends from; bodies that do not fit take the string, and a call made by a getter while an
// outer body is being written must not write over it.
test('call bodies through the call buffer: the 4 KiB edge, multi-byte text, a call from a getter', async () => {
  const BUILTIN = '@localhost/org.hybridos.bus/builtin';
  same(await bus.call(BUILTIN, 'echo', { warm: 1 }), { warm: 1 });
  // {"s":"..."} is 8 bytes besides the string: lengths around the buffer's end
  for (const n of [4080, 4086, 4087, 4088, 4089, 4095, 4096, 4097, 5000]) {
    const s = 'a'.repeat(n - 1) + '"';
    same(await bus.call(BUILTIN, 'echo', { s }), { s });
    for (const ch of ['é', '日', '\u{1F600}', '\n']) {
      const t = ch.repeat(Math.floor(n / 4));
      same(await bus.call(BUILTIN, 'echo', { t, k: [t.length] }), { t, k: [t.length] });
    }
  }
  // the string path (a call with a signal, a body beyond the buffer): text of 4-byte
  // characters cut at a character's start near the end of the addon's first 1 KiB try
  for (const n of [250, 254, 255, 256, 257, 300, 1100]) {
    const t = '\u{1F600}'.repeat(n);
    same(await bus.call(BUILTIN, 'echo', { t }, { signal: new AbortController().signal }), { t });
    same(await bus.call(BUILTIN, 'echo', { t: t + 'a'.repeat(4096) }), { t: t + 'a'.repeat(4096) });
  }
  let inner;
  const outer = {
    a: 'x'.repeat(100),
    get b() {
      inner = bus.call(BUILTIN, 'echo', { inner: 'i'.repeat(50), n: 2 });
      return 'y'.repeat(30);
    },
    c: [1, 2.5, 'z'],
  };
  same(await bus.call(BUILTIN, 'echo', outer), { a: 'x'.repeat(100), b: 'y'.repeat(30), c: [1, 2.5, 'z'] });
  same(await inner, { inner: 'i'.repeat(50), n: 2 });
  // a getter that throws: the call rejects with its error and the next call is sound
  await assert.rejects(bus.call(BUILTIN, 'echo', { get bad() { throw new RangeError('getter'); } }), RangeError);
  same(await bus.call(BUILTIN, 'echo', { after: 'ok' }), { after: 'ok' });
});
