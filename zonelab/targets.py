"""Real Ansible targets: Debian 12 root file systems in namespaces, reached over SSH.

Reusable by the tests, the benchmark and the lab::

    base = base_rootfs()                       # debootstrap once, cached by its recipe
    with Targets(base) as targets:
        targets.start("p01-u01", "10.17.1.11") # its own net, uts, mount and pid namespaces
        targets.start("p01-u03", "10.17.1.13", netns="lab-u03")  # or a lab node's netns
        targets.reserve("p01-u02", "10.17.1.12")  # a host that is down: refuses SSH
        targets.write_inventory(path)          # connection vars: `zone configure --inventory`
        targets["p01-u01"].read("/etc/hostname")

Each target is an overlay (the cached base below, its own upper directory)
mounted in its own mount namespace, a network namespace holding its plan
address on ``lo``, and ``sshd`` chrooted into the overlay as PID 1 of its own
pid namespace: killing it takes everything in the target down and the kernel
drops the mounts. Ansible's ssh runs through a wrapper that enters the
target's network namespace, so nothing is routed on the host.

Packages come from the Debian mirror apt on this machine uses, through
:class:`AptProxy`: a caching HTTP proxy whose listening sockets live on
127.0.0.1 inside each target's network namespace (the roles' ``common_apt_proxy``),
like the zone controller's package cache in a real pod. Only the mirror's host is
forwarded. Services: the base has a ``policy-rc.d`` (the Debian way for chroots
and image builds), and the roles' ``*_services_state`` are null for these targets.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import yaml

from bootstrap.process import die_with_parent

from .netns import call_in

CACHE = os.environ.get("ZONE_TARGET_CACHE", "/var/cache/zone-bootstrap-tests")
SUITE = "bookworm"
INCLUDE = ("systemd-sysv", "python3", "openssh-server", "iproute2")
RECIPE = 1                      # bump to rebuild every cached base
PROXY_PORT = 3142
# Role variables for targets that are chroots, not booted machines.
TARGET_VARS = {
    "common_services_state": None, "network_services_state": None,
    "compute_services_state": None, "storage_services_state": None,
    "sdn_services_state": None, "compute_sysctl_apply": False,
    "common_apt_proxy": f"http://127.0.0.1:{PROXY_PORT}",
}


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# --- the cached base root file system ---------------------------------------------

def apt_mirror() -> str:
    """The Debian mirror apt on this machine uses (deb822 or one-line sources)."""
    paths = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) \
        + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    for path in paths:
        try:
            text = open(path, encoding="utf-8").read()
        except OSError:
            continue
        for url in re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            if url.rstrip("/").endswith("/debian"):
                return url.rstrip("/")
    return "http://deb.debian.org/debian"


def recipe_key(mirror: str) -> str:
    recipe = {"suite": SUITE, "mirror": mirror, "include": INCLUDE, "recipe": RECIPE}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def base_rootfs(cache: str = CACHE) -> str:
    """The cached base root file system, built with debootstrap on first use.

    Keyed by a hash of its recipe (suite, mirror, packages); concurrent callers
    wait on a lock instead of building twice.
    """
    mirror = apt_mirror()
    home = os.path.join(cache, recipe_key(mirror))
    root = os.path.join(home, "rootfs")
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(home, "ready")):
            _build(root, mirror, os.path.join(home, "build.log"))
            with open(os.path.join(home, "ready"), "w") as fh:
                fh.write(f"{time.time()}\n")
    return root


def _build(root: str, mirror: str, log_path: str) -> None:
    tmp = root + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    with open(log_path, "w") as log:
        proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}",
                               SUITE, tmp, mirror], stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = open(log_path, encoding="utf-8", errors="replace").read()[-2000:]
        raise RuntimeError(f"debootstrap failed (rc {proc.returncode}):\n{tail}")
    # Package scripts must not start daemons in a chroot: the Debian way.
    _write(os.path.join(tmp, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", 0o755)
    _write(os.path.join(tmp, "etc/apt/apt.conf.d/90zone-test"), 'Acquire::Languages "none";\n')
    os.rename(tmp, root)


def _write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, mode)


# --- the package proxy ------------------------------------------------------------

class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_ProxyServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        if url.scheme != "http" or url.hostname not in self.server.allowed:
            self._reply(403, b"only the Debian mirror\n", {})
            return
        cached = self.server.cache_path(url.path)
        if cached and os.path.exists(cached):
            self._reply(200, open(cached, "rb").read(), {"Content-Type": "application/octet-stream"})
            return
        status, body, headers = self._fetch(url)
        if cached and status == 200:
            self.server.store(cached, body)
        self._reply(status, body, headers)

    def _fetch(self, url) -> tuple:
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        keep = {k: v for k, v in self.headers.items()
                if k.lower() in ("if-modified-since", "range", "if-range", "cache-control")}
        path = url.path + (f"?{url.query}" if url.query else "")
        try:
            conn.request("GET", path, headers=keep)
            resp = conn.getresponse()
            body = resp.read()
            headers = {k: v for k, v in resp.getheaders()
                       if k.lower() in ("last-modified", "content-type", "content-range", "etag")}
            return resp.status, body, headers
        except OSError as exc:
            return 502, f"upstream: {exc}\n".encode(), {}
        finally:
            conn.close()

    def _reply(self, status: int, body: bytes, headers: dict) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args) -> None:
        pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, allowed: set, cache_dir: str):
        self.allowed, self.cache_dir = allowed, cache_dir
        super().__init__(sock.getsockname(), _ProxyHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock

    def cache_path(self, path: str) -> str | None:
        """Only .deb files are cached: their names change with every version."""
        if not path.endswith(".deb"):
            return None
        return os.path.join(self.cache_dir, hashlib.sha256(path.encode()).hexdigest() + ".deb")

    def store(self, path: str, body: bytes) -> None:
        tmp = f"{path}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)


def listen_in_netns(netns: str, address: str, port: int) -> socket.socket:
    """A listening TCP socket created inside ``netns`` (the caller stays where it is)."""
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(64)
        return sock

    return call_in(netns, make)


class AptProxy:
    """Forwards apt's requests to the mirror's host; serves sockets in many namespaces."""

    def __init__(self, mirror: str, cache_dir: str):
        self.allowed = {urlsplit(mirror).hostname}
        self.cache_dir = cache_dir
        os.makedirs(cache_dir, exist_ok=True)
        self.servers: list = []

    def serve_in(self, netns: str) -> None:
        server = _ProxyServer(listen_in_netns(netns, "127.0.0.1", PROXY_PORT),
                              self.allowed, self.cache_dir)
        threading.Thread(target=server.serve_forever, name=f"apt-proxy-{netns}",
                         daemon=True).start()
        self.servers.append(server)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()


# --- targets ------------------------------------------------------------------------

START = r"""
set -e
mkdir -p "$MERGED"
if ! mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$UPPER,workdir=$WORK" "$MERGED"; then
    cp -a --reflink=auto "$BASE/." "$MERGED/" && cp -a "$UPPER/." "$MERGED/"
