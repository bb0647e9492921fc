"""``zone firmware ZONE plan|apply|boot``: Redfish firmware compliance, rolling update, PXE boot.

plan exits 0 when every BMC is at its baseline, 3 on drift, 1 when a BMC could
not be read. apply checks every image's sha256 before any BMC is contacted.
"""

from __future__ import annotations

import sys
import threading
import time

from ..errors import InputError
from ..redfish import catalog
from ..redfish.client import Policy, endpoint_for, load_credentials, tls_settings
from ..redfish.fleet import Settings, apply_all, bmcs, discover_all, pxe_boot_all
from ..redfish.images import ImageServer, bind_address, verify_images
from ..redfish.recording import StoreRecorder
from ..redfish.rollout import Limits
from ._args import json_arg, load_plan, open_store, pod_arg, print_json, state_arg, zone_arg

EXIT_DRIFT = 3


def register(sub) -> None:
    p = sub.add_parser("firmware", help="Redfish firmware compliance, rolling update, PXE boot")
    zone_arg(p)
    p.add_argument("action", choices=("plan", "apply", "boot"),
                   help="plan: compare with the baseline; apply: rolling update; "
                        "boot: one-time PXE boot and reset, staggered per pod")
    pod_arg(p)
    json_arg(p)
    state_arg(p)
    p.add_argument("--max-parallel", type=int, default=10, metavar="N",
                   help="BMCs worked on at once (default 10)")
    p.add_argument("--max-parallel-per-pod", type=int, metavar="M",
                   help="BMCs worked on at once in one pod (default: no pod bound)")
    p.add_argument("--insecure", action="store_true",
                   help="do not verify the BMCs' TLS certificates")
    p.add_argument("--image-base-url", metavar="URL",
                   help="where BMCs fetch images (default: serve them from this appliance)")
    p.add_argument("--image-bind", metavar="ADDR",
                   help="address to serve images on (default: loopback for loopback BMCs, "
                        "else the controller.url host)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds per BMC request (default 10)")
    p.add_argument("--retries", type=int, default=Policy.retries, metavar="N",
                   help="retries of a transient BMC failure (connection trouble, HTTP "
                        f"429/500/502/503/504) where repeating is safe (default {Policy.retries})")
    p.add_argument("--task-timeout", type=float, default=1800.0, metavar="S",
                   help="seconds an update task may run (default 1800)")
    p.add_argument("--verify-timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the new version to show (default 60)")
    p.add_argument("--boot-uri", metavar="URI", help="boot: UEFI HTTP boot URI where supported")
    p.add_argument("--per-second", type=float, metavar="R",
                   help="boot: power-ons per second per pod (default: the zone's up.power_on_per_second)")
    p.set_defaults(func=cmd_firmware)


def _settings(args, zone) -> Settings:
    try:
        limits = Limits(args.max_parallel, args.max_parallel_per_pod)
    except ValueError as exc:
        raise InputError(f"--max-parallel: {exc}") from None
    return Settings(zone, load_credentials(zone), tls_settings(zone, args.insecure),
                    Policy(args.timeout, max(0, args.retries)), limits,
                    task_timeout=args.task_timeout, verify_timeout=args.verify_timeout)


class Progress:
    """One line per finished node on stderr, as it happens."""

    def __init__(self, total: int, quiet: bool = False):
        self.total, self.done, self.quiet = total, 0, quiet
        self.lock, self.start = threading.Lock(), time.monotonic()

    def __call__(self, name, outcome):
        with self.lock:
            self.done += 1
            if self.quiet:
                return
            text = _outcome_text(outcome)
            sys.stderr.write(f"[{self.done:>{len(str(self.total))}}/{self.total}] "
                             f"{time.monotonic() - self.start:6.1f}s {name}: {text}\n")
            sys.stderr.flush()


def _outcome_text(outcome) -> str:
    kind, value = outcome
    if kind == "error":
        return f"FAILED {_reason(value)}"
    if hasattr(value, "updated"):
        if value.updated:
            return "updated " + ", ".join(f"{s.component} {s.current} -> {s.target}"
                                          for s in catalog.drift(value.steps))
        return "compliant"
    if isinstance(value, dict) and "boot" in value:
        return f"boot {value['boot']} once, {value['reset']}"
    return "read"


def _reason(exc) -> str:
    return getattr(exc, "message", None) or str(exc)


def _errors(results) -> dict:
    return {name: _reason(value) for name, (kind, value) in results.items() if kind == "error"}


