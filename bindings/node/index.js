// SPDX-License-Identifier: MIT
// hybrid: the Node binding of libhybrid (doc/node.md).  The C addon (hybrid.node,
// Node-API level 8) does the work; this file gives it Node's shapes: promises,
// EventEmitters, async iterators and HybridError.
'use strict';

const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');

function loadAddon() {
  const tried = [];
  const candidates = [];
  if (process.env.HYBRID_NODE_ADDON) candidates.push(process.env.HYBRID_NODE_ADDON);
  candidates.push(path.join(__dirname, 'build', 'hybrid.node'));
  try { // npm install found the addon of a meson build (scripts/install.js)
    candidates.push(JSON.parse(fs.readFileSync(path.join(__dirname, 'build', 'hybrid-addon.json'), 'utf8')).path);
  } catch (e) { /* none */ }
  for (const file of candidates) {
    tried.push(file);
    if (fs.existsSync(file)) return require(file);
  }
  throw new Error('hybrid: the addon hybrid.node was not found (tried ' + tried.join(', ') +
                  '); run `npm install` in the package or set HYBRID_NODE_ADDON');
}

const native = loadAddon();

/** An error of libhybrid or of the bus: status is the bus status, code its symbolic name. */
class HybridError extends Error {
  constructor(message, status = 500, code) {
    super(message);
    this.name = 'HybridError';
    this.status = status;
    this.code = code === undefined ? native.statusCode(status) : code;
  }
}

/** A uri value (an obj of kind uri), as opposed to a str. */
class Uri {
  constructor(value) { this.value = String(value); }
  toString() { return this.value; }
  toJSON() { return { '@uri': this.value }; }
  [Symbol.for('nodejs.util.inspect.custom')]() { return `Uri(${this.value})`; }
}

/** A typed value `type[value]`: type is a uri text such as '/type/nat'. */
class Typed {
  constructor(type, value) { this.type = String(type); this.value = value; }
  [Symbol.for('nodejs.util.inspect.custom')]() { return `Typed(${this.type}, ${String(this.value)})`; }
}

/** Forces a real: Real(2) is the real 2.0, where a plain 2 is the int 2. */
class RealValue {
  constructor(value) {
    if (typeof value !== 'number') throw new TypeError('Real() takes a number');
    this.value = value;
  }
  valueOf() { return this.value; }
}
function Real(value) { return new RealValue(value); }
Real.prototype = RealValue.prototype;

// --- the fast path of call bodies: plain data, written here as the JSON text JSON.stringify
// writes, which reads exactly as the mapping does (doc/node.md "Values"), goes as that text,
// without the walk in C.  Not plain: -0, integral Numbers beyond 2^53 and non-finite ones
// (reals or errors in the mapping), BigInts, undefined, lone surrogates (U+FFFD in the
// mapping), keys that are not names (uris the mapping parses), class instances, Maps, toJSON
// methods, deep nesting.  One walk checks and writes (JSON.stringify's own walk cost more).
const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
// Keys already found to be names: a Set lookup instead of the regular expression for the
// keys a program sends again and again (bounded: later new keys are tested each time).
const names = new Set();
function isName(k) {
  if (names.has(k)) return true;
  if (!NAME.test(k)) return false;
  if (names.size < 1024) names.add(k);
  return true;
}
const hasWellFormed = typeof String.prototype.isWellFormed === 'function';
// A string as JSON.stringify writes it; undefined for one with a lone surrogate.  Only '"',
// '\\' and controls are escaped by JSON.stringify in a well-formed string: short text without
// them is quoted as it is (a long one goes to isWellFormed and JSON.stringify, which scan
// faster than this loop).
function quote(s) {
  if (s.length > 64) return hasWellFormed && s.isWellFormed() ? JSON.stringify(s) : undefined;
  let escape = false;
  let surrogate = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c) escape = true;
    else if (c >= 0xd800 && c <= 0xdfff) surrogate = true;
  }
  if (surrogate && !(hasWellFormed && s.isWellFormed())) return undefined;
  return escape ? JSON.stringify(s) : '"' + s + '"';
}
// The JSON text of v if it is plain data, else undefined.
function plainText(v, depth) {
  switch (typeof v) {
    case 'string': return quote(v);
    case 'number':
      return (Number.isSafeInteger(v) ? !Object.is(v, -0) : Number.isFinite(v) && !Number.isInteger(v))
        ? String(v) : undefined;
    case 'boolean': return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (depth >= 16 || v.toJSON !== undefined) return undefined;
      const proto = Object.getPrototypeOf(v);
      if (proto === Array.prototype) {
        let text = '[';
        for (let i = 0; i < v.length; i++) {
          if (!(i in v)) return undefined;
          const t = plainText(v[i], depth + 1);
          if (t === undefined) return undefined;
          text += i === 0 ? t : ',' + t;
        }
        return text + ']';
      }
      if (proto !== Object.prototype) return undefined;
      let text = '{';
      for (const k in v) {
        if (!Object.hasOwn(v, k) || !isName(k)) return undefined;
        const t = plainText(v[k], depth + 1);
        if (t === undefined) return undefined;
        text += (text.length === 1 ? '"' : ',"') + k + '":' + t;
      }
      return text + '}';
    }
    default: return undefined;
  }
}

