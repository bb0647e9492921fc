"""Start and stop a real sushy-emulator (stock, or with the test extension) for tests and the lab.

Everything listens on 127.0.0.1 only. Each emulator gets its own state dir,
its own htpasswd (bcrypt cost 4: cost 12 costs ~270 ms a request) and libvirt's
in-process test driver (``test:///default``) with one domain per system name —
the plan's server names (p01-u01 …), so a zone's ``redfish.system: "{name}"``
finds them. The config file is Python (Flask runs it) and keeps the libvirt
connection in an upper-case key: Flask only keeps upper-case keys, and the test
driver forgets its domains when its last connection closes.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import yaml

from bootstrap.process import die_with_parent, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSION = os.path.join(HERE, "sushy_ext.py")

CONFIG = '''\
import libvirt
SUSHY_EMULATOR_LIBVIRT_URI = "test:///default"
SUSHY_EMULATOR_STATE_DIR = {state!r}
SUSHY_EMULATOR_AUTH_FILE = {auth!r}
SUSHY_EMULATOR_LISTEN_IP = "127.0.0.1"
SUSHY_EXT_TASK_SECONDS = {task_seconds!r}
SUSHY_EXT_RESET_REQUIRED = {reset_required!r}
SUSHY_KEEP_LIBVIRT_CONNECTION = libvirt.open("test:///default")
for _dom in SUSHY_KEEP_LIBVIRT_CONNECTION.listAllDomains():
    if _dom.isActive():
        _dom.destroy()
    _dom.undefine()
for _xml in {domains!r}:
    SUSHY_KEEP_LIBVIRT_CONNECTION.defineXML(_xml)
'''

DOMAIN = ("<domain type='test'><name>{name}</name><memory>1048576</memory><vcpu>1</vcpu>"
          "<os><type>hvm</type><boot dev='hd'/></os><devices>"
          "<interface type='network'><mac address='{mac}'/><source network='default'/></interface>"
          "</devices></domain>")


_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def mac_for(name: str) -> str:
    """A stable locally administered MAC per system name."""
    h = hashlib.sha256(name.encode()).digest()
    return "52:54:00:%02x:%02x:%02x" % (h[0], h[1], h[2])


def write_htpasswd(path: str, user: str, password: str) -> str:
    import bcrypt  # a test extra: loaded only when an emulator is made

    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{user}:{digest}\n")
    return path


def server_names(plan, pod: str | None = None) -> list:
    return [n.name for n in plan.servers(pod)]


class Emulator:
    """One sushy-emulator process on 127.0.0.1 serving ``systems``.

    ``extension=True`` runs the test extension (realistic UpdateService);
    ``tls=(cert, key)`` serves HTTPS.
    """

    def __init__(self, workdir: str, systems, user: str = "admin", password: str = "lab-secret",
                 extension: bool = False, tls: tuple | None = None, task_seconds: float = 0.5,
                 reset_required: bool = True, port: int | None = None):
        self.workdir, self.systems = workdir, list(systems)
        self.user, self.password = user, password
        self.extension, self.tls = extension, tls
        self.task_seconds, self.reset_required = task_seconds, reset_required
        self.port = port or free_port()
        self.proc = None
        os.makedirs(workdir, exist_ok=True)

    @classmethod
    def for_zone(cls, zone, plan, workdir: str, pod: str | None = None, **kw) -> "Emulator":
        """An emulator where ``zone`` expects its BMCs (the lab): the port of its
        ``redfish.url``, its BMC credentials, one system per server of the plan."""
        from urllib.parse import urlsplit

        from bootstrap.redfish.client import load_credentials

        creds = load_credentials(zone)
        url = urlsplit(zone.redfish.url)
        if url.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"redfish.url {zone.redfish.url} is not on loopback")
        kw.setdefault("port", url.port or (443 if url.scheme == "https" else 80))
        return cls(workdir, server_names(plan, pod), user=creds.username,
                   password=creds.password, **kw)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _config(self) -> str:
        path = os.path.join(self.workdir, "emulator.conf")
        domains = [DOMAIN.format(name=n, mac=mac_for(n)) for n in self.systems]
        auth = write_htpasswd(os.path.join(self.workdir, "htpasswd"), self.user, self.password)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(CONFIG.format(state=os.path.join(self.workdir, "sushy-state"), auth=auth,
                                   task_seconds=self.task_seconds,
                                   reset_required=self.reset_required, domains=domains))
        return path

    def command(self) -> list:
        program = [EXTENSION] if self.extension else ["-m", "sushy_tools.emulator.main"]
        cmd = [sys.executable, *program, "--config", self._config(), "-i", "127.0.0.1",
               "-p", str(self.port)]
        if self.tls:
            cmd += ["--ssl-certificate", self.tls[0], "--ssl-key", self.tls[1]]
        return cmd

    def start(self, timeout: float = 20.0) -> "Emulator":
        log = open(os.path.join(self.workdir, "emulator.log"), "wb")
        env = dict(os.environ, SUSHY_EMULATOR_STATE_DIR=os.path.join(self.workdir, "sushy-state"))
        env.pop("SUSHY_EMULATOR_CONFIG", None)
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.workdir, preexec_fn=die_with_parent
                                     if threading.current_thread() is threading.main_thread()
                                     else None)
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sushy-emulator exited {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sushy-emulator did not listen within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            with open(os.path.join(self.workdir, "emulator.log"), errors="replace") as fh:
                return fh.read()[-4000:]
        except OSError:
            return ""

    def requests(self) -> list:
        """(method, path, status) of every request the emulator logged, in order."""
        out = []
        for line in self.log_lines():
            m = _ACCESS.search(_ANSI.sub("", line))   # werkzeug colours its log when click is there
            if m:
                out.append((m["method"], m["path"], int(m["status"])))
        return out

    def log_lines(self) -> list:
        try:
            with open(os.path.join(self.workdir, "emulator.log"), errors="replace") as fh:
                return fh.read().splitlines()
        except OSError:
            return []

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def get(self, path: str, cafile: str | None = None) -> dict:
        """An authenticated GET straight to the emulator (for test assertions)."""
        import base64
        import json
        import ssl

        req = urllib.request.Request(self.url + path)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        ctx = ssl.create_default_context(cafile=cafile) if self.tls else None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=ctx))
        with opener.open(req, timeout=10) as resp:
            return json.loads(resp.read())

    def busy(self, count: int, status: int = 503, message: str | None = None) -> None:
        """(Extension) answer the next ``count`` system requests with ``status``
        (503 comes with Retry-After) and ``message``."""
        import base64
        import json

        body = {"count": count, "status": status, **({"message": message} if message else {})}
        req = urllib.request.Request(self.url + "/_ext/busy", method="POST",
                                     data=json.dumps(body).encode())
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        req.add_header("Content-Type", "application/json")
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10).read()

    def stats(self) -> dict:
        return self.get("/_ext/stats")

    def system(self, name: str) -> dict:
        return self.get(f"/redfish/v1/Systems/{name}")


def zone_for(emulator: Emulator, workdir: str, base: str, pods=None,
             firmware: dict | None = None, ca_file: str | None = None,
             url: str | None = None, password: str | None = None, edit=None) -> str:
    """A copy of the zone file ``base`` whose redfish section points at ``emulator``;
    returns its path. Relative firmware images resolve from ``base``'s folder.

    ``pods`` replaces the pod list; ``firmware`` replaces the catalog (image paths
    are made absolute so the copy can live anywhere); the BMC password (the
    emulator's unless ``password`` is given) goes to a file beside the copy, as
    the zone contract wants; ``edit(zone_dict)`` may change anything else.
    """
    with open(base, encoding="utf-8") as fh:
        zone = yaml.safe_load(fh)
    base_dir = os.path.dirname(os.path.abspath(base))
    catalog = firmware if firmware is not None else zone.get("firmware", {})
    for entry in catalog.values():
        entry["image"] = os.path.join(base_dir, entry["image"]) if not os.path.isabs(
            entry["image"]) else entry["image"]
    zone["firmware"] = catalog
    zone["redfish"] = {"url": url or emulator.url, "system": "{name}",
                       "verify_tls": bool(emulator.tls)}
    if ca_file:
        zone["redfish"]["ca_file"] = ca_file
    secret = os.path.join(workdir, "bmc.pass")
    with open(secret, "w", encoding="utf-8") as fh:
        fh.write((emulator.password if password is None else password) + "\n")
    os.chmod(secret, 0o600)
    zone["credentials"] = {"bmc": {"username": emulator.user, "password_file": "bmc.pass"}}
    if pods is not None:
        zone["pods"] = pods
    if edit is not None:
        edit(zone)
    path = os.path.join(workdir, "zone.yml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(zone, fh, sort_keys=False)
    return path


def write_image(path: str, component: str, version: str) -> tuple:
    """A LAB-FIRMWARE image (what the test extension understands); (path, sha256)."""
    blob = f"LAB-FIRMWARE {component} {version}\n".encode()
    with open(path, "wb") as fh:
        fh.write(blob)
    return path, hashlib.sha256(blob).hexdigest()


def self_signed(workdir: str) -> dict:
    """A private CA and a server certificate for 127.0.0.1 it signed: paths of ca, cert, key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test BMC CA")).issuer_name(name("test BMC CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {k: os.path.join(workdir, f"{k}.pem") for k in ("ca", "cert", "key")}
    pem = serialization.Encoding.PEM
    with open(paths["ca"], "wb") as fh:
        fh.write(ca.public_bytes(pem))
    with open(paths["cert"], "wb") as fh:
        fh.write(cert.public_bytes(pem))
    with open(paths["key"], "wb") as fh:
        fh.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return paths
