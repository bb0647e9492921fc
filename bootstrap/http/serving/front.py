"""An optional nginx front: nginx answers plain ``GET /boot/ipxe`` from per-node files.

gunicorn's own request handling costs ~15x what nginx spends on a static file
(bench/http/README.md), so the hottest request can only approach nginx by being
answered by nginx. Every server's script is rendered ahead (by the same
:func:`~bootstrap.http.views.boot.script_for` as the app) into
``<state>/scripts/<provision address>``;
nginx serves ``/boot/ipxe`` without a query string from the file named by the
client's address and proxies everything else (query strings, unknown addresses,
every other path) to gunicorn on a private loopback port.

What the app does in the request (events, ``planned → booting``) is done after the
fact by :class:`LogFollower`, which tails nginx's compact boot log and runs the app's
own :func:`~bootstrap.http.views.boot.script` for each hit. A node that reaches
``installed`` through phone-home (answered by the app) has its file replaced at once
(:func:`publish_node`, the workers' ``on_state_change`` hook);
the follower also rewrites any file that no longer matches what the app would answer
(a state moved by the API), so a stale file is served at most until its next hit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

from ...errors import InputError, WorkError
from ...plan import Node
from ...process import die_with_parent
from ..views.boot import script, script_for

log = logging.getLogger("bootstrap.http.front")
NGINX = "/usr/sbin/nginx"
FRONTS = ("auto", "nginx", "gunicorn")
BOOT_LOG = "boot.log"
ROOM = 50_000  # queued events above which the follower waits (the writer drops at 100,000)
CONF = """\
{user}worker_processes {workers};
master_process on;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server_tokens off;
  client_max_body_size 2m;
  # a client that dribbles its request is dropped; nginx holds it without a thread meanwhile
  client_header_timeout 15s;
  client_body_timeout 15s;
  send_timeout 30s;
  client_body_temp_path {folder}/tmp; proxy_temp_path {folder}/tmp;
  fastcgi_temp_path {folder}/tmp; uwsgi_temp_path {folder}/tmp; scgi_temp_path {folder}/tmp;
  log_format boot '$remote_addr $status';
{realip}\
  # only a plain GET is answered from a file; anything else names no file and goes on
  map "$request_method:$args" $boot_file {{ "GET:" "/$remote_addr"; default "/.none"; }}
  upstream app {{ server 127.0.0.1:{app_port}; keepalive 32; }}
  server {{
    listen {bind}:{port} reuseport;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_read_timeout 300s;
    location = /boot/ipxe {{
      root {folder}/scripts;
      default_type "text/plain; charset=utf-8";
      etag off;
      if_modified_since off;
      try_files $boot_file @app;
      access_log {folder}/{log} boot;
    }}
    location @app {{ proxy_pass http://app; }}
    location / {{ proxy_pass http://app; }}
  }}
}}
"""
# realip: nginx believes X-Forwarded-For from loopback only when the service was told to.
REALIP = "  set_real_ip_from 127.0.0.1;\n  real_ip_header X-Forwarded-For;\n"


def resolve_front(front: str | None, nginx: str = NGINX) -> str | None:
    """``auto``: the nginx front when nginx is installed, else gunicorn alone (``None``).

    gunicorn's threads each wait on one client's request, so a few hundred clients
    sending a byte every few seconds hold every thread and nobody else gets an
    answer; nginx holds them all without a thread. Said in one log line either way.
    """
    if front in (None, "gunicorn"):
        return None
    if front not in FRONTS:
        raise ValueError(f"unknown HTTP front {front!r} (one of {', '.join(FRONTS)})")
    if front == "nginx":
        return "nginx"
    if os.access(nginx, os.X_OK):
        log.info("HTTP front: nginx (%s) on the public port, gunicorn behind it", nginx)
        return "nginx"
    log.warning("HTTP front: %s not found, gunicorn serves alone: slow clients can hold all "
                "its threads (install Debian nginx-light)", nginx)
    return None


def publish(folder: str, address: str, text: str) -> None:
    """Write one node's script atomically: nginx never serves half a file."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".new-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(folder, address))


def publish_node(svc, node: Node) -> None:
    """Under a front (``FRONT_DIR``), re-write ``node``'s file for its current state: a
    hook of the workers' apps (``on_state_change``)."""
    folder = svc.settings.get("FRONT_DIR")
    if folder and node.image is not None and node.address:
        publish(folder, node.address, script_for(svc, node, svc.state(node.name)))


def publish_all(svc, folder: str) -> dict:
    """Every server with a boot image: its script for its stored state; address → text."""
    os.makedirs(folder, exist_ok=True)
    written = {}
    for node in svc.plan.servers():
        if node.image is not None and node.address:
            text = script_for(svc, node, svc.state(node.name))
            publish(folder, node.address, text)
            written[node.address] = text
    return written


def parse_line(line: str) -> str | None:
    """The address of a boot log line that served a script (status 200), else None."""
    parts = line.split()
    if len(parts) != 2 or parts[1] != "200" or "/" in parts[0] or parts[0].startswith("."):
        return None
    return parts[0]


class LogFollower:
    """Tails nginx's boot log on a thread and hands each served address to ``on_boot``.

    Survives rotation (a new file at the path) and truncation (the file shrank); a
    line it cannot read, or an ``on_boot`` that fails, is logged and skipped.
    """

    def __init__(self, path: str, on_boot, interval: float = 0.05):
        self.path, self.on_boot, self.interval = path, on_boot, interval
        self.stopping = threading.Event()
        self.skipped = 0
        self.thread = threading.Thread(target=self._run, daemon=True, name="front-log")

    def start(self) -> "LogFollower":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def _open(self):
        try:
            return open(self.path, "rb")
        except OSError:
            return None

    def _replaced(self, fh) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return st.st_ino != os.fstat(fh.fileno()).st_ino or st.st_size < fh.tell()

    def _run(self) -> None:
        fh, rest = None, b""
        while True:
            stopping = self.stopping.is_set()  # read before the last pass: nothing is missed
            fh = fh or self._open()
            chunk = fh.read(1 << 20) if fh else b""
            if chunk:
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    self._handle(line)
                continue
            if stopping:
                break
            if fh and self._replaced(fh):
                fh.close()
                fh, rest = None, b""
                continue
            time.sleep(self.interval)
        if fh:
            fh.close()

    def _handle(self, raw: bytes) -> None:
        try:
            address = parse_line(raw.decode("ascii"))
            if address is None:
                self.skipped += 1
                log.debug("boot log: skipped %r", raw[:200])
                return
            self.on_boot(address)
        except Exception as exc:  # noqa: BLE001 - one bad line never stops the follower
            self.skipped += 1
            log.warning("boot log: line %r skipped: %s", raw[:200], exc)


class Recorder:
    """``on_boot`` of the follower: what the app records for the request, after the fact,
    and the node's file re-written when it no longer matches the app's answer.

    Unlike a request, the follower can wait: when the batched event writer's queue is
    nearly full it pauses (the log keeps the lines) instead of letting events be dropped.
    """

    def __init__(self, svc, folder: str, written: dict, room: int = ROOM):
        self.svc, self.folder, self.written, self.room = svc, folder, written, room

    def __call__(self, address: str) -> None:
        self._wait_for_room()
        text = script(self.svc, address, {})
        if address in self.written and self.written[address] != text:
            publish(self.folder, address, text)
            self.written[address] = text

    def _wait_for_room(self) -> None:
        writer = self.svc.events.writer  # made on the first event (EventSink, batched)
        while writer is not None and writer.queue.qsize() > self.room:
            time.sleep(0.01)




class NginxFront:
    """nginx in a child process with its own prefix and config in ``folder``, and the follower.

    ``svc`` is an app's :class:`~bootstrap.http.core.service.HttpService` in this process
    (batched events)."""

    def __init__(self, svc, folder: str, bind: str, port: int, app_port: int,
                 workers: int, trust_forwarded: bool = False):
        self.svc, self.folder = svc, folder
        self.scripts = os.path.join(folder, "scripts")
        self.conf = os.path.join(folder, "nginx.conf")
        self.values = dict(folder=folder, bind=bind, port=port, app_port=app_port,
                           workers=max(1, workers), log=BOOT_LOG,
                           user="user root;\n" if os.geteuid() == 0 else "",
                           realip=REALIP if trust_forwarded else "")
        self.proc = self.follower = None

    def config(self) -> str:
        return CONF.format(**self.values)

    def start(self) -> None:
        if not os.access(NGINX, os.X_OK):
            raise InputError(f"the nginx front needs {NGINX} (Debian nginx-light)")
        os.makedirs(os.path.join(self.folder, "tmp"), exist_ok=True)
        os.chmod(self.folder, 0o755)
        written = publish_all(self.svc, self.scripts)
        with open(self.conf, "w", encoding="utf-8") as fh:
            fh.write(self.config())
        self.follower = LogFollower(os.path.join(self.folder, BOOT_LOG),
                                    Recorder(self.svc, self.scripts, written)).start()
        with open(os.path.join(self.folder, "nginx.out"), "ab") as out:
            self.proc = subprocess.Popen([NGINX, "-p", self.folder, "-c", self.conf],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                         preexec_fn=die_with_parent, process_group=0)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 15) -> None:
        """Return once nginx accepts connections; raise with its error log if it exits."""
        host = "127.0.0.1" if self.values["bind"] in ("0.0.0.0", "") else self.values["bind"]
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex((host, self.values["port"])) == 0:
                    return
            time.sleep(0.05)
        raise WorkError(f"nginx did not start on {self.values['bind']}:{self.values['port']}: "
                        + self.error_tail())

    def error_tail(self) -> str:
        try:
            with open(os.path.join(self.folder, "error.log"), encoding="utf-8",
                      errors="replace") as fh:
                return " | ".join(fh.read().strip().splitlines()[-3:]) or "no error logged"
        except OSError:
            return "no error log"

    def stop(self, timeout: float = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the log has every request
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.proc is not None:
            # nginx's workers outlive a master that was killed: its process group has them
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.follower is not None:
            self.follower.stop()
        self.svc.close()  # its batched events written
        self.svc.store.close()  # the connection HttpServer opened for the front alone