// The same text written as UTF-8 bytes straight into the addon's call buffer (native.callBuffer,
// 4 KiB), which busCallTo sends from: no string to build, flatten and copy out.  write*
// return the position after what they wrote, NOT_PLAIN for a value plainText refuses, or
// TOO_LONG when the text does not fit (the caller then takes plainText's string).
const callBuffer = native.callBuffer;
const CALL_BUFFER = callBuffer.length;
const NOT_PLAIN = -1;
const TOO_LONG = -2;
let bufferBusy = false; // a getter run by a walk may make a call: that one takes the string
const ESCAPES = ['\\u0000', '\\u0001', '\\u0002', '\\u0003', '\\u0004', '\\u0005', '\\u0006',
  '\\u0007', '\\b', '\\t', '\\n', '\\u000b', '\\f', '\\r', '\\u000e', '\\u000f', '\\u0010',
  '\\u0011', '\\u0012', '\\u0013', '\\u0014', '\\u0015', '\\u0016', '\\u0017', '\\u0018',
  '\\u0019', '\\u001a', '\\u001b', '\\u001c', '\\u001d', '\\u001e', '\\u001f'];
function writeAscii(s, pos) { // s: ASCII without anything to escape
  if (pos + s.length > CALL_BUFFER) return TOO_LONG;
  for (let i = 0; i < s.length; i++) callBuffer[pos++] = s.charCodeAt(i);
  return pos;
}
function writeString(s, pos) {
  if (pos + s.length + 2 > CALL_BUFFER) return TOO_LONG;
  callBuffer[pos++] = 0x22;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x80 && c !== 0x22 && c !== 0x5c) {
      if (pos >= CALL_BUFFER) return TOO_LONG;
      callBuffer[pos++] = c;
    } else if (c < 0x80) {
      pos = writeAscii(c === 0x22 ? '\\"' : c === 0x5c ? '\\\\' : ESCAPES[c], pos);
      if (pos < 0) return pos;
    } else {
      if (pos + 4 > CALL_BUFFER) return TOO_LONG;
      if (c < 0x800) {
        callBuffer[pos++] = 0xc0 | (c >> 6);
      } else if (c < 0xd800 || c > 0xdfff) {
        callBuffer[pos++] = 0xe0 | (c >> 12);
        callBuffer[pos++] = 0x80 | ((c >> 6) & 0x3f);
      } else { // a surrogate pair, or a lone surrogate: not plain (U+FFFD in the mapping)
        const d = c <= 0xdbff && i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (d < 0xdc00 || d > 0xdfff) return NOT_PLAIN;
        i++;
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        callBuffer[pos++] = 0xf0 | (c >> 18);
        callBuffer[pos++] = 0x80 | ((c >> 12) & 0x3f);
        callBuffer[pos++] = 0x80 | ((c >> 6) & 0x3f);
      }
      callBuffer[pos++] = 0x80 | (c & 0x3f);
    }
  }
  if (pos >= CALL_BUFFER) return TOO_LONG;
  callBuffer[pos++] = 0x22;
  return pos;
}
function writePlain(v, depth, pos) {
  switch (typeof v) {
    case 'string': return writeString(v, pos);
    case 'number':
      return (Number.isSafeInteger(v) ? !Object.is(v, -0) : Number.isFinite(v) && !Number.isInteger(v))
        ? writeAscii(String(v), pos) : NOT_PLAIN;
    case 'boolean': return writeAscii(v ? 'true' : 'false', pos);
    case 'object': {
      if (v === null) return writeAscii('null', pos);
      if (depth >= 16 || v.toJSON !== undefined) return NOT_PLAIN;
      const proto = Object.getPrototypeOf(v);
      if (proto === Array.prototype) {
        if (pos >= CALL_BUFFER) return TOO_LONG;
        callBuffer[pos++] = 0x5b;
        for (let i = 0; i < v.length; i++) {
          if (!(i in v)) return NOT_PLAIN;
          if (i > 0) {
            if (pos >= CALL_BUFFER) return TOO_LONG;
            callBuffer[pos++] = 0x2c;
          }
          pos = writePlain(v[i], depth + 1, pos);
          if (pos < 0) return pos;
        }
        if (pos >= CALL_BUFFER) return TOO_LONG;
        callBuffer[pos++] = 0x5d;
        return pos;
      }
      if (proto !== Object.prototype) return NOT_PLAIN;
      if (pos >= CALL_BUFFER) return TOO_LONG;
      callBuffer[pos++] = 0x7b;
      let first = true;
      for (const k in v) {
        if (!Object.hasOwn(v, k) || !isName(k)) return NOT_PLAIN;
        if (pos + k.length + 4 > CALL_BUFFER) return TOO_LONG;
        if (!first) callBuffer[pos++] = 0x2c;
        first = false;
        callBuffer[pos++] = 0x22;
        for (let i = 0; i < k.length; i++) callBuffer[pos++] = k.charCodeAt(i);
        callBuffer[pos++] = 0x22;
        callBuffer[pos++] = 0x3a;
        pos = writePlain(v[k], depth + 1, pos);
        if (pos < 0) return pos;
      }
      if (pos >= CALL_BUFFER) return TOO_LONG;
      callBuffer[pos++] = 0x7d;
      return pos;
    }
    default: return NOT_PLAIN;
  }
}
// The length of params' text written into the call buffer, NOT_PLAIN or TOO_LONG (also while
// a walk of an outer call is writing there).
function writeBody(params) {
  if (bufferBusy) return TOO_LONG;
  bufferBusy = true;
  try {
    return writePlain(params, 0, 0);
  } finally {
    bufferBusy = false;
  }
}

