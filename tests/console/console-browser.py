#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The browser console (doc/console.md) in headless Chromium, driven by chromedriver through
the W3C WebDriver HTTP protocol (urllib, no client library).

A real hybridd (listen.http on 127.0.0.1:0, tokens accepted), the sample thermostat on the
Unix socket (setTarget takes {"celsius": number}, required), a token that may call it and
one that may not.  The console is opened at /, signs in (a PKCS#8 PEM key, then a JWK key),
calls setTarget through the form built from its policy, shows a store write made by
`hybrid store put` in another process, live, shows TEMP events, shows a 403 for the call
the second token may not make and a refused sign-in for the wrong key.  Expected values
come from doc/console.md, doc/protocol.md and the sample service's documented answers.

    console-browser.py SCREENSHOT_DIR

Skips (77) only when chromium or chromedriver is absent.  Screenshots: SCREENSHOT_DIR.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
HYBRIDD = os.environ["HYBRIDD"]
HYBRID = os.environ["HYBRID"]
SERVICE = os.environ["HYB_SERVICE"]
LOGD = os.environ["HYB_LOGD"]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
THERMO = "@localhost/org.example.thermo/main"

failed = 0
procs = []


def say(ok, what, detail=""):
    global failed
    if not ok:
        failed += 1
    print(("ok - " if ok else "FAIL - ") + what, flush=True)
    if not ok and detail:
        for line in str(detail).splitlines()[:30]:
            print("    | " + line, flush=True)


def wait_for(fn, what, timeout=30.0):
    """Polls fn until it returns a true value (returned); None after timeout."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            return None
        time.sleep(0.05)


def start(name, argv, tmp):
    out = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    procs.append(p)
    return p


def log_of(tmp, name):
    try:
        with open(os.path.join(tmp, name + ".log")) as f:
            return f.read()
    except OSError:
        return ""


class WebDriver:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.sid = None

    def req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.base + path, data=data, method=method,
                                   headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(r, timeout=60) as f:
                return json.loads(f.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError("%s %s: %s" % (method, path, e.read()[:500].decode(errors="replace")))

    def s(self, method, path, body=None):
        return self.req(method, "/session/%s%s" % (self.sid, path), body)

    def new_session(self, profile):
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--window-size=1280,1400", "--user-data-dir=" + profile]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            # the https listener's test certificate (tests/edge/certs) is not in the profile
            "acceptInsecureCerts": True}}}
        v = self.req("POST", "/session", caps)
        self.sid = v["sessionId"]

    def quit(self):
        if self.sid:
            try:
                self.req("DELETE", "/session/" + self.sid)
            except Exception:
                pass
            self.sid = None

    def get(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        try:
            v = self.s("POST", "/element", {"using": "css selector", "value": css})
        except RuntimeError:
            return None
        return v[ELEMENT]

    def click(self, el):
        self.s("POST", "/element/%s/click" % el, {})

    def type(self, el, text):
        self.s("POST", "/element/%s/value" % el, {"text": text})

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                       css)

    def screenshot(self, path):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)

    def browser_log(self):
        try:
            return self.s("POST", "/se/log", {"type": "browser"}) or []
        except RuntimeError:
            return []


def burst(sock):
    """A raw bus peer (doc/protocol.md "Frame"): @localhost/org.example.burst/main registers
    the event BURST; returns the socket and fire(n), which fires {"n": 0} to {"n": n-1}."""
    import socket
    import struct
    hdr = struct.Struct("<IBBHQIHHHHI")

    def frame(ty, body=b"", to=b"", member=b"", call_id=0):
        return hdr.pack(len(body), ty, 0, 0, call_id, 0, 0, len(to), len(member), 0, 0) + to + member + body

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock)
    buf = b""

    def recv():
        nonlocal buf
        while True:
            if len(buf) >= hdr.size:
                f = hdr.unpack(buf[:hdr.size])
                total = hdr.size + f[6] + f[7] + f[8] + f[0]
                if len(buf) >= total:
                    out, buf = (f[1], f[3]), buf[total:]
                    return out
            d = s.recv(65536)
            if not d:
                raise EOFError
            buf += d

    assert recv()[0] == 1  # CHALLENGE
    s.sendall(frame(2, json.dumps({"protocol": "HYBRID", "version": 1, "app": "org.example.burst",
                                   "runner": "main"}).encode()))
    ty, st = recv()
    assert (ty, st) == (3, 200), (ty, st)
    s.sendall(frame(4, b'{"bubbleName":"BURST","forHost":"*","forApp":"*"}',
                    b"@localhost/org.hybridos.bus/builtin", b"registerEvent", 1))
    ty, st = recv()
    assert (ty, st) == (5, 200), (ty, st)
    return s, lambda n: s.sendall(b"".join(frame(7, b'{"n":%d}' % i, member=b"BURST") for i in range(n)))


def b64u(n):
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def main():
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        print("# SKIP: chromium or chromedriver is not installed")
        return 77
    shots = sys.argv[1] if len(sys.argv) > 1 else None
    tmp = tempfile.mkdtemp(prefix="hyb-console.")
    if shots:
        os.makedirs(shots, exist_ok=True)
    else:
        shots = tmp
    wd = None
    try:
        wd = run(tmp, shots)
    except Exception:
        import traceback
        say(False, "the test runs to its end", traceback.format_exc())
    finally:
        if wd:
            wd.quit()
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if failed:
            for n in ("d", "svc", "logd"):
                print("# last lines of %s.log:" % n)
                for line in log_of(tmp, n).splitlines()[-15:]:
                    print("#   " + line)
        shutil.rmtree(tmp, ignore_errors=True)
    print("# %s" % ("all passed" if not failed else "%d failed" % failed))
    return 1 if failed else 0


def run(tmp, shots):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def hy(*args, check=True):
        r = subprocess.run([HYBRID] + list(args), capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError("hybrid %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    # Keys: the issuer and the first holder by `hybrid token keygen` (PKCS#8 PEM); the
    # second holder by Python cryptography, handed to the console as a JWK.
    for k in ("iss", "holder", "other"):
        hy("token", "keygen", os.path.join(tmp, k + ".key"))
    jk = ec.generate_private_key(ec.SECP256R1())
    with open(os.path.join(tmp, "jwk.key.pub"), "wb") as f:
        f.write(jk.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    nums = jk.private_numbers()
    jwk = json.dumps({"kty": "EC", "crv": "P-256", "x": b64u(nums.public_numbers.x),
                      "y": b64u(nums.public_numbers.y), "d": b64u(nums.private_value)})

    def issue(sub, holder, *caps):
        a = ["token", "issue", "--key", os.path.join(tmp, "iss.key"), "--iss", "acme", "--sub", sub,
             "--aud", "hub1", "--holder", os.path.join(tmp, holder), "--ttl", "3600"]
        for c in caps:
            a += ["--cap", c]
        return hy(*a).strip()

    good = issue("alice", "holder.key.pub", "bus://localhost/org.example.thermo/main/settarget=call",
                 "bus://localhost/org.example.thermo/main/temp=sub", "/public/#=read,sub",
                 "/log/#=read,sub", "bus://localhost/org.example.burst/main/burst=sub")
    denied = issue("bob", "jwk.key.pub", "/public/#=read")
    with open(os.path.join(tmp, "holder.key")) as f:
        pem = f.read()

    sock = os.path.join(tmp, "d.sock")
    certs = os.path.join(os.environ["HYB_SRC"], "tests", "edge", "certs")
    for f in ("server.pem", "server.key"):
        shutil.copy(os.path.join(certs, f), os.path.join(tmp, f))
    os.chmod(os.path.join(tmp, "server.key"), 0o600)
    with open(os.path.join(tmp, "d.yaml"), "w") as f:
        f.write("listen:\n  http: 127.0.0.1:0\n  https: 127.0.0.1:0\n"
                "tls: {cert: %s, key: %s}\n"
                "auth:\n  tokens: accept\n  audience: hub1\n"
                "  issuers:\n    acme: %s\n" % (os.path.join(tmp, "server.pem"),
                                                 os.path.join(tmp, "server.key"),
                                                 os.path.join(tmp, "iss.key.pub")))
    d = start("d", [HYBRIDD, "--foreground", "--socket", sock, "--config",
                    os.path.join(tmp, "d.yaml")], tmp)

    def port():
        for line in log_of(tmp, "d").splitlines():
            if "edge: HTTP on 127.0.0.1:" in line:
                p = line.rsplit(":", 1)[1].strip()
                if p.isdigit() and p != "0":
                    return int(p)
        return None

    def https_port():
        for line in log_of(tmp, "d").splitlines():
            if "listening on https://127.0.0.1:" in line:
                p = line.rsplit(":", 1)[1].strip()
                if p.isdigit() and p != "0":
                    return int(p)
        return None

    http_port = wait_for(lambda: os.path.exists(sock) and port(), "daemon", 20)
    say(bool(http_port), "hybridd listens on listen.http", log_of(tmp, "d"))
    if not http_port:
        return None
    start("svc", [SERVICE, "--bus", sock, "--interval", "200"], tmp)
    say(bool(wait_for(lambda: THERMO in log_of(tmp, "svc"), "svc", 20)), "the thermostat serves",
        log_of(tmp, "svc"))

    start("logd", [LOGD, "--bus", sock], tmp)
    say(bool(wait_for(lambda: "@localhost/org.hybridos.logd/main" in log_of(tmp, "logd"), "logd", 20)),
        "hybrid-logd serves", log_of(tmp, "logd"))

    start("chromedriver", [CHROMEDRIVER, "--port=0"], tmp)

    def cd_port():
        for line in log_of(tmp, "chromedriver").splitlines():
            if "started successfully on port " in line:
                return int(line.rsplit(" ", 1)[1].rstrip("."))
        return None

    cdp = wait_for(cd_port, "chromedriver", 20)
    say(bool(cdp), "chromedriver starts", log_of(tmp, "chromedriver"))
    if not cdp:
        return None
    wd = WebDriver(cdp)
    wd.new_session(os.path.join(tmp, "profile"))
    base = "http://127.0.0.1:%d/" % http_port

    def shot(name):
        wd.screenshot(os.path.join(shots, name + ".png"))

    # --- the page and its ready marker (the daemon's CHALLENGE, before any sign-in)
    wd.get(base)
    ready = wait_for(lambda: wd.js("return document.body.dataset.console") == "ready", "ready", 30)
    say(bool(ready), 'body gets data-console="ready"', wd.text("#status"))
    shot("1-ready")
    if not ready:
        return wd

    def sign_in(token, key):
        wd.js("document.getElementById('token').value = arguments[0];"
              "document.getElementById('key').value = arguments[1];", token, key)
        wd.click(wd.find("#signin-button"))

    def signed_in():
        return wd.js("return document.body.dataset.session") == "signed-in"

    # --- the wrong key: refused (401), the page says so
    with open(os.path.join(tmp, "other.key")) as f:
        sign_in(good, f.read())
    m = wait_for(lambda: "401" in (wd.text("#signin-msg") or ""), "401", 30)
    say(bool(m) and not signed_in(), "a token with the wrong key: sign-in refused with 401",
        wd.text("#signin-msg"))

    # --- sign in with the PEM key
    sign_in(good, pem)
    ok = wait_for(signed_in, "signed in", 30)
    say(bool(ok), "sign-in with a token and its PKCS#8 key", wd.text("#signin-msg"))
    if not ok:
        shot("2-signin-failed")
        return wd
    st = wd.text("#status") or ""
    say("@localhost/org.hybridos.cli/console_" in st, "the status names the session's endpoint", st)
    say(wd.js("return document.getElementById('key').value") == "", "the key field is cleared")
    say(wd.js("return location.href") == base, "no secret in the URL", wd.js("return location.href"))

    # An idle session is not an idle HTTP request: it outlives the edge's 10 s slow-client
    # timeout (doc/edge.md "Limits").  12 s without a packet either way, then the lists.
    time.sleep(12)
    say(signed_in(), "a session idle for 12 s stays signed in", wd.text("#status"))

    # --- the endpoint list: setTarget with its policy, nothing the token may not call
    proc = '[data-procedure="%s/setTarget"]' % THERMO
    listed = wait_for(lambda: wd.find(proc + ' input[data-key="celsius"]'), "listed", 30)
    say(bool(listed), "setTarget listed with a celsius field from its policy", wd.text("#endpoints"))
    pol = wd.text(proc + " .policy") or ""
    say("args(celsius:number)" in pol, "its argument policy is shown", pol)
    say(wd.find('[data-procedure="%s/getTemperature"]' % THERMO) is None,
        "getTemperature (not in the token) is not listed")
    ev = wd.text('[data-endpoint="%s"]' % THERMO) or ""
    say("event TEMP" in ev, "the TEMP event is listed", ev)

    # --- a call through the form
    if listed:
        wd.type(listed, "22")
        wd.click(wd.find(proc + ' button[type="submit"]'))
        res = wait_for(lambda: wd.js("const e = document.querySelector(arguments[0]);"
                                     "return e && e.dataset.status ? [e.dataset.status, e.textContent] : null;",
                                     proc + " pre.result"), "result", 30)
        say(bool(res) and res[0] == "200" and '{"target":22.0}' in res[1],
            'setTarget {"celsius":22} through the form: 200 {"target":22.0}', res)
        shot("2-called-200")
        # the policy is the daemon's: an empty required field is its 400, with the key named
        wd.js("document.querySelector(arguments[0]).value = ''", proc + ' input[data-key="celsius"]')
        wd.js("document.querySelector(arguments[0]).dataset.status = ''", proc + " pre.result")
        wd.click(wd.find(proc + ' button[type="submit"]'))
        res = wait_for(lambda: wd.js("const e = document.querySelector(arguments[0]);"
                                     "return e && e.dataset.status ? [e.dataset.status, e.textContent] : null;",
                                     proc + " pre.result"), "result", 30)
        say(bool(res) and res[0] == "400" and "celsius" in res[1],
            "without the required key: 400 naming it", res)
    shot("2-called-400")

    # --- the store, live: a write by another process appears
    wd.js("document.getElementById('store-pattern').value = '/public/#'")
    wd.click(wd.find('#store-form button[type="submit"]'))
    w = wait_for(lambda: "watching /public/#" in (wd.text("#store-msg") or ""), "watching", 30)
    say(bool(w), "store subscription to /public/#", wd.text("#store-msg"))
    row = '#store-rows tr[data-furi="/public/kitchen"]'
    for v in ("21.5", "23"):
        hy("--bus", sock, "store", "put", "/public/kitchen", v)
        got = wait_for(lambda: wd.js("const r = document.querySelector(arguments[0]);"
                                     "return r && r.dataset.value === arguments[1];", row, v), "row", 30)
        say(bool(got), "hybrid store put /public/kitchen %s appears live" % v,
            wd.text("#store") + "\n" + str(wd.text("#store-msg")))
    hy("--bus", sock, "store", "put", "/secret/x", "1")
    hy("--bus", sock, "store", "put", "/public/hall", "7")
    wait_for(lambda: wd.find('#store-rows tr[data-furi="/public/hall"]'), "hall", 30)
    say(wd.find('#store-rows tr[data-furi="/secret/x"]') is None, "a write outside the pattern is not shown")
    hy("--bus", sock, "store", "del", "/public/kitchen")
    gone = wait_for(lambda: wd.find(row) is None, "deleted", 30)
    say(bool(gone), "a delete removes the row live")
    # the tree: a click on a fURI browses its branch, Up the one above
    hy("--bus", sock, "store", "put", "/public/room/a", "1")
    wait_for(lambda: wd.find('#store-rows tr[data-furi="/public/room/a"]'), "room", 30)
    wd.click(wd.find('#store-rows tr[data-furi="/public/room/a"] td'))
    narrowed = wait_for(lambda: "watching /public/room/#" in (wd.text("#store-msg") or "") and
                        wd.find('#store-rows tr[data-furi="/public/room/a"]') and
                        wd.find('#store-rows tr[data-furi="/public/hall"]') is None, "room", 30)
    say(bool(narrowed), "a click on /public/room/a browses /public/room/#", wd.text("#store-msg"))
    wd.click(wd.find("#store-up"))
    up = wait_for(lambda: "watching /public/#" in (wd.text("#store-msg") or "") and
                  wd.find('#store-rows tr[data-furi="/public/hall"]'), "up", 30)
    say(bool(up), "Up browses /public/# again, its fURIs replayed", wd.text("#store-msg"))
    # at most 2000 rows (doc/console.md): a branch write of 2100 children
    hy("--bus", sock, "store", "put", "/public/many/", "[" + ",".join(str(i) for i in range(2100)) + "]")
    capped = wait_for(lambda: "first 2000" in (wd.text("#store-msg") or ""), "cap", 30)
    rows = wd.js("return document.getElementById('store-rows').children.length")
    say(bool(capped) and rows == 2000, "2100 more fURIs: 2000 rows shown, and the page says so",
        "%r rows, %r" % (rows, wd.text("#store-msg")))

    # --- events: TEMP from the thermostat
    wd.js("document.getElementById('events-endpoint').value = arguments[0];"
          "document.getElementById('events-bubble').value = 'TEMP';", THERMO)
    wd.click(wd.find('#events-form button[type="submit"]'))
    line = wait_for(lambda: "TEMP" in (wd.text("#events") or "") and "celsius" in (wd.text("#events") or ""),
                    "event", 30)
    say(bool(line), "TEMP events are shown", str(wd.text("#events")) + str(wd.text("#events-msg")))
    # the page keeps the last 500 event lines (doc/console.md): 600 events, 500 lines, the last one last
    b, fire = burst(sock)
    wd.js("document.getElementById('events-endpoint').value = '@localhost/org.example.burst/main';"
          "document.getElementById('events-bubble').value = 'BURST';")
    wd.click(wd.find('#events-form button[type="submit"]'))
    wait_for(lambda: "watching @localhost/org.example.burst/main BURST" in (wd.text("#events-msg") or ""),
             "burst sub", 30)
    fire(600)
    got = wait_for(lambda: '{"n":599}' in (wd.js("const l = document.getElementById('events').lastElementChild;"
                                                  "return l ? l.textContent : ''") or ""), "burst", 30)
    count = wd.js("return document.getElementById('events').children.length")
    first = wd.js("return document.getElementById('events').firstElementChild.textContent")
    say(bool(got) and count == 500 and '{"n":100}' in first,
        "600 events: the last 500 lines kept", "%r lines, first %r" % (count, first))
    b.close()
    say("tailing /log/#" in (wd.text("#log-msg") or ""), "the log is tailed", wd.text("#log-msg"))
    hy("--bus", sock, "--app", "org.example.tester", "log", "send", "console-test-line")
    line = wait_for(lambda: "console-test-line" in (wd.text("#log") or ""), "log line", 30)
    say(bool(line), "a record sent to hybrid-logd appears under /log/# live", wd.text("#log"))
    shot("3-store-events")

    # --- sign out, sign in with the second token (a JWK key): the call is denied (403)
    wd.click(wd.find("#signout"))
    wait_for(lambda: not signed_in(), "signed out", 10)
    say(not (wd.text("#events") or wd.text("#log") or wd.text("#store-rows") or wd.text("#endpoints")),
        "sign-out clears what the session showed",
        "%r %r %r" % (wd.text("#events"), wd.text("#log"), wd.text("#store-rows")))
    sign_in(denied, jwk)
    ok = wait_for(signed_in, "signed in 2", 30)
    say(bool(ok), "sign-in with the second token and a JWK key", wd.text("#signin-msg"))
    if ok:
        wd.js("document.getElementById('call-endpoint').value = arguments[0];"
              "document.getElementById('call-method').value = 'setTarget';"
              "document.getElementById('call-params').value = '{\"celsius\":21}';", THERMO)
        wd.click(wd.find('#call-form button[type="submit"]'))
        res = wait_for(lambda: wd.js("const e = document.getElementById('call-result');"
                                     "return e.dataset.status ? [e.dataset.status, e.textContent] : null;"),
                       "403", 30)
        say(bool(res) and res[0] == "403", "setTarget with a token that may not call it: 403", res)
        say(wd.find('[data-procedure="%s/setTarget"]' % THERMO) is None,
            "the second token's list does not offer setTarget")
    shot("4-denied")
    if ok:
        # the daemon ends the session when the token is revoked: the page says why
        hy("--bus", sock, "token", "revoke", "--key", os.path.join(tmp, "iss.key"),
           "--holder", os.path.join(tmp, "jwk.key.pub"))
        m = wait_for(lambda: not signed_in() and
                     "401 session closed: the token was revoked" in (wd.text("#signin-msg") or ""),
                     "revoked", 30)
        say(bool(m), "a revoked token's session ends with the daemon's reason on the page",
            "%r %r" % (wd.text("#status"), wd.text("#signin-msg")))
        shot("5-revoked")

    # --- loaded over https: the page says sign-in needs the http listener
    hp = https_port()
    say(bool(hp), "hybridd listens on listen.https", log_of(tmp, "d"))
    if hp:
        wd.get("https://localhost:%d/" % hp)
        m = wait_for(lambda: "plain http listener" in (wd.text("#signin-msg") or ""), "https msg", 30)
        say(bool(m), "over https the page says sign-in needs the http listener", wd.text("#signin-msg"))
        say(wd.js("return document.getElementById('signin-button').disabled") is True,
            "over https the Sign-in button is off")
        r = wait_for(lambda: wd.js("return document.body.dataset.console") == "ready", "wss ready", 30)
        say(bool(r), 'over https (wss://) the page still gets data-console="ready"', wd.text("#status"))
        shot("6-https")

    # The page ran under its CSP without a violation
    logs = wd.browser_log()
    csp = [e for e in logs if "Content Security Policy" in e.get("message", "")]
    say(not csp, "no Content-Security-Policy violation in the browser's log",
        "\n".join(e.get("message", "") for e in csp))
    errs = [e for e in logs if e.get("level") == "SEVERE"]
    say(not errs, "no error in the browser's log (every file the page loads is served)",
        "\n".join(e.get("message", "") for e in errs))
    say(d.poll() is None, "the daemon is still serving")

    # --- a daemon that takes no tokens refuses the WebSocket: no marker, and the page says so
    sock2 = os.path.join(tmp, "off.sock")
    with open(os.path.join(tmp, "off.yaml"), "w") as f:
        f.write("listen:\n  http: 127.0.0.1:0\n")
    start("off", [HYBRIDD, "--foreground", "--socket", sock2, "--config",
                  os.path.join(tmp, "off.yaml")], tmp)

    def off_port():
        for line in log_of(tmp, "off").splitlines():
            if "edge: HTTP on 127.0.0.1:" in line:
                p = line.rsplit(":", 1)[1].strip()
                if p.isdigit() and p != "0":
                    return int(p)
        return None

    op = wait_for(lambda: os.path.exists(sock2) and off_port(), "off", 20)
    if op:
        wd.get("http://127.0.0.1:%d/" % op)
        m = wait_for(lambda: "did not open a bus session" in (wd.text("#signin-msg") or ""), "off", 30)
        say(bool(m) and wd.js("return document.body.dataset.console") is None,
            "auth.tokens off: no ready marker, the page says it could not open a session",
            "%r %r" % (wd.text("#status"), wd.text("#signin-msg")))
        shot("7-tokens-off")
    else:
        say(False, "a second hybridd (auth.tokens off) starts", log_of(tmp, "off"))
    return wd


if __name__ == "__main__":
    sys.exit(main())
