"""Arguments and loading shared by the sub-commands."""

from __future__ import annotations

import json
import os
import sys

from ..errors import InputError
from ..plan import Plan, compile_plan
from ..state import Store, default_path
from ..zone import load_zone


def zone_arg(parser) -> None:
    parser.add_argument("zone", metavar="ZONE", help="the zone file (YAML)")


def pod_arg(parser) -> None:
    parser.add_argument("--pod", metavar="P", help="only this pod")


def json_arg(parser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def state_arg(parser) -> None:
    parser.add_argument("--state", metavar="PATH",
                        help="state database (default: state/zone.db beside the zone file)")


def ansible_args(parser) -> None:
    """--inventory/--playbooks of the commands that hand pods to Ansible."""
    parser.add_argument("--inventory", action="append", default=[], metavar="PATH",
                        help="another inventory source after the rendered one (connection "
                             "vars); repeatable")
    parser.add_argument("--playbooks", metavar="DIR",
                        help="the playbook project (default: the installed playbooks/)")


def check_ansible_args(args) -> None:
    for path in args.inventory:
        if not os.path.exists(path):
            raise InputError(f"--inventory {path}: no such file or directory")
    if args.playbooks and not os.path.isdir(args.playbooks):
        raise InputError(f"--playbooks {args.playbooks}: no such directory")


def print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def load_plan(args) -> Plan:
    """The plan for ``args.zone``; an unknown ``--pod`` is bad input."""
    plan = compile_plan(load_zone(args.zone))
    pod = getattr(args, "pod", None)
    if pod and pod not in plan.pods:
        raise InputError(f"--pod {pod}: no such pod (pods: {', '.join(list(plan.pods)[:10])}"
                         f"{', …' if len(plan.pods) > 10 else ''})")
    return plan


def state_path(args) -> str:
    """``--state``, else the zone's default state database."""
    return args.state or default_path(args.zone)


def open_store(args, plan: Plan | None = None) -> Store:
    store = Store(state_path(args))
    if plan is not None:
        store.seed(plan)
    return store
