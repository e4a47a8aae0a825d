# SPDX-License-Identifier: MIT
"""The size-stamped option structs: the binding declares its own copy of each (cffi cdef),
so the library must be told that copy's size (hyb_*_init_sized) and write no byte past it,
even when the binding's declaration is older and shorter than the library's struct."""
import pytest

from hybrid._ffi import ffi, lib, new_options

STRUCTS = ["hyb_bus_connect_options", "hyb_token_issue_opts", "hyb_token_attenuate_opts",
           "hyb_token_verify_opts"]
GUARD = 0xA5


@pytest.mark.parametrize("ctype", STRUCTS)
def test_new_options_stamps_the_declared_size(ctype):
    o = new_options(ctype, getattr(lib, ctype + "_init_sized"))
    assert o.size == ffi.sizeof(ctype)


@pytest.mark.parametrize("ctype", STRUCTS)
def test_a_shorter_declaration_is_not_overrun(ctype):
    # as an older binding would declare it: only the size member and one pointer
    short = ffi.sizeof("size_t") + ffi.sizeof("void *")
    buf = ffi.new("unsigned char[]", ffi.sizeof(ctype) + 64)
    ffi.memmove(buf, bytes([GUARD]) * len(buf), len(buf))
    getattr(lib, ctype + "_init_sized")(ffi.cast(ctype + " *", buf), short)
    raw = bytes(ffi.buffer(buf))
    assert ffi.cast("size_t *", buf)[0] == short
    assert raw[ffi.sizeof("size_t"):short] == bytes(short - ffi.sizeof("size_t"))
    assert raw[short:] == bytes([GUARD]) * (len(raw) - short)
