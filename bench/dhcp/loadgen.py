"""A relay-style DHCP load generator spread over every location of a zone.

perfdhcp repeats one Option 82 value (``-o 82,…``) and one giaddr, so it
exercises one location. This generator acts as the zone's relays: location i
(server unit u of pod p) sends from giaddr = pod p's provision gateway with
circuit-id ``swp<u>`` and its own MAC, cycling over all locations. It runs
full DORA exchanges open-loop at a fixed DISCOVER rate and counts leases from
ACKs. Same load for every server under test.

    python3 loadgen.py ZONE SERVER --rate 4000 --seconds 5   → one JSON line

Run it where it owns every pod gateway address and UDP port 67 (bench/dhcp/run.py
does, in a network namespace).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from bootstrap.dhcp import codec, probe  # noqa: E402
from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402

OFFER_T, ACK_T, NAK_T = 2, 5, 6
XID = slice(4, 8)


def locations(plan, network: str = "provision") -> list:
    """(giaddr, circuit-id, MAC) of every server location, in plan order."""
    out = []
    for node in plan.servers():
        gateway = plan.subnets[(network, node.pod_index)].gateway
        n = len(out) + 1
        out.append((gateway, f"swp{node.unit}", f"02:00:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"))
    return out


def templates(locs) -> tuple:
    """Pre-built DISCOVER and REQUEST bytes per location; the hot loop only patches fields."""
    discovers, requests = [], []
    for giaddr, circuit, mac in locs:
        discovers.append(codec.encode(probe.request(codec.DISCOVER, mac, 0, giaddr=giaddr,
                                                    circuit=circuit)))
        # REQUEST: options 53, 50 (6 bytes), 54 (6 bytes) first, so they sit at fixed offsets.
        req = probe.request(codec.REQUEST, mac, 0, giaddr=giaddr, circuit=circuit,
                            requested="0.0.0.0", server_id="0.0.0.0")
        requests.append(codec.encode(req))
    return discovers, requests


def message(data: bytes) -> tuple:
    """(message type, raw server id) from a reply, scanning options from the cookie."""
    i, n, kind, sid = 240, len(data), 0, b""
    while i + 1 < n:
        code = data[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        size = data[i + 1]
        if code == 53:
            kind = data[i + 2]
        elif code == 54:
            sid = data[i + 2:i + 6]
        i += 2 + size
    return kind, sid


def run(server: str, discovers: list, requests: list, rate: float, seconds: float,
        start_index: int = 0, grace: float = 1.0) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.bind(("0.0.0.0", 67))
    sock.setblocking(False)
    target, total = (server, 67), int(rate * seconds)
    pending: dict = {}            # xid → location index, waiting for OFFER (+) or ACK (-)
    sent = acks = naks = offers = 0
    base_xid = (os.getpid() & 0xFF) << 24
    n = len(discovers)
    start = time.monotonic()
    last_ack = start
    deadline = None
    while True:
        now = time.monotonic()
        due = min(total, int((now - start) * rate) + 1)
        while sent < due:
            i = (start_index + sent) % n
            xid = struct.pack("!I", (base_xid + sent) & 0xFFFFFFFF)
            d = discovers[i]
            try:
                sock.sendto(d[:4] + xid + d[8:], target)
            except BlockingIOError:
                break
            pending[xid] = i + 1
            sent += 1
        got = 0
        while got < 256:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                break
            got += 1
            xid = data[XID]
            state = pending.get(xid)
            if state is None:
                continue
            kind, sid = message(data)
            if kind == OFFER_T and state > 0:
                offers += 1
                r = requests[state - 1]
                # REQUEST layout: 240 cookie+header, 53 (3 bytes), 50 at 243, 54 at 249.
                pkt = r[:4] + xid + r[8:245] + data[16:20] + r[249:251] + sid + r[255:]
                try:
                    sock.sendto(pkt, target)
                except BlockingIOError:
                    continue
                pending[xid] = -state
            elif kind == ACK_T and state < 0:
                acks += 1
                last_ack = time.monotonic()
                del pending[xid]
            elif kind == NAK_T:
                naks += 1
                del pending[xid]
        if sent >= total:
            if deadline is None:
                deadline = time.monotonic() + grace
            if not pending or time.monotonic() > deadline:
                break
        if not got:
            select.select([sock], [], [], 0.0002)
    sock.close()
    elapsed = max(last_ack - start, 1e-9)
    return {"rate": rate, "sent": sent, "offers": offers, "acks": acks, "naks": naks,
            "drops": sent - acks, "drop_pct": round(100.0 * (sent - acks) / max(sent, 1), 3),
            "seconds": round(elapsed, 3), "leases_per_s": round(acks / elapsed, 1)}


def write_templates(path: str, discovers: list, requests: list) -> None:
    """DISCOVER and REQUEST of each location, interleaved, 300 bytes each, for loadgen.c."""
    with open(path, "wb") as fh:
        for d, r in zip(discovers, requests):
            assert len(d) == len(r) == codec.MIN_REPLY, (len(d), len(r))
            fh.write(d + r)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zone")
    ap.add_argument("server")
    ap.add_argument("--rate", type=float, action="append", default=[],
                    help="DISCOVERs per second; repeat for a series of steps")
    ap.add_argument("--write-templates", metavar="PATH", help="write loadgen.c's input and exit")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--stop-at-drop", type=float, default=1.0,
                    help="stop the series after a step with this drop percentage or more")
    args = ap.parse_args(argv)
    discovers, requests = templates(locations(compile_plan(load_zone(args.zone))))
    if args.write_templates:
        write_templates(args.write_templates, discovers, requests)
        return 0
    index = 0
    for rate in args.rate:
        result = run(args.server, discovers, requests, rate, args.seconds, index)
        index += result["sent"]
        print(json.dumps(result), flush=True)
        if result["drop_pct"] >= args.stop_at_drop:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
