// SPDX-License-Identifier: MIT
// The console's packet codec and token handshake (lib/edge/console/wire.mjs) against the
// frame layout of doc/protocol.md "Frame" (packets built here byte by byte with
// Buffer, not with the codec) and the transcript of doc/token.md "Handshake" (rebuilt
// with node:crypto), signatures checked with node:crypto.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, verify } from "node:crypto";
import * as wire from "../../lib/edge/console/wire.mjs";

// A frame as doc/protocol.md draws it: 32-byte little-endian header, from, to, member, body.
function frame({ type, flags = 0, status = 0, callId = 0n, timeout = 0, from = "", to = "",
                 member = "", body = "", info = 0, aux = 0, bodyLen }) {
        const f = Buffer.from(from), t = Buffer.from(to), m = Buffer.from(member), b = Buffer.from(body);
        const h = Buffer.alloc(32);
        h.writeUInt32LE(bodyLen ?? b.length, 0);
        h.writeUInt8(type, 4);
        h.writeUInt8(flags, 5);
        h.writeUInt16LE(status, 6);
        h.writeBigUInt64LE(BigInt(callId), 8);
        h.writeUInt32LE(timeout, 16);
        h.writeUInt16LE(f.length, 20);
        h.writeUInt16LE(t.length, 22);
        h.writeUInt16LE(m.length, 24);
        h.writeUInt16LE(info, 26);
        h.writeUInt32LE(aux, 28);
        return new Uint8Array(Buffer.concat([h, f, t, m, b]));
}

test("encode lays out a CALL as the doc's frame", () => {
        const got = wire.encode({ type: wire.TYPE.CALL, callId: 7, timeout: 5000, to: "@localhost/org.example.thermo/main",
                                  member: "setTarget", body: '{"celsius":22}' });
        const want = frame({ type: 4, callId: 7n, timeout: 5000, to: "@localhost/org.example.thermo/main",
                             member: "setTarget", body: '{"celsius":22}' });
        assert.deepEqual(Buffer.from(got), Buffer.from(want));
        // the fixed fields by offset, as the table says
        const dv = new DataView(got.buffer);
        assert.equal(dv.getUint32(0, true), 14);
        assert.equal(got[4], 4);
        assert.equal(dv.getUint16(22, true), 34);
        assert.equal(dv.getUint16(24, true), 9);
        assert.equal(got.length, 32 + 34 + 9 + 14);
});

test("encode: binary flag, 64-bit call id, bytes body", () => {
        const body = Uint8Array.of(0, 1, 2, 255);
        const got = wire.encode({ type: wire.TYPE.CALL, flags: wire.F_BINARY, callId: 0x1122334455667788n,
                                  to: wire.BUILTIN, member: "storeRead", body });
        const want = frame({ type: 4, flags: 1, callId: 0x1122334455667788n, to: wire.BUILTIN, member: "storeRead",
                             body: Buffer.from(body) });
        assert.deepEqual(Buffer.from(got), Buffer.from(want));
});

test("encode refuses what the broker would", () => {
        assert.throws(() => wire.encode({ type: 12 }), wire.WireError);
        assert.throws(() => wire.encode({ type: 4, flags: 4 }), wire.WireError);
        assert.throws(() => wire.encode({ type: 4, timeout: 3600001 }), wire.WireError);
        assert.throws(() => wire.encode({ type: 4, to: "x".repeat(385) }), wire.WireError);
        assert.throws(() => wire.encode({ type: 5, status: 99 }), wire.WireError);
        assert.throws(() => wire.encode({ type: 4, member: "m".repeat(4097) }), wire.WireError);
});

test("decode a CHALLENGE", () => {
        const body = JSON.stringify({ protocol: "HYBRID", version: 1, nonce: "ab".repeat(32), maxBody: 16777216,
                                      host: "localhost", audience: "hub1", tokens: "accept" });
        const p = wire.decode(frame({ type: 1, body }).buffer);
        assert.equal(p.type, wire.TYPE.CHALLENGE);
        assert.equal(p.callId, 0n);
        assert.equal(JSON.parse(wire.bodyText(p)).audience, "hub1");
});

