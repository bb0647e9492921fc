#!/usr/bin/env python3
"""bench/zone-up/simulate.py: the 10,000-unit plan driven through the state machine.

No namespaces: the events services would record (BMC lease, power-on, server lease,
phone-home) are written through the batching EventWriter, and ``apply_events`` turns
them into node transitions, as ``zone up`` does. Prints events/s and peak memory.
Goal (issue 7): >= 20,000 events/s through the store, < 500 MB.
"""

import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.state import EventWriter, Store  # noqa: E402
from bootstrap.up import apply_events  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402


def main() -> None:
    zone = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "examples", "zone-10k.yml")
    plan = compile_plan(load_zone(zone))
    servers = list(plan.servers())
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(os.path.join(tmp, "zone.db"))
        store.seed(plan)
        writer = EventWriter(store)
        t0 = time.perf_counter()
        for kind, who in (("lease", "peer"), ("power-on", "self"), ("lease", "self"),
                          ("phone-home", "self")):
            for node in servers:
                writer.put(kind, node.peer if who == "peer" else node.name, "sim")
        writer.close()
        t1 = time.perf_counter()
        cursor, total_events = 0, len(servers) * 4
        while True:
            new = apply_events(plan, store, cursor)
            if new == cursor:
                break
            cursor = new
        t2 = time.perf_counter()
        installed = store.counts(kind="server").get("installed", 0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(servers)} servers, {total_events} service events")
    print(f"  ingest through EventWriter: {total_events / (t1 - t0):,.0f} events/s")
    print(f"  state machine (events -> transitions): {total_events / (t2 - t1):,.0f} events/s, "
          f"{installed} servers installed")
    print(f"  end to end: {total_events / (t2 - t0):,.0f} events/s (goal >= 20,000); "
          f"peak memory {rss:.0f} MB (goal < 500 MB)")


if __name__ == "__main__":
    main()