// --- calls in flight: a call's promise is made and settled here.  The addon sends a call with
// a number and hands the answer to onReply (below) with it: text that JSON.parse reads as the
// mapping does comes as text and is parsed here (JSON.parse called from C costs more), anything
// else as the value or the error.  The number is a slot of resolves/rejects; settled slots are
// reused (freeSlots), so these arrays are as long as the most calls ever in flight at once.
// The promise's executor is one function for all calls (no closure a call).
const resolves = [];
const rejects = [];
const freeSlots = [];
let gotResolve;
let gotReject;
function takeResolvers(resolve, reject) { gotResolve = resolve; gotReject = reject; }
// The addon's number for an endpoint and method (busTarget), so a call to a target called
// before passes neither string: bus._targets maps endpoint -> method -> number.  -1 when the
// addon keeps as many targets as it may (64 a bus): the call then passes the strings.
function targetOf(bus, endpoint, method) {
  let m = bus._targets.get(endpoint);
  if (m !== undefined) {
    const t = m.get(method);
    if (t !== undefined) return t;
  }
  if (typeof endpoint !== 'string' || typeof method !== 'string' || bus._targetsFull) return -1;
  const t = native.busTarget(bus._h, endpoint, method);
  if (t < 0) {
    bus._targetsFull = true;
    return -1;
  }
  if (m === undefined) {
    m = new Map();
    bus._targets.set(endpoint, m);
  }
  m.set(method, t);
  return t;
}
function callNative(bus, endpoint, method, params, ms, holder) {
  const h = bus._h; // the addon's handle: no unwrap of the Bus object a call
  let id; // taken before the addon runs: a getter it runs may make a call of its own
  if (freeSlots.length > 0) {
    id = freeSlots.pop();
  } else {
    id = resolves.length;
    resolves.push(undefined);
    rejects.push(undefined);
  }
  // the addon throws for a call it does not send; onReply runs from the loop only, never
  // before this returns
  try {
    if (!holder && params !== undefined) {
      const t = targetOf(bus, endpoint, method);
      const n = t >= 0 ? writeBody(params) : TOO_LONG;
      if (n >= 0) native.busCallTo(h, id, t, n, ms);
      else if (n === NOT_PLAIN) native.busCall(h, id, endpoint, method, params, ms);
      else callText(h, id, endpoint, method, params, ms);
    } else {
      callText(h, id, endpoint, method, params, ms, holder);
    }
  } catch (e) {
    freeSlots.push(id);
    throw e;
  }
  const p = new Promise(takeResolvers);
  resolves[id] = gotResolve;
  rejects[id] = gotReject;
  return p;
}
// A call whose body is plainText's string, or (not plain) the walk in C's
function callText(h, id, endpoint, method, params, ms, holder) {
  const text = params === undefined ? undefined : plainText(params, 0);
  if (holder) {
    holder.id = id;
    if (text !== undefined) native.busCallJSON(h, id, endpoint, method, text, ms, holder);
    else native.busCall(h, id, endpoint, method, params, ms, holder);
  } else if (text !== undefined) {
    native.busCallJSON(h, id, endpoint, method, text, ms);
  } else {
    native.busCall(h, id, endpoint, method, params, ms);
  }
}
// Constructors of the flat records an answer may be (the addon's hn_record_values): the addon
// numbers each list of keys it meets (at most 64) and hands it here once (onShape); an answer
// of that shape then comes as its values, in order, and the shape's constructor, an object
// literal, makes the object JSON.parse would (the keys are names other than __proto__, the
// values strings, safe integers, booleans or null).
const shapes = [];
function makeShape(shape, keys) {
  const names = keys === '' ? [] : keys.split(',');
  const params = names.map((k, i) => 'v' + i);
  let make;
  try {
    make = new Function(...params, 'return {' + names.map((k, i) => JSON.stringify(k) + ':v' + i).join(',') + '};');
  } catch (e) { // code generation from strings disallowed: the same object, made key by key
    make = (...values) => {
      const o = {};
      for (let i = 0; i < names.length; i++) o[names[i]] = values[i];
      return o;
    };
  }
  shapes[shape] = make;
}
// mode 0: text JSON.parse reads as the mapping does, 1: the value, 2: the error, 3: a flat
// record of shape v with values a..h
function settleCall(id, mode, v, a, b, c, d, e, f, g, h) {
  const resolve = resolves[id];
  const reject = rejects[id];
  if (resolve === undefined) return;
  resolves[id] = undefined;
  rejects[id] = undefined;
  freeSlots.push(id);
  if (mode === 3) {
    resolve(shapes[v](a, b, c, d, e, f, g, h));
  } else if (mode === 0) {
    let value;
    try {
      value = JSON.parse(v);
    } catch (e) {
      try { value = native.fromJSON(v); } catch (e2) { reject(e2); return; } // the library's error
    }
    resolve(value);
  } else if (mode === 1) {
    resolve(v);
  } else {
    reject(v);
  }
}

