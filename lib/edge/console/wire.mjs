// SPDX-License-Identifier: MIT
// The hybrid bus packet codec and the token handshake, in plain JavaScript (doc/protocol.md
// "Frame" and "Handshake", doc/token.md "Handshake").  Used by the browser console
// (console.mjs) and tested by tests/console/wire.test.mjs under `node --test`.
//
// One packet is one frame: a 32-byte little-endian header, the names from, to and member,
// then the body.  Over WebSocket every binary message holds exactly one frame.

export const TYPE = Object.freeze({
        CHALLENGE: 1, AUTH: 2, AUTH_RESULT: 3, CALL: 4, RESULT: 5, CANCEL: 6, EVENT: 7,
        PING: 8, PONG: 9, ERROR: 10, MONITOR: 11,
});
export const F_BINARY = 1;
export const F_COUNTS = 2;
export const HDR_SIZE = 32;
export const ENDPOINT_MAX = 384;
export const MEMBER_MAX = 4096;
export const TIMEOUT_MAX = 3600000;
export const BUILTIN = "@localhost/org.hybridos.bus/builtin";
export const SUBPROTOCOL = "hybrid.bus.v1";
export const PROOF_LABEL = "HYBRID-TOKEN-PROOF-1";

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8");

/** A malformed packet; code is the WebSocket close code it deserves (RFC 6455). */
export class WireError extends Error {
        constructor(message, code = 1002) {
                super(message);
                this.name = "WireError";
                this.code = code;
        }
}

function bytesOf(v) {
        if (v === undefined || v === null) return new Uint8Array(0);
        if (typeof v === "string") return utf8.encode(v);
        if (v instanceof Uint8Array) return v;
        if (v instanceof ArrayBuffer) return new Uint8Array(v);
        if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
        throw new TypeError("a body is a string or bytes");
}

/**
 * Encodes one packet: {type, flags, status, callId, timeout, from, to, member, body, aux}.
 * Names and string bodies are UTF-8.  Throws WireError for what the broker would refuse.
 */
export function encode(p) {
        const from = bytesOf(p.from ?? ""), to = bytesOf(p.to ?? ""), member = bytesOf(p.member ?? "");
        const body = bytesOf(p.body);
        const type = p.type, flags = p.flags ?? 0, status = p.status ?? 0;
        const timeout = p.timeout ?? 0, aux = p.aux ?? 0;
        const callId = BigInt(p.callId ?? 0);

        if (!Number.isInteger(type) || type < 1 || type > 11) throw new WireError("bad packet type " + type);
        if ((flags & ~3) !== 0) throw new WireError("bad flags " + flags);
        if (status !== 0 && (status < 100 || status > 599)) throw new WireError("bad status " + status);
        if (timeout < 0 || timeout > TIMEOUT_MAX) throw new WireError("bad timeout " + timeout);
        if (callId < 0n || callId > 0xffffffffffffffffn) throw new WireError("bad call id");
        if (from.length > ENDPOINT_MAX || to.length > ENDPOINT_MAX) throw new WireError("endpoint name too long");
        if (member.length > MEMBER_MAX) throw new WireError("member too long");
        const out = new Uint8Array(HDR_SIZE + from.length + to.length + member.length + body.length);
        const dv = new DataView(out.buffer);
        dv.setUint32(0, body.length, true);
        dv.setUint8(4, type);
        dv.setUint8(5, flags);
        dv.setUint16(6, status, true);
        dv.setBigUint64(8, callId, true);
        dv.setUint32(16, timeout, true);
        dv.setUint16(20, from.length, true);
        dv.setUint16(22, to.length, true);
        dv.setUint16(24, member.length, true);
        dv.setUint16(26, 0, true); // info len: only the broker states a caller info
        dv.setUint32(28, aux >>> 0, true);
        let o = HDR_SIZE;
        for (const part of [from, to, member, body]) {
                out.set(part, o);
                o += part.length;
        }
        return out;
}

/**
 * Decodes one WebSocket message that must hold exactly one packet.  Returns
 * {type, flags, status, callId (BigInt), timeout, from, to, member, info, aux, body (bytes)}
 * where info is null or {transport, principal} (a CALL's caller info, taken off `from`).
 * Throws WireError: code 1002 for a malformed packet, 1009 for a body over maxBody.
 */
