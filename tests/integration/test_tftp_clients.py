"""The TFTP service against real clients: curl and tftp-hpa, on 127.0.0.1.

A tiny HTTP server on loopback plays the controller for the proxy path and counts
what it is asked, so "fetched once" is observed from the controller's side.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import REGISTRY

from bootstrap.tftp import TftpService

IPXE = "/usr/lib/ipxe"
UNDIONLY = os.path.join(IPXE, "undionly.kpxe")
PROXIED = bytes(range(256)) * 700 + b"tail"          # 179,204 bytes: many blocks, odd end


class Controller(http.server.ThreadingHTTPServer):
    """Serves ``/files/<name>`` from a dict, slowly, and counts every request."""

    daemon_threads = True

    def __init__(self, files: dict, delay: float = 0.3):
        super().__init__(("127.0.0.1", 0), _ControllerHandler)
        self.files, self.delay = files, delay
        self.requests: list[str] = []


class _ControllerHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        time.sleep(self.server.delay)
        body = self.server.files.get(self.path.removeprefix("/files/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def controller():
    server = Controller({"proxied.bin": PROXIED, "crowd.bin": PROXIED[::-1]})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def service(tmp_path, controller):
    url = f"http://127.0.0.1:{controller.server_address[1]}"
    svc = TftpService(IPXE, str(tmp_path / "cache"), url, "127.0.0.1", 0).start()
    yield svc
    svc.stop()


def curl(service, name, out, *extra, timeout=30):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *extra, "-o", str(out),
                           f"tftp://127.0.0.1:{service.port}/{name}"],
                          capture_output=True, text=True, timeout=timeout)


def tftp_hpa(service, command, cwd):
    return subprocess.run(["tftp", "-m", "binary", "127.0.0.1", str(service.port), "-c", *command],
                          capture_output=True, text=True, timeout=30, cwd=cwd)


def raw_request(service, packet: bytes) -> bytes:
    """Send one datagram to the service and return its first answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(packet, ("127.0.0.1", service.port))
        return sock.recvfrom(65536)[0]


def rrq(name: bytes, **options) -> bytes:
    opts = b"".join(k.encode() + b"\0" + str(v).encode() + b"\0" for k, v in options.items())
    return struct.pack("!H", 1) + name + b"\0octet\0" + opts


