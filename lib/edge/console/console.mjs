// SPDX-License-Identifier: MIT
// The browser console (doc/console.md): one bus session over WebSocket at /bus/ws, signed in
// with a token and its holder's key (WebCrypto), showing endpoints, procedures with forms
// built from their argument policies, the store with live updates, events and the log.
// Everything peer-controlled is shown with textContent (never parsed as HTML) and every
// list on the page is bounded.
import * as wire from "./wire.mjs";

const MAX_ROWS = 2000; // store rows shown
const MAX_LINES = 500; // event and log lines kept
const MAX_PAGES = 50; // pages of a builtin list followed
const APP = "org.hybridos.cli"; // every token may connect under it (doc/token.md)

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
        const e = document.createElement(tag);
        for (const [k, v] of Object.entries(props)) {
                if (k === "text") e.textContent = v;
                else if (k === "dataset") Object.assign(e.dataset, v);
                else e.setAttribute(k, v);
        }
        for (const k of kids) e.append(k);
        return e;
};

const secure = location.protocol === "https:";
const url = (secure ? "wss://" : "ws://") + location.host + "/bus/ws";
let probe = null; // the session opened at load, until sign-in
let session = null; // the signed-in session
let nextSub = 1; // store subscription ids of this session
let storeSub = 0, logSub = 0;
let eventsSub = null;

function status(state, text) {
        const s = $("status");
        s.dataset.state = state;
        s.textContent = text;
}

function msg(id, text, info = false) {
        const m = $(id);
        m.textContent = text;
        m.classList.toggle("info", info);
}

function open() {
        const ws = new WebSocket(url, wire.SUBPROTOCOL);
        return new wire.Session(ws);
}

// -------------------------------------------------------------- first contact

function start() {
        if (secure) {
                $("signin-button").disabled = true;
                msg("signin-msg", "Sign-in needs the daemon's plain http listener (listen.http, on " +
                    "a loopback address): a wss:// session is bound to its TLS connection, whose " +
                    "exporter a browser cannot read. Open the console at http://127.0.0.1:<port>/ " +
                    "(for a remote device, through an SSH tunnel).");
        } else if (!globalThis.crypto || !crypto.subtle) {
                $("signin-button").disabled = true;
                msg("signin-msg", "WebCrypto is not available on this page: open the console from " +
                    "a loopback address (http://127.0.0.1:<port>/ or http://localhost:<port>/).");
        }
        probe = open();
        probe.onClose = () => {
                // the daemon ends an idle handshake after its auth timeout: sign-in opens a new one
                if (document.body.dataset.console === "ready" && !session)
                        status("ready", "the daemon answered; sign in to open a session");
        };
        probe.challenge.then((c) => {
                // the daemon's first answer: the console is ready (the fixed marker)
                document.body.dataset.console = "ready";
                status("ready", "connected to " + (c.host || "hybridd") +
                       (c.audience ? " (tokens: " + c.tokens + ")" : " (no tokens)"));
                if (!c.audience && !secure)
                        msg("signin-msg", "This daemon takes no tokens (auth.tokens is off): the console " +
                            "cannot sign in.");
        }).catch((e) => {
                // A browser does not show why an upgrade was refused: name the usual causes.
                status("error", "cannot reach " + url + ": " + e.message);
                msg("signin-msg", "The daemon did not open a bus session at " + url + ". It refuses " +
                    "the WebSocket when it takes no tokens (auth.tokens off), on a non-loopback " +
                    "listen.http (edge.ws_plain_remote), or at its connection limits; its log says which.");
        });
}

// -------------------------------------------------------------- sign-in

async function signIn(ev) {
        ev.preventDefault();
        const button = $("signin-button");
        if (button.disabled) return;
        button.disabled = true; // one sign-in at a time
        try {
                await signInOnce();
        } finally {
                button.disabled = secure;
        }
}

async function signInOnce() {
        msg("signin-msg", "");
        const token = $("token").value.trim();
        let key;
        try {
                key = await wire.importHolderKey($("key").value);
        } catch (e) {
                msg("signin-msg", "The key: " + e.message);
                return;
        }
        if (probe) {
                probe.close();
                probe = null;
        }
        const runner = "console_" + wire.bytesToHex(crypto.getRandomValues(new Uint8Array(4)));
        const s = open();
        s.onEvent = onEvent;
        s.onClose = (c) => {
                if (s !== session) return;
                session = null;
                status("error", "disconnected: " + c.reason);
                showSignIn(true);
                msg("signin-msg", "The session ended: " + c.reason);
        };
        try {
                const r = await s.signIn({ app: APP, runner, token, key, binding: "ws-none" });
                resetPanels();
                session = s;
                $("key").value = "";
                $("token").value = "";
                status("signed-in", "signed in as " + r.endpoint);
                showSignIn(false);
                document.body.dataset.session = "signed-in";
                refreshEndpoints();
                watchStore($("store-pattern").value);
                tailLog();
        } catch (e) {
                s.close();
                msg("signin-msg", e.status === 401 ? "401: the daemon refused the token or the key " +
                    "(its log says why)" : "Sign-in failed: " + e.message);
        }
}