export function decode(msg, maxBody = 16 * 1024 * 1024) {
        const b = bytesOf(msg);
        if (b.length < HDR_SIZE) throw new WireError("short packet: " + b.length + " bytes");
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const h = {
                bodyLen: dv.getUint32(0, true),
                type: dv.getUint8(4),
                flags: dv.getUint8(5),
                status: dv.getUint16(6, true),
                callId: dv.getBigUint64(8, true),
                timeout: dv.getUint32(16, true),
                fromLen: dv.getUint16(20, true),
                toLen: dv.getUint16(22, true),
                memberLen: dv.getUint16(24, true),
                infoLen: dv.getUint16(26, true),
                aux: dv.getUint32(28, true),
        };
        if (h.type < 1 || h.type > 11) throw new WireError("unknown packet type " + h.type);
        if ((h.flags & ~3) !== 0) throw new WireError("reserved flag bits set");
        if (h.status !== 0 && (h.status < 100 || h.status > 599)) throw new WireError("bad status " + h.status);
        if (h.timeout > TIMEOUT_MAX) throw new WireError("bad timeout " + h.timeout);
        if (h.fromLen > ENDPOINT_MAX || h.toLen > ENDPOINT_MAX || h.memberLen > MEMBER_MAX)
                throw new WireError("name too long");
        if (h.infoLen > h.fromLen || (h.infoLen !== 0 && h.type !== TYPE.CALL))
                throw new WireError("bad caller info length");
        if (h.bodyLen > maxBody) throw new WireError("body over " + maxBody + " bytes", 1009);
        const total = HDR_SIZE + h.fromLen + h.toLen + h.memberLen + h.bodyLen;
        if (b.length !== total)
                throw new WireError("message of " + b.length + " bytes holds a packet of " + total);
        let o = HDR_SIZE;
        const take = (n) => {
                const s = b.subarray(o, o + n);
                o += n;
                return s;
        };
        const fromBytes = take(h.fromLen);
        const to = fromUtf8.decode(take(h.toLen));
        const member = fromUtf8.decode(take(h.memberLen));
        const body = b.slice(o, o + h.bodyLen);
        const nameLen = h.fromLen - h.infoLen;
        let info = null;
        if (h.infoLen) {
                const raw = fromUtf8.decode(fromBytes.subarray(nameLen));
                const nul = raw.indexOf("\0");
                if (nul < 0) throw new WireError("caller info without its NUL");
                info = { transport: raw.slice(0, nul), principal: raw.slice(nul + 1) };
        }
        return {
                type: h.type, flags: h.flags, status: h.status, callId: h.callId, timeout: h.timeout,
                from: fromUtf8.decode(fromBytes.subarray(0, nameLen)), to, member, info, aux: h.aux, body,
        };
}

/** The body as text (JSON and store bodies are UTF-8). */
export function bodyText(p) {
        return fromUtf8.decode(p.body);
}

// ------------------------------------------------------------------ encodings

export function hexToBytes(hex) {
        if (typeof hex !== "string" || hex.length % 2 || !/^[0-9a-fA-F]*$/.test(hex))
                throw new Error("not hex");
        const out = new Uint8Array(hex.length / 2);
        for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
        return out;
}

export function bytesToHex(b) {
        return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** base64url without padding (RFC 4648 section 5). */
export function b64uEncode(b) {
        const alpha = B64 + "0123456789-_";
        let s = "";
        let i = 0;
        for (; i + 2 < b.length; i += 3) {
                const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
                s += alpha[n >> 18] + alpha[(n >> 12) & 63] + alpha[(n >> 6) & 63] + alpha[n & 63];
        }
        if (b.length - i === 1) {
                const n = b[i] << 16;
                s += alpha[n >> 18] + alpha[(n >> 12) & 63];
        } else if (b.length - i === 2) {
                const n = (b[i] << 16) | (b[i + 1] << 8);
                s += alpha[n >> 18] + alpha[(n >> 12) & 63] + alpha[(n >> 6) & 63];
        }
        return s;
}

/** Standard base64 (PEM bodies); whitespace ignored. */
export function b64Decode(text) {
        const alpha = B64 + "0123456789+/";
        const s = text.replace(/\s+/g, "").replace(/=+$/, "");
        if (!/^[A-Za-z0-9+/]*$/.test(s) || s.length % 4 === 1) throw new Error("not base64");
        const out = new Uint8Array(Math.floor((s.length * 3) / 4));
        let bits = 0, acc = 0, o = 0;
        for (const c of s) {
                acc = (acc << 6) | alpha.indexOf(c);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (acc >> bits) & 0xff;
                }
        }
        return out;
}

// ------------------------------------------------------------------ handshake

