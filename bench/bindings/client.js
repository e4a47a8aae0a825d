'use strict';
// The Node client of bench/run-bindings.sh (bench/README.md, "bench-bindings"):
//   node client.js SOCKET ENDPOINT CALLS EVENTS
// prints `RESULT call_p50_us=X` (median of CALLS awaited echo calls after a 10 % warm-up, every
// answer checked) and `RESULT events_per_s=X` (EVENTS events of one burst, first to last
// delivery), as bench-bindings' C client does.  `hybrid` is found by require() (NODE_PATH, or
// HYBRID_NODE_PACKAGE naming the package directory).
const hybrid = require(process.env.HYBRID_NODE_PACKAGE || 'hybrid');

async function main(sock, endpoint, calls, events) {
  const bus = await hybrid.connect({ socket: sock, app: 'org.example.bench.node' });
  const us = [];
  for (let i = -Math.floor(calls / 10); i < calls; i++) {
    const t0 = process.hrtime.bigint();
    const r = await bus.call(endpoint, 'echo', { words: 'hi' });
    const t1 = process.hrtime.bigint();
    if (!r || r.words !== 'hi') throw new Error('client.js: wrong echo');
    if (i >= 0) us.push(Number(t1 - t0) / 1e3);
  }
  us.sort((a, b) => a - b);
  const mid = us.length >> 1;
  const p50 = us.length % 2 ? us[mid] : (us[mid - 1] + us[mid]) / 2;
  console.log(`RESULT call_p50_us=${p50.toFixed(2)}`);

  let got = 0;
  let first = 0n;
  let last = 0n;
  const done = new Promise((resolve) => {
    bus.subscribe(endpoint, 'TICK').on('event', () => {
      const now = process.hrtime.bigint();
      if (got === 0) first = now;
      got += 1;
      last = now;
      if (got === events) resolve();
    });
  });
  await bus.call(endpoint, 'burst', { n: events });
  await done;
  console.log(`RESULT events_per_s=${((got - 1) / (Number(last - first) / 1e9)).toFixed(0)}`);
  bus.close();
}

const [sock, endpoint, calls, events] = process.argv.slice(2);
if (!events) {
  console.error('usage: node client.js SOCKET ENDPOINT CALLS EVENTS');
  process.exit(2);
}
main(sock, endpoint, Number(calls), Number(events)).catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
