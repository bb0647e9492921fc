"""Run this project's DHCP server for the benchmark: ``ours.py ZONE ADDRESS WORKERS``."""

from __future__ import annotations

import os
import signal
import sys
import threading


from bootstrap.dhcp.server import DhcpServer  # noqa: E402
from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402


def main() -> int:
    zone, address, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    server = DhcpServer(compile_plan(load_zone(zone)), address, workers=workers)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("ready", flush=True)
    server.serve_forever()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