test("decode a RESULT with status and member", () => {
        const p = wire.decode(frame({ type: 5, status: 403, callId: 9n, from: wire.BUILTIN,
                                      member: "the token does not allow call" }));
        assert.equal(p.status, 403);
        assert.equal(p.callId, 9n);
        assert.equal(p.from, wire.BUILTIN);
        assert.equal(p.member, "the token does not allow call");
        assert.equal(p.body.length, 0);
});

test("decode a store message EVENT (binary, call id = subscription)", () => {
        const p = wire.decode(frame({ type: 7, flags: 1, status: 200, callId: 3n, from: wire.BUILTIN,
                                      member: "store", body: "/public/kitchen\n21.5" }));
        assert.equal(p.flags & wire.F_BINARY, 1);
        assert.equal(wire.bodyText(p), "/public/kitchen\n21.5");
});

test("decode splits the caller info off `from` on a CALL", () => {
        const name = "@localhost/org.hybridos.cli/x";
        const p = wire.decode(frame({ type: 4, from: name + "ws\0alice", info: 8, to: "@localhost/a/b", member: "m",
                                      aux: 1000 }));
        assert.equal(p.from, name);
        assert.deepEqual(p.info, { transport: "ws", principal: "alice" });
        assert.equal(p.aux, 1000);
});

test("decode refuses a message that is not exactly one valid packet", () => {
        const good = frame({ type: 5, status: 200, body: "{}" });
        const code = (f) => {
                try {
                        wire.decode(f, 1024);
                } catch (e) {
                        assert.ok(e instanceof wire.WireError);
                        return e.code;
                }
                return 0;
        };
        assert.equal(code(good), 0);
        assert.equal(code(good.subarray(0, 20)), 1002); // short header
        assert.equal(code(good.subarray(0, good.length - 1)), 1002); // truncated body
        assert.equal(code(new Uint8Array([...good, ...good])), 1002); // two packets
        assert.equal(code(frame({ type: 0 })), 1002);
        assert.equal(code(frame({ type: 12 })), 1002);
        assert.equal(code(frame({ type: 5, flags: 4 })), 1002);
        assert.equal(code(frame({ type: 5, status: 600 })), 1002);
        assert.equal(code(frame({ type: 5, timeout: 3600001 })), 1002);
        assert.equal(code(frame({ type: 5, member: "m".repeat(4097) })), 1002);
        assert.equal(code(frame({ type: 5, from: "abc", info: 2 })), 1002); // info on a RESULT
        assert.equal(code(frame({ type: 5, body: "x".repeat(1025) })), 1009); // over maxBody
});

test("round trip", () => {
        const p = { type: wire.TYPE.EVENT, flags: wire.F_COUNTS, status: 202, callId: 5n, from: "@localhost/a/b",
                    to: "", member: "TICK", body: '{"n":1}', aux: 0, timeout: 0 };
        const d = wire.decode(wire.encode(p));
        for (const k of ["type", "flags", "status", "callId", "from", "member", "aux", "timeout"])
                assert.equal(d[k], p[k], k);
        assert.equal(wire.bodyText(d), p.body);
});

test("base64url and hex", () => {
        assert.equal(wire.b64uEncode(Buffer.from("f")), "Zg");
        assert.equal(wire.b64uEncode(Buffer.from("fo")), "Zm8");
        assert.equal(wire.b64uEncode(Buffer.from("foo")), "Zm9v");
        assert.equal(wire.b64uEncode(Uint8Array.of(0xfb, 0xff)), "-_8");
        assert.deepEqual(Buffer.from(wire.b64Decode("Zm9v\nYmFy")), Buffer.from("foobar"));
        assert.equal(wire.bytesToHex(wire.hexToBytes("00ff10")), "00ff10");
        assert.throws(() => wire.hexToBytes("0g"));
});

