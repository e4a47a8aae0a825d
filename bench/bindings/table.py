"""Prints the table of bench/run-bindings.sh from its results file (bench/README.md).

  table.py RESULTS ROUNDS DBUS_KIND [--verbose]

RESULTS has one line per figure: `ROUND CLIENT KEY VALUE` (KEY call_p50_us or events_per_s).
A cell is the median over the rounds; a ratio is the median of the per-round ratios (the
figures of one round were taken in the same minute).  Targets (issue 11): Python and Node call
RTT <= 1.3x C's; >= 2x faster than dbus-python and paho-mqtt round trips.
"""
import os
import statistics
import sys
from collections import defaultdict

NAMES = {
    "c": "C (libhybrid, hyb_bus_call)",
    "cbroker": "C, direct channels off (via hybridd)",
    "python": "Python (hybrid binding)",
    "node": "Node (hybrid binding)",
    "lua": "Lua (hybrid binding)",
    "dbus": "dbus-python via {dbus}",
    "mqtt": "paho-mqtt via mosquitto (TCP)",
}
ORDER = ["c", "cbroker", "python", "node", "lua", "dbus", "mqtt"]


def main(path, rounds, dbus_kind, verbose=False):
    fig = defaultdict(dict)  # (client, key) -> {round: value}
    with open(path) as f:
        for line in f:
            r, client, key, value = line.split()
            fig[(client, key)][int(r)] = float(value)

    def med(client, key):
        v = list(fig.get((client, key), {}).values())
        return statistics.median(v) if v else None

    def ratio(a, b, key="call_p50_us"):
        """median over the rounds of a/b, both measured in that round"""
        fa, fb = fig.get((a, key), {}), fig.get((b, key), {})
        v = [fa[r] / fb[r] for r in fa if r in fb and fb[r] > 0]
        return statistics.median(v) if v else None

    load = os.getloadavg()[0]
    print(f"bench-bindings: echo call RTT ({{\"words\":\"hi\"}}) and event delivery, medians of "
          f"{rounds} rounds, clients alternating (load {load:.2f}, {os.cpu_count()} cpus)")
    if os.environ.get("BENCH_PINNED"):
        print(f"Pinned: {os.environ['BENCH_PINNED']}.")
    print()
    print(f"| {'client':<36} | {'call p50 µs':>11} | {'x C':>5} | {'events/s':>9} |")
    print(f"|{'-' * 38}|{'-' * 13}|{'-' * 7}|{'-' * 11}|")
    for c in ORDER:
        rtt, ev = med(c, "call_p50_us"), med(c, "events_per_s")
        if rtt is None and ev is None:
            continue
        x = ratio(c, "c") if c != "c" else 1.0
        print(f"| {NAMES[c].format(dbus=dbus_kind):<36} | "
              f"{'-' if rtt is None else f'{rtt:.1f}':>11} | "
              f"{'-' if x is None else f'{x:.2f}':>5} | "
              f"{'-' if ev is None else f'{ev:,.0f}':>9} |")
    print()
    print("Targets (issue 11):")

    def shown(x, limit):
        # two decimals, three where two would read as the limit itself (1.998 is a miss of 2)
        t = f"{x:.2f}"
        return f"{x:.3f}" if t == f"{limit:.2f}" and x != limit else t

    for c in ("python", "node"):
        if (c, "call_p50_us") not in fig:
            print(f"  {NAMES[c]}: not measured")
            continue
        x = ratio(c, "c")
        verdict = "not measured" if x is None else ("PASS" if x <= 1.3 else "MISS")
        print(f"  {NAMES[c]} call RTT <= 1.3x C's: {shown(x, 1.3)}x  {verdict}" if x is not None else
              f"  {NAMES[c]} call RTT <= 1.3x C's: not measured")
        for peer in ("dbus", "mqtt"):
            s = ratio(peer, c)  # peer RTT / ours: how many times faster we are
            name = NAMES[peer].format(dbus=dbus_kind)
            if s is None:
                print(f"  {NAMES[c]} >= 2x faster than {name}: not measured")
            else:
                print(f"  {NAMES[c]} >= 2x faster than {name}: {shown(s, 2)}x  "
                      f"{'PASS' if s >= 2 else 'MISS'}")
    if verbose:
        print()
        for (c, key), per in sorted(fig.items()):
            print(f"RESULT client={c} {key}=" + ",".join(f"{per[r]:g}" for r in sorted(per)))
    if load > (os.cpu_count() or 1):
        print(f"\nThe load average ({load:.2f}) exceeds the cpus: the figures are noisy, run again.")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5) or (len(sys.argv) == 5 and sys.argv[4] != "--verbose"):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], len(sys.argv) == 5)
