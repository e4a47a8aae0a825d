"""The Python clients of bench/run-bindings.sh (bench/README.md, "bench-bindings").

  client.py hybrid SOCKET ENDPOINT CALLS EVENTS   the hybrid binding: echo RTT and a TICK burst
  client.py dbus ADDRESS CALLS                    dbus-python: Echo(s) of the C service
  client.py mqtt HOST PORT CALLS                  paho-mqtt: bench/req/<id> -> bench/resp/<id>

Each prints `RESULT call_p50_us=X` (median of CALLS round trips after a 10 % warm-up, every
answer checked) and the hybrid client `RESULT events_per_s=X` (EVENTS events of one burst,
first to last delivery), as bench-bindings' C client does.  Run with /usr/bin/python3.
"""
import json
import statistics
import sys
import time

BODY = {"words": "hi"}
TEXT = json.dumps(BODY, separators=(",", ":"))


def timed(calls, one):
    us = []
    for i in range(-(calls // 10), calls):
        t0 = time.perf_counter_ns()
        one()
        t1 = time.perf_counter_ns()
        if i >= 0:
            us.append((t1 - t0) / 1e3)
    print(f"RESULT call_p50_us={statistics.median(us):.2f}", flush=True)


def hybrid_client(sock, endpoint, calls, events):
    import hybrid
    with hybrid.Bus(socket=sock, app="org.example.bench.py") as bus:
        def one():
            if bus.call(endpoint, "echo", BODY) != BODY:
                sys.exit("client.py: wrong echo")
        timed(calls, one)

        got = [0, 0, 0]  # count, first, last

        def on_tick(_ev):
            now = time.perf_counter_ns()
            if got[0] == 0:
                got[1] = now
            got[0] += 1
            got[2] = now
            if got[0] == events:
                bus.stop()

        bus.subscribe(endpoint, "TICK", on_tick)
        bus.call(endpoint, "burst", {"n": events}, timeout=60.0)
        if got[0] < events:
            bus.run()
        print(f"RESULT events_per_s={(got[0] - 1) / ((got[2] - got[1]) / 1e9):.0f}", flush=True)


def dbus_client(address, calls):
    import dbus
    conn = dbus.bus.BusConnection(address)
    echo = conn.get_object("org.libhybrid.BenchEcho", "/org/libhybrid/BenchEcho") \
        .get_dbus_method("Echo", "org.libhybrid.BenchEcho")

    def one():
        if echo(TEXT) != TEXT:
            sys.exit("client.py: wrong D-Bus echo")
    timed(calls, one)


def mqtt_client(host, port, calls):
    import paho.mqtt.client as mqtt
    me = f"py{id(object())}"
    c = mqtt.Client(client_id=me)
    answers = []
    c.on_message = lambda _c, _u, msg: answers.append(msg.payload)
    subscribed = []
    c.on_subscribe = lambda *_: subscribed.append(True)
    c.connect(host, int(port))
    c.subscribe(f"bench/resp/{me}", qos=0)
    while not subscribed:  # the SUBACK: our subscription is in place
        if c.loop(1.0) != 0:
            sys.exit("client.py: MQTT connection failed")
    payload = TEXT.encode()

    def one():
        c.publish(f"bench/req/{me}", payload, qos=0)
        while not answers:
            if c.loop(1.0) != 0:
                sys.exit("client.py: MQTT connection lost")
        if answers.pop() != payload:
            sys.exit("client.py: wrong MQTT echo")
    timed(calls, one)
    c.disconnect()


def main(argv):
    if len(argv) == 6 and argv[1] == "hybrid":
        hybrid_client(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif len(argv) == 4 and argv[1] == "dbus":
        dbus_client(argv[2], int(argv[3]))
    elif len(argv) == 5 and argv[1] == "mqtt":
        mqtt_client(argv[2], argv[3], int(argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