// Forgets everything the previous session showed and the subscriptions it held.
function resetPanels() {
        storeSub = logSub = 0;
        eventsSub = null;
        nextSub = 1;
        clearRows();
        for (const id of ["endpoints", "events", "log"]) $(id).replaceChildren();
        for (const id of ["endpoints-msg", "store-msg", "events-msg", "log-msg"]) msg(id, "");
        const pre = $("call-result");
        pre.textContent = "";
        delete pre.dataset.status;
        delete pre.dataset.ok;
}

function showSignIn(on) {
        $("signin-panel").hidden = !on;
        $("main").hidden = on;
        $("signout").hidden = on;
        if (on) delete document.body.dataset.session;
}

function signOut() {
        const s = session;
        session = null;
        if (s) s.close();
        resetPanels();
        status("ready", "signed out");
        showSignIn(true);
}

// -------------------------------------------------------------- calls

async function call(to, method, body, opts) {
        if (!session) throw new Error("not signed in");
        return session.call(to, method, body, opts);
}

function showResult(pre, p) {
        const text = wire.bodyText(p);
        pre.dataset.status = String(p.status);
        pre.dataset.ok = String(p.status >= 200 && p.status < 300);
        pre.textContent = p.status + (p.member ? " " + p.member : "") + (text ? "\n" + text : "");
}

function showError(pre, e) {
        pre.dataset.status = "";
        pre.dataset.ok = "false";
        pre.textContent = e.message;
}

// A builtin list, page by page (doc/protocol.md "List pages").
async function listAll(method, params = {}) {
        const items = [];
        let cursor;
        for (let i = 0; i < MAX_PAGES; i++) {
                const q = Object.assign({}, params, { limit: 100 });
                if (cursor) q.cursor = cursor;
                const p = await call(wire.BUILTIN, method, JSON.stringify(q));
                if (p.status !== 200) throw new Error(method + ": " + p.status + " " + p.member);
                const j = JSON.parse(wire.bodyText(p));
                items.push(...(j.items || []));
                if (!j.next) break;
                cursor = j.next;
        }
        return items;
}

// "@localhost/app/runner/name" -> ["@localhost/app/runner", "name"]
function splitName(full) {
        const i = full.lastIndexOf("/");
        return [full.slice(0, i), full.slice(i + 1)];
}

async function refreshEndpoints() {
        msg("endpoints-msg", "");
        let eps, procs, evs;
        try {
                [eps, procs, evs] = await Promise.all([listAll("listEndpoints"), listAll("listProcedures"),
                                                       listAll("listEvents")]);
        } catch (e) {
                msg("endpoints-msg", e.message);
                return;
        }
        const by = new Map();
        const get = (name) => {
                if (!by.has(name)) by.set(name, { procs: [], events: [] });
                return by.get(name);
        };
        for (const e of eps) get(e.endpointName);
        for (const p of procs) {
                const [ep, m] = splitName(p.procedureName);
                get(ep).procs.push(Object.assign({ method: m }, p));
        }
        for (const v of evs) {
                const [ep, b] = splitName(v.eventName);
                get(ep).events.push(Object.assign({ bubble: b }, v));
        }
        const root = $("endpoints");
        root.replaceChildren();
        for (const [name, e] of by) {
                const div = el("div", { class: "endpoint", dataset: { endpoint: name } }, el("h3", { text: name }));
                for (const p of e.procs) div.append(procedureForm(name, p));
                for (const v of e.events) {
                        const b = el("button", { type: "button", text: "watch" });
                        b.addEventListener("click", () => {
                                $("events-endpoint").value = name;
                                $("events-bubble").value = v.bubble;
                                watchEvents();
                        });
                        div.append(el("div", { class: "event", text: "event " + v.bubble + "  forHost=" +
                                               v.forHost + " forApp=" + v.forApp + " " }, b));
                }
                if (!e.procs.length && !e.events.length)
                        div.append(el("div", { class: "event", text: "nothing this token may call or watch here" }));
                root.append(div);
        }
        if (!by.size) msg("endpoints-msg", "nothing this token may call or watch", true);
}

function policyText(policy) {
        if (!Array.isArray(policy) || !policy.length) return "no arguments";
        return "args(" + policy.map((a) => a.key + (a.required ? "" : "?") + ":" + a.type).join(", ") + ")";
}