// The order n of the P-256 group: a signature (r, s) is sent with s <= n/2 (doc/token.md).
export const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function bigOf(b) {
        return BigInt("0x" + (bytesToHex(b) || "0"));
}

function bytesOfBig(v, len) {
        return hexToBytes(v.toString(16).padStart(len * 2, "0"));
}

/** The 64-byte r||s signature with s replaced by n - s when s > n/2. */
export function lowS(sig) {
        if (sig.length !== 64) throw new Error("an ES256 signature is 64 bytes");
        const s = bigOf(sig.subarray(32));
        if (s <= P256_N / 2n) return Uint8Array.from(sig);
        const out = Uint8Array.from(sig);
        out.set(bytesOfBig(P256_N - s, 32), 32);
        return out;
}

function subtle() {
        const s = globalThis.crypto && globalThis.crypto.subtle;
        if (!s) throw new Error("WebCrypto is not available here (a secure context is needed)");
        return s;
}

function u16be(n) {
        if (n > 0xffff) throw new Error("field too long");
        return Uint8Array.of(n >> 8, n & 0xff);
}

function concat(parts) {
        const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let o = 0;
        for (const p of parts) {
                out.set(p, o);
                o += p.length;
        }
        return out;
}

/**
 * The transcript hash T of doc/token.md "Handshake":
 * SHA-256(label NUL, u16be(len A) A, Nb, Nc, SHA-256(token), u16be(len B) B).
 */
export async function transcript(audience, brokerNonce, clientNonce, token, binding) {
        const a = utf8.encode(audience), bnd = utf8.encode(binding);
        if (brokerNonce.length !== 32 || clientNonce.length !== 32) throw new Error("a nonce is 32 bytes");
        const th = new Uint8Array(await subtle().digest("SHA-256", utf8.encode(token)));
        const t = concat([utf8.encode(PROOF_LABEL), Uint8Array.of(0), u16be(a.length), a, brokerNonce,
                          clientNonce, th, u16be(bnd.length), bnd]);
        return new Uint8Array(await subtle().digest("SHA-256", t));
}

/**
 * The holder's private key from a JWK ({"kty":"EC","crv":"P-256",...,"d"}) or a PKCS#8 PEM
 * (-----BEGIN PRIVATE KEY-----), as a non-extractable WebCrypto signing key.
 */
export async function importHolderKey(text) {
        const alg = { name: "ECDSA", namedCurve: "P-256" };
        const t = String(text).trim();
        if (t.startsWith("{")) {
                let j;
                try {
                        j = JSON.parse(t);
                } catch (e) {
                        throw new Error("the key is not valid JSON");
                }
                if (j.kty !== "EC" || j.crv !== "P-256") throw new Error("the key is not an EC P-256 JWK");
                if (typeof j.d !== "string") throw new Error("the JWK has no private part (d)");
                return subtle().importKey("jwk", { kty: "EC", crv: "P-256", x: j.x, y: j.y, d: j.d },
                                          alg, false, ["sign"]);
        }
        if (t.includes("-----BEGIN EC PRIVATE KEY-----"))
                throw new Error("a SEC1 key: convert it with `openssl pkey -in KEY -out KEY.p8` (PKCS#8)");
        const m = /-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END PRIVATE KEY-----/.exec(t);
        if (!m) throw new Error("the key is neither a JWK nor a PKCS#8 PEM private key");
        return subtle().importKey("pkcs8", b64Decode(m[1]), alg, false, ["sign"]);
}

/** The proof: base64url of the low-S ES256 signature of T by key. */
export async function proof(key, t) {
        const sig = new Uint8Array(await subtle().sign({ name: "ECDSA", hash: "SHA-256" }, key, t));
        return b64uEncode(lowS(sig));
}

/** A fresh 32-byte nonce. */
export function nonce() {
        const n = new Uint8Array(32);
        globalThis.crypto.getRandomValues(n);
        return n;
}

// ------------------------------------------------------------------ a session

/**
 * One bus connection over a WebSocket-like object ws (send(bytes), close(code, reason),
 * onmessage/onclose/onerror; binaryType "arraybuffer").  Dispatches RESULTs to the calls
 * waiting for them, EVENTs to onEvent(packet), answers PING, and remembers the first
 * CHALLENGE (challenge: a Promise of its JSON).
 */