test("transcript T is doc/token.md's", async () => {
        const nb = Buffer.alloc(32, 1), nc = Buffer.alloc(32, 2), tok = "aaa.bbb.ccc";
        const aud = "hub1", bind = "ws-none";
        const u16 = (n) => Buffer.from([n >> 8, n & 255]);
        const want = createHash("sha256").update(Buffer.concat([
                Buffer.from("HYBRID-TOKEN-PROOF-1\0"), u16(aud.length), Buffer.from(aud), nb, nc,
                createHash("sha256").update(tok).digest(), u16(bind.length), Buffer.from(bind)])).digest();
        const t = await wire.transcript(aud, new Uint8Array(nb), new Uint8Array(nc), tok, bind);
        assert.deepEqual(Buffer.from(t), want);
});

const N = wire.P256_N;
const big = (b) => BigInt("0x" + Buffer.from(b).toString("hex"));

test("lowS keeps a low s and flips a high one", () => {
        const r = Buffer.alloc(32, 7);
        const hi = Buffer.from((N - 5n).toString(16).padStart(64, "0"), "hex");
        const flipped = wire.lowS(new Uint8Array(Buffer.concat([r, hi])));
        assert.equal(big(flipped.subarray(32)), 5n);
        assert.deepEqual(Buffer.from(flipped.subarray(0, 32)), r);
        const lo = Buffer.from((N / 2n).toString(16).padStart(64, "0"), "hex");
        assert.deepEqual(Buffer.from(wire.lowS(new Uint8Array(Buffer.concat([r, lo])))), Buffer.concat([r, lo]));
});

for (const form of ["pkcs8", "jwk"]) {
        test(`proof from a ${form} key verifies and is low-S`, async () => {
                const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
                const text = form === "jwk" ? JSON.stringify(privateKey.export({ format: "jwk" }))
                                            : privateKey.export({ format: "pem", type: "pkcs8" });
                const key = await wire.importHolderKey(text);
                const t = await wire.transcript("hub1", new Uint8Array(32), new Uint8Array(32).fill(9), "x.y.z", "ws-none");
                // several signatures: ECDSA in WebCrypto is randomised, about half come out high-S
                for (let i = 0; i < 8; i++) {
                        const p = await wire.proof(key, t);
                        assert.match(p, /^[A-Za-z0-9_-]{86}$/);
                        const sig = Buffer.from(p, "base64url");
                        assert.ok(big(sig.subarray(32)) <= N / 2n, "low-S");
                        assert.ok(verify("sha256", t, { key: publicKey, dsaEncoding: "ieee-p1363" }, sig));
                }
        });
}

test("importHolderKey refuses what it cannot use", async () => {
        const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
        await assert.rejects(wire.importHolderKey(JSON.stringify(publicKey.export({ format: "jwk" }))), /no private part/);
        await assert.rejects(wire.importHolderKey(privateKey.export({ format: "pem", type: "sec1" })), /SEC1/);
        await assert.rejects(wire.importHolderKey("hello"), /neither a JWK nor/);
        const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey;
        await assert.rejects(wire.importHolderKey(JSON.stringify(p384.export({ format: "jwk" }))), /P-256/);
});

