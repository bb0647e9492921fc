"""``zone status``: pods and nodes by state, last events, each service's zone hash."""

from __future__ import annotations

import contextlib
import sqlite3

from ..progress import event_line, pod_line, snapshot
from ..plan import compile_plan
from ..zone import load_zone
from ._args import json_arg, open_store, print_json, state_arg, zone_arg


def register(sub) -> None:
    p = sub.add_parser("status", help="pods and nodes by state, last events, service zone hashes")
    zone_arg(p)
    json_arg(p)
    state_arg(p)
    p.add_argument("--events", type=int, default=10, metavar="N", help="how many recent events")
    p.set_defaults(func=cmd_status)


def cmd_status(args) -> int:
    zone = load_zone(args.zone)
    store = open_store(args)
    with contextlib.suppress(sqlite3.Error):  # a state disk that takes no writes still reads
        store.seed(compile_plan(zone))  # unseen nodes show as planned
    snap = snapshot(store, zone.digest, events=args.events)
    snap["state_problems"] = store.problems()
    if args.json:
        print_json(snap)
        return 0
    print(f"zone {zone.name} ({zone.digest[:12]})")
    for problem in snap["state_problems"]:
        print(f"  state: {problem}")
    for pod in snap["pods"]:
        print("  " + pod_line(pod))
    for service in snap["services"]:
        mark = "  DRIFT: runs another zone file" if service["drift"] else ""
        life = "running" if service["alive"] else f"STALE ({service['stale']})"
        print(f"  service {service['id']} {service['kind']} {service['address']} {life} "
              f"zone {service['zone_digest'][:12]}{mark}")
    for event in snap["events"]:
        print("  " + event_line(event))
    return 0
