'use strict';
// The Node peer of the cross-language tests (bindings/cross/README.md); the commands and their
// output are those of peer.py:
//   node peer.js echo SOCKET APP | copy SOCKET FROM TO ECHO | serve SOCKET APP |
//                call SOCKET ENDPOINT METHOD JSON | listen SOCKET APP EPGLOB BUBGLOB |
//                fire SOCKET APP BUBBLE KEY INT | leak SOCKET ECHO N | keygen PATH |
//                tokissue ISSKEY HOLDERPUB SUB OUT | tokverify TOKENFILE ISSPUB |
//                tokstore SOCKET TOKENFILE KEY FURI TEXT
// (leak: run with --expose-gc so the heap is collected before each RSS reading)
// `hybrid` is found by require() (NODE_PATH, or HYBRID_NODE_PACKAGE naming the package dir).
// Values are never converted by hand: the binding's store and bus do it, which is what is tested.
const fs = require('node:fs');
const hybrid = require(process.env.HYBRID_NODE_PACKAGE || 'hybrid');

const TOKEN_CAPS = { '/x/#': 'read,write', 'bus://localhost/#': 'call' };
const readText = (file) => fs.readFileSync(file, 'utf8');

function ready(bus) {
  process.on('SIGTERM', () => { bus.close(); });
  process.stdout.write(bus.name + '\n');
  process.stderr.write('ready\n');
}

function flat(d) {
  return Object.keys(d).sort().map((k) => `${k}=${d[k]}`).join(' ');
}

function checkNumbers(where, values) {
  values.forEach((v, i) => {
    if (typeof v !== 'number' && typeof v !== 'bigint') {
      throw new Error(`peer.js: ${where}[${i}] is ${typeof v} ${v}, not a number or a bigint`);
    }
  });
}

// The node binding's documented rule, checked on the edge values rt writes first (rt.c,
// edge_values): int64 beyond 2^53-1 reads as a BigInt, -0.0 as the Number -0 (a real), an
// integral real in the safe range as a plain Number.
function checkEdgeRule(values) {
  const want = [[0, 9223372036854775807n], [1, -9223372036854775808n], [2, 9007199254740993n],
    [4, 9007199254740992n], [5, 9007199254740991], [16, -0], [17, 5e-324], [30, 0], [31, 1], [33, 9007199254740991], [35, 9007199254740992]];
  for (const [i, w] of want) {
    if (!Object.is(values[i], w)) {
      throw new Error(`peer.js: edge value ${i} reads as ${typeof values[i]} ${String(values[i])}` +
                      `, wanted ${typeof w} ${String(w)}`);
    }
  }
}

function entries(got) {
  if (got instanceof Map) return [...got.entries()].map(([k, v]) => [String(k), v]);
  return Object.entries(got);
}

function rssKb() {
  if (global.gc) global.gc();
  return Math.round(process.memoryUsage.rss() / 1024);
}

