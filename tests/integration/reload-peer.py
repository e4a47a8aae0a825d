# SPDX-License-Identifier: MIT
"""One bus connection kept open across a reload of hybridd (reload.sh).

    reload-peer.py SOCKET GO DONE

Authenticates, echoes a 3000-byte body through the builtin endpoint and prints
"before STATUS"; waits for the file GO (the test has reloaded the daemon), echoes
3000 bytes and then 100 bytes on the same connection and prints "after STATUS STATUS";
waits for the file DONE and closes.  A closed connection prints "closed".
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawbus  # noqa: E402


def wait_file(path, seconds=30):
    end = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > end:
            print("timeout waiting for " + path, flush=True)
            sys.exit(1)
        time.sleep(0.02)


def main():
    path, go, done = sys.argv[1:4]
    c = rawbus.auth(path, "org.example.reload", "peer%d" % os.getpid(), timeout=20)
    print("auth %d" % c.auth_status, flush=True)

    def echo(n, cid):
        return rawbus.call(c, rawbus.BUILTIN, "echo", '"' + "x" * (n - 2) + '"', cid=cid)["status"]

    try:
        print("before %d" % echo(3000, 1), flush=True)
        wait_file(go)
        print("after %d %d" % (echo(3000, 2), echo(100, 3)), flush=True)
    except (EOFError, ConnectionResetError, BrokenPipeError):
        print("closed", flush=True)
        sys.exit(1)
    wait_file(done)
    c.close()


if __name__ == "__main__":
    main()
