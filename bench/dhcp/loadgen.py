"""Requests for a relay-style load spread over every location of a zone.

perfdhcp repeats one Option 82 value (``-o 82,…``) and one giaddr, so it
exercises one location. loadgen.c acts as the zone's relays instead: location i
(server unit u of pod p) sends from giaddr = pod p's provision gateway with
circuit-id ``swp<u>`` and its own MAC, cycling over all locations, full DORA
open-loop at a fixed DISCOVER rate, leases counted from ACKs. This module
writes its input, a DISCOVER and a REQUEST per location:

    python3 loadgen.py ZONE TEMPLATES
"""

from __future__ import annotations

import argparse
import os
import sys


from bootstrap.dhcp import codec, probe  # noqa: E402
from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402


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


def write_templates(path: str, discovers: list, requests: list) -> None:
    """DISCOVER and REQUEST of each location, interleaved, 300 bytes each, for loadgen.c."""
    with open(path, "wb") as fh:
        for d, r in zip(discovers, requests):
            assert len(d) == len(r) == codec.MIN_REPLY, (len(d), len(r))
            fh.write(d + r)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zone")
    ap.add_argument("out", help="the templates file loadgen.c reads")
    args = ap.parse_args(argv)
    write_templates(args.out, *templates(locations(compile_plan(load_zone(args.zone)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