// --- policies: {a: 'int', b: 'int?'} -> [[key, type, required]] (hyb_json_type numbers)
const JSON_TYPES = {
  any: 0, str: 1, string: 1, int: 2, integer: 2, number: 3, real: 3, float: 3,
  bool: 4, boolean: 4, object: 5, dict: 5, rec: 5, array: 6, list: 6, lst: 6, null: 7,
};
function typeNumber(t) {
  if (t === String) return 1;
  if (t === Number) return 3;
  if (t === BigInt) return 2;
  if (t === Boolean) return 4;
  if (t === Object) return 5;
  if (t === Array) return 6;
  if (t === null) return 7;
  if (typeof t === 'string' && Object.prototype.hasOwnProperty.call(JSON_TYPES, t)) return JSON_TYPES[t];
  throw new TypeError(`unknown argument type ${String(t)} (use one of ${Object.keys(JSON_TYPES).join(', ')})`);
}
function policyOf(args) {
  const out = [];
  for (const [key, spec] of Object.entries(args || {})) {
    let type = spec;
    let required = true;
    if (spec && typeof spec === 'object' && !Array.isArray(spec)) {
      type = spec.type === undefined ? 'any' : spec.type;
      required = spec.required !== false;
    } else if (typeof spec === 'string' && spec.endsWith('?')) {
      type = spec.slice(0, -1);
      required = false;
    }
    out.push([key, typeNumber(type), required]);
  }
  return out;
}
// A procedure spec is either the argument policy itself ({a: 'int'}) or the richer
// {args: {...}, forHost: '...', forApp: '...'} (args given as an object).
function splitSpec(spec) {
  if (spec && typeof spec === 'object' &&
      ((spec.args && typeof spec.args === 'object') || 'forApp' in spec || 'forHost' in spec)) {
    return { args: spec.args || {}, forHost: spec.forHost ?? null, forApp: spec.forApp ?? null };
  }
  return { args: spec || {}, forHost: null, forApp: null };
}

