#!/usr/bin/env python3
"""Fuzz: mutated DNS queries through our DNS service; reports packets, crashes and memory.

Seeds are valid queries (our names and others', every type we answer, with and without
EDNS, cookies and the DO bit). Each packet is a seed with one to three mutations: bit
flips, truncation, inserted or deleted bytes, a label length that lies, a compression
pointer that loops, section counts that lie, a name over 255 bytes, an OPT record whose
length lies, or plain random bytes.

Most packets go in-process through ``DnsService.reply_to``, the function the UDP loop
runs for each datagram (cache lookup, dnslib parse, answer, cache store); a smaller
share goes over a real UDP socket to the service in a child process, with a valid probe
after each batch that must be answered (the service is alive and the queue drained).

A crash is any exception escaping the handler, a query that parsed but broke our
answering (``Responder.failures``), a reply that does not carry the query's ID, or,
over UDP, a probe left unanswered or a child that died. Memory: RSS before and after,
and the reply cache's entries and bytes.

    python3 bench/fuzz/dns.py [--packets 1000000] [--udp-packets 100000] [--seed 1]

Exits 1 on any crash. Bench only: not part of the test suite. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from dnslib import EDNS0, RCODE, EDNSOption, DNSRecord  # noqa: E402

from bench.benchlib import free_port, serve_program  # noqa: E402
from bootstrap.dns import DnsService  # noqa: E402
from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402

LAB = os.path.join(ROOT, "examples", "lab.yml")
CLIENT = ("127.0.0.1", 40000)          # who the in-process packets claim to come from
BATCH = 200                            # UDP packets between two probes
HOSTNAME = b"abcdefghijklmnopqrstuvwxyz0123456789-"
SERVE = """
import logging
logging.basicConfig(level=logging.INFO)
from bootstrap.dns import DnsService
from bootstrap.plan import compile_plan
from bootstrap.zone import load_zone
service = DnsService(compile_plan(load_zone({zone!r})), "127.0.0.1", {port}).start()
"""


# ---------------------------------------------------------------------------
# Seeds and mutations
# ---------------------------------------------------------------------------

def seeds(plan) -> list[bytes]:
    domain = plan.zone.domain
    node = next(iter(plan.servers()))
    reverse = ".".join(reversed(node.address.split("."))) + ".in-addr.arpa"
    questions = [(node.fqdn, "A"), (node.fqdn.upper(), "A"), (reverse, "PTR"),
                 (domain, "SOA"), (domain, "NS"), (domain, "ANY"), (domain, "AXFR"),
                 (f"_http._tcp.{domain}", "SRV"), (f"_zone.{domain}", "TXT"),
                 (f"nobody.{domain}", "A"), ("www.example.com", "A"), (node.fqdn, "AAAA")]
    edns = [None, EDNS0(udp_len=1232), EDNS0(udp_len=4096, flags="do"),
            EDNS0(udp_len=1232, opts=[EDNSOption(10, bytes(range(8)))])]
    packed = []
    for (name, qtype), extra in ((q, e) for q in questions for e in edns):
        query = DNSRecord.question(name, qtype)
        if extra is not None:
            query.add_ar(extra)
        packed.append(bytes(query.pack()))
    return packed


def flip_bits(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def truncate(data: bytearray, rng: random.Random) -> None:
    del data[rng.randrange(len(data)):]


def insert_bytes(data: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(data) + 1)
    data[at:at] = rng.randbytes(rng.randint(1, 16))


def delete_bytes(data: bytearray, rng: random.Random) -> None:
    at = rng.randrange(len(data))
    del data[at:at + rng.randint(1, 8)]


def lie_label_length(data: bytearray, rng: random.Random) -> None:
    """Set the length octet of one of the question's labels to anything."""
    offsets, pos = [], 12
    while pos < len(data) and 0 < data[pos] < 64:
        offsets.append(pos)
        pos += data[pos] + 1
    if offsets:
        data[rng.choice(offsets)] = rng.randrange(256)


def compression_loop(data: bytearray, rng: random.Random) -> None:
    """A pointer in the question to itself, to the header, or to a later pointer back."""
    at = rng.randrange(12, max(13, len(data) - 1))
    target = rng.choice([at, 12, rng.randrange(0, len(data)), at + 2])
    data[at:at + 2] = bytes((0xC0 | (target >> 8) & 0x3F, target & 0xFF))
    if rng.random() < 0.5:                      # and a second pointer back to the first
        data[at + 2:at + 4] = bytes((0xC0 | (at >> 8) & 0x3F, at & 0xFF))


def lie_counts(data: bytearray, rng: random.Random) -> None:
    field = 4 + 2 * rng.randrange(4)
    data[field:field + 2] = rng.choice([b"\x00\x00", b"\x00\x02", b"\xff\xff", rng.randbytes(2)])


def oversize_name(data: bytearray, rng: random.Random) -> None:
    """Hostname labels in front of the name, until it is over 255 bytes."""
    data[12:12] = b"".join(b"\x3f" + bytes(rng.choices(HOSTNAME, k=63))
                           for _ in range(rng.randint(4, 6)))