export class Session {
        constructor(ws) {
                this.ws = ws;
                this.nextId = 1n;
                this.pending = new Map();
                this.maxBody = 16 * 1024 * 1024;
                this.closed = null;
                this.onEvent = null;
                this.onClose = null;
                this._auth = null;
                ws.binaryType = "arraybuffer";
                this.challenge = new Promise((resolve, reject) => {
                        this._challenge = { resolve, reject };
                });
                ws.onmessage = (ev) => this._receive(ev.data);
                ws.onclose = (ev) => this._closed(ev.code, (ev.reason || "connection closed") +
                                                  " (WebSocket close code " + ev.code + ")");
                ws.onerror = () => {};
        }

        _fail(code, why) {
                // A browser may only close with 1000 or 3000-4999: the RFC 6455 code where the
                // WebSocket object takes it, else a normal close with the reason.
                try {
                        this.ws.close(code, why.slice(0, 120));
                } catch (e) {
                        try {
                                this.ws.close(1000, why.slice(0, 120));
                        } catch (e2) {
                                /* already closing */
                        }
                }
                this._closed(code, why);
        }

        _closed(code, why) {
                if (this.closed) return;
                this.closed = { code, reason: why };
                const err = new Error(why);
                err.status = 502;
                this._challenge.reject(err);
                if (this._auth) this._auth.reject(err);
                for (const w of this.pending.values()) w.reject(err);
                this.pending.clear();
                if (this.onClose) this.onClose(this.closed);
        }

        _receive(data) {
                let p;
                if (typeof data === "string") return this._fail(1003, "a text message");
                try {
                        p = decode(data, this.maxBody);
                } catch (e) {
                        return this._fail(e.code || 1002, e.message);
                }
                switch (p.type) {
                case TYPE.CHALLENGE: {
                        let c;
                        try {
                                c = JSON.parse(bodyText(p));
                        } catch (e) {
                                return this._fail(1007, "a CHALLENGE that is not JSON");
                        }
                        if (c.maxBody) this.maxBody = c.maxBody;
                        this._challenge.resolve(c);
                        break;
                }
                case TYPE.AUTH_RESULT:
                        if (this._auth) this._auth.resolve(p);
                        this._auth = null;
                        break;
                case TYPE.RESULT: {
                        const w = this.pending.get(p.callId);
                        if (w) {
                                this.pending.delete(p.callId);
                                w.resolve(p);
                        }
                        break;
                }
                case TYPE.EVENT:
                        if (this.onEvent) this.onEvent(p);
                        break;
                case TYPE.PING:
                        this.send({ type: TYPE.PONG });
                        break;
                case TYPE.ERROR:
                        this._fail(1000, p.status + " " + p.member);
                        break;
                default:
                        break;
                }
        }

        send(p) {
                if (this.closed) throw new Error("the connection is closed");
                this.ws.send(encode(p));
        }

        /**
         * Signs in: AUTH as app/runner with token, proved by key (a CryptoKey) over the
         * channel binding.  Resolves to the AUTH_RESULT packet's JSON body; rejects with an
         * Error whose status is the AUTH_RESULT's.
         */
        async signIn({ app, runner, token, key, binding }) {
                const c = await this.challenge;
                if (!c.audience) throw Object.assign(new Error("the daemon takes no tokens"), { status: 401 });
                const nc = nonce();
                const t = await transcript(c.audience, hexToBytes(c.nonce), nc, token, binding);
                const body = JSON.stringify({ protocol: "HYBRID", version: 1, app, runner, token,
                                              nonce: bytesToHex(nc), proof: await proof(key, t) });
                const answer = new Promise((resolve, reject) => {
                        this._auth = { resolve, reject };
                });
                this.send({ type: TYPE.AUTH, body });
                const r = await answer;
                if (r.status !== 200)
                        throw Object.assign(new Error(r.status + " " + r.member), { status: r.status });
                const j = JSON.parse(bodyText(r));
                if (j.maxBody) this.maxBody = j.maxBody;
                return j;
        }

        /**
         * Calls method of endpoint `to` with body (a string: JSON; bytes with binary).
         * Resolves to the RESULT packet, whatever its status.
         */
        call(to, method, body, { binary = false, timeout = 30000 } = {}) {
                const id = this.nextId++;
                return new Promise((resolve, reject) => {
                        this.pending.set(id, { resolve, reject });
                        try {
                                this.send({ type: TYPE.CALL, flags: binary ? F_BINARY : 0, callId: id,
                                            timeout, to, member: method, body });
                        } catch (e) {
                                this.pending.delete(id);
                                reject(e);
                        }
                });
        }

        close() {
                this._fail(1000, "closed by the console");
        }
}