def read(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def test_curl_fetches_undionly_byte_for_byte(service, tmp_path):
    out = tmp_path / "undionly.kpxe"
    assert curl(service, "undionly.kpxe", out).returncode == 0
    assert read(out) == read(UNDIONLY)


def test_curl_with_a_pxe_block_size_gets_ipxe_efi(service, tmp_path):
    out = tmp_path / "ipxe.efi"
    assert curl(service, "ipxe.efi", out, "--tftp-blksize", "1468").returncode == 0
    assert read(out) == read(os.path.join(IPXE, "ipxe.efi"))


def test_tftp_hpa_fetches_undionly(service, tmp_path):
    result = tftp_hpa(service, ["get", "undionly.kpxe", "got.kpxe"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert read(tmp_path / "got.kpxe") == read(UNDIONLY)


def test_blksize_and_tsize_are_negotiated_in_the_oack(service):
    answer = raw_request(service, rrq(b"undionly.kpxe", blksize=1468, tsize=0))
    opcode, = struct.unpack("!H", answer[:2])
    fields = answer[2:].split(b"\0")
    options = dict(zip(fields[0::2], fields[1::2]))
    assert opcode == 6                                  # OACK
    assert options[b"blksize"] == b"1468"
    assert options[b"tsize"] == str(os.path.getsize(UNDIONLY)).encode()


def test_a_missing_file_is_fetched_from_the_controller_once_then_served_from_cache(
        service, controller, tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    assert curl(service, "proxied.bin", first).returncode == 0
    assert curl(service, "proxied.bin", second, "--tftp-blksize", "1024").returncode == 0
    assert read(first) == read(second) == PROXIED
    assert controller.requests == ["/files/proxied.bin"]
    assert read(tmp_path / "cache" / "proxied.bin") == PROXIED


def test_twenty_concurrent_fetches_of_a_missing_file_are_identical_and_fetched_once(
        service, controller, tmp_path):
    outs = [tmp_path / f"crowd-{i}" for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda out: curl(service, "crowd.bin", out), outs))
    assert [r.returncode for r in results] == [0] * 20, [r.stderr for r in results]
    digests = {hashlib.sha256(read(out)).hexdigest() for out in outs}
    assert digests == {hashlib.sha256(PROXIED[::-1]).hexdigest()}
    assert controller.requests == ["/files/crowd.bin"]


def test_a_file_neither_here_nor_on_the_controller_is_not_found(service, controller, tmp_path):
    result = curl(service, "absent.bin", tmp_path / "absent")
    assert result.returncode == 68                      # curl: TFTP file not found
    assert controller.requests == ["/files/absent.bin"]


def test_path_traversal_is_refused_with_access_violation(service, tmp_path):
    answer = raw_request(service, rrq(b"../../../../etc/passwd"))
    assert answer[:4] == struct.pack("!HH", 5, 2)       # ERROR, access violation
    result = tftp_hpa(service, ["get", "../../etc/passwd", "stolen"], tmp_path)
    assert not (tmp_path / "stolen").exists() or read(tmp_path / "stolen") == b""
    assert "violation" in (result.stdout + result.stderr).lower()


def test_write_requests_are_refused_and_nothing_is_written(service, tmp_path):
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"payload")
    result = subprocess.run(["curl", "-sS", "--max-time", "20", "-T", str(upload),
                             f"tftp://127.0.0.1:{service.port}/planted.bin"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert not os.path.exists(os.path.join(IPXE, "planted.bin"))
    assert not (tmp_path / "cache" / "planted.bin").exists()


def test_malformed_datagrams_do_not_stop_the_server(service, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (b"", b"\x00", b"\x00\x01no-terminator", b"\x00\x09xx\0yy\0", b"\xff" * 600,
                     rrq(b"undionly.kpxe", blksize="many"), rrq(b"\xff\xfe"),
                     b"\x00\x01a\0octet\0blksize\0"):
            sock.sendto(junk, ("127.0.0.1", service.port))
    out = tmp_path / "after"
    assert curl(service, "undionly.kpxe", out).returncode == 0
    assert read(out) == read(UNDIONLY)


def test_stop_ends_every_thread_and_frees_the_port(tmp_path):
    svc = TftpService(IPXE, str(tmp_path / "cache"), None, "127.0.0.1", 0).start()
    out = tmp_path / "one"
    assert curl(svc, "undionly.kpxe", out).returncode == 0
    svc.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("tftp")]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", svc.port))


def test_serve_forever_on_a_caller_thread_returns_after_stop(tmp_path):
    svc = TftpService(IPXE, str(tmp_path / "cache"), None, "127.0.0.1", 0)
    runner = threading.Thread(target=svc.serve_forever)
    runner.start()
    assert curl(svc, "undionly.kpxe", tmp_path / "one").returncode == 0
    svc.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()


def test_a_lost_block_is_sent_again_and_the_transfer_completes(tmp_path):
    """A hand-driven client that ignores block 3 once: the service must resend it."""
    svc = TftpService(IPXE, str(tmp_path / "cache"), None, "127.0.0.1", 0, timeout=0.5).start()
    got, blocks_seen = bytearray(), []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(rrq(b"undionly.kpxe", blksize=1024), ("127.0.0.1", svc.port))
            expected, dropped = 0, False
            while True:
                packet, server = sock.recvfrom(65536)
                opcode, block = struct.unpack("!HH", packet[:4])
                blocks_seen.append(block)
                if opcode == 6:                     # OACK: acknowledge with block 0
                    sock.sendto(struct.pack("!HH", 4, 0), server)
                    expected = 1
                    continue
                assert opcode == 3 and block == expected
                if block == 3 and not dropped:
                    dropped = True                  # "lose" it: no ACK, wait for the resend
                    continue
                got += packet[4:]
                sock.sendto(struct.pack("!HH", 4, block), server)
                expected += 1
                if len(packet) - 4 < 1024:
                    break
    finally:
        svc.stop()
    assert bytes(got) == read(UNDIONLY)
    assert blocks_seen.count(3) == 2


def test_stop_right_after_start_or_before_serving_returns(tmp_path):
    for begin in (lambda s: s.start(), lambda s: None):
        svc = TftpService(IPXE, str(tmp_path / "cache"), None, "127.0.0.1", 0)
        begin(svc)
        done = threading.Thread(target=svc.stop)
        done.start()
        done.join(timeout=10)
        assert not done.is_alive()
        if svc._thread is not None:
            svc._thread.join(timeout=10)
        assert svc.sock.fileno() == -1


def test_a_tsize_probe_aborted_by_the_client_then_the_real_fetch(service, tmp_path):
    """What PXE firmware does: ask with tsize, abort after the OACK, ask again."""
    def aborted():
        return REGISTRY.get_sample_value("zone_tftp_transfers_total",
                                         {"result": "client_abort"}) or 0
    before = aborted()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(rrq(b"ipxe.efi", tsize=0, blksize=1468), ("127.0.0.1", service.port))
        oack, server = sock.recvfrom(65536)
        assert oack[:2] == b"\x00\x06"
        sock.sendto(struct.pack("!HH", 5, 8) + b"tsize only\0", server)
    deadline = time.monotonic() + 5
    while aborted() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert aborted() == before + 1
    out = tmp_path / "ipxe.efi"
    assert curl(service, "ipxe.efi", out, "--tftp-blksize", "1468").returncode == 0
    assert read(out) == read(os.path.join(IPXE, "ipxe.efi"))


class Flooder(threading.Thread):
    """Another host (127.0.0.2) sending read requests from fresh ports and never ACKing,
    about 2,500 a second (the rate of the report; faster only overflows the socket's
    queue in the kernel, which no server can help)."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.sent, self.stopping = port, 0, threading.Event()
        self.warm = threading.Event()          # set once 2,000 requests are out

    def run(self):
        while not self.stopping.wait(0.01):
            for _ in range(25):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("127.0.0.2", 0))
                    sock.sendto(rrq(b"undionly.kpxe"), ("127.0.0.1", self.port))
                self.sent += 1
            if self.sent > 2000:
                self.warm.set()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.join(timeout=10)


def test_curl_and_tftp_hpa_still_fetch_during_a_flood_of_unacked_requests(service, tmp_path):
    with Flooder(service.port) as flood:
        assert flood.warm.wait(60)
        for i in range(3):
            out = tmp_path / f"during-{i}"
            assert curl(service, "undionly.kpxe", out).returncode == 0
            assert read(out) == read(UNDIONLY)
        result = tftp_hpa(service, ["get", "ipxe.efi", "hpa.efi"], tmp_path)
        assert result.returncode == 0, result.stderr
        assert read(tmp_path / "hpa.efi") == read(os.path.join(IPXE, "ipxe.efi"))
        assert service.open_transfers <= service.admission.per_source + 2
    assert flood.sent > 2000

