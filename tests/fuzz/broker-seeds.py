#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the seed corpus of fuzz_broker.c (tests/fuzz/corpus/broker/): short sessions of
# frames (doc/protocol.md) from three clients, cut into the target's chunks
# (sel, len lo, len hi, bytes).  Run from anywhere; rewrites the directory's seeds.
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "broker")
CALL, RESULT, CANCEL, EVENT, PING, PONG, AUTH, MONITOR = 4, 5, 6, 7, 8, 9, 2, 11
BUILTIN = "@localhost/org.hybridos.bus/builtin"
C0 = "@localhost/org.fuzz.a/c0"
C1 = "@localhost/org.fuzz.b/c1"


def frame(type_, to="", member="", body=b"", status=0, call_id=0, timeout=0, flags=0, frm="", aux=0):
    if isinstance(body, (dict, list, str, int)):
        body = json.dumps(body).encode()
    names = frm.encode() + to.encode() + member.encode()
    hdr = struct.pack("<IBBHQIHHHHI", len(body), type_, flags, status, call_id, timeout,
                      len(frm.encode()), len(to.encode()), len(member.encode()), 0, aux)
    assert len(hdr) == 32
    return hdr + names + body


def chunk(client, data, close=False):
    return bytes([client | (0x80 if close else 0)]) + struct.pack("<H", len(data)) + data


def builtin(method, args, call_id=1):
    return frame(CALL, BUILTIN, method, args, call_id=call_id, timeout=1000)


SEEDS = {
    "echo": [chunk(0, builtin("echo", {"a": 1}))],
    "echo-binary": [chunk(1, frame(CALL, BUILTIN, "echo", bytes(range(64)), call_id=9, flags=1))],
    "lists": [chunk(0, builtin("listEndpoints", {}, 1) + builtin("listProcedures", {}, 2) +
                    builtin("listEvents", {}, 3) + builtin("listEventSubscribers", {}, 4))],
    "procedure-call-result": [
        chunk(0, builtin("registerProcedure", {"methodName": "getX", "forHost": "*",
                                               "forApp": "org.fuzz.*",
                                               "policy": {"x": {"type": "int", "required": True}}})),
        chunk(1, frame(CALL, C0, "getX", {"x": 1}, call_id=7, timeout=500)),
        # the broker's call id for the first routed call is 1
        chunk(0, frame(RESULT, C1, "", {"v": 2}, status=200, call_id=1)),
        chunk(0, builtin("revokeProcedure", {"methodName": "getX"}, 3)),
    ],
    "procedure-caller-leaves": [
        chunk(0, builtin("registerProcedure", {"methodName": "slow"})),
        chunk(1, frame(CALL, C0, "slow", {}, call_id=3, timeout=0), close=True),
        chunk(0, frame(RESULT, C1, "", {}, status=200, call_id=1)),
    ],
    "procedure-callee-leaves": [
        chunk(0, builtin("registerProcedure", {"methodName": "slow"})),
        chunk(1, frame(CALL, C0, "slow", {}, call_id=3, timeout=100)),
        chunk(0, b"", close=True),
        chunk(1, builtin("terminateCall", {"callId": 3}, 4)),
    ],
    "cancel": [
        chunk(0, builtin("registerProcedure", {"methodName": "m"})),
        chunk(1, frame(CALL, C0, "m", {}, call_id=5) + frame(CANCEL, call_id=5, status=499)),
    ],
    "events": [
        chunk(0, builtin("registerEvent", {"bubbleName": "TEMP", "forApp": "$owner,org.fuzz.b"})),
        chunk(1, builtin("subscribeEvent", {"endpointName": C0, "bubbleName": "TEMP"}, 2)),
        chunk(1, builtin("subscribeEvent", {"endpointName": "@localhost/org.fuzz.*/*",
                                            "bubbleName": "*"}, 3)),
        chunk(0, frame(EVENT, "", "TEMP", "21.5") + frame(EVENT, "", "TEMP", {"t": 1}, flags=2)),
        chunk(1, builtin("unsubscribeEvent", {"endpointName": C0, "bubbleName": "TEMP"}, 4)),
        chunk(0, builtin("revokeEvent", {"bubbleName": "TEMP"}, 5)),
    ],
    "monitor": [
        chunk(0, builtin("monitor", {"enable": True})),
        chunk(1, builtin("echo", "x", 2)),
        chunk(0, builtin("monitor", {"enable": False}, 3)),
    ],
    "ping": [chunk(1, frame(PING) + frame(PONG))],
    "auth-third": [
        chunk(2, frame(AUTH, body={"protocol": "HYBRID", "version": 1, "app": "org.fuzz.c",
                                   "runner": "c2"})),
        chunk(2, builtin("echo", [1, 2, 3])),
    ],
    "auth-bad": [
        chunk(2, frame(AUTH, body={"protocol": "HYBRID", "version": 2, "app": "a", "runner": "b"})),
    ],
    "auth-taken": [
        chunk(2, frame(AUTH, body={"protocol": "HYBRID", "version": 1, "app": "org.fuzz.a",
                                   "runner": "c0"})),
    ],
    "call-before-auth": [chunk(2, builtin("echo", 1))],
    "too-large": [chunk(1, frame(CALL, BUILTIN, "echo", b'"' + b"a" * 5000 + b'"', call_id=2))],
    "bad-header": [chunk(0, b"\xff" * 32)],
    "pipeline": [chunk(0, b"".join(builtin("echo", i, i + 1) for i in range(20)))],
    "channel": [
        chunk(0, builtin("registerProcedure", {"methodName": "m"})),
        chunk(1, builtin("openChannel", {"endpoint": C0}, 2) +
                 builtin("openChannel", {"endpoint": C0}, 3)),
        chunk(1, builtin("closeChannel", {"channel": 1}, 4) +
                 builtin("openChannel", {"endpoint": C0}, 5)),
        chunk(0, builtin("monitor", {"enable": True}, 6)),
        chunk(1, builtin("openChannel", {"endpoint": C1}, 7), close=True),
    ],
}

os.makedirs(OUT, exist_ok=True)
for name, chunks in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(b"".join(chunks))