def cmd_firmware(args) -> int:
    plan = load_plan(args)
    settings = _settings(args, plan.zone)
    store = open_store(args, plan)
    try:
        return {"plan": _plan, "apply": _apply, "boot": _boot}[args.action](args, plan, settings, store)
    finally:
        store.close()


def _plan(args, plan, settings, store) -> int:
    nodes = bmcs(plan, args.pod)
    progress = Progress(len(nodes), quiet=True)
    results = discover_all(settings, nodes, StoreRecorder(store), progress)
    steps = []
    for node in nodes:
        kind, found = results[node.name]
        if kind == "ok":
            steps += catalog.compare(node, catalog.baseline(plan.zone, node), found.fw.lookup)
    errors = _errors(results)
    seen = {name: value.as_dict() for name, (kind, value) in results.items() if kind == "ok"}
    _print_plan(args, steps, errors, seen, [n.name for n in nodes])
    if errors:
        return 1
    return EXIT_DRIFT if catalog.drift(steps) else 0


def _print_plan(args, steps, errors, seen, names) -> None:
    summary = catalog.summary(steps, errors, names)
    if args.json:
        print_json({"steps": [s.as_dict() for s in steps], "errors": errors, "summary": summary,
                    "bmcs": seen})
        return
    rows = [("node", "component", "current", "baseline", "action")]
    rows += [(s.node, s.component, s.current or "-", s.target, s.action) for s in steps]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    for name, reason in errors.items():
        print(f"{name}: FAILED {reason}")
    print(f"{summary['nodes']} BMCs: {summary['compliant']} compliant, {summary['drift']} drift, "
          f"{summary['failed']} failed")


def _apply(args, plan, settings, store) -> int:
    nodes = bmcs(plan, args.pod, with_baseline=True)
    entries = [fw for node in nodes for fw in catalog.baseline(plan.zone, node)]
    images = verify_images(plan.zone, entries)   # before any BMC is contacted
    if not nodes:
        print("no BMC has a firmware baseline: nothing to do")
        return 0
    progress = Progress(len(nodes), quiet=args.json)
    if not args.json:
        per_pod = f", {settings.limits.max_per_pod} per pod" if settings.limits.max_per_pod else ""
        sys.stderr.write(f"{len(nodes)} BMCs with a baseline, at most "
                         f"{settings.limits.max_parallel} at once{per_pod}; "
                         f"{len(images)} image(s) checked\n")
    recorder = StoreRecorder(store)
    if args.image_base_url:
        results = apply_all(settings, nodes, images, args.image_base_url, recorder, progress)
    else:
        bind = args.image_bind or bind_address(plan.zone, [endpoint_for(plan.zone, n) for n in nodes])
        with ImageServer(images, bind) as server:
            results = apply_all(settings, nodes, images, server.base_url, recorder, progress)
    return _report_apply(args, results, time.monotonic() - progress.start)


def _report_apply(args, results, seconds: float) -> int:
    errors = _errors(results)
    updated = sorted(n for n, (k, v) in results.items() if k == "ok" and v.updated)
    compliant = sorted(n for n, (k, v) in results.items() if k == "ok" and not v.updated)
    if args.json:
        print_json({"updated": updated, "compliant": compliant, "errors": errors,
                    "seconds": round(seconds, 2)})
    else:
        print(f"{len(results)} BMCs in {seconds:.1f}s: {len(updated)} updated, "
              f"{len(compliant)} already compliant, {len(errors)} failed")
    return _report_failures(args, errors)


def _boot(args, plan, settings, store) -> int:
    nodes = bmcs(plan, args.pod)
    rate = args.per_second or plan.zone.up.power_on_per_second
    if rate <= 0:
        raise InputError("--per-second must be positive")
    progress = Progress(len(nodes), quiet=args.json)
    results = pxe_boot_all(settings, nodes, rate, StoreRecorder(store), args.boot_uri,
                           on_done=progress)
    errors = _errors(results)
    if args.json:
        print_json({"booted": sorted(n for n, (k, _) in results.items() if k == "ok"),
                    "errors": errors})
    else:
        print(f"{len(results) - len(errors)} of {len(results)} nodes set to boot once from "
              f"the network and reset")
    return _report_failures(args, errors)


def _report_failures(args, errors: dict) -> int:
    """One line per failed BMC (--json output already lists them); exit 1 when any failed."""
    if not args.json:
        for name, reason in errors.items():
            print(f"{name}: FAILED {reason}")
    return 1 if errors else 0
