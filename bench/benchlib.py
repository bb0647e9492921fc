"""Pieces the service benchmarks share: a free loopback port and our service in a child
process that says "ready" and stops cleanly on SIGTERM."""

import socket

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
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
