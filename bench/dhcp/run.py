"""DHCP benchmark: ours vs ISC Kea and dnsmasq, same zone, same load, one run.

    python3 bench/dhcp/run.py [--zone examples/zone-10k.yml] [--seconds 5] [--rates 1000,2000,…]

Needs root, kea-dhcp4-server, dnsmasq(-base) and kea-admin (perfdhcp) — bench
dependencies, not test dependencies. Two namespaces joined by a veth: ``srv``
(10.17.0.2, the server under test) and ``gen`` (every pod's provision gateway
10.17.<pod>.1, the relay side). Load: bench/dhcp/loadgen.py, DORA spread over
all 10,000 server locations (giaddr = pod gateway, circuit-id = swp<unit>),
stepping the DISCOVER rate up until 1 % or more are not ACKed. The figure for a
server is the best leases/s (counted from ACKs) of a step under 1 % drops.
Also a perfdhcp run per server with one circuit-id (perfdhcp's own mode).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402
from zonelab.netns import Namespaces, wait_for  # noqa: E402

SERVER, GEN = "10.17.0.2", "10.17.0.100"
DEFAULT_RATES = "250,500,750,1000,1500,2000,3000,4000,5000,6000,8000,10000,12000,14000,16000,20000"


def kea_config(plan, folder: str, threads: int = 0) -> str:
    zone = plan.zone
    subnets = []
    for pod in sorted(zone.pods, key=lambda p: p.index):
        sub = plan.subnets[("provision", pod.index)]
        reservations = [{"circuit-id": f"'swp{n.unit}'", "ip-address": n.address, "hostname": n.name}
                        for n in plan.servers(pod.name)]
        subnets.append({"id": pod.index, "subnet": sub.cidr, "reservations": reservations,
                        "option-data": [{"name": "routers", "data": sub.gateway}]})
    config = {"Dhcp4": {
        "interfaces-config": {"interfaces": [f"srv0/{SERVER}"], "dhcp-socket-type": "udp"},
        "lease-database": {"type": "memfile", "persist": True, "lfc-interval": 0,
                           "name": os.path.join(folder, "kea-leases4.csv")},
        "host-reservation-identifiers": ["circuit-id"],
        "valid-lifetime": zone.dhcp.lease_time, "renew-timer": zone.dhcp.renew_time,
        "rebind-timer": zone.dhcp.rebind_time,
        "option-data": [{"name": "domain-name-servers", "data": ", ".join(zone.dns_upstreams)},
                        {"name": "ntp-servers", "data": ", ".join(zone.ntp)},
                        {"name": "domain-name", "data": zone.domain}],
        "subnet4": subnets,
        "multi-threading": {"enable-multi-threading": threads > 0, "thread-pool-size": threads,
                            "packet-queue-size": 64},
        "loggers": [{"name": "kea-dhcp4", "severity": "WARN",
                     "output_options": [{"output": "stderr"}]}]}}
    path = os.path.join(folder, f"kea{threads or ''}.json")
    with open(path, "w") as fh:
        json.dump(config, fh)
    return path


def dnsmasq_config(plan, folder: str) -> str:
    zone = plan.zone
    lines = ["port=0", "no-resolv", "no-hosts", "bind-interfaces", f"listen-address={SERVER}",
             "dhcp-authoritative", "no-ping", "quiet-dhcp", "log-facility=-",
             f"dhcp-leasefile={os.path.join(folder, 'dnsmasq.leases')}",
             f"dhcp-option=option:dns-server,{','.join(zone.dns_upstreams)}",
             f"dhcp-option=option:ntp-server,{','.join(zone.ntp)}",
             f"dhcp-option=option:domain-name,{zone.domain}"]
    units = sorted({n.unit for n in plan.servers()})
    lines += [f"dhcp-circuitid=set:swp{u},swp{u}" for u in units]
    for pod in sorted(zone.pods, key=lambda p: p.index):
        sub = plan.subnets[("provision", pod.index)]
        net = sub.cidr.split("/")[0]
        lines.append(f"dhcp-range=set:{pod.name},{net},static,{sub.netmask},{zone.dhcp.lease_time}")
        lines.append(f"dhcp-option=tag:{pod.name},option:router,{sub.gateway}")
        lines += [f"dhcp-host=*:*:*:*:*:*,tag:swp{n.unit},{n.address},{n.name}"
                  for n in plan.servers(pod.name)]
    path = os.path.join(folder, "dnsmasq.conf")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def servers(plan, zone_path: str, folder: str, workers: int) -> dict:
    """name → command line of each server under test (run inside the srv namespace)."""
    env_kea = f"KEA_PIDFILE_DIR={folder} KEA_LOCKFILE_DIR={folder}"
    return {
        "kea": ["env", *env_kea.split(), "kea-dhcp4", "-c", kea_config(plan, folder)],
        f"kea-mt{workers}": ["env", *env_kea.split(), "kea-dhcp4", "-c",
                             kea_config(plan, folder, workers)],
        "dnsmasq": ["dnsmasq", "-k", "-C", dnsmasq_config(plan, folder)],
        "ours": [sys.executable, os.path.join(HERE, "ours.py"), zone_path, SERVER, "1"],
        f"ours-{workers}w": [sys.executable, os.path.join(HERE, "ours.py"), zone_path, SERVER,
                             str(workers)],
    }


def topology(lab: Namespaces, plan):
    srv, gen = lab.namespace("srv"), lab.namespace("gen")
    lab.link(srv, "srv0", gen, "gen0", f"{SERVER}/24", f"{GEN}/24")
    for pod in plan.zone.pods:
        gen.address("gen0", f"{plan.subnets[('provision', pod.index)].gateway}/32")
    srv.route("10.17.0.0/16", "via", GEN)
    return srv, gen


def ready(gen, generator: list) -> bool:
    """Two DORAs at a trickle get their ACKs: the server is up."""
    out = gen.run(generator + ["20", "0.1", "0"], check=False, timeout=30).stdout
    return bool(out) and json.loads(out.splitlines()[-1])["acks"] > 0


def build_loadgen(zone_path: str, folder: str) -> list:
    """The C generator and its templates; it keeps up with far more than the Python one."""
    binary, templates = os.path.join(folder, "loadgen"), os.path.join(folder, "templates.bin")
    subprocess.run(["gcc", "-O2", "-o", binary, os.path.join(HERE, "loadgen.c")], check=True)
    subprocess.run([sys.executable, os.path.join(HERE, "loadgen.py"), zone_path, templates],
                   check=True)
    return [binary, templates, SERVER]


def loadgen(gen, generator: list, rates, seconds: float) -> list:
    """Step the DISCOVER rate up until a step loses 1 % or more."""
    steps, start = [], 0
    for rate in rates:
        out = gen.run(generator + [str(rate), str(seconds), str(start)], timeout=seconds + 60).stdout
        step = json.loads(out.strip().splitlines()[-1])
        steps.append(step)
        start += step["sent"]
        if step["drop_pct"] >= 1.0:
            break
    return steps


def perfdhcp(gen, rate: int, seconds: int) -> dict:
    """perfdhcp's own mode: one relay address, one circuit-id (swp7), DORA at ``rate``.

    One client (``-R 1``): a reservation by circuit-id holds one address, so with
    many MACs on one port Kea and dnsmasq would answer only the first.
    """
    if shutil.which("perfdhcp") is None:
        return {}
    cmd = ["perfdhcp", "-4", "-l", "10.17.1.1", "-r", str(rate), "-p", str(seconds), "-R", "1",
           "-o", "82,0104" + b"swp7".hex(), SERVER]
    out = gen.run(cmd, check=False, timeout=seconds + 30).stdout
    sent = re.search(r"sent packets: (\d+)", out)
    received = re.findall(r"received packets: (\d+)", out)
    if not sent or len(received) < 2:
        return {"rate": rate, "error": out[-300:]}
    discovers, acks = int(sent.group(1)), int(received[1])
    return {"rate": rate, "sent": discovers, "acks": acks,
            "drop_pct": round(100.0 * (discovers - acks) / max(discovers, 1), 3),
            "leases_per_s": round(acks / seconds, 1)}


def perfdhcp_steps(gen, rates, seconds: int) -> list:
    steps = []
    for rate in rates:
        step = perfdhcp(gen, rate, seconds)
        if not step:
            break
        steps.append(step)
        if step.get("drop_pct", 100) >= 1.0:
            break
    return steps


def best(steps: list) -> dict | None:
    good = [s for s in steps if s["drop_pct"] < 1.0]
    return max(good, key=lambda s: s["leases_per_s"]) if good else None


def bench_one(srv, gen, name, cmd, args, folder) -> dict:
    """Both load phases, each against a freshly started server with no leases."""
    result = {"name": name}
    steps = phase(srv, gen, name, cmd, args, folder,
                  lambda: loadgen(gen, args.generator, args.rates, args.seconds))
    result.update(steps=steps, best=best(steps))
    if args.perfdhcp:
        perf = phase(srv, gen, name, cmd, args, folder,
                     lambda: perfdhcp_steps(gen, args.rates, max(1, int(args.seconds))))
        result.update(perfdhcp=perf, perfdhcp_best=best([p for p in perf if "drop_pct" in p]))
    return result


def phase(srv, gen, name, cmd, args, folder, work) -> list:
    for stale in os.listdir(folder):  # no leases from an earlier phase
        if "leases" in stale:
            os.unlink(os.path.join(folder, stale))
    log_path = os.path.join(folder, f"{name}.log")
    with open(log_path, "ab") as log:  # a file, not a pipe: a full pipe would stall the server
        proc = srv.popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_for(lambda: ready(gen, args.generator), timeout=60, interval=0.5):
            print(f"# {name} never answered: {_tail(log_path)}", flush=True)
            return []
        return work()
    finally:
        srv.lab.stop(proc)


def _tail(path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read()[-2000:].decode("utf-8", "replace")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zone", default=os.path.join(ROOT, "examples", "zone-10k.yml"))
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rates", default=DEFAULT_RATES)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default="",
                    help="comma-separated subset: kea,kea-mt2,dnsmasq,ours,ours-2w")
    ap.add_argument("--perfdhcp", action="store_true",
                    help="also step perfdhcp (one location: one circuit-id, one client)")
    ap.add_argument("--keep-logs", default="", help="copy each server's log to this folder")
    args = ap.parse_args(argv)
    args.rates = [int(r) for r in args.rates.split(",")]
    plan = compile_plan(load_zone(args.zone))
    results = []
    with tempfile.TemporaryDirectory(prefix="dhcp-bench-") as folder, Namespaces("db") as lab:
        srv, gen = topology(lab, plan)
        args.generator = build_loadgen(args.zone, folder)
        for name, cmd in servers(plan, args.zone, folder, args.workers).items():
            if args.only and name not in args.only.split(","):
                continue
            print(f"# {name}: {' '.join(cmd)}", flush=True)
            result = bench_one(srv, gen, name, cmd, args, folder)
            if args.keep_logs:
                shutil.copy(os.path.join(folder, f"{name}.log"), args.keep_logs)
            print(json.dumps(result), flush=True)
            results.append(result)
    report(results, os.cpu_count())
    return 0


def report(results: list, cpus: int) -> None:
    for key, title in (("best", "loadgen.c, DORA spread over all 10,000 locations"),
                       ("perfdhcp_best", "perfdhcp -R 1 -o 82,swp7: one location")):
        rows = [(r["name"], r.get(key)) for r in results if key in r]
        if not rows:
            continue
        kea = next((b for name, b in rows if name == "kea" and b), None)
        print(f"\nleases/s (ACKs) at < 1 % drops, {title}, {cpus} CPUs:")
        for name, b in rows:
            if not b:
                print(f"  {name:10s} no step under 1 % drops")
                continue
            ratio = f"{b['leases_per_s'] / kea['leases_per_s']:5.2f}x Kea" if kea else ""
            print(f"  {name:10s} {b['leases_per_s']:9.1f}  (offered {b['rate']}/s, "
                  f"drops {b['drop_pct']} %)  {ratio}")


if __name__ == "__main__":
    sys.exit(main())
