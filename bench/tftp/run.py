#!/usr/bin/env python3
"""Bench: 100 concurrent TFTP fetches of undionly.kpxe, our service vs tftpd-hpa.

Each round starts N ``curl tftp://…`` processes at once against one server and times
until the last has finished; every fetched copy is compared with the source file.
Rounds alternate between the servers; prints the median wall time of each and the
ratio tftpd-hpa time / our time (goal ≥ 1.0: we are at least as fast), and the CPU
our server spent per round (steadier than wall time on a shared machine). Bench only:
not a test.

    python3 bench/tftp/run.py [--clients 100] [--rounds 5] [--blksize 512] [--workers 2]
        [--file undionly.kpxe]

Needs Debian ``tftpd-hpa`` (``in.tftpd``) and ``curl``. Both servers listen on
127.0.0.1 only and serve the same directory, /usr/lib/ipxe (Debian ``ipxe``).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IPXE = "/usr/lib/ipxe"
sys.path.insert(0, ROOT)

from bench.benchlib import free_port, serve_program  # noqa: E402

OURS = serve_program("""
from bootstrap.tftp import TftpService
service = TftpService(sys.argv[1], sys.argv[2], None, "127.0.0.1", int(sys.argv[3]),
                      workers=int(sys.argv[4])).start()
""")


def start_ours(port: int, cache: str, workers: int):
    proc = subprocess.Popen([sys.executable, "-c", OURS, IPXE, cache, str(port), str(workers)],
                            cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def start_hpa(port: int):
    proc = subprocess.Popen(["in.tftpd", "--foreground", "--secure", "--address",
                             f"127.0.0.1:{port}", "--user", "root", IPXE])
    time.sleep(0.5)
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def fetch_command(port: int, name: str, out: str, blksize: int, windowsize: int) -> list:
    """curl, or atftp when a window is asked for (curl has no RFC 7440)."""
    if not windowsize:
        return ["curl", "-sS", "--max-time", "60", "--tftp-blksize", str(blksize),
                "-o", out, f"tftp://127.0.0.1:{port}/{name}"]
    return ["atftp", "--option", f"blksize {blksize}", "--option", f"windowsize {windowsize}",
            "-g", "-r", name, "-l", out, "127.0.0.1", str(port)]


def fetch_round(port: int, name: str, clients: int, blksize: int, folder: str,
                windowsize: int = 0) -> float:
    """Seconds for ``clients`` concurrent fetches; raises if any copy differs."""
    outs = [os.path.join(folder, f"{port}-{i}") for i in range(clients)]
    start = time.perf_counter()
    procs = [subprocess.Popen(fetch_command(port, name, out, blksize, windowsize))
             for out in outs]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - start
    bad = [out for out, code in zip(outs, codes)
           if code != 0 or not filecmp.cmp(out, os.path.join(IPXE, name), shallow=False)]
    if bad:
        raise RuntimeError(f"{len(bad)} of {clients} fetches failed or differ")
    for out in outs:
        os.unlink(out)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--blksize", type=int, default=512, help="512 (curl's default) or a PXE "
                        "ROM's 1432/1468")
    parser.add_argument("--file", default="undionly.kpxe")
    parser.add_argument("--workers", type=int, default=2, help="our transfer threads")
    parser.add_argument("--windowsize", type=int, default=0, help="RFC 7440 window; fetches "
                        "with atftp instead of curl (tftpd-hpa ignores the option)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-tftp-")
    ours_port, hpa_port = free_port(), free_port()
    servers = [start_ours(ours_port, os.path.join(folder, "cache"), args.workers), start_hpa(hpa_port)]
    times = {"ours": [], "tftpd-hpa": []}
    cpu = []            # ours only: tftpd-hpa's forked children are not accounted to it
    targets = {"ours": (ours_port, servers[0].pid), "tftpd-hpa": (hpa_port, servers[1].pid)}
    try:
        for port, _ in targets.values():                                   # warm both
            fetch_round(port, args.file, 1, args.blksize, folder, args.windowsize)
        for _ in range(args.rounds):
            for name, (port, pid) in targets.items():
                before = cpu_seconds(pid)
                times[name].append(fetch_round(port, args.file, args.clients, args.blksize,
                                               folder, args.windowsize))
                if name == "ours":
                    cpu.append(cpu_seconds(pid) - before)
    finally:
        for proc in servers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, values in times.items():
        print(f"{name:10s} median {med[name]:.2f} s  rounds " + " ".join(f"{v:.2f}" for v in values))
    print(f"our server's CPU per round (median): {statistics.median(cpu):.2f} s")
    print(f"{args.clients} concurrent fetches of {args.file}, blksize {args.blksize}, "
          f"windowsize {args.windowsize or '-'}")
    print(f"ratio tftpd-hpa time / our time: {med['tftpd-hpa'] / med['ours']:.2f}  (goal >= 1.0)")


if __name__ == "__main__":
    main()
