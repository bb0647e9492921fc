#!/usr/bin/env python3
"""bench/zone-up/lab.py: lab pods of 8, 16 and 32 units through ``zone up --lab``.

For each size: seconds from start to ``ready``, the share of that spent in each
pod phase (from the pod's state events), and the CPU time of ``zone up`` and of
the services (``zone serve`` and its children), i.e. the appliance's own cost.
Needs root. Usage: sudo bench/zone-up/lab.py [SIZES...]
"""

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bootstrap.state import Store  # noqa: E402


def lab_zone(folder: str, units: int) -> str:
    for item in ("firmware", "secrets"):
        shutil.copytree(os.path.join(ROOT, "examples", item), os.path.join(folder, item))
    text = open(os.path.join(ROOT, "examples", "lab.yml")).read()
    text = re.sub(r"    - \{units: 3-4, +role: hypervisor\}",
                  f"    - {{units: 3-{units}, role: hypervisor}}", text)
    path = os.path.join(folder, "lab.yml")
    with open(path, "w") as fh:
        fh.write(text)
    return path


def phases(store: Store) -> dict:
    marks = [(e["ts"], e["detail"]["state"]) for e in store.events(kind="pod", limit=1000)]
    out = {}
    for (t0, state), (t1, _next) in zip(marks, marks[1:]):
        out[state] = out.get(state, 0) + (t1 - t0)
    return out


def run(units: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        zone = lab_zone(tmp, units)
        state = os.path.join(tmp, "state", "zone.db")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bootstrap", "up", zone, "--lab", "--no-configure",
                        "--state", state, "--json", "--timeout", "600"], check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        store = Store(state)
        ready = store.counts(kind="server").get("ready", 0)
        return {"units": units, "ready": ready, "seconds": wall, "phases": phases(store),
                "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}


def main() -> None:
    sizes = [int(s) for s in sys.argv[1:]] or [8, 16, 32]
    for units in sizes:
        r = run(units)
        total = sum(r["phases"].values()) or 1
        shares = ", ".join(f"{k} {v / total:.0%}" for k, v in r["phases"].items())
        print(f"{units:>3} units: {r['ready']}/{units} ready in {r['seconds']:.1f} s "
              f"(phases: {shares}); appliance CPU {r['cpu']:.1f} s incl. lab agents")
        print("     " + json.dumps(r))


if __name__ == "__main__":
    main()
