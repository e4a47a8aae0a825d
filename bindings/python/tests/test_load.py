# SPDX-License-Identifier: MIT
"""Finding libhybrid.so.0: $HYBRID_LIBRARY, the loader path, pkg-config; a clear ImportError
naming all three when none works."""
import os
import subprocess
import sys

import hybrid


def test_loaded_library_version():
    assert hybrid.library_version.count(".") == 2
    assert hybrid.__version__


def test_import_error_names_the_three_places(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH",)}
    env["HYBRID_LIBRARY"] = str(tmp_path / "absent.so")
    env["PKG_CONFIG_PATH"] = str(tmp_path)
    env["PKG_CONFIG_LIBDIR"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c", "import hybrid; print(hybrid.library_version)"],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60)
    if r.returncode == 0:
        # an installed libhybrid on the loader path: that is the second place, fine
        assert r.stdout.strip() == hybrid.library_version
        return
    assert "ImportError" in r.stderr
    for what in ("$HYBRID_LIBRARY", "libhybrid.so.0", "pkg-config"):
        assert what in r.stderr, r.stderr


def test_found_through_the_environment_variable(tmp_path):
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    env["PKG_CONFIG_LIBDIR"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c", "import hybrid; print(hybrid.library_version)"],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60)
    assert r.returncode == 0, r.stderr
