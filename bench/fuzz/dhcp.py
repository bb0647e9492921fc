"""Fuzz the DHCP service with mutated requests: nothing may raise but Malformed.

    python3 bench/fuzz/dhcp.py [--packets 1000000] [--udp 50000] [--seed 1]

Seeds are valid requests of every kind the service answers (relayed DISCOVER and
REQUEST for servers, BMCs and switches, iPXE, UEFI, HTTP boot, renewals, RELEASE,
DECLINE, INFORM, link selection, overloaded options). Each packet is a seed with
one to three mutations: bit flips, random bytes, truncation, insertion, a lying
option length, a repeated option, a spliced tail of another seed, a forged Option 82.

In-process, every packet goes through ``codec.decode`` and, when it decodes,
``Answerer.answer`` from a relay's or a stranger's address; a reply is encoded and
decoded again, as the socket loop would. A crash is any exception other than
``Malformed`` from decode. Over UDP, a share of the packets goes to a real
``DhcpServer`` on 127.0.0.1 (never relayed onward: 127.0.0.1 is no relay of the
zone, so no reply leaves the loopback), and the server must count every one.
Prints packets, outcomes, crashes and this process's peak and current RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import socket
import sys
import threading
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))

from bootstrap.dhcp import codec, probe  # noqa: E402
from bootstrap.dhcp.answer import Answerer, Reply, Settings  # noqa: E402
from bootstrap.dhcp.server import DhcpServer  # noqa: E402
from bootstrap.metrics import DHCP_ANSWERS  # noqa: E402
from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402

LAB = os.path.join(os.path.dirname(os.path.dirname(HERE)), "examples", "lab.yml")
D, R = codec.DISCOVER, codec.REQUEST


def seeds(plan) -> list[bytes]:
    """Valid requests from every relay of the plan's pod and every client kind."""
    gw = {net: s.gateway for (net, index), s in plan.subnets.items() if index == 1}
    server = next(iter(plan.servers()))
    kinds = [
        dict(kind=D, giaddr=gw["provision"], circuit="swp3", arch=0),
        dict(kind=D, giaddr=gw["provision"], circuit="swp4", arch=7),
        dict(kind=D, giaddr=gw["provision"], circuit="swp5", user_class=b"iPXE"),
        dict(kind=D, giaddr=gw["provision"], circuit="swp6", vendor="HTTPClient:Arch:00016"),
        dict(kind=D, giaddr=gw["lom"], circuit="swp3"),
        dict(kind=D, giaddr=gw["mgmt"], circuit="swp48", vendor="onie_vendor:x86_64-x"),
        dict(kind=D, giaddr=gw["provision"], circuit=bytes([0, 4, 0, 10, 1, 3])),
        dict(kind=D, giaddr=gw["provision"], circuit="swp3", link=gw["lom"]),
        dict(kind=D, giaddr=gw["provision"], circuit="swp2", remote="p01-tor-b"),
        dict(kind=R, giaddr=gw["provision"], circuit="swp3", requested=server.address,
             server_id="10.17.0.2"),
        dict(kind=R, ciaddr=server.address),
        dict(kind=codec.RELEASE, ciaddr=server.address),
        dict(kind=codec.DECLINE, giaddr=gw["provision"], circuit="swp3",
             requested=server.address),
        dict(kind=codec.INFORM, ciaddr=server.address),
    ]
    out = [codec.encode(probe.request(**k)) for k in kinds]
    overloaded = probe.request(D, giaddr=gw["provision"], circuit="swp1")
    overloaded.options[codec.OVERLOAD] = b"\x03"
    overloaded.file = codec.option(codec.VENDOR_CLASS, b"PXEClient") + b"\xff"
    overloaded.sname = codec.option(codec.HOSTNAME, b"x") + b"\xff"
    return out + [codec.encode(overloaded)]


