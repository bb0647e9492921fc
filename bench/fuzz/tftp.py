#!/usr/bin/env python3
"""Fuzz: mutated TFTP packets through our TFTP service; reports packets, crashes, fds and memory.

Seeds are valid packets of every kind: read requests (names here, names the controller
has, names nobody has, deep names; with blksize, tsize and unknown options; modes octet,
netascii, mail), write requests, and what a peer sends during a transfer (ACK, ERROR,
OACK, DATA). Each packet is a seed with one to three mutations: bit flips, truncation,
inserted or deleted bytes, option garbage (unknown names, non-numeric, negative and
huge values, missing terminators), a huge blksize, a swapped opcode, a lost NUL, or
plain random bytes.

In-process (``--packets``), on a started service with a controller on loopback:
- requests (80 %) through ``TftpService.handle_request``, the function the request
  loop runs for each datagram, from 200 loopback addresses and random ports, so
  admission, refusals, fetches and the cache all run;
- transfer packets (20 %) through ``transfers.step``, what a transfer loop runs for
  each datagram, on transfers opened by ``TftpService.open_transfer``, from the peer
  or a stranger, with resends (``Context.resend``) in between.
Over UDP (``--udp-packets``): to the service in a child process from 32 sockets on
127.0.0.3, answering a share of its OACK/DATA with mutated transfer packets; after
each batch a real ``curl tftp://`` download from 127.0.0.1 must complete byte for byte.

A crash: an exception escaping the handler; an "unexpected error" logged by the
service (its catch-all, counted even when rate-limited); over UDP, a failed probe, a
dead child or a traceback in its log. Open fds and RSS are taken before, right after,
and once every transfer has ended.

    python3 bench/fuzz/tftp.py [--packets 1000000] [--udp-packets 100000] [--seed 1]

Exits 1 on any crash. Bench only: not part of the test suite. Everything stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import collections
import filecmp
import http.server
import logging
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from bench.benchlib import free_port, serve_program  # noqa: E402
from bench.fuzz.dns import (delete_bytes, flip_bits, insert_bytes, random_bytes,  # noqa: E402
                            rss_kib, truncate)
from bootstrap.tftp import TftpService  # noqa: E402
from bootstrap.tftp.packets import read_request  # noqa: E402
from bootstrap.tftp.transfers import LOG_LIMIT, step  # noqa: E402

IPXE = "/usr/lib/ipxe"
PROBE = "undionly.kpxe"
BATCH = 1000                            # UDP packets between two probes
SERVE = """
import logging
logging.basicConfig(level=logging.INFO)
from bootstrap.tftp import TftpService
service = TftpService({root!r}, {cache!r}, None, "127.0.0.1", {port}).start()
"""
NAMES = [b"undionly.kpxe", b"/ipxe.efi", b"snponly.efi", b"up/boot.bin", b"up/a/b/c/d.bin",
         b"missing.bin", b"m/i/s/s/i/n/g.bin", b"../etc/passwd", b".root/x", b"a" * 300]
OPTIONS = [b"blksize", b"tsize", b"timeout", b"windowsize", b"multicast", b"BLKSIZE", b"x" * 40]
VALUES = [b"0", b"-1", b"7", b"8", b"512", b"1468", b"65464", b"65465", b"99999999999999999999",
          b"1e9", b"0x200", b" 512", b"\xef\xbc\x90", b"", b"abc", b"9" * 300]


# ---------------------------------------------------------------------------
# Seeds and mutations
# ---------------------------------------------------------------------------

def request(opcode: int, name: bytes, mode: bytes, options: list[tuple]) -> bytes:
    return (struct.pack("!H", opcode) + name + b"\0" + mode + b"\0"
            + b"".join(k + b"\0" + v + b"\0" for k, v in options))


def request_seeds() -> list[bytes]:
    option_sets = [[], [(b"blksize", b"1468")], [(b"tsize", b"0")],
                   [(b"blksize", b"65464"), (b"tsize", b"0")], [(b"timeout", b"1")]]
    return [request(op, name, mode, opts) for op in (1, 2) for name in NAMES
            for mode in (b"octet", b"netascii", b"OCTET", b"mail") for opts in option_sets]


def transfer_seeds() -> list[bytes]:
    acks = [struct.pack("!HH", 4, block) for block in (0, 1, 2, 3, 4, 65535)]
    errors = [struct.pack("!HH", 5, code) + b"no\0" for code in (0, 1, 8)]
    return acks * 4 + errors + [struct.pack("!H", 6) + b"blksize\0" + b"512\0",
                                struct.pack("!HH", 3, 1) + b"d" * 512,
                                request(1, b"undionly.kpxe", b"octet", [])]


def option_garbage(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 40)):
        data += rng.choice(OPTIONS + [rng.randbytes(5)]) + b"\0" + rng.choice(VALUES)
        data += b"\0" if rng.random() < 0.9 else b""


def huge_blksize(data: bytearray, rng: random.Random) -> None:
    data += b"blksize\0" + str(rng.choice([65465, 65536, 10 ** 6, 2 ** 64])).encode() + b"\0"


def swap_opcode(data: bytearray, rng: random.Random) -> None:
    data[:2] = struct.pack("!H", rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 255, 65535]))


def lose_nul(data: bytearray, rng: random.Random) -> None:
    nuls = [i for i, b in enumerate(data) if b == 0 and i > 1]
    if nuls:
        data[rng.choice(nuls)] = rng.randrange(1, 256)


MUTATIONS = [flip_bits, truncate, insert_bytes, delete_bytes, option_garbage, huge_blksize,
             swap_opcode, lose_nul, random_bytes]


def mutants(seed_packets: list[bytes], rng: random.Random):
    """Endless mutated packets (a tenth left intact, so valid paths run too)."""
    while True:
        data = bytearray(rng.choice(seed_packets))
        if rng.random() >= 0.1:
            for mutate in rng.choices(MUTATIONS, k=rng.randint(1, 3)):
                if data:
                    mutate(data, rng)
        yield bytes(data)


# ---------------------------------------------------------------------------
# Measures, the controller
# ---------------------------------------------------------------------------

def fds(pid: str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle(condition, deadline: float = 60.0) -> float:
    """Wait for ``condition``; seconds it took (the deadline if never)."""
    start = time.monotonic()
    while not condition() and time.monotonic() - start < deadline:
        time.sleep(0.1)
    return time.monotonic() - start


class Upstream(http.server.ThreadingHTTPServer):
    """The controller: a small file for every name under ``up/``, 404 for the rest."""

    daemon_threads = True

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            found = self.path.startswith("/files/up/")
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", "1000" if found else "0")
            self.end_headers()
            self.wfile.write(b"u" * 1000 if found else b"")

        def log_message(self, *args):
            pass

    def __init__(self):
        super().__init__(("127.0.0.1", 0), self.Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Tracebacks(logging.Handler):
    """Counts log records carrying an exception (the service's catch-all)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def emit(self, record):
        self.count += record.exc_info is not None


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------

class TransferFuzz:
    """Mutated peer packets into transfers opened the way the service opens them."""

    def __init__(self, service: TftpService, rng: random.Random):
        self.service, self.rng = service, rng
        self.stream = mutants(transfer_seeds(), rng)
        self.ctx, self.client, self.fed = None, None, 0
        self.results = collections.Counter()

    def feed(self) -> None:
        if self.ctx is None:
            self._open()
        data = next(self.stream)
        peer = self.client if self.rng.random() < 0.9 else ("127.0.0.9", 9)
        result = step(self.ctx, data, peer, self.client)
        self.fed += 1
        if result is None and self.fed % 10 == 0 and not self.ctx.resend(time.monotonic()):
            result = "timeout"
        if result is not None or self.fed >= 60:
            self.results[result or "left"] += 1
            self.ctx.end()
            self.ctx = None

    def _open(self) -> None:
        blksize = self.rng.choice([b"8", b"512", b"1468", b"65464"])
        pkt, name = read_request(request(1, b"undionly.kpxe", b"octet",
                                         [(b"blksize", blksize), (b"tsize", b"0")]))
        self.client = (f"127.0.1.{self.rng.randrange(1, 255)}", self.rng.randrange(1024, 65535))
        self.ctx, self.fed = self.service.open_transfer(self.client, pkt, name), 0

    def close(self) -> None:
        if self.ctx is not None:
            self.ctx.end()


def in_process(packets: int, rng: random.Random) -> dict:
    upstream, cache = Upstream(), tempfile.mkdtemp(prefix="zone-fuzz-tftp-")
    logging.getLogger("bootstrap.tftp").setLevel(logging.INFO)
    tracebacks = Tracebacks()
    logging.getLogger("bootstrap.tftp").addHandler(tracebacks)
    service = TftpService(IPXE, cache, f"http://127.0.0.1:{upstream.server_address[1]}",
                          "127.0.0.1", 0).start()
    settle(lambda: service._loops)      # its transfer loops run (serve_forever made them)
    requests, transfers = mutants(request_seeds(), rng), TransferFuzz(service, rng)
    before = {"fds": fds(), "rss_kib": rss_kib()}
    crashes, started, rss_by_100k = 0, time.monotonic(), []
    try:
        for count in range(packets):
            if count % 100_000 == 0:
                rss_by_100k.append(rss_kib() // 1024)
            try:
                if rng.random() < 0.8:
                    client = (f"127.0.0.{rng.randrange(10, 210)}", rng.randrange(1024, 65535))
                    service.handle_request(next(requests), client)
                else:
                    transfers.feed()
            except Exception as exc:  # what the fuzz is for  # noqa: BLE001
                crashes += 1
                print(f"crash: {exc!r}", file=sys.stderr)
        seconds = time.monotonic() - started
        transfers.close()
        right_after = {"fds": fds(), "rss_kib": rss_kib(), "open": service.open_transfers}
        waited = settle(lambda: service.open_transfers == 0)
        after = {"fds": fds(), "rss_kib": rss_kib()}
        cache_dirs = sum(len(d) for _, d, _ in os.walk(cache)) - 1      # less .root
        cache_files = sum(len(f) for _, _, f in os.walk(cache))
    finally:
        service.stop()
        upstream.shutdown()
    unexpected = tracebacks.count + LOG_LIMIT.suppressed.get("tftp-unexpected", 0)
    return {"packets": packets, "crashes": crashes + unexpected, "seconds": seconds,
            "before": before, "right_after": right_after,
            "after_settle": {**after, "waited_s": round(waited, 1)}, "rss_mb_by_100k": rss_by_100k,
            "cache": {"dirs": cache_dirs, "files": cache_files,
                      "upstream_misses_remembered": len(service.source.fetcher.misses)},
            "transfer_results": dict(transfers.results)}


def over_udp(packets: int, rng: random.Random) -> dict:
    port, cache = free_port(), tempfile.mkdtemp(prefix="zone-fuzz-tftp-")
    program = serve_program(SERVE.format(root=IPXE, cache=cache, port=port))
    log = tempfile.TemporaryFile(mode="w+")
    child = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=log, text=True)
    socks = []
    try:
        assert child.stdout.readline().strip() == "ready", "the service did not start"
        pid = str(child.pid)
        for _ in range(32):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.3", 0))
            sock.setblocking(False)
            socks.append(sock)
        requests, in_transfer = mutants(request_seeds(), rng), mutants(transfer_seeds(), rng)
        failed = 0 if probe(port, cache) else 1
        before = {"fds": fds(pid), "rss_kib": rss_kib(pid)}
        sent, started = 0, time.monotonic()
        while sent < packets and child.poll() is None:
            for _ in range(min(BATCH, packets - sent)):
                sock = rng.choice(socks)
                sock.sendto(next(requests), ("127.0.0.1", port))
                sent += 1 + answer_some(sock, in_transfer, rng)
            failed += not probe(port, cache)
        seconds = time.monotonic() - started
        right_after = {"fds": fds(pid), "rss_kib": rss_kib(pid)}
        waited = settle(lambda: fds(pid) <= before["fds"])
        after = {"fds": fds(pid), "rss_kib": rss_kib(pid), "waited_s": round(waited, 1)}
        died = child.poll() is not None
    finally:
        for sock in socks:
            sock.close()
        child.terminate()
        child.wait(timeout=30)
    log.seek(0)
    tracebacks = sum("Traceback" in line or "unexpected error" in line for line in log)
    return {"packets": sent, "crashes": failed + died + tracebacks, "failed_probes": failed,
            "seconds": seconds, "before": before, "right_after": right_after,
            "after_settle": after}


def answer_some(sock: socket.socket, stream, rng: random.Random) -> int:
    """Read what the service sent this socket; answer half its OACK/DATA with a mutant."""
    sent = 0
    while True:
        try:
            data, server = sock.recvfrom(65536)
        except BlockingIOError:
            return sent
        if data[:2] in (b"\x00\x03", b"\x00\x06") and rng.random() < 0.5:
            sock.sendto(next(stream), server)
            sent += 1


def probe(port: int, folder: str) -> bool:
    """A real client's download from another address must complete, byte for byte."""
    out = os.path.join(folder, "probe.out")
    done = subprocess.run(["curl", "-sS", "--max-time", "30", "-o", out,
                           f"tftp://127.0.0.1:{port}/{PROBE}"], capture_output=True, text=True)
    ok = done.returncode == 0 and filecmp.cmp(out, os.path.join(IPXE, PROBE), shallow=False)
    if not ok:
        print(f"probe failed: {done.returncode} {done.stderr.strip()}", file=sys.stderr)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default, meaning in (("--packets", 1_000_000, "in-process packets"),
                                   ("--udp-packets", 100_000, "over a real socket"),
                                   ("--seed", 1, "of the mutations")):
        parser.add_argument(flag, type=int, default=default, help=meaning)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"load average before: {os.getloadavg()}")
    results = {"in-process": in_process(args.packets, rng) if args.packets else None,
               "udp": over_udp(args.udp_packets, rng) if args.udp_packets else None}
    for name, result in results.items():
        if result is not None:
            print(f"{name}: {result}", flush=True)
    print(f"load average after: {os.getloadavg()}")
    sys.exit(1 if any(r and r["crashes"] for r in results.values()) else 0)


if __name__ == "__main__":
    main()
