"""How long ansible-runner takes to converge N lab targets in one pod, and what the
appliance's event handling costs over a bare ``ansible-playbook`` run.

    python3 bench/ansible/run.py [--sizes 2 4 8] [--repeat 3] [--json OUT]

For each N: a one-pod zone of N servers (u01 sdn, u02 storage, the rest
hypervisors), N fresh targets (zonelab/targets.py: debootstrapped
Debian 12 in namespaces over SSH), then

* converge: the appliance's handoff (``bootstrap.up.configure``) on the fresh
  targets: wall time, events, changed tasks;
* overhead: the same, now idempotent, playbook on the same targets, alternately
  through the appliance and through bare ``ansible-playbook`` with the same
  inventory, limit, forks and environment; the medians are compared. Idempotent
  runs do the same work every time, so the difference is the runner + event
  handling, not apt. Time spent inside the appliance's event handler is measured
  on its own too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from zonelab import targets as tg  # noqa: E402
from bootstrap import ansible as handoff  # noqa: E402
from bootstrap import up  # noqa: E402
from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.render import inventory  # noqa: E402
from bootstrap.state import Store  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402

POD = "p01"


def zone_of(n: int, work: Path) -> Path:
    """The lab zone with one pod of ``n`` servers."""
    text = (ROOT / "examples" / "lab.yml").read_text()
    units = "    - {units: 1, role: sdn}\n    - {units: 2, role: storage}\n"
    if n > 2:
        units += f"    - {{units: 3-{n}, role: hypervisor}}\n"
    text = re.sub(r"  units:\n(    - .*\n)+", "  units:\n" + units, text)
    for ref in ("secrets", "firmware", "images"):
        (work / ref).symlink_to(ROOT / "examples" / ref)
    path = work / "zone.yml"
    path.write_text(text)
    return path


class Timed:
    """Wraps PodRun.handle to add up the time the appliance spends on events."""

    def __init__(self):
        self.seconds, self.events = 0.0, 0
        self.original = handoff.PodRun.handle

    def __enter__(self):
        timed = self

        def handle(run, event):
            t = time.perf_counter()
            try:
                return timed.original(run, event)
            finally:
                timed.seconds += time.perf_counter() - t
                timed.events += 1

        handoff.PodRun.handle = handle
        return self

    def __exit__(self, *exc):
        handoff.PodRun.handle = self.original


def appliance(plan, store, opts) -> dict:
    with Timed() as timed:
        t = time.perf_counter()
        result = up.configure(plan, [POD], store, opts)[POD]
        wall = time.perf_counter() - t
    assert result.ok, result.as_dict()
    return {"seconds": wall, "handler_seconds": timed.seconds, "events": timed.events,
            "changed": sum(h.stats.get("changed", 0) for h in result.hosts.values())}


def bare(opts, n: int) -> dict:
    cmd = ["ansible-playbook", "-f", str(n), "--limit", f"pod_{POD}"]
    for inv in opts.inventories:
        cmd += ["-i", inv]
    env = dict(os.environ, **handoff.RUNNER_ENV)
    t = time.perf_counter()
    out = subprocess.run(cmd + [str(Path(opts.playbooks) / opts.playbook)], env=env,
                         capture_output=True, text=True, cwd=opts.playbooks)
    wall = time.perf_counter() - t
    assert out.returncode == 0, out.stdout[-3000:]
    changed = sum(int(c) for c in re.findall(r"changed=(\d+)", out.stdout))
    return {"seconds": wall, "changed": changed}


def bench_size(n: int, repeat: int, base: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"zbt-bench{n}-"))
    plan = compile_plan(load_zone(str(zone_of(n, work))))
    store = Store(str(work / "zone.db"))
    store.seed(plan)
    inventory.write(plan, str(work / "inventory"))
    with tg.Targets(base) as targets:
        for node in plan.servers(POD):
            targets.start(node.name, node.address)
        conn = targets.write_inventory(str(work / "targets.yml"))
        opts = handoff.Options(work_dir=str(work / "ansible"),
                               inventories=(str(work / "inventory"), conn))
        converge = appliance(plan, store, opts)
        runs = {"appliance": [], "bare": []}
        for _ in range(repeat):
            runs["appliance"].append(appliance(plan, store, opts))
            runs["bare"].append(bare(opts, n))
    store.close()
    subprocess.run(["rm", "-rf", str(work)])
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    return {"n": n, "converge": converge, "idempotent": runs, "median": med,
            "overhead": med["appliance"] / med["bare"] - 1,
            "handler_share": statistics.median(r["handler_seconds"] / r["seconds"]
                                               for r in runs["appliance"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    base = tg.base_rootfs()
    results = []
    for n in args.sizes:
        r = bench_size(n, args.repeat, base)
        results.append(r)
        c = r["converge"]
        print(f"N={n}: converge {c['seconds']:.1f} s ({c['changed']} changed, {c['events']} events); "
              f"idempotent median appliance {r['median']['appliance']:.1f} s, bare "
              f"{r['median']['bare']:.1f} s, overhead {r['overhead']:+.1%}; event handler "
              f"{r['handler_share']:.2%} of the run", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
