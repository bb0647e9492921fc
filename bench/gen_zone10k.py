#!/usr/bin/env python3
"""Write examples/zone-10k.yml: the DESIGN.md zone with 250 pods × 40 units = 10,000 servers."""

import sys

HEAD = open(__file__.replace("gen_zone10k.py", "zone-10k.head.yml")).read()


def main(out=sys.stdout, pods: int = 250) -> None:
    out.write(HEAD)
    out.write("pods:\n")
    for i in range(1, pods + 1):
        extra = ", overrides: {units: [{units: 40, role: storage}]}" if i % 50 == 2 else ""
        out.write(f"  - {{name: p{i:03d}, index: {i}{extra}}}\n")


if __name__ == "__main__":
    main(pods=int(sys.argv[1]) if len(sys.argv) > 1 else 250)
