# SPDX-License-Identifier: MIT
"""Fixtures: real hybridd daemons on sockets in fresh temp dirs.

Paths come from the environment meson sets: HYBRIDD (the daemon), HYBRID_CLI (the `hybrid`
CLI) and HYBRID_LIBRARY (libhybrid.so.0, read by the binding itself)."""
import os
import subprocess
import tempfile
import time

import pytest

HYBRIDD = os.environ.get("HYBRIDD")
HYBRID_CLI = os.environ.get("HYBRID_CLI")
BUILTIN = "@localhost/org.hybridos.bus/builtin"


def _need(var):
    v = os.environ.get(var)
    if not v:
        pytest.fail(f"${var} is not set (meson sets it; see bindings/python/meson.build)")
    return v


def stop_process(proc):
    """Stops a child process: SIGTERM, then SIGKILL if it is still there after 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Daemon:
    """A hybridd --foreground on DIR/NAME.sock with the config given."""

    def __init__(self, name, config, tmpdir):
        self.dir = tmpdir
        self.sock = os.path.join(tmpdir, name + ".sock")
        self.log = os.path.join(tmpdir, name + ".log")
        cfg = os.path.join(tmpdir, name + ".yaml")
        with open(cfg, "w") as f:
            f.write(config)
        self._logf = open(self.log, "w")
        self.proc = subprocess.Popen(
            [_need("HYBRIDD"), "--foreground", "--socket", self.sock, "--config", cfg],
            stdout=self._logf, stderr=subprocess.STDOUT)
        # wait for readiness: the socket appears once the daemon serves (or it died)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.log) as f:
                    pytest.fail(f"hybridd {name} did not start:\n{f.read()}")
            time.sleep(0.02)

    def cli(self, *args, input=None, env=None, timeout=60):
        """Runs the `hybrid` CLI (C) against this daemon."""
        return subprocess.run([_need("HYBRID_CLI"), "--bus", self.sock, *args],
                              capture_output=True, text=True, input=input, env=env,
                              timeout=timeout)

    def stop(self):
        stop_process(self.proc)
        self._logf.close()


@pytest.fixture(scope="session")
def tmpdir_session():
    with tempfile.TemporaryDirectory(prefix="hyb-py.") as d:
        os.chmod(d, 0o700)
        yield d


@pytest.fixture(scope="session")
def daemon(tmpdir_session):
    d = Daemon("d", "log: {level: warning}\n", tmpdir_session)
    yield d
    d.stop()


@pytest.fixture
def fresh_daemon(tmp_path):
    d = Daemon("f", "log: {level: warning}\n", str(tmp_path))
    yield d
    d.stop()


def until(cond, step, what, limit=60.0):
    """Runs step() until cond() holds; fails after `limit` seconds (a generous bound for a
    loaded machine, never a timing assertion)."""
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {limit} s")
        step()


async def auntil(cond, what, limit=60.0):
    """The asyncio form of until: yields to the loop until cond() holds."""
    import asyncio
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {limit} s")
        await asyncio.sleep(0.01)