// A form for one procedure, with one input per key of its argument policy.
function procedureForm(endpoint, p) {
        const policy = Array.isArray(p.policy) ? p.policy : [];
        const form = el("form", { class: "call", autocomplete: "off" });
        for (const a of policy) {
                const name = a.key + (a.required ? " *" : "");
                let input;
                switch (a.type) {
                case "string":
                        input = el("input", { type: "text", spellcheck: "false" });
                        break;
                case "integer":
                        input = el("input", { type: "number", step: "1" });
                        break;
                case "number":
                        input = el("input", { type: "number", step: "any" });
                        break;
                case "boolean":
                        input = el("select", {}, el("option", { value: "", text: "" }),
                                   el("option", { value: "true", text: "true" }),
                                   el("option", { value: "false", text: "false" }));
                        break;
                default: // object, array, null, any: JSON text
                        input = el("input", { type: "text", spellcheck: "false", placeholder: a.type + " (JSON)" });
                        break;
                }
                input.dataset.key = a.key;
                input.dataset.type = a.type;
                form.append(el("label", { text: name + " " }, input));
        }
        form.append(el("button", { type: "submit", text: "Call" }));
        const pre = el("pre", { class: "result" });
        form.addEventListener("submit", async (ev) => {
                ev.preventDefault();
                let params;
                try {
                        params = formParams(form);
                } catch (e) {
                        return showError(pre, e);
                }
                try {
                        showResult(pre, await call(endpoint, p.method, JSON.stringify(params)));
                } catch (e) {
                        showError(pre, e);
                }
        });
        return el("div", { class: "procedure", dataset: { procedure: endpoint + "/" + p.method } },
                  el("div", { class: "policy", text: "procedure " + p.method + "  forHost=" + p.forHost +
                              " forApp=" + p.forApp + "  " + policyText(policy) }), form, pre);
}

// The params object of a procedure form; an empty field is left out (the policy decides).
function formParams(form) {
        const params = {};
        for (const input of form.querySelectorAll("[data-key]")) {
                const v = input.value;
                if (v === "") continue;
                const k = input.dataset.key;
                switch (input.dataset.type) {
                case "string":
                        params[k] = v;
                        break;
                case "integer":
                case "number":
                case "boolean":
                        params[k] = JSON.parse(v);
                        break;
                default:
                        try {
                                params[k] = JSON.parse(v);
                        } catch (e) {
                                throw new Error(k + ": not JSON: " + e.message);
                        }
                }
        }
        return params;
}

async function freeCall(ev) {
        ev.preventDefault();
        const pre = $("call-result");
        let params;
        try {
                params = JSON.stringify(JSON.parse($("call-params").value || "{}"));
        } catch (e) {
                return showError(pre, new Error("params: not JSON: " + e.message));
        }
        try {
                showResult(pre, await call($("call-endpoint").value.trim(), $("call-method").value.trim(), params));
        } catch (e) {
                showError(pre, e);
        }
}

// -------------------------------------------------------------- store, log, events

// Does fURI f match the pattern p (`+` one segment, `#` the rest)?
function furiMatch(p, f) {
        const ps = p.split("/"), fs = f.split("/");
        for (let i = 0; i < ps.length; i++) {
                if (ps[i] === "#") return true;
                if (i >= fs.length || (ps[i] !== "+" && ps[i] !== fs[i])) return false;
        }
        return ps.length === fs.length;
}

async function storeCall(method, body) {
        return call(wire.BUILTIN, method, body, { binary: true });
}

async function watchStore(pattern) {
        msg("store-msg", "");
        if (storeSub) {
                storeCall("storeUnsubscribe", String(storeSub)).catch(() => {});
                storeSub = 0;
        }
        clearRows();
        const id = nextSub++;
        storeSub = id;
        // flags 1: the retained matches first, then every write as it happens
        const p = await storeCall("storeSubscribe", id + " 1 " + pattern).catch((e) => ({ status: 0, member: e.message, body: new Uint8Array() }));
        if (p.status !== 200) {
                if (storeSub === id) storeSub = 0;
                msg("store-msg", p.status + " " + p.member);
                return;
        }
        msg("store-msg", "watching " + pattern, true);
}

// The store rows by fURI, kept in key order in the table.
const rowsByFuri = new Map();

function clearRows() {
        rowsByFuri.clear();
        $("store-rows").replaceChildren();
}

