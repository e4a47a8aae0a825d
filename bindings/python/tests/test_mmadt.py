# SPDX-License-Identifier: MIT
"""mm-ADT from Python (expected results from doc/mmadt.md's semantics)."""
import pytest

import hybrid


def test_run():
    assert hybrid.mmadt.run("{1..3}.plus(1)") == [2, 3, 4]
    assert hybrid.mmadt.run("1.plus(2)") == [3]
    assert hybrid.mmadt.run("'a'") == ["a"]


def test_vm_reuse_and_program_state():
    with hybrid.mmadt.VM() as vm:
        assert vm.run("x -> 12; *x") == [12]
        assert vm.run("*x.plus(1)") == [13]  # the same VM keeps its memory store
        assert "VM" in repr(vm)
    with pytest.raises(hybrid.ClosedError):
        vm.run("1")


def test_parse_error():
    with pytest.raises(hybrid.ParseError) as ei:
        hybrid.mmadt.run("1.plus(")
    assert ei.value.code == "HYB_E_PARSE" and ei.value.message


def test_vm_over_a_store(daemon):
    with hybrid.Store(socket=daemon.sock, app="org.example.py.mm") as st:
        st.put("/pymm/x", 40)
        assert hybrid.mmadt.run("*/pymm/x.plus(2)", store=st) == [42]
        with hybrid.mmadt.VM(st) as vm:
            vm.run("/pymm/y -> 'from mm-ADT'")
        assert st.get("/pymm/y") == "from mm-ADT"


def test_code_results():
    # code has no JSON form: it comes back as its exact text
    out = hybrid.mmadt.run("|plus(1)")
    assert len(out) == 1 and isinstance(out[0], hybrid.Code) and "plus(1)" in out[0].text
    assert hybrid.mmadt.run("[1, |plus(1)]")[0][0] == 1
    with pytest.raises(TypeError):
        hybrid.values.to_json(out[0])
