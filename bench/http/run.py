#!/usr/bin/env python3
"""Bench: our ``/boot/ipxe`` (gunicorn) vs nginx serving the same scripts as static files.

10,000 distinct servers of examples/zone-10k.yml; wrk cycles through all of them.
Prints requests/s of both and the ratio (goal ≥ 0.5× nginx). Bench only: not a test.

    python3 bench/http/run.py [--seconds 10] [--connections 64] [--workers 2] [--threads 8]
                              [--repeat 3] [--compare TREE ...]

The machine is shared, so each round runs ours and nginx back to back, rounds are
repeated and ranges printed; besides requests/s it prints the CPU time each server's
processes spent per request, which other load on the machine disturbs far less.
``--compare TREE`` also benches the HTTP service of another source tree (e.g. an
older commit: ``git archive COMMIT bootstrap examples templates | tar -x -C TREE``)
in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bootstrap.http import create_app  # noqa: E402
from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.process import free_port  # noqa: E402
from bootstrap.state import Store  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402

ZONE = os.path.join(ROOT, "examples", "zone-10k.yml")
LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk-nodes.lua")
NGINX_CONF = """
worker_processes {workers};
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  default_type text/plain;
  client_body_temp_path {folder}/tmp; proxy_temp_path {folder}/tmp;
  fastcgi_temp_path {folder}/tmp; uwsgi_temp_path {folder}/tmp; scgi_temp_path {folder}/tmp;
  server {{ listen 127.0.0.1:{port}; root {folder}/www; }}
}}
"""


def render_static(plan, folder: str, count: int) -> list[str]:
    """Every server's script as a file, rendered by the app itself (same bytes as served)."""
    os.makedirs(os.path.join(folder, "www", "boot"))
    store = Store(os.path.join(folder, "render.db"))
    store.seed(plan)
    client = create_app(plan, store, {"NODE_SECRET": "bench"}).test_client()
    addresses = []
    for node in list(plan.servers())[:count]:
        body = client.get("/boot/ipxe", environ_base={"REMOTE_ADDR": node.address}).data
        with open(os.path.join(folder, "www", "boot", f"{node.address}.ipxe"), "wb") as fh:
            fh.write(body)
        addresses.append(node.address)
    store.close()
    with open(os.path.join(folder, "nodes.txt"), "w") as fh:
        fh.write("\n".join(addresses) + "\n")
    return addresses


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def wrk(port: int, mode: str, folder: str, args) -> tuple[float, int]:
    env = dict(os.environ, NODES_FILE=os.path.join(folder, "nodes.txt"), MODE=mode)
    out = subprocess.run(["wrk", "-t", "2", "-c", str(args.connections), "-d", f"{args.seconds}s",
                          "-s", LUA, f"http://127.0.0.1:{port}/"], env=env, capture_output=True,
                         text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = int(re.search(r"non2xx=(\d+)", out).group(1))
    return rate, bad


def cpu_seconds(group: int) -> float:
    """user + system time of every live process of a session (a server's, nginx front too)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == group:  # fields after the name: state, ppid, pgrp, session, …
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def settle(group: int, timeout: float = 120) -> float:
    """Seconds until a server's processes go idle (the front's log follower catching up)."""
    start = last = time.monotonic()
    used = cpu_seconds(group)
    while time.monotonic() - start < timeout:
        time.sleep(0.5)
        now = cpu_seconds(group)
        if now - used < 0.05:
            break
        used, last = now, time.monotonic()
    return last - start


def measure(proc: subprocess.Popen, port: int, mode: str, folder: str, args,
            idle: bool = False) -> tuple:
    """(requests/s, non-2xx answers, CPU µs per request, seconds to catch up) of one wrk
    run; with ``idle`` the CPU spent until the server is idle again counts too."""
    before = cpu_seconds(proc.pid)
    rate, bad = wrk(port, mode, folder, args)
    lag = settle(proc.pid) if idle else 0.0
    used = cpu_seconds(proc.pid) - before
    return rate, bad, used / max(rate * args.seconds, 1) * 1e6, lag


def start(cmd: list[str], port: int, log: str, cwd: str | None = None) -> subprocess.Popen:
    # a session of its own: stop() signals the whole group, cpu_seconds() sums it
    with open(log, "a") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                start_new_session=True)
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def ours(tree: str, folder: str, args, round_: int, front: str | None = None) -> tuple:
    """One run of the HTTP service of source ``tree`` on a fresh state database; with
    ``front`` behind it, CPU counted until its log follower has caught up."""
    port = free_port()
    state = os.path.join(folder, f"state-{round_}-{abs(hash(tree))}-{front}", "zone.db")
    proc = start([sys.executable, "-m", "bootstrap.http.wsgi", ZONE, "--state", state,
                  "--port", str(port), "--workers", str(args.workers),
                  "--threads", str(args.threads), "--trust-x-forwarded-for",
                  *(["--front", front] if front else [])], port,
                 os.path.join(folder, "ours.log"), cwd=tree)
    try:
        result = measure(proc, port, "ours", folder, args, idle=bool(front))
    finally:
        stop(proc)
    return (*result, *recorded(state)) if front else result


def recorded(state: str) -> tuple[int, int]:
    """(boot scripts the store recorded as served, nodes moved to booting): the follower's."""
    with sqlite3.connect(state) as db:
        events = db.execute("SELECT count(*) FROM events WHERE kind = 'ipxe-script'").fetchone()
        booting = db.execute("SELECT count(*) FROM nodes WHERE state = 'booting'").fetchone()
    return events[0], booting[0]


