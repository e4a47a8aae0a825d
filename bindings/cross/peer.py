"""The Python peer of the cross-language tests (bindings/cross/README.md).

  peer.py echo SOCKET APP                  serves echo ({"values": list} back as it came)
  peer.py copy SOCKET FROM TO ECHO         copies every key under FROM to TO, each value list
                                           sent through the echo of endpoint ECHO on the way
  peer.py serve SOCKET APP                 serves add {a: int, b: int} -> {sum, lang} and
                                           deny {} (answers 403 "denied by python")
  peer.py call SOCKET ENDPOINT METHOD JSON prints "ok k=v ..." (keys sorted) or
                                           "error STATUS CODE" (exit 1)
  peer.py listen SOCKET APP EPGLOB BUBGLOB prints "event SOURCE BUBBLE k=v ..." for the first
                                           event, then exits
  peer.py fire SOCKET APP BUBBLE KEY INT   fires BUBBLE with {KEY: INT}
  peer.py keygen PATH                      a key pair: PATH (private) and PATH.pub
  peer.py tokissue ISSKEY HOLDERPUB SUB OUT
                                           a token of issuer acme for the holder, audience
                                           hub1, caps /x/# read,write and bus://localhost/#
                                           call, written to OUT
  peer.py tokverify TOKENFILE ISSPUB       prints "ok sub=SUB iss=ISS" (trusting acme = ISSPUB)
                                           or "error STATUS CODE"
  peer.py tokstore SOCKET TOKENFILE KEY FURI TEXT
                                           with that token (TOKENFILE "-": none), writes TEXT
                                           at FURI and reads it back: "ok TEXT" or
                                           "error STATUS CODE" (exit 1)
  peer.py leak SOCKET ECHO N               N calls of ECHO's echo (and a store put and get
                                           every 10th), after max(N/10, 2000) to warm up
                                           (V8 settles its code in the first thousands); prints
                                           "rss_kb BEFORE AFTER" (VmRSS around the N)

Servers print their endpoint name on stdout and "ready" on stderr once serving.  Values are
never converted by hand: the binding's store and bus do it, which is what is tested.  Run with
Debian's /usr/bin/python3 and the package `hybrid` on sys.path.
"""
import json
import signal
import sys

import hybrid


def ready(bus):
    signal.signal(signal.SIGTERM, lambda *_: bus.stop())
    print(bus.name, flush=True)
    print("ready", file=sys.stderr, flush=True)


def flat(d):
    return " ".join(f"{k}={d[k]}" for k in sorted(d))


def check_numbers(where, values):
    for i, v in enumerate(values):
        if type(v) not in (int, float):
            sys.exit(f"peer.py: {where}[{i}] is {type(v).__name__} {v!r}, not int or float")


def echo(sock, app):
    with hybrid.Bus(socket=sock, app=app) as bus:
        @bus.procedure("echo", args={"values": list})
        def _echo(values):
            return {"values": values}

        ready(bus)
        bus.run()


def copy(sock, src, dst, echo_ep):
    store = hybrid.Store(socket=sock, app="org.example.py.rtcopy")
    got = store.get(src + "/#")
    if not got:
        sys.exit(f"peer.py: nothing under {src}")
    with hybrid.Bus(socket=sock, app="org.example.py.rtcall") as bus:
        for key in sorted(got, key=str):
            values = got[key]
            check_numbers(key, values)
            back = bus.call(echo_ep, "echo", {"values": values}, timeout=30.0)["values"]
            check_numbers(f"{key} (echoed)", back)
            store.put(dst + str(key)[len(src):], back)
    print(f"python: {len(got)} keys copied {src} -> {dst} through {echo_ep}")


def serve(sock, app):
    with hybrid.Bus(socket=sock, app=app) as bus:
        @bus.procedure("add", args={"a": int, "b": int})
        def add(a, b):
            return {"sum": a + b, "lang": "python"}

        @bus.procedure("deny")
        def deny(**_):
            raise hybrid.Forbidden("denied by python")

        ready(bus)
        bus.run()


def call(sock, endpoint, method, params):
    with hybrid.Bus(socket=sock, app="org.example.py.caller") as bus:
        try:
            print("ok " + flat(bus.call(endpoint, method, json.loads(params), timeout=30.0)))
        except hybrid.Error as e:
            print(f"error {e.status} {e.code}")
            sys.exit(1)


def listen(sock, app, ep_glob, bubble_glob):
    with hybrid.Bus(socket=sock, app=app) as bus:
        def on_event(ev):
            print(f"event {ev.source} {ev.bubble} {flat(ev.data)}", flush=True)
            bus.stop()

        bus.subscribe(ep_glob, bubble_glob, on_event)
        signal.signal(signal.SIGTERM, lambda *_: bus.stop())
        print("ready", file=sys.stderr, flush=True)
        bus.run()


def fire(sock, app, bubble, key, value):
    with hybrid.Bus(socket=sock, app=app) as bus:
        bus.register_event(bubble)
        delivered, _failed = bus.fire(bubble, {key: int(value)}, confirm=True)
        print(f"fired {bubble} to {delivered}")


TOKEN_CAPS = {"/x/#": "read,write", "bus://localhost/#": "call"}


def keygen(path):
    hybrid.token.keygen(path)


def tokissue(isskey, holderpub, sub, out):
    tok = hybrid.token.issue(isskey, iss="acme", sub=sub, aud="hub1", holder=holderpub,
                             caps=TOKEN_CAPS, ttl=3600)
    with open(out, "w") as f:
        f.write(tok + "\n")


def tokverify(tokfile, isspub):
    with open(tokfile) as f:
        tok = f.read()
    try:
        v = hybrid.token.verify(tok, {"acme": isspub}, "hub1")
        print(f"ok sub={v.sub} iss={v.iss}")
    except hybrid.Error as e:
        print(f"error {e.status} {e.code}")
        sys.exit(1)


def tokstore(sock, tokfile, key, furi, text):
    creds = {} if tokfile == "-" else {"token": tokfile, "key": key}
    try:
        store = hybrid.Store(socket=sock, app="org.example.py.tok", **creds)
        store.put(furi, text)
        print(f"ok {store.get(furi)}")
    except hybrid.Error as e:
        print(f"error {e.status} {e.code}")
        sys.exit(1)


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def leak(sock, echo_ep, n):
    n = int(n)
    values = [2**63 - 1, -0.0, 5e-324, "text", True, None, {"k": [1, 2.5]}]
    store = hybrid.Store(socket=sock, app="org.example.py.leakstore")
    with hybrid.Bus(socket=sock, app="org.example.py.leak") as bus:
        def rounds(count):
            for i in range(count):
                back = bus.call(echo_ep, "echo", {"values": values}, timeout=30.0)["values"]
                if back[0] != values[0]:
                    sys.exit("peer.py: leak: wrong echo")
                if i % 10 == 0:
                    store.put("/leak/py", i)
                    if store.get("/leak/py") != i:
                        sys.exit("peer.py: leak: wrong store read")
        rounds(max(n // 10, 2000))
        before = rss_kb()
        rounds(n)
        print(f"rss_kb {before} {rss_kb()}")


def main(argv):
    cmds = {"echo": (echo, 2), "copy": (copy, 4), "serve": (serve, 2), "call": (call, 4),
            "listen": (listen, 4), "fire": (fire, 5), "leak": (leak, 3),
            "keygen": (keygen, 1), "tokissue": (tokissue, 4), "tokverify": (tokverify, 2),
            "tokstore": (tokstore, 5)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        sys.exit(__doc__)
    cmds[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
