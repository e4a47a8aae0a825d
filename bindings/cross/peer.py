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


def main(argv):
    cmds = {"echo": (echo, 2), "copy": (copy, 4), "serve": (serve, 2), "call": (call, 4),
            "listen": (listen, 4), "fire": (fire, 5)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        sys.exit(__doc__)
    cmds[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