// A fake WebSocket: what the session sends is kept, what the test pushes is received.
class FakeWs {
        constructor() {
                this.sent = [];
                this.closedWith = null;
        }
        send(b) {
                this.sent.push(wire.decode(b));
        }
        close(code, reason) {
                this.closedWith = { code, reason };
        }
        push(bytes) {
                this.onmessage({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
        }
}

test("session: sign-in sends the doc's AUTH and a proof that verifies", async () => {
        const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
        const ws = new FakeWs();
        const s = new wire.Session(ws);
        const nb = Buffer.alloc(32, 0xab);
        ws.push(frame({ type: 1, body: JSON.stringify({ protocol: "HYBRID", version: 1, nonce: nb.toString("hex"),
                                                         maxBody: 65536, host: "localhost", audience: "hub1",
                                                         tokens: "accept" }) }));
        const key = await wire.importHolderKey(privateKey.export({ format: "pem", type: "pkcs8" }));
        const done = s.signIn({ app: "org.hybridos.cli", runner: "console_1", token: "t.o.k", key, binding: "ws-none" });
        while (ws.sent.length === 0) await new Promise((r) => setTimeout(r, 5));
        const auth = ws.sent[0];
        assert.equal(auth.type, wire.TYPE.AUTH);
        const a = JSON.parse(wire.bodyText(auth));
        assert.equal(a.protocol, "HYBRID");
        assert.equal(a.version, 1);
        assert.equal(a.app, "org.hybridos.cli");
        assert.equal(a.token, "t.o.k");
        assert.match(a.nonce, /^[0-9a-f]{64}$/);
        const u16 = (n) => Buffer.from([n >> 8, n & 255]);
        const t = createHash("sha256").update(Buffer.concat([
                Buffer.from("HYBRID-TOKEN-PROOF-1\0"), u16(4), Buffer.from("hub1"), nb, Buffer.from(a.nonce, "hex"),
                createHash("sha256").update("t.o.k").digest(), u16(7), Buffer.from("ws-none")])).digest();
        assert.ok(verify("sha256", t, { key: publicKey, dsaEncoding: "ieee-p1363" }, Buffer.from(a.proof, "base64url")));
        ws.push(frame({ type: 3, status: 200, body: '{"endpoint":"@localhost/org.hybridos.cli/console_1","maxBody":65536}' }));
        assert.equal((await done).endpoint, "@localhost/org.hybridos.cli/console_1");

        // a call and its RESULT, a PING answered with a PONG, an EVENT dispatched
        const events = [];
        s.onEvent = (p) => events.push(p);
        const call = s.call(wire.BUILTIN, "echo", '{"a":1}');
        const c = ws.sent[1];
        assert.equal(c.type, wire.TYPE.CALL);
        assert.equal(c.member, "echo");
        ws.push(frame({ type: 5, status: 200, callId: c.callId, from: wire.BUILTIN, body: '{"a":1}' }));
        assert.equal(wire.bodyText(await call), '{"a":1}');
        ws.push(frame({ type: 8 }));
        assert.equal(ws.sent[2].type, wire.TYPE.PONG);
        ws.push(frame({ type: 7, flags: 1, status: 200, callId: 1n, from: wire.BUILTIN, member: "store", body: "/a\n1" }));
        assert.equal(events.length, 1);

        // a malformed message ends the connection with 1002 and fails what is pending
        const lost = s.call(wire.BUILTIN, "echo", "{}");
        ws.push(frame({ type: 5, flags: 8 }));
        assert.equal(ws.closedWith.code, 1002);
        await assert.rejects(lost);
});

test("session: a refused sign-in rejects with the status", async () => {
        const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
        const ws = new FakeWs();
        const s = new wire.Session(ws);
        ws.push(frame({ type: 1, body: JSON.stringify({ nonce: "00".repeat(32), audience: "hub1", tokens: "accept" }) }));
        const key = await wire.importHolderKey(JSON.stringify(privateKey.export({ format: "jwk" })));
        const done = s.signIn({ app: "org.hybridos.cli", runner: "c", token: "t", key, binding: "ws-none" });
        while (ws.sent.length === 0) await new Promise((r) => setTimeout(r, 5));
        ws.push(frame({ type: 3, status: 401, member: "unauthorized" }));
        await assert.rejects(done, (e) => e.status === 401);
});

test("session: a daemon without tokens is refused before AUTH", async () => {
        const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
        const ws = new FakeWs();
        const s = new wire.Session(ws);
        ws.push(frame({ type: 1, body: JSON.stringify({ nonce: "00".repeat(32) }) }));
        const key = await wire.importHolderKey(JSON.stringify(privateKey.export({ format: "jwk" })));
        await assert.rejects(s.signIn({ app: "a", runner: "b", token: "t", key, binding: "ws-none" }), /no tokens/);
        assert.equal(ws.sent.length, 0);
});

test("session: a text message ends the connection", () => {
        const ws = new FakeWs();
        const s = new wire.Session(ws);
        s.challenge.catch(() => {});
        ws.onmessage({ data: "hello" });
        assert.equal(ws.closedWith.code, 1003);
        assert.ok(s.closed);
});

// The same frames from the C side: what lib/bus/wire.c builds, the codec reads; what the
// codec builds, wire_parse reads with the same fields.
const WIRE_FRAMES = process.env.HYB_WIRE_FRAMES;

test("frames of the C wire code decode, and encode back to the same bytes", { skip: !WIRE_FRAMES }, async () => {
        const { execFileSync } = await import("node:child_process");
        const out = execFileSync(WIRE_FRAMES, ["emit"], { encoding: "utf8" }).trim().split("\n");
        const frames = Object.fromEntries(out.map((l) => l.split(" ")).map(([n, h]) => [n, Buffer.from(h, "hex")]));
        assert.deepEqual(Object.keys(frames).sort(), ["call", "challenge", "event", "result"]);
        const ch = wire.decode(frames.challenge);
        assert.equal(ch.type, wire.TYPE.CHALLENGE);
        assert.equal(wire.bodyText(ch), '{"protocol":"HYBRID","version":1}');
        const call = wire.decode(frames.call);
        assert.equal(call.type, wire.TYPE.CALL);
        assert.equal(call.callId, 0x1122334455667788n);
        assert.equal(call.timeout, 5000);
        assert.equal(call.to, "@localhost/org.example.thermo/main");
        assert.equal(call.member, "setTarget");
        assert.equal(wire.bodyText(call), '{"celsius":22}');
        const res = wire.decode(frames.result);
        assert.equal(res.status, 403);
        assert.equal(res.callId, 9n);
        assert.equal(res.from, wire.BUILTIN);
        assert.equal(res.member, "forbidden");
        const ev = wire.decode(frames.event);
        assert.equal(ev.flags, wire.F_BINARY);
        assert.equal(ev.status, 202);
        assert.deepEqual([...ev.body], [0, 1, 2, 255]);
        for (const [name, bytes] of Object.entries(frames))
                assert.deepEqual(Buffer.from(wire.encode(wire.decode(bytes))), bytes, name);
});

test("frames of the codec parse with the C wire code", { skip: !WIRE_FRAMES }, async () => {
        const { execFileSync } = await import("node:child_process");
        const parse = (bytes) => JSON.parse(execFileSync(WIRE_FRAMES, ["parse", Buffer.from(bytes).toString("hex")],
                                                         { encoding: "utf8" }));
        const p = parse(wire.encode({ type: wire.TYPE.CALL, callId: 0xfedcba9876543210n, timeout: 3600000,
                                      to: wire.BUILTIN, member: "storeSubscribe", flags: wire.F_BINARY,
                                      body: "1 1 /public/#" }));
        assert.deepEqual(p, { type: 4, flags: 1, status: 0, callId: "18364758544493064720", timeout: 3600000, from: "",
                              to: wire.BUILTIN, member: "storeSubscribe", aux: 0, bodyLen: 13 });
        const q = parse(wire.encode({ type: wire.TYPE.AUTH, body: '{"protocol":"HYBRID","version":1}' }));
        assert.equal(q.type, 2);
        assert.equal(q.bodyLen, 33);
        // and the C side refuses what the codec refuses: flags bit 2
        const bad = wire.encode({ type: wire.TYPE.PONG });
        bad[5] = 4;
        assert.throws(() => parse(bad));
        assert.throws(() => wire.decode(bad), wire.WireError);
});
