"""Pieces the service benchmarks share: a free loopback port and our service in a child
process that says "ready" and stops cleanly on SIGTERM."""

import socket

from bootstrap import process

SERVE = """
import signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGTERM, signal.SIGINT}})  # for sigwait, in every thread
{setup}
print("ready", flush=True)
signal.sigwait([signal.SIGTERM, signal.SIGINT])
service.stop()
"""


def serve_program(setup: str) -> str:
    """Python for ``python -c``: ``setup`` must bind a started ``service``."""
    return SERVE.format(setup=setup.strip())


def free_port() -> int:
    """A loopback UDP port free now (the DNS and TFTP benches serve UDP)."""
    return process.free_port(socket.SOCK_DGRAM)