// p<pid>, then p<pid>_<n>; a worker thread (which loads its own copy of this module)
// adds its thread id, p<pid>w<tid>, so threads of one process do not take the same name.
let runnerCount = 0;
const threadId = require('node:worker_threads').threadId;
function defaultRunner() {
  runnerCount += 1;
  const base = threadId ? `p${process.pid}w${threadId}` : `p${process.pid}`;
  return runnerCount === 1 ? base : `${base}_${runnerCount}`;
}

// --- bus

class Subscription extends EventEmitter {
  constructor(owner, id) {
    super();
    this._owner = owner;
    this._id = id;
    this._slot = null;
    this._queue = [];
    this._waiters = [];
    this._closed = false;
  }
  _push(item) {
    if (this._waiters.length) this._waiters.shift()({ value: item, done: false });
    else if (this._iterating) this._queue.push(item);
  }
  /** Stops the subscription (idempotent); a pending iterator ends. */
  close() {
    if (this._closed) return;
    this._closed = true;
    if (this._slot) native.slotUnref(this._slot);
    this._slot = null;
    this._owner._forget(this._id);
    for (const w of this._waiters.splice(0)) w({ value: undefined, done: true });
    this.emit('close');
  }
  [Symbol.asyncIterator]() {
    this._iterating = true;
    return {
      next: () => {
        if (this._queue.length) return Promise.resolve({ value: this._queue.shift(), done: false });
        if (this._closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this._waiters.push(resolve));
      },
      return: () => { this.close(); return Promise.resolve({ value: undefined, done: true }); },
      [Symbol.asyncIterator]() { return this; },
    };
  }
}

const cancelled = () => new HybridError('the call was cancelled (its deadline passed or its caller ended it)', 504);

/**
 * What a procedure's fn gets besides its params: caller (its endpoint name), method,
 * transport (how the caller reached the bus: 'unix', 'ws', 'wss', 'http', 'https', 'coap'
 * or 'cluster'), principal (the `sub` of the caller's token, null without one), bus.
 */
class RequestInfo {
  constructor(bus, caller, method, id, transport, principal) {
    this.caller = caller;
    this.method = method;
    this.transport = transport;
    this.principal = principal;
    this.bus = bus;
    this._id = id;
  }
  /** An AbortSignal aborted when the broker cancels the call (deadline, terminateCall). */
  get signal() {
    if (!this._ac) {
      const bus = this.bus;
      this._ac = new AbortController();
      if (bus._cancelled.delete(this._id)) this._ac.abort(cancelled());
      else bus._aborts.set(this._id, this._ac);
    }
    return this._ac.signal;
  }
}

class Bus extends EventEmitter {
  constructor() {
    super();
    this.name = null;
    this._h = null;               // the addon's handle of this connection (busHandle)
    this._targets = new Map();    // endpoint -> method -> the addon's number (targetOf)
    this._targetsFull = false;
    this._procs = new Map();      // name -> {fn, slot}
    this._subs = new Map();       // id -> Subscription
    this._events = new Map();     // bubble -> slot
    this._nextId = 1;
    this._closed = false;
    this._aborts = new Map();     // request id -> AbortController (made when info.signal is read)
    this._cancelled = new Set();  // request ids cancelled before their signal was read
  }

  _keep() { native.busSetKeep(this, this._procs.size + this._subs.size); }
  _forget(id) { if (this._subs.delete(id) && !this._closed) this._keep(); }