fi
mount -t proc proc "$MERGED/proc"
mount -t sysfs -o ro sysfs "$MERGED/sys"
mount -t tmpfs -o mode=755 tmpfs "$MERGED/dev"
for dev in null zero full random urandom tty; do
    touch "$MERGED/dev/$dev" && mount --bind "/dev/$dev" "$MERGED/dev/$dev"
done
mkdir -p "$MERGED/dev/pts" "$MERGED/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$MERGED/dev/pts"
ln -s pts/ptmx "$MERGED/dev/ptmx"
mount -t tmpfs -o mode=755 tmpfs "$MERGED/run"
mount -t tmpfs tmpfs "$MERGED/tmp"
mkdir -p "$MERGED/run/sshd"
hostname localhost
exec chroot "$MERGED" /usr/sbin/sshd -D -e
"""


class Target:
    """One running (or reserved) target; files are read through /proc/<pid>/root."""

    def __init__(self, name: str, address: str, netns: str, home: str):
        self.name, self.address, self.netns, self.home = name, address, netns, home
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None            # sshd: PID 1 of the target's pid namespace
        self.owns_netns = True

    def path(self, path: str) -> str:
        if self.pid is None:
            raise RuntimeError(f"{self.name} is not running")
        return f"/proc/{self.pid}/root/{path.lstrip('/')}"

    def read(self, path: str) -> str:
        with open(self.path(path), encoding="utf-8") as fh:
            return fh.read()

    def exists(self, path: str) -> bool:
        return os.path.lexists(self.path(path))

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside the target (all its namespaces and its root)."""
        done = run(["nsenter", "-t", str(self.pid), "-a", "-r", "-w", *cmd], check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(cmd)} failed (rc {done.returncode}): "
                               f"{done.stderr.strip()[-1000:]}")
        return done

    def stop(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pid = self.proc = None


class Targets:
    """A set of targets with one SSH key, one package proxy and one work directory."""

    def __init__(self, base: str, workdir: str | None = None, cache: str = CACHE):
        self.base = base
        self.prefix = f"zbt{os.getpid()}.{next(_serial)}"
        self.workdir = workdir or tempfile.mkdtemp(prefix="zbt-")
        self.owns_workdir = workdir is None
        self.targets: dict[str, Target] = {}
        self.key = os.path.join(self.workdir, "id_ed25519")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key])
        self.proxy = AptProxy(apt_mirror(), os.path.join(cache, "debs"))

    def __enter__(self) -> "Targets":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getitem__(self, name: str) -> Target:
        return self.targets[name]

    def _netns(self, name: str, address: str, netns: str | None = None) -> Target:
        """The target's network namespace: a new one holding ``address`` on lo, or
        ``netns`` as it is (e.g. a lab node's, already wired and addressed)."""
        target = Target(name, address, netns or f"{self.prefix}-{len(self.targets)}",
                        os.path.join(self.workdir, name))
        self.targets[name] = target
        target.owns_netns = netns is None
        if target.owns_netns:
            run(["ip", "netns", "add", target.netns])
            run(["ip", "-n", target.netns, "link", "set", "lo", "up"])
            run(["ip", "-n", target.netns, "addr", "add", f"{address}/32", "dev", "lo"])
        self._wrapper(target)
        return target

    def _wrapper(self, target: Target) -> None:
        _write(os.path.join(self.workdir, f"ssh-{target.name}"),
               f'#!/bin/sh\nexec ip netns exec {target.netns} ssh "$@"\n', 0o755)

    def reserve(self, name: str, address: str) -> Target:
        """A host that is down: its address exists, nothing answers SSH."""
        return self._netns(name, address)

    def start(self, name: str, address: str, netns: str | None = None) -> Target:
        """A running target: overlay root, sshd, the package proxy inside its namespace.

        ``netns``: run in this existing network namespace (left in place on close)."""
        target = self._netns(name, address, netns)
        upper = os.path.join(target.home, "upper")
        _write(os.path.join(upper, "root/.ssh/authorized_keys"), open(self.key + ".pub").read(),
               0o600)
        os.chmod(os.path.join(upper, "root/.ssh"), 0o700)
        os.makedirs(os.path.join(target.home, "work"), exist_ok=True)
        env = dict(os.environ, BASE=self.base, UPPER=upper, WORK=os.path.join(target.home, "work"),
                   MERGED=os.path.join(target.home, "merged"))
        log = open(os.path.join(target.home, "sshd.log"), "w")
        target.proc = subprocess.Popen(
            ["ip", "netns", "exec", target.netns, "unshare", "--mount", "--uts", "--pid", "--fork",
             "--kill-child", "--propagation", "private", "sh", "-c", START],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_kill_with_parent)
        log.close()
        self.proxy.serve_in(target.netns)
        target.pid = _wait_listening(target)
        return target

    def inventory(self, extra_vars: dict | None = None) -> dict:
        """Connection vars for every target: an inventory source beside the rendered one."""
        common = {
            "ansible_user": "root", "ansible_ssh_private_key_file": self.key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
                                       f" -o ControlPath={self.workdir}/cp-%C",
            "ansible_ssh_transfer_method": "piped",
            "ansible_python_interpreter": "/usr/bin/python3",
            **TARGET_VARS, **(extra_vars or {}),
        }
        hosts = {name: {"ansible_host": t.address,
                        "ansible_ssh_executable": os.path.join(self.workdir, f"ssh-{name}")}
                 for name, t in self.targets.items()}
        return {"all": {"vars": common, "hosts": hosts}}

    def write_inventory(self, path: str, extra_vars: dict | None = None) -> str:
        _write(path, yaml.safe_dump(self.inventory(extra_vars), sort_keys=False))
        return path

    def close(self) -> None:
        for target in self.targets.values():
            target.stop()
        self.proxy.close()
        for target in self.targets.values():
            if target.owns_netns:
                run(["ip", "netns", "del", target.netns], check=False)
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            for target in self.targets.values():
                shutil.rmtree(target.home, ignore_errors=True)
        self.targets.clear()


_serial = itertools.count()


def _kill_with_parent() -> None:
    """If the test process dies without cleaning up, its targets die too
    (and ``unshare --kill-child`` takes the target's sshd with it)."""
    die_with_parent(signal.SIGKILL)


def _wait_listening(target: Target, timeout: float = 30.0) -> int:
    """The pid of the target's sshd once it listens on port 22."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.proc.poll() is not None:
            break
        pid = _child(target.proc.pid)
        if pid and _listens(pid, 22):
            return pid
        time.sleep(0.05)
    log = open(os.path.join(target.home, "sshd.log"), encoding="utf-8", errors="replace").read()
    target.stop()
    raise RuntimeError(f"target {target.name}: sshd did not start:\n{log[-2000:]}")


def _child(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            children = fh.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _listens(pid: int, port: int) -> bool:
    try:
        with open(f"/proc/{pid}/net/tcp") as fh:
            rows = fh.read().splitlines()[1:]
    except OSError:
        return False
    return any(r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A" for r in rows)