def nginx(folder: str, args) -> tuple:
    port = free_port()
    conf = os.path.join(folder, "nginx.conf")
    with open(conf, "w") as fh:
        fh.write(NGINX_CONF.format(workers=args.workers, folder=folder, port=port))
    proc = start(["/usr/sbin/nginx", "-c", conf, "-p", folder], port,
                 os.path.join(folder, "nginx.log"))
    try:
        return measure(proc, port, "static", folder, args)
    finally:
        stop(proc)


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{fmt.format(low)}–{fmt.format(high)} (median {fmt.format(mid)})"


def report(results: dict, args) -> None:
    nginx_rates = [r[0] for r in results["nginx"]]
    for name, runs in results.items():
        rates, cpu = [r[0] for r in runs], [r[2] for r in runs]
        print(f"{name:>12}: {spread(rates)} req/s, {spread(cpu)} CPU µs/request, "
              f"non-2xx {sum(r[1] for r in runs)}")
        if len(runs[0]) > 4:
            print(f"{'':>12}  follower caught up {spread([r[3] for r in runs], '{:.1f}')} s "
                  f"after wrk; events recorded / requests served: "
                  f"{spread([r[4] / (r[0] * args.seconds) for r in runs], '{:.3f}')}; "
                  f"nodes moved to booting: {spread([r[5] for r in runs])}")
        if name != "nginx":
            ratios = [a / b for a, b in zip(rates, nginx_rates)]
            print(f"{'':>12}  ratio to nginx in the same round: {spread(ratios, '{:.3f}')}"
                  f"  (goal >= 0.5)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (ours, then nginx)")
    parser.add_argument("--compare", action="append", default=[], metavar="TREE",
                        help="also bench the HTTP service of this source tree")
    parser.add_argument("--front", choices=("nginx",),
                        help="also bench ours behind its nginx front (--front nginx)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is needed: apt-get install -y wrk nginx-light")
    folder = tempfile.mkdtemp(prefix="bench-http-")
    os.chmod(folder, 0o755)  # nginx workers run as nobody
    os.makedirs(os.path.join(folder, "tmp"))
    plan = compile_plan(load_zone(ZONE))
    addresses = render_static(plan, folder, args.nodes)
    print(f"{len(addresses)} distinct nodes, {args.connections} connections, {args.seconds} s "
          f"a run, {args.repeat} rounds; ours: gunicorn {args.workers}x{args.threads} gthread, "
          f"fresh state each run; nginx: {args.workers} workers")
    trees = {"ours": ROOT, **{os.path.basename(t.rstrip("/")): t for t in args.compare}}
    fronted = ("fronted",) if args.front else ()
    results: dict = {name: [] for name in (*trees, *fronted, "nginx")}
    for round_ in range(args.repeat):
        for name, tree in trees.items():
            results[name].append(ours(tree, folder, args, round_))
        if args.front:
            results["fronted"].append(ours(ROOT, folder, args, round_, args.front))
        results["nginx"].append(nginx(folder, args))
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {r[-1][0]:.0f}/s"
                                                 for n, r in results.items()), flush=True)
    report(results, args)
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