def lie_opt_length(data: bytearray, rng: random.Random) -> None:
    at = data.rfind(b"\x00\x00\x29")
    if at >= 0 and at + 11 <= len(data):
        data[at + 9:at + 11] = rng.randbytes(2)


def random_bytes(data: bytearray, rng: random.Random) -> None:
    data[:] = rng.randbytes(rng.randint(0, 600))


MUTATIONS = [flip_bits, truncate, insert_bytes, delete_bytes, lie_label_length,
             compression_loop, lie_counts, oversize_name, lie_opt_length, random_bytes]


def mutants(seed_packets: list[bytes], rng: random.Random):
    """Endless mutated packets, each with a fresh ID."""
    while True:
        data = bytearray(rng.choice(seed_packets))
        data[:2] = rng.randbytes(2)
        for mutate in rng.choices(MUTATIONS, k=rng.randint(1, 3)):
            if data:
                mutate(data, rng)
        yield bytes(data)


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------

def rss_kib(pid: str = "self") -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def in_process(plan, packets: int, rng: random.Random) -> dict:
    service = DnsService(plan, "127.0.0.1", 0)          # bound, not serving: we drive it
    stream = mutants(seeds(plan), rng)
    before, started = rss_kib(), time.monotonic()
    crashes, rcodes = 0, collections.Counter()
    try:
        for _ in range(packets):
            data = next(stream)
            try:
                reply = service.reply_to(data, CLIENT)
            except Exception as exc:  # what the fuzz is for  # noqa: BLE001
                crashes += 1
                print(f"crash: {exc!r} on {data.hex()}", file=sys.stderr)
                continue
            rcodes["none" if reply is None else RCODE.get(reply[3] & 0x0F, "?")] += 1
            if reply is not None:
                if reply[:2] != data[:2]:
                    crashes += 1
                    print(f"wrong id in the reply to {data.hex()}", file=sys.stderr)
        return {"packets": packets, "crashes": crashes + service.responder.failures,
                "replies": dict(rcodes.most_common()),
                "seconds": time.monotonic() - started, "rss_before_kib": before,
                "rss_after_kib": rss_kib(), "cache_entries": len(service._cache),
                "cache_bytes": service._cache.size}
    finally:
        service.stop()


def over_udp(plan, packets: int, rng: random.Random) -> dict:
    port = free_port()
    program = serve_program(SERVE.format(zone=LAB, port=port))
    log = tempfile.TemporaryFile(mode="w+")
    child = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert child.stdout.readline().strip() == "ready", "the service did not start"
        probe = bytes(DNSRecord.question(next(iter(plan.servers())).fqdn).pack())
        stream = mutants(seeds(plan), rng)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            alive = _probe(sock, port, probe, 0)
            before, started, sent, unanswered = rss_kib(str(child.pid)), time.monotonic(), 0, 0
            while sent < packets and child.poll() is None:
                for data in (next(stream) for _ in range(min(BATCH, packets - sent))):
                    sock.sendto(data, ("127.0.0.1", port))
                    sent += 1
                unanswered += not _probe(sock, port, probe, sent // BATCH)
            after = rss_kib(str(child.pid)) if child.poll() is None else 0
        died = child.poll() is not None
    finally:
        child.terminate()
        child.wait(timeout=30)
    log.seek(0)
    failed = [line.strip() for line in log if "failed to answer" in line]  # throttled: a floor
    for line in failed[:5]:
        print(f"child: {line}", file=sys.stderr)
    return {"packets": sent, "crashes": unanswered + died + (not alive) + len(failed),
            "unanswered_probes": unanswered, "failure_lines": len(failed),
            "seconds": time.monotonic() - started, "rss_before_kib": before,
            "rss_after_kib": after}


def _probe(sock: socket.socket, port: int, probe: bytes, number: int) -> bool:
    """Ask the probe under a fresh ID until its reply comes (replies to the mutants before
    it are read and dropped on the way); three tries of 10 s, as a full socket buffer
    may drop one datagram. False: the service did not answer at all."""
    ident = ((0xA000 + number) & 0xFFFF).to_bytes(2, "big")
    for _ in range(3):
        sock.sendto(ident + probe[2:], ("127.0.0.1", port))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                break
            if reply[:2] == ident and reply[3] & 0x0F == 0:
                return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="in-process packets")
    parser.add_argument("--udp-packets", type=int, default=100_000, help="over a real socket")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    plan = compile_plan(load_zone(LAB))
    rng = random.Random(args.seed)
    print(f"load average before: {os.getloadavg()}")
    crashes = 0
    for name, run, packets in (("in-process", in_process, args.packets),
                               ("udp", over_udp, args.udp_packets)):
        if packets:
            result = run(plan, packets, rng)
            crashes += result["crashes"]
            print(f"{name}: " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in result.items()), flush=True)
    print(f"load average after: {os.getloadavg()}")
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