class Mutator:
    def __init__(self, rng: random.Random, pool: list[bytes]):
        self.rng, self.pool = rng, pool
        self.ops = (self.flip, self.scribble, self.truncate, self.insert, self.lie,
                    self.repeat, self.splice, self.forge_82)

    def __call__(self, data: bytes) -> bytes:
        buf = bytearray(data)
        for _ in range(self.rng.randint(1, 3)):
            buf = self.rng.choice(self.ops)(buf)
        return bytes(buf)

    def _at(self, buf) -> int:
        # Mostly inside the options, where the parsing is.
        low = codec.MIN_LEN if self.rng.random() < 0.8 and len(buf) > codec.MIN_LEN else 0
        return self.rng.randrange(low, max(low + 1, len(buf)))

    def flip(self, buf):
        for _ in range(self.rng.randint(1, 8)):
            if buf:
                buf[self._at(buf) % len(buf)] ^= 1 << self.rng.randrange(8)
        return buf

    def scribble(self, buf):
        at = self._at(buf)
        return buf[:at] + bytearray(self.rng.randbytes(self.rng.randint(1, 16))) + buf[at + 16:]

    def truncate(self, buf):
        return buf[:self.rng.randrange(len(buf) + 1)]

    def insert(self, buf):
        at = self._at(buf)
        return buf[:at] + bytearray(self.rng.randbytes(self.rng.randint(1, 64))) + buf[at:]

    def lie(self, buf):
        """An option whose length byte is wrong."""
        at = self._at(buf)
        if at + 1 < len(buf):
            buf[at + 1] = self.rng.choice((0, 1, 254, 255, self.rng.randrange(256)))
        return buf

    def repeat(self, buf):
        """A slice of the options written twice (repeated and split options)."""
        if len(buf) <= codec.MIN_LEN + 2:
            return buf
        a = self.rng.randrange(codec.MIN_LEN, len(buf) - 1)
        b = min(len(buf), a + self.rng.randint(2, 40))
        return buf[:b] + buf[a:b] + buf[b:]

    def splice(self, buf):
        other = self.rng.choice(self.pool)
        at = self._at(buf)
        return buf[:at] + bytearray(other[self.rng.randrange(len(other)):])

    def forge_82(self, buf):
        """A client's own Option 82, somewhere in the options."""
        forged = codec.option(codec.RELAY_AGENT_INFO, probe.relay_agent(
            f"swp{self.rng.randint(0, 300)}", self.rng.choice((None, "p01-tor-a", "core-1"))))
        at = self._at(buf)
        return buf[:at] + bytearray(forged) + buf[at:]


def in_process(answerer, pool, sources, n: int, rng) -> tuple[Counter, list]:
    mutate, outcomes, crashes = Mutator(rng, pool), Counter(), []
    for _ in range(n):
        raw = mutate(rng.choice(pool))
        try:
            packet = codec.decode(raw)
        except codec.Malformed:
            outcomes["malformed"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - that is what we are looking for
            crashes.append(("decode", raw.hex(), repr(exc)))
            continue
        source = packet.giaddr if rng.random() < 0.6 else rng.choice(sources)
        try:
            outcome = answerer.answer(packet, source)
            if isinstance(outcome, Reply):
                codec.decode(codec.encode(outcome.packet))
            outcomes[type(outcome).__name__.lower() + ":" + getattr(
                outcome, "code", getattr(outcome, "kind", ""))] += 1
        except Exception as exc:  # noqa: BLE001
            crashes.append(("answer", raw.hex(), repr(exc)))
    return outcomes, crashes


def counted() -> float:
    """Every answer and drop the DHCP service has counted in this process."""
    return sum(s.value for metric in DHCP_ANSWERS.collect() for s in metric.samples
               if s.name.endswith("_total"))


def over_udp(plan, pool, n: int, rng) -> tuple[int, int, bool]:
    server = DhcpServer(plan, "127.0.0.1", port=0, server_id="10.17.0.2")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    mutate, before = Mutator(rng, pool), counted()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        sock.sendto(mutate(rng.choice(pool)), server.address)
        if i % 500 == 499:  # let the loop keep up: loopback drops what overflows the buffer
            deadline = time.monotonic() + 10
            while counted() - before < i + 1 - 50 and time.monotonic() < deadline:
                time.sleep(0.001)
    deadline = time.monotonic() + 30
    while counted() - before < n and time.monotonic() < deadline:
        time.sleep(0.01)
    alive = thread.is_alive()
    server.shutdown()
    thread.join(timeout=5)
    server.close()
    sock.close()
    return n, int(counted() - before), alive


def rss_mb() -> tuple[float, float]:
    with open("/proc/self/statm") as fh:
        current = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--udp", type=int, default=50_000, help="of them, sent over UDP")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    plan = compile_plan(load_zone(LAB))
    pool = seeds(plan)
    sources = ["10.17.0.101", "192.0.2.7"] + [n.address for n in list(plan.nodes.values())[:20]
                                              if n.address]
    answerer = Answerer(plan, Settings("10.17.0.2"))
    rss_before = rss_mb()[0]
    started = time.monotonic()
    outcomes, crashes = in_process(answerer, pool, sources, args.packets - args.udp, rng)
    elapsed = time.monotonic() - started
    sent, seen, alive = over_udp(plan, pool, args.udp, rng)
    rss_after, peak = rss_mb()
    print(f"in-process: {args.packets - args.udp:,} packets in {elapsed:.1f} s, "
          f"crashes {len(crashes)}")
    for name, count in outcomes.most_common(12):
        print(f"  {name:28} {count:>9,}")
    print(f"over UDP: {sent:,} sent, {seen:,} counted by the server, server alive: {alive}")
    print(f"RSS: {rss_before:.0f} MB before, {rss_after:.0f} MB after, peak {peak:.0f} MB; "
          f"load {os.getloadavg()[0]:.2f}")
    for where, raw, error in crashes[:5]:
        print(f"CRASH in {where}: {error}\n  {raw}")
    return 1 if crashes or not alive or seen < sent else 0


if __name__ == "__main__":
    sys.exit(main())
