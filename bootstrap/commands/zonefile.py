"""``zone validate``, ``zone plan`` and ``zone render``: pure functions of the zone file."""

from __future__ import annotations

import sys

from ..errors import ZoneInvalid
from ..render import render_all
from ..zone import load_zone
from ._args import json_arg, load_plan, pod_arg, print_json, zone_arg

PLAN_COLUMNS = ("name", "kind", "role", "pod", "unit", "network", "address", "boot",
                "firmware", "links")


def register(sub) -> None:
    p = sub.add_parser("validate", help="check the zone file and the files it names; every "
                       "problem as file:line")
    zone_arg(p)
    json_arg(p)
    p.add_argument("--no-hash", action="store_true",
                   help="do not check the firmware images' sha256 (faster; they must exist)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="every location's identity")
    zone_arg(p)
    pod_arg(p)
    json_arg(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("render", help="Ansible inventory, DNS zone files, DHCP reservations")
    zone_arg(p)
    p.add_argument("--out", required=True, metavar="DIR", help="where to write")
    p.set_defaults(func=cmd_render)


def cmd_validate(args) -> int:
    try:
        zone = load_zone(args.zone, files=True, hashes=not args.no_hash)
    except ZoneInvalid as exc:
        if args.json:
            print_json({"valid": False, "problems": [p.__dict__ for p in exc.problems]})
            return 2
        raise
    servers = sum(len(p.units) for p in zone.pods)
    if args.json:
        print_json({"valid": True, "zone": zone.name, "pods": len(zone.pods), "servers": servers,
                    "digest": zone.digest, "warnings": [w.__dict__ for w in zone.warnings]})
        return 0
    for warning in zone.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.zone}: zone {zone.name} is valid: {len(zone.pods)} pods, {servers} servers")
    return 0


def _cell(node, column) -> str:
    value = node.as_dict()[column]
    if column == "firmware":
        return ",".join(value) or "-"
    if column == "links":
        return ",".join(f"{link['switch']}:{link['port']}" for link in value) or "-"
    return "-" if value is None else str(value)


def cmd_plan(args) -> int:
    plan = load_plan(args)
    nodes = list(plan.select(args.pod))
    if args.json:
        print_json({"zone": plan.zone.name, "digest": plan.zone.digest,
                    "nodes": [n.as_dict() for n in nodes]})
        return 0
    rows = [PLAN_COLUMNS] + [tuple(_cell(n, c) for c in PLAN_COLUMNS) for n in nodes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(PLAN_COLUMNS) - 1)]
    out = sys.stdout
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] + "\n")
    return 0


def cmd_render(args) -> int:
    plan = load_plan(args)
    written = render_all(plan, args.out)
    print(f"wrote {len(written)} files under {args.out}")
    return 0
