"""Network namespaces and veths for integration tests, cleaned up without fail.

A :class:`Lab` owns everything it creates: namespaces (named ``<prefix><pid>-<n>``
so parallel runs never collide), the veth pairs between them and the processes
started inside them. ``Lab.close()`` (or leaving ``with Lab() as lab:``) kills
the processes and deletes the namespaces, which deletes their veths too.

    with Lab("dh") as lab:
        relay, client = lab.namespace("relay"), lab.namespace("client")
        lab.link(relay, "swp3", client, "eth0", "10.17.1.1/24")
        proc = client.popen(["udhcpc", "-i", "eth0", ...])
        with relay.entered():          # sockets made here live in the namespace
            sock = socket.socket(...)

Needs root, ``ip`` (iproute2) and, for :meth:`Namespace.entered`, Linux setns(2).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import signal
import subprocess
import time

CLONE_NEWNET = 0x40000000
_counter = itertools.count()


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``ip ARGS`` in the current namespace."""
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Namespace:
    """One named network namespace; its loopback is up."""

    def __init__(self, lab: "Lab", name: str):
        self.lab, self.name = lab, name
        ip("netns", "add", name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return ip("-n", self.name, *args, check=check)

    def run(self, cmd, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run ``cmd`` inside the namespace to completion."""
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], check=check,
                              timeout=timeout, capture_output=True, text=True, **kw)

    def popen(self, cmd, **kw) -> subprocess.Popen:
        """Start ``cmd`` inside the namespace; the lab stops it on close."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *cmd],
                                start_new_session=True, **kw)
        self.lab.processes.append(proc)
        return proc

    def sysctl(self, key: str, value: str) -> None:
        """Set ``net.…`` keys of this namespace (through /proc: no procps needed)."""
        path = "/proc/sys/" + key.replace(".", "/")
        self.run(["sh", "-c", f"echo {value} > {path}"])

    def address(self, dev: str, cidr: str, *flags: str) -> None:
        self.ip("addr", "add", cidr, "dev", dev, *flags)

    def route(self, *args: str) -> None:
        self.ip("route", "replace", *args)

    @contextlib.contextmanager
    def entered(self):
        """Move the calling thread into the namespace for the block (sockets stay there)."""
        libc = ctypes.CDLL(None, use_errno=True)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.name}")
            try:
                yield self
            finally:
                libc.setns(own, CLONE_NEWNET)
        finally:
            os.close(own)
            os.close(target)

    def __repr__(self) -> str:
        return f"Namespace({self.name})"


class Lab:
    """A set of namespaces, links and processes that live and die together."""

    def __init__(self, prefix: str = "t"):
        self.prefix = f"{prefix}{os.getpid()}-{next(_counter)}"
        self.namespaces: list[Namespace] = []
        self.processes: list[subprocess.Popen] = []
        self._veths = itertools.count()

    def namespace(self, short: str) -> Namespace:
        ns = Namespace(self, f"{self.prefix}-{short}")
        self.namespaces.append(ns)
        return ns

    def link(self, a: Namespace, a_dev: str, b: Namespace | None, b_dev: str,
             a_cidr: str | None = None, b_cidr: str | None = None) -> None:
        """A veth pair ``a:a_dev`` ↔ ``b:b_dev`` (``b=None``: the host side stays here), up."""
        tmp_a, tmp_b = (f"v{os.getpid() % 100000}x{next(self._veths)}{s}" for s in "ab")
        ip("link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        for ns, tmp, dev, cidr in ((a, tmp_a, a_dev, a_cidr), (b, tmp_b, b_dev, b_cidr)):
            if ns is None:
                ip("link", "set", "dev", tmp, "name", dev)
                ip("link", "set", "dev", dev, "up")
                continue
            ip("link", "set", "dev", tmp, "netns", ns.name)
            ns.ip("link", "set", "dev", tmp, "name", dev)
            if cidr:
                ns.address(dev, cidr)
            ns.ip("link", "set", "dev", dev, "up")

    def bridge(self, ns: Namespace, dev: str, cidr: str | None = None) -> None:
        """A Linux bridge inside ``ns``; attach ports with :meth:`attach`."""
        ns.ip("link", "add", dev, "type", "bridge")
        if cidr:
            ns.address(dev, cidr)
        ns.ip("link", "set", "dev", dev, "up")

    @staticmethod
    def attach(ns: Namespace, port: str, bridge: str) -> None:
        ns.ip("link", "set", "dev", port, "master", bridge)

    def stop(self, proc: subprocess.Popen, timeout: float = 3) -> None:
        """Stop one process this lab started (its whole session), politely then firmly."""
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        for proc in reversed(self.processes):
            self.stop(proc)
        self.processes.clear()
        for ns in reversed(self.namespaces):
            # Processes that left the session may still hold it; kill what is inside.
            pids = ip("netns", "pids", ns.name, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            ip("netns", "del", ns.name, check=False)
        self.namespaces.clear()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_for(predicate, timeout: float = 10, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; that value, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(interval)
