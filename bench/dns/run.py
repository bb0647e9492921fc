#!/usr/bin/env python3
"""Bench: our DNS service vs nsd serving the same zone files, measured with dnsperf.

The zone files are the ones ``zone render`` writes; the queries are every A and PTR
name of the plan, shuffled. Both servers run side by side; each first gets one pass
over every name, then timed runs alternate between them (the machine is shared, so
alternating spreads its noise over both); prints the median queries/s of both and the
ratio (goal ≥ 0.5× nsd). Bench only: not a test.

Ours caches each packed reply (see ``bootstrap.dns.cache_key``), so the first pass over
the names (cold: every query parsed and encoded by dnslib) is reported apart from the
timed run after it (warm: the steady state of a server whose clients ask again).

    python3 bench/dns/run.py [--zone examples/zone-10k.yml] [--seconds 5] [--rounds 5]
        [--clients 8] [--nsd-servers 1]

Needs Debian ``nsd`` and ``dnsperf``. Both servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.render.dnszone import zones  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402
from bench.benchlib import free_port, serve_program  # noqa: E402

NSD_CONF = """server:
  ip-address: 127.0.0.1@{port}
  port: {port}
  server-count: {servers}
  username: ""
  chroot: ""
  zonesdir: "{zonesdir}"
  pidfile: "{folder}/nsd.pid"
  database: ""
  xfrdfile: "{folder}/xfrd.state"
  xfrdir: "{folder}"
  zonelistfile: "{folder}/zone.list"
  logfile: "{folder}/nsd.log"
  verbosity: 0
  rrl-ratelimit: 0          # response rate limiting off: the bench is one client asking a lot
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
"""

OURS = serve_program("""
from bootstrap.dns import DnsService
from bootstrap.plan import compile_plan
from bootstrap.zone import load_zone
service = DnsService(compile_plan(load_zone(sys.argv[1])), "127.0.0.1", int(sys.argv[2])).start()
""")


def render(zone: str, folder: str) -> str:
    """The zone files, written by the product's own ``zone render``."""
    out = os.path.join(folder, "render")
    subprocess.run([sys.executable, "-m", "bootstrap", "render", zone, "--out", out],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return os.path.join(out, "dns")


def query_file(plan, folder: str) -> str:
    lines = [f"{name} {rtype}" for zone in zones(plan).values()
             for name, rtype, _ in zone.records]
    random.Random(1).shuffle(lines)
    path = os.path.join(folder, "queries.txt")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def start_nsd(plan, zonesdir: str, folder: str, port: int, servers: int):
    conf = os.path.join(folder, "nsd.conf")
    with open(conf, "w", encoding="utf-8") as fh:
        fh.write(NSD_CONF.format(port=port, servers=servers, zonesdir=zonesdir, folder=folder))
        for origin in zones(plan):
            fh.write(f'zone:\n  name: "{origin}"\n  zonefile: "db.{origin}"\n')
    proc = subprocess.Popen(["nsd", "-d", "-c", conf], stderr=subprocess.PIPE)
    return proc


def start_ours(zone: str, port: int):
    proc = subprocess.Popen([sys.executable, "-c", OURS, zone, str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def wait_answering(port: int, name: str) -> None:
    for _ in range(100):
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+time=1",
                              "+tries=1", name], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answers {name} on port {port}")


def dnsperf(port: int, queries: str, clients: int, *limit: str) -> dict:
    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", queries,
                          "-c", str(clients), "-T", "1", *limit],
                         capture_output=True, text=True, check=True).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lost = re.search(r"Queries lost:\s+(\d+)", out).group(1)
    codes = re.search(r"Response codes:\s+(.*)", out).group(1)
    return {"qps": qps, "lost": int(lost), "codes": codes}


def warm(name: str, port: int, probe: str, queries: str, clients: int) -> None:
    wait_answering(port, probe)
    cold = dnsperf(port, queries, clients, "-n", "1")             # every name once
    print(f"{name:5s} first pass over every name (cold): {cold['qps']:>9,.0f} q/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone", default=os.path.join(ROOT, "examples", "zone-10k.yml"))
    parser.add_argument("--seconds", type=float, default=5, help="length of one timed run")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per server, alternating")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--nsd-servers", type=int, default=1,
                        help="nsd server-count (processes); ours is one process")
    args = parser.parse_args()
    plan = compile_plan(load_zone(args.zone))
    probe = next(plan.servers()).fqdn
    folder = tempfile.mkdtemp(prefix="bench-dns-")
    procs = []
    try:
        zonesdir, queries = render(args.zone, folder), query_file(plan, folder)
        ports = {"nsd": free_port(), "ours": free_port()}
        procs.append(start_nsd(plan, zonesdir, folder, ports["nsd"], args.nsd_servers))
        procs.append(start_ours(args.zone, ports["ours"]))
        for name, port in ports.items():
            warm(name, port, probe, queries, args.clients)
        runs = {name: [] for name in ports}
        lost = {name: 0 for name in ports}
        for _ in range(args.rounds):
            for name, port in ports.items():
                result = dnsperf(port, queries, args.clients, "-l", str(args.seconds))
                assert result["codes"].startswith("NOERROR") and "%)" in result["codes"] \
                    and result["codes"].count("(") == 1, result      # nothing but NOERROR
                runs[name].append(result["qps"])
                lost[name] += result["lost"]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    median = {name: statistics.median(values) for name, values in runs.items()}
    for name, values in runs.items():
        print(f"{name:5s} warm median {median[name]:>9,.0f} q/s  runs "
              + " ".join(f"{v:,.0f}" for v in values) + f"  lost {lost[name]}")
    print(f"ratio ours/nsd: {median['ours'] / median['nsd']:.2f}  (goal >= 0.5)")


if __name__ == "__main__":
    main()