const commands = {
  async echo(sock, app) {
    const bus = await hybrid.connect({ socket: sock, app });
    bus.procedure('echo', { values: 'array' }, async (args) => ({ values: args.values }));
    ready(bus);
  },

  async copy(sock, src, dst, echoEp) {
    const store = await hybrid.store({ socket: sock, app: 'org.example.node.rtcopy' });
    const bus = await hybrid.connect({ socket: sock, app: 'org.example.node.rtcall' });
    const got = entries(await store.get(src + '/#')).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    if (got.length === 0) throw new Error(`peer.js: nothing under ${src}`);
    if (got[0][0].endsWith('/k000000') && got[0][1].length >= 36) checkEdgeRule(got[0][1]);
    for (const [key, values] of got) {
      checkNumbers(key, values);
      const back = (await bus.call(echoEp, 'echo', { values })).values;
      checkNumbers(key + ' (echoed)', back);
      await store.put(dst + key.slice(src.length), back);
    }
    bus.close();
    if (store.close) store.close();
    console.log(`node: ${got.length} keys copied ${src} -> ${dst} through ${echoEp}`);
  },

  async serve(sock, app) {
    const bus = await hybrid.connect({ socket: sock, app });
    bus.procedure('add', { a: 'int', b: 'int' }, async ({ a, b }) => ({ sum: a + b, lang: 'node' }));
    bus.procedure('deny', {}, async () => {
      throw new hybrid.HybridError('denied by node', 403);
    });
    ready(bus);
  },

  async call(sock, endpoint, method, params) {
    const bus = await hybrid.connect({ socket: sock, app: 'org.example.node.caller' });
    try {
      console.log('ok ' + flat(await bus.call(endpoint, method, JSON.parse(params))));
    } catch (e) {
      if (!(e instanceof hybrid.HybridError)) throw e;
      console.log(`error ${e.status} ${e.code}`);
      process.exitCode = 1;
    }
    bus.close();
  },

  async listen(sock, app, epGlob, bubbleGlob) {
    const bus = await hybrid.connect({ socket: sock, app });
    const sub = bus.subscribe(epGlob, bubbleGlob);
    sub.once('event', (ev) => {
      console.log(`event ${ev.source} ${ev.bubble} ${flat(ev.data)}`);
      bus.close();
    });
    process.stderr.write('ready\n');
  },

  async leak(sock, echoEp, n) {
    n = Number(n);
    const values = [9223372036854775807n, -0, 5e-324, 'text', true, null, { k: [1, 2.5] }];
    const store = await hybrid.store({ socket: sock, app: 'org.example.node.leakstore' });
    const bus = await hybrid.connect({ socket: sock, app: 'org.example.node.leak' });
    const rounds = async (count) => {
      for (let i = 0; i < count; i++) {
        const back = (await bus.call(echoEp, 'echo', { values })).values;
        if (back[0] !== values[0]) throw new Error('peer.js: leak: wrong echo');
        if (i % 10 === 0) {
          await store.put('/leak/node', i);
          if ((await store.get('/leak/node')) !== i) throw new Error('peer.js: leak: wrong store read');
        }
      }
    };
    await rounds(Math.max(Math.floor(n / 10), 2000));
    const before = rssKb();
    await rounds(n);
    console.log(`rss_kb ${before} ${rssKb()}`);
    bus.close();
    if (store.close) store.close();
  },

  // key files as the other peers and the hybrid tool write them: PATH private, PATH.pub public
  async keygen(file) {
    const k = hybrid.token.keygen();
    fs.writeFileSync(file, k.privateKey, { mode: 0o600 });
    fs.writeFileSync(file + '.pub', k.publicKey);
  },

  async tokissue(issKey, holderPub, sub, out) {
    const tok = hybrid.token.issue(readText(issKey), {
      iss: 'acme', sub, aud: 'hub1', holder: readText(holderPub), caps: TOKEN_CAPS, ttl: 3600,
    });
    fs.writeFileSync(out, tok + '\n');
  },

  async tokverify(tokFile, issPub) {
    try {
      const v = hybrid.token.verify(readText(tokFile).trim(),
                                    { issuers: { acme: readText(issPub) }, audience: 'hub1' });
      console.log(`ok sub=${v.sub} iss=${v.iss}`);
    } catch (e) {
      if (!(e instanceof hybrid.HybridError)) throw e;
      console.log(`error ${e.status} ${e.code}`);
      process.exitCode = 1;
    }
  },

  async tokstore(sock, tokFile, key, furi, text) {
    const creds = tokFile === '-' ? {} : { token: readText(tokFile).trim(), key: readText(key) };
    try {
      const store = await hybrid.store({ socket: sock, app: 'org.example.node.tok', ...creds });
      await store.put(furi, text);
      console.log(`ok ${await store.get(furi)}`);
      store.close();
    } catch (e) {
      if (!(e instanceof hybrid.HybridError)) throw e;
      console.log(`error ${e.status} ${e.code}`);
      process.exitCode = 1;
    }
  },

  async fire(sock, app, bubble, key, value) {
    const bus = await hybrid.connect({ socket: sock, app });
    await bus.registerEvent(bubble);
    await bus.fire(bubble, { [key]: Number(value) });
    // a call answered after the fire was handled: the broker has routed the event by then
    await bus.call('@localhost/org.hybridos.bus/builtin', 'echo', {});
    console.log(`fired ${bubble}`);
    bus.close();
  },
};

const [cmd, ...args] = process.argv.slice(2);
if (!commands[cmd] || commands[cmd].length !== args.length) {
  console.error('usage: node peer.js echo|copy|serve|call|listen|fire ARGS (see peer.py)');
  process.exit(2);
}
commands[cmd](...args).catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