  /** Calls method of endpoint with params; resolves with the result, rejects with HybridError. */
  call(endpoint, method, params, options) {
    const t = options && options.timeout !== undefined ? options.timeout : 0;
    // the addon takes a uint32: a longer deadline (Infinity too) is the longest one, as in
    // Python, not one wrapped around to a few milliseconds
    const ms = t > 0 ? Math.min(Math.ceil(t), 0xFFFFFFFF) : 0;
    try {
      if (options && options.signal) return this._callAbortable(endpoint, method, params, ms, options.signal);
      return callNative(this, endpoint, method, params, ms);
    } catch (e) {
      return Promise.reject(e); // a closed bus, a value without an obj form: a rejection too
    }
  }
  // {signal}: aborting ends the call (the callee's info.signal aborts too) and rejects with
  // the signal's reason, as fetch() does.
  _callAbortable(endpoint, method, params, ms, signal) {
    if (signal.aborted) return Promise.reject(signal.reason);
    const holder = {};
    const p = callNative(this, endpoint, method, params, ms, holder);
    const onAbort = () => { if (native.busCancel(this, holder.handle)) settleCall(holder.id, 2, signal.reason); };
    signal.addEventListener('abort', onAbort, { once: true });
    const done = () => signal.removeEventListener('abort', onAbort);
    p.then(done, done);
    return p;
  }

  /**
   * Offers procedure name.  spec is its argument policy ({a: 'int', b: 'str?'}) or
   * {args, forHost, forApp}; fn(params, info) returns (or resolves to) the result.
   * Returns a function that withdraws the procedure.
   */
  procedure(name, spec, fn) {
    if (typeof spec === 'function') { fn = spec; spec = {}; }
    if (typeof fn !== 'function') throw new TypeError('procedure: fn must be a function');
    const s = splitSpec(spec);
    const slot = native.busProcedure(this, name, policyOf(s.args), s.forHost, s.forApp);
    this._procs.set(name, { fn, slot });
    this._keep();
    return () => this.unregister(name);
  }

  /** Withdraws a procedure offered with procedure(). */
  unregister(name) {
    const p = this._procs.get(name);
    if (!p) return false;
    this._procs.delete(name);
    native.slotUnref(p.slot);
    if (!this._closed) this._keep();
    return true;
  }

  _request(method, params, req, caller, id, transport, principal) {
    const p = this._procs.get(method);
    if (!p) { native.busReplyError(this, req, 404, `no procedure ${method}`); return; }
    let result;
    let then;
    try {
      result = p.fn(params, new RequestInfo(this, caller, method, id, transport, principal));
      if (result !== null && (typeof result === 'object' || typeof result === 'function')) then = result.then;
    } catch (e) {
      this._fail(req, e, id);
      return;
    }
    if (typeof then === 'function') {
      // adopted as await does: a then() that throws is a rejection, not an exception here
      Promise.resolve(result).then((v) => this._answer(req, v, id), (e) => this._fail(req, e, id));
    } else {
      this._answer(req, result, id);
    }
  }
  _cancel(id) {
    const ac = this._aborts.get(id);
    if (ac) {
      this._aborts.delete(id);
      ac.abort(cancelled());
    } else {
      this._cancelled.add(id); // a signal asked for later starts aborted
    }
  }
  _answer(req, value, id) {
    this._aborts.delete(id);
    this._cancelled.delete(id);
    if (this._closed) return;
    try {
      native.busReply(this, req, value === undefined ? null : value);
    } catch (e) {
      // a result without an obj form (NaN, a function) is the procedure's fault: 500, not
      // the 400 the conversion's HybridError carries, which would blame the caller
      this._fail(req, new Error(`the procedure's result: ${e && e.message}`), id);
    }
  }
  _fail(req, e, id) {
    this._aborts.delete(id);
    this._cancelled.delete(id);
    if (this._closed) return;
    let msg = e instanceof HybridError ? e.message
      : e && e.message !== undefined ? String(e.message) : String(e);
    const nul = msg.indexOf('\0');
    if (nul >= 0) msg = msg.slice(0, nul); // the library takes it as a C string
    native.busReplyError(this, req, e instanceof HybridError ? e.status : 500, msg);
  }