function storeMessage(p) {
        const text = wire.bodyText(p);
        const nl = text.indexOf("\n");
        const furi = nl < 0 ? text : text.slice(0, nl);
        const value = nl < 0 ? "" : text.slice(nl + 1);
        const rows = $("store-rows");
        if (value === "noobj") {
                const hit = /[+#]/.test(furi) || furi.endsWith("/")
                        ? Array.from(rowsByFuri.keys()).filter((f) => furiMatch(furi.endsWith("/") ? furi + "#" : furi, f))
                        : [furi];
                for (const f of hit) {
                        const tr = rowsByFuri.get(f);
                        if (tr) tr.remove();
                        rowsByFuri.delete(f);
                }
                return;
        }
        let tr = rowsByFuri.get(furi);
        if (!tr) {
                if (rowsByFuri.size >= MAX_ROWS) {
                        msg("store-msg", "showing the first " + MAX_ROWS + " fURIs: watch a narrower pattern");
                        return;
                }
                tr = el("tr", { dataset: { furi } }, el("td", { text: furi }), el("td", { class: "value" }));
                // binary search for the first row whose fURI sorts after this one
                const kids = rows.children;
                let lo = 0, hi = kids.length;
                while (lo < hi) {
                        const mid = (lo + hi) >> 1;
                        if (kids[mid].dataset.furi > furi) hi = mid;
                        else lo = mid + 1;
                }
                rows.insertBefore(tr, kids[lo] || null);
                rowsByFuri.set(furi, tr);
        }
        tr.lastChild.textContent = value + (p.status === 202 ? "  (published)" : "");
        tr.dataset.value = value;
}

function addLine(list, text) {
        const ol = $(list);
        ol.append(el("li", { text }));
        while (ol.children.length > MAX_LINES) ol.firstChild.remove();
        ol.scrollTop = ol.scrollHeight;
}

async function tailLog() {
        msg("log-msg", "");
        const id = nextSub++;
        logSub = id;
        const p = await storeCall("storeSubscribe", id + " 0 /log/#").catch((e) => ({ status: 0, member: e.message }));
        if (p.status !== 200) {
                logSub = 0;
                msg("log-msg", p.status + " " + p.member);
        } else {
                msg("log-msg", "tailing /log/#", true);
        }
}

async function watchEvents(ev) {
        if (ev) ev.preventDefault();
        const sub = { endpointName: $("events-endpoint").value.trim(), bubbleName: $("events-bubble").value.trim() };
        if (eventsSub) {
                call(wire.BUILTIN, "unsubscribeEvent", JSON.stringify(eventsSub)).catch(() => {});
                eventsSub = null;
        }
        try {
                const p = await call(wire.BUILTIN, "subscribeEvent", JSON.stringify(sub));
                if (p.status !== 200) {
                        msg("events-msg", p.status + " " + p.member);
                        return;
                }
                eventsSub = sub;
                msg("events-msg", "watching " + sub.endpointName + " " + sub.bubbleName, true);
        } catch (e) {
                msg("events-msg", e.message);
        }
}

function onEvent(p) {
        if (p.from === wire.BUILTIN && p.member === "store" && (p.flags & wire.F_BINARY)) {
                const id = Number(p.callId);
                if (id === storeSub) storeMessage(p);
                else if (id === logSub) {
                        const t = wire.bodyText(p);
                        addLine("log", t.replace("\n", "  "));
                }
                return;
        }
        const body = p.flags & wire.F_BINARY ? "0x" + wire.bytesToHex(p.body.subarray(0, 128)) : wire.bodyText(p);
        addLine("events", new Date().toISOString().slice(11, 23) + "  " + p.from + "  " + p.member + "  " + body);
}

// -------------------------------------------------------------- wiring

$("signin").addEventListener("submit", signIn);
$("signout").addEventListener("click", signOut);
$("refresh").addEventListener("click", refreshEndpoints);
$("call-form").addEventListener("submit", freeCall);
function browse(pattern) {
        $("store-pattern").value = pattern;
        watchStore(pattern);
}
$("store-form").addEventListener("submit", (ev) => {
        ev.preventDefault();
        watchStore($("store-pattern").value.trim());
});
$("events-form").addEventListener("submit", watchEvents);
// The tree: a click on a fURI browses its branch, Up the branch above the pattern's.
$("store-rows").addEventListener("click", (ev) => {
        const td = ev.target.closest("td");
        if (!td || td !== td.parentElement.firstElementChild) return;
        const f = td.parentElement.dataset.furi;
        browse(f.slice(0, f.lastIndexOf("/") + 1) + "#");
});
$("store-up").addEventListener("click", () => {
        const segs = $("store-pattern").value.trim().split("/").filter((x) => x !== "");
        while (segs.length && (segs[segs.length - 1] === "#" || segs[segs.length - 1] === "+")) segs.pop();
        segs.pop();
        browse("/" + segs.concat("#").join("/"));
});
start();
