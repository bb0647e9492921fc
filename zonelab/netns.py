"""Network namespaces and veths for the lab, through iproute2.

Every name carries a per-run prefix so two labs (or a lab and the tests) never
touch each other's namespaces, and :meth:`Netns.destroy` removes all of them.
"""

from __future__ import annotations

import ctypes
import os
import subprocess

CLONE_NEWNET = 0x40000000


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def run_in(ns: str, *cmd: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], **kwargs)


def enter(ns: str) -> None:
    """Move this process's network view into ``ns`` (sockets opened later live there)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


class Netns:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.names: list[str] = []

    def add(self, short: str) -> str:
        name = f"{self.prefix}-{short}"
        ip("netns", "add", name)
        self.names.append(name)
        ip("link", "set", "lo", "up", ns=name)
        return name

    def veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
        """A veth pair with one end in each namespace, both up."""
        tmp_a, tmp_b = f"v{os.getpid() % 10000}a{len(self.names)}", f"v{os.getpid() % 10000}b{len(self.names)}"
        ip("link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        ip("link", "set", tmp_a, "netns", ns_a, "name", name_a)
        ip("link", "set", tmp_b, "netns", ns_b, "name", name_b)
        ip("link", "set", name_a, "up", ns=ns_a)
        ip("link", "set", name_b, "up", ns=ns_b)

    def destroy(self) -> None:
        for name in reversed(self.names):
            ip("netns", "del", name, check=False)
        self.names.clear()


def leftovers(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def reap(namespace: str) -> None:
    """Kill every process inside ``namespace``, then remove it."""
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True,
                          text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
    ip("netns", "del", namespace, check=False)
