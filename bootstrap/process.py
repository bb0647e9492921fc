"""Process helpers shared by the services, the tests and the benches.

:func:`die_with_parent`: a child process gets a signal when its parent goes, so a
killed ``zone serve`` (or test run) leaves no DHCP worker, gunicorn or emulator
behind. :func:`free_port`: a loopback port nobody holds right now.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket

PR_SET_PDEATHSIG = 1


def _libc_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux, or no libc to ask
        return None


# Looked up once, at import: die_with_parent also runs as a subprocess preexec_fn,
# between fork and exec, where loading a library could wait forever on a lock that
# another thread of the parent held at the fork.
_PRCTL = _libc_prctl()


def die_with_parent(sig: int = signal.SIGTERM, parent: int = 0) -> None:
    """Have the kernel send ``sig`` to this process when its parent goes (Linux).

    The signal comes when the *thread* that forked this process ends, so fork from a
    thread that lives as long as the child should. With ``parent`` (the pid that
    started us), exit at once if it is already gone: it may have died before the
    signal was armed, and then nobody would stop us. Elsewhere than Linux: nothing.
    """
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent and os.getppid() != parent:
        os._exit(0)  # noqa: SLF001 - may run between fork and exec: no cleanup to run


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (TCP; ``socket.SOCK_DGRAM`` for UDP).

    Someone else may take it before the caller binds it: for tests, benches and
    private loopback listeners, where the caller can tell a failed bind apart.
    """
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
