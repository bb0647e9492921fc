"""``zone configure ZONE [--pod P]``: only the Ansible handoff, for one pod or all."""

from __future__ import annotations

import os

from ..ansible import prepare
from ..errors import InputError, WorkError
from ..up import configure
from ._args import ansible_args, check_ansible_args, json_arg, load_plan, open_store, pod_arg, \
    print_json, state_arg, zone_arg


def register(sub) -> None:
    p = sub.add_parser("configure", help="run the pod playbooks (ansible-runner) on a pod's servers")
    zone_arg(p)
    pod_arg(p)
    state_arg(p)
    json_arg(p)
    ansible_args(p)
    p.add_argument("--max-parallel", type=int, default=4, metavar="N", help="pods at once")
    p.add_argument("--timeout", type=int, default=None, metavar="S", help="per pod run, seconds")
    p.set_defaults(func=cmd_configure)


def _check(args) -> None:
    check_ansible_args(args)
    if args.max_parallel < 1:
        raise InputError("--max-parallel must be at least 1")


def _print(results: dict) -> None:
    for pod, result in results.items():
        failed = {n: h for n, h in result.hosts.items() if h.state == "failed"}
        verdict = "configured" if result.ok else f"FAILED: {result.reason}"
        print(f"pod {pod}: {verdict} ({len(result.hosts) - len(failed)}/{len(result.hosts)} "
              f"servers configured)")
        for name, host in failed.items():
            print(f"  {name}: {host.reason}")


def cmd_configure(args) -> int:
    plan = load_plan(args)
    _check(args)
    store = open_store(args, plan)
    opts = prepare(plan, os.path.dirname(os.path.abspath(store.path)), args.inventory,
                   args.playbooks, max_parallel=args.max_parallel, timeout=args.timeout)
    pods = [args.pod] if args.pod else list(plan.pods)
    results = configure(plan, pods, store, opts)
    if args.json:
        print_json({"pods": [r.as_dict() for r in results.values()]})
    else:
        _print(results)
    failed = [pod for pod, r in results.items() if not r.ok]
    if failed:
        if args.json:
            return 1
        raise WorkError(f"pods failed: {', '.join(failed)}")
    return 0