  /**
   * Registers event bubble (options: {forHost, forApp, cluster}); fire() sends it.  With
   * cluster: true its fires also go to the other hosts of the daemon's cluster (a daemon
   * outside a cluster refuses: HybridError 501).
   */
  registerEvent(bubble, options = {}) {
    const slot = native.busRegisterEvent(this, bubble, options.forHost ?? null, options.forApp ?? null,
                                         !!options.cluster);
    this._events.set(bubble, slot);
  }
  /** Withdraws a bubble (subscribers see it go). */
  unregisterEvent(bubble) {
    const slot = this._events.get(bubble);
    if (!slot) return false;
    this._events.delete(bubble);
    native.slotUnref(slot);
    return true;
  }
  /** Fires a registered bubble with data (one-way). */
  fire(bubble, data) { native.busFire(this, bubble, data === undefined ? null : data); }

  /**
   * Subscribes to the events of bubbles matching bubbleGlob of endpoints matching
   * endpointGlob (`*`, `?`).  Returns an EventEmitter ('event' with {source, bubble,
   * data}) that is also an async iterator; close() it to unsubscribe.
   */
  subscribe(endpointGlob, bubbleGlob) {
    const id = this._nextId++;
    const sub = new Subscription(this, id);
    sub._slot = native.busSubscribe(this, endpointGlob, bubbleGlob, id);
    this._subs.set(id, sub);
    this._keep();
    return sub;
  }

  /** Closes the connection: pending calls fail (502), registrations go. */
  close() {
    if (this._closed) return;
    this._closed = true;
    native.busClose(this);
    for (const p of this._procs.values()) native.slotUnref(p.slot);
    for (const slot of this._events.values()) native.slotUnref(slot);
    const subs = [...this._subs.values()];
    this._procs.clear();
    this._events.clear();
    for (const s of subs) s.close();
    this.emit('close');
  }
}

/**
 * Connects to hybridd.  options: {socket (null: $HYBRID_BUS, else the default
 * socket; or a remote broker's ws://HOST:PORT/bus/ws or wss://... URL), app (required),
 * runner (default p<pid>), token, key (PEM or JWK text of the token holder's private key),
 * caFile (a PEM file of CA certificates) and/or pin (the SHA-256 of the server's public
 * key) to verify a wss:// server (neither: $HYBRID_CA, $HYBRID_PIN)}.
 */
async function connect(options = {}) {
  if (!options.app) throw new TypeError('connect: app is required');
  const bus = new Bus();
  const connected = native.busConnect(bus, options.socket ?? null, options.app,
                                      options.runner ?? defaultRunner(), options.token ?? null,
                                      options.key ?? null, options.caFile ?? null,
                                      options.pin ?? null);
  bus._h = native.busHandle(bus);
  bus.name = await connected;
  return bus;
}

// --- store

