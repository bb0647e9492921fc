"""Network namespaces, the veths between them and the processes inside, through iproute2.

The one namespace helper: the lab's topology, the integration tests and the benches
use it. A :class:`Namespaces` owns everything it creates (namespace names carry its
prefix, so two runs never touch each other's); ``close()`` (or leaving
``with Namespaces("dh") as nets:``) kills what runs inside and deletes the namespaces,
which deletes their veths too.

    with Namespaces("dh") as nets:
        relay, client = nets.namespace("relay"), nets.namespace("client")
        nets.link(relay, "swp3", client, "eth0", "10.17.1.1/24")
        proc = client.popen(["udhcpc", "-i", "eth0", ...])
        with relay.entered():          # sockets made here live in the namespace
            sock = socket.socket(...)

Needs root, ``ip`` (iproute2) and, to enter a namespace, Linux setns(2).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import signal
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
_counter = itertools.count()   # unique prefixes and veth names within this process


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``ip ARGS``, in namespace ``ns`` if given."""
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def run_in(ns: str, *cmd: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], **kwargs)


def _setns(fd: int, what: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {what}")


def enter(ns: str) -> None:
    """Move the calling thread into ``ns`` for good (sockets opened later live there)."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(fd, ns)
    finally:
        os.close(fd)


@contextlib.contextmanager
def entered(ns: str):
    """The calling thread inside ``ns`` for the block; sockets made there stay there."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        enter(ns)
        try:
            yield
        finally:
            _setns(own, "back")
    finally:
        os.close(own)


def call_in(ns: str, fn):
    """``fn()`` run inside ``ns`` by a short-lived thread (the caller stays where it is):
    its result, or its OSError raised here."""
    out: dict = {}

    def run() -> None:
        try:
            enter(ns)
            out["value"] = fn()
        except OSError as exc:
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def leftovers(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def reap(namespace: str) -> None:
    """Kill every process inside ``namespace`` but this one (the lab's ``zone up`` runs
    in its controller namespace), then remove it."""
    pids = ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in (p for p in pids if p != str(os.getpid())):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "del", namespace, check=False)


def wait_for(predicate, timeout: float = 10, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; that value, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(interval)


class Namespace:
    """One named network namespace; its loopback is up."""

    def __init__(self, owner: "Namespaces", name: str):
        self.owner, self.name = owner, name
        ip("netns", "add", name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return ip(*args, ns=self.name, check=check)

    def run(self, cmd, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run ``cmd`` inside the namespace to completion."""
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], check=check,
                              timeout=timeout, capture_output=True, text=True, **kw)

    def popen(self, cmd, **kw) -> subprocess.Popen:
        """Start ``cmd`` inside the namespace; its owner stops it on close."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        proc = run_in(self.name, *cmd, start_new_session=True, **kw)
        self.owner.processes.append(proc)
        return proc

    def sysctl(self, key: str, value: str) -> None:
        """Set ``net.…`` keys of this namespace (through /proc: no procps needed)."""
        path = "/proc/sys/" + key.replace(".", "/")
        self.run(["sh", "-c", f"echo {value} > {path}"])

    def address(self, dev: str, cidr: str, *flags: str) -> None:
        self.ip("addr", "add", cidr, "dev", dev, *flags)

    def route(self, *args: str) -> None:
        self.ip("route", "replace", *args)

    def entered(self):
        return entered(self.name)

    def __repr__(self) -> str:
        return f"Namespace({self.name})"


class Namespaces:
    """A set of namespaces, links and processes that live and die together.

    Names are ``<prefix>-<short>``; with ``unique`` the prefix gets this process's pid
    and a counter, so parallel runs and several sets in one process never collide.
    """

    def __init__(self, prefix: str = "t", *, unique: bool = True):
        self.prefix = f"{prefix}{os.getpid()}-{next(_counter)}" if unique else prefix
        self.namespaces: list[Namespace] = []
        self.processes: list[subprocess.Popen] = []

    def namespace(self, short: str) -> Namespace:
        ns = Namespace(self, f"{self.prefix}-{short}")
        self.namespaces.append(ns)
        return ns

    @staticmethod
    def veth(ns_a: str, dev_a: str, ns_b: str | None, dev_b: str) -> None:
        """A veth pair ``ns_a:dev_a`` ↔ ``ns_b:dev_b`` (``ns_b=None``: that end stays
        here), both up."""
        tmp_a, tmp_b = (f"v{os.getpid() % 100000}x{next(_counter)}{s}" for s in "ab")
        ip("link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        for ns, tmp, dev in ((ns_a, tmp_a, dev_a), (ns_b, tmp_b, dev_b)):
            if ns is None:
                ip("link", "set", "dev", tmp, "name", dev)
            else:
                ip("link", "set", "dev", tmp, "netns", ns, "name", dev)
            ip("link", "set", "dev", dev, "up", ns=ns)

    def link(self, a: Namespace, a_dev: str, b: Namespace | None, b_dev: str,
             a_cidr: str | None = None, b_cidr: str | None = None) -> None:
        """:meth:`veth` between two of ours, with addresses."""
        self.veth(a.name, a_dev, b.name if b else None, b_dev)
        for ns, dev, cidr in ((a, a_dev, a_cidr), (b, b_dev, b_cidr)):
            if ns is not None and cidr:
                ns.address(dev, cidr)

    @staticmethod
    def bridge(ns: Namespace, dev: str, cidr: str | None = None) -> None:
        """A Linux bridge inside ``ns``; attach ports with :meth:`attach`."""
        ns.ip("link", "add", dev, "type", "bridge")
        if cidr:
            ns.address(dev, cidr)
        ns.ip("link", "set", "dev", dev, "up")

    @staticmethod
    def attach(ns: Namespace, port: str, bridge: str) -> None:
        ns.ip("link", "set", "dev", port, "master", bridge)

    @staticmethod
    def stop(proc: subprocess.Popen, timeout: float = 3) -> None:
        """Stop one process started here (its whole session), politely then firmly."""
        if proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout)
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
            reap(ns.name)  # processes that left their session may still hold it
        self.namespaces.clear()

    def __enter__(self) -> "Namespaces":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