class Store extends EventEmitter {
  constructor() {
    super();
    this.source = 0;
    this.where = '';
    this._watches = new Map();
    this._nextId = 1;
    this._closed = false;
  }
  _forget(id) {
    if (this._watches.delete(id) && !this._closed) native.storeSetKeep(this, this._watches.size);
  }
  /** Writes value at furi ({transient: true} notifies watchers without storing). */
  put(furi, value, options = {}) {
    return this._op(1, furi, value === undefined ? null : value, !!options.transient);
  }
  /** Reads a node (its value, null when empty), a pattern or a branch ({furi: value}). */
  get(furi) { return this._op(0, furi, null, false); }
  /** Deletes a node, every match of a pattern, or a branch's children. */
  delete(furi) { return this._op(2, furi, null, false); }
  _op(op, furi, value, transient) {
    try {
      return native.storeOp(this, op, furi, value, transient);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  /**
   * Watches writes and deletes matching pattern ({replay: true} first gives the stored
   * values).  An EventEmitter ('message' with {furi, value, retain}) and an async iterator.
   */
  watch(pattern, options = {}) {
    const id = this._nextId++;
    const w = new Subscription(this, id);
    w._slot = native.storeWatch(this, pattern, !!options.replay, id);
    this._watches.set(id, w);
    native.storeSetKeep(this, this._watches.size);
    return w;
  }
  close() {
    if (this._closed) return;
    this._closed = true;
    const ws = [...this._watches.values()];
    for (const w of ws) w.close();
    native.storeClose(this);
    this.emit('close');
  }
}

/**
 * Opens the host store: {db} embedded; else {socket} (or $HYBRID_BUS) that daemon's
 * store; else the default socket's daemon if one answers; else the default database.
 * Also {app, runner, token, key, caFile, pin} for the connection, as connect().
 * The cluster scope //... goes to the daemon when one serves the host store; on the
 * embedded store to the MQTT broker of {cluster: 'mqtt://HOST:PORT...'} (else
 * $HYBRID_CLUSTER); with neither, its operations reject with HYB_E_SCOPE.
 */
async function store(options = {}) {
  const st = new Store();
  const info = await native.storeOpen(st, options.db ?? null, options.socket ?? null,
                                      options.app ?? 'org.hybridos.node',
                                      options.runner ?? defaultRunner(), options.token ?? null,
                                      options.key ?? null, options.caFile ?? null,
                                      options.pin ?? null, options.cluster ?? null);
  st.source = info.source;
  st.where = info.where;
  return st;
}

// --- dispatchers the addon calls from the loop

native.setup({
  HybridError,
  Uri,
  Typed,
  Real: RealValue,
  onRequest(bus, method, params, req, caller, id, transport, principal) {
    bus._request(method, params, req, caller, id, transport, principal);
  },
  onCancel(bus, id) { bus._cancel(id); },
  onReply: settleCall,
  onShape: makeShape,
  onEvent(bus, id, source, bubble, data) {
    const sub = bus._subs.get(id);
    if (!sub) return;
    const ev = { source, bubble, data };
    sub._push(ev);
    sub.emit('event', ev);
  },
  onStoreMessage(st, id, furi, value, retain) {
    const w = st._watches.get(id);
    if (!w) return;
    const msg = { furi, value, retain };
    w._push(msg);
    w.emit('message', msg);
  },
  onClose(owner, status, message) {
    if (owner._closed) return;
    const err = new HybridError(message, status);
    owner.close();
    if (owner.listenerCount('error') > 0) owner.emit('error', err);
  },
});

// --- mm-ADT and tokens

const mmadt = {
  /** Compiles and runs mm-ADT source; the results of every statement, in order. */
  run(source) { return native.mmadtRun(source); },
};

function capsOf(caps) {
  if (!caps) return [];
  if (!Array.isArray(caps)) caps = Object.entries(caps).map(([resource, actions]) => ({ resource, actions }));
  return caps.map((c) => {
    if (typeof c === 'string') {
      const i = c.lastIndexOf('=');
      if (i < 0) throw new TypeError(`capability ${c}: expected RESOURCE=ACTIONS`);
      return [c.slice(0, i), c.slice(i + 1)];
    }
    const acts = Array.isArray(c.actions) ? c.actions.join(',') : String(c.actions);
    return [String(c.resource), acts];
  });
}
const list = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);

const token = {
  /** A new P-256 key pair: {privateKey, publicKey} as PEM, and its kid. */
  keygen() { return native.tokenKeygen(); },
  /** Issues a token signed by issuerKey (PEM/JWK private key). */
  issue(issuerKey, o) {
    return native.tokenIssue(issuerKey, o.iss, o.sub, list(o.aud), o.holder, capsOf(o.caps),
                             o.ttl ?? 0, o.dlg ?? 0, o.epo ?? 0, o.now ?? 0);
  },
  /** Appends a narrower block signed by holderKey (the current holder's private key). */
  attenuate(tok, holderKey, o) {
    return native.tokenAttenuate(tok, holderKey, o.holder, capsOf(o.caps), list(o.aud),
                                 o.ttl ?? 0, o.now ?? 0);
  },
  /**
   * Verifies a token against {issuers: {name: publicKeyPem}, audience}; returns
   * {sub, exp, holder, cap, iss, jti, blocks}; throws HybridError 401 when it does not hold.
   */
  verify(tok, o) {
    const trust = Object.entries(o.issuers || {});
    return native.tokenVerify(tok, trust, String(o.audience), o.now ?? 0, o.maxLifetime ?? 0);
  },
  /** Every block's header and claims, NOT verified. */
  inspect(tok) { return native.tokenInspect(tok); },
};

module.exports = {
  connect,
  store,
  HybridError,
  Uri,
  Typed,
  Real,
  Bus,
  Store,
  mmadt,
  token,
  toJSON: native.toJSON,
  fromJSON: native.fromJSON,
  version: native.version(),
  napiVersion: native.napiVersion,
};
